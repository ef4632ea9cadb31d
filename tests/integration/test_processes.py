"""Whole-runtime processes, as operators run them: `ttr run` drains on SIGTERM, `ttr local up`
prints ready once the runtime accepts work. Few on purpose: each starts a runtime."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest
import yaml

from runtime.adapters.aws import AwsClients
from runtime.adapters.s3 import S3ObjectStore
from runtime.domain.config import load_config
from runtime.domain.processing import plan
from runtime.local.aws_emulator import AwsEmulator, free_port
from runtime.services.lifecycle import Lifecycle
from tests.conftest import BASE_CONFIG, make_stack, wait_for

pytestmark = pytest.mark.ray


class Proc:
    """A ttr subprocess whose stdout lines are collected as they come."""

    def __init__(self, *argv, env=None):
        self.p = subprocess.Popen([sys.executable, "-m", "runtime.cli.main", *map(str, argv)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
        self.lines: list[str] = []
        self.err: list[str] = []
        threading.Thread(target=self._read, args=(self.p.stdout, self.lines), daemon=True).start()
        threading.Thread(target=self._read, args=(self.p.stderr, self.err), daemon=True).start()

    @staticmethod
    def _read(stream, sink):
        for line in stream:
            sink.append(line.rstrip("\n"))

    def wait_line(self, prefix, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines:
                if line.startswith(prefix):
                    return line
            if self.p.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"no line starting with {prefix!r}; rc={self.p.poll()} stderr tail:\n"
                             + "\n".join(self.err[-30:]))

    def stop(self, timeout=90):
        self.p.send_signal(signal.SIGTERM)
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            raise

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(10)




def done(lc, cid):
    c = lc.show(cid)
    return c if all(not plan(c, x).steps for x in c["customers"]) else None


def test_ttr_run_drains_on_sigterm_and_finishes_in_flight_work(aws_emulator, ray_session, tmp_path, sample_change):
    # One slow tenant: six recipients paced at one email per second keep a message in flight.
    def slow(data):
        data["customers"][0]["max_send_rate"] = 1
        data["local"]["contacts"]["hts"] = [{"email": f"slow{i}@example.com", "topics": {"aws-approval": "OPT_IN"}}
                                            for i in range(6)]
    stack = make_stack(aws_emulator.endpoint_url, tmp_path, slow)
    address = ray_session.get_runtime_context().gcs_address
    proc = Proc("run", "--config", stack.path, "--address", address, "--namespace", f"ttr-run-{uuid.uuid4().hex[:6]}")
    try:
        proc.wait_line("ready", 120)
        lc = Lifecycle(S3ObjectStore(stack.clients, stack.cfg.bucket), stack.cfg.customer_codes)
        title = f"Drain {uuid.uuid4().hex[:6]}"
        cid = lc.submit({**sample_change, "title": title, "customers": ["hts"]}, actor="ann").change_id
        wait_for(lambda: stack.keys(f"ledger/{cid}/hts/"), 60, "the first sends")
        rc = proc.stop()
    finally:
        proc.kill()
    assert rc == 0, "\n".join(proc.err[-30:])
    change = lc.show(cid)
    assert not plan(change, "hts").steps, "in-flight work was not finished by the drain"
    sent = [m for m in AwsEmulator.sent_emails() if title in m.subject]
    assert sorted(a for m in sent for a in m.to) == [f"slow{i}@example.com" for i in range(6)]


def test_local_up_prints_ready_once_the_runtime_accepts_work(tmp_path, sample_change):
    data = yaml.safe_load(yaml.safe_dump(BASE_CONFIG))
    port = free_port()
    data["local"]["aws_port"] = port
    data["aws_endpoint_url"] = f"http://127.0.0.1:{port}"
    gport = free_port()
    data["local"]["graph_port"] = gport
    data["local"]["web_port"] = free_port()
    data["graph"]["base_url"] = f"http://127.0.0.1:{gport}/v1.0"
    path = tmp_path / "local.yaml"
    path.write_text(yaml.safe_dump(data))
    proc = Proc("local", "up", "--config", path)
    try:
        ready = proc.wait_line("ready", 180)
        assert f"aws=http://127.0.0.1:{port}" in ready and f"graph=http://127.0.0.1:{gport}/v1.0" in ready
        assert "runtime=" in ready and f"portal=http://127.0.0.1:{data['local']['web_port']}" in ready
        cfg = load_config(path)
        lc = Lifecycle(S3ObjectStore(AwsClients(cfg.region, cfg.aws_endpoint_url), cfg.bucket), cfg.customer_codes)
        cid = lc.submit(sample_change, actor="ann").change_id
        lc.transition(cid, "approve", actor="bob")
        change = wait_for(lambda: done(lc, cid), 90, "processing")
        sent = {(m["customer"], m["transition"]): m["emailsSent"] for m in change["modifications"]
                if m["type"] == "processed"}
        assert sent == {("hts", 1): 1, ("hts", 2): 2, ("htsnonprod", 1): 1, ("htsnonprod", 2): 2}
        assert change["meetingMetadata"]["joinUrl"]   # the embedded Graph emulator made the meeting
        rc = proc.stop()
    finally:
        proc.kill()
    assert rc == 0, "\n".join(proc.err[-30:])
