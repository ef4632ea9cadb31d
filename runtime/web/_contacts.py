"""Each customer's contacts as the portal reads them (a leaf the Audience pages and the change
and announcement pages share): one ``CustomerContacts`` per customer through its SES role, a
short cache, and ``change_preview`` (who approving a change would tell).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from runtime.domain.audience import preview
from runtime.domain.errors import NotFound, TtrError

CACHE_TTL = 30.0   # seconds a customer's contacts are reused between pages (a write clears them)


class Audiences:
    """Per portal: one ``CustomerContacts`` per customer and a short cache of what they read."""

    def __init__(self, cfg):
        from runtime.adapters.aws import AwsClients

        self.cfg = cfg
        self.clients = AwsClients(cfg.region, cfg.aws_endpoint_url)
        self._books: dict[str, Any] = {}
        self._cache: dict[str, tuple[float, Any, dict]] = {}
        self._lock = threading.Lock()

    def book(self, code: str):
        from runtime.adapters.ses import TenantSes
        from runtime.services.contacts import CustomerContacts

        try:
            customer = self.cfg.customer(code)
        except KeyError:
            raise NotFound(f"no customer {code!r}") from None
        with self._lock:
            if code not in self._books:
                self._books[code] = CustomerContacts(self.cfg, customer,
                                                    TenantSes.for_admin(self.clients, self.cfg, customer))
            return self._books[code]

    def read(self, code: str) -> tuple[list, dict[str, str]]:
        """(contacts with their attributes, the list's own topic defaults), cached briefly."""
        with self._lock:
            hit = self._cache.get(code)
        if hit and time.monotonic() - hit[0] < CACHE_TTL:
            if isinstance(hit[1], TtrError):   # a failure is remembered as long: pages stay fast
                raise hit[1]
            return hit[1], hit[2]
        book = self.book(code)
        try:
            contacts = book.contacts(attributes=True)
            defaults = {t["TopicName"]: t.get("DefaultSubscriptionStatus", "OPT_OUT") for t in book.topics()}
        except TtrError as exc:
            with self._lock:
                self._cache[code] = (time.monotonic(), exc, {})
            raise
        with self._lock:
            self._cache[code] = (time.monotonic(), contacts, defaults)
        return contacts, defaults

    def forget(self, code: str) -> None:
        with self._lock:
            self._cache.pop(code, None)


def audiences(request_or_portal) -> Audiences:
    portal = getattr(getattr(request_or_portal, "app", None), "state", None)
    portal = portal.portal if portal is not None else request_or_portal
    state = getattr(portal, "_audiences", None)
    if state is None:
        state = Audiences(portal.cfg)
        portal._audiences = state   # one per portal, made on first use
    return state


def change_preview(portal, change: dict) -> list[dict] | None:
    """Who approving ``change`` would tell, per customer and topic (only while it waits for approval)."""
    if change.get("status") != "submitted":
        return None
    aud = audiences(portal)
    got: dict[str, Any] = {}
    for code in change.get("customers") or []:
        try:
            got[code] = aud.read(code)
        except (TtrError, KeyError) as exc:
            got[code] = exc if isinstance(exc, TtrError) else NotFound(f"no customer {code!r} configured")
    return preview(change, got, lambda code: portal.cfg.customer(code).allows, portal.names,
                   suppressed_of=lambda code: suppressed(portal, code))


def suppressed(portal, code: str):
    """The customer's suppression check (hard bounces, complaints), as the runtime applies it."""
    from runtime.services.feedback import SuppressionList

    try:
        return SuppressionList(portal.store, code).predicate()
    except TtrError:
        return None   # unreadable: the page still shows the rest (the runtime re-reads when it sends)
