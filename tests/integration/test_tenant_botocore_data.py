"""A tenant's adapters on the trimmed botocore data (runtime/adapters/aws_models.py), against the
moto server over HTTP: every call a CustomerActor makes goes through, S3 conditional writes and
SES sends through the assumed role included."""

from __future__ import annotations

import uuid

import pytest

from runtime.adapters.aws import AwsClients
from runtime.adapters.aws_models import tenant_data_path
from runtime.adapters.s3 import S3ObjectStore
from runtime.adapters.ses import TenantSes
from runtime.adapters.sqs import SqsQueue
from runtime.domain.errors import AlreadyExists, PreconditionFailed


@pytest.fixture()
def lean(stack, tmp_path, monkeypatch):
    monkeypatch.setenv("TTR_CACHE_DIR", str(tmp_path / "cache"))
    clients = AwsClients(stack.cfg.region, stack.cfg.aws_endpoint_url, data_path=tenant_data_path())
    assert not hasattr(clients.client("s3"), "create_bucket")  # really the trimmed models
    return clients


def test_object_store_on_trimmed_data(stack, lean):
    store = S3ObjectStore(lean, stack.cfg.bucket)
    key = f"test/{uuid.uuid4().hex}.json"
    etag = store.put(key, b'{"a": 1}', if_none_match=True)
    with pytest.raises(AlreadyExists):
        store.put(key, b'{"a": 2}', if_none_match=True)
    etag2 = store.put(key, b'{"a": 2}', if_match=etag)
    with pytest.raises(PreconditionFailed):
        store.put(key, b'{"a": 3}', if_match=etag)
    got = store.get(key)
    assert got.body == b'{"a": 2}' and got.etag == etag2
    assert [o.key for o in store.list("test/")] == [key]
    store.delete(key)
    assert list(store.list("test/")) == []


def test_queue_on_trimmed_data(stack, lean):
    c = stack.cfg.customers[0]
    queue = SqsQueue(lean, c.queue_name)
    assert queue.arn().endswith(c.queue_name)
    body = f'{{"hello": "{uuid.uuid4().hex}"}}'
    queue.send(body)
    mine = []
    for _ in range(5):  # the queue also holds S3's test event from the bucket's notification set-up
        mine = [m for m in queue.receive(10, wait_seconds=1) if m.body == body]
        if mine:
            break
    assert len(mine) == 1
    queue.set_visibility(mine[0].receipt, 0)
    again = [m for m in queue.receive(10, wait_seconds=1) if m.body == body]
    assert len(again) == 1 and again[0].receive_count == 2
    assert queue.delete_batch([again[0].receipt]) == []
    assert queue.depth()["in_flight"] <= 1  # only the S3 test event may be in flight


def test_ses_through_the_assumed_role_on_trimmed_data(stack, lean, aws_emulator):
    c = stack.cfg.customers[0]
    ses = TenantSes(lean, stack.cfg, c)
    contacts = ses.list_contacts(c.contact_list)
    assert contacts and ses.assume_role_calls == 1
    to = contacts[0]["EmailAddress"]
    subject = f"Trimmed {uuid.uuid4().hex[:6]}"
    ses.send(sender=c.sender, to=to, subject=subject, html="<p>x</p>", text="x",
             contact_list=c.contact_list, topic="aws-approval")
    assert any(m.subject == subject and to in m.to for m in aws_emulator.sent_emails())


def test_a_queue_resolved_at_first_use(stack, lean):
    """A tenant's DLQ is looked up at its first call (one GetQueueUrl less in every tenant's
    start); a missing queue then fails there, as it fails at construction by default."""
    from runtime.adapters.aws import call_counts
    from runtime.domain.errors import NotFound

    c = stack.cfg.customers[0]
    before = call_counts().get("sqs.GetQueueUrl", 0)
    dlq = SqsQueue(lean, c.dlq_name, resolve=False)
    assert call_counts().get("sqs.GetQueueUrl", 0) == before
    assert dlq.depth()["visible"] >= 0
    assert dlq.url.endswith(c.dlq_name) and call_counts()["sqs.GetQueueUrl"] == before + 1
    dlq.depth()
    assert call_counts()["sqs.GetQueueUrl"] == before + 1  # looked up once
    missing = SqsQueue(lean, f"ttr-missing-{uuid.uuid4().hex[:8]}", resolve=False)
    with pytest.raises(NotFound):
        missing.depth()
    with pytest.raises(NotFound):
        SqsQueue(lean, missing.name)
