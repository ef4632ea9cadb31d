"""Announcements in the portal and the API: a form, a list, the page with its delivery.

The same guarantees as changes, through the same code: the lifecycle writes (archive first,
then the triggers), ``_writes.transition`` checks roles and four-eyes and pins the version the user
saw (``If-Match`` in the API, the form's version on the pages), the change index lists them
(``kind`` filter) and pages them, the change page's delivery partial shows who was told.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import FormData

from runtime.domain.announcements import TYPES
from runtime.domain.errors import IllegalTransition, InvalidInput, NotFound, StaleVersion
from runtime.services import delivery
from runtime.services.lifecycle import allowed_actions
from runtime.web import _forms, _views, _writes
from runtime.web._announcements import TYPE_NAMES, load, search  # noqa: F401 (search: re-exported)
from runtime.web._auth import require, why_not
from runtime.web._contacts import change_preview
from runtime.web._http import etag_of, expected_version, form_data, none_match, portal_of
from runtime.web._index import DEFAULT_PAGE, MAX_PAGE
from runtime.web._page import detail_ctx, flash, int_or_none, redirect, render, result_flash
from runtime.web._schemas import (
    ALLOW_PAST,
    T_RESPONSES,
    Meeting,
    Schedule,
    TransitionBody,
    TransitionOut,
    note_of,
    result_out,
)

router = APIRouter()
ACTIONS = {"approve": ("Approve and send", "Approved: the announcement is on its way"),
           "cancel": ("Cancel", "Cancelled")}


class Link(BaseModel):
    model_config = ConfigDict(extra="allow")
    title: str | None = None
    url: str = Field(examples=["https://example.com/report"], description="http or https only")


class AnnouncementContent(BaseModel):
    """What a user sets. Unknown fields are refused with a suggestion (``x-`` fields are free)."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [{
        "type": "finops", "title": "Q4 cost review", "customers": ["hts"],
        "summary": "Your Q4 spend and two savings plans.", "content": "The details.",
        "links": [{"title": "Cost report", "url": "https://example.com/q4"}]}]})
    type: Literal["cic", "finops", "innersource", "general"] | None = None
    title: str | None = None
    customers: list[str] | None = None
    summary: str | None = None
    content: str | None = None
    links: list[Link] | None = None
    meeting: Meeting | None = None
    schedule: Schedule | None = Field(None, description="the meeting's window (required with a meeting)")


class AnnouncementSummary(BaseModel):
    model_config = ConfigDict(extra="allow")
    changeId: str = Field(description="the announcement's id (ANN-…)")
    type: str | None
    title: str
    status: str
    customers: list[str]
    createdAt: str
    createdBy: str


class AnnouncementPage(BaseModel):
    items: list[AnnouncementSummary]
    total: int = Field(description="how many match the filters (all pages)")
    nextCursor: str | None = Field(description="pass as cursor for the next page; null on the last")


def submit(portal, user, content: dict, *, allow_past: bool = False):
    require(user, "submit")
    _writes.reject_managed(content)
    return portal.lifecycle.announce(content, actor=user.name, allow_past=allow_past)


def _located(response: Response, result, status: int = 200) -> TransitionOut:
    out = result_out(response, result, status)
    response.headers["Location"] = f"/api/announcements/{result.change_id}"
    return out


# ---------------------------------------------------------------------------------------------
# API


@router.get("/api/announcements", response_model=AnnouncementPage, tags=["api"],
            summary="List announcements, newest first (follow nextCursor)")
def api_list(request: Request, status: Literal["submitted", "approved", "cancelled"] | None = None,
             type: Literal["cic", "finops", "innersource", "general"] | None = None,  # noqa: A002 - the field
             customer: str | None = Query(None, description="a customer code"),
             limit: int = Query(DEFAULT_PAGE, ge=1, le=MAX_PAGE), cursor: str | None = None):
    page = search(portal_of(request), status=status, type_=type, customer=customer, cursor=cursor, limit=limit)
    return AnnouncementPage(items=page.items, total=page.total, nextCursor=page.next_cursor)


@router.post("/api/announcements", response_model=TransitionOut, status_code=201, tags=["api"],
             summary="Submit an announcement (submitter); its approval request goes to announce-approval",
             responses={422: {"description": "invalid content (field named)"}})
def api_submit(request: Request, response: Response, body: AnnouncementContent, allow_past: bool = ALLOW_PAST):
    result = submit(portal_of(request), request.state.user, body.model_dump(exclude_unset=True),
                    allow_past=allow_past)
    return _located(response, result, 201)


@router.get("/api/announcements/{announcement_id}", tags=["api"], summary="One announcement (the archive object)",
            responses={200: {"description": "the archive JSON, with an ETag"},
                       304: {"description": "If-None-Match matched"}, 404: {"description": "no such announcement"}})
def api_get(request: Request, announcement_id: str, if_none_match: str | None = Header(None)) -> Any:
    obj = load(portal_of(request), announcement_id)
    etag = etag_of(obj)
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if none_match(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    return JSONResponse(obj, headers=headers)


@router.get("/api/announcements/{announcement_id}/delivery", tags=["api"],
            summary="Per-customer delivery (who was told, who not and why) and the meeting")
def api_delivery(request: Request, announcement_id: str) -> dict:
    portal = portal_of(request)
    obj = load(portal, announcement_id)
    rows = delivery.delivery(obj, portal.names, portal.ledgers(announcement_id))
    return {"changeId": announcement_id, "version": obj.get("version"), "status": obj.get("status"),
            "customers": rows, "meeting": delivery.meeting(obj), "done": all(r["state"] != "pending" for r in rows)}


def _api_transition(action: str):
    def run(request: Request, response: Response, announcement_id: str, body: TransitionBody | None = None,
            if_match: str | None = Header(None)) -> TransitionOut:
        portal, user = portal_of(request), request.state.user
        require(user, action)  # 403 before 428, as for changes
        version = expected_version(if_match)
        load(portal, announcement_id)
        result = _writes.transition(portal, user, announcement_id, action, expected_version=version,
                                 params=note_of(body))
        return _located(response, result)
    return run


router.post("/api/announcements/{announcement_id}/approve", response_model=TransitionOut, tags=["api"],
            responses=T_RESPONSES, summary="Approve a submitted announcement (approver; never your own): "
                                            "its type's subscribers are told")(_api_transition("approve"))
router.post("/api/announcements/{announcement_id}/cancel", response_model=TransitionOut, tags=["api"],
            responses=T_RESPONSES, summary="Cancel a submitted or approved announcement")(_api_transition("cancel"))


# ---------------------------------------------------------------------------------------------
# Pages


def _render(request: Request, template: str, **ctx):
    return render(request, template, nav="announcements", type_names=TYPE_NAMES, **ctx)


@router.get("/announcements", include_in_schema=False)
def page_list(request: Request, type: str = "", status: str = "", cursor: str = ""):  # noqa: A002
    portal = portal_of(request)
    error, page = None, None
    try:
        page = search(portal, status=status if status in ("submitted", "approved", "cancelled") else None,
                      type_=type or None, cursor=cursor or None)
    except InvalidInput as exc:
        error = str(exc)
    base = "/announcements?" + "&".join(f"{k}={v}" for k, v in (("type", type), ("status", status)) if v)
    return _render(request, "announcements.html", page=page, error=error, params={"type": type, "status": status},
                   base=base, cursor=cursor)


def _blank() -> dict:
    return {"type": "", "title": "", "customers": [], "summary": "", "content": "", "links": "",
            "meeting_required": False, "meeting_title": "", "start": "", "end": "", "timezone": "", "allow_past": False}


@router.get("/announcements/new", include_in_schema=False)
def page_new(request: Request):
    require(request.state.user, "submit")
    return _render(request, "announcement_form.html", values=_blank(), errors={}, zones=_views.time_zones())


def parse_links(text: str) -> list[dict]:
    """One link a line: ``Title | https://…`` or just the address."""
    out = []
    for line in str(text or "").splitlines():
        line = line.strip()
        if not line:
            continue
        title, sep, url = line.rpartition("|")
        if not sep:
            title, url = "", line
        out.append({"title": title.strip() or url.strip(), "url": url.strip()})
    return out


def content_of(form: FormData) -> tuple[dict, dict]:
    """(the announcement from the form, the form's values to show again)."""
    values = {**_blank(), **{k: str(form.get(k) or "") for k in ("type", "title", "summary", "content", "links",
                                                                  "meeting_title", "start", "end", "timezone")},
              "customers": [str(c) for c in form.getlist("customers")],
              "meeting_required": _forms.checked(form.get("meeting_required")),
              "allow_past": _forms.checked(form.get("allow_past"))}
    content: dict[str, Any] = {"type": values["type"] or None, "title": values["title"],
                               "customers": values["customers"], "summary": values["summary"],
                               "content": values["content"]}
    if values["links"].strip():
        content["links"] = parse_links(values["links"])
    if values["meeting_required"]:
        tz = values["timezone"].strip()
        content["meeting"] = {"required": True, **({"title": values["meeting_title"].strip()}
                                                   if values["meeting_title"].strip() else {})}
        content["schedule"] = {"implementationStart": _forms.from_local_input(values["start"], tz, "start"),
                               "implementationEnd": _forms.from_local_input(values["end"], tz, "end"),
                               "timezone": tz}
    return content, values


@router.post("/announcements/new", include_in_schema=False)
def page_new_post(request: Request, form: FormData = Depends(form_data)):
    portal, user = portal_of(request), request.state.user
    values = _blank()
    try:
        content, values = content_of(form)
        result = submit(portal, user, content, allow_past=values["allow_past"])
    except InvalidInput as exc:
        return _render(request, "announcement_form.html", values=values, errors=_forms.form_errors(exc),
                       zones=_views.time_zones(), status=422)
    result_flash(request, result, "Submitted for approval")
    return redirect(f"/announcements/{result.change_id}")


def _actions(user, obj: dict) -> list[dict]:
    possible = allowed_actions(str(obj.get("status")), obj)
    return [{"action": a, "label": ACTIONS[a][0], "blocked": why_not(user, a, obj)}
            for a in ACTIONS if a in possible and why_not(user, a) is None]


@router.get("/announcements/{announcement_id}", include_in_schema=False)
def page_detail(request: Request, announcement_id: str):
    portal, user = portal_of(request), request.state.user
    obj = load(portal, announcement_id)
    from runtime.emails.announcement import safe_links

    return _render(request, "announcement_detail.html", change=obj, actions=_actions(user, obj),
                   links=safe_links(obj.get("links")), audience_preview=change_preview(portal, obj),
                   topic=TYPES.get(str(obj.get("type")), ("", ""))[0], **detail_ctx(portal, obj))


@router.get("/announcements/{announcement_id}/delivery", include_in_schema=False)
def page_delivery(request: Request, announcement_id: str):
    portal = portal_of(request)
    obj = load(portal, announcement_id)
    html = portal.render("_delivery.html", change=obj, **detail_ctx(portal, obj))
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


@router.post("/announcements/{announcement_id}/{action}", include_in_schema=False)
def page_action(request: Request, announcement_id: str, action: str, form: FormData = Depends(form_data)):
    portal, user = portal_of(request), request.state.user
    if action not in ACTIONS:
        raise NotFound(f"no action {action!r}")
    load(portal, announcement_id)
    note = str(form.get("note") or "").strip()
    here = f"/announcements/{announcement_id}"
    try:
        result = _writes.transition(portal, user, announcement_id, action,
                                 expected_version=int_or_none(form.get("version")),
                                 params={"note": note} if note else {})
    except StaleVersion:
        flash(request, "warn", "Nothing was done: this announcement changed while you were looking at it. "
                               "Review it below and try again if it still makes sense.")
        return redirect(here)
    except IllegalTransition as exc:
        flash(request, "error", f"Not possible: {exc}.")
        return redirect(here)
    result_flash(request, result, ACTIONS[action][1])
    return redirect(here)
