"""An in-memory implementation of the ``Queue`` port, with SQS's semantics where the pump relies
on them: long polls that wait for a message, visibility timeouts, receive counts, receipts that
change with each receive, batched deletes that may fail per receipt. Every call is recorded
(``calls``), so tests can say what the pump did and how often. Thread-safe: the pump calls it
from worker threads.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field

from runtime.domain.errors import PermanentError, RetryableError
from runtime.ports import QueueMessage


@dataclass
class _Held:
    message_id: str
    body: str
    sent_at: float
    receive_count: int = 0
    visible_at: float = 0.0
    receipt: str = ""


@dataclass
class MemoryQueue:
    name: str = "memory"
    visibility: float = 60.0
    clock: object = time.time
    calls: list[tuple] = field(default_factory=list)
    fail_next: dict[str, int] = field(default_factory=dict)   # operation -> how many calls fail
    delete_refuses: set[str] = field(default_factory=set)     # receipts whose delete fails

    def __post_init__(self) -> None:
        self._messages: dict[str, _Held] = {}
        self._ids = itertools.count(1)
        self._cond = threading.Condition()

    # -- the port --------------------------------------------------------------------------------
    def send(self, body: str) -> str:
        with self._cond:
            mid = f"m{next(self._ids)}"
            self._messages[mid] = _Held(mid, body, self.clock())
            self._cond.notify_all()
        return mid

    def receive(self, max_messages: int, wait_seconds: int) -> list[QueueMessage]:
        self._record("receive", max_messages, wait_seconds)
        deadline = time.monotonic() + wait_seconds
        with self._cond:
            while True:
                now = self.clock()
                ready = [h for h in self._messages.values() if h.visible_at <= now][:max(1, min(10, max_messages))]
                if ready or time.monotonic() >= deadline:
                    break
                self._cond.wait(min(0.05, max(0.0, deadline - time.monotonic())))
            out = []
            for h in ready:
                h.receive_count += 1
                h.visible_at = now + self.visibility
                h.receipt = f"{h.message_id}#{h.receive_count}"
                out.append(QueueMessage(h.message_id, h.receipt, h.body, h.receive_count, h.sent_at))
            return out

    def delete_batch(self, receipts: list[str]) -> list[str]:
        self._record("delete_batch", tuple(receipts))
        failed = []
        with self._cond:
            for r in receipts:
                h = self._by_receipt(r)
                if h is None or r in self.delete_refuses:
                    failed.append(r)
                else:
                    del self._messages[h.message_id]
        return failed

    def set_visibility(self, receipt: str, seconds: int) -> None:
        self._record("set_visibility", receipt, seconds)
        with self._cond:
            h = self._by_receipt(receipt)
            if h is None:  # a receipt it does not hold (deleted, never issued): SQS refuses it too
                raise PermanentError(f"memory.set_visibility: ReceiptHandleIsInvalid: {receipt}",
                                     operation="memory.set_visibility", code="ReceiptHandleIsInvalid")
            h.visible_at = self.clock() + seconds
            self._cond.notify_all()

    def depth(self) -> dict[str, int]:
        self._record("depth")
        with self._cond:
            now = self.clock()
            visible = sum(1 for h in self._messages.values() if h.visible_at <= now)
            return {"visible": visible, "in_flight": len(self._messages) - visible}

    # -- for tests -------------------------------------------------------------------------------
    def count(self, operation: str) -> int:
        return sum(1 for c in self.calls if c[0] == operation)

    def visible_at(self, message_id: str) -> float | None:
        with self._cond:
            h = self._messages.get(message_id)
            return None if h is None else h.visible_at

    def __len__(self) -> int:
        with self._cond:
            return len(self._messages)

    def _by_receipt(self, receipt: str) -> _Held | None:
        h = self._messages.get(receipt.split("#", 1)[0])
        return h if h is not None and h.receipt == receipt else None

    def _record(self, operation: str, *args) -> None:
        self.calls.append((operation, *args))
        if self.fail_next.get(operation, 0) > 0:
            self.fail_next[operation] -= 1
            raise RetryableError(f"injected {operation} failure", operation=f"memory.{operation}")
