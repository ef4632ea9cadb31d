"""The change form: HTML form fields <-> change content, times entered in the change's own zone;
errors shown at their field (``form_field`` maps an error's ``field`` to the form's); a stale
edit merged over the current version.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from runtime.domain.errors import InvalidInput
from runtime.domain.model import TEXT_FIELDS, lifecycle_entries
from runtime.emails import instant, zone_info

FORM_TEXT = ("title",) + TEXT_FIELDS
# an error's field (runtime.domain.model's names) -> the form field it is shown at
_FIELD_OF = {
    "title": "title", "customers": "customers",
    "schedule.implementationStart": "start", "schedule.implementationEnd": "end",
    "schedule.timezone": "timezone", "schedule": "end",
    "meeting.title": "meeting_title", "meeting.durationMinutes": "meeting_duration",
    "meeting.location": "meeting_location", "meeting.required": "meeting_required",
    "tickets.snow": "snow", "tickets.jira": "jira", "start": "start", "end": "end",
    "timezone": "timezone",
    **{f: f for f in TEXT_FIELDS},
    "type": "type", "summary": "summary", "content": "content", "links": "links",  # announcements
}


def form_field(field: str | None) -> str | None:
    """The form field an error's ``field`` is shown at (``schedule.timezone`` -> timezone)."""
    if not field:
        return None
    return _FIELD_OF.get(field) or _FIELD_OF.get(field.split("[", 1)[0])


def to_local_input(value: object, tz: str | None) -> str:
    """An RFC 3339 time as a ``datetime-local`` value in the change's zone."""
    dt = instant(value)
    if dt is None:
        return ""
    zone = zone_info(tz)
    return (dt.astimezone(zone) if zone else dt).strftime("%Y-%m-%dT%H:%M")


def from_local_input(value: str, tz: str, field: str) -> str:
    """``2026-12-08T02:00`` in ``tz`` -> ``2026-12-08T02:00:00-05:00``."""
    try:
        naive = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(f"{field}: {value!r} is not a date and time (YYYY-MM-DDTHH:MM)", field=field) from None
    if naive.tzinfo is not None:
        return naive.isoformat()
    zone = zone_info(tz)
    if zone is None:
        raise InvalidInput(f"timezone: unknown time zone {tz!r} (use an IANA name such as Europe/Paris)",
                           field="timezone")
    return naive.replace(tzinfo=zone).isoformat()


def change_to_form(change: Mapping) -> dict[str, Any]:
    sched = change.get("schedule") or {}
    tz = sched.get("timezone") or ""
    meeting_ = change.get("meeting") or {}
    tickets = change.get("tickets") or {}
    form: dict[str, Any] = {f: change.get(f) or "" for f in FORM_TEXT}
    form.update({
        "customers": list(change.get("customers") or []),
        "start": to_local_input(sched.get("implementationStart"), tz),
        "end": to_local_input(sched.get("implementationEnd"), tz),
        "timezone": tz,
        "snow": tickets.get("snow") or "", "jira": tickets.get("jira") or "",
        "meeting_required": bool(meeting_.get("required")),
        "meeting_title": meeting_.get("title") or "",
        "meeting_duration": str(meeting_.get("durationMinutes") or ""),
        "meeting_location": meeting_.get("location") or "",
    })
    return form


def form_values(form: Mapping[str, Any], customers: list[str]) -> dict[str, Any]:
    """The submitted form as the template wants it back (for re-rendering with errors)."""
    values = {f: str(form.get(f) or "") for f in FORM_TEXT + ("start", "end", "timezone", "snow", "jira",
                                                             "meeting_title", "meeting_duration",
                                                             "meeting_location")}
    values["customers"] = customers
    values["meeting_required"] = str(form.get("meeting_required") or "") in ("1", "on", "true", "yes")
    values["allow_past"] = checked(form.get("allow_past"))
    return values


def checked(value: object) -> bool:
    """A checkbox (or hidden flag) of a posted form."""
    return str(value or "") in ("1", "on", "true", "yes")


def form_to_content(values: Mapping[str, Any], *, partial: bool,
                    current: Mapping | None = None) -> tuple[dict, dict[str, str]]:
    """Form values -> change content, and per-field errors found while converting.

    ``partial`` (a draft) leaves out what is blank. ``current`` (an update) keeps the stored
    time strings when the form shows the same instant, so an untouched schedule is no change.
    """
    errors: dict[str, str] = {}
    content: dict[str, Any] = {}
    title = str(values.get("title") or "").strip()
    if title or not partial:
        content["title"] = title
        if not title:
            errors["title"] = "A title is required"
    if values.get("customers") or not partial:
        content["customers"] = list(values.get("customers") or [])
        if not content["customers"]:
            errors["customers"] = "Pick at least one customer"
    for f in TEXT_FIELDS:
        v = str(values.get(f) or "").replace("\r\n", "\n")
        if v.strip():
            content[f] = v
        elif current is not None and current.get(f):
            content[f] = ""
    tz = str(values.get("timezone") or "").strip()
    sched: dict[str, str] = {}
    if tz:
        sched["timezone"] = tz
    for name, key in (("start", "implementationStart"), ("end", "implementationEnd")):
        raw = str(values.get(name) or "").strip()
        if not raw:
            if not partial:
                errors[name] = f"{'Start' if name == 'start' else 'End'} time is required"
            continue
        if not tz:
            errors.setdefault("timezone", "Pick the time zone the times are in")
            continue
        try:
            sched[key] = from_local_input(raw, tz, name)
        except InvalidInput as exc:
            errors[form_field(exc.field) or name] = _message(exc)
    if current is not None:
        old = current.get("schedule") or {}
        for key in ("implementationStart", "implementationEnd"):
            a, b = instant(sched.get(key)), instant(old.get(key))
            if a is not None and b is not None and a == b:
                sched[key] = old[key]
    if sched or not partial:
        content["schedule"] = sched
    tickets = {k: str(values.get(k) or "").strip() for k in ("snow", "jira")}
    tickets = {k: v for k, v in tickets.items() if v}
    if tickets or (current is not None and current.get("tickets")):
        content["tickets"] = tickets
    meeting_: dict[str, Any] = {"required": bool(values.get("meeting_required"))}
    for name, key in (("meeting_title", "title"), ("meeting_location", "location")):
        v = str(values.get(name) or "").strip()
        if v:
            meeting_[key] = v
    dur = str(values.get("meeting_duration") or "").strip()
    if dur:
        if dur.isdigit():
            meeting_["durationMinutes"] = int(dur)
        else:
            errors["meeting_duration"] = "Duration is a whole number of minutes"
    if meeting_ != {"required": False} or (current is not None and current.get("meeting")):
        content["meeting"] = meeting_
    return content, errors


FORM_FIELDS = FORM_TEXT + ("customers", "start", "end", "timezone", "snow", "jira", "meeting_required",
                           "meeting_title", "meeting_duration", "meeting_location")


def _norm(field: str, value: Any) -> Any:
    if field == "customers":
        return sorted(str(v) for v in (value or []))
    if field == "meeting_required":
        return bool(value)
    return str(value or "").replace("\r\n", "\n").strip()


def touched_fields(values: Mapping[str, Any], base: Mapping[str, Any]) -> list[str]:
    """The form fields the user changed from the version they started editing."""
    return [f for f in FORM_FIELDS if _norm(f, values.get(f)) != _norm(f, base.get(f))]


def merge_stale(values: Mapping[str, Any], base: Mapping[str, Any], current: Mapping[str, Any]) -> tuple[dict, dict]:
    """A stale edit on top of the current version: the user's changed fields over the current
    values (nobody's change is silently reverted). Returns (merged form, conflicts), where a
    conflict is a field both changed differently, with the current value to show."""
    merged = dict(current)
    conflicts = {}
    for f in touched_fields(values, base):
        merged[f] = values.get(f)
        theirs = current.get(f)
        if _norm(f, theirs) != _norm(f, base.get(f)) and _norm(f, theirs) != _norm(f, values.get(f)):
            shown = ", ".join(theirs) if isinstance(theirs, list) else ("yes" if theirs is True else str(theirs or ""))
            conflicts[f] = shown or "(empty)"
    return merged, conflicts


def changed_fields(current: Mapping, content: Mapping) -> dict:
    """The part of ``content`` that differs from ``current`` (what an update should send)."""
    out = {}
    for k, v in content.items():
        old = current.get(k)
        if k == "meeting":
            if {**{"required": False}, **(old or {})} != v:
                out[k] = v
        elif k == "tickets":
            if {a: b for a, b in (old or {}).items() if b} != v:
                out[k] = v
        elif k in TEXT_FIELDS:
            if (old or "") != (v or ""):
                out[k] = v
        elif old != v:
            out[k] = v
    return out


def _message(exc: InvalidInput) -> str:
    """An error's message without its ``field: `` prefix, capitalised for a form."""
    rest = exc.detail()
    return rest[:1].upper() + rest[1:]


def form_errors(exc: InvalidInput) -> dict[str, str]:
    return {form_field(exc.field) or "_form": _message(exc)}


def versions_since(change: Mapping, version: int) -> list[Mapping]:
    """The lifecycle transitions after ``version`` (who changed what under a stale editor)."""
    return [e for e in lifecycle_entries(change) if e["seq"] > version]
