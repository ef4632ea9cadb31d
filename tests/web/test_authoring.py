"""Writing and reviewing changes through the API and the portal's forms: every refusal is a 422
naming the field with nothing written; a request for changes tells nobody outside."""

from __future__ import annotations

import html as htmllib

import pytest

from tests.conftest import day, window
from tests.web.conftest import csrf_of
from tests.web.test_api import etag
from tests.web.test_pages import flash_after, post

D8 = day(8)


def _refused(web, response, field: str, fragment: str, before: dict) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["field"] == field and fragment in body["message"], body
    assert web.stack.snapshot() == before


# --- the API ----------------------------------------------------------------------------------

@pytest.mark.parametrize("over, field, fragment", [
    ({"schedule": window(-2)}, "schedule.implementationStart", "is in the past"),
    ({"schedule": {**window(8), "implementationEnd": window(8)["implementationStart"]}},
     "schedule.implementationEnd", "must be after the start"),
    ({"rolbackPlan": "undo"}, "rolbackPlan", "did you mean rollbackPlan?"),
    ({"schedule": {**window(8), "timeZone": "UTC"}}, "schedule.timeZone", "did you mean schedule.timezone?"),
])
def test_api_submit_refusals_name_the_field_and_write_nothing(web, over, field, fragment):
    alice = web.bearer("alice")
    before = web.stack.snapshot()
    _refused(web, alice.post("/api/changes", json=web.content(**over)), field, fragment, before)


def test_api_allow_past_records_a_change_after_the_fact(web):
    alice = web.bearer("alice")
    r = alice.post("/api/changes?allowPast=true", json=web.content(schedule=window(-2)))
    assert r.status_code == 201, r.text
    assert web.lifecycle.show(r.json()["changeId"])["schedule"] == window(-2)


def test_api_update_reschedule_and_complete_refusals(web):
    alice, bob = web.bearer("alice"), web.bearer("bob")
    cid = web.submit("alice")
    before = web.stack.snapshot()
    tag = etag(alice, cid)
    _refused(web, alice.post(f"/api/changes/{cid}/update", headers={"If-Match": tag},
                             json={"schedule": window(-1)}), "schedule.implementationStart", "in the past", before)
    _refused(web, alice.post(f"/api/changes/{cid}/update", headers={"If-Match": tag},
                             json={"title": "ok", "testPlna": "x"}), "testPlna", "did you mean testPlan?", before)
    past = window(-1)
    _refused(web, alice.post(f"/api/changes/{cid}/reschedule", headers={"If-Match": tag},
                             json={"start": past["implementationStart"], "end": past["implementationEnd"]}),
             "schedule.implementationStart", "in the past", before)
    r = alice.post(f"/api/changes/{cid}/reschedule?allowPast=true", headers={"If-Match": tag},
                   json={"start": past["implementationStart"], "end": past["implementationEnd"]})
    assert r.status_code == 200, r.text
    r = alice.post(f"/api/changes/{cid}/reschedule", headers={"If-Match": r.headers["etag"]},
                   json={"start": window(5)["implementationStart"], "end": window(5)["implementationEnd"]})
    r = bob.post(f"/api/changes/{cid}/approve", headers={"If-Match": r.headers["etag"]})
    assert r.status_code == 200, r.text
    before = web.stack.snapshot()
    _refused(web, alice.post(f"/api/changes/{cid}/complete", headers={"If-Match": r.headers["etag"]}),
             "beforeStart", "the window has not started yet", before)
    r = alice.post(f"/api/changes/{cid}/complete?beforeStart=true", headers={"If-Match": r.headers["etag"]})
    assert r.status_code == 200 and r.json()["status"] == "completed"


def test_api_drafts_refuse_unknown_fields(web):
    alice = web.bearer("alice")
    before = web.stack.snapshot()
    _refused(web, alice.post("/api/drafts", json={"title": "t", "custmers": ["hts"]}), "custmers",
             "did you mean customers?", before)


def test_api_request_changes_and_comments(web):
    alice, bob, victor = web.bearer("alice"), web.bearer("bob"), web.bearer("victor")
    cid = web.submit("alice")
    tag = etag(bob, cid)
    before = web.stack.snapshot()
    r = bob.post(f"/api/changes/{cid}/request-changes", json={"comment": "Add a rollback plan"})
    assert r.status_code == 428
    _refused(web, bob.post(f"/api/changes/{cid}/request-changes", headers={"If-Match": tag}, json={"comment": " "}),
             "comment", "a comment is required", before)
    _refused(web, bob.post(f"/api/changes/{cid}/request-changes", headers={"If-Match": tag}, json={}),
             "comment", "a comment is required", before)
    r = alice.post(f"/api/changes/{cid}/request-changes", headers={"If-Match": tag}, json={"comment": "x"})
    assert r.status_code == 403                                            # the submitter's own change
    assert victor.post(f"/api/changes/{cid}/comments", json={"comment": "x"}).status_code == 403
    assert web.stack.snapshot() == before
    triggers = {k: v for k, v in before.items() if k.startswith("customers/")}

    r = bob.post(f"/api/changes/{cid}/request-changes", headers={"If-Match": tag},
                 json={"comment": "Add a rollback plan <please>"})
    assert r.status_code == 201, r.text
    assert (r.json()["type"], r.json()["actor"], r.json()["version"]) == ("changes_requested", "bob", 1)
    after = web.stack.snapshot()
    assert {k: v for k, v in after.items() if k.startswith("customers/")} == triggers   # nobody told
    change = web.lifecycle.show(cid)
    assert (change["status"], change["version"]) == ("submitted", 1)
    assert alice.post(f"/api/changes/{cid}/comments", json={"comment": "Will do"}).status_code == 201
    review = alice.get(f"/api/changes/{cid}/comments").json()
    assert [i["type"] for i in review["items"]] == ["changes_requested", "comment"]
    assert review["openRequest"]["comment"] == "Add a rollback plan <please>"
    listed = alice.get("/api/changes", params={"q": cid}).json()["items"][0]
    assert listed["changesRequested"]["actor"] == "bob"
    # updating answers the request; a stale reviewer is refused
    r = alice.post(f"/api/changes/{cid}/update", headers={"If-Match": etag(alice, cid)},
                   json={"rollbackPlan": "Reinstall the previous firmware"})
    assert r.status_code == 200
    assert alice.get(f"/api/changes/{cid}/comments").json()["openRequest"] is None
    r = bob.post(f"/api/changes/{cid}/request-changes", headers={"If-Match": tag}, json={"comment": "again"})
    assert r.status_code == 412
    r = bob.post(f"/api/changes/{cid}/approve", headers={"If-Match": etag(bob, cid)})
    assert r.status_code == 200
    r = bob.post(f"/api/changes/{cid}/request-changes", headers={"If-Match": etag(bob, cid)}, json={"comment": "x"})
    assert r.status_code == 409


def test_openapi_describes_review_and_the_window_flags(web):
    spec = web.anonymous().get("/openapi.json").json()
    assert "/api/changes/{change_id}/request-changes" in spec["paths"]
    assert {"get", "post"} <= set(spec["paths"]["/api/changes/{change_id}/comments"])
    params = {p["name"] for p in spec["paths"]["/api/changes/{change_id}/complete"]["post"]["parameters"]}
    assert "beforeStart" in params
    params = {p["name"] for p in spec["paths"]["/api/changes"]["post"].get("parameters", [])}
    assert "allowPast" in params


# --- the portal's forms -------------------------------------------------------------------------

def test_portal_form_refuses_a_past_start_inline_and_allows_it_when_asked(web):
    alice = web.login("alice")
    page = alice.get("/changes/new").text
    past = day(-3)
    form = {"csrf_token": csrf_of(page),
            "title": "Recorded late", "customers": ["hts"], "start": f"{past}T02:00", "end": f"{past}T04:00",
            "timezone": "UTC", "action": "submit"}
    before = web.stack.snapshot()
    r = alice.post("/changes/new", data=form)
    text = htmllib.unescape(r.text)
    assert r.status_code == 422 and 'id="err-start"' in r.text and "is in the past" in text
    assert web.stack.snapshot() == before
    r = alice.post("/changes/new", data={**form, "allow_past": "1"})
    assert r.status_code == 303 and "Submitted for approval" in flash_after(alice, r)


def test_portal_complete_before_the_window_needs_the_confirmation(web):
    cid = web.submit("alice")
    web.lifecycle.transition(cid, "approve", actor="bob")
    bob = web.login("bob")
    page = bob.get(f"/changes/{cid}").text
    assert 'name="before_start"' in page and "has not started yet" in htmllib.unescape(page)
    assert "Starts in " in page
    before = web.stack.snapshot()
    r = post(bob, f"/changes/{cid}/complete", version="2")
    assert "the window has not started yet" in flash_after(bob, r).lower()
    assert web.stack.snapshot() == before
    r = post(bob, f"/changes/{cid}/complete", version="2", before_start="1")
    assert "Marked completed" in flash_after(bob, r)


def test_portal_request_changes_needs_a_comment_and_shows_on_the_dashboard(web):
    title = f"Review me {day(0)}"
    cid = web.submit("alice", title=title)
    bob, alice = web.login("bob"), web.login("alice")
    before = web.stack.snapshot()
    r = post(bob, f"/changes/{cid}/request-changes", version="1", comment="")
    assert "A comment is required" in flash_after(bob, r) and web.stack.snapshot() == before
    r = post(bob, f"/changes/{cid}/request-changes", version="1", comment="Say which gateway <first>")
    assert "Sent back to the submitter" in flash_after(bob, r)
    dash = alice.get("/").text
    assert "changes requested" in dash and "Say which gateway &lt;first&gt;" in dash
    detail = alice.get(f"/changes/{cid}").text
    assert 'id="open-request"' in detail and "Changes requested by bob" in detail
    queue = bob.get("/approvals").text
    row = queue[queue.index(title):][:1500]
    assert "changes requested</span> by bob" in row


# --- words people read ----------------------------------------------------------------------------

def test_pages_speak_in_names_not_internal_keys(web):
    cid = web.submit("alice")
    web.lifecycle.transition(cid, "approve", actor="bob")
    web.simulate_delivery(cid, emails=2)
    bob = web.login("bob")
    page = htmllib.unescape(bob.get(f"/changes/{cid}").text)
    headline = page.split('<details class="tl-raw')[0]              # the page without the history's details
    for internal in ("ttr runtime", "ttr-runtime", "aws-announce", "aws-approval", "→ version", "archive/",
                     'class="chip" data-code="hts">hts<'):
        assert internal not in headline, internal
    assert "HTS Production" in page and "Change announcements" in page and "Change approvals" in page
    assert "recorded by ttr-runtime" in page and "version 2" in page   # kept in the history's details
    assert "aws-announce" in bob.get(f"/api/changes/{cid}/delivery").text   # and in the API


def test_a_friendly_404_for_a_change_that_does_not_exist(web):
    alice = web.login("alice")
    r = alice.get("/changes/CHG-nothing-here")
    text = htmllib.unescape(r.text)
    assert r.status_code == 404 and "There is no change CHG-nothing-here" in text
    assert "archive/" not in text and 'href="/changes"' in text
    api = web.bearer("alice").get("/api/changes/CHG-nothing-here")
    assert api.status_code == 404 and api.json()["error"] == "not_found"
