"""The meeting of a change, as data: what to ask Graph for, and what to record afterwards.

Pure functions only (no I/O). ``runtime.adapters.graph`` turns a ``MeetingRequest`` into Graph
calls and Graph's answers into ``CalendarEvent``s; the coordinator records ``meeting_metadata``.

Exactly one meeting per change (ARCHITECTURE.md rule 4) rests on two values derived here from
the changeId alone, so that every process, actor restart and retry computes the same ones:
- ``transaction_id``: Graph drops a create that repeats a transactionId it has seen;
- the ``EXTENDED_PROPERTY_ID`` tag: after an ambiguous failure the coordinator looks the event
  up by changeId instead of creating a second one (Graph's de-duplication window is not
  documented, so it is not trusted alone).
"""

from __future__ import annotations

import html
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Mapping, Sequence
from urllib.parse import quote

from runtime.domain.errors import InvalidInput, RejectedInput
from runtime.domain.model import check_timezone, parse_rfc3339

# Graph's limit of attendees per event. Above it we create no meeting (meeting_failed).
MAX_ATTENDEES = 500

# A single-value extended property in MAPI's "named property" form: {property set GUID} + name.
# The GUID is ours and fixed forever: changing it would make every existing meeting invisible
# to find_by_change (and so invite a duplicate).
EXTENDED_PROPERTY_ID = "String {3c0c5a43-6f0e-4d3c-9a5b-2f1e7d8b4a61} Name ttrChangeId"

# uuid5 namespace for transactionIds. Fixed for the same reason as the property GUID.
_TRANSACTION_NAMESPACE = uuid.UUID("8a2f4d1e-5b7c-4e3a-9f60-1d2c3b4a5e6f")

_GRAPH_DATETIME = "%Y-%m-%dT%H:%M:%S"


def transaction_id(change_id: str) -> str:
    """The Graph ``transactionId`` of the change's meeting: deterministic, the same everywhere."""
    return str(uuid.uuid5(_TRANSACTION_NAMESPACE, f"ttr-meeting:{change_id}"))


@dataclass(frozen=True)
class MeetingRequest:
    """Everything Graph needs to create or move the meeting of one change.

    ``start``/``end`` are wall-clock times in ``time_zone`` without an offset
    (``2026-12-08T02:00:00``), which is how Graph's ``dateTimeTimeZone`` wants them; the zone is
    the change's IANA name (Graph accepts IANA names as well as Windows ones).
    """

    subject: str
    body_html: str
    start: str
    end: str
    time_zone: str
    location: str | None
    attendees: tuple[str, ...]
    transaction_id: str
    change_id: str
    hide_attendees: bool = True  # Graph's hideAttendees: each invitee sees only the organizer and itself


@dataclass(frozen=True)
class CalendarEvent:
    """A Graph event as ttr sees it. ``start``/``end`` are ISO 8601 with an offset."""

    id: str
    subject: str
    start: str
    end: str
    join_url: str | None
    organizer: str
    attendee_count: int
    cancelled: bool = False


def _one_line(text: str) -> str:
    # A subject is one line: CR/LF would let content fold into (or forge) mail headers.
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def meeting_subject(change: Mapping) -> str:
    meeting = change.get("meeting") or {}
    custom = meeting.get("title")
    if isinstance(custom, str) and custom.strip():
        return _one_line(custom)
    name = change.get('title') or change.get('changeId', '')
    if change.get("kind") == "announcement":
        return _one_line(f"Announcement: {name}")
    return _one_line(f"Change Implementation: {name}")


def _window(change: Mapping) -> tuple[datetime, datetime, str]:
    """(start, end) as aware datetimes in the change's zone, and the zone's IANA name."""
    schedule = change.get("schedule")
    if not isinstance(schedule, Mapping):
        raise RejectedInput(f"change {change.get('changeId')}: no schedule", code="invalid_schedule")
    try:
        tz_name = schedule.get("timezone")
        tz = check_timezone(tz_name)
        start = parse_rfc3339(schedule.get("implementationStart"), "schedule.implementationStart")
        end = parse_rfc3339(schedule.get("implementationEnd"), "schedule.implementationEnd")
    except InvalidInput as exc:  # the archive is validated on write; this is a damaged one
        raise RejectedInput(f"change {change.get('changeId')}: {exc}", code="invalid_schedule") from None
    minutes = (change.get("meeting") or {}).get("durationMinutes")
    if minutes:
        # Add in UTC: aware-datetime arithmetic in a local zone is wall-clock arithmetic, which
        # would make a meeting across a DST change an hour too long or too short.
        end = start.astimezone(timezone.utc) + timedelta(minutes=int(minutes))
    if end <= start:
        raise RejectedInput(f"change {change.get('changeId')}: the meeting ends before it starts",
                            code="invalid_schedule")
    return start.astimezone(tz), end.astimezone(tz), str(tz_name)


def _text_html(value: object) -> str:
    return html.escape(str(value)).replace("\r\n", "\n").replace("\n", "<br>\n")


def meeting_body_html(change: Mapping, *, portal_base_url: str, start: datetime | None = None,
                      end: datetime | None = None, show_customers: bool = False) -> str:
    """The invitation body. Content is free text: every value is escaped, never trusted.

    One meeting serves every customer of the change, so its body names none of them unless
    ``show_customers`` (``email.show_affected_customers``) says so."""
    change_id = str(change.get("changeId", ""))
    rows: list[tuple[str, object]] = [("Change", change_id), ("Title", change.get("title", ""))]
    if start is not None and end is not None:
        rows.append(("Window", f"{start.isoformat()} to {end.isoformat()} ({start.tzinfo})"))
    customers = change.get("customers") or []
    if customers and show_customers:
        rows.append(("Customers", ", ".join(str(c) for c in customers)))
    for label, key in (("Reason", "reason"), ("Implementation plan", "implementationPlan"),
                       ("Test plan", "testPlan"), ("Customer impact", "customerImpact"),
                       ("Rollback plan", "rollbackPlan")):
        if change.get(key):
            rows.append((label, change[key]))
    tickets = change.get("tickets") or {}
    if isinstance(tickets, Mapping):
        refs = [f"{k}: {v}" for k, v in tickets.items() if v]
        if refs:
            rows.append(("Tickets", ", ".join(refs)))
    link = f"{portal_base_url.rstrip('/')}/changes/{quote(change_id, safe='')}"
    parts = ["<html><body>", f"<h2>{_text_html(meeting_subject(change))}</h2>", "<table>"]
    parts += [f"<tr><th align=\"left\" valign=\"top\">{html.escape(label)}</th>"
              f"<td>{_text_html(value)}</td></tr>" for label, value in rows]
    parts += ["</table>",
              f"<p><a href=\"{html.escape(link, quote=True)}\">{html.escape(link)}</a></p>",
              "</body></html>"]
    return "\n".join(parts)


def _unique_addresses(attendees: Sequence[str]) -> tuple[str, ...]:
    seen: set[str] = set()
    out: list[str] = []
    for a in attendees:
        addr = (a or "").strip()
        if addr and addr.lower() not in seen:  # mailboxes are case-insensitive
            seen.add(addr.lower())
            out.append(addr)
    return tuple(out)


def build_meeting_request(change: Mapping, attendees: Sequence[str], *, portal_base_url: str,
                          show_customers: bool = False, hide_attendees: bool = True) -> MeetingRequest:
    """The meeting for this change and these attendees (gathered from every customer).

    Raises ``RejectedInput`` (code ``too_many_attendees``) above ``MAX_ATTENDEES``: Graph would
    refuse the event, so the caller records ``meeting_failed`` and still sends the emails.
    """
    change_id = change.get("changeId")
    if not isinstance(change_id, str) or not change_id:
        raise RejectedInput("a meeting needs a change with a changeId", code="invalid_change")
    people = _unique_addresses(attendees)
    if len(people) > MAX_ATTENDEES:
        raise RejectedInput(
            f"change {change_id}: {len(people)} meeting attendees, Graph allows at most {MAX_ATTENDEES}",
            code="too_many_attendees")
    start, end, tz_name = _window(change)
    location = (change.get("meeting") or {}).get("location")
    location = _one_line(location) if isinstance(location, str) and location.strip() else None
    return MeetingRequest(
        subject=meeting_subject(change),
        body_html=meeting_body_html(change, portal_base_url=portal_base_url, start=start, end=end,
                                    show_customers=show_customers),
        start=start.strftime(_GRAPH_DATETIME),
        end=end.strftime(_GRAPH_DATETIME),
        time_zone=tz_name,
        location=location,
        attendees=people,
        transaction_id=transaction_id(change_id),
        change_id=change_id,
        hide_attendees=hide_attendees,
    )


def meeting_metadata(event: CalendarEvent) -> dict:
    """The archive's ``meetingMetadata`` (CONTRACT.md): times are ISO 8601 with an offset."""
    return {
        "meetingId": event.id,
        "joinUrl": event.join_url,
        "subject": event.subject,
        "startTime": event.start,
        "endTime": event.end,
        "organizer": event.organizer,
        "attendeeCount": event.attendee_count,
    }
