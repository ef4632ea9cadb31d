"""Reading a change's delivery ledgers back (the portal and ``ttr change view`` share the reader):
the ledgers by (customer, transition), the SES feedback beside each merged in, the rest ignored,
and parsed documents reused while their ETag holds. Against the moto server over HTTP."""

from __future__ import annotations

import json

import pytest

from runtime.adapters.s3 import S3ObjectStore
from runtime.domain.errors import InvalidInput
from runtime.services.ledger import LedgerCache, read_ledgers

CID = "CHG-ledger-reads"


class CountingStore:
    """The real S3 store, counting the object reads (the cache's whole point)."""

    def __init__(self, store):
        self.store, self.gets = store, 0

    def get(self, key):
        self.gets += 1
        return self.store.get(key)

    def list(self, prefix):
        return self.store.list(prefix)


def put(store, key, doc):
    store.put(key, json.dumps(doc).encode() if not isinstance(doc, bytes) else doc)


def test_ledgers_with_their_feedback_and_nothing_else(stack):
    store = S3ObjectStore(stack.clients, stack.cfg.bucket)
    put(store, f"ledger/{CID}/hts/1.json", {"recipients": {"a@x": {"status": "sent"}}})
    put(store, f"ledger/{CID}/hts/1.feedback.json", {"recipients": {"a@x": [{"kind": "bounce", "permanent": True}]}})
    put(store, f"ledger/{CID}/hts/2.json", {"recipients": {}, "skipped": {"b@x": "unsubscribed_all"}})
    put(store, f"ledger/{CID}/acme/3.feedback.json", {"recipients": {}})     # feedback without its ledger
    put(store, f"ledger/{CID}/hts/notes.json", {"x": 1})                     # not a transition
    put(store, f"ledger/{CID}/hts/4.json", b"{not json")                     # unreadable
    put(store, f"ledger/{CID}-other/hts/1.json", {"recipients": {}})         # another change

    got = read_ledgers(store, CID)
    assert set(got) == {("hts", 1), ("hts", 2)}
    assert got[("hts", 1)]["feedback"]["recipients"]["a@x"][0]["kind"] == "bounce"
    assert "feedback" not in got[("hts", 2)] and got[("hts", 2)]["skipped"] == {"b@x": "unsubscribed_all"}

    with pytest.raises(InvalidInput):
        read_ledgers(store, "../archive")


def test_the_cache_rereads_only_what_changed(stack):
    real = S3ObjectStore(stack.clients, stack.cfg.bucket)
    put(real, f"ledger/{CID}/hts/1.json", {"recipients": {"a@x": {"status": "sent"}}})
    put(real, f"ledger/{CID}/hts/2.json", {"recipients": {}})
    store, cache = CountingStore(real), LedgerCache(size=10)
    first = read_ledgers(store, CID, cache=cache)
    assert store.gets == 2
    assert read_ledgers(store, CID, cache=cache) == first and store.gets == 2   # nothing changed: no reads
    put(real, f"ledger/{CID}/hts/2.json", {"recipients": {"c@x": {"status": "sent"}}})
    again = read_ledgers(store, CID, cache=cache)
    assert store.gets == 3 and set(again[("hts", 2)]["recipients"]) == {"c@x"}
    # and it stays bounded
    small = LedgerCache(size=1)
    read_ledgers(CountingStore(real), CID, cache=small)
    assert len(small) == 1
