"""Meetings end to end in-process: handler -> MeetingService -> msgraph-sdk -> Graph emulator over
HTTP. One change, N customers, exactly one Teams event. The archive, queues and mailers are the
in-memory doubles (runtime/testing/, held to the AWS adapters by the contract tests); the test that
each tenant's emails leave from its own account runs on the moto server."""

from __future__ import annotations

import json
import urllib.request
import uuid

import pytest

from runtime.domain.processing import plan
from runtime.local.aws_emulator import AwsEmulator
from runtime.services.archive import ArchiveRecorder
from tests.conftest import SAMPLE_DAY, window
from tests.integration.meetings_env import CUSTOMERS, Crowd, Env, memory_parts, mods

EXPECTED_ATTENDEES = {"alice@example.com", "carol@example.com", "dana@example.com", "zed@acme.example.com"}


@pytest.fixture()
def env(emu):
    """This module's meetings run on the in-memory doubles (the folder's ``env`` is on moto)."""
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


def test_cancel_cancels_once_records_once_and_announces(moto_env, emu, sample_change):
    env = moto_env  # on moto: each tenant's emails leave from its own account
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
