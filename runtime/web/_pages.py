"""The server-rendered pages (Jinja2, autoescaped) and the sign-in routes.

Forms post back to the page they came from; success redirects (303) with a flash message,
failure re-renders the form with the user's input and the error next to the field.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from runtime.domain.errors import IllegalTransition, InvalidInput, NotFound, StaleVersion
from runtime.emails import format_time
from runtime.services.delivery import TRANSITION_LABELS
from runtime.services.lifecycle import allowed_actions
from runtime.web import _forms, _views, _writes
from runtime.web._announcements import TYPE_NAMES
from runtime.web._announcements import search as announcements
from runtime.web._auth import (
    API_TOKEN_MAX_TTL,
    Forbidden,
    Principal,
    TooManyAttempts,
    Unauthenticated,
    client_address,
    may_edit_draft,
    why_not,
)
from runtime.web._contacts import change_preview
from runtime.web._http import form_data, portal_of, safe_next, user_of
from runtime.web._index import MAX_PAGE, Filters, parse_date
from runtime.web._page import (
    approvable,
    authored_summary,
    detail_ctx,
    flash,
    index_of,
    int_or_none,
    redirect,
    render,
    result_flash,
)

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 25
ACTION_LABELS = {"approve": "Approve", "complete": "Mark completed", "cancel": "Cancel change",
                 "reschedule": "Reschedule", "update": "Edit"}
DONE_LABELS = {"approve": "Approved", "complete": "Marked completed", "cancel": "Cancelled",
               "reschedule": "Rescheduled", "update": "Saved"}


# ---------------------------------------------------------------------------------------------
# Sign-in


@router.get("/login")
def login_page(request: Request, next: str = "/", e: str | None = None, out: str | None = None):
    if request.state.user is not None:
        return redirect(safe_next(next))
    error = {"expired": "The sign-in form had expired. Please try again.",
             "sso": "Single sign-on is not configured here."}.get(e or "")
    info = "You are signed out." if out else None
    return render(request, "login.html", next=safe_next(next), username="", error=error, info=info)


@router.post("/login")
def login_submit(request: Request, form: FormData = Depends(form_data)):
    portal = portal_of(request)
    username = str(form.get("username") or "").strip()
    password = str(form.get("password") or "")
    target = safe_next(str(form.get("next") or "/"))
    client = client_address(request.client.host if request.client else None, request.headers.get("x-forwarded-for"),
                            portal.cfg.web.trusted_proxies)
    try:
        portal.throttle.check(client, username)
    except TooManyAttempts as exc:
        return render(request, "login.html", status=429, headers={"Retry-After": str(int(exc.retry_after or 60))},
                      next=target, username=username,
                      error=f"Too many sign-in attempts. Wait {int(exc.retry_after or 60)} seconds and try again.")
    portal.throttle.attempt(client)
    user = portal.users.authenticate(username, password) if username and password else None
    if user is None:
        portal.throttle.failed(username, client)
        return render(request, "login.html", status=401, next=target, username=username,
                      error="That username and password do not match.")
    if not user.roles:
        return render(request, "login.html", status=403, next=target, username=username,
                      error="Your account has no role in ttr. Ask an administrator.")
    portal.throttle.succeeded(username, client)
    portal.start_session(request.session, user)
    return redirect(target)


@router.get("/logout")
def logout_page(request: Request):
    if request.state.user is None:
        return redirect("/login")
    return render(request, "logout.html")


@router.post("/logout")
def logout(request: Request):
    user = request.state.user
    if user is not None and user.via == "session":
        portal_of(request).end_sessions(user)  # a copy of the cookie is worth nothing now
    request.session.clear()
    return redirect("/login?out=1")


@router.get("/auth/login")
async def sso_start(request: Request, next: str = "/"):
    portal = portal_of(request)
    if portal.oidc is None:
        return redirect("/login?e=sso")
    request.session["login_next"] = safe_next(next)
    return await portal.oidc.login_redirect(request, str(request.url_for("sso_callback")))


@router.get("/auth/callback", name="sso_callback")
async def sso_callback(request: Request):
    portal = portal_of(request)
    if portal.oidc is None:
        return redirect("/login?e=sso")
    target = safe_next(request.session.get("login_next"))
    try:
        user = await portal.oidc.complete(request)
    except (Unauthenticated, Forbidden) as exc:
        status = 403 if isinstance(exc, Forbidden) else 401
        return render(request, "login.html", status=status, next=target, username="", error=str(exc))
    portal.start_session(request.session, user)
    return redirect(target)


# ---------------------------------------------------------------------------------------------
# Dashboard, lists, search


@router.get("/")
def dashboard(request: Request):
    user, index = user_of(request), index_of(request)
    counts = index.counts()
    recent = index.search(Filters(), limit=8).items
    queue = approvable(index, user)[:5] if user.has("approver") else []
    mine = index.search(Filters(status="submitted", created_by=user.name), limit=5).items
    drafts = index.search(Filters(created_by=user.name), limit=5, drafts=True).items \
        if user.has("submitter") else []
    in_delivery = [r for r in index.search(Filters(), limit=MAX_PAGE).items if r.get("pendingCustomers")][:5]
    return render(request, "dashboard.html", nav="dashboard", counts=counts, recent=recent, queue=queue,
                  mine=mine, drafts=drafts, in_delivery=in_delivery)


@router.get("/changes")
def changes(request: Request, q: str = "", status: str = "", customer: str = "", date_from: str = "",
            date_to: str = "", cursor: str = "", mine: str = ""):
    portal, user = portal_of(request), user_of(request)
    params = {"q": q, "status": status, "customer": customer, "date_from": date_from, "date_to": date_to,
              "mine": mine}
    error = None
    page = None
    try:
        if status and status not in ("submitted", "approved", "completed", "cancelled"):
            raise InvalidInput(f"status: {status!r} is not a status", field="status")
        if customer and customer not in portal.cfg.customer_codes:
            raise InvalidInput(f"customer: unknown customer {customer!r}", field="customer")
        f = Filters(status=status or None, customer=customer or None, text=q.strip() or None,
                    date_from=parse_date(date_from, "from"), date_to=parse_date(date_to, "to", end=True),
                    created_by=user.name if mine else None)
        page = index_of(request).search(f, cursor=cursor or None, limit=PAGE_SIZE)
    except InvalidInput as exc:
        error = str(exc)
    query = urlencode({k: v for k, v in params.items() if v})
    return render(request, "changes.html", nav="changes", params=params, page=page, error=error,
                  filtered=any(params.values()), cursor=cursor, base="/changes" + (f"?{query}" if query else ""))


@router.get("/approvals")
def approvals(request: Request, cursor: str = ""):
    user = user_of(request)
    page = index_of(request).search(Filters(status="submitted"), cursor=cursor or None, limit=PAGE_SIZE)
    rows = []
    for r in page.items:
        reason = why_not(user, "approve")
        if reason is None and authored_summary(user, r):
            reason = "You wrote, submitted, edited or rescheduled this change; another approver must approve it."
        rows.append({**r, "blocked": reason})
    waiting = [{**a, "blocked": why_not(user, "approve") or (
        "You wrote or submitted this announcement; another approver must approve it."
        if authored_summary(user, a) else None)}
        for a in announcements(portal_of(request), status="submitted", limit=MAX_PAGE,
                               snapshot=index_of(request)).items]
    return render(request, "approvals.html", nav="approvals", page=page, rows=rows, cursor=cursor,
                  announcements=waiting, type_names=TYPE_NAMES)


@router.get("/drafts")
def drafts(request: Request, all: str = "", cursor: str = ""):
    user = user_of(request)
    f = Filters() if all else Filters(created_by=user.name)
    page = index_of(request).search(f, cursor=cursor or None, limit=PAGE_SIZE, drafts=True)
    return render(request, "drafts.html", nav="drafts", page=page, show_all=bool(all), cursor=cursor)


# ---------------------------------------------------------------------------------------------
# The change form: new, drafts, edit


def _blank_form() -> dict:
    return _forms.form_values({}, [])


def _form_page(request: Request, *, mode: str, values: dict, errors: dict | None = None, status: int = 200,
               change: dict | None = None, draft: dict | None = None, version: int | None = None,
               stale: dict | None = None, blocked: str | None = None, base: dict | None = None,
               notes: dict | None = None) -> HTMLResponse:
    return render(request, "change_form.html", nav="new" if mode == "new" else "", mode=mode, values=values,
                  zones=_views.time_zones(), base=json.dumps(base) if base is not None else None,
                  errors=errors or {}, notes=notes or {}, status=status, change=change, draft=draft,
                  version=version, stale=stale, blocked=blocked)


@router.get("/changes/new")
def new_change(request: Request):
    user = user_of(request)
    blocked = why_not(user, "draft")
    return _form_page(request, mode="new", values=_blank_form(), blocked=blocked, status=403 if blocked else 200)


@router.post("/changes/new")
def new_change_post(request: Request, form: FormData = Depends(form_data)):
    portal, user = portal_of(request), user_of(request)
    action = str(form.get("action") or "submit")
    values = _forms.form_values(form, [str(c) for c in form.getlist("customers")])
    content, errors = _forms.form_to_content(values, partial=action == "draft")
    if errors:
        return _form_page(request, mode="new", values=values, errors=errors, status=422)
    try:
        if action == "draft":
            cid = _writes.create_draft(portal, user, content)
            flash(request, "ok", "Draft saved. Nobody is told anything until you submit it.")
            return redirect(f"/drafts/{cid}")
        result = _writes.submit(portal, user, content, allow_past=values["allow_past"])
    except InvalidInput as exc:
        return _form_page(request, mode="new", values=values, errors=_forms.form_errors(exc), status=422)
    result_flash(request, result, "Submitted for approval")
    return redirect(f"/changes/{result.change_id}")


@router.get("/drafts/{change_id}")
def draft_page(request: Request, change_id: str):
    portal, user = portal_of(request), user_of(request)
    draft = _writes.load_draft(portal, change_id)
    blocked = may_edit_draft(user, draft)
    return _form_page(request, mode="draft", values=_forms.change_to_form(draft), draft=draft, blocked=blocked)


@router.post("/drafts/{change_id}")
def draft_post(request: Request, change_id: str, form: FormData = Depends(form_data)):
    portal, user = portal_of(request), user_of(request)
    draft = _writes.load_draft(portal, change_id)
    action = str(form.get("action") or "draft")
    if action == "delete":
        _writes.delete_draft(portal, user, change_id)
        flash(request, "ok", f"Draft \u201c{draft.get('title') or change_id}\u201d deleted.")
        return redirect("/drafts")
    values = _forms.form_values(form, [str(c) for c in form.getlist("customers")])
    content, errors = _forms.form_to_content(values, partial=action == "draft")
    if errors:
        return _form_page(request, mode="draft", values=values, errors=errors, draft=draft, status=422)
    try:
        _writes.update_draft(portal, user, change_id, content)
        if action == "draft":
            flash(request, "ok", "Draft saved.")
            return redirect(f"/drafts/{change_id}")
        result = _writes.submit_draft(portal, user, change_id, allow_past=values["allow_past"])
    except InvalidInput as exc:
        return _form_page(request, mode="draft", values=values, errors=_forms.form_errors(exc), draft=draft,
                          status=422)
    result_flash(request, result, "Submitted for approval")
    return redirect(f"/changes/{result.change_id}")


def _stale_info(portal, change: dict, had: int) -> dict:
    since = _forms.versions_since(change, had)
    return {"had": had, "now": change.get("version"), "status": change.get("status"),
            "editable": change.get("status") == "submitted",
            "by": [{"actor": e.get("actor"), "what": TRANSITION_LABELS.get(e["type"], e["type"]),
                    "fields": e.get("fields") or [], "when": e.get("timestamp")} for e in since]}


@router.get("/changes/{change_id}/edit")
def edit_change(request: Request, change_id: str):
    portal, user = portal_of(request), user_of(request)
    change = portal.lifecycle.show(change_id)
    if change.get("status") != "submitted":
        flash(request, "warn", f"This change is {change.get('status')}: its content can no longer be edited."
                               + (" You can still reschedule or cancel it." if change.get("status") == "approved"
                                  else ""))
        return redirect(f"/changes/{change_id}")
    blocked = why_not(user, "update", change)
    values = _forms.change_to_form(change)
    return _form_page(request, mode="edit", values=values, base=values, change=change,
                      version=change.get("version"), blocked=blocked, status=403 if blocked else 200)


@router.post("/changes/{change_id}/edit")
def edit_change_post(request: Request, change_id: str, form: FormData = Depends(form_data)):
    portal, user = portal_of(request), user_of(request)
    values = _forms.form_values(form, [str(c) for c in form.getlist("customers")])
    had = int_or_none(form.get("version"))
    base = _base_of(form)
    current = portal.lifecycle.show(change_id)
    if had is None or had != int(current.get("version") or 0) or current.get("status") != "submitted":
        return _stale_form(request, portal, values, base, current, had or 0)
    content, errors = _forms.form_to_content(values, partial=False, current=current)
    if errors:
        return _form_page(request, mode="edit", values=values, errors=errors, change=current, version=had,
                          base=base, status=422)
    params = _forms.changed_fields(current, content)
    if not params:
        flash(request, "info", "Nothing changed, so nothing was saved.")
        return redirect(f"/changes/{change_id}")
    if values["allow_past"]:
        params["allow_past"] = True
    try:
        result = _writes.transition(portal, user, change_id, "update", expected_version=had, params=params)
    except (StaleVersion, IllegalTransition):
        return _stale_form(request, portal, values, base, portal.lifecycle.show(change_id), had)
    except InvalidInput as exc:
        return _form_page(request, mode="edit", values=values, errors=_forms.form_errors(exc), change=current,
                          version=had, base=base, status=422)
    result_flash(request, result, "Saved; the approval request goes out again with the changes")
    return redirect(f"/changes/{change_id}")


def _base_of(form: FormData) -> dict | None:
    """The form as it was when the user started editing (a hidden field), to tell their edits."""
    try:
        base = json.loads(str(form.get("base") or ""))
    except ValueError:
        return None
    return base if isinstance(base, dict) else None


def _stale_form(request: Request, portal, values: dict, base: dict | None, current: dict, had: int) -> HTMLResponse:
    """Someone else wrote first: show who and what, keep the user's edits on top of theirs."""
    fresh = _forms.change_to_form(current)
    merged, conflicts = _forms.merge_stale(values, base if base is not None else fresh, fresh)
    notes = {f: f"Also changed meanwhile; it is now “{v}”. Your version is kept here."
             for f, v in conflicts.items()}
    return _form_page(request, mode="edit", values=merged, base=fresh, change=current,
                      version=current.get("version"), stale=_stale_info(portal, current, had), notes=notes,
                      status=409)


# ---------------------------------------------------------------------------------------------
# The change detail and its actions


def _actions(user: Principal, change: dict) -> list[dict]:
    out = []
    possible = allowed_actions(str(change.get("status")))
    for a in ("approve", "update", "reschedule", "complete", "cancel"):
        if a not in possible or why_not(user, a) is not None:
            continue  # what the user's roles never allow is not offered at all
        out.append({"action": a, "label": ACTION_LABELS[a], "blocked": why_not(user, a, change)})
    return out


def _when_ctx(portal, change: dict) -> dict:
    now = datetime.fromtimestamp(portal.clock(), tz=timezone.utc)
    return {"phase": _views.window_phase(change.get("schedule"), now),
            "when": _views.window_views(change.get("schedule"))}


def _review_ctx(user: Principal, change: dict) -> dict:
    from runtime.services.review import comments, open_request

    submitted = change.get("status") == "submitted"
    return {"open_request": open_request(change), "reviews": comments(change),
            "can_request_changes": submitted and why_not(user, "request_changes", change) is None,
            "can_comment": why_not(user, "comment", change) is None}


@router.get("/changes/{change_id}")
def change_detail(request: Request, change_id: str):
    portal, user = portal_of(request), user_of(request)
    change = portal.lifecycle.show(change_id)
    if change.get("kind") == "announcement":
        return redirect(f"/announcements/{change_id}")
    sched = change.get("schedule") or {}
    actions = _actions(user, change)
    readonly = not actions and bool(allowed_actions(str(change.get("status"))))
    return render(request, "change_detail.html", nav="changes", change=change, actions=actions, readonly=readonly,
                  **_when_ctx(portal, change), **_review_ctx(user, change),
                  resched={"start": _forms.to_local_input(sched.get("implementationStart"), sched.get("timezone")),
                           "end": _forms.to_local_input(sched.get("implementationEnd"), sched.get("timezone")),
                           "timezone": sched.get("timezone") or ""},
                  can_retrigger=why_not(user, "retrigger") is None and change.get("status") in
                  ("submitted", "approved", "completed", "cancelled"),
                  audience_preview=change_preview(portal, change),
                  **detail_ctx(portal, change))


@router.get("/changes/{change_id}/delivery")
def change_delivery(request: Request, change_id: str):
    portal = portal_of(request)
    change = portal.lifecycle.show(change_id)
    html = portal.render("_delivery.html", change=change, **detail_ctx(portal, change))
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


@router.post("/changes/{change_id}/{action}")
def change_action(request: Request, change_id: str, action: str, form: FormData = Depends(form_data)):
    portal, user = portal_of(request), user_of(request)
    if action not in ("approve", "complete", "cancel", "reschedule", "retrigger", *REVIEW_ACTIONS):
        raise NotFound(f"no action {action!r}")
    if action == "retrigger":
        result = _writes.retrigger(portal, user, change_id, None)
        result_flash(request, result, "Notifications queued again")
        return redirect(f"/changes/{change_id}")
    had = int_or_none(form.get("version"))
    params: dict[str, Any] = {}
    note = str(form.get("note") or "").strip()
    if note:
        params["note"] = note
    try:
        if action in REVIEW_ACTIONS:  # an entry in the history; nobody outside is told
            kind = REVIEW_ACTIONS[action]
            _writes.review(portal, user, change_id, kind, comment=form.get("comment"),
                        expected_version=had if kind == "changes_requested" else None)
            flash(request, "ok", REVIEW_DONE[kind])
            return redirect(f"/changes/{change_id}#review")
        if action == "reschedule":
            tz = str(form.get("timezone") or "").strip()
            params["start"] = _forms.from_local_input(str(form.get("start") or ""), tz, "start")
            params["end"] = _forms.from_local_input(str(form.get("end") or ""), tz, "end")
            params["timezone"] = tz
        for flag in ("allow_past", "before_start"):
            if _forms.checked(form.get(flag)):
                params[flag] = True
        result = _writes.transition(portal, user, change_id, action, expected_version=had, params=params)
    except StaleVersion:
        fresh = portal.lifecycle.show(change_id)
        info = _stale_info(portal, fresh, had or 0)
        who = "; ".join(f"{b['what'].lower()} by {b['actor']}" for b in info["by"]) or "a newer version"
        flash(request, "warn", f"Nothing was done: this change was modified while you were looking at it "
                               f"({who}). Review it below and try again if it still makes sense.")
        return redirect(f"/changes/{change_id}")
    except IllegalTransition as exc:
        flash(request, "error", f"Not possible: {exc}.")
        return redirect(f"/changes/{change_id}")
    except InvalidInput as exc:
        flash(request, "error", _forms.form_errors(exc).popitem()[1])
        return redirect(f"/changes/{change_id}")
    result_flash(request, result, DONE_LABELS[action])
    return redirect(f"/changes/{change_id}")


REVIEW_ACTIONS = {"request-changes": "changes_requested", "comment": "comment"}
REVIEW_DONE = {"changes_requested": "Sent back to the submitter with your comment. Nobody outside was told.",
               "comment": "Comment added."}


# ---------------------------------------------------------------------------------------------
# Account (API tokens) and the API reference


def _tokens(request: Request) -> list[dict]:
    user = user_of(request)
    return [{**t, "expires": format_time(datetime.fromtimestamp(t["exp"], tz=timezone.utc)
                                             .isoformat(timespec="seconds"))}
            for t in portal_of(request).records.tokens(user.source, user.name)]


@router.get("/account")
def account(request: Request):
    return render(request, "account.html", nav="account", token=None, max_days=API_TOKEN_MAX_TTL // 86400,
                  tokens=_tokens(request))


@router.post("/account/token/{token_id}/revoke")
def account_token_revoke(request: Request, token_id: str):
    user = user_of(request)
    if portal_of(request).records.revoke_token(user.source, user.name, token_id):
        flash(request, "ok", "The token was revoked: it no longer works.")
    else:
        flash(request, "warn", "No such token (it may have expired or been revoked already).")
    return redirect("/account")


@router.post("/account/token")
def account_token(request: Request, form: FormData = Depends(form_data)):
    portal, user = portal_of(request), user_of(request)
    if user.via != "session":
        raise Forbidden("API tokens are created from a signed-in session")
    days = int_or_none(form.get("days")) or 1
    days = max(1, min(days, API_TOKEN_MAX_TTL // 86400))
    token, exp = portal.tokens.issue(user, days * 86400, label=str(form.get("label") or "").strip()[:100])
    expires_at = format_time(datetime.fromtimestamp(exp, tz=timezone.utc).isoformat(timespec="seconds"))
    return render(request, "account.html", nav="account", token=token, expires_at=expires_at, days=days,
                  max_days=API_TOKEN_MAX_TTL // 86400, tokens=_tokens(request), headers={"Cache-Control": "no-store"})


@router.get("/docs")
def api_docs(request: Request):
    spec = request.app.openapi()
    ops = []
    for path, methods in spec.get("paths", {}).items():
        for method, op in methods.items():
            params = [{"name": p.get("name"), "in": p.get("in"), "required": p.get("required", False),
                       "description": p.get("description", "")} for p in op.get("parameters", [])]
            ops.append({"method": method.upper(), "path": path, "summary": op.get("summary", ""),
                        "description": op.get("description", ""), "params": params,
                        "body": "requestBody" in op,
                        "responses": sorted(op.get("responses", {}).items())})
    return render(request, "docs.html", nav="docs", spec=spec, ops=ops)


@router.get("/favicon.ico")
def favicon():
    return Response(status_code=308, headers={"Location": "/static/favicon.svg"})
