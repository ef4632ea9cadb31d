"""The lifecycle's writes (the archive, then one trigger per customer) on the in-memory store
(runtime/testing/memory_store.py, held to S3's semantics by tests/integration/
test_object_store_contract.py): partial trigger failures, compare-and-swap under races."""

from __future__ import annotations

import pytest

from runtime.domain.errors import AlreadyExists, RetryableError, StaleVersion
from runtime.services.archive import ArchiveStore
from runtime.services.lifecycle import Lifecycle
from runtime.testing.memory_store import MemoryObjectStore
from runtime.testing.store_faults import FailingTriggers, RacingStore

CUSTOMERS = ("hts", "htsnonprod")


def test_failed_trigger_is_reported_and_retrigger_finishes(sample_change):
    base = MemoryObjectStore()
    store = FailingTriggers(base, "htsnonprod")
    lc = Lifecycle(store, CUSTOMERS)
    result = lc.submit(sample_change, actor="ann")
    assert result.triggers_written == ["hts"]
    assert list(result.triggers_failed) == ["htsnonprod"] and "SlowDown" in result.triggers_failed["htsnonprod"]
    assert base.keys("customers/") == [f"customers/hts/{result.change_id}.json"]
    store.failing = False
    again = lc.retrigger(result.change_id, ["htsnonprod"])
    assert again.complete and again.triggers_written == ["htsnonprod"]
    assert base.get_json(f"customers/htsnonprod/{result.change_id}.json")["seq"] == 1


def test_compare_and_swap_retries_and_loses_nobodys_write(sample_change):
    base = MemoryObjectStore()
    change_id = Lifecycle(base, CUSTOMERS).submit(sample_change, actor="a").change_id
    racing = RacingStore(base, times=3)
    result = Lifecycle(racing, CUSTOMERS).transition(change_id, "approve", actor="b")
    assert result.change["version"] == 2
    final = base.get_json(f"archive/{change_id}.json")
    assert final["otherWriter"] == [2, 1, 0] and final["status"] == "approved"
    assert [m["type"] for m in final["modifications"]] == ["submitted", "approved"]


def test_compare_and_swap_gives_up_after_bounded_attempts(sample_change):
    base = MemoryObjectStore()
    change_id = Lifecycle(base, CUSTOMERS).submit(sample_change, actor="a").change_id
    archive = ArchiveStore(RacingStore(base, times=100), attempts=3, sleep=lambda s: None)
    with pytest.raises(RetryableError, match="gave up after 3"):
        archive.update(change_id, lambda c: {**c, "touched": True})
    assert "touched" not in base.get_json(f"archive/{change_id}.json")


def test_submit_writes_the_archive_then_one_trigger_per_customer(sample_change):
    store = MemoryObjectStore()
    result = Lifecycle(store, CUSTOMERS, clock=lambda: "2026-11-30T08:00:00.000Z").submit(sample_change, actor="ann")
    cid = result.change_id
    assert result.complete and result.seq == 1 and result.triggers_written == ["hts", "htsnonprod"]
    assert store.keys() == [f"archive/{cid}.json", f"customers/hts/{cid}.json", f"customers/htsnonprod/{cid}.json"]
    archive = store.get_json(f"archive/{cid}.json")
    assert archive["status"] == "submitted" and archive["version"] == 1 and archive["createdBy"] == "ann"
    assert store.get_json(f"customers/hts/{cid}.json") == {
        "changeId": cid, "customer": "hts", "seq": 1, "action": "submit", "requestedAt": "2026-11-30T08:00:00.000Z"}


def test_an_existing_id_is_refused_and_nothing_is_written(sample_change):
    store = MemoryObjectStore()
    lc = Lifecycle(store, CUSTOMERS)
    cid = lc.submit({**sample_change, "changeId": "CHG-taken"}, actor="ann").change_id
    before = store.snapshot()
    with pytest.raises(AlreadyExists):
        lc.submit({**sample_change, "changeId": cid, "title": "Another"}, actor="eve")
    assert store.snapshot() == before


def test_a_stale_expected_version_is_refused_and_nothing_is_written(sample_change):
    store = MemoryObjectStore()
    lc = Lifecycle(store, CUSTOMERS)
    cid = lc.submit(sample_change, actor="ann").change_id
    lc.transition(cid, "approve", actor="bob", expected_version=1)
    before = store.snapshot()
    with pytest.raises(StaleVersion):
        lc.transition(cid, "cancel", actor="carl", expected_version=1)
    assert store.snapshot() == before
    assert store.get_json(f"customers/hts/{cid}.json")["seq"] == 2


def test_a_draft_is_submitted_under_its_id_and_removed(sample_change):
    store = MemoryObjectStore()
    lc = Lifecycle(store, CUSTOMERS)
    draft_id = lc.save_draft({"title": "Half done", "customers": ["hts"]}, actor="ann")
    assert store.keys("archive/") == [] and lc.load_draft(draft_id)["status"] == "draft"
    result = lc.submit({k: v for k, v in sample_change.items() if k != "title"}, actor="dora", draft_id=draft_id)
    assert result.change_id == draft_id and result.change["title"] == "Half done"
    assert store.keys() == [f"archive/{draft_id}.json", f"customers/hts/{draft_id}.json",
                            f"customers/htsnonprod/{draft_id}.json"]


class _TriggersTogether:
    """Trigger writes wait at a barrier until ``parties`` of them are in flight together (a deadline,
    not a hang, when they are written one after another); ``fail`` answers SlowDown for one."""

    def __init__(self, base, parties: int, fail: str):
        import threading

        self.base, self.fail = base, fail
        self.barrier = threading.Barrier(parties, timeout=10)

    def __getattr__(self, name):
        return getattr(self.base, name)

    def put(self, key, body, **kw):
        if key.startswith("customers/"):
            self.barrier.wait()
            if key.startswith(f"customers/{self.fail}/"):
                raise RetryableError("SlowDown: reduce your request rate", operation="s3.PutObject")
        return self.base.put(key, body, **kw)


def test_a_transitions_triggers_are_written_at_once_and_reported_in_order(sample_change):
    codes = ("c1", "c2", "c3", "c4", "c5")
    base = MemoryObjectStore()
    store = _TriggersTogether(base, parties=len(codes), fail="c3")
    result = Lifecycle(store, codes).submit({**sample_change, "customers": list(codes)}, actor="ann")
    assert result.triggers_written == ["c1", "c2", "c4", "c5"]
    assert list(result.triggers_failed) == ["c3"] and "SlowDown" in result.triggers_failed["c3"]
    assert base.keys("customers/") == sorted(f"customers/{c}/{result.change_id}.json" for c in ("c1", "c2", "c4", "c5"))
