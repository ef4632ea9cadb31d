"""The AWS side of one configuration, in memory: the bucket (with the trigger notifications
``ttr provision`` configures), each customer's queue and each customer's SES contact list.
The in-memory counterpart of the tests' moto ``Stack``, for tests of the handler, the lifecycle
and the reconciler that need no AWS wiring."""

from __future__ import annotations

from runtime.ports import QueueMessage
from runtime.testing.memory_mailer import MemoryMailer
from runtime.testing.memory_queue import MemoryQueue
from runtime.testing.memory_store import MemoryObjectStore, notify_queues


class MemoryStack:
    def __init__(self, cfg):
        self.cfg = cfg
        self.store = MemoryObjectStore(cfg.bucket)
        self.queues = {c.code: MemoryQueue(name=c.queue_name) for c in cfg.customers}
        notify_queues(self.store, cfg, self.queues)
        self.mailers = {c.code: MemoryMailer.for_customer(cfg, c) for c in cfg.customers}

    def messages(self, code: str) -> list[QueueMessage]:
        """Every message on the customer's queue now, received and deleted."""
        q, out = self.queues[code], []
        while batch := q.receive(10, 0):
            out += batch
            q.delete_batch([m.receipt for m in batch])
        return out

    def sent_to(self, title: str) -> dict[str, list[tuple[str, str]]]:
        """recipient -> [(subject, sender)] over every customer's mailer."""
        out: dict[str, list[tuple[str, str]]] = {}
        for m in self.mailers.values():
            for to, got in m.sent_to(title).items():
                out.setdefault(to, []).extend(got)
        return out
