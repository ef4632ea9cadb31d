"""Placement through the real CLI: a node too small for the tenants refuses within seconds, with
one message saying what is needed and what is there (exit 1, no traceback), before any actor."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import yaml

from tests.conftest import BASE_CONFIG

pytestmark = pytest.mark.ray


def test_ttr_run_refuses_too_many_tenants_for_the_node_within_seconds(tmp_path):
    data = yaml.safe_load(yaml.safe_dump(BASE_CONFIG))
    template = data["customers"][0]
    data["customers"] = [{**template, "code": f"c{i:02d}", "name": f"Customer {i}", "queue": f"ttr-c{i:02d}",
                          "ses_role_arn": f"arn:aws:iam::{400000000000 + i:012d}:role/ttr-ses-sender",
                          "external_id": f"ttr-c{i:02d}-external"}
                         for i in range(30)]
    data["local"]["contacts"] = {}
    # The case: 30 tenants of 0.1 CPU on a node with 1 CPU (sized here, so on any machine).
    data["runtime"] = {"local_cpus": 1, "tenant_cpus": 0.1, "tenant_memory_mb": 50}
    data["aws_endpoint_url"] = "http://127.0.0.1:9"   # never reached: the refusal comes first
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump(data))
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    started = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "runtime.cli.main", "run", "--config", str(path),
                        "--namespace", "ttr-refusal"], capture_output=True, text=True, timeout=120, env=env)
    elapsed = time.monotonic() - started
    assert r.returncode == 1, r.stderr[-3000:]
    errors = [line for line in r.stderr.splitlines() if line.startswith("ttr: error:")]
    assert len(errors) == 1, r.stderr[-3000:]
    msg = errors[0]
    assert "it needs 30 tenant actor(s) of 0.1 CPU + 50 MB and 6 service actor(s)" in msg, msg
    assert "1 alive node(s) with 1 CPU" in msg and "runtime.tenant_cpus" in msg, msg
    assert "Traceback" not in r.stderr and "GetTimeoutError" not in r.stderr
    assert "ready" not in r.stdout
    # Ray's own start takes most of it on a shared 2-core machine; never the old 120 s wait.
    assert elapsed < 45, f"refusal took {elapsed:.1f}s"
