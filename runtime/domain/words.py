"""The words people read for our internal names: one place, so pages (and later emails) agree.

Topics: the SES topic names of the contact lists (``aws-approval`` ...) are internal keys; people
see their display names, which come from the configured ``topics:`` (``runtime.domain.config``, where
the contract's three default topics are defined once).
"""

from __future__ import annotations

from typing import Any, Mapping


def topic_names(cfg: Any = None) -> dict[str, str]:
    """topic name -> display name: the configured ``topics:``, else the default topics."""
    from runtime.domain.config import DEFAULT_TOPICS

    topics = getattr(cfg, "topics", None) or DEFAULT_TOPICS
    return {t.name: t.display for t in topics}


def topic_display(name: object, cfg: Any = None, *, names: Mapping[str, str] | None = None) -> str:
    """``aws-announce`` -> ``Change announcements``; an unknown topic reads as words."""
    if not name:
        return ""
    table = names if names is not None else topic_names(cfg)
    key = str(name)
    return table.get(key) or key.replace("-", " ").replace("_", " ").capitalize()


__all__ = ["topic_display", "topic_names"]
