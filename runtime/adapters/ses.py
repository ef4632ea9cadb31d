"""A tenant's SES (v2), inside the tenant's own account through its assumed role.

The role is assumed once per credential lifetime and refreshed shortly before expiry, not per
message. The credentials never leave this object (and so never leave the tenant's actor).
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Mapping

from runtime.adapters.aws import AwsClients, assume_customer_role, aws_errors
from runtime.domain.errors import PermanentError, RecipientRejected, RetryableError, TenantPaused
from runtime.domain.recipients import parse_attributes

if TYPE_CHECKING:  # a tenant's process is given a TenantConfig and imports no pydantic
    from runtime.domain.config import Config, CustomerConfig
    from runtime.domain.tenant import TenantConfig, TenantCustomer

REFRESH_MARGIN = 300          # seconds before expiry we assume the role again
SESSION_SECONDS = 3600

# Contact administration (the CLI, the portal) retries throttled calls this often
# (backoff 0.2, 0.4, 0.8, 1.6 s); the runtime's sends never do (their queue backs off).
ADMIN_RETRIES = 4

# SES codes that concern one recipient only: record the recipient as failed, go on.
RECIPIENT_CODES = {"MessageRejected"}


class TenantSes:
    def __init__(self, clients: AwsClients, cfg: Config | TenantConfig, customer: CustomerConfig | TenantCustomer, *,
                 retries: int = 0):
        self.clients = clients
        # Contact administration (the CLI, the portal) retries throttling here; the runtime's
        # sends keep retries=0 and back off through their queue instead.
        self.retries = retries
        self.customer = customer
        self.region = cfg.region_of(customer)
        self._lock = threading.Lock()
        self._client = None
        self._expires_at = 0.0
        self.assume_role_calls = 0

    @classmethod
    def for_admin(cls, clients: AwsClients, cfg: Config, customer: CustomerConfig) -> TenantSes:
        """The customer's SES for contact administration: throttling retried (``ADMIN_RETRIES``)."""
        return cls(clients, cfg, customer, retries=ADMIN_RETRIES)

    def _ses(self):
        with self._lock:
            if self._client is None or time.time() > self._expires_at - REFRESH_MARGIN:
                creds = assume_customer_role(self.clients, self.customer, f"ttr-{self.customer.code}-ses",
                                             SESSION_SECONDS)
                self.assume_role_calls += 1
                exp = creds.get("Expiration")
                if isinstance(exp, datetime):
                    self._expires_at = exp.astimezone(timezone.utc).timestamp()
                else:
                    self._expires_at = time.time() + SESSION_SECONDS
                self._client = self.clients.client_with("sesv2", creds, self.region)
            return self._client

    @property
    def credentials_expire_at(self) -> float:
        return self._expires_at

    def list_contacts(self, contact_list: str) -> list[dict]:
        ses = self._ses()
        out: list[dict] = []
        token = None
        seen: set[str] = set()
        while True:
            kwargs = {"ContactListName": contact_list, "PageSize": 1000}
            if token:
                kwargs["NextToken"] = token
            with aws_errors("sesv2.ListContacts"):
                resp = ses.list_contacts(**kwargs)
            out += resp.get("Contacts", [])
            token = resp.get("NextToken")
            if not token:
                return out
            if token in seen:  # a server repeating itself would loop us forever
                raise RetryableError(f"sesv2.ListContacts: NextToken {token[:20]!r} came back twice",
                                     operation="sesv2.ListContacts")
            seen.add(token)

    def topic_defaults(self, contact_list: str) -> dict[str, str]:
        with aws_errors("sesv2.GetContactList"):
            resp = self._ses().get_contact_list(ContactListName=contact_list)
        return {t["TopicName"]: t.get("DefaultSubscriptionStatus", "OPT_OUT") for t in resp.get("Topics", [])}

    def contact_attributes(self, contact_list: str, email: str) -> dict[str, str]:
        """The contact's ``AttributesData`` (GetContact: ListContacts does not return it)."""
        return parse_attributes(self.get_contact(contact_list, email).get("AttributesData"))

    def send(self, *, sender: str, to: str, subject: str, html: str, text: str,
             contact_list: str, topic: str, calendar: str | None = None,
             headers: Mapping[str, str] | None = None) -> str:
        ses = self._ses()
        if calendar is None:
            simple: dict = {"Subject": {"Data": subject, "Charset": "UTF-8"},
                            "Body": {"Text": {"Data": text, "Charset": "UTF-8"},
                                     "Html": {"Data": html, "Charset": "UTF-8"}}}
            if headers:  # e.g. X-TTR-Ref, which comes back in SES feedback (runtime.services.feedback)
                simple["Headers"] = [{"Name": k, "Value": v} for k, v in headers.items()]
            content = {"Simple": simple}
        else:  # with the calendar file: our own MIME (see runtime.emails.mime; loaded at first use)
            from runtime.emails.mime import build_mime

            content = {"Raw": {"Data": build_mime(sender=sender, to=to, subject=subject, text=text,
                                                  html=html, calendar=calendar, headers=headers)}}
        try:
            with aws_errors("sesv2.SendEmail"):
                resp = ses.send_email(
                    FromEmailAddress=sender,
                    Destination={"ToAddresses": [to]},
                    Content=content,
                    ListManagementOptions={"ContactListName": contact_list, "TopicName": topic})
        except PermanentError as exc:  # narrow the one per-recipient case
            if exc.code in RECIPIENT_CODES:
                raise RecipientRejected(str(exc), operation="sesv2.SendEmail", code=exc.code) from exc
            raise
        return resp["MessageId"]

    # -----------------------------------------------------------------------------------------
    # Contact administration (``ttr contacts|topics|identity``, the portal's Audience page)

    def _call(self, operation: str, fn):
        """Run one SES call; a retryable failure (throttling, 5xx) is retried ``retries`` times
        with an exponential backoff (or the Retry-After the error carries)."""
        attempt = 0
        while True:
            try:
                with aws_errors(operation):
                    return fn(self._ses())
            except RetryableError as exc:
                if attempt >= self.retries or isinstance(exc, TenantPaused):
                    raise
                time.sleep(exc.retry_after or min(0.2 * 2 ** attempt, 5.0))
                attempt += 1

    def contact_list_topics(self, contact_list: str) -> list[dict]:
        """The list's ``Topics`` (raises NotFound when the list does not exist)."""
        return self._call("sesv2.GetContactList",
                          lambda ses: ses.get_contact_list(ContactListName=contact_list)).get("Topics", [])

    def put_contact_list(self, contact_list: str, topics: list[dict], *, create: bool) -> None:
        if create:
            self._call("sesv2.CreateContactList",
                       lambda ses: ses.create_contact_list(ContactListName=contact_list, Topics=topics))
        else:
            self._call("sesv2.UpdateContactList",
                       lambda ses: ses.update_contact_list(ContactListName=contact_list, Topics=topics))

    def all_contacts(self, contact_list: str) -> list[dict]:
        """Every contact (every page), with throttling retried."""
        return self._call("sesv2.ListContacts", lambda _ses: self.list_contacts(contact_list))

    def get_contact(self, contact_list: str, email: str) -> dict:
        """One contact, with its ``AttributesData`` (which ListContacts does not return)."""
        return self._call("sesv2.GetContact",
                          lambda ses: ses.get_contact(ContactListName=contact_list, EmailAddress=email))

    def put_contact(self, contact_list: str, email: str, *, preferences: dict[str, str],
                    unsubscribe_all: bool, attributes: dict[str, str] | None, create: bool) -> None:
        """Create or update one contact with its complete preferences (SES replaces them whole)."""
        kwargs = {"ContactListName": contact_list, "EmailAddress": email, "UnsubscribeAll": unsubscribe_all,
                  "TopicPreferences": [{"TopicName": t, "SubscriptionStatus": s} for t, s in preferences.items()]}
        if attributes:
            kwargs["AttributesData"] = json.dumps(dict(attributes), sort_keys=True)
        if create:
            self._call("sesv2.CreateContact", lambda ses: ses.create_contact(**kwargs))
        else:
            self._call("sesv2.UpdateContact", lambda ses: ses.update_contact(**kwargs))

    def delete_contact(self, contact_list: str, email: str) -> None:
        self._call("sesv2.DeleteContact",
                   lambda ses: ses.delete_contact(ContactListName=contact_list, EmailAddress=email))
