"""Operations cover announcements like changes (moto over HTTP, the real handler in-process):
a lost S3 event is found by the orphan reconciler and woken; a message in the DLQ is re-driven
and delivered once; ``ttr orphans`` and metrics name it."""

from __future__ import annotations

import json
import uuid

from runtime.adapters.s3 import S3ObjectStore
from runtime.adapters.ses import TenantSes
from runtime.adapters.sqs import SqsQueue
from runtime.domain.processing import plan
from runtime.local.aws_emulator import AwsEmulator
from runtime.services.archive import ArchiveRecorder
from runtime.services.handler import TriggerHandler
from runtime.services.lifecycle import Lifecycle
from runtime.services.orphans import OrphanReconciler
from runtime.services.pacing import RateLimiter


def _setup(stack):
    store = S3ObjectStore(stack.clients, stack.cfg.bucket)
    lc = Lifecycle(store, stack.cfg.customer_codes, topics=[t.name for t in stack.cfg.topics])
    hts = stack.cfg.customer("hts")
    handler = TriggerHandler(cfg=stack.cfg, customer=hts, store=store, mailer=TenantSes(stack.clients, stack.cfg, hts),
                             archive=ArchiveRecorder(store), limiter=RateLimiter(1000))
    return store, lc, handler, SqsQueue(stack.clients, hts.queue_name)


def _handle_all(handler, queue) -> int:
    n = 0
    for m in queue.receive(10, 0):
        out = handler.handle(m)
        assert out.ack, out.error
        queue.delete_batch([m.receipt])
        n += 1
    return n


def _general(lc, title):
    # general-updates is OPT_IN by default: every whitelisted hts contact who did not opt out
    ann_id = lc.announce({"type": "general", "title": title, "customers": ["hts"], "summary": "s",
                          "content": "c"}, actor="alice").change_id
    lc.transition(ann_id, "approve", actor="bob")
    return ann_id


def sent(title):
    return sorted((to, m.subject) for m in AwsEmulator.sent_emails() if title in m.subject for to in m.to)


def test_a_lost_event_is_woken_by_the_orphan_reconciler(stack, run_cli):
    store, lc, handler, queue = _setup(stack)
    title = f"Orphan news {uuid.uuid4().hex[:6]}"
    ann_id = _general(lc, title)
    assert len(stack.drain_events("hts", expect=2)) == 2     # the S3 events are lost
    code, out, _ = run_cli("orphans", "--older-than", "0", "--json", "--config", stack.path)
    found = [o for o in json.loads(out) if ann_id in o["key"]]
    assert code == 0 and len(found) == 1 and found[0]["state"] == "pending" and found[0]["pending"] == [1, 2]
    rec = OrphanReconciler(stack.cfg, store, {"hts": queue}, threshold_s=0)
    assert [o.action for o in rec.run_once() if o.change_id == ann_id] == ["woken"]
    assert _handle_all(handler, queue) >= 1
    a = lc.show(ann_id)
    assert not plan(a, "hts").steps
    assert {(m["transition"], m["topic"]) for m in a["modifications"] if m["type"] == "processed"} == {
        (1, "announce-approval"), (2, "general-updates")}
    told = sent(title)
    assert told and all(s == f"General announcement: {title}" for _, s in told)  # nobody on announce-approval
    assert f"customers/hts/{ann_id}.json" not in stack.keys("customers/")


def test_a_dead_lettered_message_is_redriven_and_delivered_once(stack, run_cli):
    from tests.integration.test_observability import value

    store, lc, handler, queue = _setup(stack)
    title = f"DLQ news {uuid.uuid4().hex[:6]}"
    before = value("ttr.triggers.created", tenant="hts", kind="announcement")
    ann_id = _general(lc, title)
    assert value("ttr.triggers.created", tenant="hts", kind="announcement") == before + 2  # submit, approve
    events = stack.drain_events("hts", expect=2)
    dlq_url = stack.sqs.get_queue_url(QueueName=stack.cfg.customer("hts").dlq_name)["QueueUrl"]
    body = json.dumps({"Records": events[:1]})
    stack.sqs.send_message(QueueUrl=dlq_url, MessageBody=body)
    stack.sqs.send_message(QueueUrl=dlq_url, MessageBody=body)   # twice: delivered once all the same
    code, out, err = run_cli("dlq", "redrive", "--customer", "hts", "--config", stack.path)
    assert code == 0 and "hts: 2 message(s) moved" in out, err
    assert _handle_all(handler, queue) == 2
    assert not plan(lc.show(ann_id), "hts").steps
    told = sent(title)
    assert told and len(told) == len({to for to, _ in told})               # each reader once
