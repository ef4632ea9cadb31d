"""Review, time and the phone layout, in headless Chromium (Debian's package, through Playwright).

Screenshots go to .ttr/screenshots/ (20-... onwards) for a human to look at.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest

from tests.conftest import SAMPLE_CHANGE
from tests.web.conftest import shot, sign_in

pytestmark = pytest.mark.browser


@pytest.fixture()
def open_page(browser, web):
    """``open_page(user, width=1280, zone=None)``: a signed-in page in its own context."""
    contexts = []

    def make(user: str, *, width: int = 1280, zone: str | None = None):
        opts = {"base_url": web.url, "viewport": {"width": width, "height": 900}, "locale": "en-GB"}
        if zone:
            opts["timezone_id"] = zone
        ctx = browser.new_context(**opts)
        ctx.set_default_timeout(10_000)
        contexts.append(ctx)
        page = ctx.new_page()
        page.on("dialog", lambda d: d.accept())
        sign_in(page, user)
        return page

    yield make
    for ctx in contexts:
        ctx.close()


def test_request_changes_reaches_the_submitter_who_updates_then_it_is_approved(open_page, web):
    title = f"Review in the browser {uuid.uuid4().hex[:6]}"
    change_id = web.submit("alice", title=title)
    bob = open_page("bob")
    bob.goto(f"/changes/{change_id}")
    bob.fill("#comment", "Please name the gateways and add a rollback plan.")
    bob.click("button[data-action=request-changes]")
    bob.wait_for_url(f"**/changes/{change_id}*")
    assert "Sent back to the submitter" in bob.locator(".flash-ok").inner_text()
    assert "Please name the gateways" in bob.locator("#review").inner_text()
    shot(bob, "20-changes-requested-reviewer")

    alice = open_page("alice")
    alice.goto("/")
    line = alice.locator("li", has_text=title).locator("[data-request]")
    assert "changes requested by bob" in line.inner_text().lower()
    assert "Please name the gateways" in line.inner_text()
    shot(alice, "21-dashboard-changes-requested")
    alice.click(f"text={title}")
    alice.wait_for_url(f"**/changes/{change_id}")
    assert "Changes requested by bob" in alice.locator("#open-request").inner_text()
    shot(alice, "22a-change-with-request-submitter")
    alice.locator("#open-request a", has_text="edit it now").click()
    alice.wait_for_url(f"**/changes/{change_id}/edit")
    alice.fill("#rollbackPlan", "Reinstall the previous firmware from the backup slot.")
    alice.click("button[value=update]")
    alice.wait_for_url(f"**/changes/{change_id}")
    assert alice.locator("#open-request").count() == 0
    alice.fill("#comment", "Done: rollback plan added.")
    alice.click("button[data-action=comment]")
    alice.wait_for_url(f"**/changes/{change_id}*")
    shot(alice, "22b-updated-after-review")

    bob.goto(f"/changes/{change_id}")
    assert "Done: rollback plan added." in bob.locator("#review").inner_text()
    bob.click("button[data-action=approve]")
    bob.wait_for_url(f"**/changes/{change_id}")
    assert bob.locator(".badge").first.text_content() == "approved"
    assert bob.locator("button[data-action=request-changes]").count() == 0    # approved: nothing to send back
    complete = bob.locator("button[data-action=complete]")
    assert "btn-primary" not in (complete.get_attribute("class") or "")       # weeks early: not the main action
    assert "has not started yet" in complete.get_attribute("data-confirm")
    shot(bob, "23-approved-after-review")
    history = web.lifecycle.show(change_id)["modifications"]
    assert [m["type"] for m in history] == ["submitted", "changes_requested", "updated", "comment", "approved"]


def _expected(zone: str) -> str:
    from zoneinfo import ZoneInfo

    start = datetime.fromisoformat(SAMPLE_CHANGE["schedule"]["implementationStart"]).astimezone(ZoneInfo(zone))
    return f"{start.day} {start:%b %Y}, {start:%H:%M}"


@pytest.mark.parametrize("zone", ["Europe/Paris", "Asia/Tokyo"])
def test_the_window_shows_in_the_viewers_zone_with_the_changes_zone_and_utc(open_page, web, zone):
    change_id = web.submit("alice", title=f"Time zones {zone}")
    page = open_page("victor", zone=zone)
    page.goto(f"/changes/{change_id}")
    local = page.locator("#when-local").inner_text()
    assert _expected(zone) in local and f"your zone, {zone}" in local, local
    assert page.locator("#when-own").inner_text().startswith("In America/New_York, the change's zone:")
    assert "02:00" in page.locator("#when-own").inner_text()
    assert page.locator("#when-utc").inner_text().startswith("UTC:") and "UTC" in page.locator("#when-utc").inner_text()
    assert page.locator("#phase").inner_text().startswith("Starts in ")
    shot(page, f"24-window-{zone.replace('/', '-')}")


def test_pages_fit_a_390px_phone_without_horizontal_scroll(open_page, web):
    change_id = web.submit("alice", title="A change with a long title that has to wrap on a phone screen")
    web.lifecycle.transition(change_id, "approve", actor="bob")
    web.simulate_delivery(change_id, emails=2)
    page = open_page("bob", width=390)
    for path, name in ((f"/changes/{change_id}", "25-phone-change"), ("/", "26-phone-dashboard"),
                       ("/changes", "27-phone-changes"), ("/approvals", "28-phone-approvals"),
                       ("/changes/new", "29-phone-new-change"), ("/drafts", "30-phone-drafts"),
                       ("/account", "31-phone-account"), ("/docs", "32-phone-api-docs"),
                       ("/changes/CHG-missing", "33-phone-not-found")):
        page.goto(path)
        widths = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        shot(page, name)
        assert widths[0] <= widths[1], f"{path}: {widths[0]} px wide on a {widths[1]} px screen"
        nav = page.locator("nav.mainnav a").last.bounding_box()
        assert nav["x"] + nav["width"] <= 390, f"{path}: the navigation is cut off"
