"""The delivery ledger: who got the email for (change, customer, transition).

``ledger/{changeId}/{code}/{seq}.json`` records each recipient once sent (or refused by SES).
A retry skips recorded recipients. Entries are flushed in small batches with conditional writes,
so a crash between a send and its flush repeats at most the unflushed batch.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field

from runtime.domain.errors import AlreadyExists, NotFound, PreconditionFailed, RetryableError
from runtime.domain.model import LEDGER_PREFIX, check_change_id, ledger_key, now_iso
from runtime.ports import ObjectStore

FLUSH_EVERY = 5  # sends per ledger write: the bound on duplicates after a crash


@dataclass
class Ledger:
    store: ObjectStore
    change_id: str
    customer: str
    seq: int
    entries: dict[str, dict] = field(default_factory=dict)
    # contacts not told, and why (a recipients.SKIP_REASONS key): for the delivery views only
    skipped: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    unflushed: int = 0
    flushes: int = 0

    @property
    def key(self) -> str:
        return ledger_key(self.change_id, self.customer, self.seq)

    @classmethod
    def open(cls, store: ObjectStore, change_id: str, customer: str, seq: int) -> "Ledger":
        led = cls(store, change_id, customer, seq)
        led._load()
        return led

    def _load(self) -> None:
        try:
            obj = self.store.get(self.key)
        except NotFound:
            self.entries, self.skipped, self.etag = {}, {}, None
            return
        data = json.loads(obj.body)
        self.entries = {k.lower(): v for k, v in data.get("recipients", {}).items()}
        self.skipped = {k.lower(): str(v) for k, v in (data.get("skipped") or {}).items()}
        self.etag = obj.etag

    def done(self, address: str) -> bool:
        return address.lower() in self.entries

    def mark(self, address: str, status: str, *, message_id: str | None = None, error: str | None = None) -> None:
        entry = {"status": status, "at": now_iso()}
        if message_id:
            entry["messageId"] = message_id
        if error:
            entry["error"] = error[:500]
        self.entries[address.lower()] = entry
        self.unflushed += 1

    def skip(self, address: str, reason: str) -> None:
        """Record that ``address`` was not told, and why; it is no delivery (``done`` stays False)."""
        key = address.lower()
        if self.skipped.get(key) != reason:
            self.skipped[key] = reason
            self.unflushed += 1

    @property
    def sent(self) -> int:
        return sum(1 for e in self.entries.values() if e["status"] == "sent")

    @property
    def failed(self) -> int:
        return sum(1 for e in self.entries.values() if e["status"] == "failed")

    def flush(self, *, attempts: int = 5) -> None:
        if not self.unflushed:
            return
        for _ in range(attempts):
            body = json.dumps({"changeId": self.change_id, "customer": self.customer, "seq": self.seq,
                               "recipients": self.entries, "skipped": self.skipped}, indent=1).encode()
            try:
                if self.etag is None:
                    self.etag = self.store.put(self.key, body, if_none_match=True)
                else:
                    self.etag = self.store.put(self.key, body, if_match=self.etag)
                self.unflushed = 0
                self.flushes += 1
                return
            except (AlreadyExists, PreconditionFailed):
                # Someone else recorded sends too (a restarted twin): keep the union of both.
                mine, my_skips = dict(self.entries), dict(self.skipped)
                self._load()
                self.entries = {**self.entries, **mine}
                self.skipped = {**self.skipped, **my_skips}
        raise RetryableError(f"{self.key}: ledger write kept conflicting", operation="ledger.flush")


class LedgerCache:
    """Parsed ledger documents by key, reused while their ETag is unchanged (the portal's delivery
    view polls while a change is being delivered); the oldest go beyond ``size``."""

    def __init__(self, size: int = 5000):
        self.size = size
        self._docs: dict[str, tuple[str, dict]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._docs)

    def get(self, store: ObjectStore, key: str, etag: str) -> dict:
        hit = self._docs.get(key)
        if hit is not None and hit[0] == etag:
            return hit[1]
        data = json.loads(store.get(key).body)
        with self._lock:
            self._docs[key] = (etag, data)
            while len(self._docs) > self.size:
                self._docs.pop(next(iter(self._docs)))
        return data


def read_ledgers(store: ObjectStore, change_id: str, *,
                 cache: LedgerCache | None = None) -> dict[tuple[str, int], dict]:
    """Every delivery ledger of a change, by (customer, seq), with what SES reported since under
    ``feedback`` (``{seq}.feedback.json`` beside it, ``runtime.services.feedback``); unreadable
    ones are left out. The portal and ``ttr change view`` read them here, so both say the same."""
    out: dict[tuple[str, int], dict] = {}
    feedback: dict[tuple[str, str], dict] = {}
    for info in store.list(f"{LEDGER_PREFIX}{check_change_id(change_id)}/"):
        parts = info.key.split("/")
        if len(parts) != 4 or not parts[3].endswith(".json"):
            continue
        try:
            data = cache.get(store, info.key, info.etag) if cache is not None else json.loads(store.get(info.key).body)
        except (ValueError, NotFound):
            continue
        if parts[3].endswith(".feedback.json"):
            feedback[parts[2], parts[3][:-len(".feedback.json")]] = data
        elif parts[3][:-5].isdigit():
            out[(parts[2], int(parts[3][:-5]))] = data
    for (code, seq), data in feedback.items():
        if seq.isdigit() and (code, int(seq)) in out:
            out[(code, int(seq))] = {**out[(code, int(seq))], "feedback": data}
    return out
