"""Who gets told: SES topic semantics, the non-production whitelist and the routing table.

Pure functions only. The SES adapter reads every page of ListContacts and hands the items here;
we apply the topic rules ourselves instead of trusting a server-side filter, because the original
system's ``FilteredStatus=OPT_IN`` query silently dropped everyone relying on a topic default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Callable, Iterable, Mapping

APPROVAL = "aws-approval"
ANNOUNCE = "aws-announce"
CALENDAR = "aws-calendar"
OPT_IN = "OPT_IN"
OPT_OUT = "OPT_OUT"


@dataclass(frozen=True)
class Contact:
    """One SES contact. ``preferences`` holds explicit per-topic choices only (topic -> OPT_IN/OPT_OUT)."""

    email: str
    unsubscribe_all: bool
    preferences: Mapping[str, str] = field(hash=False)

    def __post_init__(self) -> None:
        # A read-only copy: a caller mutating its dict later must not change a frozen contact.
        object.__setattr__(self, "preferences", MappingProxyType(dict(self.preferences)))

    @classmethod
    def from_ses(cls, item: Mapping) -> "Contact":
        """Build from one ``Contacts[]`` item of SES v2 ListContacts.

        ``TopicDefaultPreferences`` is ignored on purpose: defaults come from the contact list's
        topic definitions (passed to ``subscribed``), so one source of truth decides them.
        """
        prefs = {}
        for p in item.get("TopicPreferences") or ():
            name, status = p.get("TopicName"), p.get("SubscriptionStatus")
            if isinstance(name, str) and isinstance(status, str):
                prefs[name] = status.upper()
        return cls(email=str(item.get("EmailAddress") or ""),
                   unsubscribe_all=bool(item.get("UnsubscribeAll", False)),
                   preferences=prefs)


def subscribed(contact: Contact, topic: str, topic_defaults: Mapping[str, str]) -> bool:
    """SES semantics: unsubscribe-all wins, then the explicit choice, then the topic's default."""
    if contact.unsubscribe_all:
        return False
    explicit = contact.preferences.get(topic)
    if explicit is not None:
        return explicit == OPT_IN
    # A topic we have no default for is treated as opt-out: never email people by accident.
    return topic_defaults.get(topic, OPT_OUT) == OPT_IN


def valid_address(address: object) -> bool:
    """A minimal sanity check: ``local@domain``, no whitespace or control characters.

    Not an RFC 5322 validator; it keeps blanks and header-injection attempts (CR/LF) out of a
    ``To:`` line and leaves real validation to SES.
    """
    if not isinstance(address, str) or not address:
        return False
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in address):
        return False
    local, at, domain = address.rpartition("@")
    return bool(at and local and domain and "@" not in local)


def _dedupe(addresses: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for a in addresses:
        key = a.lower()
        if key not in seen:
            seen.add(key)
            out.append(a)
    return out


def select_recipients(contacts: Iterable[Contact], topic: str, topic_defaults: Mapping[str, str],
                      allow: Callable[[str], bool]) -> list[str]:
    """The addresses to email for ``topic``, in contact order, each once (case-insensitive).

    ``allow`` is the tenant's whitelist check (``CustomerConfig.allows``).
    """
    return _dedupe(c.email for c in contacts
                   if valid_address(c.email) and subscribed(c, topic, topic_defaults) and allow(c.email))


# transition type -> (topic before the change was ever approved, topic after)
_ROUTES: dict[str, tuple[str, str]] = {
    "submitted": (APPROVAL, APPROVAL),
    "updated": (APPROVAL, APPROVAL),
    "approved": (ANNOUNCE, ANNOUNCE),
    "completed": (ANNOUNCE, ANNOUNCE),
    "cancelled": (APPROVAL, ANNOUNCE),
    "rescheduled": (APPROVAL, ANNOUNCE),
}


def topic_for(transition_type: str, *, approved_before: bool) -> str:
    """The topic told about a lifecycle transition.

    ``approved_before``: the change had been approved before this transition. An unknown type
    raises: the original system defaulted to an approval request and sent duplicates that way.
    """
    try:
        before, after = _ROUTES[transition_type]
    except (KeyError, TypeError):
        raise ValueError(f"no email topic for transition type {transition_type!r}; "
                         f"known: {', '.join(_ROUTES)}") from None
    return after if approved_before else before


def merge_attendees(contributions: Iterable[Iterable[str]]) -> list[str]:
    """One meeting's attendees from every tenant's list: each address once, first spelling kept.

    Invalid addresses are dropped here too, so a bad entry cannot break the Graph request.
    """
    return _dedupe(a for addresses in contributions for a in addresses if valid_address(a))
