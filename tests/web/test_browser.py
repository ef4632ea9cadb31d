"""The portal in headless Chromium (Debian's package, driven by Playwright), as people use it.

Each page is screenshotted into .ttr/screenshots/ for a human to look at.
"""

from __future__ import annotations

import re
import uuid

import pytest

from tests.conftest import day
from tests.web.conftest import shot, sign_in

D8, D9 = day(8), day(9)  # dates from today: they never go stale

pytestmark = pytest.mark.browser


def fill_change(page, title: str, *, customers=("hts", "htsnonprod"), meeting: bool = True) -> None:
    page.fill("#title", title)
    for c in customers:
        page.check(f"input[name=customers][value={c}]")
    page.fill("#start", f"{D8}T02:00")
    page.fill("#end", f"{D8}T04:00")
    page.fill("#timezone", "America/New_York")
    page.fill("#reason", "Security fixes for the <VPN> appliance firmware.")
    page.fill("#implementationPlan", "1. Fail over.\n2. Upgrade the primary.\n3. Fail back.")
    page.fill("#snow", "CHG0031337")
    if meeting:
        page.check("input[name=meeting_required]")


def test_draft_submit_approve_and_watch_delivery_and_meeting_appear(new_page, web):
    title = f"Patch the shared VPN gateways {uuid.uuid4().hex[:6]}"
    # alice: signs in, sees the dashboard, writes a change
    page = new_page()
    page.goto("/")
    assert "/login" in page.url
    shot(page, "01-login")
    sign_in(page, "alice")
    assert page.locator("h1").inner_text().startswith("Hello, alice")
    shot(page, "02-dashboard")

    page.click("text=+ New change")
    page.wait_for_url("**/changes/new")
    page.fill("#timezone", "")
    page.click("button[value=submit]")                  # nothing filled in: inline errors
    assert page.locator("#err-title").inner_text() == "A title is required"
    assert page.locator("#err-customers").inner_text() == "Pick at least one customer"
    assert page.locator(".has-error #start").count() == 1
    shot(page, "03-new-change-errors")

    fill_change(page, title)
    page.click("button[value=draft]")                   # save as draft first
    page.wait_for_url(re.compile(r"/drafts/CHG-"))
    assert "Draft saved" in page.locator(".flash-ok").inner_text()
    assert page.input_value("#title") == title
    shot(page, "04-draft")

    page.click("button[value=submit]")
    page.wait_for_url(re.compile(r"/changes/CHG-[0-9a-f-]+$"))
    change_id = page.url.rsplit("/", 1)[1]
    assert "Submitted for approval" in page.locator(".flash-ok").inner_text()
    assert page.locator(".badge").first.text_content() == "submitted"
    assert "<VPN>" in page.locator(".prose").first.inner_text()    # markup shown as text
    assert page.locator("button[data-action=approve]").count() == 0  # a submitter has no approve
    shot(page, "05-detail-submitted")

    # bob: the approvals queue, approve
    bob = new_page("bob")
    bob.goto("/approvals")
    row = bob.locator("tr", has_text=title)
    assert row.count() == 1
    shot(bob, "06-approvals")
    row.locator("a", has_text="Review").click()
    bob.wait_for_url(f"**/changes/{change_id}")
    bob.click("button[data-action=approve]")
    bob.wait_for_url(f"**/changes/{change_id}")
    assert "Approved; notifying HTS Production, HTS Non-Production." in bob.locator(".flash-ok").inner_text()
    assert bob.locator(".badge").first.text_content() == "approved"
    assert bob.locator("tr[data-customer=hts]").get_attribute("data-state") == "pending"
    assert "Being scheduled" in bob.locator("#meeting").inner_text()
    shot(bob, "07-detail-approved-pending")

    # the runtime processes it: the page updates by itself
    web.simulate_delivery(change_id, emails=3)
    bob.wait_for_selector("#join-link", timeout=15_000)
    for code in ("hts", "htsnonprod"):
        row = bob.locator(f"tr[data-customer={code}]")
        assert row.get_attribute("data-state") == "delivered"
        assert row.locator(".big-n").inner_text() == "6"
    assert bob.get_attribute("#join-link", "href") == "https://teams.example.com/l/meetup-join/abc"
    bob.locator("details.recipients summary").first.click()
    first = bob.locator("details.recipients").first
    assert "5 contacts: 3 told, 2 not" in first.locator("summary").inner_text()
    assert "not told: unsubscribed from everything" in first.inner_text()
    shot(bob, "08-detail-delivered-with-meeting")
    bob.set_viewport_size({"width": 390, "height": 844})
    shot(bob, "08b-detail-delivered-phone")
    bob.set_viewport_size({"width": 1280, "height": 900})

    # search finds it; the list shows it approved with its meeting
    bob.fill("input[name=q]", title.split()[-1])
    bob.press("input[name=q]", "Enter")
    bob.wait_for_url(re.compile(r"/changes\?q="))
    assert bob.locator("td.cell-title a").all_inner_texts() == [title]
    shot(bob, "09-search")


def test_stale_edit_gets_a_friendly_message_and_keeps_the_edits(new_page, web):
    change_id = web.submit("alice", title="Stale edit")
    page = new_page("alice")
    page.goto(f"/changes/{change_id}/edit")
    page.fill("#title", "My better title")
    # meanwhile an admin edits the same change
    web.lifecycle.transition(change_id, "update", actor="admin", params={"testPlan": "Ping every site."})
    page.click("button[value=update]")
    warning = page.locator("#stale-warning")
    assert "Someone else changed this change while you were editing it. Nothing was saved." in warning.inner_text()
    assert "by admin" in warning.inner_text()
    assert page.input_value("#title") == "My better title"            # the edits are kept...
    assert page.input_value("#testPlan") == "Ping every site."        # ...on top of the other one
    assert page.locator(".field-note").count() == 0                    # no field changed by both
    shot(page, "10-stale-edit")
    assert web.lifecycle.show(change_id)["title"].startswith("Stale edit")
    page.click("button[value=update]")                                 # saving again now works
    page.wait_for_url(f"**/changes/{change_id}")
    after = web.lifecycle.show(change_id)
    assert (after["title"], after["testPlan"], after["version"]) == ("My better title", "Ping every site.", 3)
    assert page.locator("h1").inner_text() == "My better title"


def test_viewer_cannot_approve(new_page, web):
    change_id = web.submit("alice", title="Viewer looks")
    page = new_page("victor")
    page.goto(f"/changes/{change_id}")
    assert page.locator("button[data-action=approve]").count() == 0
    assert "acting on it needs the submitter or approver role" in page.locator("#readonly").inner_text()
    shot(page, "11-viewer-detail")
    page.goto("/approvals")
    assert page.locator("tr", has_text="Viewer looks").locator("button", has_text="Approve").count() == 0
    # a hand-made POST with a valid CSRF token is refused too
    csrf = page.locator("input[name=csrf_token]").first.get_attribute("value")
    r = page.request.post(f"/changes/{change_id}/approve", form={"csrf_token": csrf, "version": "1"})
    assert r.status == 403
    assert web.lifecycle.show(change_id)["status"] == "submitted"


def test_submitter_cannot_approve_their_own_change(new_page, web):
    page = new_page("carol")                      # carol is submitter AND approver
    page.goto("/changes/new")
    fill_change(page, f"Carol's own {uuid.uuid4().hex[:6]}", meeting=False)
    page.click("button[value=submit]")
    page.wait_for_url(re.compile(r"/changes/CHG-[0-9a-f-]+$"))
    change_id = page.url.rsplit("/", 1)[1]
    assert page.locator("button[data-action=approve]").is_disabled()
    assert "another approver must approve it" in page.locator("[data-blocked=approve]").inner_text()
    shot(page, "12-four-eyes")
    csrf = page.locator("input[name=csrf_token]").first.get_attribute("value")
    r = page.request.post(f"/changes/{change_id}/approve", form={"csrf_token": csrf, "version": "1"})
    assert r.status == 403 and "four-eyes" in r.text()
    assert web.lifecycle.show(change_id)["status"] == "submitted"


def test_pages_need_a_session_and_forged_cookies_are_refused(new_page, web):
    page = new_page()
    for path in ("/", "/changes", "/approvals", "/account", f"/changes/{web.submit('alice')}"):
        page.goto(path)
        assert re.search(r"/login(\?next=.*)?$", page.url), path
    page.context.add_cookies([{"name": "ttr_session", "value": "eyJ1c2VyIjogeyJuYW1lIjogImFkbWluIn19.forged.sig",
                               "url": web.url}])
    page.goto("/")
    assert "/login" in page.url
    sign_in(page, "alice")
    page.goto("/no/such/page")
    assert page.locator(".error-code").inner_text() == "404"
    shot(page, "13-not-found")


def test_other_pages_render(new_page, web):
    page = new_page("admin")
    for path, name, heading in (("/changes", "14-changes", "Changes"), ("/drafts", "15-drafts", "My drafts"),
                                ("/account", "16-account", "Your account"), ("/docs", "17-api-docs", "ttr portal API")):
        page.goto(path)
        assert page.locator("h1").first.inner_text() == heading
        shot(page, name)
    page.goto("/account")
    page.click("button:has-text('Create a token')")
    token = page.input_value("#api-token")
    assert token.startswith("ttr1.")
    r = page.request.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert r.json()["username"] == "admin"
    # the token is listed and revoked from the page (also at phone width)
    page.goto("/account")
    assert page.locator("table button:has-text('Revoke')").count() >= 1
    shot(page, "16b-account-tokens")
    page.set_viewport_size({"width": 390, "height": 844})
    shot(page, "16c-account-tokens-390")
    for _ in range(page.locator("table button:has-text('Revoke')").count()):
        page.locator("table button:has-text('Revoke')").first.click()
        page.wait_for_url("**/account")
    assert "The token was revoked" in page.content()
    r = page.request.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status == 401
