"""The meeting of a change: exactly one Teams event, whatever retries, crashes and N customers do.

The MeetingCoordinator actor serialises calls per changeId and delegates here. Every customer
of a change asks for the same thing (``ensure`` after approval, ``update`` after a reschedule,
``cancel`` after a cancellation); the archive tells whether it is already done, so the second to
N-th asks are no-ops.

Exactly one event (ARCHITECTURE.md rule 4), without trusting Graph's transactionId alone:
1. record the intent (``meetingIntent``) before the first create;
2. create with the changeId-derived ``transactionId`` and the changeId extended property;
3. record ``meetingMetadata`` and ``meeting_scheduled``.
If 2 or 3 failed ambiguously (timeout, crash, archive write failure), the retry finds the intent,
looks the event up by its extended property and records that one instead of creating again.

A cancel is never retried blindly (Graph emails every attendee): the retry reads the event first.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, Mapping, Protocol

from runtime.domain.errors import NotFound, RejectedInput
from runtime.domain.meetings import CalendarEvent, build_meeting_request, meeting_metadata, transaction_id
from runtime.domain.model import now_iso
from runtime.domain.processing import BACKEND_ACTOR
from runtime.domain.recipients import merge_attendees
from runtime.ports import Calendar

log = logging.getLogger("ttr.meetings")


class AttendeeSource(Protocol):
    async def calendar_recipients(self, customer: str) -> list[str]:
        """The customer's ``aws-calendar`` subscribers, its own whitelist applied."""


Record = Callable[[str, list, "dict | None"], Awaitable[int]]
Load = Callable[[str], Awaitable[dict]]


def _has(change: Mapping, key: str) -> bool:
    return any(isinstance(m, Mapping) and m.get("key") == key for m in change.get("modifications", []))


class MeetingService:
    def __init__(self, *, calendar: Calendar, attendees: AttendeeSource, load: Load, record: Record,
                 portal_base_url: str, clock: Callable[[], str] = now_iso,
                 show_customers: bool = False, hide_attendees: bool = True):
        self.calendar = calendar
        self.attendees = attendees
        self.load = load
        self.record = record
        self.portal = portal_base_url
        self.clock = clock
        self.show_customers = show_customers   # email.show_affected_customers
        self.hide_attendees = hide_attendees   # graph.hide_attendees

    def _rec(self, type_: str, key: str, **fields) -> dict:
        return {"type": type_, "key": key, "timestamp": self.clock(), "actor": BACKEND_ACTOR, **fields}

    async def _gather(self, change: Mapping) -> list[str]:
        lists = await asyncio.gather(*(self.attendees.calendar_recipients(c) for c in change.get("customers", [])))
        return merge_attendees(lists)

    async def _request(self, change: dict, what: str):
        """The meeting request, or None after recording ``meeting_failed`` (too many attendees)."""
        people = await self._gather(change)
        try:
            return build_meeting_request(change, people, portal_base_url=self.portal,
                                         show_customers=self.show_customers, hide_attendees=self.hide_attendees)
        except RejectedInput as exc:
            log.error("change %s: no meeting: %s", change["changeId"], exc)
            await self.record(change["changeId"], [self._rec(
                "meeting_failed", f"meeting_failed:{what}", reason=str(exc), code=exc.code,
                attendeeCount=len(people))], None)
            return None

    async def _record_event(self, change_id: str, event: CalendarEvent, type_: str, key: str) -> None:
        md = meeting_metadata(event)
        await self.record(change_id, [self._rec(type_, key, meetingId=event.id, meetingMetadata=md)],
                          {"meetingMetadata": md})

    # -- ensure ------------------------------------------------------------------------------
    async def ensure(self, change_id: str) -> str:
        change = await self.load(change_id)
        if not (change.get("meeting") or {}).get("required"):
            return "not required"
        if change.get("meetingMetadata"):
            return "exists"
        if _has(change, "meeting_cancelled") or change.get("status") == "cancelled":
            return "change cancelled"
        if _has(change, "meeting_failed:ensure"):
            return "failed before"
        tx = transaction_id(change_id)
        if change.get("meetingIntent"):
            # A previous attempt may have created it and died before recording: look first.
            found = await self.calendar.find_by_change(change_id)
            if found is not None and not found.cancelled:
                await self._record_event(change_id, found, "meeting_scheduled", "meeting_scheduled")
                log.info("change %s: found the meeting of an earlier attempt (%s)", change_id, found.id)
                return "recovered"
        else:
            await self.record(change_id, [], {"meetingIntent": {"transactionId": tx, "at": self.clock()}})
        req = await self._request(change, "ensure")
        if req is None:
            return "too many attendees"
        event = await self.calendar.create(req)
        await self._record_event(change_id, event, "meeting_scheduled", "meeting_scheduled")
        log.info("change %s: meeting %s created for %d attendee(s)", change_id, event.id, len(req.attendees))
        return "created"

    # -- update (reschedule) -------------------------------------------------------------------
    async def update(self, change_id: str, seq: int) -> str:
        change = await self.load(change_id)
        if _has(change, f"meeting_updated:{seq}"):
            return "done"
        md = change.get("meetingMetadata")
        if not md:
            # Never created (or not recorded yet): ensuring makes it with the current schedule.
            return await self.ensure(change_id)
        if _has(change, "meeting_cancelled"):
            return "change cancelled"
        req = await self._request(change, f"update:{seq}")
        if req is None:
            return "too many attendees"
        event = await self.calendar.update(md["meetingId"], req)
        await self._record_event(change_id, event, "meeting_updated", f"meeting_updated:{seq}")
        return "updated"

    # -- cancel ----------------------------------------------------------------------------------
    async def cancel(self, change_id: str, seq: int) -> str:
        change = await self.load(change_id)
        if _has(change, "meeting_cancelled"):
            return "done"
        md = change.get("meetingMetadata")
        event_id = md.get("meetingId") if md else None
        if event_id is None and change.get("meetingIntent"):
            found = await self.calendar.find_by_change(change_id)
            event_id = found.id if found else None
        if event_id is None:
            return "no meeting"
        try:
            current = await self.calendar.get(event_id)
            already = current.cancelled
        except NotFound:
            already = True  # Graph moves cancelled events to Deleted Items
        if not already:
            await self.calendar.cancel(event_id, f"The change {change.get('title', change_id)} was cancelled.")
        await self.record(change_id, [self._rec("meeting_cancelled", "meeting_cancelled", meetingId=event_id,
                                                transition=seq)], None)
        return "cancelled" if not already else "was cancelled"

    async def handle(self, change_id: str, action: str, seq: int) -> str:
        if action == "ensure":
            return await self.ensure(change_id)
        if action == "update":
            return await self.update(change_id, seq)
        if action == "cancel":
            return await self.cancel(change_id, seq)
        raise ValueError(f"unknown meeting action {action!r}")


def sync_load(reader) -> Load:
    async def load(change_id: str) -> dict:
        change, _ = await asyncio.to_thread(reader.load, change_id)
        return change
    return load
