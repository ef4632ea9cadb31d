"""The orphan reconciler on the in-memory store and queues (the doubles of runtime/testing/, held to
S3's and SQS's semantics by the contract tests in tests/integration): it wakes a pending trigger,
deletes a finished one, and reports one that stays stuck. ``ttr orphans`` runs on moto in
tests/integration/test_operations.py."""

from __future__ import annotations

import time

from runtime.domain.processing import parse_message
from runtime.services.lifecycle import Lifecycle
from runtime.services.orphans import OrphanReconciler
from runtime.testing.memory_stack import MemoryStack
from tests.conftest import memory_config


def test_reconciler_wakes_pending_then_reports_stuck_and_deletes_finished(sample_change):
    aws = MemoryStack(memory_config())
    cfg, store, qs = aws.cfg, aws.store, aws.queues
    lc = Lifecycle(store, cfg.customer_codes)
    pending = lc.submit({**sample_change, "customers": ["hts"]}, actor="ann").change_id
    finished = lc.submit({**sample_change, "customers": ["hts"]}, actor="ann").change_id
    lc.archive.update(finished, lambda c: {**c, "modifications": c["modifications"] + [
        {"type": "processed", "key": "processed:hts:1", "customer": "hts", "transition": 1}]})
    aws.messages("hts")                              # the submits' S3 events: the reconciler's own sends follow
    now = [time.time()]
    rec = OrphanReconciler(cfg, store, qs, threshold_s=600, max_wakeups=2, clock=lambda: now[0])
    assert rec.run_once() == []                      # young triggers are left alone
    now[0] += 601
    seen = {o.change_id: o for o in rec.run_once()}
    assert seen[pending].state == "pending" and seen[pending].action == "woken" and seen[pending].pending == [1]
    assert seen[finished].state == "done" and seen[finished].action == "deleted"
    assert f"customers/hts/{finished}.json" not in store.keys("customers/")
    [wake] = aws.messages("hts")
    parsed = parse_message(wake.body, "hts")
    assert parsed.wakeup and parsed.events[0].change_id == pending
    # woken again only after another threshold, and at most max_wakeups times
    assert rec.run_once()[0].action == "none"
    now[0] += 601
    assert rec.run_once()[0].action == "woken"
    now[0] += 601
    stuck = rec.run_once()[0]
    assert stuck.state == "stuck" and stuck.action == "none" and stuck.wakeups == 2
    assert len(aws.messages("hts")) == 1 and aws.messages("htsnonprod") == []
    assert rec.totals["woken"] == 2 and rec.totals["deleted"] == 1 and rec.totals["stuck"] == 1
