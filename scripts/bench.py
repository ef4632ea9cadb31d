#!/usr/bin/env python3
"""Benchmark: N changes x M tenants through the local stack (moto server + a local Ray runtime).

Each run first starts M trivial Ray actors on the same Ray (the reference: Ray's own floor on
this machine, measured in the same run), then the runtime with M tenants, and prints each
figure beside its reference:
- ready time (every tenant accepts work) vs the M trivial actors' start;
- USS per CustomerActor and for the runtime's actors vs a trivial actor's USS;
- idle CPU per tenant (over --idle-seconds) vs a trivial actor's;
- a broadcast change (every tenant, with a meeting, submitted then approved): time until every
  customer processed both transitions, and the number of Teams meetings (must be 1), beside its
  bare call sequence: the AWS and Graph calls the runtime made for it, replayed right after on the
  same emulators by a separate process with plain clients (runtime/local/replay.py);
- then N changes: throughput, latency p50/p99, S3+SQS calls per (change, customer).
Several runs give medians; the machine is shared and noisy, so compare ratios to the reference.

    .venv/bin/python scripts/bench.py --changes 40 --tenants 4 --runs 3
    .venv/bin/python scripts/bench.py --tenants 100 --changes 2 --runs 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # single machine: Ray on loopback
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

# S3 and SQS operations that count against the happy-path budget (sends and contact reads aside).
BUDGET_SERVICES = ("s3.", "sqs.")


def bench_config(tenants: int, recipients: int) -> dict:
    customers, contacts = [], {}
    for i in range(tenants):
        code = f"t{i:02d}"
        customers.append({"code": code, "name": f"Tenant {i}", "max_send_rate": 1000,
                          "ses_role_arn": f"arn:aws:iam::{300000000000 + i:012d}:role/ttr-ses-sender",
                          "sender": f"notifications@{code}.example.com"})
        contacts[code] = [{"email": f"user{j}@{code}.example.com", "topics": {"aws-approval": "OPT_IN", "aws-calendar": "OPT_IN"}}
                          for j in range(recipients)]
    return {"bucket": f"ttr-bench-{uuid.uuid4().hex[:8]}", "region": "us-east-1",
            "email": {"sender": "notifications@example.com", "portal_base_url": "http://127.0.0.1:8080"},
            "graph": {"organizer": "calendar@example.com"},
            "customers": customers, "local": {"contacts": contacts}}


def ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def _uss(pid: int) -> int:
    import psutil

    try:
        return psutil.Process(pid).memory_full_info().uss
    except psutil.Error:
        return 0


def _cpu_seconds(pids: list[int]) -> dict[int, float]:
    import psutil

    out = {}
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            out[pid] = t.user + t.system
        except psutil.Error:
            pass
    return out


def _idle_cpu_pct(pids: list[int], seconds: float) -> list[float]:
    """% of one core each process used while nothing was asked of it."""
    before = _cpu_seconds(pids)
    time.sleep(seconds)
    after = _cpu_seconds(pids)
    return [100 * (after[p] - before[p]) / seconds for p in pids if p in before and p in after]


def bytecode_cached() -> dict[str, bool]:
    """Whether the modules every Ray worker imports have compiled bytecode on disk. Without it
    (PYTHONDONTWRITEBYTECODE and a venv installed without compiling: `make venv` compiles it)
    each worker process compiles them again, ~0.8 s of CPU per tenant on this machine, and every
    start-up figure here measures the compiler as much as the runtime."""
    import importlib.util

    out = {}
    for name in ("ray._private.worker", "botocore.client", "pydantic.main", "runtime.services.handler"):
        origin = importlib.util.find_spec(name).origin
        out[name.split(".")[0]] = Path(importlib.util.cache_from_source(origin)).exists()
    return out


def _wait_exited(pids: list[int], timeout: float) -> None:
    """Until every process in ``pids`` has exited (or ``timeout``): 100 worker processes shutting
    down take CPU, and the runtime's start must not be measured against their exit."""
    import psutil

    deadline = time.monotonic() + timeout
    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass
    while procs and time.monotonic() < deadline:
        _gone, procs = psutil.wait_procs(procs, timeout=min(1.0, max(0.0, deadline - time.monotonic())))
    if procs:
        print(f"  {len(procs)} reference actor process(es) still running after {timeout:g}s", file=sys.stderr)


def reference(n: int, idle_seconds: float, cfg) -> dict:
    """n trivial Ray actors with the tenants' reservation: start time, USS, idle CPU."""
    import ray

    from actors.placement import tenant_options

    @ray.remote
    class Trivial:
        def pid(self) -> int:
            return os.getpid()

    t0 = time.monotonic()
    actors = [Trivial.options(**tenant_options(cfg)).remote() for _ in range(n)]
    pids = ray.get([a.pid.remote() for a in actors], timeout=900)
    ready = time.monotonic() - t0
    start_cpu = _cpu_seconds(pids)   # what each process spent to become ready
    time.sleep(2)   # let start-up settle before measuring idle
    idle = _idle_cpu_pct(pids, idle_seconds)
    uss = [_uss(p) for p in pids]
    for a in actors:
        a.__ray_terminate__.remote()
    _wait_exited(pids, timeout=120)   # their shutdown is not the runtime's start-up CPU
    return {"ready_s": ready, "uss_mb": statistics.median(uss) / 2**20, "idle_cpu_pct": statistics.median(idle),
            "start_cpu_s": statistics.median(start_cpu.values())}


def broadcast(stack, lc, codes: list[str], timeout: float) -> dict:
    """One change for every tenant, with a meeting: submit, approve, until all processed."""
    from runtime.domain.processing import plan
    from runtime.domain.rules import window_from_today

    title = f"Broadcast {uuid.uuid4().hex[:6]}"
    content = {"title": title, "customers": codes, "meeting": {"required": True},
               "schedule": window_from_today(8, hours=1, tz="UTC")}   # never a stale date
    from runtime.adapters.aws import call_counts
    from runtime.local.replay import call_delta

    graph_before = len(stack.graph.calls())
    calls_before = call_counts()
    t0 = time.monotonic()
    submitted = lc.submit(content, actor="bench")
    cid = submitted.change_id
    approved = lc.transition(cid, "approve", actor="bench-approver")
    submitter = call_delta(calls_before, call_counts())   # this process's calls: archive and triggers
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ch = lc.show(cid)
        if all(not plan(ch, c).steps for c in codes):
            break
        time.sleep(0.2)
    else:
        raise SystemExit(f"bench: the broadcast change was not processed within {timeout}s")
    elapsed = time.monotonic() - t0
    meetings = [e for e in stack.graph.events() if title in (e.get("subject") or "")]
    return {"broadcast_s": elapsed, "broadcast_meetings": len(meetings),
            "_broadcast": {"change_id": cid, "title": title, "submitter": submitter, "meeting": meetings[:1],
                           "triggers": len(submitted.triggers_written) + len(approved.triggers_written),
                           "graph_calls": stack.graph.calls()[graph_before:]}}


def runtime_calls(rt) -> dict:
    """Every runtime process's ``aws_calls`` now: each tenant, the ArchiveActor, the MeetingCoordinator."""
    import ray

    return {"tenants": {c: dict(h["aws_calls"]) for c, h in rt.health().items() if h.get("ok")},
            "services": [dict(ray.get(a.health.remote()).aws_calls) for a in (rt.archive, rt.meetings)]}


def bare_call_sequence(stack, cfg, before: dict, after: dict, broadcast_info: dict, concurrency: int) -> dict:
    """The broadcast's calls replayed on the same emulators by a separate process (runtime.local.replay)."""
    import subprocess

    from runtime.adapters.aws import AwsClients
    from runtime.domain.model import Trigger, archive_key
    from runtime.local.replay import aws_calls_of, build_plan, call_delta, replay_width

    tenants = {c: call_delta(before["tenants"].get(c, {}), calls) for c, calls in after["tenants"].items()}
    services: Counter[str] = Counter()
    for b, a in zip(before["services"], after["services"]):
        services.update(call_delta(b, a))
    cid = broadcast_info["change_id"]
    s3 = AwsClients(cfg.region, cfg.aws_endpoint_url).client("s3")
    archive_bytes = s3.head_object(Bucket=cfg.bucket, Key=archive_key(cid))["ContentLength"]
    code0 = cfg.customer_codes[0]
    trigger_bytes = len(json.dumps(Trigger(cid, code0, 2, "approve", "2026-11-30T00:00:00Z").to_json(),
                                   indent=2).encode())
    by_account = {c.ses_role_arn.split(":")[4]: c.code for c in cfg.customers}
    emails: dict[str, list[dict]] = {}
    for m in stack.aws.sent_emails():
        if broadcast_info["title"] in m.subject and m.account in by_account:
            emails.setdefault(by_account[m.account], []).append(
                {"to": m.to[0] if m.to else "", "subject": m.subject, "html": m.body, "raw": m.raw})
    customers = {c.code: {"role_arn": c.ses_role_arn, "external_id": c.external_id, "sender": c.sender,
                          "region": cfg.region_of(c), "contact_list": c.contact_list} for c in cfg.customers}
    meeting = broadcast_info["meeting"]
    graph = None
    if meeting:
        graph = {"base_url": cfg.graph.base_url, "event": meeting[0],
                 "calls": [c for c in broadcast_info["graph_calls"] if 200 <= int(c.get("status") or 0) < 300]}
    plan = build_plan(endpoint=cfg.aws_endpoint_url, region=cfg.region,
                      width=replay_width(len(tenants), concurrency), archive_bytes=archive_bytes,
                      trigger_bytes=trigger_bytes, submitter=broadcast_info["submitter"],
                      triggers=broadcast_info["triggers"], tenants=tenants, services=services,
                      customers=customers, emails=emails, graph=graph)
    proc = subprocess.run([sys.executable, "-m", "runtime.local.replay"], input=json.dumps(plan), text=True,
                          capture_output=True, cwd=ROOT, timeout=900)
    if proc.returncode != 0:
        raise SystemExit(f"bench: the bare call sequence failed ({proc.returncode}): {proc.stderr[-2000:]}")
    result = json.loads(proc.stdout)
    result["runtime_calls"] = aws_calls_of(plan)
    # tenants whose SendEmail calls resent the broadcast's own emails (the others send a short one)
    result["tenants_with_their_emails"] = sum(1 for c in tenants if emails.get(c))
    return result


def run_once(args) -> dict:
    import ray

    from actors.supervisor import Runtime, init_ray
    from runtime.adapters.aws import AwsClients
    from runtime.adapters.s3 import S3ObjectStore
    from runtime.domain.config import parse_config
    from runtime.domain.processing import plan
    from runtime.domain.rules import window_from_today
    from runtime.local.stack import LocalStack
    from runtime.services.lifecycle import Lifecycle

    cfg = parse_config(bench_config(args.tenants, args.recipients), "<bench>")
    with LocalStack(cfg, aws_port=0, graph_port=0) as stack:
        cfg = stack.cfg
        init_ray(None, namespace="ttr-bench", cfg=cfg)
        ref = reference(args.tenants, args.idle_seconds, cfg)
        print(f"  reference: {args.tenants} trivial actors ready in {ref['ready_s']:.1f}s", file=sys.stderr, flush=True)
        t_start = time.monotonic()
        rt = Runtime(cfg, namespace=f"ttr-bench-{uuid.uuid4().hex[:6]}", concurrency=args.concurrency,
                     poll_wait=20, fit_wait=120).start()   # the reference actors' resources free up
        ready_s = time.monotonic() - t_start
        if rt.pending:   # not started within runtime.start_timeout_s: supervision keeps trying them
            print(f"  NOT ready after {ready_s:.0f}s: {len(rt.pending)} tenant(s)", file=sys.stderr, flush=True)
        rt.supervise_in_background()
        print(f"  runtime: {args.tenants} tenants ready in {ready_s:.1f}s", file=sys.stderr, flush=True)
        try:
            time.sleep(2)
            healths = [h for h in rt.health().values() if h.get("ok")]
            tenant_pids = [h["pid"] for h in healths]
            start_cpu = _cpu_seconds(tenant_pids)   # CPU each tenant process spent to become ready
            wall0 = time.time() - (time.monotonic() - t_start)   # t_start on the wall clock
            phases = {  # medians over the tenants: where start-up went
                "spawn_s": statistics.median(h["spawned_at"] - wall0 for h in healths),
                # a worker Ray had started before (an idle one in its pool) counts from t_start
                "python_and_ray_s": statistics.median(h["init_started_at"] - max(h["spawned_at"], wall0)
                                                      for h in healths),
                "constructor_s": statistics.median(h["started_at"] - h["init_started_at"] for h in healths),
                "last_constructed_s": max(h["started_at"] - wall0 for h in healths),
                # the same in CPU seconds of the tenant's process (all its threads)
                "cpu_before_constructor_s": statistics.median(h["cpu_at_init"] for h in healths),
                "cpu_constructor_s": statistics.median(h["cpu_at_constructed"] - h["cpu_at_init"] for h in healths)}
            print("  tenant start-up (median): process started at {spawn_s:.1f}s, Python + Ray until the "
                  "constructor {python_and_ray_s:.1f}s, constructor {constructor_s:.2f}s; last constructed "
                  "at {last_constructed_s:.1f}s; CPU before the constructor {cpu_before_constructor_s:.2f}s, "
                  "in it {cpu_constructor_s:.2f}s".format(**phases), file=sys.stderr, flush=True)
            scale_pending = len(rt.pending)
            idle = _idle_cpu_pct(tenant_pids, args.idle_seconds)
            service_pids = [ray.get(a.health.remote()).pid for a in (rt.archive, rt.meetings, rt.reconciler,
                                                                      rt.renderer)]
            scale = {"ready_s": ready_s, "ref": ref, "idle_cpu_pct": statistics.median(idle),
                     "start_cpu_s": statistics.median(start_cpu.values()),
                     "not_ready": scale_pending, "startup_phases": phases}
            lc = Lifecycle(S3ObjectStore(AwsClients(cfg.region, cfg.aws_endpoint_url), cfg.bucket),
                           cfg.customer_codes)
            calls_before = runtime_calls(rt)
            scale.update(broadcast(stack, lc, list(cfg.customer_codes), args.timeout))
            print(f"  broadcast: {scale['broadcast_s']:.1f}s, {scale['broadcast_meetings']} meeting(s)",
                  file=sys.stderr, flush=True)
            # USS once every tenant has handled work (the broadcast): what a working tenant holds
            tenant_uss = [_uss(p) for p in tenant_pids]
            scale.update(tenant_uss_mb=statistics.median(tenant_uss) / 2**20,
                         stack_uss_mb=(sum(tenant_uss) + sum(_uss(p) for p in service_pids)) / 2**20)
            time.sleep(1.0)   # the broadcast's batched SQS deletes land before the counters are read
            bare = bare_call_sequence(stack, cfg, calls_before, runtime_calls(rt), scale.pop("_broadcast"),
                                      args.concurrency)
            scale.update(broadcast_bare_s=bare["bare_s"], broadcast_bare=bare)
            print(f"  bare call sequence of the broadcast: {bare['bare_s']:.1f}s ({bare['aws_calls']} AWS calls, "
                  f"{bare['graph_calls']} Graph, {bare['width']} threads)", file=sys.stderr, flush=True)
            health0 = rt.health()
            before = {c: h["aws_calls"] for c, h in health0.items()}
            emails_before = sum(h["emails_sent"] for h in health0.values())
            arch_before = ray.get(rt.archive.health.remote()).aws_calls
            codes = list(cfg.customer_codes)
            t0 = time.monotonic()
            ids = []
            for n in range(args.changes):
                content = {"title": f"Bench change {n}", "customers": codes,
                           "schedule": window_from_today(8, hours=1, tz="UTC")}
                ids.append(lc.submit(content, actor="bench").change_id)
            submitted = time.monotonic()
            pending = set(ids)
            deadline = time.monotonic() + args.timeout
            archives = {}
            while pending and time.monotonic() < deadline:
                for cid in list(pending):
                    ch = lc.show(cid)
                    if all(not plan(ch, c).steps for c in codes):
                        archives[cid] = ch
                        pending.discard(cid)
                if pending:
                    time.sleep(0.2)
            elapsed = time.monotonic() - t0
            if pending:
                raise SystemExit(f"bench: {len(pending)} change(s) not processed within {args.timeout}s")
            # let the batched SQS deletes land before reading the counters
            time.sleep(1.0)
            health = rt.health()
            arch_health = ray.get(rt.archive.health.remote())
            arch_after = arch_health.aws_calls
        finally:
            rt.shutdown(timeout=5)

    latencies = []
    for ch in archives.values():
        start = ts(ch["modifications"][0]["timestamp"])
        latencies += [ts(m["timestamp"]) - start for m in ch["modifications"] if m["type"] == "processed"]
    calls: Counter[str] = Counter()
    for code, h in health.items():
        calls.update({k: v - before[code].get(k, 0) for k, v in h["aws_calls"].items()})
    calls.update({k: v - arch_before.get(k, 0) for k, v in arch_after.items()})
    units = args.changes * args.tenants
    return {
        **scale,
        "changes": args.changes, "tenants": args.tenants, "recipients": args.recipients,
        "units": units, "elapsed_s": elapsed, "submit_s": submitted - t0,
        "throughput_units_per_s": units / elapsed if units else 0.0,
        "latency_p50_s": pct(latencies, 50) if latencies else 0.0,
        "latency_p99_s": pct(latencies, 99) if latencies else 0.0,
        "calls_per_unit": {k: v / max(1, units) for k, v in sorted(calls.items()) if v},
        "budget_calls_per_unit": sum(v for k, v in calls.items() if k.startswith(BUDGET_SERVICES)) / max(1, units),
        "assume_role_per_tenant": {c: h["assume_role_calls"] for c, h in health.items()},
        "rss_mb_per_customer_actor": {c: round(h["rss"] / 2**20, 1) for c, h in health.items()},
        "archive_batches": list(arch_health.batches),
        "emails_sent": sum(h["emails_sent"] for h in health.values()) - emails_before,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--changes", type=int, default=40)
    ap.add_argument("--tenants", type=int, default=4)
    ap.add_argument("--recipients", type=int, default=3, help="opted-in contacts per tenant")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--idle-seconds", type=float, default=30.0, help="window of the idle CPU measurement")
    ap.add_argument("--json", action="store_true", help="print the raw results as JSON (Ray's own warnings may "
                    "share stdout: --json-file keeps the JSON apart)")
    ap.add_argument("--json-file", metavar="PATH", help="also write the raw results as JSON to PATH")
    args = ap.parse_args()
    cached = bytecode_cached()
    print("bytecode cached: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in cached.items())
          + ("" if all(cached.values()) else " (start-up figures include compiling them: run `make venv`)"),
          file=sys.stderr, flush=True)
    results = []
    for i in range(args.runs):
        print(f"run {i + 1}/{args.runs}: {args.changes} changes x {args.tenants} tenants ...",
              file=sys.stderr, flush=True)
        results.append(run_once(args))
    if args.json_file:
        Path(args.json_file).write_text(json.dumps(results, indent=2) + "\n")
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    med = lambda key: statistics.median(r[key] for r in results)  # noqa: E731
    r0 = results[-1]
    def ratio(key: str, ref_key: str) -> str:
        v, r = med(key), statistics.median(x["ref"][ref_key] for x in results)
        return f"(trivial Ray actor: {r:.2f}; ratio {v / r:.2f})" if r else "(trivial Ray actor: 0)"

    print(f"\n{args.tenants} tenants, beside {args.tenants} trivial Ray actors in the same run, medians:")
    print(f"  ready                {med('ready_s'):.1f} s {ratio('ready_s', 'ready_s')}")
    print(f"  CPU to start         {med('start_cpu_s'):.2f} s per tenant process {ratio('start_cpu_s', 'start_cpu_s')}")
    print(f"  USS / tenant actor   {med('tenant_uss_mb'):.1f} MB {ratio('tenant_uss_mb', 'uss_mb')}")
    print(f"  USS, runtime actors  {med('stack_uss_mb'):.0f} MB ({args.tenants} tenants + archive, meetings, orphans, renderer)")
    print(f"  idle CPU / tenant    {med('idle_cpu_pct'):.3f} % of a core {ratio('idle_cpu_pct', 'idle_cpu_pct')}")
    bare = med("broadcast_bare_s")
    print(f"  broadcast change     {med('broadcast_s'):.1f} s for {args.tenants} customers, submitted + approved, "
          f"meetings: {[r['broadcast_meetings'] for r in results]} (must be 1) "
          f"(bare call sequence: {bare:.1f} s; ratio {med('broadcast_s') / bare:.2f})")
    b0 = r0["broadcast_bare"]
    print(f"  bare call sequence   the broadcast's {b0['aws_calls']} AWS calls and {b0['graph_calls']} Graph "
          f"call(s) replayed on the same emulators by a separate process, {b0['width']} threads (last run): "
          + ", ".join(f"{k} {v}" for k, v in b0["by_operation"].items()))
    if b0["tenants_with_their_emails"] < args.tenants:
        print(f"                       only {b0['tenants_with_their_emails']} tenant(s) resent the broadcast's own "
              "emails; the others sent a short one")
    if b0["not_replayed"] or b0["errors"]:
        print(f"                       not replayed: {b0['not_replayed'] or 'none'}; failed: {b0['errors'] or 'none'}")
    if not args.changes:
        return 0
    print(f"\n{args.changes} changes x {args.tenants} tenants ({r0['units']} change-customer units, "
          f"{args.recipients} recipients each), {args.runs} run(s), medians:")
    print(f"  throughput           {med('throughput_units_per_s'):.1f} units/s "
          f"(runs: {', '.join(format(r['throughput_units_per_s'], '.1f') for r in results)})")
    print(f"  latency p50 / p99    {med('latency_p50_s'):.2f} s / {med('latency_p99_s'):.2f} s "
          "(archive submit -> processed record)")
    print(f"  S3+SQS calls / unit  {med('budget_calls_per_unit'):.2f} (budget 6; sends and contact reads aside)")
    print("  calls / unit by operation (last run):")
    for k, v in r0["calls_per_unit"].items():
        print(f"    {k:<36} {v:.2f}")
    print(f"  archive requests per write (last writes): {r0['archive_batches'][-30:]}")
    print(f"  AssumeRole / tenant  {r0['assume_role_per_tenant']}")
    rss = sorted(r0["rss_mb_per_customer_actor"].values())
    print(f"  RSS / CustomerActor  median {statistics.median(rss):.1f} MB (min {rss[0]}, max {rss[-1]})")
    print(f"  emails sent          {r0['emails_sent']} (expected {r0['units'] * args.recipients})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
