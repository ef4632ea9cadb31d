"""The JSON API under ``/api`` (described by ``/openapi.json``)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import BaseModel

from runtime.domain.errors import InvalidInput, NotFound
from runtime.domain.rules import check_known_fields
from runtime.services import delivery
from runtime.web import _writes
from runtime.web._auth import Forbidden
from runtime.web._http import etag_of, expected_version, new_csrf, none_match, portal_of, user_of
from runtime.web._index import DEFAULT_PAGE, MAX_PAGE, Filters, parse_date
from runtime.web._schemas import (
    ALLOW_PAST,
    T_RESPONSES,
    ChangeContent,
    ChangePage,
    CommentBody,
    Customer,
    DraftCreated,
    Me,
    RescheduleBody,
    RetriggerBody,
    ReviewEntry,
    Reviews,
    Token,
    TokenBody,
    TokenInfo,
    TransitionBody,
    TransitionOut,
    note_of,
    result_out,
)

API_DESCRIPTION = """\
The metadata API of the ttr portal. It writes through the same lifecycle code as the `ttr` CLI:
the archive first (create-only, or a compare-and-swap on the version), then one trigger per
customer, with the modification history preserved on every write.

**Authentication.** Every `/api` route needs a user. Either

* a bearer token: `Authorization: Bearer <token>`, where the token is a portal API token
  (`ttr1.…`, created on the portal's *Account* page or with `POST /api/tokens`; it expires, at
  most after 7 days, can be revoked with `DELETE /api/tokens/{id}`, and never grants more than
  the user's current roles), or, when single sign-on is configured, a JWT the identity provider
  issued for this portal (audience and authorized party checked); or
* the portal's session cookie, as the pages' own scripts do. State-changing requests made
  with the cookie also need the header `X-CSRF-Token` (from `GET /api/me`).

Without a user the API answers 401; without a role (any route) or the role for an action, 403.

**Versions.** `GET /api/changes/{id}` returns an `ETag` of the form `"v{version}.{digest}"`.
`If-None-Match` with it answers 304 while nothing changed. The transitions require `If-Match`
(428 without it) and compare its version with the archive's: 412 when stale, 409 when the
transition is illegal from the change's status. Background processing (delivery records, the
meeting) changes the digest but never the version, so it never makes an editor stale.

**Errors** are `{"error": code, "message": text, "field"?: name}`.

**Windows.** A submit, update or reschedule whose window starts in the past is refused (422,
field `schedule.implementationStart`) unless `?allowPast=true` (a change recorded after the fact);
an end not after the start is refused (`schedule.implementationEnd`). A field the schema does not
know is refused with the nearest known one (`x-` fields are free). Completing before the window
starts needs `?beforeStart=true` (422, field `beforeStart`, without it).

**Announcements** (`/api/announcements`: CIC, FinOps, InnerSource, general news) follow the same
rules: submit (submitter), approve (approver, never your own: four-eyes) and cancel with
`If-Match`, ETags, pagination with `nextCursor`. Their id is `ANN-{uuid4}` (under `changeId`).
"""

router = APIRouter(prefix="/api", tags=["api"], responses={
    401: {"description": "no user: sign in, or send Authorization: Bearer <token>"},
    403: {"description": "not allowed (role, four-eyes, ownership), or a session request without X-CSRF-Token"}})


# ---------------------------------------------------------------------------------------------
# Helpers


def _content(body: BaseModel) -> dict[str, Any]:
    return body.model_dump(exclude_unset=True)


def _filters(status, customer, q, date_from, date_to, created_by, portal) -> Filters:
    if customer and customer not in portal.cfg.customer_codes:
        raise InvalidInput(f"customer: unknown customer {customer!r} (configured: "
                           f"{', '.join(portal.cfg.customer_codes)})", field="customer")
    return Filters(status=status, customer=customer, text=(q or "").strip() or None,
                   date_from=parse_date(date_from, "from"), date_to=parse_date(date_to, "to", end=True),
                   created_by=created_by or None)


# ---------------------------------------------------------------------------------------------
# Routes


@router.get("/me", response_model=Me, summary="The current user")
def me(request: Request):
    user = user_of(request)
    out = user.to_json()
    if user.via == "session":
        out["csrfToken"] = new_csrf(request.session)
    return out


@router.post("/tokens", response_model=Token, status_code=201, summary="Create an API token for yourself",
             description="Only from a signed-in browser session (with X-CSRF-Token): a token cannot mint "
                         "another. The token carries your roles at most; it is shown once.")
def create_token(request: Request, body: TokenBody | None = None):
    user = user_of(request)
    if user.via != "session":
        raise Forbidden("API tokens are created from a signed-in session (the portal's Account page)")
    body = body or TokenBody()
    token, exp = portal_of(request).tokens.issue(user, body.ttl, label=body.label)
    return Token(token=token, expiresAt=exp, id=portal_of(request).tokens.id_of(token))


@router.get("/tokens", response_model=list[TokenInfo], summary="Your API tokens that are still valid")
def list_tokens(request: Request):
    user = user_of(request)
    return [TokenInfo(id=t["id"], label=t.get("label", ""), expiresAt=t["exp"], createdAt=t.get("created", 0),
                      current=t["id"] == user.token_id)
            for t in portal_of(request).records.tokens(user.source, user.name)]


@router.delete("/tokens/{token_id}", status_code=204, summary="Revoke one of your API tokens",
               description="It stops working at once on this instance, within seconds on the others.")
def revoke_token(request: Request, token_id: str):
    user = user_of(request)
    if not portal_of(request).records.revoke_token(user.source, user.name, token_id):
        raise NotFound(f"you have no API token {token_id!r}")
    return Response(status_code=204)


@router.get("/customers", response_model=list[Customer], summary="The configured customers")
def customers(request: Request):
    return [Customer(code=c.code, name=c.name) for c in portal_of(request).cfg.customers]


@router.get("/stats", summary="Counts of changes by status")
def stats(request: Request) -> dict[str, int]:
    return portal_of(request).index.counts()


@router.get("/changes", response_model=ChangePage, summary="List and search changes",
            description="Newest first. Every archived change is considered (no 1,000-object limit); "
                        "follow nextCursor for the next page.")
def list_changes(
    request: Request,
    status: Literal["submitted", "approved", "completed", "cancelled"] | None = None,
    customer: str | None = Query(None, description="a customer code"),
    q: str | None = Query(None, description="words that must all appear in the id, title, author, "
                                              "tickets, customers or text fields (case-insensitive)"),
    date_from: str | None = Query(None, alias="from", description="the change window ends on or after "
                                                                   "this date (YYYY-MM-DD, UTC) or time"),
    date_to: str | None = Query(None, alias="to", description="the change window starts on or before "
                                                               "this date or time"),
    created_by: str | None = Query(None, alias="createdBy"),
    limit: int = Query(DEFAULT_PAGE, ge=1, le=MAX_PAGE),
    cursor: str | None = None,
):
    portal = portal_of(request)
    f = _filters(status, customer, q, date_from, date_to, created_by, portal)
    page = portal.index.search(f, cursor=cursor, limit=limit)
    return ChangePage(items=page.items, total=page.total, nextCursor=page.next_cursor)


@router.post("/changes", response_model=TransitionOut, status_code=201, summary="Submit a new change",
             responses={409: {"description": "the changeId exists"}, 422: {"description": "invalid content"}})
def submit_change(request: Request, response: Response, body: ChangeContent, allow_past: bool = ALLOW_PAST):
    result = _writes.submit(portal_of(request), user_of(request), _content(body), allow_past=allow_past)
    return result_out(response, result, 201)


@router.get("/changes/{change_id}", summary="One change (the archive object)",
            responses={200: {"description": "the archive JSON, with an ETag"},
                       304: {"description": "If-None-Match matched"}})
def get_change(request: Request, change_id: str,
               if_none_match: str | None = Header(None)) -> Any:
    change = portal_of(request).lifecycle.show(change_id)
    etag = etag_of(change)
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if none_match(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    from fastapi.responses import JSONResponse

    return JSONResponse(change, headers=headers)


@router.get("/changes/{change_id}/delivery", summary="Per-customer delivery status and the meeting",
            description="processed / pending / rejected transitions per customer, emails sent and failed "
                        "(with recipients from the delivery ledger), and the Teams meeting.")
def get_delivery(request: Request, change_id: str) -> dict:
    portal = portal_of(request)
    change = portal.lifecycle.show(change_id)
    rows = delivery.delivery(change, portal.names, portal.ledgers(change_id))
    return {"changeId": change_id, "version": change.get("version"), "status": change.get("status"),
            "customers": rows, "meeting": delivery.meeting(change),
            "done": all(r["state"] != "pending" for r in rows)}


def _transition(request: Request, response: Response, change_id: str, action: str,
                if_match: str | None, params: dict) -> TransitionOut:
    portal, user = portal_of(request), user_of(request)
    from runtime.web._auth import require

    require(user, action)  # 403 before 428: a viewer learns they cannot, not how to ask
    version = expected_version(if_match)
    result = _writes.transition(portal, user, change_id, action, expected_version=version, params=params)
    return result_out(response, result)


@router.post("/changes/{change_id}/approve", response_model=TransitionOut, responses=T_RESPONSES,
             summary="Approve a submitted change (approver; never your own change)")
def approve(request: Request, response: Response, change_id: str, body: TransitionBody | None = None,
            if_match: str | None = Header(None)):
    return _transition(request, response, change_id, "approve", if_match, note_of(body))


@router.post("/changes/{change_id}/complete", response_model=TransitionOut, responses=T_RESPONSES,
             summary="Mark an approved change completed")
def complete(request: Request, response: Response, change_id: str, body: TransitionBody | None = None,
             if_match: str | None = Header(None),
             before_start: bool = Query(False, alias="beforeStart",
                                        description="complete although the window has not started yet")):
    params = {**note_of(body), **({"before_start": True} if before_start else {})}
    return _transition(request, response, change_id, "complete", if_match, params)


@router.post("/changes/{change_id}/cancel", response_model=TransitionOut, responses=T_RESPONSES,
             summary="Cancel a submitted or approved change")
def cancel(request: Request, response: Response, change_id: str, body: TransitionBody | None = None,
           if_match: str | None = Header(None)):
    return _transition(request, response, change_id, "cancel", if_match, note_of(body))


@router.post("/changes/{change_id}/reschedule", response_model=TransitionOut, responses=T_RESPONSES,
             summary="Move a submitted or approved change (the status stays)")
def reschedule(request: Request, response: Response, change_id: str, body: RescheduleBody,
               if_match: str | None = Header(None), allow_past: bool = ALLOW_PAST):
    params = {"start": body.start, "end": body.end, **note_of(body), **({"allow_past": True} if allow_past else {})}
    if body.timezone:
        params["timezone"] = body.timezone
    return _transition(request, response, change_id, "reschedule", if_match, params)


@router.post("/changes/{change_id}/update", response_model=TransitionOut, responses=T_RESPONSES,
             summary="Change the content, schedule or customers of a submitted change",
             description="Send only the fields to change. An added customer gets the approval request "
                         "for the first time; the history keeps which fields changed.")
def update(request: Request, response: Response, change_id: str, body: ChangeContent,
           if_match: str | None = Header(None), allow_past: bool = ALLOW_PAST):
    content = _content(body)
    _writes.reject_managed(content)
    if content.pop("changeId", change_id) != change_id:
        raise InvalidInput("changeId: a change keeps its id", field="changeId")
    check_known_fields(content)  # before the extra parameters join the content
    if allow_past:
        content["allow_past"] = True
    return _transition(request, response, change_id, "update", if_match, content)


@router.post("/changes/{change_id}/request-changes", response_model=ReviewEntry, status_code=201,
             responses={**T_RESPONSES, 422: {"description": "no comment (field comment)"}},
             summary="Send a submitted change back to its submitter, with a comment (approver)",
             description="Records a `changes_requested` entry in the history. Nobody outside is told (no "
                         "trigger, no email); the version and the status stay (the change waits in "
                         "`submitted` until it is updated). Requires `If-Match`, like a transition.")
def request_changes(request: Request, response: Response, change_id: str, body: CommentBody,
                    if_match: str | None = Header(None)):
    from runtime.services.review import CHANGES_REQUESTED
    from runtime.web._auth import require

    require(user_of(request), "request_changes")
    version = expected_version(if_match)
    entry = _writes.review(portal_of(request), user_of(request), change_id, CHANGES_REQUESTED, comment=body.comment,
                        expected_version=version)
    response.headers["Location"] = f"/api/changes/{change_id}/comments"
    return entry


@router.post("/changes/{change_id}/comments", response_model=ReviewEntry, status_code=201,
             responses={403: {"description": "viewers read; commenting needs submitter or approver"},
                        404: {"description": "no such change"}, 422: {"description": "no comment"}},
             summary="Comment on a change (kept in its history; nobody outside is told)")
def add_comment(request: Request, response: Response, change_id: str, body: CommentBody):
    from runtime.services.review import COMMENT

    entry = _writes.review(portal_of(request), user_of(request), change_id, COMMENT, comment=body.comment,
                        expected_version=None)
    response.headers["Location"] = f"/api/changes/{change_id}/comments"
    return entry


@router.get("/changes/{change_id}/comments", response_model=Reviews,
            summary="The review of a change: requests for changes and comments, oldest first")
def list_comments(request: Request, change_id: str):
    from runtime.services.review import comments, open_request

    change = portal_of(request).lifecycle.show(change_id)
    return Reviews(changeId=change_id, openRequest=open_request(change), items=comments(change))


@router.post("/changes/{change_id}/retrigger", response_model=TransitionOut,
             summary="Write the triggers again (safe: processing is idempotent)")
def retrigger(request: Request, response: Response, change_id: str, body: RetriggerBody | None = None):
    result = _writes.retrigger(portal_of(request), user_of(request), change_id, (body or RetriggerBody()).customers)
    return result_out(response, result)


# drafts ---------------------------------------------------------------------------------------


@router.get("/drafts", response_model=ChangePage, summary="List drafts (yours unless mine=false)")
def list_drafts(request: Request, mine: bool = True, q: str | None = None,
                limit: int = Query(DEFAULT_PAGE, ge=1, le=MAX_PAGE), cursor: str | None = None):
    portal, user = portal_of(request), user_of(request)
    f = Filters(text=(q or "").strip() or None, created_by=user.name if mine else None)
    page = portal.index.search(f, cursor=cursor, limit=limit, drafts=True)
    return ChangePage(items=page.items, total=page.total, nextCursor=page.next_cursor)


@router.post("/drafts", response_model=DraftCreated, status_code=201, summary="Save a new draft",
             description="Only the fields present are checked; submit checks everything.")
def create_draft(request: Request, response: Response, body: ChangeContent):
    cid = _writes.create_draft(portal_of(request), user_of(request), _content(body))
    response.headers["Location"] = f"/api/drafts/{cid}"
    return DraftCreated(changeId=cid)


@router.get("/drafts/{change_id}", summary="One draft")
def get_draft(request: Request, change_id: str) -> dict:
    return _writes.load_draft(portal_of(request), change_id)


@router.put("/drafts/{change_id}", summary="Replace a draft's content (its owner or an admin)")
def put_draft(request: Request, change_id: str, body: ChangeContent) -> dict:
    return _writes.update_draft(portal_of(request), user_of(request), change_id, _content(body))


@router.delete("/drafts/{change_id}", status_code=204, summary="Delete a draft (its owner or an admin)")
def delete_draft(request: Request, change_id: str):
    _writes.delete_draft(portal_of(request), user_of(request), change_id)
    return Response(status_code=204)


@router.post("/drafts/{change_id}/submit", response_model=TransitionOut, status_code=201,
             summary="Submit a draft: it becomes a change (version 1) and the draft is removed")
def submit_draft(request: Request, response: Response, change_id: str, allow_past: bool = ALLOW_PAST):
    result = _writes.submit_draft(portal_of(request), user_of(request), change_id, allow_past=allow_past)
    return result_out(response, result, 201)
