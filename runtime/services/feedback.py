"""SES feedback: what became of an email after SES accepted it (delivered, bounced, complained).

Each customer's SES publishes its identity notifications (Bounce, Complaint, Delivery, with the
original headers) to that customer's SNS topic, which feeds that customer's feedback queue
(``ttr-{code}-feedback``). The ``FeedbackActor`` reads every tenant's queue and hands each
message here:

- ``parse_notification`` (pure) turns an SNS envelope (or a raw-delivered SES notification, or a
  configuration-set event) into ``FeedbackEvent``s. Tenant isolation: the message must come
  from the tenant's own account and topic, and the ``X-TTR-Ref`` header that the handler puts on
  every email (``{changeId}/{code}/{seq}``) must name this tenant; anything else is refused.
- ``FeedbackRecorder`` writes each event per recipient next to the delivery ledger
  (``ledger/{changeId}/{code}/{seq}.feedback.json``) and adds a hard bounce or a complaint to
  the tenant's suppression list (``suppressed/{code}.json``).
- ``SuppressionList`` is what the handler asks before sending (``decide_recipients``'s
  ``suppressed``) and what ``ttr suppressed list|clear`` reads and changes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable, Iterable, Literal, Mapping

from runtime.domain.errors import AlreadyExists, NotFound, PreconditionFailed, RejectedInput, RetryableError
from runtime.domain.model import LEDGER_PREFIX, check_change_id, now_iso
from runtime.ports import ObjectStore

REF_HEADER = "X-TTR-Ref"          # on every email: which ledger it belongs to
REF_TAG = "ttr-ref"               # the same, as an SES message tag (configuration-set events)
SUPPRESSED_PREFIX = "suppressed/"
Kind = Literal["bounce", "complaint", "delivery"]
_KINDS = {"bounce": "bounce", "complaint": "complaint", "delivery": "delivery"}


def ref_value(change_id: str, code: str, seq: int) -> str:
    return f"{change_id}/{code}/{int(seq)}"


def feedback_topic_arn(customer, any_arn: str) -> str:
    """Customer ``customer``'s feedback topic, in the account and region of ``any_arn`` (one of
    the management account's resources, e.g. its feedback queue)."""
    _, _, _, region, account, _ = any_arn.split(":", 5)
    return f"arn:aws:sns:{region}:{account}:{customer.feedback_topic_name}"


def feedback_key(change_id: str, code: str, seq: int) -> str:
    return f"{LEDGER_PREFIX}{check_change_id(change_id)}/{code}/{int(seq)}.feedback.json"


def suppressed_key(code: str) -> str:
    return f"{SUPPRESSED_PREFIX}{code}.json"


@dataclass(frozen=True)
class FeedbackEvent:
    kind: Kind
    recipient: str
    message_id: str
    at: str
    detail: str = ""               # bounce type/subtype, complaint feedback type, SMTP response
    permanent: bool = False        # a hard bounce
    change_id: str | None = None
    seq: int | None = None

    @property
    def suppresses(self) -> bool:
        """A hard bounce or a complaint: do not email this address again until cleared."""
        return self.kind == "complaint" or (self.kind == "bounce" and self.permanent)

    def to_json(self) -> dict:
        out = {"kind": self.kind, "at": self.at, "messageId": self.message_id}
        if self.detail:
            out["detail"] = self.detail
        if self.kind == "bounce":
            out["permanent"] = self.permanent
        return out


def _ref(mail: Mapping) -> str | None:
    for h in mail.get("headers") or ():
        if isinstance(h, Mapping) and str(h.get("name", "")).lower() == REF_HEADER.lower():
            return str(h.get("value", ""))
    tags = mail.get("tags") or {}
    if isinstance(tags, Mapping) and tags.get(REF_TAG):
        v = tags[REF_TAG]
        return str(v[0] if isinstance(v, list) and v else v)
    return None


def parse_notification(body: str, *, code: str, account_id: str,
                       topic_arn: str | None = None) -> list[FeedbackEvent]:
    """The events in one feedback-queue message of tenant ``code``; [] for SNS housekeeping
    (subscription confirmations). Raises ``RejectedInput`` for anything that is not SES
    feedback of this tenant."""
    try:
        outer = json.loads(body)
    except ValueError:
        raise RejectedInput("not JSON") from None
    if not isinstance(outer, Mapping):
        raise RejectedInput("not a JSON object")
    if outer.get("Type") in ("SubscriptionConfirmation", "UnsubscribeConfirmation"):
        return []
    if outer.get("Type") == "Notification":
        if topic_arn and outer.get("TopicArn") != topic_arn:
            raise RejectedInput(f"from topic {outer.get('TopicArn')!r}, not this tenant's {topic_arn!r}")
        try:
            note = json.loads(outer.get("Message") or "")
        except ValueError:
            raise RejectedInput("the SNS message is not JSON") from None
    else:
        note = outer  # raw message delivery
    if not isinstance(note, Mapping):
        raise RejectedInput("the SES notification is not a JSON object")
    kind = _KINDS.get(str(note.get("notificationType") or note.get("eventType") or "").lower())
    if kind is None:
        raise RejectedInput(f"not an SES bounce, complaint or delivery notification "
                            f"({note.get('notificationType') or note.get('eventType')!r})")
    mail = note.get("mail") if isinstance(note.get("mail"), Mapping) else {}
    sending = str(mail.get("sendingAccountId") or "")
    if sending and sending != account_id:
        raise RejectedInput(f"sent from account {sending}, not tenant {code}'s {account_id}")
    change_id = seq = None
    ref = _ref(mail)
    if ref:
        parts = ref.split("/")
        if len(parts) != 3 or not parts[2].isdigit():
            raise RejectedInput(f"malformed {REF_HEADER} {ref!r}")
        if parts[1] != code:
            raise RejectedInput(f"{REF_HEADER} names customer {parts[1]!r}, not {code!r}")
        try:
            change_id = check_change_id(parts[0])
        except Exception:  # noqa: BLE001 - any invalid id is bad input here
            raise RejectedInput(f"malformed {REF_HEADER} {ref!r}") from None
        seq = int(parts[2])
    message_id = str(mail.get("messageId") or "")
    detail_obj = note.get(kind) if isinstance(note.get(kind), Mapping) else {}
    at = str(detail_obj.get("timestamp") or mail.get("timestamp") or now_iso())
    common = {"kind": kind, "message_id": message_id, "at": at, "change_id": change_id, "seq": seq}
    events: list[FeedbackEvent] = []
    if kind == "bounce":
        btype, sub = str(detail_obj.get("bounceType") or ""), str(detail_obj.get("bounceSubType") or "")
        for r in detail_obj.get("bouncedRecipients") or ():
            addr = str((r or {}).get("emailAddress") or "") if isinstance(r, Mapping) else ""
            if addr:
                diag = str(r.get("diagnosticCode") or "")[:300]
                events.append(FeedbackEvent(recipient=addr, permanent=btype == "Permanent",
                                            detail=" ".join(x for x in (btype, sub, diag) if x), **common))
    elif kind == "complaint":
        ftype = str(detail_obj.get("complaintFeedbackType") or "")
        for r in detail_obj.get("complainedRecipients") or ():
            addr = str((r or {}).get("emailAddress") or "") if isinstance(r, Mapping) else ""
            if addr:
                events.append(FeedbackEvent(recipient=addr, detail=ftype, **common))
    else:
        smtp = str(detail_obj.get("smtpResponse") or "")[:300]
        for addr in detail_obj.get("recipients") or ():
            if isinstance(addr, str) and addr:
                events.append(FeedbackEvent(recipient=addr, detail=smtp, **common))
    if not events:
        raise RejectedInput(f"an SES {kind} notification without recipients")
    destination = {str(a).lower() for a in mail.get("destination") or ()}
    if destination and any(e.recipient.lower() not in destination for e in events):
        raise RejectedInput("a recipient the email was not sent to")
    return events


# ---------------------------------------------------------------------------------------------
# Storage: small JSON documents under compare-and-swap


def _update_json(store: ObjectStore, key: str, mutate: Callable[[dict], bool], *, attempts: int = 8) -> bool:
    """Read-modify-write ``key`` with If-Match (If-None-Match when new). ``mutate`` changes the
    document in place and returns whether anything changed; returns whether it wrote."""
    for _ in range(attempts):
        try:
            obj = store.get(key)
            doc, etag = json.loads(obj.body), obj.etag
        except NotFound:
            doc, etag = {}, None
        if not mutate(doc):
            return False
        body = json.dumps(doc, indent=1, sort_keys=True).encode()
        try:
            if etag is None:
                store.put(key, body, if_none_match=True)
            else:
                store.put(key, body, if_match=etag)
            return True
        except (AlreadyExists, PreconditionFailed):
            continue  # someone else wrote meanwhile: read again
    raise RetryableError(f"{key}: kept conflicting", operation="feedback.write")


@dataclass
class SuppressionList:
    """A tenant's addresses that must not be emailed (hard bounce or complaint), until cleared."""

    store: ObjectStore
    code: str

    @property
    def key(self) -> str:
        return suppressed_key(self.code)

    def entries(self) -> dict[str, dict]:
        try:
            doc = json.loads(self.store.get(self.key).body)
        except NotFound:
            return {}
        return dict(doc.get("addresses") or {})

    def predicate(self) -> Callable[[str], bool]:
        """Read once; the check for one ``decide_recipients`` pass (case-insensitive)."""
        addresses = set(self.entries())
        return lambda address: address.strip().lower() in addresses

    def add(self, event: FeedbackEvent) -> bool:
        def mutate(doc: dict) -> bool:
            addrs = doc.setdefault("addresses", {})
            doc["customer"] = self.code
            if event.recipient.lower() in addrs:
                return False
            addrs[event.recipient.lower()] = {"reason": event.kind, "detail": event.detail, "at": event.at,
                                              "messageId": event.message_id, "changeId": event.change_id,
                                              "suppressedAt": now_iso()}
            return True

        return _update_json(self.store, self.key, mutate)

    def clear(self, address: str) -> bool:
        """Remove ``address``; False when it was not suppressed."""
        def mutate(doc: dict) -> bool:
            return (doc.get("addresses") or {}).pop(address.strip().lower(), None) is not None

        return _update_json(self.store, self.key, mutate)


@dataclass
class FeedbackRecorder:
    store: ObjectStore
    code: str
    totals: dict[str, int] = field(default_factory=dict)

    def record(self, events: Iterable[FeedbackEvent]) -> list[FeedbackEvent]:
        """Record events (idempotent: the same event twice is kept once); returns the new ones."""
        events = list(events)
        new: list[FeedbackEvent] = []
        by_ledger: dict[tuple[str, int], list[FeedbackEvent]] = {}
        for e in events:
            if e.change_id is not None and e.seq is not None:
                by_ledger.setdefault((e.change_id, e.seq), []).append(e)
            else:
                new.append(e)   # no ledger to attach it to: counted and, if it must, suppressed
        for (change_id, seq), evs in by_ledger.items():
            added: list[FeedbackEvent] = []

            def mutate(doc: dict, evs=evs, added=added, change_id=change_id, seq=seq) -> bool:
                added.clear()
                doc.update({"changeId": change_id, "customer": self.code, "seq": seq})
                recips = doc.setdefault("recipients", {})
                for e in evs:
                    have = recips.setdefault(e.recipient.lower(), [])
                    if any(h.get("kind") == e.kind and h.get("messageId") == e.message_id for h in have):
                        continue
                    have.append(e.to_json())
                    added.append(e)
                return bool(added)

            _update_json(self.store, feedback_key(change_id, self.code, seq), mutate)
            new += added
        suppression = SuppressionList(self.store, self.code)
        for e in events:
            if e.suppresses:
                suppression.add(e)
        for e in new:
            self.totals[e.kind] = self.totals.get(e.kind, 0) + 1
        return new


def summarize(feedback: Mapping | None) -> dict[str, str]:
    """address -> what became of the email, worst first ("complained", "bounced", "delivered")."""
    out: dict[str, str] = {}
    rank = {"complaint": 0, "bounce": 1, "delivery": 2}
    words = {"complaint": "complained", "bounce": "bounced", "delivery": "delivered"}
    for addr, evs in ((feedback or {}).get("recipients") or {}).items():
        kinds = [e for e in evs if isinstance(e, Mapping) and e.get("kind") in rank]
        if not kinds:
            continue
        worst = min(kinds, key=lambda e: rank[e["kind"]])
        word = words[worst["kind"]]
        if worst["kind"] == "bounce":
            word += " (hard)" if worst.get("permanent") else " (soft)"
        out[addr] = word
    return out


# ---------------------------------------------------------------------------------------------
# The consumer: one tenant's feedback queue

REJECTED_FEEDBACK_PREFIX = "rejected-feedback/"


@dataclass
class FeedbackConsumer:
    """Reads tenant ``code``'s feedback queue, records what it says, acks. Refused input is kept
    under ``rejected-feedback/{code}/`` and acked; a failure to record leaves the message for
    SQS to deliver again (recording is idempotent)."""

    code: str
    account_id: str
    queue: object            # ports.Queue
    store: ObjectStore
    topic_arn: str | None = None
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.recorder = FeedbackRecorder(self.store, self.code)

    def poll_once(self, wait_seconds: int = 10) -> list[FeedbackEvent]:
        import logging

        from runtime.domain.errors import TtrError
        from runtime.telemetry import metrics

        log = logging.getLogger("ttr.feedback")
        done: list[str] = []
        recorded: list[FeedbackEvent] = []
        for msg in self.queue.receive(10, wait_seconds):  # type: ignore[attr-defined]
            try:
                events = parse_notification(msg.body, code=self.code, account_id=self.account_id,
                                            topic_arn=self.topic_arn)
            except RejectedInput as exc:
                log.warning("tenant %s: refused feedback message %s: %s", self.code, msg.message_id, exc)
                self.store.put(f"{REJECTED_FEEDBACK_PREFIX}{self.code}/{msg.message_id}.json", json.dumps(
                    {"customer": self.code, "reason": str(exc), "at": now_iso(), "message": msg.body[:256 * 1024]},
                    indent=1).encode())
                self.counts["rejected"] = self.counts.get("rejected", 0) + 1
                done.append(msg.receipt)
                continue
            try:
                new = self.recorder.record(events)
            except TtrError as exc:
                log.warning("tenant %s: feedback %s not recorded yet: %s", self.code, msg.message_id, exc)
                continue
            for e in new:
                metrics().email_feedback.add(1, {"tenant": self.code, "kind": e.kind})
                if e.suppresses:
                    log.warning("tenant %s: %s for %s: suppressed until `ttr suppressed clear`", self.code,
                                e.kind, e.recipient)
                self.counts[e.kind] = self.counts.get(e.kind, 0) + 1
            recorded += new
            done.append(msg.receipt)
        if done:
            self.queue.delete_batch(done)  # type: ignore[attr-defined]
        return recorded
