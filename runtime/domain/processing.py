"""What must happen for this change and this customer: pure decisions, no I/O.

The archive log is the truth; a trigger is only a wake-up. For a (change, customer) pair the
pending work is every lifecycle transition that included the customer and has no ``processed``
record for it yet, handled in ``seq`` order. A duplicate or stale event finds nothing pending.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Mapping
from urllib.parse import unquote_plus

from runtime.domain.errors import RejectedInput
from runtime.domain.kinds import route
from runtime.domain.model import lifecycle_entries, parse_trigger_key

BACKEND_ACTOR = "ttr-runtime"


def processed_key(customer: str, seq: int) -> str:
    return f"processed:{customer}:{seq}"


@dataclass(frozen=True)
class Step:
    """One transition to handle for one customer."""

    seq: int
    type: str                 # submitted, updated, approved, rescheduled, completed, cancelled
    topic: str                # the SES topic told
    kind: str                 # the email template
    first_request: bool       # an approval request this customer has not had before
    transition: Mapping       # the lifecycle modification itself
    meeting: str | None = None  # ensure | update | cancel | None

    def processed_record(self, customer: str, *, sent: int, failed: int, skipped: int, now: str,
                         not_told: int = 0) -> dict:
        return {"type": "processed", "key": processed_key(customer, self.seq), "timestamp": now,
                "actor": BACKEND_ACTOR, "customer": customer, "transition": self.seq,
                "transitionType": self.type, "topic": self.topic, "emailsSent": sent,
                "emailsFailed": failed, "emailsAlreadySent": skipped, "recipientsSkipped": not_told}


@dataclass(frozen=True)
class Plan:
    change_id: str
    customer: str
    steps: tuple[Step, ...] = ()
    stale: bool = False       # the customer was on the change once, but is no longer
    reason: str = ""

    @property
    def nothing_to_do(self) -> bool:
        return not self.steps


def _customers_at(entry: Mapping, change: Mapping) -> list[str]:
    custs = entry.get("customers")
    return list(custs) if isinstance(custs, list) else list(change.get("customers", []))


def plan(change: Mapping, customer: str) -> Plan:
    """The pending steps for ``customer`` on ``change``.

    Raises RejectedInput when the customer was never on the change (tenant isolation: a trigger
    under customers/a/ is processed only if a is on the change).
    """
    change_id = str(change.get("changeId"))
    entries = lifecycle_entries(change)
    ever_on = any(customer in _customers_at(e, change) for e in entries) or customer in change.get("customers", [])
    if not ever_on:
        raise RejectedInput(f"customer {customer} is not on change {change_id}", code="customer_not_on_change")
    done = {m.get("key") for m in change.get("modifications", []) if isinstance(m, Mapping)
            and m.get("type") == "processed"}
    steps: list[Step] = []
    approved_seq = None
    requested = False  # whether this customer has been (or is about to be) asked for approval
    for e in entries:
        included = customer in _customers_at(e, change)
        approved_before = approved_seq is not None
        if e["type"] == "approved" and approved_seq is None:
            approved_seq = e["seq"]
        if not included:
            continue
        first = e["type"] == "submitted" or (e["type"] == "updated" and not requested)
        if e["type"] in ("submitted", "updated"):
            requested = True
        if processed_key(customer, e["seq"]) in done:
            continue
        where = route(change, e["type"], approved_before=approved_before)
        steps.append(Step(seq=e["seq"], type=e["type"], topic=where.topic, kind=where.email,
                          first_request=first, transition=dict(e), meeting=where.meeting))
    if customer not in change.get("customers", []):
        # Removed by an update: what it was told stays told; it is told once that the change
        # no longer affects it, and nothing more goes to it.
        notice = _removal_notice(change, customer, entries, done)
        return Plan(change_id, customer, (notice,) if notice else (), stale=True,
                    reason=f"customer {customer} was removed from the change")
    return Plan(change_id, customer, tuple(steps))


REMOVED_KIND = "removed"


def _removal_notice(change: Mapping, customer: str, entries: list, done: set) -> Step | None:
    """The one "no longer affects you" step of a customer taken off the change, on the topic
    its last email used; None when it was never told anything (nothing to take back) or was
    told already. The meeting drops its invitees (``update``) when one exists."""
    removal = None
    approved_before = False
    for e in entries:
        if e["type"] == "approved":
            approved_before = True
        included = customer in _customers_at(e, change)
        if included:
            removal = None
        elif removal is None:
            removal = (e, approved_before)
    if removal is None:
        return None
    entry, approved_then = removal
    told = [m for m in change.get("modifications", []) if isinstance(m, Mapping)
            and m.get("type") == "processed" and m.get("customer") == customer
            and isinstance(m.get("transition"), int) and m["transition"] < entry["seq"]
            and m.get("transitionType") != REMOVED_KIND]
    if not told or processed_key(customer, entry["seq"]) in done:
        return None
    last = max(told, key=lambda m: m["transition"])
    topic = str(last.get("topic") or route(change, entry["type"], approved_before=approved_then).topic)
    meeting = "update" if approved_then and (change.get("meeting") or {}).get("required") else None
    return Step(seq=entry["seq"], type=REMOVED_KIND, topic=topic, kind=REMOVED_KIND, first_request=False,
                transition=dict(entry), meeting=meeting)


# ---------------------------------------------------------------------------------------------
# SQS message bodies


@dataclass(frozen=True)
class TriggerEvent:
    key: str
    customer: str
    change_id: str
    event_name: str
    etag: str = ""


@dataclass
class ParsedMessage:
    """What a queue message asks for: trigger events, a test event, or nothing we understand."""

    events: list[TriggerEvent] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (what, why)
    test_event: bool = False
    wakeup: bool = False

    @property
    def foreign(self) -> bool:
        return not self.events and not self.rejected and not self.test_event and not self.wakeup


def parse_message(body: str, own_customer: str) -> ParsedMessage:
    """Decode an SQS body: S3 event records (URL-encoded keys), S3 test events, our wake-ups."""
    out = ParsedMessage()
    try:
        data = json.loads(body)
    except (ValueError, TypeError):
        out.rejected.append(("message", "not JSON: not an S3 event"))
        return out
    if not isinstance(data, dict):
        out.rejected.append(("message", "not an S3 event (JSON but not an object)"))
        return out
    if data.get("Event") == "s3:TestEvent":
        out.test_event = True
        return out
    if data.get("ttrWakeup") and isinstance(data.get("changeId"), str):
        # The orphan reconciler's wake-up: same meaning as an S3 event for the trigger.
        key = f"customers/{own_customer}/{data['changeId']}.json"
        _add_key(out, key, own_customer, "ttr:Wakeup", "")
        out.wakeup = True
        return out
    records = data.get("Records")
    if not isinstance(records, list) or not records:
        out.rejected.append(("message", "not an S3 event (no Records)"))
        return out
    for r in records:
        try:
            if r.get("eventSource") != "aws:s3":
                raise KeyError("eventSource")
            name = str(r["eventName"])
            raw_key = r["s3"]["object"]["key"]
            etag = str(r["s3"]["object"].get("eTag", ""))
        except (KeyError, TypeError, AttributeError):
            out.rejected.append(("record", "not an S3 event record"))
            continue
        if not name.startswith("ObjectCreated"):
            continue  # deletions and the like are not wake-ups
        _add_key(out, unquote_plus(str(raw_key)), own_customer, name, etag)
    return out


def _add_key(out: ParsedMessage, key: str, own_customer: str, name: str, etag: str) -> None:
    try:
        code, change_id = parse_trigger_key(key)
    except RejectedInput as exc:
        out.rejected.append((key, str(exc)))
        return
    if code != own_customer:
        out.rejected.append((key, f"trigger of customer {code} arrived on the queue of {own_customer}"))
        return
    out.events.append(TriggerEvent(key=key, customer=code, change_id=change_id, event_name=name, etag=etag))
