"""The ObjectStore port's contract, run against both implementations: the S3 adapter on the moto
server over HTTP, and the in-memory store (runtime/testing/memory_store.py). The same assertions
pass on both, which is what lets the handler and lifecycle tests run on the memory store."""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from runtime.domain.errors import AlreadyExists, ConflictError, NotFound, PreconditionFailed
from runtime.testing.memory_store import MemoryObjectStore


class Subject:
    """One store under test, with a way to shrink its listing pages and count them."""

    def __init__(self, store, small_pages, pages):
        self.store, self.small_pages, self.pages = store, small_pages, pages


@pytest.fixture(params=["s3", "memory"])
def subject(request):
    if request.param == "memory":
        store = MemoryObjectStore()

        def small_pages(n):
            store.page_size = n

        return Subject(store, small_pages, lambda: store.list_pages)
    from runtime.adapters.aws import AwsClients
    from runtime.adapters.s3 import S3ObjectStore

    emu = request.getfixturevalue("aws_emulator")
    clients = AwsClients("us-east-1", emu.endpoint_url)
    bucket = f"ttr-contract-{uuid.uuid4().hex[:12]}"
    clients.client("s3").create_bucket(Bucket=bucket)
    calls = []
    clients.add_hook("before-call.s3.ListObjectsV2", lambda **_: calls.append(1))

    def small_pages(n):
        # moto pages like S3 given MaxKeys; the adapter asks for S3's default (1000)
        def max_keys(params, **_):
            params["MaxKeys"] = n
        clients.add_hook("before-parameter-build.s3.ListObjectsV2", max_keys)

    return Subject(S3ObjectStore(clients, bucket), small_pages, lambda: len(calls))


def md5_etag(body: bytes) -> str:
    return f'"{hashlib.md5(body).hexdigest()}"'


def test_put_returns_the_quoted_md5_etag_and_get_returns_the_body(subject):
    s = subject.store
    etag = s.put("archive/CHG-1.json", b'{"a": 1}')
    assert etag == md5_etag(b'{"a": 1}')
    got = s.get("archive/CHG-1.json")
    assert (got.key, got.body, got.etag) == ("archive/CHG-1.json", b'{"a": 1}', etag)
    assert s.put("empty.json", b"") == md5_etag(b"")
    assert s.get("empty.json").body == b""


def test_get_of_a_missing_key_is_not_found(subject):
    with pytest.raises(NotFound):
        subject.store.get("archive/never.json")


def test_create_only_refuses_an_existing_key_and_keeps_its_body(subject):
    s = subject.store
    first = s.put("k.json", b"one", if_none_match=True)
    with pytest.raises(AlreadyExists) as caught:
        s.put("k.json", b"two", if_none_match=True)
    assert isinstance(caught.value, ConflictError)
    assert s.get("k.json").body == b"one" and s.get("k.json").etag == first


def test_compare_and_swap_on_the_etag(subject):
    s = subject.store
    v1 = s.put("k.json", b"one")
    v2 = s.put("k.json", b"two", if_match=v1)
    assert v2 == md5_etag(b"two")
    with pytest.raises(PreconditionFailed):
        s.put("k.json", b"three", if_match=v1)        # a stale ETag
    assert s.get("k.json").body == b"two"
    assert s.put("k.json", b"four", if_match=v2.strip('"')) == md5_etag(b"four")  # unquoted works too
    with pytest.raises(NotFound):
        s.put("absent.json", b"x", if_match=v2)       # nothing to compare with
    with pytest.raises(NotFound):
        s.get("absent.json")


def test_delete_removes_and_a_missing_key_is_no_error(subject):
    s = subject.store
    s.put("gone.json", b"x")
    s.delete("gone.json")
    with pytest.raises(NotFound):
        s.get("gone.json")
    s.delete("gone.json")
    s.delete("never-was.json")
    assert s.put("gone.json", b"y", if_none_match=True)   # free to create again


def test_list_yields_the_prefix_in_s3_order_with_sizes_etags_and_times(subject):
    s = subject.store
    before = datetime.now(timezone.utc) - timedelta(seconds=2)
    bodies = {"a/b": b"1", "a/B": b"22", "a/é": b"333", "a/ä/z": b"4", "a/~": b"5", "ab": b"6", "b/a": b"7"}
    etags = {k: s.put(k, v) for k, v in bodies.items()}
    listed = list(s.list("a/"))
    assert [o.key for o in listed] == ["a/B", "a/b", "a/~", "a/ä/z", "a/é"]   # UTF-8 byte order
    assert {o.key: (o.size, o.etag) for o in listed} == {k: (len(bodies[k]), etags[k]) for k in
                                                         ["a/B", "a/b", "a/~", "a/ä/z", "a/é"]}
    for o in listed:
        stamp = o.last_modified.astimezone(timezone.utc)
        assert before <= stamp <= datetime.now(timezone.utc) + timedelta(seconds=2)
        assert o.last_modified.utcoffset() is not None and stamp.microsecond == 0
    assert [o.key for o in s.list("a")] == ["a/B", "a/b", "a/~", "a/ä/z", "a/é", "ab"]
    assert list(s.list("nothing/")) == []


def test_list_reads_every_page(subject):
    subject.small_pages(2)
    s = subject.store
    keys = [f"customers/hts/CHG-{i}.json" for i in range(5)]
    for k in keys:
        s.put(k, b"{}")
    s.put("customers/other.json", b"{}")
    before = subject.pages()
    assert [o.key for o in s.list("customers/hts/")] == keys
    assert subject.pages() - before == 3          # 2 + 2 + 1


def test_concurrent_compare_and_swap_loses_no_update(subject):
    s = subject.store
    s.put("counter.json", b'{"n": 0}')
    errors = []

    def bump(times):
        for _ in range(times):
            while True:
                cur = s.get("counter.json")
                try:
                    s.put("counter.json", json.dumps({"n": json.loads(cur.body)["n"] + 1}).encode(),
                          if_match=cur.etag)
                    break
                except PreconditionFailed:
                    continue
                except Exception as exc:  # noqa: BLE001 - reported below
                    errors.append(exc)
                    return

    threads = [threading.Thread(target=bump, args=(5,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert json.loads(s.get("counter.json").body) == {"n": 20}


def test_concurrent_create_only_has_exactly_one_winner(subject):
    s = subject.store
    won, lost = [], []
    barrier = threading.Barrier(4)

    def create(i):
        barrier.wait()
        try:
            s.put("once.json", str(i).encode(), if_none_match=True)
            won.append(i)
        except AlreadyExists:
            lost.append(i)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(won) == 1 and len(lost) == 3
    assert s.get("once.json").body == str(won[0]).encode()


# ---------------------------------------------------------------------------------------------
# Bucket notifications: a trigger write reaches its customer's queue as an S3 event


@pytest.fixture(params=["s3", "memory"])
def notified(request, tmp_path):
    """(store, receive(code) -> the S3 event bodies on that customer's queue)."""
    if request.param == "memory":
        from runtime.testing.memory_queue import MemoryQueue
        from runtime.testing.memory_store import notify_queues
        from tests.conftest import memory_config

        cfg = memory_config()
        store = MemoryObjectStore(cfg.bucket)
        queues = {c.code: MemoryQueue(name=c.code) for c in cfg.customers}
        notify_queues(store, cfg, queues)
    else:
        from runtime.adapters.s3 import S3ObjectStore
        from runtime.adapters.sqs import SqsQueue
        from tests.conftest import make_stack

        stack = make_stack(request.getfixturevalue("aws_emulator").endpoint_url, tmp_path)
        store = S3ObjectStore(stack.clients, stack.cfg.bucket)
        queues = {c.code: SqsQueue(stack.clients, c.queue_name) for c in stack.cfg.customers}

    def receive(code, expect, timeout=10.0):
        import time

        out, deadline = [], time.monotonic() + timeout
        while len(out) < expect and time.monotonic() < deadline:
            for m in queues[code].receive(10, 1):
                if "s3:TestEvent" not in m.body:
                    out.append(m.body)
                queues[code].delete_batch([m.receipt])
        return out

    return store, receive


def test_trigger_writes_reach_their_customers_queue_as_s3_events(notified):
    from runtime.domain.processing import parse_message

    store, receive = notified
    etag = store.put("customers/hts/CHG_under_1.json", b"{}")
    store.put("customers/htsnonprod/CHG-2.json", b"{}")
    store.put("archive/CHG-2.json", b"{}")              # no rule for the archive
    store.put("customers/hts/CHG-3.txt", b"{}")         # not .json
    store.delete("customers/htsnonprod/CHG-2.json")     # deletions are not notified
    [body] = receive("hts", 1)
    record = json.loads(body)["Records"][0]
    assert record["eventSource"] == "aws:s3" and record["eventName"] == "ObjectCreated:Put"
    assert record["s3"]["object"]["eTag"] == etag.strip('"') and record["s3"]["object"]["size"] == 2
    parsed = parse_message(body, "hts")
    assert [(e.key, e.change_id) for e in parsed.events] == [("customers/hts/CHG_under_1.json", "CHG_under_1")]
    [other] = receive("htsnonprod", 1)
    assert [e.change_id for e in parse_message(other, "htsnonprod").events] == ["CHG-2"]
    assert receive("hts", 1, timeout=1.5) == [] and receive("htsnonprod", 1, timeout=1.5) == []
