"""Meetings end to end in-process: handler -> MeetingService -> msgraph-sdk -> Graph emulator over
HTTP. One change, N customers, exactly one Teams event. The archive, queues and mailers are the
in-memory doubles (runtime/testing/, held to the AWS adapters by the contract tests); the test that
each tenant's emails leave from its own account runs on the moto server."""

from __future__ import annotations

import json
import urllib.request
import uuid
from dataclasses import dataclass

import pytest

from tests.conftest import SAMPLE_DAY

from runtime.adapters.graph import GraphCalendar
from runtime.adapters.s3 import S3ObjectStore
from runtime.adapters.ses import TenantSes
from runtime.adapters.sqs import SqsQueue
from runtime.services.archive import ArchiveRecorder, ArchiveStore
from runtime.services.meeting_service import BlockingMeetings, LocalAttendees, MeetingService, sync_load, sync_record
from runtime.services.handler import TriggerHandler
from runtime.services.lifecycle import Lifecycle
from runtime.local.aws_emulator import AwsEmulator
from runtime.services.pacing import RateLimiter
from runtime.domain.processing import plan
from runtime.testing.memory_stack import MemoryStack
from tests.conftest import GRAPH_ORGANIZER, make_stack, memory_config, window

CUSTOMERS = ["hts", "htsnonprod", "acme"]
EXPECTED_ATTENDEES = {"alice@example.com", "carol@example.com", "dana@example.com", "zed@acme.example.com"}


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
    def __init__(self, parts: Parts, emu, *, timeout=30.0, attendees=None, recorder=None):
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


@pytest.fixture()
def stack3(aws_emulator, tmp_path):
    return make_stack(aws_emulator.endpoint_url, tmp_path, three_customers)


@pytest.fixture()
def emu(graph_emulator):
    graph_emulator.reset()
    return graph_emulator


@pytest.fixture()
def env(emu):
    e = Env(memory_parts(), emu)
    yield e
    e.close()


def fault(emu, **spec):
    req = urllib.request.Request(emu.root_url + "/_emulator/faults", data=json.dumps(spec).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.status in (200, 201, 202)


def approved(env, sample_change, **over):
    title = f"Meeting {uuid.uuid4().hex[:8]}"
    cid = env.lc.submit({**sample_change, "title": title, "customers": CUSTOMERS, **over}, actor="ann").change_id
    env.lc.transition(cid, "approve", actor="bob")
    return cid, title


def events_of(emu, title):
    """The emulator's events of this test's change: the session shares the emulator, and an event
    whose create an earlier test let time out may still land after the reset."""
    return [e for e in emu.events() if title in e["subject"]]


def instant(value):
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def mods(change, type_):
    return [m for m in change["modifications"] if m["type"] == type_]


def all_done(change):
    return all(not plan(change, c).steps for c in change["customers"])


def test_three_customers_one_event_exact_attendees(env, emu, sample_change):
    cid, title = approved(env, sample_change)
    env.process()
    ch = env.change(cid)
    assert all_done(ch)
    [event] = events_of(emu, title)
    assert {a["emailAddress"]["address"].lower() for a in event["attendees"]} == EXPECTED_ATTENDEES
    assert event["subject"] == f"Change Implementation: {title}"
    assert len(mods(ch, "meeting_scheduled")) == 1
    md = ch["meetingMetadata"]
    assert md["meetingId"] == event["id"] and md["joinUrl"] == event["onlineMeeting"]["joinUrl"]
    start = sample_change["schedule"]["implementationStart"]           # 02:00 New York, 8 days from today
    assert md["attendeeCount"] == 4 and instant(md["startTime"]) == instant(start)
    # the meeting runs from implementationStart, in the change's own time zone
    assert event["start"]["timeZone"] == "America/New_York" and event["start"]["dateTime"].startswith(
        start[:19])


def test_throttling_and_unavailability_before_and_during_create_still_one_event(emu, sample_change):
    env = Env(memory_parts(), emu, timeout=1.0)
    try:
        cid, title = approved(env, sample_change)
        fault(emu, status=429, count=2, retryAfter=1)      # absorbed by the SDK's retry
        fault(emu, status=503, count=1)
        fault(emu, delay=2, count=1)                        # the create lands, but after our timeout
        outcomes = env.process(rounds=10)
        assert any(not o.ack and "Timeout" in o.error for o in outcomes)
        ch = env.change(cid)
        assert all_done(ch)
        assert len(events_of(emu, title)) == 1
        assert len(mods(ch, "meeting_scheduled")) == 1 and ch["meetingMetadata"]["meetingId"] == events_of(emu, title)[0]["id"]
    finally:
        env.close()


class FailFirstMeetingRecord(ArchiveRecorder):
    """The archive write after a successful create fails once (an archive outage, or a crash)."""

    failed = False

    def record(self, change_id, records, set_fields=None):
        if not self.failed and set_fields and "meetingMetadata" in set_fields:
            self.failed = True
            from runtime.domain.errors import RetryableError

            raise RetryableError("s3.PutObject: 503 SlowDown", operation="s3.PutObject")
        return super().record(change_id, records, set_fields)


def test_failed_record_after_create_is_retried_to_the_same_event(emu, sample_change):
    parts = memory_parts()
    recorder = FailFirstMeetingRecord(parts.store)
    env = Env(parts, emu, recorder=recorder)
    try:
        cid, title = approved(env, sample_change)
        outcomes = env.process(rounds=10)
        assert recorder.failed and any(not o.ack for o in outcomes)
        ch = env.change(cid)
        events = events_of(emu, title)
        assert all_done(ch) and len(events) == 1
        assert ch["meetingMetadata"]["meetingId"] == events[0]["id"]
        assert ch["meetingIntent"]["transactionId"] == events[0]["transactionId"]
        # the emails were not sent twice by the retry
        assert sorted(to for to, _ in env.sent(title)["hts"]) == sorted(["alice@example.com", "alice@example.com",
                                                                        "chris@example.com"])
    finally:
        env.close()


def test_reschedule_moves_the_same_event_once(env, emu, sample_change):
    cid, title = approved(env, sample_change)
    env.process()
    first = events_of(emu, title)[0]
    moved = window(10, start="02:00", hours=1)                         # 02:00-03:00 New York, 10 days on
    moved["implementationEnd"] = window(10, start="03:30")["implementationStart"]
    env.lc.transition(cid, "reschedule", actor="bob", params={"start": moved["implementationStart"],
                                                               "end": moved["implementationEnd"]})
    env.process()
    ch = env.change(cid)
    [event] = events_of(emu, title)
    assert event["id"] == first["id"] and event["updateCount"] == 1
    assert event["start"]["dateTime"].startswith(moved["implementationStart"][:19])
    assert len(mods(ch, "meeting_updated")) == 1
    assert instant(ch["meetingMetadata"]["startTime"]) == instant(moved["implementationStart"])
    assert instant(ch["meetingMetadata"]["endTime"]) == instant(moved["implementationEnd"])


@pytest.fixture()
def moto_env(stack3, emu):
    e = Env(moto_parts(stack3), emu)
    yield e
    e.close()


def test_cancel_cancels_once_records_once_and_announces(moto_env, emu, sample_change):
    env = moto_env
    cid, title = approved(env, sample_change)
    env.process()
    env.lc.transition(cid, "cancel", actor="bob")
    env.process()
    ch = env.change(cid)
    [event] = events_of(emu, title)
    assert event["cancelled"] and event["cancelCount"] == 1
    assert len(mods(ch, "meeting_cancelled")) == 1
    cancelled: dict[str, set] = {}
    for m in AwsEmulator.sent_emails():
        if m.subject == f"Cancelled: {title} ({SAMPLE_DAY})":
            cancelled.setdefault(m.account, set()).update(m.to)
    # approved before, so the announcement topic, from each tenant's own account
    assert cancelled == {"111111111111": {"alice@example.com", "chris@example.com"},
                         "222222222222": {"dana@example.com", "erin@example.com"},
                         "333333333333": {"Alice@Example.com", "zed@acme.example.com", "quiet@acme.example.com"}}


class Crowd(LocalAttendees):
    """One tenant with more calendar subscribers than Graph allows on one event."""

    async def calendar_recipients(self, customer):
        if customer == "acme":
            return [f"person{i}@acme.example.com" for i in range(501)]
        return await super().calendar_recipients(customer)


def test_too_many_attendees_records_meeting_failed_and_still_emails(emu, sample_change):
    env = Env(memory_parts(), emu, attendees=Crowd)
    try:
        cid, title = approved(env, sample_change)
        env.process()
        ch = env.change(cid)
        assert all_done(ch) and events_of(emu, title) == []
        [failed] = mods(ch, "meeting_failed")
        assert failed["code"] == "too_many_attendees" and failed["attendeeCount"] > 500
        assert "meetingMetadata" not in ch
        assert any(subject == f"Approved: {title} ({SAMPLE_DAY})"
                   for sent in env.sent(title).values() for _, subject in sent)
    finally:
        env.close()


def test_no_meeting_when_not_required(env, emu, sample_change):
    cid, title = approved(env, sample_change, meeting={"required": False})
    env.process()
    assert all_done(env.change(cid)) and events_of(emu, title) == []
