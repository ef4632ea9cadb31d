"""What a transition of an archive object means, by kind: one table, one processing path.

(kind, transition type) -> before and after the object was first approved: the topic told, the
email template, the meeting action. ``{type}`` in a topic is the announcement type's own topic
(``runtime.domain.announcements.TYPES``). ``runtime.domain.processing`` reads this table for changes and
announcements alike; nothing else decides where a transition goes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from runtime.domain import announcements
from runtime.domain.recipients import ANNOUNCE, APPROVAL

CHANGE = "change"
TYPE_TOPIC = "{type}"


@dataclass(frozen=True)
class Route:
    topic: str
    email: str
    meeting: str | None = None  # ensure | update | cancel | None (only when a meeting is required)


# kind -> transition -> (route before the first approval, route after it)
ROUTES: dict[str, dict[str, tuple[Route, Route]]] = {
    CHANGE: {
        "submitted": (Route(APPROVAL, "approval_request"), Route(APPROVAL, "approval_request")),
        "updated": (Route(APPROVAL, "approval_request"), Route(APPROVAL, "approval_request")),
        "approved": (Route(ANNOUNCE, "approved", "ensure"), Route(ANNOUNCE, "approved", "ensure")),
        "completed": (Route(ANNOUNCE, "completed"), Route(ANNOUNCE, "completed")),
        "cancelled": (Route(APPROVAL, "cancelled"), Route(ANNOUNCE, "cancelled", "cancel")),
        "rescheduled": (Route(APPROVAL, "rescheduled"), Route(ANNOUNCE, "rescheduled", "update")),
    },
    announcements.KIND: {
        "submitted": (Route(announcements.APPROVAL_TOPIC, "announcement_request"),) * 2,
        "approved": (Route(TYPE_TOPIC, "announcement", "ensure"),) * 2,
        "cancelled": (Route(announcements.APPROVAL_TOPIC, "announcement_cancelled"),
                      Route(TYPE_TOPIC, "announcement_cancelled", "cancel")),
    },
}


def kind_of(obj: Mapping) -> str:
    kind = obj.get("kind") or CHANGE
    if kind not in ROUTES:
        raise ValueError(f"{obj.get('changeId')}: unknown kind {kind!r}; known: {', '.join(ROUTES)}")
    return str(kind)


def route(obj: Mapping, transition_type: str, *, approved_before: bool) -> Route:
    """Where ``transition_type`` of ``obj`` goes. An unknown transition raises: the original
    system defaulted to an approval request and sent duplicates that way."""
    kind = kind_of(obj)
    try:
        before, after = ROUTES[kind][transition_type]
    except (KeyError, TypeError):
        raise ValueError(f"no email topic for the {kind} transition {transition_type!r}; "
                         f"known: {', '.join(ROUTES[kind])}") from None
    chosen = after if approved_before else before
    topic = announcements.topic_of(obj) if chosen.topic == TYPE_TOPIC else chosen.topic
    meeting = chosen.meeting if (obj.get("meeting") or {}).get("required") else None
    return Route(topic, chosen.email, meeting)


def topics_of(obj: Mapping) -> list[str]:
    """Every topic a transition of ``obj`` may be told on (for views of who was told)."""
    kind = kind_of(obj)
    out: list[str] = []
    for pair in ROUTES[kind].values():
        for r in pair:
            t = announcements.topic_of(obj) if r.topic == TYPE_TOPIC else r.topic
            if t not in out:
                out.append(t)
    return out


__all__ = ["CHANGE", "ROUTES", "Route", "kind_of", "route", "topics_of"]
