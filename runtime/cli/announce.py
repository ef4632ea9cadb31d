"""``ttr announce submit|approve|cancel|list|show``: announcements (``runtime.domain.announcements``).

The writer is the change lifecycle (archive first, then one trigger per customer); the runtime
processes an announcement's triggers exactly like a change's. No Ray here.
"""

from __future__ import annotations

import json

from runtime.domain.errors import InvalidInput, NotFound


def _lifecycle(args):
    from runtime.adapters.aws import AwsClients
    from runtime.adapters.s3 import S3ObjectStore
    from runtime.cli.main import _config
    from runtime.services.lifecycle import Lifecycle

    cfg = _config(args)
    store = S3ObjectStore(AwsClients(cfg.region, cfg.aws_endpoint_url), cfg.bucket)
    return cfg, Lifecycle(store, cfg.customer_codes, topics=[t.name for t in cfg.topics])


def _announcement(lc, announcement_id: str) -> dict:
    from runtime.domain.announcements import ID_PREFIX, is_announcement

    obj = lc.show(announcement_id)
    if not is_announcement(obj):
        raise NotFound(f"{announcement_id} is not an announcement (use `ttr change` for changes"
                       f"{'' if announcement_id.startswith(ID_PREFIX) else '; announcement ids start with ANN-'})")
    return obj


def cmd_submit(args) -> int:
    from runtime.cli.main import _report_transition, actor_of
    from runtime.services.documents import load_document

    _, lc = _lifecycle(args)
    result = lc.announce(load_document(args.file), actor=actor_of(args), allow_past=args.allow_past)
    return _report_transition(result, "submitted")


def _transition(action: str, verb: str):
    def run(args) -> int:
        from runtime.cli.main import _report_transition, actor_of

        _, lc = _lifecycle(args)
        _announcement(lc, args.id)  # a change id is refused here, not transitioned
        params = {"note": args.reason} if getattr(args, "reason", None) else {}
        result = lc.transition(args.id, action, actor=actor_of(args), params=params,
                               expected_version=args.expect_version)
        return _report_transition(result, verb)
    return run


def cmd_show(args) -> int:
    from runtime.cli.main import _out

    _, lc = _lifecycle(args)
    _out(json.dumps(_announcement(lc, args.id), indent=2, ensure_ascii=False))
    return 0


def summary(a: dict) -> dict:
    return {"id": a.get("changeId"), "type": a.get("type"), "status": a.get("status"),
            "version": a.get("version"), "title": a.get("title", ""), "customers": a.get("customers", []),
            "createdAt": a.get("createdAt", "")}


def cmd_list(args) -> int:
    from runtime.cli.main import _err, _out
    from runtime.domain.announcements import TYPES

    cfg, lc = _lifecycle(args)
    if args.customer and args.customer not in cfg.customer_codes:
        raise InvalidInput(f"--customer: unknown customer {args.customer!r} "
                           f"(configured: {', '.join(cfg.customer_codes)})")
    if args.type and args.type not in TYPES:
        raise InvalidInput(f"--type: {args.type!r} is not an announcement type; one of {', '.join(TYPES)}")
    rows = [summary(a) for a in lc.list(status=args.status, customer=args.customer, kind="announcement")
            if not args.type or a.get("type") == args.type]
    if args.json:
        _out(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    if not rows:
        _err("no announcements")
        return 0
    _out(f"{'ANNOUNCEMENT':<42} {'TYPE':<12} {'STATUS':<10} {'VER':>3}  {'CUSTOMERS':<20} TITLE")
    for r in rows:
        _out(f"{r['id']:<42} {r['type']:<12} {r['status']:<10} {r['version']:>3}  "
             f"{','.join(r['customers']):<20} {r['title']}")
    return 0


EXAMPLE = """\
type: finops            # cic | finops | innersource | general
title: Q4 cost review
customers: [hts]
summary: One paragraph people read first.
content: |
  The announcement itself.
links:                  # optional; http or https only
  - {title: Cost report, url: https://example.com/q4}
# meeting: {required: true, title: FinOps review}   # optional, with its window:
# schedule: {implementationStart: ..., implementationEnd: ..., timezone: Europe/Berlin}
"""


def register(sub, common, fmt) -> None:
    from runtime.domain.model import STATUSES

    ann = sub.add_parser("announce", help="announcements: CIC, FinOps, InnerSource and general news",
                         formatter_class=fmt)
    asub = ann.add_subparsers(dest="announce_command", metavar="ACTION", required=True)

    p = asub.add_parser("submit", help="submit an announcement from a YAML/JSON file; prints its id",
                        description="An announcement file:\n\n" + EXAMPLE, formatter_class=fmt)
    p.add_argument("file", metavar="FILE", help="YAML or JSON ('-' for stdin)")
    p.add_argument("--allow-past", action="store_true", help="accept a meeting window that started already")
    common(p, acting=True)
    p.set_defaults(func=cmd_submit)

    for action, verb, help_text in (("approve", "approved", "approve: its type's subscribers are told"),
                                    ("cancel", "cancelled", "cancel (from submitted or approved)")):
        p = asub.add_parser(action, help=help_text, formatter_class=fmt)
        p.add_argument("id", metavar="ID")
        p.add_argument("--reason", metavar="TEXT", help="a note recorded with the transition")
        p.add_argument("--expect-version", type=int, metavar="N", help="refuse unless at version N")
        common(p, acting=True)
        p.set_defaults(func=_transition(action, verb))

    p = asub.add_parser("show", help="the announcement's archive object (JSON)", formatter_class=fmt)
    p.add_argument("id", metavar="ID")
    common(p)
    p.set_defaults(func=cmd_show)

    p = asub.add_parser("list", help="announcements, newest first", formatter_class=fmt)
    p.add_argument("--status", choices=[s for s in STATUSES if s not in ("draft", "completed")])
    p.add_argument("--type", metavar="T", help="cic, finops, innersource or general")
    p.add_argument("--customer", metavar="C")
    p.add_argument("--json", action="store_true")
    common(p)
    p.set_defaults(func=cmd_list)
