"""Announcement emails: the approval request, the announcement itself, and its cancellation.

The same house style, escaping and privacy as the change emails (``runtime.emails``): each
customer reads only about itself (the other customers are named only with
``email.show_affected_customers``); links are http/https only (checked on submit, checked again
here) and escaped; the reader's zone is used for a meeting's window.
"""

from __future__ import annotations

from typing import Mapping
from urllib.parse import quote, urlsplit

from runtime.domain.announcements import TYPES

ANNOUNCEMENT_KINDS = ("announcement_request", "announcement", "announcement_cancelled")
_ACCENTS = {"cic": "#2f5f8f", "finops": "#1e7e34", "innersource": "#5a3d99", "general": "#59636e"}


def announcement_url(portal_base_url: str, announcement_id: str) -> str:
    return f"{portal_base_url.rstrip('/')}/announcements/{quote(announcement_id, safe='')}"


def safe_links(links: object) -> list[tuple[str, str]]:
    out = []
    for link in links if isinstance(links, list) else []:
        if not isinstance(link, Mapping):
            continue
        url = str(link.get("url") or "").strip()
        if urlsplit(url).scheme.lower() not in ("http", "https"):
            continue  # never a javascript: or data: link, even from an archive written by hand
        out.append((str(link.get("title") or url).strip(), url))
    return out


def announcement_context(kind: str, obj: Mapping, *, customer: str, portal_base_url: str,
                         transition: Mapping, zone: str | None, meeting: Mapping | None,
                         show_customers: bool) -> tuple[str, dict]:
    """(subject, template context) for an announcement email, with the change emails' helpers."""
    from runtime import emails as h  # the package's formatting helpers (imported once it is loaded)

    type_name = TYPES.get(str(obj.get("type")), ("", "General"))[1]
    announcement_id = h._text(obj.get("changeId"))
    title = h._one_line(h._text(obj.get("title"))) or announcement_id or "(untitled announcement)"
    schedule = obj.get("schedule") if isinstance(obj.get("schedule"), Mapping) else None
    bounds = h._bounds(schedule, zone) if schedule else None
    join_url = h._text((meeting or {}).get("joinUrl")) if kind == "announcement" else ""
    heading, intro, prefix = {
        "announcement_request": (f"{type_name} announcement \u2014 approval required",
                                 f"An announcement to {customer} needs your approval before it is sent.",
                                 "Approval required"),
        "announcement": (f"{type_name} announcement", "", f"{type_name} announcement"),
        "announcement_cancelled": (f"{type_name} announcement cancelled",
                                   f"This announcement to {customer} has been withdrawn; disregard it.",
                                   "Cancelled"),
    }[kind]
    actor = h._text(transition.get("actor"))
    customers = obj.get("customers") if show_customers else None
    ctx = {
        "kind": kind,
        "heading": heading,
        "accent": "#b26a00" if kind == "announcement_request" else
        "#a71d2a" if kind == "announcement_cancelled" else _ACCENTS.get(str(obj.get("type")), "#59636e"),
        "intro": intro,
        "title": title,
        "announcement_id": announcement_id,
        "type_name": type_name,
        "customer_name": customer,
        "customers": [h._text(c) for c in customers] if isinstance(customers, list) else [],
        "summary": h._text(obj.get("summary")),
        "content": h._text(obj.get("content")) if kind != "announcement_cancelled" else "",
        "links": safe_links(obj.get("links")) if kind != "announcement_cancelled" else [],
        "schedule": h.format_schedule(schedule, zone) if schedule else "",
        "schedule_label": "Meeting (cancelled)" if kind == "announcement_cancelled" else "Meeting",
        "schedule_utc": h.format_utc(schedule) if bounds and bounds[2] != "UTC" else "",
        "join_url": join_url,
        "meeting_pending": bool(meeting) and not join_url and kind == "announcement",
        "acted": f"{h._VERBS.get(h._text(transition.get('type')), '')} by {actor}".strip() if actor else "",
        "note": h._text(transition.get("note")),
        "portal_url": announcement_url(portal_base_url, announcement_id),
        "unsubscribe_url": h.UNSUBSCRIBE_PLACEHOLDER,
    }
    return h._subject(prefix, title, h._start_day(schedule, zone) if schedule else ""), ctx
