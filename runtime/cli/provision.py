"""``ttr provision`` and ``ttr doctor``: argparse registration; the work is imported in the handlers.

- ``provision`` creates or converges, idempotently, what the management account needs (the
  bucket and its settings, per customer a queue with its DLQ, the bucket notifications), one
  line per resource on stdout. It never touches customer accounts.
- ``doctor`` checks everything, the customer accounts and Graph included, and says what is
  wrong and how to fix it. Exit 0 when nothing failed (warnings allowed), 1 otherwise.
"""

from __future__ import annotations

import sys

PROVISION_HELP = """\
Create or update, idempotently, what the runtime needs in the account of the current AWS
credentials:
  - the bucket, with versioning, default encryption (SSE-S3), public access blocked and a
    lifecycle rule for old trigger versions;
  - per customer, a queue and its DLQ (redrive policy, visibility timeout, retention, SSE),
    with a queue policy that lets only the bucket send;
  - the bucket notifications customers/{code}/*.json -> that customer's queue, merged into
    the existing configuration (other rules are kept).
One line per resource: created, updated or unchanged ("would ..." under --dry-run, which
changes nothing). Customer accounts are not touched: check them with `ttr doctor`.
"""

DOCTOR_HELP = """\
Preflight checks, read-only. Shared: the runtime's AWS credentials, the bucket, Microsoft Graph
(a token, the organizer's calendar). Per customer: queue and DLQ with the redrive policy, the
bucket notification rule, the SES role (assumed), the sender identity (verified), the contact
list and its configured topics (`ttr topics sync` fixes them), the SES account (out of the
sandbox, sending enabled) and the send quota.
Each check prints PASS, WARN or FAIL with what is wrong and how to fix it.
Exit 0 when nothing failed (warnings allowed), 1 otherwise.
"""


def _err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _out(msg: str = "") -> None:
    print(msg, flush=True)


def register(sub, common, fmt) -> None:
    p = sub.add_parser("provision", help="create or update the bucket, queues and notifications on real AWS",
                       description=PROVISION_HELP, formatter_class=fmt)
    p.add_argument("--dry-run", action="store_true", help="report what would change, change nothing")
    common(p)
    p.set_defaults(func=cmd_provision)

    p = sub.add_parser("doctor", help="preflight checks: AWS, each customer's SES, Graph (exit 0 when all pass)",
                       description=DOCTOR_HELP, formatter_class=fmt)
    p.add_argument("--customer", metavar="C", help="check only this customer (the shared checks still run)")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    common(p)
    p.set_defaults(func=cmd_doctor)


def cmd_provision(args) -> int:
    from runtime.adapters.aws import AwsClients
    from runtime.domain.config import load_config
    from runtime.domain.errors import TtrError
    from runtime.provisioning.bootstrap import ensure_management

    cfg = load_config(args.config)
    where = cfg.aws_endpoint_url or f"AWS {cfg.region}"
    _err(f"provisioning bucket {cfg.bucket} and the queues of {len(cfg.customers)} customer(s) on {where}"
         + (" (dry run: nothing will be changed)" if args.dry_run else ""))
    steps = []
    try:
        ensure_management(cfg, AwsClients(cfg.region, cfg.aws_endpoint_url),
                          report=lambda step: (steps.append(step), _out(str(step))),
                          dry_run=args.dry_run, harden=True)
    except TtrError as exc:
        done = "nothing was changed (dry run)" if args.dry_run else \
            "the lines above were applied; nothing after them was"
        _err(f"ttr: error: provisioning stopped: {exc}\n{done}. Fix the cause and run `ttr provision` "
             "again (it is idempotent).")
        return 1
    counts: dict[str, int] = {}
    for s in steps:
        counts[s.outcome] = counts.get(s.outcome, 0) + 1
    tally = ", ".join(f"{n} {o}" for o, n in sorted(counts.items()))
    if args.dry_run:
        _err(f"dry run: {tally}; nothing was changed")
    else:
        _err(f"done: {tally}. Customer accounts were not touched: check them with `ttr doctor`.")
    _feedback_instructions(cfg)
    return 0


def _feedback_instructions(cfg) -> None:
    """SES feedback needs one step in each customer's account: say exactly which."""
    from runtime.adapters.aws import AwsClients, aws_errors
    from runtime.domain.errors import TtrError
    from runtime.provisioning.bootstrap import identity_feedback_calls
    from runtime.services.feedback import feedback_topic_arn

    try:
        with aws_errors("sts.GetCallerIdentity"):
            account = AwsClients(cfg.region, cfg.aws_endpoint_url).client("sts").get_caller_identity()["Account"]
    except TtrError as exc:
        _err(f"(cannot name the feedback topics: {exc})")
        return
    _err("SES feedback (bounces, complaints, deliveries): in each customer's account, for its sender identity:")
    for c in cfg.customers:
        topic = feedback_topic_arn(c, f"arn:aws:sqs:{cfg.region}:{account}:x")
        _err(f"  {c.code} ({c.account_id}):")
        for op, kw in identity_feedback_calls(cfg.sender_of(c), topic):
            args = " ".join(f"--{_dashed(k)} {str(v).lower() if isinstance(v, bool) else v}"
                            for k, v in kw.items() if k != "Enabled") + (" --enabled" if kw.get("Enabled") else "")
            _err(f"    aws ses {op.replace('_', '-')} {args} --region {cfg.region_of(c)}")


def _dashed(name: str) -> str:
    return "".join("-" + ch.lower() if ch.isupper() and i else ch.lower() for i, ch in enumerate(name))


def cmd_doctor(args) -> int:
    from runtime.adapters.aws import AwsClients, client_config
    from runtime.domain.config import load_config
    from runtime.domain.errors import InvalidInput
    from runtime.provisioning.doctor import Doctor, exit_code, render_json, render_line, summary

    cfg = load_config(args.config)
    if args.customer and args.customer not in cfg.customer_codes:
        raise InvalidInput(f"--customer: unknown customer {args.customer!r} "
                           f"(configured: {', '.join(cfg.customer_codes)})")
    # Fewer, shorter attempts than the runtime's: a preflight should answer, not wait.
    clients = AwsClients(cfg.region, cfg.aws_endpoint_url,
                         config=client_config(connect_timeout=3, read_timeout=10, max_attempts=2))
    report = None if args.json else (lambda check: _out(render_line(check)))
    checks = Doctor(cfg, clients, report=report).run(args.customer)
    if args.json:
        _out(render_json(checks))
    counts = summary(checks)
    _err(f"doctor: {counts['pass']} pass, {counts['warn']} warn, {counts['fail']} fail")
    return exit_code(checks)
