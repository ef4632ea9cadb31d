"""The words people read for our internal names: one place, so pages (and later emails) agree.

Topics: the SES topic names of the contact lists (``aws-approval`` ...) are internal keys; people
see their display names. The configured ``topics:`` list (name, display), when the configuration
has one, wins over these defaults (the contract's "Audience" section).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

# The contract's three topics that always exist, with their display names.
DEFAULT_TOPICS = {
    "aws-approval": "Change approvals",
    "aws-announce": "Change announcements",
    "aws-calendar": "Change meetings",
}


def _configured(cfg: Any) -> Iterable[Any]:
    return getattr(cfg, "topics", None) or () if cfg is not None else ()


def topic_names(cfg: Any = None) -> dict[str, str]:
    """topic name -> display name: the defaults, overridden by the configured ``topics:``."""
    out = dict(DEFAULT_TOPICS)
    for t in _configured(cfg):
        name = t.get("name") if isinstance(t, Mapping) else getattr(t, "name", None)
        display = t.get("display") if isinstance(t, Mapping) else getattr(t, "display", None)
        if name and display:
            out[str(name)] = str(display)
    return out


def topic_display(name: object, cfg: Any = None, *, names: Mapping[str, str] | None = None) -> str:
    """``aws-announce`` -> ``Change announcements``; an unknown topic reads as words."""
    if not name:
        return ""
    table = names if names is not None else topic_names(cfg)
    key = str(name)
    return table.get(key) or key.replace("-", " ").replace("_", " ").capitalize()


__all__ = ["DEFAULT_TOPICS", "topic_display", "topic_names"]
