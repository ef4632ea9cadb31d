"""The operator commands against the moto server (the orphan reconciler itself runs on the
in-memory doubles: tests/unit/test_orphans.py)."""

from __future__ import annotations

import json
import time

from runtime.adapters.s3 import S3ObjectStore
from runtime.adapters.sqs import SqsQueue
from runtime.services.lifecycle import Lifecycle


def queues(stack):
    return {c.code: SqsQueue(stack.clients, c.queue_name) for c in stack.cfg.customers}


def drain(q, timeout=5.0):
    out, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = q.receive(10, 1)
        if not batch:
            break
        out += batch
        q.delete_batch([m.receipt for m in batch])
    return [m for m in out if "TestEvent" not in m.body]




def test_ttr_orphans_lists_stale_triggers(stack, sample_change, run_cli):
    store = S3ObjectStore(stack.clients, stack.cfg.bucket)
    cid = Lifecycle(store, stack.cfg.customer_codes).submit({**sample_change, "customers": ["hts"]},
                                                            actor="ann").change_id
    code, out, err = run_cli("orphans", "--older-than", "0", "--json", "--config", stack.path)
    assert code == 0, err
    [o] = json.loads(out)
    assert o["change_id"] == cid and o["pending"] == [1] and o["state"] == "pending"
    code, out, _ = run_cli("orphans", "--older-than", "0", "--config", stack.path)
    assert cid in out and "pending" in out
    code, _, err = run_cli("orphans", "--customer", "nobody", "--config", stack.path)
    assert code == 2 and "unknown customer" in err


def test_dlq_redrive_moves_everything_back(stack, run_cli):
    c = stack.cfg.customer("hts")
    dlq, q = SqsQueue(stack.clients, c.dlq_name), SqsQueue(stack.clients, c.queue_name)
    drain(q)
    for i in range(13):
        dlq.send(json.dumps({"ttrWakeup": True, "changeId": f"CHG-{i}"}))
    code, out, err = run_cli("dlq", "redrive", "--customer", "hts", "--config", stack.path)
    assert code == 0, err
    assert "hts: 13 message(s) moved" in out
    assert dlq.depth()["visible"] == 0
    assert len(drain(q)) == 13


def test_rejected_list_and_replay_once_fixed(stack, sample_change, run_cli):
    from runtime.adapters.ses import TenantSes
    from runtime.services.archive import ArchiveRecorder
    from runtime.services.handler import TriggerHandler
    from runtime.services.pacing import RateLimiter

    store = S3ObjectStore(stack.clients, stack.cfg.bucket)
    c = stack.cfg.customer("hts")
    h = TriggerHandler(cfg=stack.cfg, customer=c, store=store, mailer=TenantSes(stack.clients, stack.cfg, c),
                       archive=ArchiveRecorder(store), limiter=RateLimiter(1000))
    q = SqsQueue(stack.clients, c.queue_name)
    drain(q)
    # a trigger that arrives before its change exists (written by hand, out of order)
    stack.s3.put_object(Bucket=stack.cfg.bucket, Key="customers/hts/CHG-early.json", Body=b'{"changeId": "CHG-early"}')
    [m] = drain(q)
    assert h.handle(m).rejected
    code, out, err = run_cli("rejected", "list", "--json", "--config", stack.path)
    [entry] = json.loads(out)
    assert entry["input_key"] == "customers/hts/CHG-early.json" and "unknown change" in entry["reason"]
    # the cause is fixed: the change now exists; replay feeds the trigger back in
    Lifecycle(store, stack.cfg.customer_codes).submit({**sample_change, "changeId": "CHG-early",
                                                       "customers": ["hts"]}, actor="ann")
    drain(q)
    code, out, err = run_cli("rejected", "replay", entry["key"], "--config", stack.path)
    assert code == 0 and "written again" in out, err
    [again] = drain(q)
    assert h.handle(again).steps_done == [("CHG-early", 1)]
    code, out, _ = run_cli("rejected", "list", "--config", stack.path)
    assert "replayed" in out


def test_replay_refuses_bad_keys_and_other_tenants_input(stack, run_cli):
    code, _, err = run_cli("rejected", "replay", "archive/CHG-1.json", "--config", stack.path)
    assert code == 2 and "not a rejected/ key" in err
    code, _, err = run_cli("rejected", "replay", "rejected/hts/nothing.json", "--config", stack.path)
    assert code == 2 and "not found" in err
    stack.s3.put_object(Bucket=stack.cfg.bucket, Key="rejected/hts/x.json", Body=json.dumps(
        {"customer": "hts", "key": "customers/htsnonprod/CHG-1.json", "reason": "misrouted"}).encode())
    code, _, err = run_cli("rejected", "replay", "rejected/hts/x.json", "--config", stack.path)
    assert code == 2 and "tenant isolation" in err
    assert stack.keys("customers/htsnonprod/") == []
