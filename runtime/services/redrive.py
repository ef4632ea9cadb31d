"""Operator actions: re-drive a DLQ, look at and replay refused input, list orphans.

Each is a plain function over the ports, used by the CLI (and the chaos harness)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable

from runtime.domain.config import Config
from runtime.domain.errors import InvalidInput, NotFound
from runtime.domain.model import REJECTED_PREFIX, TRIGGER_PREFIX, now_iso, parse_trigger_key
from runtime.ports import ObjectStore, Queue


def redrive(dlq: Queue, queue: Queue, *, progress: Callable[[int], None] | None = None,
            limit: int = 100_000) -> int:
    """Move every message of ``dlq`` back to ``queue`` (send first, then delete: a crash in
    between duplicates a wake-up, which processing absorbs, and loses nothing)."""
    moved = 0
    while moved < limit:
        batch = dlq.receive(10, 1)
        if not batch:
            return moved
        for m in batch:
            queue.send(m.body)
        failed = dlq.delete_batch([m.receipt for m in batch])
        moved += len(batch) - len(failed)
        if progress:
            progress(moved)
    return moved


@dataclass
class RejectedEntry:
    key: str
    customer: str
    reason: str
    input_key: str
    rejected_at: str
    replayed_at: str | None

    def to_json(self) -> dict:
        return self.__dict__.copy()


def list_rejected(store: ObjectStore, customers: list[str]) -> list[RejectedEntry]:
    out = []
    for code in customers:
        for info in store.list(f"{REJECTED_PREFIX}{code}/"):
            try:
                rec = json.loads(store.get(info.key).body)
            except (NotFound, ValueError):
                continue
            out.append(RejectedEntry(info.key, code, rec.get("reason", ""), rec.get("key", ""),
                                     rec.get("rejectedAt", ""), rec.get("replayedAt")))
    return sorted(out, key=lambda e: e.rejected_at)


def replay_rejected(cfg: Config, store: ObjectStore, queues: dict[str, Queue], key: str) -> str:
    """Feed refused input back: a trigger is written again, a queue message re-sent."""
    if not key.startswith(REJECTED_PREFIX) or ".." in key:
        raise InvalidInput(f"{key!r} is not a rejected/ key (see `ttr rejected list`)")
    try:
        rec = json.loads(store.get(key).body)
    except NotFound:
        raise InvalidInput(f"{key} not found (see `ttr rejected list`)") from None
    except ValueError:
        raise InvalidInput(f"{key} is not a rejection record") from None
    code, what = rec.get("customer"), rec.get("key", "")
    if code not in cfg.customer_codes:
        raise InvalidInput(f"{key}: customer {code!r} is not configured")
    if what.startswith(TRIGGER_PREFIX):
        try:
            owner, change_id = parse_trigger_key(what)
        except Exception:
            raise InvalidInput(f"{key}: {what!r} is not a valid trigger key; fix the input and submit it "
                               "again instead") from None
        if owner != code:
            raise InvalidInput(f"{key}: that trigger belongs to customer {owner}, refused for tenant isolation; "
                               "there is nothing to replay")
        body = rec.get("trigger") or json.dumps({"changeId": change_id, "customer": owner, "seq": 0,
                                                 "action": "replay", "requestedAt": now_iso()})
        store.put(what, body.encode() if isinstance(body, str) else body)
        done = f"trigger {what} written again"
    elif rec.get("message"):
        queues[code].send(rec["message"])
        done = f"message re-sent to the queue of {code}"
    else:
        raise InvalidInput(f"{key}: the record keeps nothing that can be replayed")
    rec["replayedAt"] = now_iso()
    store.put(key, json.dumps(rec, indent=1).encode())
    return done
