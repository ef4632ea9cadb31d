"""Group commit in the archive (runtime/services/archive.py, used by the ArchiveActor), against moto S3
over HTTP: a batch of records for one change is one read and one compare-and-swap, and a real
concurrent writer that wins the race loses nothing, its write or ours."""

from __future__ import annotations

import asyncio
from collections import Counter

from runtime.adapters.aws import AwsClients
from runtime.adapters.s3 import S3ObjectStore
from runtime.services.archive import ArchiveRecorder, ArchiveStore, GroupCommit
from runtime.services.lifecycle import Lifecycle


def _processed(code: str, n: int) -> dict:
    return {"type": "processed", "key": f"processed:{code}:1", "customer": code, "transition": 1, "n": n,
            "timestamp": "2026-11-30T05:00:00Z", "actor": "ttr-backend"}


def _recorder(stack) -> tuple[ArchiveRecorder, Counter, AwsClients]:
    clients = AwsClients(stack.cfg.region, stack.cfg.aws_endpoint_url)
    calls: Counter = Counter()
    clients.add_hook("before-call.s3.*", lambda model=None, **_: calls.update([model.name]) and None)
    return ArchiveRecorder(S3ObjectStore(clients, stack.cfg.bucket)), calls, clients


def _submit(stack, sample_change) -> str:
    return Lifecycle(S3ObjectStore(stack.clients, stack.cfg.bucket), stack.cfg.customer_codes).submit(
        sample_change, actor="ann").change_id


def test_a_batch_is_one_read_and_one_write(stack, sample_change):
    cid = _submit(stack, sample_change)
    recorder, calls, _ = _recorder(stack)
    batch = [([_processed(f"c{i}", i)], None) for i in range(10)] + [([], {"meetingMetadata": {"id": "ev1"}})]
    assert recorder.record_many(cid, batch) == [1] * 10 + [0]
    assert (calls["GetObject"], calls["PutObject"]) == (1, 1)
    archive = stack.get_json(f"archive/{cid}.json")
    assert sorted(m["customer"] for m in archive["modifications"] if m["type"] == "processed") == \
        [f"c{i}" for i in range(10)]
    assert archive["meetingMetadata"] == {"id": "ev1"}
    # the same batch again: idempotent, nothing written
    assert recorder.record_many(cid, batch) == [0] * 11 and calls["PutObject"] == 1


def test_a_concurrent_writer_that_wins_the_race_loses_nothing(stack, sample_change):
    cid = _submit(stack, sample_change)
    recorder, calls, clients = _recorder(stack)
    other = ArchiveStore(S3ObjectStore(stack.clients, stack.cfg.bucket))   # another process's client
    raced = []

    def race(params=None, **_):
        # Right before our compare-and-swap goes out, another writer writes the archive for real.
        if "If-Match" in (params or {}).get("headers", {}) and not raced:
            raced.append(other.update(cid, lambda c: {**c, "foreignWriter": "portal edit", "modifications": [
                *c["modifications"], {"type": "comment", "key": "comment:1", "timestamp": "2026-11-30T05:00:01Z",
                                      "actor": "bob", "text": "racing"}]}))
    clients.add_hook("before-call.s3.PutObject", race)

    batch = [([_processed(f"c{i}", i)], None) for i in range(8)]
    assert recorder.record_many(cid, batch) == [1] * 8
    assert raced, "the concurrent write did not happen"
    assert (calls["GetObject"], calls["PutObject"]) == (2, 2)   # the lost CAS, re-read, one more CAS
    archive = stack.get_json(f"archive/{cid}.json")
    assert archive["foreignWriter"] == "portal edit"
    assert any(m.get("key") == "comment:1" for m in archive["modifications"])
    assert sorted(m["customer"] for m in archive["modifications"] if m["type"] == "processed") == \
        [f"c{i}" for i in range(8)]


def test_requests_that_arrive_together_share_a_write(stack, sample_change):
    cid = _submit(stack, sample_change)
    recorder, calls, _ = _recorder(stack)
    group = GroupCommit(recorder.record_many)

    async def main():
        return await asyncio.gather(*(group.submit(cid, ([_processed(f"c{i}", i)], None)) for i in range(12)))

    results = asyncio.run(main())
    assert [n for n, _ in results] == [1] * 12
    # all twelve were queued before the commit ran: one read, one compare-and-swap
    assert group.batches == [12] and (calls["GetObject"], calls["PutObject"]) == (1, 1)
    archive = stack.get_json(f"archive/{cid}.json")
    assert len([m for m in archive["modifications"] if m["type"] == "processed"]) == 12


def test_one_bad_request_does_not_fail_the_others(stack, sample_change):
    cid = _submit(stack, sample_change)
    recorder, _, _ = _recorder(stack)
    group = GroupCommit(recorder.record_many)

    async def main():
        good = [group.submit(cid, ([_processed(f"c{i}", i)], None)) for i in range(3)]
        bad = group.submit(cid, ([], {"changeId": "CHG-other"}))   # an archive write may not change the id
        return await asyncio.gather(*good, bad, return_exceptions=True)

    *good, bad = asyncio.run(main())
    assert [g[0] for g in good] == [1, 1, 1]
    assert type(bad).__name__ == "InvalidInput" and "changeId" in str(bad)
    assert stack.get_json(f"archive/{cid}.json")["changeId"] == cid


def test_the_next_batch_starts_from_the_copy_it_wrote_and_a_foreign_write_is_still_seen(stack, sample_change):
    cid = _submit(stack, sample_change)
    recorder, calls, _ = _recorder(stack)
    recorder.record_many(cid, [([_processed("c0", 0)], None)])
    assert (calls["GetObject"], calls["PutObject"]) == (1, 1)
    recorder.record_many(cid, [([_processed("c1", 1)], None)])       # nobody wrote since: no read
    assert (calls["GetObject"], calls["PutObject"]) == (1, 2)
    ArchiveStore(S3ObjectStore(stack.clients, stack.cfg.bucket)).update(
        cid, lambda c: {**c, "foreignWriter": "cli"})                # someone else writes
    recorder.record_many(cid, [([_processed("c2", 2)], None)])       # lost CAS, re-read, CAS
    assert (calls["GetObject"], calls["PutObject"]) == (2, 4)
    # "nothing to write" is only decided on a fresh read
    assert recorder.record_many(cid, [([_processed("c2", 2)], None)]) == [0]
    assert (calls["GetObject"], calls["PutObject"]) == (3, 4)
    archive = stack.get_json(f"archive/{cid}.json")
    assert archive["foreignWriter"] == "cli"
    assert sorted(m["customer"] for m in archive["modifications"] if m["type"] == "processed") == ["c0", "c1", "c2"]
