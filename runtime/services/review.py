"""Review: "request changes" and comments, kept in the archive's history.

Neither is a lifecycle transition: they tell nobody outside (no trigger, no email, no meeting),
carry no ``seq`` and leave ``version`` and ``status`` alone, so processing (which reads only the
lifecycle entries, ``model.lifecycle_entries``) never sees them, and an editor holding the current
version is not made stale by a comment. They are not authorship either (four-eyes counts who
submitted or edited a change, not who reviewed it).

A ``changes_requested`` entry stays open until the change is updated or rescheduled; meanwhile the
change waits in ``submitted`` and the submitter's dashboard shows the request with its comment.
"""

from __future__ import annotations

import uuid
from typing import Callable, Mapping

from runtime.domain.errors import IllegalTransition, InvalidInput, StaleVersion
from runtime.domain.model import append_modifications, check_change_id, now_iso
from runtime.services.archive import ArchiveStore

CHANGES_REQUESTED = "changes_requested"
COMMENT = "comment"
REVIEW_TYPES = (CHANGES_REQUESTED, COMMENT)
MAX_COMMENT = 4000
# What answers a request for changes: the submitter changed the content or the window.
ANSWERS = ("updated", "rescheduled")


def check_comment(text: object, *, required: bool = True) -> str:
    if text is None or (isinstance(text, str) and not text.strip()):
        if required:
            raise InvalidInput("comment: a comment is required; say what should change", field="comment")
        return ""
    if not isinstance(text, str):
        raise InvalidInput(f"comment: expected text, got {type(text).__name__}", field="comment")
    text = text.replace("\r\n", "\n").strip()
    if len(text) > MAX_COMMENT:
        raise InvalidInput(f"comment: {len(text)} characters, at most {MAX_COMMENT} allowed", field="comment")
    return text


def review_entry(change: Mapping, kind: str, *, actor: str, now: str, comment: object,
                 expected_version: int | None = None) -> dict:
    """The history entry of a review action on ``change`` (pure). Raises on a wrong state."""
    if kind not in REVIEW_TYPES:
        raise InvalidInput(f"unknown review action {kind!r}")
    text = check_comment(comment)
    status = change.get("status")
    version = int(change.get("version") or 0)
    if expected_version is not None and expected_version != version:
        raise StaleVersion(f"change {change.get('changeId')} is at version {version}, not {expected_version}")
    if kind == CHANGES_REQUESTED and status != "submitted":
        raise IllegalTransition(f"cannot request changes on a change that is {status}; "
                                "only a submitted change waits for approval")
    return {"type": kind, "key": f"{kind}:{uuid.uuid4()}", "timestamp": now, "actor": actor,
            "comment": text, "version": version}


def open_request(change: Mapping) -> dict | None:
    """The request for changes not yet answered by an update or a reschedule, if any."""
    if change.get("status") != "submitted":
        return None
    current = None
    for m in change.get("modifications", []) or []:
        if not isinstance(m, Mapping):
            continue
        if m.get("type") == CHANGES_REQUESTED:
            current = m
        elif m.get("type") in ANSWERS:
            current = None
    return dict(current) if current else None


def comments(change: Mapping) -> list[dict]:
    """Every review entry (requests for changes and comments), oldest first."""
    return [dict(m) for m in change.get("modifications", []) or []
            if isinstance(m, Mapping) and m.get("type") in REVIEW_TYPES]


def record_review(archive: ArchiveStore, change_id: str, kind: str, *, actor: str, comment: object,
                  expected_version: int | None = None, clock: Callable[[], str] = now_iso) -> dict:
    """Append the entry (compare-and-swap on the archive); no trigger is written. Returns it."""
    check_change_id(change_id)
    check_comment(comment)  # bad input fails before any read
    made: dict = {}

    def mutate(current: dict) -> dict:
        entry = review_entry(current, kind, actor=actor, now=clock(), comment=comment,
                             expected_version=expected_version)
        append_modifications(current, [entry])
        made.clear()
        made.update(entry)
        return current

    archive.update(change_id, mutate)
    return made


__all__ = ["CHANGES_REQUESTED", "COMMENT", "MAX_COMMENT", "REVIEW_TYPES", "check_comment", "comments",
           "open_request", "record_review", "review_entry"]
