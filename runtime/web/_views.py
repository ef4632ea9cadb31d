"""What the pages and the API show about a change: pure functions, no I/O.

- ``delivery``: per customer, processed / pending / rejected transitions and emails sent,
  from the archive's ``processed`` and ``rejected`` records and ``processing.plan``.
- ``meeting``: the Teams meeting's state and its join link (only http(s) links are ever shown).
- ``timeline``: the modification log in words.
- the change form: HTML form fields <-> change content, times entered in the change's own zone.
"""

from __future__ import annotations

import re
from functools import lru_cache
from datetime import datetime
from typing import Any, Iterable, Mapping
from urllib.parse import urlparse
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

from runtime.domain.errors import InvalidInput, RejectedInput, TtrError
from runtime.services.feedback import summarize as feedback_summary
from runtime.domain.model import LIFECYCLE_TYPES, TEXT_FIELDS, lifecycle_entries, parse_rfc3339
from runtime.domain.processing import REMOVED_KIND, plan
from runtime.domain.recipients import SKIP_REASONS

TRANSITION_LABELS = {
    "submitted": "Submitted for approval",
    "updated": "Updated",
    "approved": "Approved",
    "rescheduled": "Rescheduled",
    "completed": "Completed",
    "cancelled": "Cancelled",
}
FIELD_LABELS = {"title": "title", "customers": "customers", "schedule": "window", "meeting": "meeting",
                "tickets": "tickets", "reason": "reason", "implementationPlan": "implementation plan",
                "testPlan": "test plan", "customerImpact": "customer impact", "rollbackPlan": "rollback plan"}
REVIEW_LABELS = {"changes_requested": "Changes requested", "comment": "Comment"}
STEP_LABELS = {  # what a customer's people were told for each transition
    "submitted": "approval request",
    "updated": "update",
    "approved": "approval notice",
    "rescheduled": "reschedule notice",
    "completed": "completion notice",
    "cancelled": "cancellation notice",
    "removed": "notice that the change no longer affects it",
}
# An announcement's approval is the announcement itself going out.
ANNOUNCEMENT_STEP_LABELS = {**STEP_LABELS, "approved": "the announcement"}


def step_labels_of(obj: Mapping) -> Mapping[str, str]:
    return ANNOUNCEMENT_STEP_LABELS if obj.get("kind") == "announcement" else STEP_LABELS
DELIVERY_STATES = {
    "delivered": "Up to date",
    "pending": "Pending",
    "rejected": "Rejected",
    "removed": "Removed from the change",
    "idle": "Nothing to send",
}


# ---------------------------------------------------------------------------------------------
# Times


def _parse(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=ZoneInfo("UTC"))
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_rfc3339(value, "time")
    except InvalidInput:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None


def _zone(tz: str | None) -> ZoneInfo | None:
    if not tz:
        return None
    try:
        return ZoneInfo(tz)
    except Exception:  # noqa: BLE001 - an unknown zone just shows the time as stored
        return None


def fmt_time(value: object, tz: str | None = None, *, with_zone: bool = True) -> str:
    """``Tue 8 Dec 2026, 02:00 EST`` in ``tz`` (else UTC); the raw value when it is no time."""
    dt = _parse(value)
    if dt is None:
        return str(value or "")
    zone = _zone(tz) or ZoneInfo("UTC")
    local = dt.astimezone(zone)
    text = f"{local:%a} {local.day} {local:%b %Y, %H:%M}"
    return f"{text} {local.tzname()}" if with_zone else text


def local_time(value: object) -> Markup:
    """A ``<time>`` the page's script shows in the reader's own zone (UTC without script)."""
    dt = _parse(value)
    if dt is None:
        return Markup(escape(str(value or "")))
    iso = dt.astimezone(ZoneInfo("UTC")).isoformat(timespec="seconds").replace("+00:00", "Z")
    return Markup('<time datetime="{}" data-local>{}</time>').format(iso, fmt_time(dt))


def mini_markdown(text: str) -> Markup:
    """Paragraphs, ``* `` bullets, `code` and **bold**: enough for the API description."""
    out = []
    for block in str(text).split("\n\n"):
        lines = block.split("\n")
        if all(ln.startswith(("* ", "  ")) for ln in lines) and lines[0].startswith("* "):
            items, cur = [], []
            for ln in lines:
                if ln.startswith("* ") and cur:
                    items.append(" ".join(cur))
                    cur = []
                cur.append(ln[2:].strip())
            items.append(" ".join(cur))
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")
        else:
            out.append(f"<p>{_inline(' '.join(lines))}</p>")
    return Markup("".join(out))


def _inline(text: str) -> str:
    html = str(escape(text))
    html = re.sub(r"`([^`]+)`", r"<code>\1</code>", html)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", html)


def fmt_window(schedule: Mapping | None) -> str:
    schedule = schedule or {}
    tz = schedule.get("timezone")
    start, end = _parse(schedule.get("implementationStart")), _parse(schedule.get("implementationEnd"))
    if start is None or end is None:
        return "not scheduled yet"
    zone = _zone(tz) or ZoneInfo("UTC")
    ls, le = start.astimezone(zone), end.astimezone(zone)
    if ls.date() == le.date():
        return f"{fmt_time(start, tz, with_zone=False)} \u2013 {le:%H:%M} {le.tzname()}"
    return f"{fmt_time(start, tz, with_zone=False)} \u2013 {fmt_time(end, tz)}"


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
    start, end = _parse(schedule.get("implementationStart")), _parse(schedule.get("implementationEnd"))
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
    start, end = _parse(schedule.get("implementationStart")), _parse(schedule.get("implementationEnd"))
    if start is None or end is None:
        return {}

    def iso(dt: datetime) -> str:
        return dt.astimezone(ZoneInfo("UTC")).isoformat(timespec="seconds").replace("+00:00", "Z")

    return {"own": fmt_window(schedule), "zone": schedule.get("timezone") or "UTC",
            "utc": fmt_window({**schedule, "timezone": "UTC"}), "start": iso(start), "end": iso(end),
            "minutes": int((end - start).total_seconds() // 60)}


def safe_url(url: object) -> str | None:
    """Only absolute http(s) links are rendered as links (a stored ``javascript:`` never is)."""
    if not isinstance(url, str):
        return None
    parsed = urlparse(url.strip())
    if parsed.scheme in ("http", "https") and parsed.netloc:
        return url.strip()
    return None


# ---------------------------------------------------------------------------------------------
# Delivery per customer


def _mods(change: Mapping, type_: str) -> list[Mapping]:
    return [m for m in change.get("modifications", []) or [] if isinstance(m, Mapping) and m.get("type") == type_]


def contact_outcomes(ledger: Mapping) -> list[dict]:
    """Every contact the runtime decided about for one transition, from its ledger: sent,
    failed (SES refused it, and why), or skipped (and why, in words). What happened, as
    recorded then; never a re-computation from today's contact list. ``after`` is what SES
    reported since for a sent email (delivered, bounced, complained)."""
    after = feedback_summary(ledger.get("feedback"))
    rows: dict[str, dict] = {}
    for addr, reason in (ledger.get("skipped") or {}).items():
        rows[str(addr).lower()] = {"email": str(addr), "outcome": "skipped", "reason": str(reason),
                                   "why": SKIP_REASONS.get(str(reason), str(reason))}
    for addr, entry in (ledger.get("recipients") or {}).items():
        if not isinstance(entry, Mapping):
            continue
        status = "failed" if entry.get("status") == "failed" else "sent"
        rows[str(addr).lower()] = {"email": str(addr), "outcome": status, "reason": "",
                                   "why": str(entry.get("error") or "") if status == "failed" else "",
                                   "after": after.get(str(addr).lower(), "")}
    order = {"sent": 0, "failed": 1, "skipped": 2}
    return sorted(rows.values(), key=lambda r: (order[r["outcome"]], r["email"].lower()))


def delivery(change: Mapping, names: Mapping[str, str] | None = None,
             ledgers: Mapping[tuple[str, int], Mapping] | None = None) -> list[dict]:
    """One row per customer that is, was, or tried to be on the change."""
    names = names or {}
    ledgers = ledgers or {}
    step_labels = step_labels_of(change)
    entries = lifecycle_entries(change)
    processed = _mods(change, "processed")
    rejected = _mods(change, "rejected")
    codes: list[str] = []
    for c in list(change.get("customers") or []) + [c for e in entries for c in (e.get("customers") or [])] \
            + [str(m.get("customer")) for m in processed + rejected if m.get("customer")]:
        if c not in codes:
            codes.append(c)
    rows = []
    for code in codes:
        done = {int(m["transition"]): m for m in processed
                if m.get("customer") == code and isinstance(m.get("transition"), int)}
        try:
            p = plan(change, code)
            pending = {s.seq: s for s in p.steps}
            removed, never_on = p.stale, False
        except RejectedInput:
            pending, removed, never_on = {}, False, True
        except TtrError:
            pending, removed, never_on = {}, False, False
        steps = []
        for e in entries:
            seq = e["seq"]
            rec = done.get(seq)
            removal = (rec or {}).get("transitionType") == REMOVED_KIND or \
                (seq in pending and pending[seq].kind == REMOVED_KIND)
            if code not in (e.get("customers") or change.get("customers") or []) and not removal:
                continue
            state = "sent" if rec else ("pending" if seq in pending else "skipped")
            ledger = ledgers.get((code, seq)) or {}
            after = feedback_summary(ledger.get("feedback"))  # what SES said since: bounced, complained...
            recipients = sorted(((addr, str(v.get("status", "")) + (f" · {after[addr.lower()]}"
                                                                     if addr.lower() in after else ""))
                                 for addr, v in (ledger.get("recipients") or {}).items() if isinstance(v, Mapping)))
            kind = REMOVED_KIND if removal else e["type"]
            steps.append({
                "seq": seq, "type": kind, "label": step_labels.get(kind, kind), "state": state,
                "topic": (rec or {}).get("topic") or (pending[seq].topic if seq in pending else None),
                "emailsSent": int((rec or {}).get("emailsSent") or 0),
                "emailsFailed": int((rec or {}).get("emailsFailed") or 0),
                "bounced": sum(1 for w in after.values() if w.startswith("bounced")),
                "complained": sum(1 for w in after.values() if w == "complained"),
                "delivered": sum(1 for w in after.values() if w == "delivered"),
                "at": (rec or {}).get("timestamp"),
                "recipients": recipients,
                "contacts": contact_outcomes(ledger),
            })
        its_rejections = [{"reason": m.get("reason", ""), "at": m.get("timestamp")}
                          for m in rejected if m.get("customer") == code]
        if removed:
            state = "removed"
        elif pending:
            state = "pending"
        elif never_on:
            state = "rejected" if its_rejections else "idle"
        elif done:
            state = "delivered"
        else:
            state = "idle"
        rows.append({
            "customer": code, "name": names.get(code, code), "state": state,
            "stateLabel": DELIVERY_STATES[state],
            "processed": sorted(done), "pending": sorted(pending),
            "rejected": its_rejections,
            "emailsSent": sum(int(m.get("emailsSent") or 0) for m in done.values()),
            "emailsFailed": sum(int(m.get("emailsFailed") or 0) for m in done.values()),
            "steps": steps,
        })
    return rows


# ---------------------------------------------------------------------------------------------
# The meeting


def meeting(change: Mapping) -> dict:
    wanted = change.get("meeting") or {}
    md = change.get("meetingMetadata") or {}
    failed = _mods(change, "meeting_failed")
    cancelled = _mods(change, "meeting_cancelled")
    updated = _mods(change, "meeting_updated")
    status = change.get("status")
    if not wanted.get("required") and not md:
        state, label = "not_required", "No meeting requested"
    elif cancelled:
        state, label = "cancelled", "Cancelled"
    elif md:
        state, label = ("updated", "Scheduled (moved)") if updated else ("scheduled", "Scheduled")
    elif failed:
        state, label = "failed", "Could not be scheduled"
    elif status == "submitted":
        state, label = "after_approval", "Scheduled once the change is approved"
    elif status == "cancelled":
        state, label = "not_scheduled", "Not scheduled (the change was cancelled)"
    else:
        state, label = "waiting", "Being scheduled\u2026"
    return {
        "required": bool(wanted.get("required")),
        "state": state, "label": label,
        "title": wanted.get("title"), "location": wanted.get("location"),
        "durationMinutes": wanted.get("durationMinutes"),
        "joinUrl": safe_url(md.get("joinUrl")) if state != "cancelled" else None,
        "subject": md.get("subject"), "startTime": md.get("startTime"), "endTime": md.get("endTime"),
        "organizer": md.get("organizer"), "attendeeCount": md.get("attendeeCount"),
        "failure": failed[-1].get("reason") if failed else None,
    }


# ---------------------------------------------------------------------------------------------
# The modification timeline


def not_found_text(path: str) -> str:
    """A 404 for people: what was not found, in their words (the API keeps the precise message)."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] in (["changes"], ["drafts"]) and (len(parts) == 2 or parts[2:] == ["edit"]):
        what = "change" if parts[0] == "changes" else "draft"
        return (f"There is no {what} {parts[1]}. The link may be mistyped, or the {what} was "
                + ("submitted or deleted" if what == "draft" else "never submitted") + "; search for it instead.")
    return "There is no page at this address."


def _schedule_text(s: Mapping | None) -> str:
    return fmt_window(s) if s else "?"


def _raw(m: Mapping) -> list[str]:
    """The internal facts of a history entry, for its detail view (not the headline)."""
    out = []
    if m.get("seq") is not None:
        out.append(f"version {m['seq']}")
    if m.get("actor"):
        out.append(f"recorded by {m['actor']}")
    for key, label in (("customer", "customer"), ("transition", "transition"), ("topic", "topic"),
                       ("meetingId", "event")):
        if m.get(key) not in (None, ""):
            out.append(f"{label} {m[key]}")
    return out


def timeline(change: Mapping, names: Mapping[str, str] | None = None,
             topics: Mapping[str, str] | None = None) -> list[dict]:
    """The history for people: headlines in their words; ``raw`` keeps the internal facts."""
    from runtime.domain.words import topic_display

    names = names or {}
    tz = (change.get("schedule") or {}).get("timezone")
    out = []
    for i, m in enumerate(change.get("modifications", []) or []):
        if not isinstance(m, Mapping):
            continue
        t = str(m.get("type", "?"))
        details: list[str] = []
        cust = m.get("customer")
        who = names.get(cust, cust) if cust else None
        if t in LIFECYCLE_TYPES:
            kind = "lifecycle"
            title = TRANSITION_LABELS[t]
            if t == "submitted":
                details.append("Customers: " + ", ".join(names.get(c, c) for c in m.get("customers") or []))
            if t == "updated":
                if m.get("fields"):
                    title += ": " + ", ".join(FIELD_LABELS.get(f, f) for f in m["fields"])
                if m.get("addedCustomers"):
                    details.append("Added: " + ", ".join(names.get(c, c) for c in m["addedCustomers"]))
                if m.get("removedCustomers"):
                    details.append("Removed: " + ", ".join(names.get(c, c) for c in m["removedCustomers"]))
            if t == "rescheduled":
                details.append(f"From {_schedule_text(m.get('previousSchedule'))}")
                details.append(f"To {_schedule_text(m.get('schedule'))}")
            if t == "cancelled" and m.get("wasApproved"):
                details.append("It had been approved: the announcement list is told.")
            if m.get("note"):
                details.append(f"Note: {m['note']}")
        elif t in REVIEW_LABELS:
            kind = "review"
            title = REVIEW_LABELS[t]
            details.append(str(m.get("comment") or ""))
        else:
            kind = "backend"
            if t == "processed":
                n, f = int(m.get("emailsSent") or 0), int(m.get("emailsFailed") or 0)
                title = (f"{who}: {step_labels_of(change).get(str(m.get('transitionType')), 'notice')} sent "
                         f"to {n} recipient{'s' if n != 1 else ''}")
                if f:
                    title += f", {f} failed"
                if m.get("topic"):
                    details.append(f"To the \u201c{topic_display(m['topic'], names=topics)}\u201d list")
            elif t == "rejected":
                title = f"{who or 'A trigger'}: rejected"
                details.append(str(m.get("reason", "")))
            elif t == "meeting_scheduled":
                title = "Teams meeting scheduled"
            elif t == "meeting_updated":
                title = "Teams meeting moved"
            elif t == "meeting_cancelled":
                title = "Teams meeting cancelled"
            elif t == "meeting_failed":
                title = "Teams meeting could not be scheduled"
                details.append(str(m.get("reason", "")))
            else:
                title = t.replace("_", " ").capitalize()
        out.append({"i": i, "type": t, "kind": kind, "title": title, "details": [d for d in details if d],
                    "raw": _raw(m),
                    "actor": m.get("actor", ""), "timestamp": m.get("timestamp", ""),
                    "when": fmt_time(m.get("timestamp"), tz), "seq": m.get("seq")})
    out.sort(key=lambda e: (str(e["timestamp"]), e["i"]))
    return out


# ---------------------------------------------------------------------------------------------
# The change form

FORM_TEXT = ("title",) + TEXT_FIELDS
# error message prefix (runtime.domain.model's field names) -> form field
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
_PREFIX = re.compile(r"^(?:reschedule: |update: )?([A-Za-z][\w.\[\]]*): ")


def field_of(message: str) -> str | None:
    """The form field an InvalidInput message is about (``schedule.timezone: ...`` -> timezone)."""
    m = _PREFIX.match(message or "")
    if not m:
        return None
    name = m.group(1)
    return _FIELD_OF.get(name) or _FIELD_OF.get(name.split("[", 1)[0])


def api_field_of(message: str) -> str | None:
    m = _PREFIX.match(message or "")
    if m:
        return m.group(1)
    return "changeId" if (message or "").startswith("changeId ") else None


def to_local_input(value: object, tz: str | None) -> str:
    """An RFC 3339 time as a ``datetime-local`` value in the change's zone."""
    dt = _parse(value)
    if dt is None:
        return ""
    zone = _zone(tz)
    return (dt.astimezone(zone) if zone else dt).strftime("%Y-%m-%dT%H:%M")


def from_local_input(value: str, tz: str, field: str) -> str:
    """``2026-12-08T02:00`` in ``tz`` -> ``2026-12-08T02:00:00-05:00``."""
    try:
        naive = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(f"{field}: {value!r} is not a date and time (YYYY-MM-DDTHH:MM)") from None
    if naive.tzinfo is not None:
        return naive.isoformat()
    zone = _zone(tz)
    if zone is None:
        raise InvalidInput(f"timezone: unknown time zone {tz!r} (use an IANA name such as Europe/Paris)")
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
            errors[field_of(str(exc)) or name] = _message(str(exc))
    if current is not None:
        old = current.get("schedule") or {}
        for key in ("implementationStart", "implementationEnd"):
            a, b = _parse(sched.get(key)), _parse(old.get(key))
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


def _message(text: str) -> str:
    """An InvalidInput message without its ``field: `` prefix, capitalised for a form."""
    m = _PREFIX.match(text or "")
    rest = text[m.end():] if m else text
    return rest[:1].upper() + rest[1:]


def form_errors(exc: InvalidInput) -> dict[str, str]:
    return {field_of(str(exc)) or "_form": _message(str(exc))}


@lru_cache(maxsize=1)
def time_zones() -> tuple[str, ...]:
    from zoneinfo import available_timezones

    return tuple(sorted(z for z in available_timezones() if "/" in z or z == "UTC"))


def customer_names(cfg) -> dict[str, str]:
    return {c.code: c.name for c in cfg.customers}


def versions_since(change: Mapping, version: int) -> list[Mapping]:
    """The lifecycle transitions after ``version`` (who changed what under a stale editor)."""
    return [e for e in lifecycle_entries(change) if e["seq"] > version]


def join(items: Iterable[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
