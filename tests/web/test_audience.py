"""The Audience page and the approval preview over real HTTP, against each customer's SES in moto."""

from __future__ import annotations

import re
import uuid

from runtime.provisioning.bootstrap import assume_customer
from tests.web.conftest import csrf_of


def tenant_contacts(web, code) -> dict[str, dict]:
    customer = web.cfg.customer(code)
    creds = assume_customer(web.stack.clients, customer, f"test-{code}")
    ses = web.stack.clients.client_with("sesv2", creds, web.cfg.region_of(customer))
    items = ses.list_contacts(ContactListName=customer.contact_list)["Contacts"]
    return {i["EmailAddress"]: {p["TopicName"]: p["SubscriptionStatus"] for p in i.get("TopicPreferences", [])}
            for i in items}


def row_of(html: str, email: str) -> str:
    m = re.search(r'<tr data-email="' + re.escape(email) + r'">(.*?)</tr>', html, re.S)
    assert m, f"no row for {email}"
    return m.group(1)


def test_viewer_reads_who_gets_what_and_why_but_cannot_change_it(web):
    c = web.login("victor")
    r = c.get("/audience")
    assert r.status_code == 303 and r.headers["location"] == "/audience/hts"
    html = c.get("/audience/hts").text
    assert "Change approvals" in html and "Change meetings" in html          # configured display names
    bob = row_of(html, "bob@example.com")
    assert "unsubscribed from everything" in bob and 'data-told="1"' not in bob
    alice = row_of(html, "alice@example.com")
    assert re.search(r'data-topic="aws-approval" data-told="1"', alice) and "opted in" in alice
    carol = row_of(html, "carol@example.com")
    assert re.search(r'data-topic="aws-announce" data-told="0"', carol) and "opted out of this topic" in carol
    chris = row_of(html, "chris@example.com")
    assert "not subscribed (the topic is opt-in only)" in chris and "by default" in chris
    assert 'action="/audience/hts/add"' not in html and "needs the admin role" in html
    # the allow-list of the non-production tenant, with the same words the delivery view uses
    gail = row_of(c.get("/audience/htsnonprod").text, "gail@example.com")
    assert "not on this customer&#39;s allow-list" in gail
    for path in ("/audience/hts/add", "/audience/hts/edit", "/audience/hts/remove"):
        r = c.post(path, data={"email": "x@example.com", "csrf_token": c.csrf})
        assert r.status_code == 403 and "needs the admin role" in r.text
    assert c.get("/audience/nope").status_code == 404


def test_admin_adds_edits_and_removes_through_the_customers_role(web):
    c = web.login("admin")
    email = f"aud-{uuid.uuid4().hex[:8]}@example.com"
    html = c.get("/audience/hts").text
    r = c.post("/audience/hts/add", data={"email": email, "topic:aws-approval": "OPT_IN", "topic:aws-announce": "",
                                          "topic:aws-calendar": "", "csrf_token": csrf_of(html)})
    assert r.status_code == 303
    assert tenant_contacts(web, "hts")[email] == {"aws-approval": "OPT_IN"}
    assert email not in tenant_contacts(web, "htsnonprod")                  # no leak
    page = c.get("/audience/hts").text
    assert f"Added {email}." in page and re.search(r'data-topic="aws-approval" data-told="1"', row_of(page, email))

    r = c.post("/audience/hts/edit", data={"email": email, "topic:aws-approval": "", "topic:aws-announce": "OPT_OUT",
                                           "topic:aws-calendar": "OPT_IN", "csrf_token": c.csrf})
    assert r.status_code == 303
    assert tenant_contacts(web, "hts")[email] == {"aws-announce": "OPT_OUT", "aws-calendar": "OPT_IN"}

    # bad input: re-rendered with the error next to the field, nothing written
    r = c.post("/audience/hts/add", data={"email": "not an address", "csrf_token": c.csrf})
    assert r.status_code == 422 and 'id="err-email"' in r.text and "is not an email address" in r.text
    r = c.post("/audience/hts/edit", data={"email": email, "topic:aws-approval": "MAYBE", "csrf_token": c.csrf})
    assert r.status_code == 422
    assert tenant_contacts(web, "hts")[email] == {"aws-announce": "OPT_OUT", "aws-calendar": "OPT_IN"}
    # an unsubscribed-from-everything contact stays so whatever an admin sets
    r = c.post("/audience/hts/edit", data={"email": "bob@example.com", "topic:aws-approval": "OPT_IN",
                                           "csrf_token": c.csrf})
    assert r.status_code == 303
    bob = row_of(c.get("/audience/hts").text, "bob@example.com")
    assert "unsubscribed from everything" in bob and 'data-told="1"' not in bob
    # without the CSRF token nothing happens
    anon = web.anonymous()
    anon.cookies = c.cookies
    r = anon.post("/audience/hts/remove", data={"email": email})
    assert r.status_code == 403 and email in tenant_contacts(web, "hts")

    r = c.post("/audience/hts/remove", data={"email": email, "csrf_token": c.csrf})
    assert r.status_code == 303 and email not in tenant_contacts(web, "hts")
    r = c.post("/audience/hts/remove", data={"email": email, "csrf_token": c.csrf})
    assert r.status_code == 404


def test_change_page_previews_who_approval_would_tell_with_reasons(web):
    change_id = web.submit("alice")
    html = web.login("bob").get(f"/changes/{change_id}").text
    assert 'id="audience-preview"' in html
    hts = html.split('data-customer="hts"', 1)[1].split('data-customer="htsnonprod"', 1)[0]
    announce = hts.split('data-topic="aws-announce"', 1)[1].split('data-topic="aws-calendar"', 1)[0]
    # aws-announce is opt-in by default: alice and chris are told; carol opted out; bob unsubscribed
    assert "alice@example.com" in announce.split("not told")[0] and "chris@example.com" in announce.split("not told")[0]
    assert re.search(r'data-reason="opted_out"><span class="mono">carol@example.com', announce)
    assert re.search(r'data-reason="unsubscribed_all"><span class="mono">bob@example.com', announce)
    calendar = hts.split('data-topic="aws-calendar"', 1)[1]
    assert "the Teams meeting invitation" in calendar and "alice@example.com" in calendar
    nonprod = html.split('data-customer="htsnonprod"', 1)[1]
    assert re.search(r'data-reason="not_allowed"><span class="mono">gail@example.com', nonprod)
    # once approved, no preview: the delivery view tells what happened
    web.lifecycle.transition(change_id, "approve", actor="bob")
    assert 'id="audience-preview"' not in web.login("bob").get(f"/changes/{change_id}").text


def test_a_customer_whose_contacts_cannot_be_read_is_shown_as_such(web):
    from runtime.web._audience import audiences

    aud = audiences(web.handle.server.config.app.state.portal)
    role = web.cfg.customer("htsnonprod").ses_role_arn
    failing = {"on": True}

    def deny(model=None, params=None, **_):
        if failing["on"] and model.name == "AssumeRole" and role in str((params or {}).get("body")):
            return (type("R", (), {"status_code": 403, "headers": {}, "content": b"", "text": ""})(),
                    {"Error": {"Code": "AccessDenied", "Message": "injected: not allowed to assume the role"},
                     "ResponseMetadata": {"HTTPStatusCode": 403, "HTTPHeaders": {}}})
        return None

    aud.clients.add_hook("before-call.sts.AssumeRole", deny)   # the portal's own client factory
    aud._books.pop("htsnonprod", None)                          # its cached credentials go too
    aud.forget("htsnonprod")
    try:
        c = web.login("victor")
        r = c.get("/audience/htsnonprod")
        assert r.status_code == 200 and "could not be read" in r.text and "AccessDenied" in r.text
        change_id = web.submit("alice")
        html = c.get(f"/changes/{change_id}").text
        nonprod = html.split('data-customer="htsnonprod"', 1)[1]
        assert "Could not read this customer's contacts" in nonprod and "AccessDenied" in nonprod
        hts = html.split('data-customer="hts"', 1)[1].split('data-customer="htsnonprod"', 1)[0]
        assert "alice@example.com" in hts                       # the other customer is still previewed
    finally:
        failing["on"] = False
        aud.forget("htsnonprod")
