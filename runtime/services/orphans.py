"""Orphaned triggers: triggers older than a threshold.

A trigger outlives its processing only when something went wrong (a message in the DLQ, a lost
event, a crash at the wrong moment). The reconciler looks at each stale trigger:
- transitions still pending for that customer: send a wake-up to the tenant's own queue, at most
  ``max_wakeups`` times, spaced by the threshold; after that it is reported as stuck and left
  alone (beside the DLQ), so a poison change cannot loop forever;
- nothing pending: the work is done and the trigger is only litter: delete it.
Wake-up counts live in ``ledger/{changeId}/{code}/wakeups.json`` so a restarted runtime keeps them.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import timezone
from typing import Callable, Mapping

from runtime.domain.config import Config
from runtime.domain.errors import InvalidInput, NotFound, RejectedInput, TtrError
from runtime.domain.model import LEDGER_PREFIX, TRIGGER_PREFIX, parse_trigger_key
from runtime.domain.processing import plan
from runtime.ports import ObjectStore, Queue
from runtime.services.archive import ArchiveStore

DEFAULT_THRESHOLD_S = 600.0   # ten minutes: the seed's warning level for trigger age
DEFAULT_MAX_WAKEUPS = 3


@dataclass
class Orphan:
    key: str
    customer: str
    change_id: str
    age_s: float
    pending: list[int] = field(default_factory=list)
    wakeups: int = 0
    state: str = ""           # pending | done | unknown-change | stuck
    action: str = ""          # woken | deleted | none

    def to_json(self) -> dict:
        return asdict(self)


def wakeups_key(change_id: str, customer: str) -> str:
    return f"{LEDGER_PREFIX}{change_id}/{customer}/wakeups.json"


class OrphanReconciler:
    def __init__(self, cfg: Config, store: ObjectStore, queues: Mapping[str, Queue], *,
                 threshold_s: float = DEFAULT_THRESHOLD_S, max_wakeups: int = DEFAULT_MAX_WAKEUPS,
                 clock: Callable[[], float] = time.time):
        self.cfg, self.store, self.queues = cfg, store, queues
        self.reader = ArchiveStore(store)
        self.threshold_s, self.max_wakeups, self.clock = threshold_s, max_wakeups, clock
        self.totals: Counter = Counter()

    def _wakeups(self, change_id: str, customer: str) -> tuple[dict, str | None]:
        try:
            obj = self.store.get(wakeups_key(change_id, customer))
            return json.loads(obj.body), obj.etag
        except NotFound:
            return {"count": 0, "last": 0.0}, None

    def scan(self) -> list[Orphan]:
        """Every trigger older than the threshold, with what is pending for it (reads only)."""
        now = self.clock()
        out: list[Orphan] = []
        for code in self.cfg.customer_codes:
            for info in self.store.list(f"{TRIGGER_PREFIX}{code}/"):
                age = now - info.last_modified.astimezone(timezone.utc).timestamp()
                if age < self.threshold_s:
                    continue
                try:
                    cust, change_id = parse_trigger_key(info.key)
                except RejectedInput:
                    out.append(Orphan(info.key, code, "", age, state="unknown-change"))
                    continue
                o = Orphan(info.key, cust, change_id, age)
                try:
                    change, _ = self.reader.load(change_id)
                    o.pending = [s.seq for s in plan(change, cust).steps]
                    o.state = "pending" if o.pending else "done"
                except (NotFound, InvalidInput, RejectedInput):
                    o.state = "unknown-change"  # the handler rejects it once woken
                o.wakeups = int(self._wakeups(change_id, cust)[0].get("count", 0)) if change_id else 0
                if o.state != "done" and o.wakeups >= self.max_wakeups:
                    o.state = "stuck"
                out.append(o)
        return out

    def run_once(self) -> list[Orphan]:
        """One pass: wake, delete, or report as stuck. Returns what it saw, with the action."""
        seen = self.scan()
        for o in seen:
            try:
                if o.state == "done":
                    self.store.delete(o.key)
                    o.action = "deleted"
                elif o.state in ("pending", "unknown-change") and o.change_id:
                    o.action = "woken" if self._wake(o) else "none"
                else:
                    o.action = "none"
            except TtrError as exc:
                o.action = f"error: {exc}"[:200]
            self.totals[o.action if not o.action.startswith("error") else "errors"] += 1
            if o.state == "stuck":
                self.totals["stuck"] += 1
        return seen

    def _wake(self, o: Orphan) -> bool:
        state, etag = self._wakeups(o.change_id, o.customer)
        if self.clock() - float(state.get("last", 0)) < self.threshold_s:
            return False  # woken recently: give that wake-up time to work
        new = {"count": int(state.get("count", 0)) + 1, "last": self.clock(), "key": o.key}
        try:
            if etag is None:
                self.store.put(wakeups_key(o.change_id, o.customer), json.dumps(new).encode(), if_none_match=True)
            else:
                self.store.put(wakeups_key(o.change_id, o.customer), json.dumps(new).encode(), if_match=etag)
        except TtrError:
            return False  # another reconciler pass got there first
        self.queues[o.customer].send(json.dumps({"ttrWakeup": True, "changeId": o.change_id,
                                                 "customer": o.customer, "attempt": new["count"]}))
        o.wakeups = new["count"]
        return True
