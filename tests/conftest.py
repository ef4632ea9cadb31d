"""Shared fixtures: a real moto server over HTTP, configs pointing at it, a loopback guard.

The moto server runs in this (the test) process so tests can look at what SES "sent"; everything
else (the CLI, Ray workers) reaches it over HTTP like real AWS.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import uuid
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
# Ray binds to the node's primary IP unless told it is a single-machine install; tests keep
# every socket on loopback (read by Ray at import, so before anything imports ray).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.pop("AWS_PROFILE", None)

ROOT = Path(__file__).resolve().parent.parent

# ---------------------------------------------------------------------------------------------
# Tests never talk to anything but loopback.

_real_connect = socket.socket.connect


def _is_loopback(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _guarded_connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0]
        if not _is_loopback(host):
            raise ConnectionRefusedError(f"test guard: refusing a connection to non-loopback {host!r}")
    return _real_connect(self, address)


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]


def assert_loopback_url(url: str | None) -> None:
    from urllib.parse import urlparse

    if url is None:
        raise AssertionError("a test config without an endpoint would reach real AWS")
    host = urlparse(url).hostname or ""
    assert _is_loopback(host), f"test endpoint {url} is not on loopback"


# ---------------------------------------------------------------------------------------------
# Telemetry: this process's providers carry in-memory exporters (installed first, once).

from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

SPANS = InMemorySpanExporter()
METRICS = InMemoryMetricReader()


@pytest.fixture(scope="session", autouse=True)
def _telemetry():
    from runtime.telemetry import setup_telemetry

    setup_telemetry("tests", span_exporter=SPANS, metric_reader=METRICS)


# ---------------------------------------------------------------------------------------------
# The AWS emulator


@pytest.fixture(scope="session")
def aws_emulator():
    from runtime.local.aws_emulator import AwsEmulator

    with AwsEmulator(port=0) as emu:
        yield emu


BASE_CONFIG = yaml.safe_load((ROOT / "configs" / "local.yaml").read_text())


def make_config_dict(endpoint: str, bucket: str, **overrides) -> dict:
    data = yaml.safe_load(yaml.safe_dump(BASE_CONFIG))
    data["bucket"] = bucket
    data["aws_endpoint_url"] = endpoint
    data.update(overrides)
    return data


def memory_config(mutate=None):
    """configs/local.yaml's customers, contacts and topics, for the in-memory doubles
    (runtime/testing/): its endpoint is never reached. ``mutate(data)`` as for ``make_stack``."""
    from runtime.domain.config import parse_config

    data = make_config_dict("http://127.0.0.1:9", "ttr-memory")
    if mutate:
        mutate(data)
    return parse_config(data, "memory")


def make_stack(endpoint: str, directory: Path, mutate=None, graph_url: str | None = None) -> "Stack":
    """A freshly bootstrapped bucket and queues (unique names) and its config file.

    ``mutate(data)`` may adjust the config dict (customers, seed contacts) before bootstrap."""
    from runtime.adapters.aws import AwsClients
    from runtime.domain.config import parse_config
    from runtime.provisioning.bootstrap import ensure_management, seed_customer_ses

    bucket = f"ttr-test-{uuid.uuid4().hex[:12]}"
    suffix = bucket[-6:]
    data = make_config_dict(endpoint, bucket)
    if graph_url:
        data["graph"]["base_url"] = graph_url
    for c in data["customers"]:
        # queues and contact lists live per account, shared by every test: keep tests apart
        c["queue"] = f"ttr-{c['code']}-{suffix}"
        c["contact_list"] = f"contacts-{suffix}"
    if mutate:
        mutate(data)
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    cfg = parse_config(data, str(path))
    assert_loopback_url(cfg.aws_endpoint_url)
    clients = AwsClients(cfg.region, cfg.aws_endpoint_url)
    ensure_management(cfg, clients)
    seed_customer_ses(cfg, clients)
    return Stack(cfg=cfg, path=path, clients=clients)


@pytest.fixture()
def stack(aws_emulator, tmp_path):
    return make_stack(aws_emulator.endpoint_url, tmp_path)


@pytest.fixture(scope="module")
def module_stack(aws_emulator, graph_emulator, tmp_path_factory):
    return make_stack(aws_emulator.endpoint_url, tmp_path_factory.mktemp("stack"),
                      graph_url=graph_emulator.base_url)


GRAPH_ORGANIZER = "change-calendar@ccoe.example.com"  # configs/local.yaml's graph.organizer


@pytest.fixture(scope="session")
def graph_emulator():
    """Our Graph emulator over real HTTP, once per session; tests reset it as they need."""
    from runtime.local.graph_emulator import GraphEmulator

    with GraphEmulator(organizer=GRAPH_ORGANIZER) as emu:
        yield emu


def wait_for(predicate, timeout: float = 30.0, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy, or fail at the deadline."""
    import time

    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")


def ready_line(proc, timeout: float = 30.0) -> str:
    """The first line a server process (``ttr web``...) prints that starts with ``ready``."""
    import time

    deadline = time.monotonic() + timeout
    line = ""
    while time.monotonic() < deadline and not line.startswith("ready"):
        line = proc.stdout.readline()
        assert line or proc.poll() is None, proc.stderr.read()
    assert line.startswith("ready"), line
    return line


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for the whole test session."""
    from actors.supervisor import init_ray

    init_ray(None, namespace="ttr-tests")
    import ray

    yield ray
    ray.shutdown()


@contextlib.contextmanager
def running_runtime(cfg, prefix: str):
    """A supervised runtime of ``cfg`` in a namespace of its own on the session's Ray, for a
    module's ``runtime`` fixture: ``with`` it, ``yield`` it (shut down when the block ends)."""
    from actors.supervisor import Runtime

    rt = Runtime(cfg, namespace=f"ttr-{prefix}-{uuid.uuid4().hex[:8]}", poll_wait=1).start()
    rt.supervise_in_background()
    try:
        yield rt
    finally:
        rt.shutdown(timeout=5)


def all_processed(lc, change_id):
    """For ``wait_for``: the change once every customer has processed every transition, else None."""
    from runtime.domain.processing import plan

    def check():
        ch = lc.show(change_id)
        return ch if all(not plan(ch, c).steps for c in ch["customers"]) else None
    return check


class Stack:
    def __init__(self, cfg, path, clients):
        self.cfg, self.path, self.clients = cfg, path, clients
        self.s3 = clients.client("s3")
        self.sqs = clients.client("sqs")

    def keys(self, prefix: str = "") -> list[str]:
        out = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.cfg.bucket, Prefix=prefix):
            out += [o["Key"] for o in page.get("Contents", [])]
        return sorted(out)

    def snapshot(self) -> dict[str, str]:
        """key -> ETag of every object: compare before/after to prove nothing was written."""
        out = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.cfg.bucket):
            out.update({o["Key"]: o["ETag"] for o in page.get("Contents", [])})
        return out

    def lifecycle(self, **kw):
        """The change lifecycle over this stack's bucket (``kw``: e.g. ``topics`` for announcements)."""
        from runtime.adapters.s3 import S3ObjectStore
        from runtime.services.lifecycle import Lifecycle

        return Lifecycle(S3ObjectStore(self.clients, self.cfg.bucket), self.cfg.customer_codes, **kw)

    def get_json(self, key: str) -> dict:
        import json

        return json.loads(self.s3.get_object(Bucket=self.cfg.bucket, Key=key)["Body"].read())

    def queue_url(self, code: str) -> str:
        return self.sqs.get_queue_url(QueueName=self.cfg.customer(code).queue_name)["QueueUrl"]

    def drain_events(self, code: str, *, expect: int, timeout: float = 10.0) -> list[dict]:
        """Receive (and delete) S3 records from the customer's queue until ``expect`` arrived."""
        import json
        import time
        from urllib.parse import unquote_plus

        url = self.queue_url(code)
        records: list[dict] = []
        deadline = time.monotonic() + timeout
        while len(records) < expect and time.monotonic() < deadline:
            resp = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            for m in resp.get("Messages", []):
                body = json.loads(m["Body"])
                for r in body.get("Records", []):
                    r["s3"]["object"]["key"] = unquote_plus(r["s3"]["object"]["key"])
                    records.append(r)
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        return records


@pytest.fixture()
def run_cli(capsys):
    """Run ``ttr`` in-process; returns (exit code, stdout, stderr)."""
    from runtime.cli.main import main

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def day(days: int, tz: str = "America/New_York") -> str:
    """The date ``days`` from today in ``tz`` (YYYY-MM-DD): test dates never go stale."""
    from datetime import datetime, timedelta, timezone
    from zoneinfo import ZoneInfo

    return (datetime.now(timezone.utc).astimezone(ZoneInfo(tz)).date() + timedelta(days=days)).isoformat()


def at(date: str, hhmm: str, tz: str) -> str:
    """``date`` at ``hhmm`` local time in ``tz``, as RFC 3339 (the portal's form conversion)."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return datetime.fromisoformat(f"{date}T{hhmm}").replace(tzinfo=ZoneInfo(tz)).isoformat()


def window(days: int = 8, start: str = "02:00", hours: int = 2, tz: str = "America/New_York") -> dict:
    """A schedule ``days`` from today (see runtime.domain.rules.window_from_today)."""
    from runtime.domain.rules import window_from_today

    return window_from_today(days, start=start, hours=hours, tz=tz)


# The sample's window is 8 days from today, 02:00-04:00 in New York.
SAMPLE_CHANGE = {
    "title": "Patch the shared VPN gateways",
    "customers": ["hts", "htsnonprod"],
    "schedule": window(8),
    "reason": "Security fixes",
    "meeting": {"required": True},
}


def _day_label(iso: str) -> str:
    from datetime import datetime

    d = datetime.fromisoformat(iso)
    return f"{d:%a} {d.day} {d:%b %Y}"


# How email subjects date the sample change ("Tue 8 Dec 2026"), in the change's own zone
SAMPLE_DAY = _day_label(SAMPLE_CHANGE["schedule"]["implementationStart"])


def unique_change(sample_change, **over) -> tuple[dict, str]:
    """The sample with a title of its own (and ``over``), and that title: find its emails by it."""
    title = f"Change {uuid.uuid4().hex[:8]}"
    return {**sample_change, "title": title, **over}, title


def processed(archive: dict, code: str) -> list[int]:
    """The transitions the archive records as processed for customer ``code``."""
    return sorted(m["transition"] for m in archive["modifications"] if m["type"] == "processed"
                  and m["customer"] == code)


@pytest.fixture()
def sample_change():
    import copy

    return copy.deepcopy(SAMPLE_CHANGE)
