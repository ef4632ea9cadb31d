"""The trigger handler in-process (no Ray) against the moto server: what only the AWS wiring shows
(S3's key encoding in events, the assumed role's lifetime, SQS's redrive to the DLQ, SES's paging).
The processing semantics run on the in-memory doubles: tests/unit/test_trigger_handler.py."""

from __future__ import annotations

import uuid

import pytest

from runtime.adapters.s3 import S3ObjectStore
from runtime.adapters.ses import TenantSes
from runtime.adapters.sqs import SqsQueue
from runtime.domain.errors import RetryableError
from runtime.ports import QueueMessage
from runtime.services.archive import ArchiveRecorder
from runtime.services.handler import TriggerHandler
from runtime.services.lifecycle import Lifecycle
from runtime.services.pacing import RateLimiter
from runtime.testing.memory_mailer import FlakyMailer
from tests.conftest import processed, unique_change


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


def test_url_encoded_keys_are_decoded(env, sample_change):
    content, _ = unique_change(sample_change, customers=["hts"], changeId=f"CHG_under_{uuid.uuid4().hex[:6]}")
    cid = env.lc.submit(content, actor="ann").change_id
    [m] = env.messages("hts", 1)
    assert "%2F" in m.body  # moto encodes the key like S3 does
    assert env.handler("hts").handle(m).steps_done == [(cid, 1)]


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
