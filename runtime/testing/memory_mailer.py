"""Doubles of the ``Mailer`` port: an in-memory SES contact list that records what it "sent", and a
wrapper that fails in scripted ways (the fault seam at the port).

``MemoryMailer.for_customer`` seeds the list the way ``ttr local up`` seeds SES (the configured
topics and their defaults, ``local.contacts``); ``tests/integration/test_mailer_contract.py``
checks it answers like the SES adapter on moto seeded from the same configuration.
"""

from __future__ import annotations

import itertools
import json
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Mapping

from runtime.domain.audience import ses_topics
from runtime.domain.errors import AlreadyExists, NotFound, RecipientRejected, TtrError
from runtime.domain.recipients import parse_attributes


@dataclass(frozen=True)
class SentMail:
    message_id: str
    sender: str
    to: str
    subject: str
    html: str
    text: str
    contact_list: str
    topic: str
    calendar: str | None
    headers: Mapping[str, str]


@dataclass
class MemoryMailer:
    contact_list: str
    topics: list[dict] = field(default_factory=list)        # SES ``Topics`` of the contact list
    contacts: dict[str, dict] = field(default_factory=dict)  # email -> SES ``Contacts[]`` item
    sent: list[SentMail] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    @classmethod
    def for_customer(cls, cfg, customer) -> "MemoryMailer":
        mailer = cls(customer.contact_list, ses_topics(cfg.topics))
        for c in cfg.local.contacts.get(customer.code, ()):
            mailer.put_contact(customer.contact_list, c.email, preferences=dict(c.topics),
                               unsubscribe_all=c.unsubscribe_all, attributes=None, create=True)
        return mailer

    def put_contact(self, contact_list: str, email: str, *, preferences: Mapping[str, str],
                    unsubscribe_all: bool, attributes: Mapping[str, str] | None, create: bool) -> None:
        """Create or replace one contact whole (``TenantSes.put_contact``'s signature)."""
        self._check(contact_list)
        with self._lock:
            exists = email in self.contacts
        if create and exists:
            raise AlreadyExists(f"sesv2.CreateContact: AlreadyExistsException: {email}", code="AlreadyExistsException")
        if not create and not exists:
            raise NotFound(f"sesv2.UpdateContact: NotFoundException: {email}", code="NotFoundException")
        item = {"EmailAddress": email, "UnsubscribeAll": unsubscribe_all,
                "TopicPreferences": [{"TopicName": t, "SubscriptionStatus": s}
                                     for t, s in (preferences or {}).items()],
                "LastUpdatedTimestamp": datetime.now(timezone.utc)}
        if attributes:
            item["AttributesData"] = json.dumps(dict(attributes), sort_keys=True)
        with self._lock:
            self.contacts[email] = item

    # -- the port --------------------------------------------------------------------------------
    def list_contacts(self, contact_list: str) -> list[dict]:
        self._check(contact_list)
        with self._lock:   # ListContacts leaves the attributes out
            return [{k: v for k, v in c.items() if k != "AttributesData"} for c in self.contacts.values()]

    def topic_defaults(self, contact_list: str) -> dict[str, str]:
        self._check(contact_list)
        return {t["TopicName"]: t.get("DefaultSubscriptionStatus", "OPT_OUT") for t in self.topics}

    def contact_attributes(self, contact_list: str, email: str) -> dict[str, str]:
        self._check(contact_list)
        with self._lock:
            item = self.contacts.get(email)
        if item is None:
            raise NotFound(f"sesv2.GetContact: NotFoundException: {email} is not on {contact_list}",
                           code="NotFoundException")
        return parse_attributes(item.get("AttributesData"))

    def send(self, *, sender: str, to: str, subject: str, html: str, text: str,
             contact_list: str, topic: str, calendar: str | None = None,
             headers: Mapping[str, str] | None = None) -> str:
        self._check(contact_list)
        with self._lock:
            mid = f"memory-{next(self._ids)}"
            self.sent.append(SentMail(mid, sender, to, subject, html, text, contact_list, topic,
                                      calendar, dict(headers or {})))
        return mid

    # -- for tests -------------------------------------------------------------------------------
    def sent_to(self, title: str) -> dict[str, list[tuple[str, str]]]:
        """recipient -> [(subject, sender)] of the emails whose subject carries ``title``."""
        out: dict[str, list[tuple[str, str]]] = {}
        with self._lock:
            for m in self.sent:
                if title in m.subject:
                    out.setdefault(m.to, []).append((m.subject, m.sender))
        return out

    def _check(self, contact_list: str) -> None:
        if contact_list != self.contact_list:
            raise NotFound(f"sesv2: NotFoundException: no contact list {contact_list}", code="NotFoundException")


class FlakyMailer:
    """A real Mailer, failing in scripted ways: after ``fail_after`` sends every send raises
    ``error``; addresses in ``reject`` are refused one by one (as SES's MessageRejected)."""

    def __init__(self, inner, *, fail_after: int | None = None, error: TtrError | None = None,
                 reject=()):
        self.inner, self.fail_after, self.error, self.reject = inner, fail_after, error, set(reject)
        self.sends = 0

    def list_contacts(self, cl):
        return self.inner.list_contacts(cl)

    def topic_defaults(self, cl):
        return self.inner.topic_defaults(cl)

    def contact_attributes(self, cl, email):
        return self.inner.contact_attributes(cl, email)

    def send(self, **kw):
        if kw["to"] in self.reject:
            raise RecipientRejected("MessageRejected: Email address is not verified", code="MessageRejected")
        if self.fail_after is not None and self.sends >= self.fail_after:
            raise self.error
        self.sends += 1
        return self.inner.send(**kw)
