"""Traces and metrics: in-memory exporters in this process (the handler on the in-memory doubles of
runtime/testing/); the JSON-lines file across actors (Ray, moto, the Graph emulator)."""

from __future__ import annotations

import json
import uuid

import pytest

from runtime.adapters.s3 import S3ObjectStore
from runtime.services.archive import ArchiveRecorder
from runtime.services.handler import TriggerHandler
from runtime.services.lifecycle import Lifecycle
from runtime.services.pacing import RateLimiter
from runtime.testing.memory_stack import MemoryStack
from tests.conftest import METRICS as READER
from tests.conftest import SPANS, memory_config


def metric_points(name):
    data = READER.get_metrics_data()
    out = []
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name == name:
                    out += [(dict(p.attributes), getattr(p, "value", getattr(p, "count", None)))
                            for p in m.data.data_points]
    return out


def value(name, **attrs):
    return sum(v for a, v in metric_points(name) if all(a.get(k) == x for k, x in attrs.items()))


def first_message(aws, code):
    [msg] = aws.messages(code)
    return msg


def test_one_message_one_trace_and_metrics_move(sample_change):
    aws = MemoryStack(memory_config())
    store, cust = aws.store, aws.cfg.customer("hts")
    handler = TriggerHandler(cfg=aws.cfg, customer=cust, store=store, mailer=aws.mailers["hts"],
                             archive=ArchiveRecorder(store), limiter=RateLimiter(1000))
    before = {"ok": value("ttr.processing.outcomes", tenant="hts", outcome="success"),
              "sent": value("ttr.emails.sent", tenant="hts"), "deleted": value("ttr.triggers.deleted", tenant="hts"),
              "created": value("ttr.triggers.created", tenant="hts")}
    cid = Lifecycle(store, aws.cfg.customer_codes).submit({**sample_change, "customers": ["hts"]},
                                                           actor="ann").change_id
    msg = first_message(aws, "hts")
    SPANS.clear()
    from runtime.telemetry import span

    with span("ttr.message", {"ttr.tenant": "hts"}):
        out = handler.handle(msg)
    assert out.ack and out.steps_done == [(cid, 1)]
    spans = SPANS.get_finished_spans()
    assert len({s.context.trace_id for s in spans}) == 1
    names = {s.name for s in spans}
    assert {"ttr.message", "ttr.change", "archive.load", "transition", "ses.send", "archive.record",
            "trigger.delete"} <= names
    transition = next(s for s in spans if s.name == "transition")
    assert transition.attributes["ttr.change_id"] == cid and transition.attributes["ttr.seq"] == 1
    assert transition.attributes["ttr.tenant"] == "hts" and transition.attributes["ttr.outcome"] == "processed"
    assert value("ttr.processing.outcomes", tenant="hts", outcome="success") == before["ok"] + 1
    assert value("ttr.emails.sent", tenant="hts") == before["sent"] + 1
    assert value("ttr.triggers.deleted", tenant="hts") == before["deleted"] + 1
    assert value("ttr.triggers.created", tenant="hts") == before["created"] + 1


def test_errors_are_recorded_on_spans_and_counted(sample_change):
    from runtime.domain.errors import RetryableError
    from runtime.testing.memory_mailer import FlakyMailer

    aws = MemoryStack(memory_config())
    store, cust = aws.store, aws.cfg.customer("hts")
    flaky = FlakyMailer(aws.mailers["hts"], fail_after=0,
                        error=RetryableError("sesv2.SendEmail: Throttling", code="Throttling"))
    handler = TriggerHandler(cfg=aws.cfg, customer=cust, store=store, mailer=flaky,
                             archive=ArchiveRecorder(store), limiter=RateLimiter(1000))
    Lifecycle(store, aws.cfg.customer_codes).submit({**sample_change, "customers": ["hts"]}, actor="ann")
    msg = first_message(aws, "hts")
    before = value("ttr.errors", tenant="hts", type="RetryableError")
    SPANS.clear()
    out = handler.handle(msg)
    assert not out.ack
    failed = [s for s in SPANS.get_finished_spans() if not s.status.is_ok]
    assert any(s.name == "ses.send" and s.events and s.events[0].name == "exception" for s in failed)
    assert value("ttr.errors", tenant="hts", type="RetryableError") == before + 1
    assert value("ttr.processing.outcomes", tenant="hts", outcome="retry") >= 1


@pytest.mark.ray
def test_a_trace_crosses_customer_archive_and_meeting_actors(ray_session, aws_emulator, graph_emulator, tmp_path,
                                                             sample_change, monkeypatch):
    from actors.supervisor import Runtime
    from runtime.domain.processing import plan
    from tests.conftest import make_stack, wait_for

    traces = tmp_path / "traces.jsonl"
    monkeypatch.setenv("TTR_TRACES_FILE", str(traces))
    st = make_stack(aws_emulator.endpoint_url, tmp_path, graph_url=graph_emulator.base_url)
    rt = Runtime(st.cfg, namespace=f"ttr-trace-{uuid.uuid4().hex[:6]}", poll_wait=1).start()
    try:
        lc = Lifecycle(S3ObjectStore(st.clients, st.cfg.bucket), st.cfg.customer_codes)
        cid = lc.submit({**sample_change, "customers": ["hts"]}, actor="ann").change_id
        lc.transition(cid, "approve", actor="bob")
        wait_for(lambda: not plan(lc.show(cid), "hts").steps, 60, "processing")
        wait_for(lambda: lc.show(cid).get("meetingMetadata"), 60, "the meeting")
    finally:
        rt.shutdown(timeout=10)   # flushes every actor's spans
    spans = [json.loads(line) for line in traces.read_text().splitlines()]
    by_trace: dict[str, list] = {}
    for s in spans:
        by_trace.setdefault(s["context"]["trace_id"], []).append(s)
    crossing = [ss for ss in by_trace.values()
                if {"customer", "archive", "meetings"} <= {s["resource"]["attributes"]["ttr.role"] for s in ss}]
    assert len(crossing) == 1, {t: sorted({s["name"] for s in ss}) for t, ss in by_trace.items()}
    ss = crossing[0]
    roots = [s for s in ss if s["parent_id"] is None]
    assert [r["name"] for r in roots] == ["ttr.message"]
    assert len({s["resource"]["attributes"]["process.pid"] for s in ss}) >= 3
    names = {s["name"] for s in ss}
    assert {"sqs.receive", "archive.load", "transition", "ses.send", "archive.write", "coordinator.ensure",
            "graph.events.create", "trigger.delete", "sqs.ack"} <= names
    assert any(s["attributes"].get("ttr.change_id") == cid for s in ss)
