"""Who gets told: SES topic semantics, the non-production whitelist and the routing table.

Pure functions only. The SES adapter reads every page of ListContacts and hands the items here;
we apply the topic rules ourselves instead of trusting a server-side filter, because the original
system's ``FilteredStatus=OPT_IN`` query silently dropped everyone relying on a topic default.
"""

from __future__ import annotations

import json
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
    # SES ``AttributesData`` (a JSON object): e.g. ``timezone``, or who manages the contact
    attributes: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        # Read-only copies: a caller mutating its dict later must not change a frozen contact.
        object.__setattr__(self, "preferences", MappingProxyType(dict(self.preferences)))
        object.__setattr__(self, "attributes", MappingProxyType(dict(self.attributes)))

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
                   preferences=prefs, attributes=parse_attributes(item.get("AttributesData")))


def parse_attributes(data: object) -> dict[str, str]:
    """SES keeps contact attributes as a JSON string; anything unreadable counts as none."""
    if isinstance(data, Mapping):
        raw = data
    elif isinstance(data, str) and data.strip():
        try:
            raw = json.loads(data)
        except ValueError:
            return {}
    else:
        return {}
    if not isinstance(raw, Mapping):
        return {}
    return {str(k): str(v) for k, v in raw.items() if isinstance(v, (str, int, float, bool))}


def subscribed(contact: Contact, topic: str, topic_defaults: Mapping[str, str]) -> bool:
    """SES semantics: unsubscribe-all wins, then the explicit choice, then the topic's default."""
    if contact.unsubscribe_all:
        return False
    explicit = contact.preferences.get(topic)
    if explicit is not None:
        return explicit == OPT_IN
    # A topic we have no default for is treated as opt-out: never email people by accident.
    return topic_defaults.get(topic, OPT_OUT) == OPT_IN


def valid_zone(name: object) -> bool:
    """Whether ``name`` is an IANA time zone this machine knows (a contact's ``timezone``)."""
    from runtime.domain.errors import InvalidInput
    from runtime.domain.model import check_timezone

    try:
        check_timezone(name, "timezone")
    except InvalidInput:
        return False
    return True


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


# Why a contact is not told: a stable code (data for the API, the ledger and tests) and the words
# people read (the delivery view, the preview before approval, ``ttr change view``).
SKIP_REASONS: Mapping[str, str] = MappingProxyType({
    "invalid_address": "not a usable email address",
    "unsubscribed_all": "unsubscribed from everything",
    "opted_out": "opted out of this topic",
    "default_opt_out": "not subscribed (the topic is opt-in only)",
    "not_allowed": "not on this customer's allow-list",
    "suppressed": "suppressed after a bounce or complaint",
    "duplicate": "listed twice",
})


@dataclass(frozen=True)
class Decision:
    """Whether one contact is told about ``topic``, and if not, why (``reason`` is a SKIP_REASONS key)."""

    email: str
    send: bool
    reason: str = ""

    @property
    def why(self) -> str:
        return SKIP_REASONS.get(self.reason, self.reason)


def decide(contact: Contact, topic: str, topic_defaults: Mapping[str, str],
           allow: Callable[[str], bool], suppressed: Callable[[str], bool] | None = None) -> Decision:
    """The one decision for one contact; ``select_recipients`` and every "who and why" view use it."""
    if not valid_address(contact.email):
        return Decision(contact.email, False, "invalid_address")
    if contact.unsubscribe_all:
        return Decision(contact.email, False, "unsubscribed_all")
    if not subscribed(contact, topic, topic_defaults):
        explicit = contact.preferences.get(topic)
        return Decision(contact.email, False, "opted_out" if explicit == OPT_OUT else "default_opt_out")
    if not allow(contact.email):
        return Decision(contact.email, False, "not_allowed")
    if suppressed is not None and suppressed(contact.email):
        return Decision(contact.email, False, "suppressed")
    return Decision(contact.email, True)


def decide_recipients(contacts: Iterable[Contact], topic: str, topic_defaults: Mapping[str, str],
                      allow: Callable[[str], bool],
                      suppressed: Callable[[str], bool] | None = None) -> list[Decision]:
    """Every contact's decision for ``topic``, in contact order; a second spelling of an address
    already told is skipped as a duplicate (case-insensitive)."""
    seen: set[str] = set()
    out: list[Decision] = []
    for c in contacts:
        d = decide(c, topic, topic_defaults, allow, suppressed)
        if d.send:
            key = d.email.lower()
            if key in seen:
                d = Decision(d.email, False, "duplicate")
            seen.add(key)
        out.append(d)
    return out


def select_recipients(contacts: Iterable[Contact], topic: str, topic_defaults: Mapping[str, str],
                      allow: Callable[[str], bool], suppressed: Callable[[str], bool] | None = None) -> list[str]:
    """The addresses to email for ``topic``, in contact order, each once (case-insensitive).

    ``allow`` is the tenant's whitelist check (``CustomerConfig.allows``); ``suppressed`` says
    whether an address must not be mailed (a hard bounce or a complaint).
    """
    return [d.email for d in decide_recipients(contacts, topic, topic_defaults, allow, suppressed) if d.send]


def topic_for(transition_type: str, *, approved_before: bool) -> str:
    """The topic told about a change's lifecycle transition (``runtime.domain.kinds`` holds the table).

    ``approved_before``: the change had been approved before this transition. An unknown type
    raises: the original system defaulted to an approval request and sent duplicates that way.
    """
    from runtime.domain.kinds import route

    return route({}, transition_type, approved_before=approved_before).topic


def merge_attendees(contributions: Iterable[Iterable[str]]) -> list[str]:
    """One meeting's attendees from every tenant's list: each address once, first spelling kept.

    Invalid addresses are dropped here too, so a bad entry cannot break the Graph request.
    """
    return _dedupe(a for addresses in contributions for a in addresses if valid_address(a))
