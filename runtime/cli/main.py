"""``ttr``: the command line.

Exit codes: 0 success; 1 failed (or failed in part); 2 invalid input; 3 conflict.
Results go to stdout, logs and progress to stderr. Commands that do not run the runtime import
no Ray (heavy imports happen inside the handlers that need them).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from typing import Callable, Sequence

from runtime.domain.errors import InvalidInput, TtrError

# Modules with ``register(subparsers, common, formatter_class)``; see build_parser.
COMMAND_MODULES: tuple[str, ...] = ("runtime.cli.provision", "runtime.cli.web",
                                    "runtime.cli.audience", "runtime.cli.suppressed",
                                    "runtime.cli.announce")

# Commands that set up their own telemetry (the runtime's processes, the embedded stack).
SELF_TELEMETRY = frozenset({"run", "local", "demo"})

EPILOG = """\
exit codes: 0 success, 1 failed (or failed in part), 2 invalid input, 3 conflict
configuration: --config F, else $TTR_CONFIG, else configs/local.yaml
"""


def _err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _out(msg: str = "") -> None:
    print(msg, flush=True)


def actor_of(args: argparse.Namespace) -> str:
    who = getattr(args, "as_user", None) or os.environ.get("TTR_ACTOR")
    if not who:
        try:
            who = getpass.getuser()
        except Exception:  # no passwd entry (containers)
            who = "unknown"
    return who


def _config(args):
    from runtime.domain.config import load_config

    return load_config(getattr(args, "config", None))


def _lifecycle(cfg):
    from runtime.adapters.aws import AwsClients
    from runtime.adapters.s3 import S3ObjectStore
    from runtime.services.lifecycle import Lifecycle

    clients = AwsClients(cfg.region, cfg.aws_endpoint_url)
    return Lifecycle(S3ObjectStore(clients, cfg.bucket), cfg.customer_codes)


# ---------------------------------------------------------------------------------------------
# change commands


def _report_transition(result, verb: str) -> int:
    change_id = result.change_id
    _out(change_id)
    written = ", ".join(result.triggers_written) or "none"
    _err(f"{verb} {change_id}: version {result.seq}; triggers written for: {written}")
    if result.triggers_failed:
        for code, why in result.triggers_failed.items():
            _err(f"trigger for customer {code} NOT written: {why}")
        _err(f"the archive holds the transition; finish with: ttr change retrigger {change_id} "
             + " ".join(f"--customer {c}" for c in result.triggers_failed))
        return 1
    return 0


def cmd_change_draft(args) -> int:
    from runtime.services.documents import load_document

    cfg = _config(args)
    content = load_document(args.file)
    change_id = _lifecycle(cfg).save_draft(content, actor=actor_of(args))
    _out(change_id)
    _err(f"draft saved as drafts/{change_id}.json; submit it with: ttr change submit --draft {change_id}")
    return 0


def cmd_change_submit(args) -> int:
    from runtime.services.documents import load_document

    if bool(args.file) == bool(args.draft):
        raise InvalidInput("change submit: give either FILE or --draft ID (not both, not neither)")
    cfg = _config(args)
    content = load_document(args.file) if args.file else {}
    result = _lifecycle(cfg).submit(content, actor=actor_of(args), draft_id=args.draft,
                                    allow_past=args.allow_past)
    return _report_transition(result, "submitted")


def _transition(action: str, verb: str):
    def run(args) -> int:
        cfg = _config(args)
        params: dict = {}
        if getattr(args, "reason", None):
            params["note"] = args.reason  # the transition's note, not the change's reason field
        if getattr(args, "allow_past", False):
            params["allow_past"] = True
        if getattr(args, "before_start", False):
            params["before_start"] = True
        if action == "reschedule":
            params.update(start=args.start, end=args.end)
            if args.timezone:
                params["timezone"] = args.timezone
        if action == "update":
            from runtime.domain.rules import check_known_fields
            from runtime.services.documents import load_document

            doc = load_document(args.file)
            for f in ("status", "version", "modifications"):
                if f in doc:
                    raise InvalidInput(f"update: {f} is managed by ttr and cannot be set")
            check_known_fields(doc)  # before the options join the content
            if doc.get("changeId") not in (None, args.id):
                raise InvalidInput(f"update: the file is for change {doc['changeId']}, not {args.id}")
            doc.pop("changeId", None)
            params.update(doc)
        result = _lifecycle(cfg).transition(args.id, action, actor=actor_of(args), params=params,
                                            expected_version=args.expect_version)
        return _report_transition(result, verb)
    return run


def cmd_change_review(kind: str):
    def run(args) -> int:
        from runtime.services.review import record_review

        cfg = _config(args)
        entry = record_review(_lifecycle(cfg).archive, args.id, kind, actor=actor_of(args), comment=args.comment,
                              expected_version=getattr(args, "expect_version", None))
        _out(args.id)
        _err(f"{kind.replace('_', ' ')} recorded on {args.id} (version {entry['version']} stays; nobody outside "
             "is told)")
        return 0
    return run


def cmd_change_example(args) -> int:
    from runtime.services.documents import dump_yaml, example_change

    _out(dump_yaml(example_change(args.days)).rstrip())
    return 0


def cmd_change_show(args) -> int:
    cfg = _config(args)
    _out(json.dumps(_lifecycle(cfg).show(args.id), indent=2, ensure_ascii=False))
    return 0


def cmd_change_view(args) -> int:
    from runtime.cli.change_view import cmd_change_view as view

    return view(args)


def cmd_change_list(args) -> int:
    cfg = _config(args)
    if args.customer and args.customer not in cfg.customer_codes:
        raise InvalidInput(f"--customer: unknown customer {args.customer!r} "
                           f"(configured: {', '.join(cfg.customer_codes)})")
    changes = _lifecycle(cfg).list(status=args.status, customer=args.customer, kind="change")
    if args.json:
        _out(json.dumps([_summary(c) for c in changes], indent=2, ensure_ascii=False))
        return 0
    if not changes:
        _err("no changes")
        return 0
    _out(f"{'CHANGE':<42} {'STATUS':<10} {'VER':>3}  {'START':<25} {'CUSTOMERS':<20} TITLE")
    for c in changes:
        s = _summary(c)
        _out(f"{s['changeId']:<42} {s['status']:<10} {s['version']:>3}  {s['start']:<25} "
             f"{','.join(s['customers']):<20} {s['title']}")
    return 0


def _summary(c: dict) -> dict:
    return {"changeId": c.get("changeId"), "status": c.get("status"), "version": c.get("version"),
            "title": c.get("title", ""), "customers": c.get("customers", []),
            "start": (c.get("schedule") or {}).get("implementationStart", "")}


def cmd_change_retrigger(args) -> int:
    cfg = _config(args)
    result = _lifecycle(cfg).retrigger(args.id, args.customer or None)
    return _report_transition(result, "retriggered")


# ---------------------------------------------------------------------------------------------
# local stack


def cmd_local_up(args) -> int:
    from runtime.local.stack import run_local_up

    return run_local_up(_config(args), emulators_only=args.emulators_only)


def cmd_run(args) -> int:
    from runtime.local.runtime_host import start_runtime
    from runtime.local.stack import wait_for_signal

    cfg = _config(args)
    _err(f"starting the runtime for {', '.join(cfg.customer_codes)} "
         f"({'joining ' + args.address if args.address else 'local Ray'})")
    rt = start_runtime(cfg, address=args.address, concurrency=args.concurrency, namespace=args.namespace)
    if rt.pending:
        _err(f"NOT started (supervision keeps trying): {', '.join(rt.pending)}")
    print(f"ready runtime customers={','.join(cfg.customer_codes)} namespace={rt.namespace}", flush=True)
    wait_for_signal()
    _err("draining: no new messages; finishing or releasing the ones in flight")
    rt.shutdown(timeout=args.drain_timeout)
    _err("stopped")
    return 0


def _ops(cfg):
    from runtime.adapters.aws import AwsClients
    from runtime.adapters.s3 import S3ObjectStore
    from runtime.adapters.sqs import SqsQueue

    clients = AwsClients(cfg.region, cfg.aws_endpoint_url)

    def queue(name):
        return SqsQueue(clients, name)
    return S3ObjectStore(clients, cfg.bucket), queue


def _customers(cfg, wanted) -> list[str]:
    if not wanted:
        return list(cfg.customer_codes)
    unknown = [c for c in wanted if c not in cfg.customer_codes]
    if unknown:
        raise InvalidInput(f"--customer: unknown customer(s) {', '.join(unknown)} "
                           f"(configured: {', '.join(cfg.customer_codes)})")
    return list(wanted)


def cmd_dlq_redrive(args) -> int:
    from runtime.services.redrive import redrive

    cfg = _config(args)
    _, queue = _ops(cfg)
    total = 0
    for code in _customers(cfg, args.customer):
        c = cfg.customer(code)
        moved = redrive(queue(c.dlq_name), queue(c.queue_name),
                        progress=lambda n, code=code: _err(f"  {code}: {n} moved ..."))
        total += moved
        _out(f"{code}: {moved} message(s) moved from {c.dlq_name} to {c.queue_name}")
    _err(f"re-driven: {total} message(s)")
    return 0


def cmd_orphans(args) -> int:
    from runtime.services.orphans import OrphanReconciler

    cfg = _config(args)
    store, queue = _ops(cfg)
    wanted = _customers(cfg, args.customer)
    rec = OrphanReconciler(cfg, store, {}, threshold_s=args.older_than * 60)
    found = [o for o in rec.scan() if o.customer in wanted]
    if args.json:
        _out(json.dumps([o.to_json() for o in found], indent=2))
        return 0
    if not found:
        _err(f"no triggers older than {args.older_than:g} minute(s)")
        return 0
    _out(f"{'CUSTOMER':<14} {'AGE':>8} {'STATE':<15} {'WAKEUPS':>7} {'PENDING':<12} TRIGGER")
    for o in found:
        _out(f"{o.customer:<14} {o.age_s / 60:>7.1f}m {o.state:<15} {o.wakeups:>7} "
             f"{','.join(map(str, o.pending)) or '-':<12} {o.key}")
    return 0


def cmd_rejected_list(args) -> int:
    from runtime.services.redrive import list_rejected

    cfg = _config(args)
    store, _ = _ops(cfg)
    entries = list_rejected(store, _customers(cfg, args.customer))
    if args.json:
        _out(json.dumps([e.to_json() for e in entries], indent=2))
        return 0
    if not entries:
        _err("nothing was rejected")
    for e in entries:
        replayed = f" (replayed {e.replayed_at})" if e.replayed_at else ""
        _out(f"{e.rejected_at}  {e.customer:<12} {e.key}\n    {e.input_key or '(queue message)'}: {e.reason}{replayed}")
    return 0


def cmd_rejected_replay(args) -> int:
    from runtime.services.redrive import replay_rejected

    cfg = _config(args)
    store, queue = _ops(cfg)
    queues = {c.code: queue(c.queue_name) for c in cfg.customers}
    _out(replay_rejected(cfg, store, queues, args.key))
    return 0


def cmd_status(args) -> int:
    from actors.observe import gather  # imports Ray only once ray_connection connects
    from runtime.domain.alerts import load_alerts
    from runtime.local.runtime_host import ray_connection
    from runtime.services.status import render, to_json

    cfg = _config(args)
    alerts = load_alerts(args.alerts)
    st = gather(cfg, alerts, namespace=args.namespace,
                connect=lambda: ray_connection(args.address, args.namespace))
    if args.json:
        _out(json.dumps(to_json(st), indent=2))
    else:
        _out(render(st))
    return 1 if st.critical else 0


def cmd_demo(args) -> int:
    from runtime.local.demo import run_demo

    return run_demo(_config(args), actor=actor_of(args), keep_running=args.keep_running)


# ---------------------------------------------------------------------------------------------
# parser


def _customer_filter(p: argparse.ArgumentParser) -> None:
    p.add_argument("--customer", metavar="C", action="append", help="only this customer (repeatable)")


def _allow_past(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-past", action="store_true",
                   help="accept a window that started already (a change recorded after the fact)")


def _common(p: argparse.ArgumentParser, *, acting: bool = False) -> None:
    p.add_argument("--config", metavar="F", help="configuration file (default: $TTR_CONFIG, else configs/local.yaml)")
    if acting:
        p.add_argument("--as", dest="as_user", metavar="USER",
                       help="who is acting (default: $TTR_ACTOR, else the OS user)")


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="ttr", formatter_class=fmt, epilog=EPILOG,
        description="Transient Trigger Runtime: multi-customer change notifications on Ray.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    change = sub.add_parser("change", help="draft, submit and move changes through their lifecycle",
                            description="Write changes: the archive first, then one trigger per customer.",
                            formatter_class=fmt, epilog=EPILOG)
    csub = change.add_subparsers(dest="change_command", metavar="ACTION", required=True)

    p = csub.add_parser("draft", help="save drafts/{id}.json and print the id", formatter_class=fmt)
    p.add_argument("file", metavar="FILE", help="JSON or YAML with the change's fields ('-' for stdin)")
    _common(p, acting=True)
    p.set_defaults(func=cmd_change_draft)

    p = csub.add_parser("submit", help="submit a new change (prints its changeId)", formatter_class=fmt,
                        description="Submit a change: writes archive/{id}.json (create-only), then "
                                    "customers/{code}/{id}.json for each customer.\n"
                                    "Required fields: title, customers, schedule{implementationStart, "
                                    "implementationEnd, timezone}.")
    p.add_argument("file", metavar="FILE", nargs="?", help="JSON or YAML with the change's fields ('-' for stdin)")
    p.add_argument("--draft", metavar="ID", help="submit a saved draft instead of a file")
    _allow_past(p)
    _common(p, acting=True)
    p.set_defaults(func=cmd_change_submit)

    for action, verb, help_ in (("approve", "approved", "approve a submitted change"),
                                ("complete", "completed", "mark an approved change completed"),
                                ("cancel", "cancelled", "cancel a submitted or approved change")):
        p = csub.add_parser(action, help=help_, formatter_class=fmt)
        p.add_argument("id", metavar="ID", help="the changeId")
        p.add_argument("--reason", help="a note recorded with the transition")
        p.add_argument("--expect-version", type=int, metavar="N",
                       help="refuse (exit 3) unless the archive is at version N")
        if action == "complete":
            p.add_argument("--before-start", action="store_true",
                           help="complete although the window has not started yet (exit 2 without it)")
        _common(p, acting=True)
        p.set_defaults(func=_transition(action, verb))

    p = csub.add_parser("reschedule", help="move a submitted or approved change", formatter_class=fmt)
    p.add_argument("id", metavar="ID", help="the changeId")
    p.add_argument("--start", required=True, metavar="T", help="new implementationStart (RFC 3339 with offset)")
    p.add_argument("--end", required=True, metavar="T", help="new implementationEnd (RFC 3339 with offset)")
    p.add_argument("--timezone", metavar="TZ", help="new IANA time zone (default: unchanged)")
    p.add_argument("--reason", help="a note recorded with the transition")
    p.add_argument("--expect-version", type=int, metavar="N", help="refuse (exit 3) unless at version N")
    _allow_past(p)
    _common(p, acting=True)
    p.set_defaults(func=_transition("reschedule", "rescheduled"))

    p = csub.add_parser("update", help="change the content, schedule or customers of a submitted change",
                        formatter_class=fmt)
    p.add_argument("id", metavar="ID", help="the changeId")
    p.add_argument("file", metavar="FILE", help="JSON or YAML with the fields to change ('-' for stdin)")
    p.add_argument("--reason", help="a note recorded with the transition")
    p.add_argument("--expect-version", type=int, metavar="N", help="refuse (exit 3) unless at version N")
    _allow_past(p)
    _common(p, acting=True)
    p.set_defaults(func=_transition("update", "updated"))

    p = csub.add_parser("request-changes", formatter_class=fmt,
                        help="send a submitted change back to its submitter with a comment (tells nobody outside)")
    p.add_argument("id", metavar="ID", help="the changeId")
    p.add_argument("--comment", required=True, help="what should change (required)")
    p.add_argument("--expect-version", type=int, metavar="N", help="refuse (exit 3) unless at version N")
    _common(p, acting=True)
    p.set_defaults(func=cmd_change_review("changes_requested"))

    p = csub.add_parser("comment", help="comment on a change (kept in its history; tells nobody outside)",
                        formatter_class=fmt)
    p.add_argument("id", metavar="ID", help="the changeId")
    p.add_argument("--comment", required=True, help="the comment")
    _common(p, acting=True)
    p.set_defaults(func=cmd_change_review("comment"))

    p = csub.add_parser("example", help="print a sample change (YAML) with a window N days from today",
                        formatter_class=fmt)
    p.add_argument("--days", type=int, default=7, metavar="N", help="days from today (default 7)")
    p.set_defaults(func=cmd_change_example)

    p = csub.add_parser("show", help="print the archive JSON of a change", formatter_class=fmt)
    p.add_argument("id", metavar="ID", help="the changeId")
    _common(p)
    p.set_defaults(func=cmd_change_show)

    p = csub.add_parser("view", help="the change for people: window, meeting, who was told and who not, history",
                        formatter_class=fmt)
    p.add_argument("id", metavar="ID", help="the changeId")
    _common(p)
    p.set_defaults(func=cmd_change_view)

    p = csub.add_parser("list", help="list changes", formatter_class=fmt)
    p.add_argument("--status", choices=("submitted", "approved", "completed", "cancelled"))
    p.add_argument("--customer", metavar="C", help="only changes for this customer code")
    p.add_argument("--json", action="store_true", help="JSON instead of a table")
    _common(p)
    p.set_defaults(func=cmd_change_list)

    p = csub.add_parser("retrigger", help="write the triggers of a change again (safe: processing is idempotent)",
                        formatter_class=fmt)
    p.add_argument("id", metavar="ID", help="the changeId")
    p.add_argument("--customer", metavar="C", action="append",
                   help="only this customer (repeatable; default: every customer on the change)")
    _common(p)
    p.set_defaults(func=cmd_change_retrigger)

    local = sub.add_parser("local", help="the embedded stack (emulators, and the runtime)", formatter_class=fmt)
    lsub = local.add_subparsers(dest="local_command", metavar="ACTION", required=True)
    p = lsub.add_parser("up", help="start and bootstrap the emulators (and the runtime); Ctrl-C stops",
                        formatter_class=fmt,
                        description="Start moto's server on local.aws_port, bootstrap the bucket, queues, "
                                    "notifications and each customer's SES, then print a line starting "
                                    "with 'ready'. Runs in the foreground; SIGINT/SIGTERM stop it.")
    p.add_argument("--emulators-only", action="store_true",
                   help="start the emulators without the runtime (run `ttr run` beside them)")
    _common(p)
    p.set_defaults(func=cmd_local_up)

    p = sub.add_parser("run", help="run the runtime (a CustomerActor per tenant, the archive, meeting and "
                                   "orphan actors) until signalled",
                       formatter_class=fmt,
                       description="Run the runtime against whatever the config points at. Without --address "
                                   "(or $RAY_ADDRESS) it starts its own local Ray; --address auto joins the "
                                   "cluster on this node. SIGTERM/SIGINT drain it: stop polling, finish or "
                                   "release in-flight messages, exit 0.")
    p.add_argument("--address", metavar="ADDR", help="Ray cluster address ('auto' joins the local node's cluster)")
    p.add_argument("--namespace", default="ttr", metavar="NS",
                   help="Ray namespace of the actors (default ttr; one runtime per namespace)")
    p.add_argument("--concurrency", type=int, default=8, metavar="N",
                   help="messages processed at once per tenant (default 8)")
    p.add_argument("--drain-timeout", type=float, default=30.0, metavar="S",
                   help="seconds to let in-flight work finish on shutdown (default 30)")
    _common(p)
    p.set_defaults(func=cmd_run)

    dlq = sub.add_parser("dlq", help="dead-letter queues", formatter_class=fmt)
    dsub = dlq.add_subparsers(dest="dlq_command", metavar="ACTION", required=True)
    p = dsub.add_parser("redrive", help="move every DLQ message back to its tenant queue", formatter_class=fmt,
                        description="Moves messages from each tenant's DLQ back to its queue, to be processed "
                                    "again (safe: processing is idempotent). Fix the cause first.")
    _customer_filter(p)
    _common(p)
    p.set_defaults(func=cmd_dlq_redrive)

    p = sub.add_parser("orphans", help="stale triggers, with their age and pending transitions",
                       formatter_class=fmt)
    p.add_argument("--older-than", type=float, default=10.0, metavar="MIN",
                   help="minutes a trigger must have waited (default 10)")
    _customer_filter(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _common(p)
    p.set_defaults(func=cmd_orphans)

    rej = sub.add_parser("rejected", help="refused input kept under rejected/", formatter_class=fmt)
    rsub = rej.add_subparsers(dest="rejected_command", metavar="ACTION", required=True)
    p = rsub.add_parser("list", help="what was refused, and why", formatter_class=fmt)
    _customer_filter(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _common(p)
    p.set_defaults(func=cmd_rejected_list)
    p = rsub.add_parser("replay", help="feed refused input back once the cause is fixed", formatter_class=fmt)
    p.add_argument("key", metavar="KEY", help="a rejected/ key from `ttr rejected list`")
    _common(p)
    p.set_defaults(func=cmd_rejected_replay)

    p = sub.add_parser("status", help="health, queues, triggers and the alerts that fire (exit 1 on critical)",
                       formatter_class=fmt,
                       description="Reads queues, DLQs and triggers from AWS directly and the actors' health "
                                   "from the running cluster (--address, $RAY_ADDRESS, the address `ttr local "
                                   "up` wrote under .ttr/, else the cluster on this node). Exits 0 when "
                                   "healthy, 1 when any critical alert fires.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--address", metavar="ADDR", help="Ray cluster address")
    p.add_argument("--namespace", default="ttr", metavar="NS", help="Ray namespace of the runtime (default ttr)")
    p.add_argument("--alerts", metavar="F", help="alert rules (default configs/alerts.yaml)")
    _common(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("demo", help="run the sample scenario on the embedded stack and print a report",
                       formatter_class=fmt)
    p.add_argument("--keep-running", action="store_true",
                   help="after the report, keep the stack and the runtime up with the web portal (Ctrl-C "
                        "stops), on the configured ports and Ray namespace, so other ttr commands work against it")
    _common(p, acting=True)
    p.set_defaults(func=cmd_demo)

    # Command groups that live with their capability (web portal, operations, provisioning).
    # Each module is light: argparse registration only, heavy imports inside its handlers.
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub, _common, fmt)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        if args.command in SELF_TELEMETRY:
            return func(args)
        from runtime.telemetry import command_telemetry  # off unless an exporter is configured

        with command_telemetry(f"cli-{args.command}"):
            return func(args)
    except TtrError as exc:
        _err(f"ttr: error: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        _err("ttr: interrupted")
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
