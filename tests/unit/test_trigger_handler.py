"""The trigger handler's processing semantics, in-process on the in-memory doubles of its ports
(runtime/testing/: the store, its S3 notifications to the queues, the mailer). The doubles pass
the same contract tests as the AWS adapters on moto (tests/integration/test_*_contract.py); what
only AWS can show (S3's key encoding, the assumed role, SQS's redrive to the DLQ, SES paging)
stays in tests/integration/test_handler.py."""

from __future__ import annotations

import json

import pytest

from runtime.domain.errors import RetryableError, TenantPaused
from runtime.ports import QueueMessage
from runtime.services.archive import ArchiveRecorder
from runtime.services.handler import TriggerHandler
from runtime.services.lifecycle import Lifecycle
from runtime.services.pacing import RateLimiter
from runtime.testing.memory_mailer import FlakyMailer
from runtime.testing.memory_stack import MemoryStack
from tests.conftest import SAMPLE_DAY, memory_config, processed, unique_change

HTS_APPROVAL = ["alice@example.com"]
HTS_ANNOUNCE = ["alice@example.com", "chris@example.com"]
NONPROD_APPROVAL = ["dana@example.com"]
NONPROD_ANNOUNCE = ["dana@example.com", "erin@example.com"]


class Env(MemoryStack):
    def __init__(self):
        super().__init__(memory_config())
        self.lc = Lifecycle(self.store, self.cfg.customer_codes)
        self.recorder = ArchiveRecorder(self.store)

    def handler(self, code, mailer=None):
        return TriggerHandler(cfg=self.cfg, customer=self.cfg.customer(code), store=self.store,
                              mailer=mailer or self.mailers[code], archive=self.recorder,
                              limiter=RateLimiter(1000))

    def messages(self, code, expect):
        """The S3 events on the customer's queue (received and deleted): exactly ``expect``."""
        out = super().messages(code)
        assert len(out) == expect, f"expected {expect} messages on {code}, got {len(out)}"
        return out

    def archive(self, change_id):
        return self.store.get_json(f"archive/{change_id}.json")


@pytest.fixture()
def env():
    return Env()


def test_submit_then_approve_in_quick_succession_delivers_both(env, sample_change):
    content, title = unique_change(sample_change)
    cid = env.lc.submit(content, actor="ann").change_id
    env.lc.transition(cid, "approve", actor="bob")
    msgs = env.messages("hts", 2)
    # The first event already finds both transitions pending and handles them in order.
    first = env.handler("hts").handle(msgs[0])
    assert first.ack and first.steps_done == [(cid, 1), (cid, 2)]
    second = env.handler("hts").handle(msgs[1])
    assert second.ack and second.steps_done == []
    got = env.sent_to(title)
    assert sorted(got) == sorted(set(HTS_APPROVAL + HTS_ANNOUNCE))
    assert [s for s, _ in got["alice@example.com"]] == [f"Approval required: {title} ({SAMPLE_DAY})", f"Approved: {title} ({SAMPLE_DAY})"]
    assert [s for s, _ in got["chris@example.com"]] == [f"Approved: {title} ({SAMPLE_DAY})"]
    assert all(sender == "notifications@hts.example.com" for v in got.values() for _, sender in v)
    arch = env.archive(cid)
    assert processed(arch, "hts") == [1, 2]
    assert f"customers/hts/{cid}.json" not in env.store.keys("customers/")
    rec = next(m for m in arch["modifications"] if m["type"] == "processed" and m["transition"] == 2)
    assert rec["emailsSent"] == 2 and rec["topic"] == "aws-announce"


def test_duplicate_events_and_reput_trigger_send_nothing_twice(env, sample_change):
    content, title = unique_change(sample_change, customers=["htsnonprod"])
    cid = env.lc.submit(content, actor="ann").change_id
    [msg] = env.messages("htsnonprod", 1)
    h = env.handler("htsnonprod")
    assert h.handle(msg).steps_done == [(cid, 1)]
    assert h.handle(msg).steps_done == []          # the same event again (SQS redelivery)
    env.lc.retrigger(cid)                          # a re-put trigger: a new, stale event
    [again] = env.messages("htsnonprod", 1)
    assert h.handle(again).ack
    assert env.sent_to(title) == {"dana@example.com": [(f"Approval required: {title} ({SAMPLE_DAY})",
                                                        "notifications@htsnonprod.example.com")]}
    assert processed(env.archive(cid), "htsnonprod") == [1]


def test_concurrent_duplicates_do_not_both_send(env, sample_change):
    from concurrent.futures import ThreadPoolExecutor

    content, title = unique_change(sample_change, customers=["hts"])
    cid = env.lc.submit(content, actor="ann").change_id
    [msg] = env.messages("hts", 1)
    h = env.handler("hts")
    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(h.handle, [msg] * 4))
    assert all(o.ack for o in outcomes)
    assert [s for o in outcomes for s in o.steps_done] == [(cid, 1)]
    assert {k: len(v) for k, v in env.sent_to(title).items()} == {"alice@example.com": 1}


def test_trigger_of_a_customer_not_on_the_change_is_refused(env, sample_change):
    content, title = unique_change(sample_change, customers=["hts"])
    cid = env.lc.submit(content, actor="ann").change_id
    env.messages("hts", 1)
    key = f"customers/htsnonprod/{cid}.json"
    env.store.put(key, b'{"forged": true}')
    [msg] = env.messages("htsnonprod", 1)
    out = env.handler("htsnonprod").handle(msg)
    assert out.ack and len(out.rejected) == 1
    assert env.sent_to(title) == {}
    kept = env.store.get_json(out.rejected[0])
    assert kept["trigger"] == '{"forged": true}' and "not on change" in kept["reason"]
    assert key not in env.store.keys("customers/")
    rejected = [m for m in env.archive(cid)["modifications"] if m["type"] == "rejected"]
    assert len(rejected) == 1 and rejected[0]["customer"] == "htsnonprod"


def test_garbage_dangling_and_foreign_input_is_rejected_and_the_queue_flows(env, sample_change):
    h = env.handler("hts")
    env.store.put("customers/hts/CHG-never-existed.json", b"\x00garbage")
    env.store.put("customers/hts/nested/deeper.json", b"{}")
    msgs = env.messages("hts", 2)
    for m in msgs:
        out = h.handle(m)
        assert out.ack and len(out.rejected) == 1
    assert env.store.keys("customers/hts/") == []
    reasons = sorted(env.store.get_json(k)["reason"] for k in env.store.keys("rejected/hts/"))
    assert any("unknown change CHG-never-existed" in r for r in reasons)
    assert any("not a trigger key" in r for r in reasons)
    # A message that is not an S3 event at all, and an S3 test event.
    junk = QueueMessage("m-junk", "r", "hello, not json")
    assert h.handle(junk).ack
    assert h.handle(QueueMessage("m-test", "r", json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"}))).ack
    assert any(env.store.get_json(k)["message"] == "hello, not json" for k in env.store.keys("rejected/hts/"))
    # ... and real work still goes through afterwards
    content, title = unique_change(sample_change, customers=["hts"])
    cid = env.lc.submit(content, actor="ann").change_id
    [m] = env.messages("hts", 1)
    assert h.handle(m).steps_done == [(cid, 1)]


def test_html_in_content_is_escaped_in_the_email(env, sample_change):
    evil = '<script>alert("x")</script>'
    content, title = unique_change(sample_change, customers=["hts"], reason=evil)
    content["title"] = title + " <b>bold</b>"
    cid = env.lc.submit(content, actor="ann").change_id
    [m] = env.messages("hts", 1)
    env.handler("hts").handle(m)
    [mail] = [x for x in env.mailers["hts"].sent if title in x.subject]
    assert "<script>" not in mail.html and "&lt;script&gt;" in mail.html
    assert "<b>bold</b>" not in mail.html and "\n" not in mail.subject
    assert cid in mail.html


def test_whitelist_and_unsubscribe_semantics(env, sample_change):
    content, title = unique_change(sample_change)
    cid = env.lc.submit(content, actor="ann").change_id
    env.lc.transition(cid, "approve", actor="bob")
    for code in ("hts", "htsnonprod"):
        for m in env.messages(code, 2):
            assert env.handler(code).handle(m).ack
    got = env.sent_to(title)
    assert "bob@example.com" not in got            # unsubscribed from everything
    assert "gail@example.com" not in got           # opted in, but not on htsnonprod's whitelist
    assert "frank@example.com" not in got          # whitelisted, opted out of announcements
    assert "carol@example.com" not in got          # opted out of announcements, approval default OPT_OUT
    assert sorted(got) == sorted(set(HTS_APPROVAL + HTS_ANNOUNCE + NONPROD_APPROVAL + NONPROD_ANNOUNCE))


def test_retry_after_a_partial_send_skips_recorded_recipients(env, sample_change):
    content, title = unique_change(sample_change)
    cid = env.lc.submit(content, actor="ann").change_id
    env.lc.transition(cid, "approve", actor="bob")
    msgs = env.messages("hts", 2)
    flaky = FlakyMailer(env.mailers["hts"], fail_after=2,
                        error=RetryableError("sesv2.SendEmail: Throttling", code="Throttling"))
    out = env.handler("hts", flaky).handle(msgs[0])
    assert not out.ack and out.retry_after > 0 and "Throttling" in out.error
    assert out.steps_done == [(cid, 1)]             # the approval request went out and is recorded
    assert f"customers/hts/{cid}.json" in env.store.keys("customers/")  # failures keep the trigger
    out = env.handler("hts").handle(msgs[0])      # the redelivery
    assert out.ack and out.steps_done == [(cid, 2)]
    got = env.sent_to(title)
    assert {k: len(v) for k, v in got.items()} == {"alice@example.com": 2, "chris@example.com": 1}
    rec = [m for m in env.archive(cid)["modifications"] if m["type"] == "processed" and m["transition"] == 2][0]
    assert rec["emailsSent"] == 1 and rec["emailsAlreadySent"] == 1


def test_message_rejected_for_one_address_is_recorded_not_retried(env, sample_change):
    content, title = unique_change(sample_change, customers=["hts"])
    cid = env.lc.submit(content, actor="ann").change_id
    env.lc.transition(cid, "approve", actor="bob")
    msgs = env.messages("hts", 2)
    flaky = FlakyMailer(env.mailers["hts"], reject={"chris@example.com"})
    out = env.handler("hts", flaky).handle(msgs[0])
    assert out.ack and out.emails_failed == 1
    ledger = env.store.get_json(f"ledger/{cid}/hts/2.json")["recipients"]
    assert ledger["chris@example.com"]["status"] == "failed" and ledger["alice@example.com"]["status"] == "sent"
    assert "chris@example.com" not in env.sent_to(title)


def test_sending_paused_pauses_the_tenant_and_keeps_the_trigger(env, sample_change):
    content, _ = unique_change(sample_change, customers=["hts"])
    cid = env.lc.submit(content, actor="ann").change_id
    [m] = env.messages("hts", 1)
    flaky = FlakyMailer(env.mailers["hts"], fail_after=0,
                        error=TenantPaused("sesv2.SendEmail: SendingPausedException", retry_after=300))
    out = env.handler("hts", flaky).handle(m)
    assert not out.ack and out.pause_tenant == 300
    assert f"customers/hts/{cid}.json" in env.store.keys("customers/")
    assert processed(env.archive(cid), "hts") == []


def test_retryable_failures_leave_the_trigger_and_the_message_for_a_retry(env, sample_change):
    """What the handler does on each failing receive (the DLQ itself is SQS's: see the moto test)."""
    content, _ = unique_change(sample_change, customers=["hts"])
    cid = env.lc.submit(content, actor="ann").change_id
    broken = FlakyMailer(env.mailers["hts"], fail_after=0,
                         error=RetryableError("sesv2.SendEmail: 503", code="ServiceUnavailable"))
    h, q = env.handler("hts", broken), env.queues["hts"]
    for attempt in range(1, 4):
        [m] = q.receive(10, 0)
        assert m.receive_count == attempt
        out = h.handle(m)
        assert not out.ack and out.error == "RetryableError: sesv2.SendEmail: 503"
        assert 0.75 * 10 * 2 ** (attempt - 1) <= out.retry_after <= 10 * 2 ** (attempt - 1)  # backoff grows
        q.set_visibility(m.receipt, 0)   # instead of out.retry_after: the test cannot wait
    assert f"customers/hts/{cid}.json" in env.store.keys("customers/")
    assert processed(env.archive(cid), "hts") == [] and env.mailers["hts"].sent == []
