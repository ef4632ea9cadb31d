"""The meetings, in-process: N tenants' handlers on the moto server and one MeetingService over
the Graph emulator, without Ray (the cluster uses the CustomerActors and the MeetingCoordinator).

Shared by the meeting and recipient-view tests; their fixtures (``stack3``, ``emu``, ``env``) are
in this folder's conftest.py."""

from __future__ import annotations

import asyncio
import threading
import uuid
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
from tests.conftest import GRAPH_ORGANIZER

CUSTOMERS = ["hts", "htsnonprod", "acme"]


def three_customers(data):
    data["customers"].append({"code": "acme", "name": "ACME Corp",
                              "ses_role_arn": "arn:aws:iam::333333333333:role/ttr-ses-sender",
                              "queue": f"ttr-acme-{uuid.uuid4().hex[:6]}",
                              "contact_list": data["customers"][0]["contact_list"],
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


class Env:
    def __init__(self, stack, emu, *, timeout=30.0, attendees=None, recorder=None):
        self.stack, self.emu = stack, emu
        self.store = S3ObjectStore(stack.clients, stack.cfg.bucket)
        self.lc = Lifecycle(self.store, stack.cfg.customer_codes)
        self.recorder = recorder or ArchiveRecorder(self.store)
        self.handlers = {c.code: TriggerHandler(cfg=stack.cfg, customer=c, store=self.store,
                                                mailer=TenantSes(stack.clients, stack.cfg, c),
                                                archive=self.recorder, limiter=RateLimiter(1000))
                         for c in stack.cfg.customers}
        source = attendees(self.handlers) if attendees else LocalAttendees(self.handlers)
        self.meetings = BlockingMeetings(lambda: MeetingService(
            calendar=GraphCalendar(emu.base_url, GRAPH_ORGANIZER, static_token="local", retry_delay=0,
                                   timeout=timeout, max_inline_wait=5),
            attendees=source, load=sync_load(ArchiveStore(self.store)), record=sync_record(self.recorder),
            portal_base_url=stack.cfg.email.portal_base_url))
        for h in self.handlers.values():
            h.meetings = self.meetings

    def process(self, rounds=6):
        """Receive and handle every tenant's messages; unacked ones are made visible again at once."""
        outcomes = []
        for _ in range(rounds):
            busy = False
            for code in self.stack.cfg.customer_codes:
                q = SqsQueue(self.stack.clients, self.stack.cfg.customer(code).queue_name)
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
        return self.stack.get_json(f"archive/{cid}.json")

    def close(self):
        self.meetings.close()


def mods(change, type_):
    return [m for m in change["modifications"] if m["type"] == type_]
