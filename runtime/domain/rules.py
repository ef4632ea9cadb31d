"""The authoring rules a person's input must pass (pure: no I/O), used by the CLI, the API and the
portal alike through ``runtime.services.lifecycle``:

- no field the schema does not know (``x-`` fields are free); a misspelling gets a suggestion;
- a window whose start is not in the past (unless the author allows it: a change recorded after
  the fact) and whose end is after its start;
- completing before the window has started needs an explicit "before start".

Each refusal is an ``InvalidInput`` whose message starts with the field it is about.
"""

from __future__ import annotations

import difflib
from datetime import datetime, timedelta, timezone
from typing import Iterable, Mapping
from zoneinfo import ZoneInfo

from runtime.domain.errors import InvalidInput
from runtime.domain.model import DRAFT_FIELDS, SYSTEM_FIELDS, USER_FIELDS, parse_rfc3339

FREE_PREFIX = "x-"
TOP_FIELDS = ("changeId",) + USER_FIELDS
NESTED_FIELDS = {
    "schedule": ("implementationStart", "implementationEnd", "timezone"),
    "meeting": ("required", "title", "durationMinutes", "location"),
}
# What the portal keeps on a draft besides its content (it writes them itself).
DRAFT_BOOKKEEPING = ("status", "createdAt", "createdBy") + DRAFT_FIELDS


def _unknown(name: str, known: Iterable[str], where: str) -> InvalidInput:
    known = tuple(known)
    shown = f"{where}{name}"
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6) or \
        difflib.get_close_matches(name.lower(), [k.lower() for k in known], n=1, cutoff=0.6)
    if close:
        match = next(k for k in known if k.lower() == close[0].lower())
        return InvalidInput(f"{shown}: unknown field; did you mean {where}{match}? "
                            f"(fields of your own go under an x- name, like x-{name})", field=shown)
    return InvalidInput(f"{shown}: unknown field (known: {', '.join(known)}; "
                        f"fields of your own go under an x- name)", field=shown)


def check_known_fields(content: Mapping, *, also: Iterable[str] = (), top: tuple[str, ...] = TOP_FIELDS) -> None:
    """Refuse a field the schema does not know, top level and inside schedule and meeting.

    ``top``: the top-level fields of the kind (a change's by default; an announcement's)."""
    allowed = top + tuple(also)
    for name in content:
        if not isinstance(name, str):
            raise InvalidInput(f"{name!r}: field names are text")
        if name.startswith(FREE_PREFIX) or name in allowed:
            continue
        if name in SYSTEM_FIELDS:
            raise InvalidInput(f"{name}: managed by ttr; it cannot be set", field=name)
        raise _unknown(name, top, "")
    for parent, known in NESTED_FIELDS.items():
        inner = content.get(parent)
        if not isinstance(inner, Mapping):
            continue
        for name in inner:
            if isinstance(name, str) and (name.startswith(FREE_PREFIX) or name in known):
                continue
            raise _unknown(str(name), known, f"{parent}.")


def _now(now: str | datetime) -> datetime:
    return now if isinstance(now, datetime) else parse_rfc3339(now, "now")


def check_window(schedule: Mapping, now: str | datetime, *, allow_past: bool = False) -> None:
    """The window of a submit, update or reschedule: a start not in the past.

    ``schedule`` is already shaped by ``model.validate_schedule`` (both times parse, the end is
    after the start: ``schedule.implementationEnd: ... must be after the start``).
    """
    start = parse_rfc3339(schedule["implementationStart"], "schedule.implementationStart")
    when = _now(now)
    # The portal's form has minute precision: a start within this minute is not "past".
    if not allow_past and start < when.replace(second=0, microsecond=0):
        shown = when.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        raise InvalidInput(f"schedule.implementationStart: {schedule['implementationStart']} is in the past "
                           f"(it is now {shown}); to record a change after the fact, allow a past start "
                           "(--allow-past; allowPast in the API; the box under the window in the portal)",
                           field="schedule.implementationStart")


def check_complete(change: Mapping, now: str | datetime, *, before_start: bool = False) -> None:
    """Completing a change whose window has not started yet needs ``before_start``."""
    sched = change.get("schedule") or {}
    try:
        start = parse_rfc3339(sched.get("implementationStart"), "schedule.implementationStart")
    except InvalidInput:
        return  # an archive without a readable window: nothing to compare with
    if start > _now(now) and not before_start:
        raise InvalidInput(f"beforeStart: the window has not started yet (it starts "
                           f"{sched.get('implementationStart')}); completing it now needs a confirmation "
                           "(--before-start; beforeStart in the API)", field="beforeStart")


def window_from_today(days: int = 7, *, start: str = "02:00", hours: int = 2,
                      tz: str = "America/New_York", today: datetime | None = None) -> dict:
    """A schedule ``days`` from today at ``start`` local time in ``tz``, ``hours`` long.

    What the demo, the example change and the tests use, so that no window goes stale."""
    zone = ZoneInfo(tz)
    base = (today or datetime.now(timezone.utc)).astimezone(zone).date() + timedelta(days=days)
    hh, mm = (int(x) for x in start.split(":"))
    begin = datetime(base.year, base.month, base.day, hh, mm, tzinfo=zone)
    finish = (begin.astimezone(timezone.utc) + timedelta(hours=hours)).astimezone(zone)
    return {"implementationStart": begin.isoformat(), "implementationEnd": finish.isoformat(), "timezone": tz}


__all__ = ["DRAFT_BOOKKEEPING", "FREE_PREFIX", "check_complete", "check_known_fields", "check_window",
           "window_from_today"]
