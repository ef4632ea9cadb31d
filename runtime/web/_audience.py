"""The Audience pages: each customer's contacts, their topics, who gets what and why; and the
preview, on a change waiting for approval, of exactly who its approval would tell.

The portal reads (and, for admins, writes) each customer's contact list through that customer's
SES role, like ``ttr contacts``. Viewers read; only admins add, remove or change subscriptions.
Every "who is told" answer comes from ``decide_recipients`` (runtime/domain/recipients.py), the
function the runtime sends by.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.datastructures import FormData

from runtime.domain.audience import STATUSES, Action, Wanted, check_row, plan_import, who_gets_what
from runtime.domain.errors import InvalidInput, NotFound, TtrError
from runtime.web._auth import Forbidden, Principal
from runtime.web._contacts import Audiences, audiences, change_preview, suppressed  # noqa: F401 (re-exported)
from runtime.web._http import form_data as _form
from runtime.web._page import flash, redirect, render

router = APIRouter(include_in_schema=False)


def _require_admin(user: Principal) -> None:
    if not user.has("admin"):
        raise Forbidden("changing contacts needs the admin role "
                        f"(you have: {', '.join(sorted(user.roles)) or 'none'})")


def _page(request: Request, code: str, *, status: int = 200, form_error: dict | None = None,
          form_values: dict | None = None):
    portal = request.app.state.portal
    aud = audiences(request)
    customer = aud.book(code).customer
    topics = list(portal.cfg.topic_defaults)
    error = None
    rows: list[dict] = []
    defaults: dict[str, str] = {}
    try:
        contacts, defaults = aud.read(code)
        rows = who_gets_what(sorted(contacts, key=lambda c: c.email.lower()), topics, defaults, customer.allows,
                             suppressed(portal, code))
    except TtrError as exc:
        error = str(exc)
    counts = {t: sum(1 for r in rows for c in r["cells"] if c["topic"] == t and c["told"]) for t in topics}
    return render(request, "audience.html", nav="audience", status=status, customer=customer, rows=rows,
                  topics=[(t, portal.cfg.topic_display(t), defaults.get(t, portal.cfg.topic_defaults[t]))
                          for t in topics],
                  counts=counts, read_error=error, can_edit=request.state.user.has("admin"),
                  form_error=form_error or {}, form_values=form_values or {})


@router.get("/audience")
def audience_index(request: Request):
    return redirect(f"/audience/{request.app.state.portal.cfg.customers[0].code}")


@router.get("/audience/{code}")
def audience_page(request: Request, code: str):
    return _page(request, code)


def _contact_form(request: Request, form: FormData) -> tuple[list[str], str, dict[str, str]]:
    """An admin's contact form: (configured topic names, email, topic -> OPT_IN|OPT_OUT|"")."""
    _require_admin(request.state.user)
    names = list(request.app.state.portal.cfg.topic_defaults)
    email = str(form.get("email") or "").strip()
    return names, email, {t: str(form.get(f"topic:{t}") or "").strip() for t in names}


def _written(request: Request, code: str, actions: list[Action]):
    aud = audiences(request)
    applied = aud.book(code).apply(actions)
    aud.forget(code)
    if not applied.ok:
        flash(request, "error", f"Nothing more was saved: {applied.error}")
    else:
        for a in actions:
            text = {"add": f"Added {a.email}.", "update": f"Saved {a.email}."}.get(
                a.kind, f"{a.email}: nothing to change" + (f" ({a.note})." if a.note else "."))
            flash(request, "ok" if a.writes else "info", text)
    return redirect(f"/audience/{code}")


@router.post("/audience/{code}/add")
def audience_add(request: Request, code: str, form: FormData = Depends(_form)):
    names, email, topics = _contact_form(request, form)
    try:
        wanted: Wanted = check_row(email, topics, names, "email")
    except InvalidInput as exc:
        message = str(exc).removeprefix("email: ")   # the label this form passed as ``where``
        field = "email" if exc.field == "email" else "topics"
        return _page(request, code, status=422, form_error={field: message},
                     form_values={"email": email, **{f"topic:{t}": v for t, v in topics.items()}})
    book = audiences(request).book(code)
    return _written(request, code, plan_import(book.contacts(), [wanted]))


@router.post("/audience/{code}/edit")
def audience_edit(request: Request, code: str, form: FormData = Depends(_form)):
    """Set one contact's subscriptions: OPT_IN, OPT_OUT, or empty (no choice: the default)."""
    names, email, topics = _contact_form(request, form)
    bad = [t for t, v in topics.items() if v and v not in STATUSES]
    if bad:
        raise InvalidInput(f"topic:{bad[0]}: {topics[bad[0]]!r} is not OPT_IN, OPT_OUT or empty")
    book = audiences(request).book(code)
    match = [c for c in book.contacts() if c.email.lower() == email.lower()]
    if not match:
        raise NotFound(f"{email} is not a contact of {book.customer.name}")
    c = match[0]
    prefs = {**{t: s for t, s in c.preferences.items() if t not in names}, **{t: v for t, v in topics.items() if v}}
    if prefs == dict(c.preferences):
        action = Action("unchanged", c.email, prefs, unsubscribe_all=c.unsubscribe_all)
    else:
        changed = tuple(f"{t}={prefs.get(t, 'default')}" for t in names if prefs.get(t) != c.preferences.get(t))
        action = Action("update", c.email, prefs, None, changed, unsubscribe_all=c.unsubscribe_all)
    return _written(request, code, [action])


@router.post("/audience/{code}/remove")
def audience_remove(request: Request, code: str, form: FormData = Depends(_form)):
    _require_admin(request.state.user)
    aud = audiences(request)
    email = aud.book(code).remove(str(form.get("email") or "").strip())
    aud.forget(code)
    flash(request, "ok", f"Removed {email}.")
    return redirect(f"/audience/{code}")
