"""``ttr demo``: the sample scenario on the embedded stack, with a readable report.

Starts the emulators and the runtime on a local Ray, submits and approves the sample change
(its window a week from today) for two customers, waits (with a deadline) until every customer
has processed every transition, then prints what was sent, to whom, and the archive's
modifications. Alone it uses free ports and its own Ray namespace; ``--keep-running`` makes it
the local stack (see ``run_demo``).
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from pathlib import Path

from runtime.domain.config import DEFAULT_CONFIG_PATH, Config
from runtime.services.documents import example_change

DEADLINE = 120.0


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _sample_change(cfg: Config) -> dict:
    content = example_change(7)  # the window is a week from today, whenever the demo runs
    content["customers"] = list(cfg.customer_codes[:2])
    return content


def wait_processed(lc, change_id: str, deadline: float) -> dict:
    """Poll the archive until every (customer, transition) has its processed record."""
    from runtime.domain.processing import plan

    last = None
    while time.monotonic() < deadline:
        change = lc.show(change_id)
        pending = {c: [s.seq for s in plan(change, c).steps] for c in change["customers"]}
        pending = {c: p for c, p in pending.items() if p}
        if not pending:
            return change
        if pending != last:
            _log(f"  waiting for: {', '.join(f'{c} seq {p}' for c, p in pending.items())}")
            last = pending
        time.sleep(0.25)
    raise TimeoutError(f"not processed within the deadline; still pending: {last}")


def run_demo(cfg: Config, *, actor: str, keep_running: bool = False) -> int:
    """The demo. Alone it takes free ports and its own Ray namespace (it never collides with a
    `ttr local up`); with ``keep_running`` it is the local stack: the configured ports, the
    namespace `ttr local up` uses and .ttr/ray-address, so `ttr change list` and `ttr status`
    work next, and the emails' portal links point where its portal listens."""
    from runtime.adapters.aws import AwsClients
    from runtime.adapters.s3 import S3ObjectStore
    from runtime.local.aws_emulator import AwsEmulator, require_moto
    from runtime.local.runtime_host import default_telemetry_files, start_runtime
    from runtime.local.stack import (
        LocalStack,
        clear_ray_address,
        start_local_portal,
        warn_unreachable,
        with_portal_links,
        write_ray_address,
    )
    from runtime.services.lifecycle import Lifecycle
    from runtime.telemetry import setup_telemetry, shutdown_telemetry

    require_moto()
    traces, metrics_file = default_telemetry_files("demo")
    setup_telemetry("demo")
    started = time.monotonic()
    if keep_running:
        ports, namespace = {"aws_port": cfg.local.aws_port, "graph_port": cfg.local.graph_port}, LOCAL_NAMESPACE
    else:
        ports, namespace = {"aws_port": 0, "graph_port": 0}, "ttr-demo"
    stack = LocalStack(cfg, **ports)
    try:
        stack.start()
    except OSError as exc:
        _log(f"ttr demo: cannot start the emulators on the configured ports ({exc}); is `ttr local up` "
             "or another demo running? Stop it, or run `ttr demo` without --keep-running (free ports).")
        return 1
    portal = None
    try:
        if keep_running:
            warn_unreachable(cfg, stack)
        cfg = stack.cfg
        if keep_running:
            portal = start_local_portal(cfg, cfg.local.web_port)
            cfg = with_portal_links(cfg, portal.url)  # the emails link where this portal listens
        _log("starting the runtime on a local Ray ...")
        rt = start_runtime(cfg, namespace=namespace, poll_wait=2)
        try:
            lc = Lifecycle(S3ObjectStore(AwsClients(cfg.region, cfg.aws_endpoint_url), cfg.bucket),
                           cfg.customer_codes)
            sub = lc.submit(_sample_change(cfg), actor=actor)
            change_id = sub.change_id
            _log(f"submitted {change_id} for {', '.join(sub.change['customers'])}")
            lc.transition(change_id, "approve", actor="demo-approver")
            _log(f"approved {change_id}; waiting for every customer to process both transitions")
            try:
                change = wait_processed(lc, change_id, time.monotonic() + DEADLINE)
            except TimeoutError as exc:
                _log(f"ttr demo: {exc}")
                for code, h in rt.health().items():
                    _log(f"  {code}: {h}")
                return 1
            # let the last acks land, so the counters below are final
            settle = time.monotonic() + 10
            while any(h.get("in_flight") for h in rt.health().values()) and time.monotonic() < settle:
                time.sleep(0.2)
            health = rt.health()
            emails = [m for m in AwsEmulator.sent_emails() if change_id in m.body]
            if keep_running:
                _report(cfg, change, emails, health, time.monotonic() - started)
                _telemetry_lines(traces, metrics_file)
                write_ray_address()
                try:
                    _keep_running(cfg, portal.url, change_id)
                finally:
                    clear_ray_address()
                return 0
        finally:
            rt.shutdown(timeout=10)
    finally:
        if portal is not None:
            portal.stop()
        stack.stop()
    shutdown_telemetry()
    _report(cfg, change, emails, health, time.monotonic() - started)
    _telemetry_lines(traces, metrics_file)
    return 0


LOCAL_NAMESPACE = "ttr"  # the namespace `ttr local up` and `ttr run` use, where `ttr status` looks


def _telemetry_lines(traces: str, metrics_file: str) -> None:
    print(f"\n== Telemetry\n   traces  (JSON lines, one span each, every process): {traces}\n"
          f"   metrics (JSON lines, OpenTelemetry metrics data):   {metrics_file}", flush=True)


def _keep_running(cfg: Config, portal_url: str, change_id: str) -> None:
    """--keep-running: the stack stays up with the portal, until Ctrl-C."""
    from runtime.local.stack import wait_for_signal

    default = Path(DEFAULT_CONFIG_PATH).resolve()
    source = f" --config {cfg.source}" if cfg.source and Path(cfg.source).resolve() != default else ""
    print(f"\n== Still running (Ctrl-C stops everything)\n"
          f"   portal: {portal_url}/changes/{change_id}\n"
          f"   emails: every message SES sent, under ses.Message of {cfg.aws_endpoint_url}/moto-api/data.json\n"
          f"   next, in another shell:\n"
          f"     ttr change list{source}\n"
          f"     ttr status{source}\n"
          f"ready portal={portal_url} aws={cfg.aws_endpoint_url} namespace={LOCAL_NAMESPACE}", flush=True)
    wait_for_signal()


def _report(cfg: Config, change: dict, emails, health: dict, elapsed: float) -> None:
    accounts = {c.account_id: c.code for c in cfg.customers}
    print(f"\n== Change {change['changeId']}")
    print(f"   {change['title']}")
    sched = change["schedule"]
    print(f"   {change['status']}, version {change['version']}; "
          f"{sched['implementationStart']} .. {sched['implementationEnd']} ({sched['timezone']})")

    print("\n== Emails, per customer (sent from the customer's own SES account, one recipient each)")
    by: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for m in emails:
        by[accounts.get(m.account, m.account)][m.subject].extend(m.to)
    for code in change["customers"]:
        c = cfg.customer(code)
        print(f"   {code} ({c.name}, account {c.account_id}, from {cfg.sender_of(c)})")
        for rec in (m for m in change["modifications"] if m["type"] == "processed" and m["customer"] == code):
            print(f"     seq {rec['transition']} {rec['transitionType']:<10} topic {rec['topic']:<13} "
                  f"{rec['emailsSent']} sent, {rec['emailsFailed']} failed")
        for subject, to in by.get(code, {}).items():
            print(f"       {subject!r} -> {', '.join(sorted(to))}")
    if not emails:
        print("   (no emails were sent)")

    print("\n== Meeting")
    if (change.get("meeting") or {}).get("required"):
        md = change.get("meetingMetadata")
        if md:
            print(f"   {md['subject']}: {md['startTime']} .. {md['endTime']}, {md['attendeeCount']} attendee(s)")
            print(f"   join: {md['joinUrl']}")
        else:
            print("   required, not created: the MeetingCoordinator is not part of this build yet")
    else:
        print("   not required")

    print("\n== Archive modifications")
    for m in change["modifications"]:
        extra = ""
        if m["type"] == "processed":
            extra = f"{m['customer']} handled seq {m['transition']} ({m['topic']}, {m['emailsSent']} sent)"
        elif m["type"].startswith("meeting_"):
            extra = f"event {m.get('meetingId', '')[:24]}... {m.get('reason', '')}".rstrip()
        print(f"   {str(m.get('seq', '')):>3} {m['type']:<17} {m['actor']:<14} {m['timestamp']}  {extra}")

    print("\n== Runtime")
    for code, h in health.items():
        print(f"   {code}: received {h.get('received', '?')}, acked {h.get('acked', '?')}, "
              f"emails {h.get('emails_sent', '?')}, AssumeRole calls {h.get('assume_role_calls', '?')}")
    print(f"\ndone in {elapsed:.1f}s")
