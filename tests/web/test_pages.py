"""The pages' forms over HTTP: every refusal a person can run into says what happened."""

from __future__ import annotations

import html as htmllib
import re

from tests.conftest import at, day
from tests.web.conftest import csrf_of

D8, D9 = day(8), day(9)  # dates from today: they never go stale


def flash_after(client, response) -> str:
    """Follow a 303 and return the flash messages shown on the page it leads to."""
    assert response.status_code == 303, response.text
    page = client.get(response.headers["location"]).text
    return " ".join(htmllib.unescape(m) for m in re.findall(r'<div class="flash flash-\w+"[^>]*>([^<]*)</div>', page))


def post(client, path, **data):
    page = client.get(path.rsplit("/", 1)[0] if path.endswith(("/approve", "/complete", "/cancel",
                                                                 "/reschedule", "/retrigger")) else path)
    return client.post(path, data={"csrf_token": csrf_of(page.text), **data})


def test_actions_on_a_stale_or_final_change_explain_themselves(web):
    cid = web.submit("alice")
    bob = web.login("bob")
    web.lifecycle.transition(cid, "update", actor="alice", params={"testPlan": "ping"})      # now v2
    r = post(bob, f"/changes/{cid}/approve", version="1")
    msg = flash_after(bob, r)
    assert "Nothing was done: this change was modified while you were looking at it (updated by alice)" in msg
    assert web.lifecycle.show(cid)["status"] == "submitted"
    r = post(bob, f"/changes/{cid}/complete", version="2")
    assert "Not possible: cannot complete a change that is submitted" in flash_after(bob, r)
    r = post(bob, f"/changes/{cid}/reschedule", version="2", start=f"{D9}T04:00", end=f"{D9}T03:00",
             timezone="America/New_York")
    assert "must be after the start" in flash_after(bob, r)
    r = post(bob, f"/changes/{cid}/reschedule", version="2", start=f"{D9}T02:00", end=f"{D9}T03:00",
             timezone="America/New_York", note="freeze")
    assert "Rescheduled; notifying " in flash_after(bob, r)
    assert web.lifecycle.show(cid)["schedule"]["implementationStart"] == at(D9, "02:00", "America/New_York")
    r = post(bob, f"/changes/{cid}/cancel", version="3")
    assert "Cancelled; notifying " in flash_after(bob, r)
    page = bob.get(f"/changes/{cid}").text
    assert "This change is cancelled: nothing more happens to it." in page
    r = post(bob, f"/changes/{cid}/frobnicate", version="4")
    assert r.status_code == 404
    assert bob.get("/changes/CHG-does-not-exist").status_code == 404
    r = post(bob, f"/changes/{cid}/retrigger")
    assert "Notifications queued again" in flash_after(bob, r)


def test_editing_is_for_submitted_changes_and_their_owner(web):
    cid = web.submit("alice")
    carol = web.login("carol")                          # a submitter who is not the owner...
    r = carol.get(f"/changes/{cid}/edit")
    assert r.status_code == 200                          # ...but also an approver: approvers may edit
    alice2 = web.login("alice")
    other = web.submit("carol")
    r = alice2.get(f"/changes/{other}/edit")
    assert r.status_code == 403 and "Only the submitter (carol)" in htmllib.unescape(r.text)
    r = alice2.post(f"/changes/{other}/edit", data={"csrf_token": csrf_of(r.text), "version": "1",
                                                    "title": "hijack", "customers": ["hts"], "start": f"{D8}T02:00",
                                                    "end": f"{D8}T04:00", "timezone": "UTC"})
    assert r.status_code == 403
    web.lifecycle.transition(cid, "approve", actor="bob")
    r = alice2.get(f"/changes/{cid}/edit")
    assert "its content can no longer be edited. You can still reschedule or cancel it." in flash_after(alice2, r)


def test_edit_form_inline_errors_nothing_changed_and_conflicts(web):
    cid = web.submit("alice", title="Conflict base")
    alice = web.login("alice")
    page = alice.get(f"/changes/{cid}/edit").text
    base = htmllib.unescape(re.search(r'name="base" value="([^"]*)"', page).group(1))
    form = {"csrf_token": csrf_of(page), "version": "1", "base": base, "title": "Conflict base",
            "customers": ["hts", "htsnonprod"], "start": f"{D8}T02:00", "end": f"{D8}T04:00",
            "timezone": "America/New_York", "reason": "Security fixes", "meeting_required": "1"}
    form["title"] = web.lifecycle.show(cid)["title"]
    r = alice.post(f"/changes/{cid}/edit", data=form)
    assert "Nothing changed, so nothing was saved." in flash_after(alice, r)
    r = alice.post(f"/changes/{cid}/edit", data={**form, "end": f"{D8}T01:00"})
    assert r.status_code == 422 and "must be after" in htmllib.unescape(r.text)
    r = alice.post(f"/changes/{cid}/edit", data={**form, "timezone": "Mars/Base"})
    assert r.status_code == 422 and 'id="err-timezone"' in r.text
    # bob changes the reason meanwhile; alice changes it too: a conflict, shown at the field
    web.lifecycle.transition(cid, "update", actor="bob", params={"reason": "Bob's reason"})
    r = alice.post(f"/changes/{cid}/edit", data={**form, "reason": "Alice's reason"})
    text = htmllib.unescape(r.text)
    assert r.status_code == 409 and "Nothing was saved" in text
    assert "Also changed meanwhile; it is now \u201cBob's reason\u201d" in text
    assert ">Alice's reason</textarea>" in text


def test_forms_refuse_people_without_the_role(web):
    victor = web.login("victor")
    r = victor.get("/changes/new")
    assert r.status_code == 403 and "Writing changes needs the submitter or admin role" in r.text
    assert 'fieldset disabled' in r.text
    r = victor.post("/changes/new", data={"csrf_token": csrf_of(r.text), "action": "submit",
                                          "title": "t", "customers": ["hts"], "start": f"{D8}T02:00",
                                          "end": f"{D8}T04:00", "timezone": "UTC"})
    assert r.status_code == 403
    did = web.bearer("alice").post("/api/drafts", json={"title": "Alice's draft"}).json()["changeId"]
    carol = web.login("carol")
    page = carol.get(f"/drafts/{did}")
    assert page.status_code == 200 and "belongs to alice" in page.text
    r = carol.post(f"/drafts/{did}", data={"csrf_token": csrf_of(page.text), "action": "delete"})
    assert r.status_code == 403
    assert web.bearer("alice").get(f"/api/drafts/{did}").status_code == 200


def test_new_change_and_draft_forms(web):
    alice = web.login("alice")
    page = alice.get("/changes/new").text
    form = {"csrf_token": csrf_of(page), "title": "Form change", "customers": ["hts"], "start": f"{D8}T02:00",
            "end": f"{D8}T04:00", "timezone": "Nowhere/Land"}
    r = alice.post("/changes/new", data={**form, "action": "submit"})
    assert r.status_code == 422 and "Unknown time zone" in htmllib.unescape(r.text)
    assert 'value="Form change"' in r.text                       # what was typed stays
    r = alice.post("/changes/new", data={**form, "timezone": "Europe/Paris", "action": "draft"})
    assert "Draft saved" in flash_after(alice, r)
    did = r.headers["location"].rsplit("/", 1)[1]
    assert web.bearer("alice").get(f"/api/drafts/{did}").json()["schedule"]["implementationStart"] == \
        at(D8, "02:00", "Europe/Paris")
    page = alice.get(f"/drafts/{did}").text
    r = alice.post(f"/drafts/{did}", data={**form, "csrf_token": csrf_of(page), "timezone": "Europe/Paris",
                                           "title": "", "action": "submit"})
    assert r.status_code == 422 and 'id="err-title"' in r.text
    r = alice.post(f"/drafts/{did}", data={**form, "csrf_token": csrf_of(page), "timezone": "Europe/Paris",
                                           "action": "submit"})
    assert "Submitted for approval" in flash_after(alice, r)
    assert web.lifecycle.show(did)["status"] == "submitted"
    other = alice.post("/changes/new", data={"csrf_token": csrf_of(page), "title": "scrap", "action": "draft"})
    oid = other.headers["location"].rsplit("/", 1)[1]
    r = alice.post(f"/drafts/{oid}", data={"csrf_token": csrf_of(page), "action": "delete"})
    assert "deleted" in flash_after(alice, r)
    assert alice.get(f"/drafts/{oid}").status_code == 404


def test_account_token_logout_and_docs(web):
    admin = web.login("admin", form=True)
    page = admin.get("/account").text
    r = admin.post("/account/token", data={"csrf_token": csrf_of(page), "days": "1"})
    token = re.search(r'id="api-token"[^>]*>([^<]+)</textarea>', r.text).group(1)
    assert r.headers["cache-control"] == "no-store"
    assert web.anonymous().get("/api/me", headers={"Authorization": f"Bearer {token}"}).json()["username"] == "admin"
    listed = admin.get("/account").text
    revoke = re.findall(r'action="(/account/token/[^"]+/revoke)"', listed)
    assert revoke, "the account page lists the token"
    for action in revoke:
        assert admin.post(action, data={"csrf_token": csrf_of(listed)}).headers["location"] == "/account"
    assert "The token was revoked" in admin.get("/account").text
    assert web.anonymous().get("/api/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert "Sign out?" in admin.get("/logout").text
    r = admin.post("/logout", data={"csrf_token": csrf_of(page)})
    assert r.headers["location"] == "/login?out=1"
    assert admin.get("/api/me").status_code == 401
    assert "You are signed out." in admin.get("/login?out=1").text
    r = web.bearer("admin").post("/account/token", data={"days": "1"})
    assert r.status_code == 403 and "signed-in session" in r.text      # a token does not mint tokens
    docs = web.anonymous().get("/docs").text
    assert "/api/changes/{change_id}/approve" in docs and "If-Match" in docs


def test_bad_list_parameters_are_explained_on_the_page(web):
    victor = web.login("victor")
    r = victor.get("/changes", params={"date_from": "soon"})
    assert r.status_code == 200 and "from: &#39;soon&#39; is not a date" in r.text
    assert "status: &#39;nope&#39; is not a status" in victor.get("/changes", params={"status": "nope"}).text
    assert "unknown customer" in victor.get("/changes", params={"customer": "zz"}).text
    r = victor.get("/approvals", params={"cursor": "!!"})
    assert r.status_code == 422 and "not a cursor from this API" in r.text
