"""The portal's writes, shared by the API and the pages: permission checks, then the lifecycle.

Every write goes through ``runtime.services.lifecycle.Lifecycle`` (the CLI's code): the archive first
(create-only, or compare-and-swap on the version the user saw), then the triggers.
"""

from __future__ import annotations

from typing import Any, Mapping

from runtime.domain.errors import AlreadyExists, InvalidInput, NotFound, StaleVersion
from runtime.domain.model import MANAGED_FIELDS, USER_FIELDS, check_change_id, draft_key
from runtime.services.lifecycle import TransitionResult
from runtime.web._auth import Forbidden, Principal, may_edit_draft, require


def reject_managed(content: Mapping[str, Any]) -> None:
    managed = [f for f in MANAGED_FIELDS if f in content]
    if managed:
        raise InvalidInput(f"{managed[0]}: managed by ttr; it cannot be set "
                           f"(settable: changeId, {', '.join(USER_FIELDS)})", field=managed[0])


def transition(portal, user: Principal, change_id: str, action: str, *,
               expected_version: int | None, params: Mapping[str, Any] | None = None) -> TransitionResult:
    """A lifecycle transition as ``user``, pinned to the version whose permissions were checked.

    ``expected_version`` None means "whatever is current" (If-Match: *); the check and the
    write still agree, because the write is conditional on the version that was checked.
    """
    require(user, action)
    change, _ = portal.lifecycle.archive.load(change_id)
    current = int(change.get("version") or 0)
    if expected_version is not None and expected_version != current:
        raise StaleVersion(f"change {change_id} is at version {current}, not {expected_version}: "
                           "it changed since you loaded it; reload it and try again")
    require(user, action, change)
    return portal.lifecycle.transition(change_id, action, actor=user.name, params=params,
                                       expected_version=current)


def review(portal, user: Principal, change_id: str, kind: str, *, comment: object,
           expected_version: int | None) -> dict:
    """Request changes (an approver) or comment: an entry in the history, no trigger, no email."""
    from runtime.services.review import CHANGES_REQUESTED, check_comment, record_review

    action = "request_changes" if kind == CHANGES_REQUESTED else "comment"
    require(user, action)
    check_comment(comment)
    change, _ = portal.lifecycle.archive.load(change_id)
    require(user, action, change)
    return record_review(portal.lifecycle.archive, change_id, kind, actor=user.name, comment=comment,
                         expected_version=expected_version, clock=portal.lifecycle.clock)


def submit(portal, user: Principal, content: Mapping[str, Any], *, allow_past: bool = False) -> TransitionResult:
    require(user, "submit")
    reject_managed(content)
    return portal.lifecycle.submit(dict(content), actor=user.name, allow_past=allow_past)


def retrigger(portal, user: Principal, change_id: str, customers: list[str] | None) -> TransitionResult:
    require(user, "retrigger")
    return portal.lifecycle.retrigger(change_id, customers or None)


# drafts ---------------------------------------------------------------------------------------


def load_draft(portal, change_id: str) -> dict:
    check_change_id(change_id)
    try:
        return portal.lifecycle.load_draft(change_id)
    except NotFound:
        raise NotFound(f"draft {change_id} not found") from None


def _draft_exists(portal, change_id: str) -> bool:
    try:
        portal.store.get(draft_key(change_id))
        return True
    except NotFound:
        return False


def create_draft(portal, user: Principal, content: Mapping[str, Any]) -> str:
    require(user, "draft")
    reject_managed(content)
    cid = content.get("changeId")
    if cid is not None and _draft_exists(portal, check_change_id(cid)):
        raise AlreadyExists(f"draft {cid} already exists")
    return portal.lifecycle.save_draft(dict(content), actor=user.name)


def update_draft(portal, user: Principal, change_id: str, content: Mapping[str, Any]) -> dict:
    draft = load_draft(portal, change_id)
    _may(user, draft)
    reject_managed(content)
    if content.get("changeId") not in (None, change_id):
        raise InvalidInput("changeId: a draft keeps its id", field="changeId")
    body = {k: v for k, v in content.items() if k != "changeId"}
    portal.lifecycle.save_draft({**body, "changeId": change_id, "createdAt": draft.get("createdAt"),
                                 "createdBy": draft.get("createdBy"), "editors": draft.get("editors") or []},
                                actor=user.name)
    return load_draft(portal, change_id)


def delete_draft(portal, user: Principal, change_id: str) -> None:
    draft = load_draft(portal, change_id)
    _may(user, draft)
    portal.store.delete(draft_key(change_id))


def submit_draft(portal, user: Principal, change_id: str, content: Mapping[str, Any] | None = None, *,
                 allow_past: bool = False) -> TransitionResult:
    draft = load_draft(portal, change_id)
    _may(user, draft)
    require(user, "submit")
    content = dict(content or {})
    reject_managed(content)
    return portal.lifecycle.submit(content, actor=user.name, draft_id=change_id, allow_past=allow_past)


def _may(user: Principal, draft: Mapping) -> None:
    reason = may_edit_draft(user, draft)
    if reason:
        raise Forbidden(reason)
