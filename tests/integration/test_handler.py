"""The trigger handler in-process (no Ray) against the moto server: the processing semantics."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.conftest import SAMPLE_DAY

from runtime.adapters.s3 import S3ObjectStore
from runtime.adapters.ses import TenantSes
from runtime.adapters.sqs import SqsQueue
from runtime.services.archive import ArchiveRecorder
from runtime.domain.errors import RecipientRejected, RetryableError, TenantPaused
from runtime.services.handler import TriggerHandler
from runtime.services.lifecycle import Lifecycle
from runtime.local.aws_emulator import AwsEmulator
from runtime.services.pacing import RateLimiter
from runtime.ports import QueueMessage

HTS_APPROVAL = ["alice@example.com"]
HTS_ANNOUNCE = ["alice@example.com", "chris@example.com"]
NONPROD_APPROVAL = ["dana@example.com"]
NONPROD_ANNOUNCE = ["dana@example.com", "erin@example.com"]


class Env:
    def __init__(self, stack):
        self.stack = stack
        self.store = S3ObjectStore(stack.clients, stack.cfg.bucket)
        self.lc = Lifecycle(self.store, stack.cfg.customer_codes)
        self.recorder = ArchiveRecorder(self.store)
        self.mailers = {c.code: TenantSes(stack.clients, stack.cfg, c) for c in stack.cfg.customers}

    def handler(self, code, mailer=None):
        cust = self.stack.cfg.customer(code)
        return TriggerHandler(cfg=self.stack.cfg, customer=cust, store=self.store,
                              mailer=mailer or self.mailers[code], archive=self.recorder,
                              limiter=RateLimiter(1000))

    def messages(self, code, expect, timeout=10.0):
        import time

        q = SqsQueue(self.stack.clients, self.stack.cfg.customer(code).queue_name)
        out: list[QueueMessage] = []
        deadline = time.monotonic() + timeout
        while len(out) < expect and time.monotonic() < deadline:
            for m in q.receive(10, 1):
                if "s3:TestEvent" not in m.body:
                    out.append(m)
                q.delete_batch([m.receipt])
        assert len(out) == expect, f"expected {expect} messages on {code}, got {len(out)}"
        return out

    def archive(self, change_id):
        return self.stack.get_json(f"archive/{change_id}.json")


@pytest.fixture()
def env(stack):
    return Env(stack)


def sent_to(title: str) -> dict[str, list[tuple[str, str]]]:
    """recipient -> [(subject, sender)] for emails whose subject carries ``title``."""
    out: dict[str, list[tuple[str, str]]] = {}
    for m in AwsEmulator.sent_emails():
        if title in m.subject:
            for to in m.to:
                out.setdefault(to, []).append((m.subject, m.source))
    return out


def unique_change(sample_change, **over):
    title = f"Change {uuid.uuid4().hex[:8]}"
    return {**sample_change, "title": title, **over}, title


def processed(archive, code):
    return sorted(m["transition"] for m in archive["modifications"] if m["type"] == "processed"
                  and m["customer"] == code)


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
    got = sent_to(title)
    assert sorted(got) == sorted(set(HTS_APPROVAL + HTS_ANNOUNCE))
    assert [s for s, _ in got["alice@example.com"]] == [f"Approval required: {title} ({SAMPLE_DAY})", f"Approved: {title} ({SAMPLE_DAY})"]
    assert [s for s, _ in got["chris@example.com"]] == [f"Approved: {title} ({SAMPLE_DAY})"]
    assert all(sender == "notifications@hts.example.com" for v in got.values() for _, sender in v)
    arch = env.archive(cid)
    assert processed(arch, "hts") == [1, 2]
    assert f"customers/hts/{cid}.json" not in env.stack.keys("customers/")
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
    assert sent_to(title) == {"dana@example.com": [(f"Approval required: {title} ({SAMPLE_DAY})",
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
    assert {k: len(v) for k, v in sent_to(title).items()} == {"alice@example.com": 1}


def test_trigger_of_a_customer_not_on_the_change_is_refused(env, stack, sample_change):
    content, title = unique_change(sample_change, customers=["hts"])
    cid = env.lc.submit(content, actor="ann").change_id
    env.messages("hts", 1)
    key = f"customers/htsnonprod/{cid}.json"
    stack.s3.put_object(Bucket=stack.cfg.bucket, Key=key, Body=b'{"forged": true}')
    [msg] = env.messages("htsnonprod", 1)
    out = env.handler("htsnonprod").handle(msg)
    assert out.ack and len(out.rejected) == 1
    assert sent_to(title) == {}
    kept = stack.get_json(out.rejected[0])
    assert kept["trigger"] == '{"forged": true}' and "not on change" in kept["reason"]
    assert key not in stack.keys("customers/")
    rejected = [m for m in env.archive(cid)["modifications"] if m["type"] == "rejected"]
    assert len(rejected) == 1 and rejected[0]["customer"] == "htsnonprod"


def test_garbage_dangling_and_foreign_input_is_rejected_and_the_queue_flows(env, stack, sample_change):
    h = env.handler("hts")
    stack.s3.put_object(Bucket=stack.cfg.bucket, Key="customers/hts/CHG-never-existed.json", Body=b"\x00garbage")
    stack.s3.put_object(Bucket=stack.cfg.bucket, Key="customers/hts/nested/deeper.json", Body=b"{}")
    msgs = env.messages("hts", 2)
    for m in msgs:
        out = h.handle(m)
        assert out.ack and len(out.rejected) == 1
    assert stack.keys("customers/hts/") == []
    reasons = sorted(stack.get_json(k)["reason"] for k in stack.keys("rejected/hts/"))
    assert any("unknown change CHG-never-existed" in r for r in reasons)
    assert any("not a trigger key" in r for r in reasons)
    # A message that is not an S3 event at all, and an S3 test event.
    junk = QueueMessage("m-junk", "r", "hello, not json")
    assert h.handle(junk).ack
    assert h.handle(QueueMessage("m-test", "r", json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"}))).ack
    assert any(stack.get_json(k)["message"] == "hello, not json" for k in stack.keys("rejected/hts/"))
    # ... and real work still goes through afterwards
    content, title = unique_change(sample_change, customers=["hts"])
    cid = env.lc.submit(content, actor="ann").change_id
    [m] = env.messages("hts", 1)
    assert h.handle(m).steps_done == [(cid, 1)]


def test_url_encoded_keys_are_decoded(env, sample_change):
    content, _ = unique_change(sample_change, customers=["hts"], changeId=f"CHG_under_{uuid.uuid4().hex[:6]}")
    cid = env.lc.submit(content, actor="ann").change_id
    [m] = env.messages("hts", 1)
    assert "%2F" in m.body  # moto encodes the key like S3 does
    assert env.handler("hts").handle(m).steps_done == [(cid, 1)]


def test_html_in_content_is_escaped_in_the_email(env, sample_change):
    evil = '<script>alert("x")</script>'
    content, title = unique_change(sample_change, customers=["hts"], reason=evil)
    content["title"] = title + " <b>bold</b>"
    cid = env.lc.submit(content, actor="ann").change_id
    [m] = env.messages("hts", 1)
    env.handler("hts").handle(m)
    [mail] = [x for x in AwsEmulator.sent_emails() if title in x.subject]
    assert "<script>" not in mail.body and "&lt;script&gt;" in mail.body
    assert "<b>bold</b>" not in mail.body and "\n" not in mail.subject
    assert cid in mail.body


def test_whitelist_and_unsubscribe_semantics(env, sample_change):
    content, title = unique_change(sample_change)
    cid = env.lc.submit(content, actor="ann").change_id
    env.lc.transition(cid, "approve", actor="bob")
    for code in ("hts", "htsnonprod"):
        for m in env.messages(code, 2):
            assert env.handler(code).handle(m).ack
    got = sent_to(title)
    assert "bob@example.com" not in got            # unsubscribed from everything
    assert "gail@example.com" not in got           # opted in, but not on htsnonprod's whitelist
    assert "frank@example.com" not in got          # whitelisted, opted out of announcements
    assert "carol@example.com" not in got          # opted out of announcements, approval default OPT_OUT
    assert sorted(got) == sorted(set(HTS_APPROVAL + HTS_ANNOUNCE + NONPROD_APPROVAL + NONPROD_ANNOUNCE))


class FlakyMailer:
    """The real tenant SES, failing in scripted ways (a fault seam at the Mailer port)."""

    def __init__(self, inner, *, fail_after=None, error=None, reject=()):
        self.inner, self.fail_after, self.error, self.reject = inner, fail_after, error, set(reject)
        self.sends = 0

    def list_contacts(self, cl):
        return self.inner.list_contacts(cl)

    def topic_defaults(self, cl):
        return self.inner.topic_defaults(cl)

    def contact_attributes(self, cl, email):
        return self.inner.contact_attributes(cl, email)

    def send(self, **kw):
        if kw["to"] in self.reject:
            raise RecipientRejected("MessageRejected: Email address is not verified", code="MessageRejected")
        if self.fail_after is not None and self.sends >= self.fail_after:
            raise self.error
        self.sends += 1
        return self.inner.send(**kw)


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
    assert f"customers/hts/{cid}.json" in env.stack.keys("customers/")  # failures keep the trigger
    out = env.handler("hts").handle(msgs[0])      # the redelivery
    assert out.ack and out.steps_done == [(cid, 2)]
    got = sent_to(title)
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
    ledger = env.stack.get_json(f"ledger/{cid}/hts/2.json")["recipients"]
    assert ledger["chris@example.com"]["status"] == "failed" and ledger["alice@example.com"]["status"] == "sent"
    assert "chris@example.com" not in sent_to(title)


def test_sending_paused_pauses_the_tenant_and_keeps_the_trigger(env, sample_change):
    content, _ = unique_change(sample_change, customers=["hts"])
    cid = env.lc.submit(content, actor="ann").change_id
    [m] = env.messages("hts", 1)
    flaky = FlakyMailer(env.mailers["hts"], fail_after=0,
                        error=TenantPaused("sesv2.SendEmail: SendingPausedException", retry_after=300))
    out = env.handler("hts", flaky).handle(m)
    assert not out.ack and out.pause_tenant == 300
    assert f"customers/hts/{cid}.json" in env.stack.keys("customers/")
    assert processed(env.archive(cid), "hts") == []


def test_assume_role_once_per_credential_lifetime(env, sample_change):
    mailer = env.mailers["hts"]
    for _ in range(3):
        content, _ = unique_change(sample_change, customers=["hts"])
        env.lc.submit(content, actor="ann")
        [m] = env.messages("hts", 1)
        env.handler("hts").handle(m)
    assert mailer.assume_role_calls == 1


def test_retryable_failures_end_in_the_dlq_with_the_trigger_kept(env, stack, sample_change):
    """Backoff is SQS visibility; after maxReceiveCount (5) SQS moves the message to the DLQ."""
    content, _ = unique_change(sample_change, customers=["hts"])
    cid = env.lc.submit(content, actor="ann").change_id
    queue = SqsQueue(stack.clients, stack.cfg.customer("hts").queue_name)
    dlq = SqsQueue(stack.clients, stack.cfg.customer("hts").dlq_name)
    broken = FlakyMailer(env.mailers["hts"], fail_after=0,
                         error=RetryableError("sesv2.SendEmail: 503", code="ServiceUnavailable"))
    h = env.handler("hts", broken)
    attempts = 0
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        msgs = [m for m in queue.receive(10, 1) if "TestEvent" not in m.body]
        if not msgs and attempts >= 5:
            break
        for m in msgs:
            out = h.handle(m)
            assert not out.ack
            attempts += 1
            queue.set_visibility(m.receipt, 0)   # instead of out.retry_after: the test cannot wait
    assert attempts == 5
    [dead] = dlq.receive(10, 1)
    assert cid in dead.body
    assert f"customers/hts/{cid}.json" in stack.keys("customers/")   # the orphan stays visible
    assert processed(env.archive(cid), "hts") == []


def test_every_page_of_contacts_is_read(env, stack):
    """moto ignores ListContacts paging; a botocore hook serves a first page with a NextToken."""
    from botocore.awsrequest import AWSResponse

    mailer = env.mailers["hts"]
    client = mailer._ses()
    calls = []

    class Raw:
        def __init__(self, body):
            self.body = body

        def stream(self, **_):
            yield self.body

    def first_page(request, **_):
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body or "")
        calls.append(body)
        if "NextToken" in body:
            return None  # the second page: the real server
        body = b'{"Contacts": [{"EmailAddress": "page1@example.com", "TopicPreferences": [], ' \
               b'"UnsubscribeAll": false}], "NextToken": "page-2"}'
        return AWSResponse(request.url, 200, {"Content-Type": "application/json"}, Raw(body))

    client.meta.events.register("before-send.sesv2.ListContacts", first_page)
    try:
        contacts = mailer.list_contacts(stack.cfg.customer("hts").contact_list)
    finally:
        client.meta.events.unregister("before-send.sesv2.ListContacts", first_page)
    emails = [c["EmailAddress"] for c in contacts]
    assert emails[0] == "page1@example.com" and "alice@example.com" in emails
    assert len(calls) == 2 and '"NextToken": "page-2"' in calls[1]
