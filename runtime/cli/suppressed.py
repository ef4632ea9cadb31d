"""``ttr suppressed list|clear``: the addresses the runtime no longer emails after a hard bounce
or a complaint (``runtime.services.feedback``), per customer. Registration only; work in the handlers."""

from __future__ import annotations

import json
import sys


def _out(msg: str = "") -> None:
    print(msg, flush=True)


def _err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _setup(args):
    from runtime.adapters.aws import AwsClients
    from runtime.adapters.s3 import S3ObjectStore
    from runtime.cli.main import _customers
    from runtime.domain.config import load_config

    cfg = load_config(args.config)
    codes = _customers(cfg, args.customer)
    return S3ObjectStore(AwsClients(cfg.region, cfg.aws_endpoint_url), cfg.bucket), codes


def cmd_suppressed_list(args) -> int:
    from runtime.services.feedback import SuppressionList

    store, codes = _setup(args)
    rows = [{"customer": code, "address": addr, **entry}
            for code in codes for addr, entry in sorted(SuppressionList(store, code).entries().items())]
    if args.json:
        _out(json.dumps(rows, indent=2))
        return 0
    if not rows:
        _err("no suppressed addresses")
        return 0
    _out(f"{'CUSTOMER':<14} {'ADDRESS':<36} {'WHY':<10} {'SINCE':<26} DETAIL")
    for r in rows:
        _out(f"{r['customer']:<14} {r['address']:<36} {r.get('reason', ''):<10} {r.get('at', ''):<26} "
             f"{(r.get('detail') or '')[:60]}" + (f" ({r['changeId']})" if r.get("changeId") else ""))
    return 0


def cmd_suppressed_clear(args) -> int:
    from runtime.domain.errors import InvalidInput
    from runtime.domain.recipients import valid_address
    from runtime.services.feedback import SuppressionList

    if not valid_address(args.address):
        raise InvalidInput(f"ADDRESS: {args.address!r} is not an email address")
    store, codes = _setup(args)
    if len(codes) != 1 or not args.customer:
        raise InvalidInput("--customer: name the one customer whose suppression to clear")
    if not SuppressionList(store, codes[0]).clear(args.address):
        _err(f"{args.address} is not suppressed for customer {codes[0]}; nothing changed")
        return 1
    _out(f"cleared {args.address.strip().lower()} for customer {codes[0]}: it will be emailed again")
    return 0


def register(sub, common, fmt) -> None:
    sup = sub.add_parser("suppressed", formatter_class=fmt,
                         help="addresses no longer emailed after a hard bounce or a complaint",
                         description="SES feedback: a hard bounce or a complaint stops every email to "
                                     "that address of that customer until an operator clears it.")
    ssub = sup.add_subparsers(dest="suppressed_command", metavar="ACTION", required=True)
    p = ssub.add_parser("list", help="every suppressed address, why and since when", formatter_class=fmt)
    p.add_argument("--customer", metavar="C", action="append", help="only this customer (repeatable)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    common(p)
    p.set_defaults(func=cmd_suppressed_list)
    p = ssub.add_parser("clear", help="email an address again (after fixing the cause)", formatter_class=fmt)
    p.add_argument("address", metavar="ADDRESS")
    p.add_argument("--customer", metavar="C", action="append", required=True, help="the customer")
    common(p)
    p.set_defaults(func=cmd_suppressed_clear)
