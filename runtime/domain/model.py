"""The change model: ids, S3 keys, validation of change content, modifications, triggers.

The archive object is kept as a plain ``dict`` on purpose: every writer must preserve fields it
does not know, and a round trip through a schema would drop them. Validation checks the fields
we own and returns a normalised copy with everything else untouched.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from runtime.domain.errors import InvalidInput, RejectedInput

CHANGE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
STATUSES = ("draft", "submitted", "approved", "completed", "cancelled")
ARCHIVED_STATUSES = ("submitted", "approved", "completed", "cancelled")
FINAL_STATUSES = ("completed", "cancelled")
LIFECYCLE_TYPES = ("submitted", "updated", "approved", "rescheduled", "completed", "cancelled")
BACKEND_TYPES = ("processed", "meeting_scheduled", "meeting_updated", "meeting_cancelled",
                 "meeting_failed", "rejected")
TEXT_FIELDS = ("reason", "implementationPlan", "testPlan", "customerImpact", "rollbackPlan")
# Fields a user may set on submit/update. Everything else the writer owns (or preserves).
USER_FIELDS = ("title", "customers", "schedule", "meeting", "tickets") + TEXT_FIELDS
SYSTEM_FIELDS = ("changeId", "status", "version", "createdAt", "createdBy", "modifications",
                 "meetingMetadata")
# What only a draft carries (who last saved it, everyone who wrote it); never copied into the archive.
DRAFT_FIELDS = ("modifiedAt", "modifiedBy", "editors")
# What the runtime writes onto an archive later (the meeting service's intent, before it creates the
# event): the writer's like SYSTEM_FIELDS, but never part of what a change is submitted with.
RUNTIME_FIELDS = ("meetingIntent",)
# What a client (the portal, the API) may never set. SYSTEM_FIELDS but ``changeId``: a client names
# the change or draft it writes (the write then checks it is that one).
MANAGED_FIELDS = tuple(f for f in SYSTEM_FIELDS if f != "changeId") + RUNTIME_FIELDS + DRAFT_FIELDS
MAX_TITLE = 200
MAX_TEXT = 20_000

ARCHIVE_PREFIX = "archive/"
TRIGGER_PREFIX = "customers/"
DRAFT_PREFIX = "drafts/"
LEDGER_PREFIX = "ledger/"
REJECTED_PREFIX = "rejected/"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_change_id() -> str:
    return f"CHG-{uuid.uuid4()}"


def check_change_id(change_id: object) -> str:
    if not isinstance(change_id, str) or not CHANGE_ID_RE.match(change_id):
        shown = repr(change_id)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        raise InvalidInput(
            f"changeId {shown} is invalid: it must match {CHANGE_ID_RE.pattern} "
            "(letters, digits, '_' and '-', at most 128 characters, no path separators)", field="changeId")
    return change_id


def archive_key(change_id: str) -> str:
    return f"{ARCHIVE_PREFIX}{check_change_id(change_id)}.json"


def draft_key(change_id: str) -> str:
    return f"{DRAFT_PREFIX}{check_change_id(change_id)}.json"


def trigger_key(customer: str, change_id: str) -> str:
    return f"{TRIGGER_PREFIX}{customer}/{check_change_id(change_id)}.json"


def ledger_key(change_id: str, customer: str, seq: int) -> str:
    return f"{LEDGER_PREFIX}{check_change_id(change_id)}/{customer}/{int(seq)}.json"


# ---------------------------------------------------------------------------------------------
# Times


def parse_rfc3339(value: object, field: str) -> datetime:
    """An RFC 3339 timestamp with an explicit offset (``Z`` or ``+hh:mm``)."""
    if not isinstance(value, str):
        raise InvalidInput(f"{field}: expected an RFC 3339 timestamp string, got {type(value).__name__}", field=field)
    if not re.match(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:\d{2})$", value):
        raise InvalidInput(
            f"{field}: {value!r} is not an RFC 3339 timestamp with an offset "
            "(for example 2026-12-01T02:00:00Z or 2026-12-01T02:00:00-05:00)", field=field)
    try:
        return datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidInput(f"{field}: {value!r} is not a valid date and time: {exc}", field=field) from None


def check_timezone(value: object, field: str = "schedule.timezone") -> ZoneInfo:
    if not isinstance(value, str) or not value or ".." in value or value.startswith("/"):
        raise InvalidInput(f"{field}: {value!r} is not an IANA time zone name (e.g. America/New_York)", field=field)
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"{field}: unknown time zone {value!r} (use an IANA name such as Europe/Paris)",
                           field=field) from None


def validate_schedule(schedule: object) -> dict:
    if not isinstance(schedule, Mapping):
        raise InvalidInput("schedule: required, a mapping with implementationStart, implementationEnd and timezone",
                           field="schedule")
    out = dict(schedule)
    for f in ("implementationStart", "implementationEnd", "timezone"):
        if f not in schedule or schedule[f] in (None, ""):
            raise InvalidInput(f"schedule.{f}: required", field=f"schedule.{f}")
    start = parse_rfc3339(schedule["implementationStart"], "schedule.implementationStart")
    end = parse_rfc3339(schedule["implementationEnd"], "schedule.implementationEnd")
    check_timezone(schedule["timezone"])
    if end <= start:
        raise InvalidInput(
            f"schedule.implementationEnd: {schedule['implementationEnd']} must be after "
            f"the start, implementationStart ({schedule['implementationStart']})", field="schedule.implementationEnd")
    return out


# ---------------------------------------------------------------------------------------------
# Content validation


def _check_text(data: Mapping, field: str, limit: int) -> None:
    value = data.get(field)
    if value is None:
        return
    if not isinstance(value, str):
        raise InvalidInput(f"{field}: expected text, got {type(value).__name__}", field=field)
    if len(value) > limit:
        raise InvalidInput(f"{field}: {len(value)} characters, at most {limit} allowed", field=field)


def validate_customers(customers: object, known: Iterable[str]) -> list[str]:
    if not isinstance(customers, list) or not customers:
        raise InvalidInput("customers: required, a non-empty list of customer codes", field="customers")
    known = tuple(known)
    out: list[str] = []
    for c in customers:
        if not isinstance(c, str):
            raise InvalidInput(f"customers: {c!r} is not a customer code", field="customers")
        if c not in known:
            raise InvalidInput(f"customers: unknown customer {c!r} (configured: {', '.join(known)})", field="customers")
        if c not in out:
            out.append(c)
    return out


def validate_meeting(meeting: object) -> dict | None:
    if meeting is None:
        return None
    if not isinstance(meeting, Mapping):
        raise InvalidInput("meeting: expected a mapping {required, title?, durationMinutes?, location?}",
                           field="meeting")
    out = dict(meeting)
    req = out.get("required", False)
    if not isinstance(req, bool):
        raise InvalidInput(f"meeting.required: expected true or false, got {req!r}", field="meeting.required")
    out["required"] = req
    if out.get("title") is not None:
        _check_text(out, "title", MAX_TITLE)
        if "\r" in out["title"] or "\n" in out["title"]:
            raise InvalidInput("meeting.title: must be one line", field="meeting.title")
    dur = out.get("durationMinutes")
    if dur is not None and (isinstance(dur, bool) or not isinstance(dur, int) or not 1 <= dur <= 24 * 60):
        raise InvalidInput(f"meeting.durationMinutes: expected whole minutes from 1 to 1440, got {dur!r}",
                           field="meeting.durationMinutes")
    if out.get("location") is not None:
        _check_text(out, "location", 500)
    return out


def validate_tickets(tickets: object) -> dict | None:
    if tickets is None:
        return None
    if not isinstance(tickets, Mapping):
        raise InvalidInput("tickets: expected a mapping {snow, jira}", field="tickets")
    for k, v in tickets.items():
        if v is not None and not isinstance(v, str):
            raise InvalidInput(f"tickets.{k}: expected text, got {type(v).__name__}", field=f"tickets.{k}")
    return dict(tickets)


def validate_change(data: object, known_customers: Iterable[str], *, partial: bool = False) -> dict:
    """Validate the user-owned fields of a change; return a copy, unknown fields preserved.

    ``partial`` (drafts) checks only what is present; submit and update require everything.
    """
    if not isinstance(data, Mapping):
        raise InvalidInput(f"the change must be a mapping of fields, got {type(data).__name__}")
    out = dict(data)
    if "changeId" in out and out["changeId"] is not None:
        check_change_id(out["changeId"])
    title = out.get("title")
    if title is not None or not partial:
        if not isinstance(title, str) or not title.strip():
            raise InvalidInput("title: required, non-empty text", field="title")
        if "\r" in title or "\n" in title:
            raise InvalidInput("title: must be one line (no line breaks)", field="title")
        if len(title) > MAX_TITLE:
            raise InvalidInput(f"title: {len(title)} characters, at most {MAX_TITLE} allowed", field="title")
        out["title"] = title.strip()
    if "customers" in out or not partial:
        out["customers"] = validate_customers(out.get("customers"), known_customers)
    if "schedule" in out or not partial:
        if partial and isinstance(out.get("schedule"), Mapping) and not all(
                out["schedule"].get(f) for f in ("implementationStart", "implementationEnd", "timezone")):
            sched = out["schedule"]
            for f in ("implementationStart", "implementationEnd"):
                if sched.get(f):
                    parse_rfc3339(sched[f], f"schedule.{f}")
            if sched.get("timezone"):
                check_timezone(sched["timezone"])
        else:
            out["schedule"] = validate_schedule(out.get("schedule"))
    for f in TEXT_FIELDS:
        _check_text(out, f, MAX_TEXT)
    if "meeting" in out:
        out["meeting"] = validate_meeting(out["meeting"])
    if "tickets" in out:
        out["tickets"] = validate_tickets(out["tickets"])
    status = out.get("status")
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"status: {status!r} is not one of {', '.join(STATUSES)}", field="status")
    return out


# ---------------------------------------------------------------------------------------------
# Modifications


def lifecycle_entries(change: Mapping) -> list[dict]:
    """The lifecycle modifications (the ones carrying ``seq``), in seq order."""
    mods = [m for m in change.get("modifications", []) if isinstance(m, Mapping)
            and m.get("type") in LIFECYCLE_TYPES and isinstance(m.get("seq"), int)]
    return sorted(mods, key=lambda m: m["seq"])


def latest_lifecycle(change: Mapping) -> dict | None:
    entries = lifecycle_entries(change)
    return entries[-1] if entries else None


def record_key(mod: Mapping) -> str | None:
    """The identity of a modification for idempotent appends (None: no identity, always append)."""
    if mod.get("key"):
        return str(mod["key"])
    if mod.get("type") in LIFECYCLE_TYPES and isinstance(mod.get("seq"), int):
        return f"lifecycle:{mod['seq']}"
    return None


def append_modifications(change: dict, records: Iterable[Mapping]) -> list[dict]:
    """Append records whose identity is not there yet; returns what was actually appended."""
    mods = change.setdefault("modifications", [])
    seen = {record_key(m) for m in mods if isinstance(m, Mapping)}
    added = []
    for rec in records:
        k = record_key(rec)
        if k is not None and k in seen:
            continue
        mods.append(dict(rec))
        added.append(dict(rec))
        if k is not None:
            seen.add(k)
    return added


# ---------------------------------------------------------------------------------------------
# Triggers


@dataclass(frozen=True)
class Trigger:
    """The wake-up written under ``customers/{code}/{changeId}.json``; never trusted for content."""

    change_id: str
    customer: str
    seq: int
    action: str
    requested_at: str

    def to_json(self) -> dict:
        return {"changeId": self.change_id, "customer": self.customer, "seq": self.seq,
                "action": self.action, "requestedAt": self.requested_at}

    @property
    def key(self) -> str:
        return trigger_key(self.customer, self.change_id)


def parse_trigger_key(key: str) -> tuple[str, str]:
    """``customers/{code}/{changeId}.json`` -> (code, changeId); anything else is rejected."""
    from runtime.domain.tenant import CUSTOMER_CODE_RE

    parts = key.split("/")
    if len(parts) != 3 or parts[0] != "customers" or not parts[2].endswith(".json"):
        raise RejectedInput(f"not a trigger key: {key!r}", code="invalid_key")
    code, change_id = parts[1], parts[2][: -len(".json")]
    if not CUSTOMER_CODE_RE.match(code):
        raise RejectedInput(f"invalid customer code in trigger key {key!r}", code="invalid_key")
    if not CHANGE_ID_RE.match(change_id):
        raise RejectedInput(f"invalid changeId in trigger key {key!r}", code="invalid_key")
    return code, change_id


def jsonable(obj: Any) -> Any:
    """Helper for json.dumps(default=...) of dates."""
    if isinstance(obj, datetime):
        return obj.isoformat()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")
