"""The JSON API under ``/api`` (described by ``/openapi.json``)."""

from __future__ import annotations

import re
from typing import Any, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from runtime.domain.errors import InvalidInput, NotFound
from runtime.services.lifecycle import TransitionResult
from runtime.domain.rules import check_known_fields
from runtime.web import _ops, _views
from runtime.web._app import BadRequest, PreconditionRequired, etag_of, new_csrf
from runtime.web._auth import API_TOKEN_DEFAULT_TTL, API_TOKEN_MAX_TTL, Forbidden
from runtime.web._index import DEFAULT_PAGE, MAX_PAGE, Filters, parse_date

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
# Models (documentation and light typing; content is validated by the lifecycle's own rules)


class Schedule(BaseModel):
    model_config = ConfigDict(extra="allow")
    implementationStart: str | None = Field(None, examples=["2026-12-08T02:00:00-05:00"])
    implementationEnd: str | None = Field(None, examples=["2026-12-08T04:00:00-05:00"])
    timezone: str | None = Field(None, examples=["America/New_York"])


class Meeting(BaseModel):
    model_config = ConfigDict(extra="allow")
    required: bool = False
    title: str | None = None
    durationMinutes: int | None = None
    location: str | None = None


class ChangeContent(BaseModel):
    """The fields a user sets. Unknown fields are kept as they are."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [{
        "title": "Patch the shared VPN gateways", "customers": ["hts", "htsnonprod"],
        "schedule": {"implementationStart": "2026-12-08T02:00:00-05:00",
                     "implementationEnd": "2026-12-08T04:00:00-05:00", "timezone": "America/New_York"},
        "reason": "Security fixes", "meeting": {"required": True}}]})
    changeId: str | None = Field(None, description="optional; generated as CHG-{uuid4} when absent")
    title: str | None = None
    customers: list[str] | None = None
    schedule: Schedule | None = None
    reason: str | None = None
    implementationPlan: str | None = None
    testPlan: str | None = None
    customerImpact: str | None = None
    rollbackPlan: str | None = None
    tickets: dict[str, str | None] | None = None
    meeting: Meeting | None = None


class TransitionBody(BaseModel):
    note: str | None = Field(None, max_length=2000, description="recorded with the transition")


class RescheduleBody(TransitionBody):
    start: str = Field(examples=["2026-12-09T02:00:00-05:00"])
    end: str = Field(examples=["2026-12-09T04:00:00-05:00"])
    timezone: str | None = None


class CommentBody(BaseModel):
    comment: str | None = Field(None, description="required: what should change, or the comment",
                                examples=["Please add the rollback plan for the secondary gateway."])


class ReviewEntry(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["changes_requested", "comment"]
    key: str
    timestamp: str
    actor: str
    comment: str
    version: int = Field(description="the change's version the entry was made on")


class Reviews(BaseModel):
    changeId: str
    openRequest: ReviewEntry | None = Field(description="the request for changes not yet answered by an "
                                                        "update or a reschedule")
    items: list[ReviewEntry]


class RetriggerBody(BaseModel):
    customers: list[str] | None = None


class TokenBody(BaseModel):
    ttl: int = Field(API_TOKEN_DEFAULT_TTL, ge=60, le=API_TOKEN_MAX_TTL, description="seconds")
    label: str = Field("", max_length=100, description="what the token is for (shown in the token list)")


class TokenInfo(BaseModel):
    id: str
    label: str
    expiresAt: float
    createdAt: float
    current: bool = Field(description="the token this request came with")


class Triggers(BaseModel):
    written: list[str]
    failed: dict[str, str]


class TransitionOut(BaseModel):
    changeId: str
    action: str
    version: int
    status: str
    complete: bool = Field(description="false when a trigger could not be written (the archive holds the "
                                        "transition; POST .../retrigger finishes it)")
    triggers: Triggers


class Me(BaseModel):
    username: str
    displayName: str
    roles: list[str]
    source: str
    authenticatedBy: str
    csrfToken: str | None = None


class ChangeSummary(BaseModel):
    model_config = ConfigDict(extra="allow")
    changeId: str
    title: str
    status: str
    customers: list[str]
    createdAt: str
    createdBy: str


class ChangePage(BaseModel):
    items: list[ChangeSummary]
    total: int = Field(description="how many match the filters (all pages)")
    nextCursor: str | None = Field(description="pass as cursor for the next page; null on the last")


class Customer(BaseModel):
    code: str
    name: str


class DraftCreated(BaseModel):
    changeId: str


class Token(BaseModel):
    token: str
    tokenType: Literal["Bearer"] = "Bearer"
    expiresAt: float
    id: str = Field(description="for DELETE /api/tokens/{id}")


# ---------------------------------------------------------------------------------------------
# Helpers


def _portal(request: Request):
    return request.app.state.portal


def _user(request: Request):
    return request.state.user


ALLOW_PAST = Query(False, alias="allowPast", description="accept a window that started already "
                                                         "(a change recorded after the fact)")


def _content(body: BaseModel) -> dict[str, Any]:
    return body.model_dump(exclude_unset=True)


def _result(response: Response, result: TransitionResult, status: int = 200) -> TransitionOut:
    response.status_code = status
    response.headers["ETag"] = etag_of(result.change)
    response.headers["Location"] = f"/api/changes/{result.change_id}"
    return TransitionOut(changeId=result.change_id, action=result.action, version=result.seq,
                         status=result.change["status"], complete=result.complete,
                         triggers=Triggers(written=result.triggers_written, failed=result.triggers_failed))


_ETAG_VERSION = re.compile(r'^(?:W/)?"?v?(\d+)(?:\.[0-9a-f]+)?"?$')


def expected_version(if_match: str | None) -> int | None:
    """The version an ``If-Match`` names (None for ``*``); 428 without the header."""
    if if_match is None or not if_match.strip():
        raise PreconditionRequired("If-Match is required: send the ETag of GET /api/changes/{id} "
                                   "(transitions are refused on a version you have not seen)")
    value = if_match.strip()
    if value == "*":
        return None
    m = _ETAG_VERSION.match(value)
    if not m:
        raise BadRequest(f"If-Match: {value!r} is not an ETag of this API (like \"v3.1a2b3c4d5e6f\")")
    return int(m.group(1))


def _none_match(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags


def _filters(status, customer, q, date_from, date_to, created_by, portal) -> Filters:
    if customer and customer not in portal.cfg.customer_codes:
        raise InvalidInput(f"customer: unknown customer {customer!r} (configured: "
                           f"{', '.join(portal.cfg.customer_codes)})")
    return Filters(status=status, customer=customer, text=(q or "").strip() or None,
                   date_from=parse_date(date_from, "from"), date_to=parse_date(date_to, "to", end=True),
                   created_by=created_by or None)


# ---------------------------------------------------------------------------------------------
# Routes


@router.get("/me", response_model=Me, summary="The current user")
def me(request: Request):
    user = _user(request)
    out = user.to_json()
    if user.via == "session":
        out["csrfToken"] = new_csrf(request.session)
    return out


@router.post("/tokens", response_model=Token, status_code=201, summary="Create an API token for yourself",
             description="Only from a signed-in browser session (with X-CSRF-Token): a token cannot mint "
                         "another. The token carries your roles at most; it is shown once.")
def create_token(request: Request, body: TokenBody | None = None):
    user = _user(request)
    if user.via != "session":
        raise Forbidden("API tokens are created from a signed-in session (the portal's Account page)")
    body = body or TokenBody()
    token, exp = _portal(request).tokens.issue(user, body.ttl, label=body.label)
    return Token(token=token, expiresAt=exp, id=_portal(request).tokens.id_of(token))


@router.get("/tokens", response_model=list[TokenInfo], summary="Your API tokens that are still valid")
def list_tokens(request: Request):
    user = _user(request)
    return [TokenInfo(id=t["id"], label=t.get("label", ""), expiresAt=t["exp"], createdAt=t.get("created", 0),
                      current=t["id"] == user.token_id)
            for t in _portal(request).records.tokens(user.source, user.name)]


@router.delete("/tokens/{token_id}", status_code=204, summary="Revoke one of your API tokens",
               description="It stops working at once on this instance, within seconds on the others.")
def revoke_token(request: Request, token_id: str):
    user = _user(request)
    if not _portal(request).records.revoke_token(user.source, user.name, token_id):
        raise NotFound(f"you have no API token {token_id!r}")
    return Response(status_code=204)


@router.get("/customers", response_model=list[Customer], summary="The configured customers")
def customers(request: Request):
    return [Customer(code=c.code, name=c.name) for c in _portal(request).cfg.customers]


@router.get("/stats", summary="Counts of changes by status")
def stats(request: Request) -> dict[str, int]:
    return _portal(request).index.counts()


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
    portal = _portal(request)
    f = _filters(status, customer, q, date_from, date_to, created_by, portal)
    page = portal.index.search(f, cursor=cursor, limit=limit)
    return ChangePage(items=page.items, total=page.total, nextCursor=page.next_cursor)


@router.post("/changes", response_model=TransitionOut, status_code=201, summary="Submit a new change",
             responses={409: {"description": "the changeId exists"}, 422: {"description": "invalid content"}})
def submit_change(request: Request, response: Response, body: ChangeContent, allow_past: bool = ALLOW_PAST):
    result = _ops.submit(_portal(request), _user(request), _content(body), allow_past=allow_past)
    return _result(response, result, 201)


@router.get("/changes/{change_id}", summary="One change (the archive object)",
            responses={200: {"description": "the archive JSON, with an ETag"},
                       304: {"description": "If-None-Match matched"}})
def get_change(request: Request, change_id: str,
               if_none_match: str | None = Header(None)) -> Any:
    change = _portal(request).lifecycle.show(change_id)
    etag = etag_of(change)
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if _none_match(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    from fastapi.responses import JSONResponse

    return JSONResponse(change, headers=headers)


@router.get("/changes/{change_id}/delivery", summary="Per-customer delivery status and the meeting",
            description="processed / pending / rejected transitions per customer, emails sent and failed "
                        "(with recipients from the delivery ledger), and the Teams meeting.")
def get_delivery(request: Request, change_id: str) -> dict:
    portal = _portal(request)
    change = portal.lifecycle.show(change_id)
    rows = _views.delivery(change, portal.names, portal.ledgers(change_id))
    return {"changeId": change_id, "version": change.get("version"), "status": change.get("status"),
            "customers": rows, "meeting": _views.meeting(change),
            "done": all(r["state"] != "pending" for r in rows)}


def _transition(request: Request, response: Response, change_id: str, action: str,
                if_match: str | None, params: dict) -> TransitionOut:
    portal, user = _portal(request), _user(request)
    from runtime.web._auth import require

    require(user, action)  # 403 before 428: a viewer learns they cannot, not how to ask
    version = expected_version(if_match)
    result = _ops.transition(portal, user, change_id, action, expected_version=version, params=params)
    return _result(response, result)


_T_RESPONSES = {403: {"description": "no role for this action, or four-eyes"},
                404: {"description": "no such change"},
                409: {"description": "illegal transition from the current status"},
                412: {"description": "If-Match is stale"}, 428: {"description": "If-Match missing"}}


@router.post("/changes/{change_id}/approve", response_model=TransitionOut, responses=_T_RESPONSES,
             summary="Approve a submitted change (approver; never your own change)")
def approve(request: Request, response: Response, change_id: str, body: TransitionBody | None = None,
            if_match: str | None = Header(None)):
    return _transition(request, response, change_id, "approve", if_match, _note(body))


@router.post("/changes/{change_id}/complete", response_model=TransitionOut, responses=_T_RESPONSES,
             summary="Mark an approved change completed")
def complete(request: Request, response: Response, change_id: str, body: TransitionBody | None = None,
             if_match: str | None = Header(None),
             before_start: bool = Query(False, alias="beforeStart",
                                        description="complete although the window has not started yet")):
    params = {**_note(body), **({"before_start": True} if before_start else {})}
    return _transition(request, response, change_id, "complete", if_match, params)


@router.post("/changes/{change_id}/cancel", response_model=TransitionOut, responses=_T_RESPONSES,
             summary="Cancel a submitted or approved change")
def cancel(request: Request, response: Response, change_id: str, body: TransitionBody | None = None,
           if_match: str | None = Header(None)):
    return _transition(request, response, change_id, "cancel", if_match, _note(body))


@router.post("/changes/{change_id}/reschedule", response_model=TransitionOut, responses=_T_RESPONSES,
             summary="Move a submitted or approved change (the status stays)")
def reschedule(request: Request, response: Response, change_id: str, body: RescheduleBody,
               if_match: str | None = Header(None), allow_past: bool = ALLOW_PAST):
    params = {"start": body.start, "end": body.end, **_note(body), **({"allow_past": True} if allow_past else {})}
    if body.timezone:
        params["timezone"] = body.timezone
    return _transition(request, response, change_id, "reschedule", if_match, params)


@router.post("/changes/{change_id}/update", response_model=TransitionOut, responses=_T_RESPONSES,
             summary="Change the content, schedule or customers of a submitted change",
             description="Send only the fields to change. An added customer gets the approval request "
                         "for the first time; the history keeps which fields changed.")
def update(request: Request, response: Response, change_id: str, body: ChangeContent,
           if_match: str | None = Header(None), allow_past: bool = ALLOW_PAST):
    content = _content(body)
    _ops.reject_managed(content)
    if content.pop("changeId", change_id) != change_id:
        raise InvalidInput("changeId: a change keeps its id")
    check_known_fields(content)  # before the extra parameters join the content
    if allow_past:
        content["allow_past"] = True
    return _transition(request, response, change_id, "update", if_match, content)


@router.post("/changes/{change_id}/request-changes", response_model=ReviewEntry, status_code=201,
             responses={**_T_RESPONSES, 422: {"description": "no comment (field comment)"}},
             summary="Send a submitted change back to its submitter, with a comment (approver)",
             description="Records a `changes_requested` entry in the history. Nobody outside is told (no "
                         "trigger, no email); the version and the status stay (the change waits in "
                         "`submitted` until it is updated). Requires `If-Match`, like a transition.")
def request_changes(request: Request, response: Response, change_id: str, body: CommentBody,
                    if_match: str | None = Header(None)):
    from runtime.services.review import CHANGES_REQUESTED
    from runtime.web._auth import require

    require(_user(request), "request_changes")
    version = expected_version(if_match)
    entry = _ops.review(_portal(request), _user(request), change_id, CHANGES_REQUESTED, comment=body.comment,
                        expected_version=version)
    response.headers["Location"] = f"/api/changes/{change_id}/comments"
    return entry


@router.post("/changes/{change_id}/comments", response_model=ReviewEntry, status_code=201,
             responses={403: {"description": "viewers read; commenting needs submitter or approver"},
                        404: {"description": "no such change"}, 422: {"description": "no comment"}},
             summary="Comment on a change (kept in its history; nobody outside is told)")
def add_comment(request: Request, response: Response, change_id: str, body: CommentBody):
    from runtime.services.review import COMMENT

    entry = _ops.review(_portal(request), _user(request), change_id, COMMENT, comment=body.comment,
                        expected_version=None)
    response.headers["Location"] = f"/api/changes/{change_id}/comments"
    return entry


@router.get("/changes/{change_id}/comments", response_model=Reviews,
            summary="The review of a change: requests for changes and comments, oldest first")
def list_comments(request: Request, change_id: str):
    from runtime.services.review import comments, open_request

    change = _portal(request).lifecycle.show(change_id)
    return Reviews(changeId=change_id, openRequest=open_request(change), items=comments(change))


def _note(body: TransitionBody | None) -> dict:
    return {"note": body.note} if body is not None and body.note else {}


@router.post("/changes/{change_id}/retrigger", response_model=TransitionOut,
             summary="Write the triggers again (safe: processing is idempotent)")
def retrigger(request: Request, response: Response, change_id: str, body: RetriggerBody | None = None):
    result = _ops.retrigger(_portal(request), _user(request), change_id, (body or RetriggerBody()).customers)
    return _result(response, result)


# drafts ---------------------------------------------------------------------------------------


@router.get("/drafts", response_model=ChangePage, summary="List drafts (yours unless mine=false)")
def list_drafts(request: Request, mine: bool = True, q: str | None = None,
                limit: int = Query(DEFAULT_PAGE, ge=1, le=MAX_PAGE), cursor: str | None = None):
    portal, user = _portal(request), _user(request)
    f = Filters(text=(q or "").strip() or None, created_by=user.name if mine else None)
    page = portal.index.search(f, cursor=cursor, limit=limit, drafts=True)
    return ChangePage(items=page.items, total=page.total, nextCursor=page.next_cursor)


@router.post("/drafts", response_model=DraftCreated, status_code=201, summary="Save a new draft",
             description="Only the fields present are checked; submit checks everything.")
def create_draft(request: Request, response: Response, body: ChangeContent):
    cid = _ops.create_draft(_portal(request), _user(request), _content(body))
    response.headers["Location"] = f"/api/drafts/{cid}"
    return DraftCreated(changeId=cid)


@router.get("/drafts/{change_id}", summary="One draft")
def get_draft(request: Request, change_id: str) -> dict:
    return _ops.load_draft(_portal(request), change_id)


@router.put("/drafts/{change_id}", summary="Replace a draft's content (its owner or an admin)")
def put_draft(request: Request, change_id: str, body: ChangeContent) -> dict:
    return _ops.update_draft(_portal(request), _user(request), change_id, _content(body))


@router.delete("/drafts/{change_id}", status_code=204, summary="Delete a draft (its owner or an admin)")
def delete_draft(request: Request, change_id: str):
    _ops.delete_draft(_portal(request), _user(request), change_id)
    return Response(status_code=204)


@router.post("/drafts/{change_id}/submit", response_model=TransitionOut, status_code=201,
             summary="Submit a draft: it becomes a change (version 1) and the draft is removed")
def submit_draft(request: Request, response: Response, change_id: str, allow_past: bool = ALLOW_PAST):
    result = _ops.submit_draft(_portal(request), _user(request), change_id, allow_past=allow_past)
    return _result(response, result, 201)
