"""A process without a configured exporter (a tenant, usually) never imports the OpenTelemetry
SDK; with one, spans reach it (here: the JSON-lines file), from a real child process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from runtime.telemetry import FORWARDED_ENVS, OTLP_ENVS

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import sys
from runtime.telemetry import setup_telemetry, span, inject, extract
setup_telemetry("customer")
with span("probe", {"ttr.tenant": "t1"}, carrier={"traceparent": "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"}):
    carrier = inject()
from runtime.telemetry import flush_telemetry
flush_telemetry()
print("sdk" if any(m.startswith("opentelemetry.sdk") for m in sys.modules) else "api-only")
print(carrier.get("traceparent", ""))
"""


def _run(env_extra: dict) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k not in (*FORWARDED_ENVS, *OTLP_ENVS)}
    env.update(env_extra, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_no_exporter_no_sdk_and_the_trace_context_still_crosses():
    loaded, traceparent = _run({})
    assert loaded == "api-only"
    assert traceparent.startswith("00-" + "ab" * 16 + "-")  # the caller's trace goes on


def test_with_a_traces_file_the_sdk_exports_spans(tmp_path):
    path = tmp_path / "traces.jsonl"
    loaded, traceparent = _run({"TTR_TRACES_FILE": str(path)})
    assert loaded == "sdk"
    spans = [json.loads(line) for line in path.read_text().splitlines()]
    probe = [s for s in spans if s["name"] == "probe"]
    assert len(probe) == 1 and probe[0]["attributes"]["ttr.tenant"] == "t1"
    assert probe[0]["context"]["trace_id"] == "0x" + "ab" * 16
    assert traceparent.startswith("00-" + "ab" * 16 + "-")
