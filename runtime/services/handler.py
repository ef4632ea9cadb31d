"""What happens to a trigger: one queue message of one tenant, from receipt to ack.

    message -> S3 records -> per change (serialised): load archive -> plan (pure) ->
    for each pending transition: [meeting, so the emails carry its join URL] -> who is told and
    who not (ledger) -> emails, rendered once per reader's zone -> processed record
    -> delete trigger -> ack

Failures keep the trigger: anything retryable (or unexpected) leaves the message unacked with a
backoff, and SQS moves it to the DLQ after maxReceiveCount. Bad input that can never succeed is
rejected: the reason is recorded (on the change, when there is one), the trigger bytes are kept
under ``rejected/``, the trigger is removed and the message acked, so the queue keeps flowing.

This module does I/O only through ports; the CustomerActor is a thin shell around it.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Mapping, Protocol

from runtime.domain import processing
from runtime.domain.errors import InvalidInput, NotFound, RecipientRejected, RejectedInput, TenantPaused, TtrError
from runtime.domain.model import REJECTED_PREFIX, now_iso
from runtime.domain.recipients import Contact, decide_recipients, select_recipients, valid_zone
from runtime.ports import Mailer, ObjectStore, QueueMessage
from runtime.services.archive import ArchiveStore
from runtime.services.feedback import REF_HEADER, SuppressionList, ref_value
from runtime.services.ledger import FLUSH_EVERY, Ledger
from runtime.services.locks import KeyedLock
from runtime.services.pacing import RateLimiter
from runtime.telemetry import add_event, metrics, span

if TYPE_CHECKING:  # a tenant's process is given a TenantConfig and imports no pydantic
    from runtime.domain.config import Config, CustomerConfig
    from runtime.domain.tenant import TenantConfig, TenantCustomer
    from runtime.emails import DeliveryRequest, RenderedDelivery

log = logging.getLogger("ttr.handler")

CONTACTS_TTL = 30.0          # seconds a tenant's contact list is reused across messages
ATTRIBUTES_TTL = 3600.0      # seconds a contact's attributes (its time zone) are reused
# SES throttles every API action but SendEmail at 1 request/s per account: GetContact (for a
# contact's time zone) is paced, and one transition waits at most ATTRIBUTE_BUDGET seconds for
# it; contacts not read in time get the customer's zone this once and are read on a later pass.
ATTRIBUTE_LOOKUP_RATE = 1.0
ATTRIBUTE_LOOKUP_BURST = 5
ATTRIBUTE_BUDGET = 3.0
MAX_BACKOFF = 900            # seconds
BASE_BACKOFF = 10
MEETING_PATIENCE = 3         # receives a failing meeting may hold the emails back (of 5 before the DLQ)


class ArchiveWriter(Protocol):
    def record(self, change_id: str, records: list[dict], set_fields: dict | None = None) -> int: ...


class Meetings(Protocol):
    def handle(self, change_id: str, step: processing.Step) -> None: ...


class Renderer(Protocol):
    """Renders a transition's emails and calendar file (``runtime.emails.render_delivery``): in
    this process (``runtime.emails.LocalRenderer``), or in the renderer actor for a tenant
    (``actors.proxies.ActorRenderer``), which then never loads jinja2 and the templates."""

    def render(self, request: DeliveryRequest) -> RenderedDelivery: ...


@dataclass
class Outcome:
    """What to do with the message: ack it, or leave it for a retry after ``retry_after`` s."""

    ack: bool
    retry_after: float = 0.0
    pause_tenant: float = 0.0
    error: str = ""
    steps_done: list[tuple[str, int]] = field(default_factory=list)  # (changeId, seq)
    rejected: list[str] = field(default_factory=list)
    emails_sent: int = 0
    emails_failed: int = 0

    @property
    def kind(self) -> str:
        """The one classification of a message's outcome: success, rejected (acked) or retry."""
        if not self.ack:
            return "retry"
        return "rejected" if self.rejected else "success"


def meeting_for_email(change: dict, step: processing.Step) -> dict | None:
    """What the email says about the Teams meeting: its join URL, or that the invitation
    will follow (not made yet, or ``meeting_failed``); None for a change without a meeting."""
    if not (change.get("meeting") or {}).get("required") or step.type not in ("approved", "rescheduled"):
        return None
    join_url = (change.get("meetingMetadata") or {}).get("joinUrl")
    return {"joinUrl": join_url} if join_url else {"pending": True}


def backoff(receive_count: int, hint: float | None = None, base_seconds: float = BASE_BACKOFF) -> float:
    if hint:
        return min(MAX_BACKOFF, float(hint))
    base = min(MAX_BACKOFF, base_seconds * (2 ** max(0, receive_count - 1)))
    return base * random.uniform(0.75, 1.0)


class TriggerHandler:
    def __init__(self, *, cfg: Config | TenantConfig, customer: CustomerConfig | TenantCustomer, store: ObjectStore, mailer: Mailer,
                 archive: ArchiveWriter, limiter: RateLimiter | None = None,
                 meetings: Meetings | None = None, clock: Callable[[], str] = now_iso,
                 base_backoff: float | None = None, attribute_budget: float = ATTRIBUTE_BUDGET,
                 renderer: Renderer | None = None):
        self.cfg = cfg
        self.customer = customer
        self.code = customer.code
        self.store = store
        self.reader = ArchiveStore(store)
        self.mailer = mailer
        self.archive = archive
        self.limiter = limiter or RateLimiter(customer.max_send_rate)
        self.meetings = meetings
        if renderer is None:
            from runtime.emails import LocalRenderer

            renderer = LocalRenderer()
        self.renderer = renderer
        self.clock = clock
        self.base_backoff = BASE_BACKOFF if base_backoff is None else base_backoff
        self._change_locks = KeyedLock()
        self._contacts: tuple[float, list[Contact], dict[str, str]] | None = None
        self._contacts_lock = threading.Lock()
        self._attributes_cache: dict[str, tuple[float, Mapping[str, str]]] = {}
        self._lookups = RateLimiter(ATTRIBUTE_LOOKUP_RATE, burst=ATTRIBUTE_LOOKUP_BURST)
        self.attribute_budget = attribute_budget  # seconds one transition may wait for GetContact
        self.suppression = SuppressionList(store, customer.code)  # hard bounces and complaints
        self._suppressed: tuple[float, Callable[[str], bool]] | None = None
        from runtime.domain.windows import WindowCounter

        self.deletes = WindowCounter()  # trigger deletes per minute: success / failure

    # -----------------------------------------------------------------------------------------
    def handle(self, msg: QueueMessage) -> Outcome:
        started = time.monotonic()
        out = self._handle(msg)
        m, tenant = metrics(), {"tenant": self.code}
        kind = out.kind
        m.processing_outcomes.add(1, {**tenant, "outcome": kind})
        m.processing_duration.record(time.monotonic() - started, {**tenant, "outcome": kind})
        if out.emails_sent:
            m.emails_sent.add(out.emails_sent, tenant)
        if out.emails_failed:
            m.emails_failed.add(out.emails_failed, tenant)
        if not out.ack:
            m.errors.add(1, {**tenant, "type": out.error.split(":", 1)[0] or "unknown"})
        return out

    def _handle(self, msg: QueueMessage) -> Outcome:
        out = Outcome(ack=True)
        parsed = processing.parse_message(msg.body, self.code)
        if parsed.test_event:
            return out
        if parsed.foreign:
            return out
        for what, why in parsed.rejected:
            self._reject(what, why, msg, out)
        for event in parsed.events:
            try:
                self._process_change(event, msg, out)
            except Exception as exc:  # noqa: BLE001 - every failure keeps the trigger; see _retry_later
                return self._retry_later(msg, out, event, exc)
        return out

    def _retry_later(self, msg: QueueMessage, out: Outcome, event: processing.TriggerEvent,
                     exc: Exception) -> Outcome:
        """Leave the message for a retry (visibility backoff, then the DLQ): the trigger stays."""
        pause = 0.0
        if isinstance(exc, TenantPaused):
            log.error("TENANT %s PAUSED BY SES: %s — sending stops, messages retry later", self.code, exc)
            pause = exc.retry_after or 300
        elif isinstance(exc, TtrError):
            log.warning("tenant %s: %s on %s (attempt %d): %s", self.code, type(exc).__name__,
                        event.change_id, msg.receive_count, exc)
        else:  # a bug: keep the trigger, let the DLQ catch a poison message
            log.exception("tenant %s: unexpected error on %s", self.code, event.change_id)
        hint = exc.retry_after if isinstance(exc, TtrError) else None
        prefix = "" if isinstance(exc, TtrError) else "unexpected "
        return Outcome(ack=False, retry_after=backoff(msg.receive_count, hint, self.base_backoff),
                       pause_tenant=pause, error=f"{prefix}{type(exc).__name__}: {exc}",
                       steps_done=out.steps_done, emails_sent=out.emails_sent, emails_failed=out.emails_failed)

    # -----------------------------------------------------------------------------------------
    def _process_change(self, event: processing.TriggerEvent, msg: QueueMessage, out: Outcome) -> None:
        # One change at a time in this tenant: concurrent duplicates must not both send.
        with self._change_locks.hold(event.change_id), span("ttr.change", {"ttr.tenant": self.code,
                                                                  "ttr.change_id": event.change_id}):
            try:
                with span("archive.load", {"ttr.change_id": event.change_id}):
                    change, _ = self.reader.load(event.change_id)
            except NotFound:
                self._reject(event.key, f"unknown change {event.change_id} (no archive)", msg, out)
                return
            except InvalidInput as exc:
                self._reject(event.key, f"unreadable archive: {exc}", msg, out)
                return
            try:
                plan = processing.plan(change, self.code)
            except RejectedInput as exc:
                self._reject(event.key, str(exc), msg, out, change_id=event.change_id)
                return
            for step in plan.steps:
                with span("transition", {"ttr.tenant": self.code, "ttr.change_id": event.change_id,
                                         "ttr.seq": step.seq, "ttr.transition": step.type,
                                         "ttr.topic": step.topic}) as sp:
                    # The meeting first, so that the emails can carry its join URL.
                    change, meeting_error = self._meeting(change, step, msg)
                    sent, failed, skipped, not_told = self._deliver(change, step)
                    if meeting_error is not None:
                        # The emails went out saying the invitation will follow; the meeting
                        # is retried with the message (the ledger keeps the emails from repeating).
                        out.emails_sent += sent
                        out.emails_failed += failed
                        raise meeting_error
                    with span("archive.record", {"ttr.change_id": event.change_id, "ttr.record": "processed"}):
                        self.archive.record(event.change_id, [step.processed_record(
                            self.code, sent=sent, failed=failed, skipped=skipped, now=self.clock(),
                            not_told=not_told)])
                    sp.set_attributes({"ttr.outcome": "processed", "ttr.emails.sent": sent,
                                       "ttr.emails.failed": failed, "ttr.emails.skipped": skipped})
                out.steps_done.append((event.change_id, step.seq))
                out.emails_sent += sent
                out.emails_failed += failed
            self._delete_trigger(event.key, msg)

    def _delete_trigger(self, key: str, msg: QueueMessage) -> None:
        m, tenant = metrics(), {"tenant": self.code}
        with span("trigger.delete", {"ttr.tenant": self.code, "ttr.trigger": key}):
            try:
                self.store.delete(key)
            except TtrError:
                m.trigger_delete_failures.add(1, tenant)
                self.deletes.add("failure")
                raise
        m.triggers_deleted.add(1, tenant)
        self.deletes.add("success")
        if msg.sent_at:
            m.trigger_age.record(max(0.0, time.time() - msg.sent_at), tenant)

    # -----------------------------------------------------------------------------------------
    def contacts(self) -> tuple[list[Contact], dict[str, str]]:
        """Every contact of the tenant's list (all pages) and the topics' defaults, briefly cached."""
        with self._contacts_lock:
            now = time.monotonic()
            if self._contacts is None or now - self._contacts[0] > CONTACTS_TTL:
                items = self.mailer.list_contacts(self.customer.contact_list)
                defaults = self.mailer.topic_defaults(self.customer.contact_list)
                self._contacts = (now, [Contact.from_ses(i) for i in items], defaults)
            return self._contacts[1], self._contacts[2]

    def suppressed(self) -> Callable[[str], bool]:
        """The suppression check for one decision pass, without an S3 read per transition (that
        read was a sixth of a unit's S3+SQS calls). The list is kept for CONTACTS_TTL, like the
        contacts, and both directions stay prompt:
        - a new suppression: the FeedbackActor calls ``forget_suppressed`` (through
          CustomerActor.suppression_changed) right after recording it;
        - a cleared address (``ttr suppressed clear``): a skip is confirmed against a fresh read,
          once per pass, so an address is never skipped on a stale copy. That read happens only
          when someone in the audience is suppressed, which the happy path never is."""
        with self._contacts_lock:
            if self._suppressed is None or time.monotonic() - self._suppressed[0] > CONTACTS_TTL:
                self._suppressed = (time.monotonic(), self.suppression.predicate())
            cached = self._suppressed[1]
        confirmed: list[Callable[[str], bool]] = []

        def check(address: str) -> bool:
            if not cached(address):
                return False
            if not confirmed:
                fresh = self.suppression.predicate()
                with self._contacts_lock:
                    self._suppressed = (time.monotonic(), fresh)
                confirmed.append(fresh)
            return confirmed[0](address)

        return check

    def forget_suppressed(self) -> None:
        with self._contacts_lock:
            self._suppressed = None

    def recipients(self, topic: str) -> list[str]:
        contacts, defaults = self.contacts()
        return select_recipients(contacts, topic, defaults, self.customer.allows, self.suppressed())

    def _meeting(self, change: dict, step: processing.Step, msg: QueueMessage) -> tuple[dict, TtrError | None]:
        """Make (move, cancel) the meeting before the emails; the change as it is afterwards.

        A meeting that keeps failing does not hold the emails back for ever: from the
        ``MEETING_PATIENCE``-th receive on, the error is handed back and the emails go first."""
        if not step.meeting or self.meetings is None:
            return change, None
        error = None
        with span(f"meeting.{step.meeting}", {"ttr.change_id": change["changeId"]}):
            try:
                self.meetings.handle(change["changeId"], step)
            except TtrError as exc:
                if msg.receive_count < MEETING_PATIENCE:
                    raise
                log.warning("tenant %s: meeting of %s still failing (attempt %d), emails go first: %s",
                            self.code, change["changeId"], msg.receive_count, exc)
                error = exc
        with span("archive.load", {"ttr.change_id": change["changeId"]}):
            fresh, _ = self.reader.load(change["changeId"])  # meetingMetadata or meeting_failed
        return fresh, error

    def _attributes(self, address: str, deadline: float) -> Mapping[str, str]:
        """The contact's attributes (GetContact, since ListContacts leaves them out), cached for
        ``ATTRIBUTES_TTL``. Past ``deadline`` (or on a failure) it answers {} without caching:
        the email uses the customer's zone (UTC is in every email) and a later pass reads it."""
        key = address.lower()
        now = time.monotonic()
        with self._contacts_lock:
            hit = self._attributes_cache.get(key)
            if hit is not None and now - hit[0] < ATTRIBUTES_TTL:
                return hit[1]
        wait = self._lookups.delay_for_next()
        if now + wait > deadline:
            return {}
        if wait > 0:
            time.sleep(wait)
        try:
            attrs: Mapping[str, str] = self.mailer.contact_attributes(self.customer.contact_list, address)
        except NotFound:
            attrs = {}
        except TtrError as exc:
            log.warning("tenant %s: attributes of a contact unavailable (%s): its email uses the default zone",
                        self.code, exc)
            return {}
        with self._contacts_lock:
            self._attributes_cache[key] = (time.monotonic(), attrs)
        return attrs

    def _zone_of(self, address: str, contact: Contact | None, deadline: float) -> str | None:
        """The reader's zone: the contact's ``timezone`` attribute, else the customer's, else
        None (the change's own)."""
        attrs = contact.attributes if contact is not None and contact.attributes else \
            self._attributes(address, deadline)
        wanted = attrs.get("timezone")
        return wanted if valid_zone(wanted) else self.customer.timezone

    def _deliver(self, change: dict, step: processing.Step) -> tuple[int, int, int, int]:
        """Send the step's email to every recipient not in the ledger yet.

        Returns (sent, failed, already sent, not told). Who is not told, and why, is recorded in
        the ledger beside who was sent to, so the delivery views show what happened."""
        contacts, defaults = self.contacts()
        decisions = decide_recipients(contacts, step.topic, defaults, self.customer.allows,
                                      self.suppressed())
        if not decisions:
            return 0, 0, 0, 0
        skips = [d for d in decisions if not d.send]
        with span("ledger.load"):
            ledger = Ledger.open(self.store, change["changeId"], self.code, step.seq)
        for d in skips:
            ledger.skip(d.email, d.reason)
        by_address = {c.email.lower(): c for c in contacts}
        by_zone: dict[str | None, list[str]] = {}
        skipped = 0
        deadline = time.monotonic() + self.attribute_budget
        for d in decisions:
            if not d.send:
                continue
            if ledger.done(d.email):
                skipped += 1
                continue
            zone = self._zone_of(d.email, by_address.get(d.email.lower()), deadline)
            by_zone.setdefault(zone, []).append(d.email)
        sender = self.cfg.sender_of(self.customer)
        ref = {REF_HEADER: ref_value(change["changeId"], self.code, step.seq)}  # comes back in SES feedback
        sent = failed = 0
        try:
            rendered = self._render(change, step, tuple(by_zone)) if by_zone else None
            for zone, addresses in by_zone.items():
                email, calendar = rendered.emails[zone], rendered.calendar
                for address in addresses:
                    self.limiter.acquire()
                    with span("ses.send", {"ttr.tenant": self.code, "ttr.topic": step.topic}) as sp:
                        try:
                            mid = self.mailer.send(sender=sender, to=address, subject=email.subject,
                                                   html=email.html, text=email.text,
                                                   contact_list=self.customer.contact_list, topic=step.topic,
                                                   calendar=calendar, headers=ref)
                            ledger.mark(address, "sent", message_id=mid)
                            sent += 1
                            sp.set_attribute("ttr.outcome", "sent")
                        except RecipientRejected as exc:
                            ledger.mark(address, "failed", error=str(exc))
                            failed += 1
                            sp.set_attribute("ttr.outcome", "rejected")
                    if ledger.unflushed >= FLUSH_EVERY:
                        with span("ledger.flush"):
                            ledger.flush()
        finally:
            # Whatever happens, record what did go out, so a retry does not repeat it.
            try:
                ledger.flush()
            except TtrError:
                log.warning("tenant %s: ledger flush failed for %s", self.code, ledger.key)
        return sent, failed, skipped, len(skips)

    def _render(self, change: Mapping, step: processing.Step, zones: tuple[str | None, ...]) -> RenderedDelivery:
        """The step's email once per readers' zone (the body differs only by the zone), and its
        calendar file: rendered by ``self.renderer`` (for a tenant, the renderer actor)."""
        from runtime.emails import DeliveryRequest

        with span("emails.render", {"ttr.tenant": self.code, "ttr.zones": len(zones)}):
            return self.renderer.render(DeliveryRequest(
                step.kind, change, customer_code=self.code, customer_name=self.customer.name,
                portal_base_url=self.cfg.email.portal_base_url, transition=step.transition, zones=zones,
                first_request=step.first_request, meeting=meeting_for_email(change, step),
                show_customers=self.cfg.email.show_affected_customers))

    # -----------------------------------------------------------------------------------------
    def _reject(self, what: str, why: str, msg: QueueMessage, out: Outcome, change_id: str | None = None) -> None:
        """Keep the refused input under rejected/, note it on the change, remove our own trigger."""
        log.warning("tenant %s: rejected %s: %s", self.code, what, why)
        add_event("rejected", {"ttr.what": what[:200], "ttr.reason": why[:300]})
        own_trigger = what.startswith(f"customers/{self.code}/")
        trigger_body = None
        if own_trigger:
            try:
                trigger_body = self.store.get(what).body.decode("utf-8", "replace")
            except NotFound:
                trigger_body = None
        stamp = self.clock()
        record = {"customer": self.code, "key": what, "reason": why, "rejectedAt": stamp,
                  "messageId": msg.message_id, "message": msg.body[:256 * 1024],
                  "trigger": trigger_body, "changeId": change_id}
        safe_stamp = stamp.replace(":", "").replace(".", "")
        rkey = f"{REJECTED_PREFIX}{self.code}/{safe_stamp}-{msg.message_id}-{len(out.rejected)}.json"
        self.store.put(rkey, json.dumps(record, indent=1).encode())
        if change_id:
            self.archive.record(change_id, [{
                "type": "rejected", "key": f"rejected:{self.code}:{msg.message_id}", "timestamp": stamp,
                "actor": processing.BACKEND_ACTOR, "customer": self.code, "reason": why, "rejectedKey": rkey}])
        if own_trigger:
            self._delete_trigger(what, msg)
        out.rejected.append(rkey)
