"""Announcements: news to customers (CIC, FinOps, InnerSource, general), through the change pattern.

An announcement is an archive object like a change (``archive/{id}.json``, the same triggers,
ledger, recipients, meeting coordinator and handler) with ``"kind": "announcement"`` and an id
``ANN-{uuid4}``. Its record id is kept under the archive's one id field, ``changeId``, so every
part that addresses an archive object by id (triggers, ledger, meetings, orphans) works unchanged.
What differs by kind is data: the fields it carries, the transitions it allows (``TRANSITIONS``)
and the route of each transition (``runtime.domain.kinds``).

Pure: validation and the id only; the writer is ``runtime.services.lifecycle``.
"""

from __future__ import annotations

import uuid
from typing import Iterable, Mapping
from urllib.parse import urlsplit

from runtime.domain.errors import InvalidInput
from runtime.domain.model import MAX_TEXT, MAX_TITLE, validate_customers, validate_meeting, validate_schedule

KIND = "announcement"
ID_PREFIX = "ANN-"
# type -> (its topic, what people read)
TYPES: dict[str, tuple[str, str]] = {
    "cic": ("cic-announce", "CIC"),
    "finops": ("finops-announce", "FinOps"),
    "innersource": ("inner-announce", "InnerSource"),
    "general": ("general-updates", "General"),
}
APPROVAL_TOPIC = "announce-approval"
USER_FIELDS = ("type", "title", "customers", "summary", "content", "links", "meeting", "schedule")
MAX_SUMMARY = 1_000
MAX_LINKS = 20
MAX_URL = 2_000
# action -> (statuses it may start from, status after, modification type): approved is final
# except for a cancel.
TRANSITIONS: dict[str, tuple[tuple[str, ...], str | None, str]] = {
    "submit": (("new",), "submitted", "submitted"),
    "approve": (("submitted",), "approved", "approved"),
    "cancel": (("submitted", "approved"), "cancelled", "cancelled"),
}


def new_announcement_id() -> str:
    return f"{ID_PREFIX}{uuid.uuid4()}"


def is_announcement(obj: Mapping) -> bool:
    return obj.get("kind") == KIND


def topic_of(announcement: Mapping) -> str:
    """The topic of the announcement's type (its subscribers are told once it is approved)."""
    kind = announcement.get("type")
    if kind not in TYPES:
        raise ValueError(f"announcement {announcement.get('changeId')}: unknown type {kind!r}")
    return TYPES[str(kind)][0]


def _text(data: Mapping, field: str, limit: int, *, required: bool, one_line: bool = False) -> str | None:
    value = data.get(field)
    if value is None or (isinstance(value, str) and not value.strip() and not required):
        if required:
            raise InvalidInput(f"{field}: required, non-empty text", field=field)
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{field}: expected text, got {type(value).__name__}", field=field)
    if required and not value.strip():
        raise InvalidInput(f"{field}: required, non-empty text", field=field)
    if one_line and ("\r" in value or "\n" in value):
        raise InvalidInput(f"{field}: must be one line (no line breaks)", field=field)
    if len(value) > limit:
        raise InvalidInput(f"{field}: {len(value)} characters, at most {limit} allowed", field=field)
    return value.strip() if one_line else value


def validate_links(links: object) -> list[dict]:
    if links is None:
        return []
    if not isinstance(links, list):
        raise InvalidInput("links: expected a list of {title, url}", field="links")
    if len(links) > MAX_LINKS:
        raise InvalidInput(f"links: {len(links)} links, at most {MAX_LINKS} allowed", field="links")
    out = []
    for i, link in enumerate(links):
        where = f"links[{i}]"
        if not isinstance(link, Mapping):
            raise InvalidInput(f"{where}: expected a mapping {{title, url}}", field=where)
        unknown = sorted(str(k) for k in link if k not in ("title", "url") and not str(k).startswith("x-"))
        if unknown:
            raise InvalidInput(f"{where}.{unknown[0]}: unknown field (known: title, url)",
                               field=f"{where}.{unknown[0]}")
        title = _text(link, "title", MAX_TITLE, required=True, one_line=True) if "title" in link else None
        url = link.get("url")
        if not isinstance(url, str) or not url.strip():
            raise InvalidInput(f"{where}.url: required, an http or https address", field=f"{where}.url")
        url = url.strip()
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            raise InvalidInput(f"{where}.url: {url[:80]!r} is not an http or https address", field=f"{where}.url")
        if len(url) > MAX_URL or any(c.isspace() or ord(c) < 32 for c in url):
            raise InvalidInput(f"{where}.url: not a valid address (spaces, control characters or too long)",
                               field=f"{where}.url")
        out.append({**dict(link), "title": title or url, "url": url})
    return out


def validate_announcement(data: object, known_customers: Iterable[str], *,
                          known_topics: Iterable[str] | None = None) -> dict:
    """The user fields of an announcement checked; a copy with unknown ``x-`` fields preserved.

    ``known_topics``: the configured topics; a type whose topic is not configured is refused
    (its subscribers could not be told)."""
    if not isinstance(data, Mapping):
        raise InvalidInput(f"the announcement must be a mapping of fields, got {type(data).__name__}")
    out = dict(data)
    kind = out.get("type")
    if kind not in TYPES:
        raise InvalidInput(f"type: {kind!r} is not an announcement type; one of {', '.join(TYPES)}", field="type")
    if known_topics is not None:
        topics = set(known_topics)
        for needed in (TYPES[kind][0], APPROVAL_TOPIC):
            if needed not in topics:
                raise InvalidInput(f"type: topic {needed} is not configured (add it under topics: and run "
                                   "`ttr topics sync`)", field="type")
    out["title"] = _text(out, "title", MAX_TITLE, required=True, one_line=True)
    out["customers"] = validate_customers(out.get("customers"), known_customers)
    out["summary"] = _text(out, "summary", MAX_SUMMARY, required=True)
    out["content"] = _text(out, "content", MAX_TEXT, required=True)
    if out.get("links") is not None:
        out["links"] = validate_links(out["links"])
    meeting = validate_meeting(out.get("meeting"))
    if meeting is not None:
        out["meeting"] = meeting
    if out.get("schedule") is not None or (meeting or {}).get("required"):
        if "schedule" not in out:
            raise InvalidInput("schedule: required for a meeting (implementationStart, implementationEnd, "
                               "timezone: the meeting's window)", field="schedule")
        out["schedule"] = validate_schedule(out["schedule"])
    return out


__all__ = ["APPROVAL_TOPIC", "ID_PREFIX", "KIND", "TRANSITIONS", "TYPES", "USER_FIELDS", "is_announcement",
           "new_announcement_id", "topic_of", "validate_announcement", "validate_links"]
