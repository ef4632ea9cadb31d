"""How the pages show times and places in a change's life (pure; jinja filters and page context).

``local_time`` (a ``<time>`` the page's script shows in the reader's zone), ``window_phase``
(upcoming / in progress / ended, relative to now), ``window_views`` (the window in the change's
zone, in UTC, and as instants), ``not_found_text``; the words of one instant and of a window
come from ``runtime.emails`` (``format_time``, ``format_window``), the one source of them.
What happened to a change (delivery, meeting, history) is ``runtime.services.delivery``; the
change form is ``_forms``; the API description's markdown is ``_markdown``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache
from typing import Iterable, Mapping

from markupsafe import Markup, escape

from runtime.emails import format_time, format_window, instant


def local_time(value: object) -> Markup:
    """A ``<time>`` the page's script shows in the reader's own zone (UTC without script)."""
    dt = instant(value)
    if dt is None:
        return Markup(escape(str(value or "")))
    iso = dt.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    return Markup('<time datetime="{}" data-local>{}</time>').format(iso, format_time(dt))


def _span(seconds: float) -> str:
    seconds = abs(seconds)
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= 2 * size or (unit == "minute" and seconds >= size):
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return "less than a minute"


def window_phase(schedule: Mapping | None, now: datetime) -> dict:
    """Where ``now`` stands against the window: upcoming, in progress or ended (not a status).

    ``{"state": "upcoming" | "in_progress" | "ended" | "unscheduled", "text": "Starts in 7 days"}``
    """
    schedule = schedule or {}
    start, end = instant(schedule.get("implementationStart")), instant(schedule.get("implementationEnd"))
    if start is None or end is None:
        return {"state": "unscheduled", "text": "Not scheduled yet"}
    if now < start:
        return {"state": "upcoming", "text": f"Starts in {_span((start - now).total_seconds())}"}
    if now < end:
        return {"state": "in_progress", "text": f"In progress; ends in {_span((end - now).total_seconds())}"}
    return {"state": "ended", "text": f"Ended {_span((now - end).total_seconds())} ago"}


def window_views(schedule: Mapping | None) -> dict:
    """The window three ways: in the change's own zone, in UTC, and the instants for the
    reader's zone (the page's script writes that one; without script the change's zone shows)."""
    schedule = schedule or {}
    start, end = instant(schedule.get("implementationStart")), instant(schedule.get("implementationEnd"))
    if start is None or end is None:
        return {}

    def iso(dt: datetime) -> str:
        return dt.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")

    return {"own": format_window(schedule), "zone": schedule.get("timezone") or "UTC",
            "utc": format_window({**schedule, "timezone": "UTC"}), "start": iso(start), "end": iso(end),
            "minutes": int((end - start).total_seconds() // 60)}


def not_found_text(path: str) -> str:
    """A 404 for people: what was not found, in their words (the API keeps the precise message)."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] in (["changes"], ["drafts"]) and (len(parts) == 2 or parts[2:] == ["edit"]):
        what = "change" if parts[0] == "changes" else "draft"
        return (f"There is no {what} {parts[1]}. The link may be mistyped, or the {what} was "
                + ("submitted or deleted" if what == "draft" else "never submitted") + "; search for it instead.")
    return "There is no page at this address."



@lru_cache(maxsize=1)
def time_zones() -> tuple[str, ...]:
    from zoneinfo import available_timezones

    return tuple(sorted(z for z in available_timezones() if "/" in z or z == "UTC"))


def customer_names(cfg) -> dict[str, str]:
    return {c.code: c.name for c in cfg.customers}


def join(items: Iterable[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
