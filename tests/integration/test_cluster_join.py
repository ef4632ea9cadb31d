"""`ttr run --address` joining a Ray cluster started with `ray start --head`, as in production:
work is processed, the supervisor is restarted (SIGTERM, start again) without losing work, and
the placement check fails fast on a cluster that is too small.

The cluster is one head node on loopback (its own temp dir, its own process group, killed at the
end). A second node is not started: on one machine Ray only lets a node join by resolving
127.0.0.1 to the machine's primary address, which tests must not use; spreading across nodes is
covered by tests/ops/test_placement.py with a stand-in for Ray.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from runtime.adapters.s3 import S3ObjectStore
from runtime.domain.processing import plan
from runtime.local.aws_emulator import AwsEmulator, free_port
from runtime.services.lifecycle import Lifecycle
from tests.conftest import make_stack, wait_for
from tests.integration.test_processes import Proc

pytestmark = pytest.mark.ray

RAY = str(Path(sys.executable).with_name("ray"))
# Every Ray socket on loopback: Ray reads this at import (see runtime/local/runtime_host.py).
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled",
                "RAY_USAGE_STATS_ENABLED": "0"}


class RayHead:
    """`ray start --head` in its own process group and temp dir; stop() kills exactly that group."""

    def __init__(self, num_cpus: int = 2):
        # A short path: Ray's unix sockets live under it (108-byte limit on their paths).
        self.temp_dir = tempfile.mkdtemp(prefix="ttr-ray-", dir="/tmp")
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        argv = [RAY, "start", "--head", "--port", str(self.port), "--num-cpus", str(num_cpus),
                "--node-ip-address", "127.0.0.1", "--disable-usage-stats", "--include-dashboard=false",
                "--temp-dir", self.temp_dir]
        # Explicit free ports for what would otherwise take fixed defaults that another Ray on
        # this machine (the test session's own) may hold.
        for flag in ("--ray-client-server-port", "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port",
                     "--runtime-env-agent-port", "--metrics-export-port"):
            argv += [flag, str(free_port())]
        self.proc = subprocess.Popen(argv, env={**os.environ, **LOOPBACK_ENV}, start_new_session=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.pgid = self.proc.pid  # start_new_session: the group every Ray process of this node is in
        out, _ = self.proc.communicate(timeout=90)
        if self.proc.returncode != 0:
            self.stop()
            raise AssertionError(f"ray start --head failed ({self.proc.returncode}):\n{out[-3000:]}")

    def group(self) -> list[int]:
        """The live processes of this node's group (zombies are gone already, just not reaped)."""
        out = subprocess.run(["ps", "-eo", "pid=,pgid=,stat="], capture_output=True, text=True).stdout
        rows = (line.split() for line in out.splitlines())
        return [int(p) for p, g, stat in rows if int(g) == self.pgid and not stat.startswith("Z")]

    def stop(self) -> None:
        """What `ray stop` does, for this node only: SIGTERM, a short grace, then SIGKILL."""
        for sig, grace in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(self.pgid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + grace
            while self.group() and time.monotonic() < deadline:
                time.sleep(0.1)
            if not self.group():
                break
        shutil.rmtree(self.temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def ray_head():
    head = RayHead(num_cpus=2)
    try:
        yield head
    finally:
        head.stop()
    assert not head.group(), f"Ray processes left behind: {head.group()}"


def _done(lc, cid):
    c = lc.show(cid)
    return c if all(not plan(c, x).steps for x in c["customers"]) else None


def _submit(lc, sample_change, title):
    change = {**sample_change, "title": title, "meeting": {"required": False}}
    return lc.submit(change, actor="ann").change_id


def _emails(title):
    return sorted((m.account, a) for m in AwsEmulator.sent_emails() if title in m.subject for a in m.to)


def test_ttr_run_joins_a_cluster_and_survives_a_supervisor_restart(aws_emulator, ray_head, tmp_path, sample_change):
    # Long polls of 5 s (production: 20 s): a drain waits for the poll in progress to end.
    stack = make_stack(aws_emulator.endpoint_url, tmp_path, lambda d: d.update(runtime={"poll_wait_s": 5}))
    # The old supervisor's last long poll can still take a message after the process is
    # gone: SQS hides it for the queue's visibility timeout, then hands it to the new one. That
    # is the wait a restart costs; 10 s here instead of the production 60 s keeps the test short.
    for code in stack.cfg.customer_codes:
        stack.sqs.set_queue_attributes(QueueUrl=stack.queue_url(code), Attributes={"VisibilityTimeout": "10"})
    lc = Lifecycle(S3ObjectStore(stack.clients, stack.cfg.bucket), stack.cfg.customer_codes)
    ns = f"ttr-join-{uuid.uuid4().hex[:6]}"
    argv = ("run", "--config", stack.path, "--address", ray_head.address, "--namespace", ns,
            "--drain-timeout", "10")
    tag = uuid.uuid4().hex[:6]

    first = Proc(*argv, env=LOOPBACK_ENV)
    try:
        first.wait_line("ready", 90)
        c1 = _submit(lc, sample_change, f"Join one {tag}")
        wait_for(lambda: _done(lc, c1), 60, "the first change, processed by the joined runtime")
        assert first.stop() == 0, "\n".join(first.err[-30:])
    finally:
        first.kill()
    expected = _emails(f"Join one {tag}")
    assert expected, "the joined runtime sent no email"

    # Between the two supervisors nothing runs: the trigger waits in the queue, nothing is lost.
    c2 = _submit(lc, sample_change, f"Join two {tag}")
    assert not _done(lc, c2)

    second = Proc(*argv, env=LOOPBACK_ENV)
    try:
        second.wait_line("ready", 90)
        wait_for(lambda: _done(lc, c2), 60, "the change submitted while no supervisor ran")
        c3 = _submit(lc, sample_change, f"Join three {tag}")
        wait_for(lambda: _done(lc, c3), 60, "a change submitted after the restart")
        assert second.stop() == 0, "\n".join(second.err[-30:])
    finally:
        second.kill()

    # Each transition was handled once, by one of the supervisors' actors: the same recipients
    # as the first change, no duplicates, triggers removed.
    for title in (f"Join two {tag}", f"Join three {tag}"):
        assert _emails(title) == expected, title
    for cid in (c1, c2, c3):
        processed = [m for m in lc.show(cid)["modifications"] if m["type"] == "processed"]
        assert sorted(m["customer"] for m in processed) == ["hts", "htsnonprod"]
    assert not stack.keys("customers/")


PROBE = textwrap.dedent("""
    import json, sys
    import ray
    from actors.placement import ClusterTooSmall, check_cluster, tenant_options

    ray.init(address=sys.argv[1], namespace="ttr-placement-probe", log_to_driver=False)
    out = {"fit": check_cluster(ray, 4, 0.1, wait=5).describe()}
    try:
        check_cluster(ray, 100, 0.1, wait=0)
    except ClusterTooSmall as exc:
        out["too_small"] = str(exc)

    @ray.remote(num_cpus=0.1)
    class Tenant:
        def node(self):
            return ray.get_runtime_context().get_node_id()

    actors = [Tenant.options(**tenant_options()).remote() for _ in range(3)]
    out["nodes"] = sorted(set(ray.get([a.node.remote() for a in actors], timeout=60)))
    print(json.dumps(out))
""")


def test_placement_against_the_cluster(ray_head):
    """The fail-fast check and the spread option against a real `ray start --head` node."""
    import json

    r = subprocess.run([sys.executable, "-c", PROBE, ray_head.address], capture_output=True, text=True,
                       timeout=90, env={**os.environ, **LOOPBACK_ENV})
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert "needed" in out["fit"]
    assert "too small" in out["too_small"] and "hold 20 actor(s)" in out["too_small"], out["too_small"]
    assert "ray start --address" in out["too_small"]
    assert len(out["nodes"]) == 1  # one node here: SPREAD places them all on it
