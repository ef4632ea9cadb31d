#!/usr/bin/env python3
"""What one tenant costs to construct, in isolation (issue 11): CPU seconds and USS of a
CustomerWorker's construction in a process that has already imported what a Ray worker imports,
against the moto server over HTTP. No 100-tenant run needed, and the machine's load matters less
(CPU time, not wall time).

    .venv/bin/python scripts/tenant_cost.py              # 5 constructions, one process each
    .venv/bin/python scripts/tenant_cost.py --profile    # one, under cProfile (top 40, cumulative)
    .venv/bin/python scripts/tenant_cost.py --first-email  # and a first rendering: no, a cold, a warm template cache

Steps: a local Ray gives the module list of a trivial actor's worker (Ray's own floor), then Ray
stops (a worker that has received an argument or returned a result has also loaded pydantic: Ray's
serialization context registers serializers for it; the floor here includes that); the embedded stack (moto, bootstrapped for one tenant) starts; each run is a fresh Python
process that imports that module list, then unpickles what the supervisor ships a tenant (its
``Config.tenant_view(code)``; ``--whole-config``: the whole parsed Config, as before issue 11's
pydantic-free view) and constructs the tenant (the same as Ray does with the actor's arguments) and
prints what that took, and whether the configuration models were loaded.

``--first-email``: after the construction, the first rendering of an email for an approval request
to 3 recipients (one rendering: they share the customer's zone), as the renderer actor makes it
(``actors/renderer.py``; a tenant itself no longer renders, since issue 11), with the email
templates' disk cache (``runtime.emails.templating``) off (compiled in memory, as before issue 11),
cold (compiled and written: a runtime start warms it, so no tenant should pay this) and warm
(loaded): CPU seconds and USS growth of that first email, imports included. The cache lives in
a private ``$TTR_CACHE_DIR`` for the run.
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
out = {"cpu_s": t2 - t0, "config_s": t1 - t0, "constructor_s": t2 - t1, "uss_mb": (uss1 - uss0) / 2**20,
       "config_models": "runtime.domain.config" in sys.modules}
if sys.argv[7]:  # the first rendering, as the renderer actor makes it (runtime.emails.render_delivery)
    import os
    if sys.argv[7] == "off":  # the cache's directory is a file: compiled in memory (one warning)
        os.environ["TTR_CACHE_DIR"] = os.path.join(os.environ["TTR_CACHE_DIR"], "off")
    change = json.loads(open(sys.argv[8]).read())
    h = worker.handler
    recipients = [f"user{j}@{sys.argv[4]}.example.com" for j in range(3)]
    gc.collect()
    uss2 = psutil.Process().memory_full_info().uss
    t3 = time.process_time()
    from runtime.emails import render_email
    from runtime.emails.ics import render_calendar  # noqa: F401 - render_delivery imports it with the first email
    t4 = time.process_time()
    by_zone = {}
    for address in recipients:  # no contact has a zone of its own: the customer's
        by_zone.setdefault(h.customer.timezone, []).append(address)
    for zone, addresses in by_zone.items():
        email = render_email("approval_request", change, customer_code=h.code, customer_name=h.customer.name,
                             portal_base_url=h.cfg.email.portal_base_url, transition=change["modifications"][0],
                             first_request=True, zone=zone, meeting=None,
                             show_customers=h.cfg.email.show_affected_customers)
    t5 = time.process_time()
    gc.collect()
    uss3 = psutil.Process().memory_full_info().uss
    from runtime.emails import _env
    out.update({"email_cpu_s": t5 - t3, "email_import_s": t4 - t3, "email_render_s": t5 - t4,
                "email_uss_mb": (uss3 - uss2) / 2**20, "renders": len(by_zone),
                "templates_loaded": _env().bytecode_cache.hits, "templates_stored": _env().bytecode_cache.stored})
print(json.dumps(out))
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


def first_change(customers: list[str]) -> dict:
    """The archive of a submitted change for ``customers`` (configs/examples/change.yaml, a week ahead)."""
    from datetime import datetime, timezone

    from runtime.services.documents import example_change
    from runtime.services.lifecycle import new_archive

    now = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return new_archive({**example_change(7), "customers": customers}, change_id="CHG-TENANT-COST", actor="bench",
                       now=now, known_customers=customers)


def prepare_template_cache(mode: str) -> None:
    """cold: no compiled template in the cache; warm: every one (as after a runtime's start)."""
    import shutil

    from runtime.emails.templating import template_cache_path, warm_template_cache

    shutil.rmtree(template_cache_path(), ignore_errors=True)
    if mode == "warm":
        warm_template_cache()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--profile", action="store_true", help="one construction under cProfile")
    ap.add_argument("--whole-config", action="store_true",
                    help="ship the whole parsed Config (pydantic) instead of the tenant's view")
    ap.add_argument("--first-email", action="store_true",
                    help="also the tenant's first email (an approval request to 3 recipients) with the email "
                         "templates' cache off, cold and warm")
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
    if args.first_email:  # a private cache: the trimmed botocore data generated once, the templates per mode
        os.environ["TTR_CACHE_DIR"] = str(tmp / "cache")
        (tmp / "cache").mkdir()
        (tmp / "cache" / "off").write_text("")  # mode off: the templates' cache directory is under a file
        from runtime.adapters.aws_models import tenant_data_path

        tenant_data_path()
    (tmp / "modules.json").write_text(json.dumps(worker_modules()))
    cfg = parse_config(bench_config(1, 3), "<tenant-cost>")
    modes = ("off", "cold", "warm") if args.first_email else ("",)
    with LocalStack(cfg, aws_port=0, graph_port=0) as stack:
        code = stack.cfg.customer_codes[0]
        shipped = stack.cfg if args.whole_config else stack.cfg.tenant_view(code)
        (tmp / "config.pkl").write_bytes(pickle.dumps(shipped))
        if args.first_email:
            (tmp / "change.json").write_text(json.dumps(first_change(list(stack.cfg.customer_codes))))
        results: dict[str, list[dict]] = {}
        for mode in modes:
            for _ in range(1 if args.profile else args.runs):
                if mode:
                    prepare_template_cache(mode)
                out = subprocess.run([sys.executable, "-c", CHILD, str(ROOT), str(tmp / "modules.json"),
                                      str(tmp / "config.pkl"), code, "1" if args.profile else "0",
                                      "0" if args.no_ray_pydantic else "1", mode, str(tmp / "change.json")],
                                     capture_output=True, text=True, timeout=300)
                if out.returncode:
                    print(out.stderr[-3000:], file=sys.stderr)
                    return 1
                if args.profile:
                    print(out.stderr)
                results.setdefault(mode, []).append(json.loads(out.stdout.strip().splitlines()[-1]))
    runs = [r for rs in results.values() for r in rs]
    med = {k: statistics.median(r[k] for r in runs) for k in ("cpu_s", "config_s", "constructor_s", "uss_mb")}
    print(f"one tenant's construction, median of {len(runs)}: {med['cpu_s']:.3f} s CPU "
          f"(Config unpickled {med['config_s']:.3f} s, constructor {med['constructor_s']:.3f} s), "
          f"USS +{med['uss_mb']:.1f} MB above a trivial Ray worker's modules; shipped "
          f"{'the whole Config' if args.whole_config else 'its TenantConfig view'}, configuration models "
          f"loaded: {'yes' if any(r['config_models'] for r in runs) else 'no'}")
    for mode in modes if args.first_email else ():
        rs = results[mode]
        m = {k: statistics.median(r[k] for r in rs) for k in ("email_cpu_s", "email_import_s", "email_render_s",
                                                              "email_uss_mb")}
        print(f"first email (approval request, 3 recipients, {rs[0]['renders']} rendering), template cache "
              f"{mode:>4}, median of {len(rs)}: {m['email_cpu_s'] * 1000:.1f} ms CPU (imports "
              f"{m['email_import_s'] * 1000:.1f} ms, rendering {m['email_render_s'] * 1000:.1f} ms), USS "
              f"+{m['email_uss_mb']:.2f} MB; templates loaded from the cache {rs[0]['templates_loaded']}, "
              f"compiled and written {rs[0]['templates_stored']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
