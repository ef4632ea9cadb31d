"""The meetings, in-process: N tenants' handlers (on the in-memory doubles or the moto server) and
one MeetingService over the Graph emulator, without Ray (the cluster uses the CustomerActors and the MeetingCoordinator).

Shared by the meeting and recipient-view tests; their fixtures (``stack3``, ``emu``, ``env``) are
in this folder's conftest.py."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from runtime.adapters.graph import GraphCalendar
from runtime.adapters.s3 import S3ObjectStore
from runtime.adapters.ses import TenantSes
from runtime.adapters.sqs import SqsQueue
from runtime.services.archive import ArchiveRecorder, ArchiveStore
from runtime.services.handler import TriggerHandler
from runtime.services.lifecycle import Lifecycle
from runtime.services.locks import KeyedAsyncLock
from runtime.services.meeting_service import MeetingService, Record, sync_load
from runtime.services.pacing import RateLimiter
from runtime.testing.memory_stack import MemoryStack
from tests.conftest import GRAPH_ORGANIZER, memory_config

CUSTOMERS = ["hts", "htsnonprod", "acme"]


def three_customers(data):
    data["customers"].append({"code": "acme", "name": "ACME Corp",
                              "ses_role_arn": "arn:aws:iam::333333333333:role/ttr-ses-sender",
                              "queue": f"ttr-acme-{uuid.uuid4().hex[:6]}",
                              **{k: data["customers"][0][k] for k in ("contact_list",) if k in data["customers"][0]},
                              "sender": "notifications@acme.example.com"})
    data["local"]["contacts"]["acme"] = [
        {"email": "Alice@Example.com", "topics": {"aws-calendar": "OPT_IN"}},   # same person as hts's alice
        {"email": "zed@acme.example.com", "topics": {"aws-calendar": "OPT_IN"}},
        {"email": "quiet@acme.example.com"}]


class LocalAttendees:
    """AttendeeSource over in-process handlers; the cluster asks the CustomerActors."""

    def __init__(self, handlers: Mapping[str, object]):
        self.handlers = handlers

    async def calendar_recipients(self, customer: str) -> list[str]:
        return await asyncio.to_thread(self.handlers[customer].recipients, "aws-calendar")


class Crowd(LocalAttendees):
    """One tenant with more calendar subscribers than Graph allows on one event."""

    async def calendar_recipients(self, customer):
        if customer == "acme":
            return [f"person{i}@acme.example.com" for i in range(501)]
        return await super().calendar_recipients(customer)


def sync_record(recorder) -> Record:
    async def record(change_id: str, records: Sequence[dict], set_fields: dict | None) -> int:
        return await asyncio.to_thread(recorder.record, change_id, list(records), set_fields)
    return record


class BlockingMeetings:
    """The handler's ``Meetings`` port over a MeetingService running on its own event loop
    (the cluster uses the MeetingCoordinator actor).

    ``factory`` builds the service inside that loop, where its Graph client must live."""

    def __init__(self, factory: Callable[[], MeetingService]):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="ttr-meetings", daemon=True)
        self._thread.start()
        self.service: MeetingService = self.run(self._build(factory))
        self._locks = KeyedAsyncLock()

    @staticmethod
    async def _build(factory):
        return factory()

    def run(self, coro, timeout: float = 300):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _serialised(self, change_id: str, action: str, seq: int) -> str:
        async with self._locks.hold(change_id):
            return await self.service.handle(change_id, action, seq)

    def handle(self, change_id: str, step) -> str:
        return self.run(self._serialised(change_id, step.meeting, step.seq))

    def close(self) -> None:
        close = getattr(self.service.calendar, "aclose", None)
        if close:
            self.run(close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


@dataclass
class Parts:
    """What the handlers run on: the configuration, the store, each tenant's queue and mailer."""

    cfg: object
    store: object
    queues: dict
    mailers: dict


def memory_parts() -> Parts:
    m = MemoryStack(memory_config(three_customers))
    return Parts(m.cfg, m.store, m.queues, m.mailers)


def moto_parts(stack) -> Parts:
    return Parts(stack.cfg, S3ObjectStore(stack.clients, stack.cfg.bucket),
                 {c.code: SqsQueue(stack.clients, c.queue_name) for c in stack.cfg.customers},
                 {c.code: TenantSes(stack.clients, stack.cfg, c) for c in stack.cfg.customers})


class Env:
    """N tenants' handlers and one MeetingService over the Graph emulator. ``parts`` is a
    ``Parts`` (``memory_parts()``) or a moto ``Stack`` (its bucket, queues and SES)."""

    def __init__(self, parts, emu, *, timeout=30.0, attendees=None, recorder=None):
        if not isinstance(parts, Parts):
            self.stack, parts = parts, moto_parts(parts)
        self.parts, self.cfg, self.store, self.emu = parts, parts.cfg, parts.store, emu
        self.lc = Lifecycle(self.store, self.cfg.customer_codes)
        self.recorder = recorder or ArchiveRecorder(self.store)
        self.handlers = {c.code: TriggerHandler(cfg=self.cfg, customer=c, store=self.store,
                                                mailer=parts.mailers[c.code],
                                                archive=self.recorder, limiter=RateLimiter(1000))
                         for c in self.cfg.customers}
        source = attendees(self.handlers) if attendees else LocalAttendees(self.handlers)
        self.meetings = BlockingMeetings(lambda: MeetingService(
            calendar=GraphCalendar(emu.base_url, GRAPH_ORGANIZER, static_token="local", retry_delay=0,
                                   timeout=timeout, max_inline_wait=5),
            attendees=source, load=sync_load(ArchiveStore(self.store)), record=sync_record(self.recorder),
            portal_base_url=self.cfg.email.portal_base_url))
        for h in self.handlers.values():
            h.meetings = self.meetings

    def process(self, rounds=6):
        """Receive and handle every tenant's messages; unacked ones are made visible again at once."""
        outcomes = []
        for _ in range(rounds):
            busy = False
            for code in self.cfg.customer_codes:
                q = self.parts.queues[code]
                for m in q.receive(10, 0):
                    busy = True
                    out = self.handlers[code].handle(m)
                    outcomes.append(out)
                    if out.ack:
                        q.delete_batch([m.receipt])
                    else:
                        q.set_visibility(m.receipt, 0)
            if not busy:
                break
        return outcomes

    def change(self, cid):
        return json.loads(self.store.get(f"archive/{cid}.json").body)

    def sent(self, subject_part):
        """customer -> [(to, subject)] of the emails its in-memory mailer sent."""
        return {code: [(m.to, m.subject) for m in mailer.sent if subject_part in m.subject]
                for code, mailer in self.parts.mailers.items()}

    def close(self):
        self.meetings.close()


def mods(change, type_):
    return [m for m in change["modifications"] if m["type"] == type_]
