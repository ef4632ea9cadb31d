"""What happened to a change, for people: the delivery read model and the history (pure, no I/O).

Used by the portal (pages and ``/api/.../delivery``) and by ``ttr change view``, so both say the
same thing. It reads the archive object (``processed``/``rejected`` records, the lifecycle, the
meeting's metadata) and the delivery ledgers the caller read (``runtime.services.ledger``):

- ``delivery``: per customer, processed / pending / rejected transitions and emails sent, and per
  transition every contact with what happened (sent, failed, or not told and why, as recorded
  in the ledger at the time; ``contact_outcomes``), from ``processing.plan``;
- ``meeting``: the Teams meeting's state and its join link (only http(s) links are ever shown);
- ``timeline``: the modification log in words.

A service rather than domain: it reads SES feedback through ``runtime.services.feedback`` and
formats times with ``runtime.emails`` (the one source of the window's wording).
"""

from __future__ import annotations

from typing import Mapping
from urllib.parse import urlparse

from runtime.domain.errors import RejectedInput, TtrError
from runtime.domain.model import LIFECYCLE_TYPES, lifecycle_entries
from runtime.domain.processing import REMOVED_KIND, plan
from runtime.domain.recipients import SKIP_REASONS
from runtime.domain.words import topic_display
from runtime.emails import format_time, format_window
from runtime.services.feedback import summarize as feedback_summary

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


def _schedule_text(s: Mapping | None) -> str:
    return format_window(s) if s else "?"


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
                    "when": format_time(m.get("timestamp"), tz), "seq": m.get("seq")})
    out.sort(key=lambda e: (str(e["timestamp"]), e["i"]))
    return out
