#!/usr/bin/env python3
"""Chaos runs outside pytest: `--profile long` is the one whose figures go in docs/RELIABILITY.md.

    .venv/bin/python scripts/chaos.py --profile long [--seed N] [--json out.json]

It starts its own AWS emulator (moto), Graph emulator and local Ray (all on loopback), runs the
profile and prints the figures; exit 0 when every invariant held.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def _plain(obj):
    """JSON-safe: mapping keys become strings."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", choices=("fast", "long"), default="long")
    ap.add_argument("--seed", type=int, help="override the profile's seed")
    ap.add_argument("--json", metavar="F", help="also write the report as JSON")
    args = ap.parse_args()

    from actors.supervisor import init_ray
    from runtime.local.aws_emulator import AwsEmulator
    from runtime.local.graph_emulator import GraphEmulator
    from runtime.telemetry import setup_logging
    from runtime.testing.chaos import FAST, LONG, ChaosRun

    setup_logging("WARNING")
    profile = {"fast": FAST, "long": LONG}[args.profile]
    if args.seed is not None:
        profile = dataclasses.replace(profile, seed=args.seed)
    with AwsEmulator() as aws, GraphEmulator(organizer="change-calendar@ccoe.example.com") as graph:
        init_ray(None, namespace="ttr-chaos")
        report = ChaosRun(profile, aws_endpoint=aws.endpoint_url, graph=graph,
                          log=lambda m: print(m, file=sys.stderr, flush=True)).run()
    print("\n".join(report.lines()))
    if args.json:
        data = {k: v for k, v in vars(report).items()}
        data["ok"] = report.ok
        Path(args.json).write_text(json.dumps(_plain(data), indent=2, default=str))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
