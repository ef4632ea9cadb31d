"""Announcements in the portal: the API (four-eyes, ETags/If-Match, pagination, roles, CSRF), the
pages, and in headless Chromium: write, approve as a second user, watch the delivery that the
real handler (TriggerHandler -> SES on the moto server) produces."""

from __future__ import annotations

import re
import uuid

import pytest

from tests.conftest import wait_for
from tests.web.conftest import csrf_of, shot


def ann(**over) -> dict:
    return {"type": "finops", "title": f"Cost review {uuid.uuid4().hex[:8]}", "customers": ["hts", "htsnonprod"],
            "summary": "Your Q4 spend <in short>.", "content": "The details.",
            "links": [{"title": "Report", "url": "https://example.com/q4"}], **over}


def test_api_submit_approve_with_four_eyes_etags_and_roles(web):
    alice, bob, victor = web.login("alice"), web.login("bob"), web.login("victor")
    r = victor.post("/api/announcements", json=ann())
    assert r.status_code == 403
    r = alice.post("/api/announcements", json={**ann(), "sumary": "x"})
    assert r.status_code == 422 and r.json()["field"] == "sumary" and "did you mean summary" in r.json()["message"]
    r = alice.post("/api/announcements", json=ann(links=[{"url": "javascript:alert(1)"}]))
    assert r.status_code == 422 and r.json()["field"].startswith("links")
    r = alice.post("/api/announcements", json=ann())
    assert r.status_code == 201, r.text
    ann_id = r.json()["changeId"]
    assert ann_id.startswith("ANN-") and r.headers["Location"] == f"/api/announcements/{ann_id}"

    got = bob.get(f"/api/announcements/{ann_id}")
    assert got.status_code == 200 and got.json()["kind"] == "announcement"
    etag = got.headers["ETag"]
    assert bob.get(f"/api/announcements/{ann_id}", headers={"If-None-Match": etag}).status_code == 304
    assert bob.post(f"/api/announcements/{ann_id}/approve").status_code == 428          # no If-Match
    assert alice.post(f"/api/announcements/{ann_id}/approve", headers={"If-Match": etag}).status_code == 403
    r = victor.post(f"/api/announcements/{ann_id}/approve", headers={"If-Match": etag})
    assert r.status_code == 403
    assert bob.post(f"/api/announcements/{ann_id}/approve", headers={"If-Match": '"v7"'}).status_code == 412
    no_csrf = web.login("bob")
    no_csrf.headers.pop("X-CSRF-Token")
    assert no_csrf.post(f"/api/announcements/{ann_id}/approve", headers={"If-Match": etag}).status_code == 403
    r = bob.post(f"/api/announcements/{ann_id}/approve", headers={"If-Match": etag}, json={"note": "go"})
    assert r.status_code == 200 and r.json()["status"] == "approved" and r.json()["version"] == 2
    etag2 = r.headers["ETag"]
    assert bob.post(f"/api/announcements/{ann_id}/approve", headers={"If-Match": etag2}).status_code == 409
    # a change is not an announcement, and the changes list does not show announcements
    change_id = web.submit()
    assert bob.get(f"/api/announcements/{change_id}").status_code == 404
    assert bob.post(f"/api/announcements/{change_id}/approve", headers={"If-Match": "*"}).status_code == 404
    ids = [i["changeId"] for i in bob.get("/api/changes", params={"limit": 200}).json()["items"]]
    assert change_id in ids and ann_id not in ids
    delivery = bob.get(f"/api/announcements/{ann_id}/delivery").json()
    assert {c["customer"] for c in delivery["customers"]} == {"hts", "htsnonprod"} and delivery["done"] is False


def test_four_eyes_the_author_approver_cannot_approve_her_own(web):
    carol, bob = web.login("carol"), web.login("bob")          # carol both submits and approves
    r = carol.post("/api/announcements", json=ann())
    ann_id = r.json()["changeId"]
    r = carol.post(f"/api/announcements/{ann_id}/approve", headers={"If-Match": r.headers["ETag"]})
    assert r.status_code == 403 and "four-eyes" in r.json()["message"]
    page = carol.get(f"/announcements/{ann_id}").text
    assert 'disabled title="you submitted this announcement; another approver must approve it (four-eyes)"' in page
    queue = bob.get("/approvals").text
    assert "Announcements waiting for approval" in queue and f'href="/announcements/{ann_id}"' in queue
    assert "You wrote or submitted this announcement" in carol.get("/approvals").text
    r = carol.post(f"/announcements/{ann_id}/approve", data={"csrf_token": csrf_of(page), "version": "1"})
    assert r.status_code == 403 and web.lifecycle.show(ann_id)["status"] == "submitted"
    r = bob.post(f"/api/announcements/{ann_id}/cancel", headers={"If-Match": "*"})
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert bob.get(f"/changes/{ann_id}").headers["location"] == f"/announcements/{ann_id}"


def test_api_list_pages_and_filters(web):
    alice = web.login("alice")
    tag = uuid.uuid4().hex[:6]
    made = [alice.post("/api/announcements", json=ann(type="innersource", title=f"Inner {tag} {i}")).json()["changeId"]
            for i in range(3)]
    seen, cursor = [], None
    while True:
        r = alice.get("/api/announcements", params={"type": "innersource", "limit": 2,
                                                   **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200
        body = r.json()
        assert all(i["type"] == "innersource" for i in body["items"]) and len(body["items"]) <= 2
        seen += [i["changeId"] for i in body["items"]]
        cursor = body["nextCursor"]
        if not cursor:
            break
    assert set(made) <= set(seen) and len(seen) == len(set(seen))
    assert alice.get("/api/announcements", params={"type": "news"}).status_code == 422
    assert alice.get("/api/announcements", params={"customer": "zzz"}).status_code == 422
    spec = alice.get("/openapi.json").json()
    assert {"/api/announcements", "/api/announcements/{announcement_id}",
            "/api/announcements/{announcement_id}/approve", "/api/announcements/{announcement_id}/cancel",
            "/api/announcements/{announcement_id}/delivery"} <= set(spec["paths"])
    assert "/announcements" not in spec["paths"]


def test_pages_form_errors_list_and_detail(web):
    alice = web.login("alice")
    page = alice.get("/announcements/new")
    assert page.status_code == 200 and 'name="type"' in page.text
    csrf = csrf_of(page.text)
    r = alice.post("/announcements/new", data={"csrf_token": csrf, "type": "finops", "title": "x",
                                               "customers": ["hts"], "summary": "s", "content": "c",
                                               "links": "Bad | ftp://x"})
    assert r.status_code == 422 and "ftp://x" in r.text and "has-error" in r.text
    title = f"Landing zone {uuid.uuid4().hex[:6]} <b>"
    r = alice.post("/announcements/new", data={"csrf_token": csrf, "type": "cic", "title": title,
                                               "customers": ["hts"], "summary": "s", "content": "c",
                                               "links": "Notes | https://example.com/n\nhttps://example.com/m"})
    assert r.status_code == 303 and re.match(r"^/announcements/ANN-", r.headers["location"])
    detail = alice.get(r.headers["location"])
    assert detail.status_code == 200 and "Landing zone" in detail.text and "&lt;b&gt;" in detail.text
    assert 'href="https://example.com/n"' in detail.text and 'id="delivery"' in detail.text
    assert 'data-action="approve"' not in detail.text                 # a submitter does not approve
    assert "Who approving this announcement would tell" in detail.text and 'data-topic="cic-announce"' in detail.text
    listing = alice.get("/announcements", params={"type": "cic"})
    assert listing.status_code == 200 and r.headers["location"].rsplit("/", 1)[1] in listing.text
    assert r.headers["location"].rsplit("/", 1)[1] not in alice.get("/changes").text
    alice.headers.pop("X-CSRF-Token")
    r = alice.post("/announcements/new", data={"type": "cic"})  # no CSRF token (form field or header)
    assert r.status_code == 403


def _process(web, ann_id: str) -> None:
    """The runtime's handler, in-process, on this announcement's messages only (others stay queued)."""
    from runtime.adapters.ses import TenantSes
    from runtime.adapters.sqs import SqsQueue
    from runtime.domain.processing import plan
    from runtime.services.archive import ArchiveRecorder
    from runtime.services.handler import TriggerHandler
    from runtime.services.pacing import RateLimiter

    cfg = web.cfg
    handlers = {c.code: TriggerHandler(cfg=cfg, customer=c, store=web.store, archive=ArchiveRecorder(web.store),
                                       mailer=TenantSes(web.stack.clients, cfg, c), limiter=RateLimiter(1000))
                for c in cfg.customers}

    def one_pass():
        for c in cfg.customers:
            q = SqsQueue(web.stack.clients, c.queue_name)
            for m in q.receive(10, 0):
                if ann_id not in m.body:          # another test's: back on the queue in a moment
                    q.set_visibility(m.receipt, 2)
                    continue
                out = handlers[c.code].handle(m)
                assert out.ack, out.error
                q.delete_batch([m.receipt])
        a = web.lifecycle.show(ann_id)
        return all(not plan(a, code).steps for code in a["customers"])

    wait_for(one_pass, timeout=30, what=f"{ann_id} processed")


@pytest.mark.browser
def test_browser_write_approve_as_a_second_user_and_watch_delivery(new_page, web):
    title = f"General news {uuid.uuid4().hex[:6]}"
    alice = new_page("alice")
    alice.goto("/announcements")
    alice.click("text=+ New announcement")
    alice.wait_for_url("**/announcements/new")
    alice.click("button[data-action=submit]")                        # nothing filled in
    assert alice.locator(".has-error").count() >= 1
    alice.select_option("#type", "general")
    alice.fill("#title", title)
    alice.check("input[name=customers][value=hts]")
    alice.check("input[name=customers][value=htsnonprod]")
    alice.fill("#summary", "The portal has announcements now.")
    alice.fill("#content", "CIC, FinOps, InnerSource and general news.\nSubscribe to what you care about.")
    alice.fill("#links", "How to subscribe | https://example.com/subscribe")
    shot(alice, "ann-01-form")
    alice.click("button[data-action=submit]")
    alice.wait_for_url(re.compile(r"/announcements/ANN-[0-9a-f-]+$"))
    ann_id = alice.url.rsplit("/", 1)[1]
    assert "Submitted for approval" in alice.locator(".flash-ok").inner_text()
    assert alice.locator("button[data-action=approve]").count() == 0   # four-eyes: not her own
    _process(web, ann_id)                                              # the approval requests go out

    bob = new_page("bob")
    bob.goto("/approvals")
    assert bob.locator("#announcements-waiting tr", has_text=title).count() == 1
    shot(bob, "ann-00-approvals")
    bob.goto("/announcements?type=general")
    bob.locator("tr", has_text=title).locator("a").click()
    bob.wait_for_url(f"**/announcements/{ann_id}")
    bob.click("button[data-action=approve]")
    bob.wait_for_url(f"**/announcements/{ann_id}")
    assert "Approved: the announcement is on its way" in bob.locator(".flash-ok").inner_text()
    assert bob.locator("tr[data-customer=hts]").get_attribute("data-state") == "pending"
    shot(bob, "ann-02-approved-pending")
    _process(web, ann_id)                                              # the announcement goes out
    wait_for(lambda: bob.locator("tr[data-customer=hts]").get_attribute("data-state") == "delivered",
             timeout=20, what="the page shows the delivery")
    row = bob.locator("tr[data-customer=hts]")
    assert "the announcement" in row.inner_text() and "General updates" in row.inner_text()
    shot(bob, "ann-03-delivered")
    bob.set_viewport_size({"width": 390, "height": 844})
    shot(bob, "ann-04-delivered-phone")
    alice.set_viewport_size({"width": 390, "height": 844})
    alice.goto("/announcements/new")
    shot(alice, "ann-05-form-phone")
