"""Commands that write triggers count them: `ttr change ...` and a standalone `ttr web`, each a
separate process exporting to a JSON-lines metrics file; without an exporter, no telemetry."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import httpx
import yaml

from tests.conftest import ROOT, ready_line

TTR = str(ROOT / ".venv" / "bin" / "ttr")


def triggers_created(path) -> dict[tuple[str, str], int]:
    """(tenant, action) -> the last cumulative ttr.triggers.created value in the file."""
    last: dict[tuple, int] = {}
    for line in path.read_text().splitlines():
        for rm in json.loads(line)["resource_metrics"]:
            for sm in rm["scope_metrics"]:
                for m in sm["metrics"]:
                    if m["name"] == "ttr.triggers.created":
                        for p in m["data"]["data_points"]:
                            a = p["attributes"]
                            last[(a["tenant"], a["action"])] = p["value"]
    return last


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TTR_METRICS", "TTR_TRACES", "OTEL_"))}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def test_ttr_change_counts_the_triggers_it_writes(stack, tmp_path, sample_change):
    change = tmp_path / "c.yaml"
    change.write_text(yaml.safe_dump(sample_change))
    metrics = tmp_path / "metrics.jsonl"
    r = subprocess.run([TTR, "change", "submit", str(change), "--config", str(stack.path)], capture_output=True,
                       text=True, timeout=60, env=_env(TTR_METRICS_FILE=str(metrics)))
    assert r.returncode == 0, r.stderr
    assert set(triggers_created(metrics).values()) == {1}
    assert {t for t, _ in triggers_created(metrics)} == {"hts", "htsnonprod"}
    submit_keys = set(triggers_created(metrics))
    r = subprocess.run([TTR, "change", "approve", r.stdout.strip(), "--config", str(stack.path)],
                       capture_output=True, text=True, timeout=60, env=_env(TTR_METRICS_FILE=str(metrics)))
    assert r.returncode == 0, r.stderr
    after = triggers_created(metrics)   # the approve's own process counted its two triggers
    assert len(after) == 4 and set(after.values()) == {1} and submit_keys < set(after)
    assert len(metrics.read_text().splitlines()) >= 2


PROBE = """
import sys
from runtime.cli.main import main
code = main(sys.argv[1:])
from opentelemetry import metrics
print("PROVIDER=" + type(metrics.get_meter_provider()).__name__, file=sys.stderr)
sys.exit(code)
"""


def test_without_an_exporter_telemetry_stays_off(stack, tmp_path, sample_change):
    change = tmp_path / "c.yaml"
    change.write_text(yaml.safe_dump(sample_change))
    r = subprocess.run([sys.executable, "-c", PROBE, "change", "submit", str(change), "--config", str(stack.path)],
                       capture_output=True, text=True, timeout=60, env=_env(), cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "PROVIDER=_ProxyMeterProvider" in r.stderr   # the API's no-op: no SDK provider installed
    assert not list(tmp_path.glob("*.jsonl"))


def test_a_standalone_ttr_web_counts_the_triggers_of_a_submit(stack, tmp_path, sample_change):
    from runtime.adapters.s3 import S3ObjectStore
    from runtime.web._auth import ApiTokens, LocalUsers, Principal
    from runtime.web._principals import PrincipalRecords

    secret = "w" * 40
    metrics = tmp_path / "web-metrics.jsonl"
    proc = subprocess.Popen([TTR, "web", "--config", str(stack.path), "--port", "0"], cwd=tmp_path,
                            env=_env(TTR_SESSION_SECRET=secret, TTR_METRICS_FILE=str(metrics)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = ready_line(proc).split("=", 1)[1].strip()
        users = LocalUsers(stack.cfg.web.users)   # tokens are recorded in the bucket the portal reads
        tokens = ApiTokens(secret, PrincipalRecords(S3ObjectStore(stack.clients, stack.cfg.bucket), ttl=0),
                           credential_of=lambda u: users.credential(u.name))
        token = tokens.issue(Principal(name="alice", roles=frozenset({"submitter"})), 600)[0]
        r = httpx.post(f"{url}/api/changes", json={**sample_change, "customers": ["hts"]},
                       headers={"Authorization": f"Bearer {token}"}, timeout=15)
        assert r.status_code == 201, r.text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert [(t, v) for (t, _), v in triggers_created(metrics).items()] == [("hts", 1)]
