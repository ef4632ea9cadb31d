"""`ttr demo --keep-running` is the local stack the README's next commands talk to.

One process test on purpose (it starts a runtime): the demo on the configured ports, then
`ttr change list` and `ttr status` against it, both exit 0; the emails link to its portal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
import yaml

from runtime.local.aws_emulator import free_port
from tests.conftest import BASE_CONFIG

pytestmark = pytest.mark.ray


def _config(tmp_path) -> tuple[str, dict]:
    data = yaml.safe_load(yaml.safe_dump(BASE_CONFIG))
    aws, graph, web = free_port(), free_port(), free_port()
    data["local"].update(aws_port=aws, graph_port=graph, web_port=web)
    data["aws_endpoint_url"] = f"http://127.0.0.1:{aws}"
    data["graph"]["base_url"] = f"http://127.0.0.1:{graph}/v1.0"
    data["email"]["portal_base_url"] = f"http://127.0.0.1:{web}"
    path = tmp_path / "local.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path), data


def test_demo_keep_running_then_change_list_and_status_work(tmp_path):
    path, data = _config(tmp_path)
    env = {**os.environ, "TTR_CONFIG": path}
    proc = subprocess.Popen([sys.executable, "-m", "runtime.cli.main", "demo", "--keep-running"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out: list[str] = []
    err: list[str] = []
    for stream, sink in ((proc.stdout, out), (proc.stderr, err)):
        threading.Thread(target=lambda s=stream, k=sink: k.extend(line.rstrip("\n") for line in s), daemon=True).start()
    try:
        deadline = time.monotonic() + 240
        while not any(line.startswith("ready ") for line in out):
            assert proc.poll() is None and time.monotonic() < deadline, "\n".join(err[-30:] + out[-30:])
            time.sleep(0.2)
        ready = next(line for line in out if line.startswith("ready "))
        web = data["local"]["web_port"]
        assert f"portal=http://127.0.0.1:{web}" in ready and "namespace=ttr" in ready
        assert any(line.strip().startswith("ttr change list") for line in out)
        assert any(line.strip().startswith("ttr status") for line in out)

        def ttr(*argv):
            return subprocess.run([sys.executable, "-m", "runtime.cli.main", *argv], cwd=tmp_path, env=env,
                                  capture_output=True, text=True, timeout=120)

        listed = ttr("change", "list")
        assert listed.returncode == 0 and "approved" in listed.stdout, listed.stderr
        status = ttr("status")
        assert status.returncode == 0, status.stdout + status.stderr
        # every email's portal link points where the portal listens
        sent = json.loads(urllib.request.urlopen(f"{data['aws_endpoint_url']}/moto-api/data.json",
                                                 timeout=10).read())["ses"]["Message"]
        links = [m for m in sent if f"http://127.0.0.1:{web}/changes/CHG-" in m["body"]]
        assert links and len(links) == len(sent), [m["body"][:200] for m in sent]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
    assert proc.returncode == 0, "\n".join(err[-30:])
    assert not (tmp_path / ".ttr" / "ray-address").exists()
