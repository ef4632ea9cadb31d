"""Ports: the narrow interfaces the domain code talks through.

Real adapters live in ``runtime.adapters`` (boto3, msgraph-sdk). They raise only errors from
``runtime.domain.errors``; no vendor exception crosses a port.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterator, Mapping, Protocol


@dataclass(frozen=True)
class StoredObject:
    key: str
    body: bytes
    etag: str


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    etag: str
    size: int
    last_modified: datetime


class ObjectStore(Protocol):
    """An S3-like bucket. Conditional writes fail with PreconditionFailed / AlreadyExists."""

    def get(self, key: str) -> StoredObject:
        """Raises NotFound when the key does not exist."""

    def put(self, key: str, body: bytes, *, if_match: str | None = None,
            if_none_match: bool = False) -> str:
        """Write and return the new ETag. ``if_none_match``: create-only (AlreadyExists);
        ``if_match``: compare-and-swap on the ETag (PreconditionFailed)."""

    def delete(self, key: str) -> None:
        """Delete; deleting a missing key is not an error."""

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object under the prefix, all pages."""


@dataclass(frozen=True)
class QueueMessage:
    message_id: str
    receipt: str
    body: str
    receive_count: int = 1
    sent_at: float = 0.0  # epoch seconds, when SQS first received it


class Queue(Protocol):
    """One tenant's SQS queue."""

    def receive(self, max_messages: int, wait_seconds: int) -> list[QueueMessage]: ...

    def delete_batch(self, receipts: list[str]) -> list[str]:
        """Delete; returns the receipts that could not be deleted (they will be redelivered)."""

    def set_visibility(self, receipt: str, seconds: int) -> None: ...

    def send(self, body: str) -> str: ...

    def depth(self) -> dict[str, int]:
        """{"visible": n, "in_flight": n} (approximate, as SQS counts them)."""


class Mailer(Protocol):
    """One tenant's SES, inside the tenant's own account."""

    def list_contacts(self, contact_list: str) -> list[dict]:
        """Every contact of the list (all pages), as SES returns them."""

    def topic_defaults(self, contact_list: str) -> dict[str, str]:
        """topic -> OPT_IN / OPT_OUT, from the contact list's topic definitions."""

    def contact_attributes(self, contact_list: str, email: str) -> dict[str, str]:
        """One contact's attributes (e.g. ``timezone``); NotFound when it left the list."""

    def send(self, *, sender: str, to: str, subject: str, html: str, text: str,
             contact_list: str, topic: str, calendar: str | None = None,
             headers: Mapping[str, str] | None = None) -> str:
        """Send one email to one recipient, with ``calendar`` (ICS text) attached when given and
        extra ``headers``; returns the SES message id."""


class ContactStore(Protocol):
    """One customer's contact lists, administered through its own SES (``TenantSes``)."""

    def all_contacts(self, contact_list: str) -> list[dict]:
        """Every contact (every page), without attributes, as SES returns them."""

    def get_contact(self, contact_list: str, email: str) -> dict:
        """One contact with its ``AttributesData``; NotFound when it is not on the list."""

    def contact_list_topics(self, contact_list: str) -> list[dict]:
        """The list's ``Topics``; NotFound when the list does not exist."""

    def put_contact_list(self, contact_list: str, topics: list[dict], *, create: bool) -> None: ...

    def put_contact(self, contact_list: str, email: str, *, preferences: dict[str, str],
                    unsubscribe_all: bool, attributes: dict[str, str] | None, create: bool) -> None:
        """Create or update one contact with its complete preferences."""

    def delete_contact(self, contact_list: str, email: str) -> None: ...


class Directory(Protocol):
    """Groups of people and their email addresses (IAM Identity Center's identity store)."""

    def group_id(self, name: str) -> str:
        """The id of the group named ``name``; NotFound when there is none."""

    def member_ids(self, group_id: str) -> list[str]:
        """The user ids of the group's direct members, every page."""

    def email_of(self, user_id: str) -> str | None:
        """The user's primary email (else the first one); None when the user has none."""


# ---------------------------------------------------------------------------------------------
# Calendar (Microsoft Graph). The data types live with the pure meeting logic.

from runtime.domain.meetings import CalendarEvent, MeetingRequest  # noqa: E402


class Calendar(Protocol):
    """The organizer mailbox's calendar. Async: the Graph SDK is asyncio-based.

    Errors: NotFound for a missing event; RetryableError (with ``retry_after`` when Graph sent
    Retry-After) for throttling, 5xx and timeouts; PermanentError otherwise.
    """

    async def find_by_change(self, change_id: str) -> CalendarEvent | None:
        """The event tagged with this changeId (a live one before a cancelled one), or None."""

    async def create(self, req: MeetingRequest) -> CalendarEvent:
        """Create the Teams meeting, with ``req.transaction_id`` and the changeId tag."""

    async def update(self, event_id: str, req: MeetingRequest) -> CalendarEvent:
        """Move the event: new times, subject, body, attendees and location."""

    async def cancel(self, event_id: str, comment: str) -> None:
        """Cancel the event (Graph emails every attendee). Never retried blindly."""

    async def get(self, event_id: str) -> CalendarEvent:
        """Raises NotFound when the event does not exist."""
