"""Helpers every page router shares (a leaf: routers import it, it imports no router).

``render`` (a template with the signed-in chrome: user, CSRF token, flashes, the approvals
count), ``flash``, ``redirect``, ``result_flash`` (what a transition told whom), and
``detail_ctx`` (a change's or an announcement's delivery, meeting and history, as the change
page shows them).
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse

from runtime.domain.words import topic_names
from runtime.services import delivery
from runtime.web._auth import Principal
from runtime.web._http import new_csrf, portal_of
from runtime.web._index import MAX_PAGE, Filters


def index_of(request: Request):
    """This request's view of the bucket: listed once however many lists the page shows."""
    snap = getattr(request.state, "index", None)
    if snap is None:
        snap = request.state.index = portal_of(request).index.snapshot()
    return snap


def flash(request: Request, kind: str, text: str) -> None:
    # assign, not append in place: the session only re-sends its cookie when an item is set
    request.session["flash"] = [*request.session.get("flash", []), {"kind": kind, "text": text}][-5:]


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def render(request: Request, template: str, *, nav: str = "", status: int = 200,
           headers: dict | None = None, **ctx: Any) -> HTMLResponse:
    portal = portal_of(request)
    user = getattr(request.state, "user", None)
    flashes = request.session.pop("flash", []) if "flash" in request.session else []
    queue = 0
    if user is not None and user.has("approver"):
        try:
            queue = len(approvable(index_of(request), user))
        except Exception:  # noqa: BLE001 - a count in the header must never break a page
            queue = 0
    html = portal.render(template, request=request, user=user, csrf=new_csrf(request.session), flashes=flashes,
                         nav=nav, approvals_count=queue, sso=portal.oidc is not None,
                         local_login=bool(portal.users), customers=portal.cfg.customers, **ctx)
    return HTMLResponse(html, status_code=status, headers=headers)


def approvable(index, user: Principal) -> list[dict]:
    rows = index.search(Filters(status="submitted"), limit=MAX_PAGE).items
    return [r for r in rows if not authored_summary(user, r)]


def authored_summary(user: Principal, row: dict) -> bool:
    """Four-eyes on a list row: shaped by this user (``editedBy`` is ``_auth.shaped_by``)."""
    name = user.name.lower()
    authors = [row.get("submittedBy"), row.get("createdBy"), *(row.get("editedBy") or [])]
    return name in {str(a or "").lower() for a in authors}


def result_flash(request: Request, result, verb: str) -> None:
    if result.complete:
        told = ", ".join(portal_of(request).names.get(c, c) for c in result.triggers_written)
        flash(request, "ok", f"{verb}; notifying {told}." if told else f"{verb}.")
    else:
        failed = ", ".join(result.triggers_failed)
        flash(request, "warn", f"{verb}, but the notification for {failed} could not be "
                               "queued. An approver can retry it with \u201cSend notifications again\u201d.")


def int_or_none(value: object) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def detail_ctx(portal, change: dict) -> dict:
    """The delivery per customer, the meeting and the history of a change or an announcement."""
    rows = delivery.delivery(change, portal.names, portal.ledgers(change["changeId"]))
    meeting = delivery.meeting(change)
    waiting = any(r["state"] == "pending" for r in rows) or meeting["state"] == "waiting"
    return {"delivery": rows, "meeting": meeting, "waiting": waiting,
            "timeline": delivery.timeline(change, portal.names, topic_names(portal.cfg))}
