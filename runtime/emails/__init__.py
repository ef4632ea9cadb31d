"""Notification emails: one HTML and one plain-text part per transition, rendered with jinja2.

Pure: the caller passes the archive object and the lifecycle modification being notified. Every
value taken from the change is user free text, so the HTML template autoescapes and this module
hands it plain strings (never ``None``: a missing optional field is simply left out).

``render_delivery`` renders what one transition sends to one customer (an email per reader's
zone, and the calendar file) from a ``DeliveryRequest``. The tenants do not call it themselves:
they ask the renderer actor (``actors.renderer``), so that jinja2 and the templates are loaded in
one process, not in every tenant's (about 2.7 MB each, measured). jinja2 is therefore imported at
the first rendering, not with this package: a tenant imports it for ``DeliveryRequest`` and
``runtime.emails.mime`` only.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["CALENDAR_KINDS", "KIND_FOR_TRANSITION", "KINDS", "DeliveryRequest", "LocalRenderer", "RenderedDelivery",
           "RenderedEmail", "UNSUBSCRIBE_PLACEHOLDER", "format_duration", "format_schedule", "format_time",
           "format_utc", "format_window", "instant", "portal_url", "render_delivery", "render_email",
           "warm_template_cache", "zone_info"]

from runtime.domain.kinds import CHANGE, ROUTES  # noqa: E402 - the table of what each transition sends
from runtime.emails.announcement import ANNOUNCEMENT_KINDS, announcement_context  # noqa: E402

KIND_FOR_TRANSITION = {t: before.email for t, (before, _) in ROUTES[CHANGE].items()}
# SES substitutes this in messages sent with ListManagementOptions; it must reach SES verbatim.
UNSUBSCRIBE_PLACEHOLDER = "{{amazonSESUnsubscribeUrl}}"
MAX_SUBJECT = 200


@dataclass(frozen=True)
class _Kind:
    subject: str   # subject prefix
    heading: str   # the header bar
    accent: str    # header bar colour
    intro: str     # first sentence; {customer} is the tenant's name


KINDS: dict[str, _Kind] = {
    "approval_request": _Kind("Approval required", "Approval required", "#b26a00",
                              "A change affecting {customer} needs your approval."),
    "approved": _Kind("Approved", "Change approved", "#1e7e34",
                      "This change affecting {customer} has been approved and will go ahead as scheduled."),
    "completed": _Kind("Completed", "Change completed", "#2f5f8f",
                       "This change affecting {customer} has been completed."),
    "cancelled": _Kind("Cancelled", "Change cancelled", "#a71d2a",
                       "This change affecting {customer} has been cancelled and will not take place."),
    "rescheduled": _Kind("Rescheduled", "Change rescheduled", "#5a3d99",
                         "This change affecting {customer} has a new schedule."),
    "removed": _Kind("No longer affects you", "No longer affects you", "#59636e",
                     "This change no longer affects {customer}: {customer} was removed from it. "
                     "Nothing is needed from you, and no more emails about it will follow."),
}
_UPDATED = _Kind("Updated \u2014 approval required", "Updated \u2014 approval required", "#b26a00",
                 "This change affecting {customer} was updated while waiting for approval. "
                 "Please review it again.")
# Kinds whose email carries the window as an iCalendar file (runtime.emails.ics).
CALENDAR_KINDS = frozenset({"approved", "rescheduled", "cancelled"})
_CALENDAR_NOTES = {
    "approved": "The attached calendar file (change.ics) puts the window in your calendar.",
    "rescheduled": "Open the attached calendar file (change.ics) to move the window in your calendar.",
    "cancelled": "Open the attached calendar file (change.ics) to remove the window from your calendar.",
}

_SECTIONS = (("reason", "Reason"), ("implementationPlan", "Implementation plan"),
             ("customerImpact", "Customer impact"), ("rollbackPlan", "Rollback plan"),
             ("testPlan", "Test plan"))
_FIELD_LABELS = {"title": "Title", "customers": "Affected customers", "schedule": "Schedule",
                 "meeting": "Meeting", "tickets": "Tickets", **dict(_SECTIONS)}
_TICKETS = (("snow", "ServiceNow"), ("jira", "Jira"))
_VERBS = {"submitted": "Submitted", "updated": "Updated", "approved": "Approved",
          "completed": "Completed", "cancelled": "Cancelled", "rescheduled": "Rescheduled"}
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str


@dataclass(frozen=True)
class DeliveryRequest:
    """What one transition sends to one customer: the arguments of ``render_email``, with the
    readers' zones (``zones``: one email per zone). The kind says whether a calendar file goes
    with it (``CALENDAR_KINDS``)."""
    kind: str
    change: Mapping
    customer_code: str
    customer_name: str
    portal_base_url: str
    transition: Mapping
    zones: tuple[str | None, ...]
    first_request: bool = True
    meeting: Mapping | None = None
    show_customers: bool = False


@dataclass(frozen=True)
class RenderedDelivery:
    emails: Mapping[str | None, RenderedEmail]   # by zone, one per zone of the request
    calendar: str | None = None                  # the ICS text, for CALENDAR_KINDS with a readable window


def render_delivery(request: DeliveryRequest) -> RenderedDelivery:
    """Every email and the calendar file of ``request`` (pure)."""
    from runtime.emails.ics import render_calendar

    calendar = None
    if request.kind in CALENDAR_KINDS:
        calendar = render_calendar(request.change, request.transition, cancelled=request.kind == "cancelled",
                                   portal_link=portal_url(request.portal_base_url, request.change["changeId"]),
                                   join_url=(request.meeting or {}).get("joinUrl"))
    emails = {zone: render_email(request.kind, request.change, customer_code=request.customer_code,
                                 customer_name=request.customer_name, portal_base_url=request.portal_base_url,
                                 transition=request.transition, first_request=request.first_request, zone=zone,
                                 meeting=request.meeting, show_customers=request.show_customers)
              for zone in dict.fromkeys(request.zones)}
    return RenderedDelivery(emails, calendar)


class LocalRenderer:
    """The ``Renderer`` port in this process (tests, tools); a tenant uses ``actors.proxies.ActorRenderer``."""

    def render(self, request: DeliveryRequest) -> RenderedDelivery:
        return render_delivery(request)


_ENV = None


def _env():
    """The Jinja environment, built at the first rendering (compiled templates come from the disk
    cache the driver warms: ``runtime.emails.templating``)."""
    global _ENV
    if _ENV is None:
        from runtime.emails.templating import TemplateCache, template_environment

        _ENV = template_environment(TemplateCache())
    return _ENV


def warm_template_cache() -> int:
    """``runtime.emails.templating.warm_template_cache``: compile what the disk cache lacks."""
    from runtime.emails.templating import warm_template_cache as warm

    return warm()


# ---------------------------------------------------------------------------------------------
# Small formatting helpers (all tolerate missing or malformed values)


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.strip() if isinstance(value, str) else str(value)


def _one_line(value: str) -> str:
    """Control characters (CR, LF, tabs, U+2028 ...) become spaces, runs of spaces collapse."""
    cleaned = "".join(" " if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c for c in value)
    return re.sub(r"\s+", " ", cleaned).strip()


def zone_info(name: Any) -> ZoneInfo | None:
    """The IANA zone ``name``; None when it is empty, unknown or malformed."""
    try:
        return ZoneInfo(name) if isinstance(name, str) and name else None
    except (ZoneInfoNotFoundError, ValueError, OSError):  # unknown, malformed, or a directory name
        return None


def _parse(value: Any, zone: ZoneInfo | timezone) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    # The archive always has offsets; a naive value is read as wall time in the change's zone.
    return (dt if dt.tzinfo else dt.replace(tzinfo=zone)).astimezone(zone)


def _day(dt: datetime) -> str:
    # Own names rather than strftime("%a %b"): the output must not depend on the process locale.
    return f"{_DAYS[dt.weekday()]} {dt.day} {_MONTHS[dt.month - 1]} {dt.year}"


def _hm(dt: datetime) -> str:
    return f"{dt.hour:02d}:{dt.minute:02d}"


def _zone_label(schedule: Mapping, zone_name: str | None = None) -> tuple[ZoneInfo | timezone, str]:
    """The reader's zone when it is a real one, else the change's, else UTC."""
    for name in (zone_name, schedule.get("timezone")):
        zone = zone_info(name)
        if zone:
            return zone, str(name)
    return timezone.utc, "UTC"


def _span(start: datetime, end: datetime) -> str:
    same_zone_name = start.tzname() == end.tzname()
    left = f"{_day(start)} {_hm(start)}" + ("" if same_zone_name else f" {start.tzname()}")
    right = _hm(end) if start.date() == end.date() else f"{_day(end)} {_hm(end)}"
    return f"{left} \u2013 {right} {end.tzname()}"


def _bounds(schedule: Any, zone_name: str | None = None) -> tuple[datetime, datetime, str] | None:
    if not isinstance(schedule, Mapping):
        return None
    zone, label = _zone_label(schedule, zone_name)
    start = _parse(schedule.get("implementationStart"), zone)
    end = _parse(schedule.get("implementationEnd"), zone)
    return (start, end, label) if start is not None and end is not None else None


def format_schedule(schedule: Any, zone_name: str | None = None) -> str:
    """``Tue 8 Dec 2026 02:00 – 04:00 EST (America/New_York)`` in ``zone_name`` (the reader's
    zone), else in the change's own time zone.

    Spans over midnight repeat the date; a span over a DST switch names both abbreviations.
    Unparsable values are shown as given rather than hidden.
    """
    if not isinstance(schedule, Mapping):
        return ""
    bounds = _bounds(schedule, zone_name)
    if bounds is None:
        raw = [_text(schedule.get(k)) for k in ("implementationStart", "implementationEnd")]
        return " \u2013 ".join(r for r in raw if r)
    start, end, label = bounds
    return f"{_span(start, end)} ({label})"


def format_utc(schedule: Any) -> str:
    """The same window in UTC (``Tue 8 Dec 2026 07:00 – 09:00 UTC``), or "" when unreadable."""
    bounds = _bounds(schedule, "UTC")
    return _span(bounds[0], bounds[1]) if bounds else ""


def format_duration(schedule: Any) -> str:
    """``2 hours``, ``1 hour 30 minutes``, ``2 days 4 hours``: elapsed time, DST switches included."""
    bounds = _bounds(schedule, "UTC")
    if bounds is None or bounds[1] <= bounds[0]:
        return ""
    minutes = int((bounds[1] - bounds[0]).total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = [f"{n} {unit}{'' if n == 1 else 's'}" for n, unit in ((days, "day"), (hours, "hour"), (mins, "minute")) if n]
    return " ".join(parts) or "less than a minute"


def instant(value: Any) -> datetime | None:
    """A stored time as an aware datetime (a naive one is read as UTC); None when it is no time."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return _parse(value, timezone.utc)


def format_time(value: Any, zone_name: str | None = None, *, with_zone: bool = True) -> str:
    """``Tue 8 Dec 2026, 02:00 EST`` in ``zone_name`` (else UTC), the portal's and the terminal's
    form of one instant; the value as given when it is no time."""
    dt = instant(value)
    if dt is None:
        return str(value or "")
    local = dt.astimezone(zone_info(zone_name) or timezone.utc)
    text = f"{_day(local)}, {_hm(local)}"
    return f"{text} {local.tzname()}" if with_zone else text


def format_window(schedule: Any) -> str:
    """``Tue 8 Dec 2026, 02:00 \u2013 04:00 EST``: the window in the change's own zone, short (the
    portal's lists and history); "not scheduled yet" without one."""
    schedule = schedule if isinstance(schedule, Mapping) else {}
    tz = schedule.get("timezone")
    start, end = instant(schedule.get("implementationStart")), instant(schedule.get("implementationEnd"))
    if start is None or end is None:
        return "not scheduled yet"
    zone = zone_info(tz) or timezone.utc
    ls, le = start.astimezone(zone), end.astimezone(zone)
    if ls.date() == le.date():
        return f"{format_time(start, tz, with_zone=False)} \u2013 {_hm(le)} {le.tzname()}"
    return f"{format_time(start, tz, with_zone=False)} \u2013 {format_time(end, tz)}"


def _format_instant(value: Any, schedule: Any, zone_name: str | None = None) -> str:
    zone, _ = _zone_label(schedule if isinstance(schedule, Mapping) else {}, zone_name)
    dt = _parse(value, zone)
    return f"{_day(dt)} {_hm(dt)} {dt.tzname()}" if dt else _text(value)


def _start_day(schedule: Any, zone_name: str | None) -> str:
    bounds = _bounds(schedule, zone_name)
    return _day(bounds[0]) if bounds else ""


def portal_url(portal_base_url: str, change_id: str) -> str:
    return f"{portal_base_url.rstrip('/')}/changes/{quote(change_id, safe='')}"


def _spec(kind: str, first_request: bool) -> _Kind:
    return _UPDATED if kind == "approval_request" and not first_request else KINDS[kind]


def subject_line(kind: str, title: str, *, first_request: bool = True, day: str = "") -> str:
    """The subject of a change email of ``kind`` about a change titled ``title``; ``day`` is the
    window's start day in the reader's zone (left out when empty)."""
    return _subject(_spec(kind, first_request).subject, _one_line(title) or "(untitled change)", day)


def _subject(prefix: str, title: str, day: str = "") -> str:
    """``Approved: Patch the fleet (Tue 8 Dec 2026)``; a long title is cut, never the date."""
    suffix = f" ({day})" if day else ""
    head = _one_line(f"{prefix}: {title}")
    room = MAX_SUBJECT - len(suffix)
    if len(head) > room:
        head = head[: room - 1].rstrip() + "\u2026"
    return head + suffix


# ---------------------------------------------------------------------------------------------


def render_email(kind: str, change: Mapping, *, customer_code: str, customer_name: str,
                 portal_base_url: str, transition: Mapping, first_request: bool = True,
                 zone: str | None = None, meeting: Mapping | None = None,
                 show_customers: bool = False) -> RenderedEmail:
    """Render the email for ``kind`` (see ``KIND_FOR_TRANSITION``) about ``change``.

    ``transition`` is the lifecycle modification being notified (actor, timestamp, and for
    updates ``fields``, for reschedules ``previousSchedule``/``schedule``). ``first_request``
    is False for an ``approval_request`` re-sent after an update. ``zone`` is the reader's IANA
    zone (times are shown in it, with UTC beside); ``meeting`` is ``{"joinUrl": ...}`` or
    ``{"pending": True}`` for a change with a Teams meeting. The other customers of the change
    are named only with ``show_customers`` (``email.show_affected_customers``).
    """
    if kind in ANNOUNCEMENT_KINDS:
        subject, ctx = announcement_context(
            kind, change, customer=_text(customer_name) or _text(customer_code), portal_base_url=portal_base_url,
            transition=transition, zone=zone, meeting=meeting, show_customers=show_customers)
        return RenderedEmail(subject=subject, html=_env().get_template("announcement.html").render(ctx),
                             text=_env().get_template("announcement.txt").render(ctx))
    if kind not in KINDS:
        raise ValueError(f"unknown email kind {kind!r}; known: {', '.join((*KINDS, *ANNOUNCEMENT_KINDS))}")
    updated = kind == "approval_request" and not first_request
    spec = _spec(kind, first_request)
    change_id = _text(change.get("changeId"))
    title = _one_line(_text(change.get("title"))) or change_id or "(untitled change)"
    customer = _text(customer_name) or _text(customer_code)

    schedule = change.get("schedule")
    previous = ""
    if kind == "rescheduled":
        # The transition carries the schedule it set; the archive may have moved on since.
        schedule = transition.get("schedule") or schedule
        previous = format_schedule(transition.get("previousSchedule"), zone)
    tickets = change.get("tickets") if isinstance(change.get("tickets"), Mapping) else {}
    fields = transition.get("fields") if updated else None
    customers = change.get("customers") if show_customers else None

    verb = _VERBS.get(_text(transition.get("type")), KINDS[kind].subject)
    actor = _text(transition.get("actor"))
    when = _format_instant(transition.get("timestamp"), schedule, zone)
    acted = " ".join(p for p in (verb, f"by {actor}" if actor else "", f"on {when}" if when else "") if p)
    bounds = _bounds(schedule, zone)
    deadline = ""
    if kind == "approval_request" and bounds:
        utc_start = bounds[0].astimezone(timezone.utc)
        deadline = f"{_day(bounds[0])} {_hm(bounds[0])} {bounds[0].tzname()} ({_hm(utc_start)} UTC)"
    join_url = _text((meeting or {}).get("joinUrl")) if kind in ("approved", "rescheduled") else ""
    meeting_pending = bool(meeting) and not join_url and kind == "approved"

    ctx = {
        "kind": kind,
        "heading": spec.heading,
        "accent": spec.accent,
        "intro": spec.intro.format(customer=customer),
        "title": title,
        "change_id": change_id,
        "customer_name": customer,
        "customers": [_text(c) for c in customers] if isinstance(customers, list) else [],
        "schedule": format_schedule(schedule, zone),
        "schedule_utc": format_utc(schedule) if bounds and bounds[2] != "UTC" else "",
        "duration": format_duration(schedule),
        "previous_schedule": previous,
        "deadline": deadline,
        "join_url": join_url,
        "meeting_pending": meeting_pending,
        "calendar_note": _CALENDAR_NOTES.get(kind, ""),
        "tickets": [(label, _text(tickets.get(k))) for k, label in _TICKETS if _text(tickets.get(k))],
        "changed_fields": [_FIELD_LABELS.get(str(f), str(f)) for f in fields]
        if isinstance(fields, list) else [],
        "sections": [] if kind == "removed" else
        [(label, _text(change.get(k))) for k, label in _SECTIONS if _text(change.get(k))],
        "acted": acted if (actor or when) and kind != "removed" else "",
        "note": _text(transition.get("note")) if kind != "removed" else "",
        "portal_url": portal_url(portal_base_url, change_id) if change_id else portal_base_url,
        "button": "Review and approve" if kind == "approval_request" else "View the change",
        "unsubscribe_url": UNSUBSCRIBE_PLACEHOLDER,
    }
    return RenderedEmail(subject=subject_line(kind, title, first_request=first_request, day=_start_day(schedule, zone)),
                         html=_env().get_template("change.html").render(ctx),
                         text=_env().get_template("change.txt").render(ctx))
