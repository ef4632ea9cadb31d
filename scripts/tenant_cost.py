#!/usr/bin/env python3
"""What one tenant costs to construct, in isolation (issue 11): CPU seconds and USS of a
CustomerWorker's construction in a process that has already imported what a Ray worker imports,
against the moto server over HTTP. No 100-tenant run needed, and the machine's load matters less
(CPU time, not wall time).

    .venv/bin/python scripts/tenant_cost.py              # 5 constructions, one process each
    .venv/bin/python scripts/tenant_cost.py --profile    # one, under cProfile (top 40, cumulative)

Steps: a local Ray gives the module list of a trivial actor's worker (Ray's own floor), then Ray
stops (a worker that has received an argument or returned a result has also loaded pydantic: Ray's
serialization context registers serializers for it; the floor here includes that); the embedded stack (moto, bootstrapped for one tenant) starts; each run is a fresh Python
process that imports that module list, then unpickles what the supervisor ships a tenant (its
``Config.tenant_view(code)``; ``--whole-config``: the whole parsed Config, as before issue 11's
pydantic-free view) and constructs the tenant (the same as Ray does with the actor's arguments) and
prints what that took, and whether the configuration models were loaded.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # single machine: Ray on loopback
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

CHILD = r"""
import ctypes, gc, importlib, json, pickle, sys, time
sys.path.insert(0, sys.argv[1])
for name in json.loads(open(sys.argv[2]).read()):
    if not name.startswith("__") and name not in sys.modules:
        try:
            importlib.import_module(name)
        except Exception:
            pass
if sys.argv[6] == "1":  # what Ray's serialization context loads in a worker at its first argument or result
    import ray._common.pydantic_compat  # noqa: F401 - pydantic, and its v1 shim
import psutil
gc.collect(); ctypes.CDLL("libc.so.6").malloc_trim(0)
uss0 = psutil.Process().memory_full_info().uss
profile = sys.argv[5] == "1"
if profile:
    import cProfile
    prof = cProfile.Profile(); prof.enable()
t0 = time.process_time()
cfg = pickle.loads(open(sys.argv[3], "rb").read())
t1 = time.process_time()
from actors.customer import CustomerWorker
worker = CustomerWorker(cfg, sys.argv[4], "ttr-tenant-cost")
t2 = time.process_time()
if profile:
    import pstats
    prof.disable(); pstats.Stats(prof, stream=sys.stderr).sort_stats("cumulative").print_stats(40)
uss1 = psutil.Process().memory_full_info().uss
print(json.dumps({"cpu_s": t2 - t0, "config_s": t1 - t0, "constructor_s": t2 - t1, "uss_mb": (uss1 - uss0) / 2**20,
                  "config_models": "runtime.domain.config" in sys.modules}))
"""


def worker_modules() -> list[str]:
    import ray

    ray.init(include_dashboard=False, num_cpus=1, logging_level="ERROR", namespace="ttr-tenant-cost")
    try:
        @ray.remote(num_cpus=0.01)
        class Trivial:
            def modules(self) -> list[str]:
                return sorted(sys.modules)

        return ray.get(Trivial.remote().modules.remote(), timeout=300)
    finally:
        ray.shutdown()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--profile", action="store_true", help="one construction under cProfile")
    ap.add_argument("--whole-config", action="store_true",
                    help="ship the whole parsed Config (pydantic) instead of the tenant's view")
    ap.add_argument("--no-ray-pydantic", action="store_true",
                    help="leave pydantic out of the floor (a Ray worker loads it with its serialization "
                         "context, at its first argument or result: a tenant always has)")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "scripts"))
    from bench import bench_config, bytecode_cached

    from runtime.domain.config import parse_config
    from runtime.local.stack import LocalStack

    cached = bytecode_cached()
    print("bytecode cached: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in cached.items()), file=sys.stderr)
    tmp = Path(tempfile.mkdtemp(prefix="ttr-tenant-cost-"))
    (tmp / "modules.json").write_text(json.dumps(worker_modules()))
    cfg = parse_config(bench_config(1, 3), "<tenant-cost>")
    with LocalStack(cfg, aws_port=0, graph_port=0) as stack:
        code = stack.cfg.customer_codes[0]
        shipped = stack.cfg if args.whole_config else stack.cfg.tenant_view(code)
        (tmp / "config.pkl").write_bytes(pickle.dumps(shipped))
        results = []
        for _ in range(1 if args.profile else args.runs):
            out = subprocess.run([sys.executable, "-c", CHILD, str(ROOT), str(tmp / "modules.json"),
                                  str(tmp / "config.pkl"), code, "1" if args.profile else "0",
                                  "0" if args.no_ray_pydantic else "1"],
                                 capture_output=True, text=True, timeout=300)
            if out.returncode:
                print(out.stderr[-3000:], file=sys.stderr)
                return 1
            if args.profile:
                print(out.stderr)
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    med = {k: statistics.median(r[k] for r in results) for k in results[0] if k != "config_models"}
    print(f"one tenant's construction, median of {len(results)}: {med['cpu_s']:.3f} s CPU "
          f"(Config unpickled {med['config_s']:.3f} s, constructor {med['constructor_s']:.3f} s), "
          f"USS +{med['uss_mb']:.1f} MB above a trivial Ray worker's modules; shipped "
          f"{'the whole Config' if args.whole_config else 'its TenantConfig view'}, configuration models "
          f"loaded: {'yes' if any(r['config_models'] for r in results) else 'no'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
