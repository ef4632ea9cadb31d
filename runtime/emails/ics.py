"""The change's window as an iCalendar file (RFC 5545), for people without the Teams invite.

Pure. One VEVENT per change, whatever the email:
- ``UID`` is derived from the changeId alone, so every email about a change updates the same
  calendar entry;
- ``SEQUENCE`` is the number of lifecycle transitions before this one, so it rises with every
  move (a reschedule, then a cancel) and never goes back on a retry;
- ``METHOD:PUBLISH`` (a calendar entry to keep, not an invitation to answer); a cancellation
  publishes the same UID with ``STATUS:CANCELLED`` and a higher SEQUENCE.
Times are in UTC (``...Z``), so no VTIMEZONE is needed. Nothing names another customer.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Mapping

from runtime.domain.model import lifecycle_entries

UID_DOMAIN = "ttr.change-notifications"
PRODID = "-//ttr//Change notifications//EN"
FILENAME = "change.ics"
METHOD = "PUBLISH"


def calendar_uid(change_id: str) -> str:
    return f"{change_id}@{UID_DOMAIN}"


def _utc(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt.astimezone(timezone.utc) if dt.tzinfo else None


def _stamp(dt: datetime) -> str:
    return dt.strftime("%Y%m%dT%H%M%SZ")


def _escape(text: str) -> str:
    """TEXT values (RFC 5545 3.3.11): backslash, semicolon, comma and newlines escaped."""
    text = str(text).replace("\r\n", "\n").replace("\r", "\n")
    return text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


def _fold(line: str) -> str:
    """Lines of at most 75 octets, continued with CRLF + space (RFC 5545 3.1), never inside a
    UTF-8 sequence."""
    out: list[str] = []
    current, size = "", 0
    for ch in line:
        n = len(ch.encode("utf-8"))
        limit = 75 if not out else 74  # a continuation line starts with the space
        if size + n > limit:
            out.append(current)
            current, size = "", 0
        current += ch
        size += n
    out.append(current)
    return "\r\n ".join(out)


def sequence_of(change: Mapping, seq: int) -> int:
    """How many lifecycle transitions came before transition ``seq``: rises with every move."""
    return sum(1 for e in lifecycle_entries(change) if int(e.get("seq", 0)) < seq)


def render_calendar(change: Mapping, transition: Mapping, *, cancelled: bool, portal_link: str,
                    join_url: str | None = None) -> str | None:
    """The ICS text for the change as of ``transition``; None when the window is unreadable."""
    schedule = transition.get("schedule") if transition.get("type") == "rescheduled" else None
    schedule = schedule or change.get("schedule") or {}
    start, end = _utc(schedule.get("implementationStart")), _utc(schedule.get("implementationEnd"))
    if start is None or end is None or end <= start:
        return None
    change_id = str(change.get("changeId") or "")
    stamp = _utc(transition.get("timestamp")) or datetime.now(timezone.utc)
    title = " ".join(str(change.get("title") or change_id).split())
    description = [f"Change {change_id}: {title}"]
    if join_url:
        description.append(f"Teams meeting: {join_url}")
    description.append(f"Details: {portal_link}")
    lines = [
        "BEGIN:VCALENDAR", "VERSION:2.0", f"PRODID:{PRODID}", f"METHOD:{METHOD}", "CALSCALE:GREGORIAN",
        "BEGIN:VEVENT",
        f"UID:{calendar_uid(change_id)}",
        f"SEQUENCE:{sequence_of(change, int(transition.get('seq', 0)))}",
        f"DTSTAMP:{_stamp(stamp)}",
        f"DTSTART:{_stamp(start)}",
        f"DTEND:{_stamp(end)}",
        f"SUMMARY:{_escape(('Cancelled: ' if cancelled else '') + title)}",
        f"DESCRIPTION:{_escape(chr(10).join(description))}",
        f"URL:{portal_link}",
        f"STATUS:{'CANCELLED' if cancelled else 'CONFIRMED'}",
        "TRANSP:OPAQUE",
    ]
    if join_url:
        lines.append(f"LOCATION:{_escape(join_url)}")
    lines += ["END:VEVENT", "END:VCALENDAR"]
    return "\r\n".join(_fold(line) for line in lines) + "\r\n"
