#!/usr/bin/env python3
"""Benchmark: N changes x M tenants through the local stack (moto server + a local Ray runtime).

Prints end-to-end throughput, trigger-to-processed latency (p50/p99), AWS calls per
(change, customer) by operation, AssumeRole calls per tenant and RSS per CustomerActor.
Several runs give medians; the machine is shared and noisy, so compare medians and ratios.

    .venv/bin/python scripts/bench.py --changes 40 --tenants 4 --runs 3
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
        contacts[code] = [{"email": f"user{j}@{code}.example.com", "topics": {"aws-approval": "OPT_IN"}}
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


def run_once(args) -> dict:
    import ray

    from actors.supervisor import Runtime, init_ray
    from runtime.adapters.aws import AwsClients
    from runtime.adapters.s3 import S3ObjectStore
    from runtime.config import parse_config
    from runtime.lifecycle import Lifecycle
    from runtime.local.stack import LocalStack
    from runtime.processing import plan

    cfg = parse_config(bench_config(args.tenants, args.recipients), "<bench>")
    with LocalStack(cfg, aws_port=0, graph_port=0) as stack:
        cfg = stack.cfg
        init_ray(None, namespace="ttr-bench")
        rt = Runtime(cfg, namespace=f"ttr-bench-{uuid.uuid4().hex[:6]}", concurrency=args.concurrency,
                     poll_wait=5).start()
        try:
            before = {c: h["aws_calls"] for c, h in rt.health().items()}
            arch_before = ray.get(rt.archive.health.remote()).aws_calls
            lc = Lifecycle(S3ObjectStore(AwsClients(cfg.region, cfg.aws_endpoint_url), cfg.bucket),
                           cfg.customer_codes)
            codes = list(cfg.customer_codes)
            t0 = time.monotonic()
            ids = []
            for n in range(args.changes):
                content = {"title": f"Bench change {n}", "customers": codes,
                           "schedule": {"implementationStart": "2026-12-08T02:00:00Z",
                                        "implementationEnd": "2026-12-08T03:00:00Z", "timezone": "UTC"}}
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
            arch_after = ray.get(rt.archive.health.remote()).aws_calls
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
        "changes": args.changes, "tenants": args.tenants, "recipients": args.recipients,
        "units": units, "elapsed_s": elapsed, "submit_s": submitted - t0,
        "throughput_units_per_s": units / elapsed,
        "latency_p50_s": pct(latencies, 50), "latency_p99_s": pct(latencies, 99),
        "calls_per_unit": {k: v / units for k, v in sorted(calls.items()) if v},
        "budget_calls_per_unit": sum(v for k, v in calls.items() if k.startswith(BUDGET_SERVICES)) / units,
        "assume_role_per_tenant": {c: h["assume_role_calls"] for c, h in health.items()},
        "rss_mb_per_customer_actor": {c: round(h["rss"] / 2**20, 1) for c, h in health.items()},
        "emails_sent": sum(h["emails_sent"] for h in health.values()),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--changes", type=int, default=40)
    ap.add_argument("--tenants", type=int, default=4)
    ap.add_argument("--recipients", type=int, default=3, help="opted-in contacts per tenant")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--json", action="store_true", help="print the raw results as JSON")
    args = ap.parse_args()
    results = []
    for i in range(args.runs):
        print(f"run {i + 1}/{args.runs}: {args.changes} changes x {args.tenants} tenants ...",
              file=sys.stderr, flush=True)
        results.append(run_once(args))
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    med = lambda key: statistics.median(r[key] for r in results)  # noqa: E731
    r0 = results[-1]
    print(f"\n{args.changes} changes x {args.tenants} tenants ({r0['units']} change-customer units, "
          f"{args.recipients} recipients each), {args.runs} run(s), medians:")
    print(f"  throughput           {med('throughput_units_per_s'):.1f} units/s "
          f"(runs: {', '.join(format(r['throughput_units_per_s'], '.1f') for r in results)})")
    print(f"  latency p50 / p99    {med('latency_p50_s'):.2f} s / {med('latency_p99_s'):.2f} s "
          "(archive submit -> processed record)")
    print(f"  S3+SQS calls / unit  {med('budget_calls_per_unit'):.2f} (budget 8; sends and contact reads aside)")
    print("  calls / unit by operation (last run):")
    for k, v in r0["calls_per_unit"].items():
        print(f"    {k:<36} {v:.2f}")
    print(f"  AssumeRole / tenant  {r0['assume_role_per_tenant']}")
    print(f"  RSS / CustomerActor  {r0['rss_mb_per_customer_actor']} MB")
    print(f"  emails sent          {r0['emails_sent']} (expected {r0['units'] * args.recipients})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
