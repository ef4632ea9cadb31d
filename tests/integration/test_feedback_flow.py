"""SES feedback end to end on a real local Ray and the moto server: a bounce published through
moto's SNS reaches the runtime's FeedbackActor, marks the recipient next to the ledger, shows in
the change's delivery view, suppresses the address for the next change (until `ttr suppressed
clear`), and never marks another tenant's recipients."""

from __future__ import annotations

import json
import uuid

import pytest

from runtime.adapters.s3 import S3ObjectStore
from runtime.local.aws_emulator import AwsEmulator
from runtime.services.feedback import REF_HEADER
from runtime.services.lifecycle import Lifecycle
from tests.conftest import all_processed, make_stack, running_runtime, wait_for

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def fstack(aws_emulator, graph_emulator, tmp_path_factory):
    return make_stack(aws_emulator.endpoint_url, tmp_path_factory.mktemp("feedback"),
                      graph_url=graph_emulator.base_url)


@pytest.fixture(scope="module")
def runtime(ray_session, fstack):
    with running_runtime(fstack.cfg, "fb") as rt:
        yield rt


@pytest.fixture()
def lc(fstack):
    return fstack.lifecycle()


def submitted(lc, sample_change, **over) -> tuple[str, str]:
    title = f"Feedback change {uuid.uuid4().hex[:8]}"
    cid = lc.submit({**sample_change, "title": title, "meeting": {"required": False}, **over}, actor="ann").change_id
    wait_for(all_processed(lc, cid), 60, f"{cid} processed")
    return cid, title


def sent_to(title) -> list[str]:
    return [to for m in AwsEmulator.sent_emails() if title in m.subject for to in m.to]


def topic_arn(stack, code) -> str:
    c = stack.cfg.customer(code)
    pages = stack.clients.client("sns").get_paginator("list_topics").paginate()   # tests share moto: many topics
    return next(t["TopicArn"] for page in pages for t in page["Topics"]
                if t["TopicArn"].endswith(f":{c.feedback_topic_name}"))


def bounce(stack, code, *, to, message_id, ref, account=None, kind="Bounce"):
    """What the customer's SES publishes to its feedback topic (an identity notification)."""
    mail = {"timestamp": "2026-11-30T05:00:00.000Z", "messageId": message_id,
            "sendingAccountId": account or stack.cfg.customer(code).account_id, "destination": [to],
            "headers": [{"name": REF_HEADER, "value": ref}]}
    note = {"notificationType": kind, "mail": mail}
    if kind == "Bounce":
        note["bounce"] = {"bounceType": "Permanent", "bounceSubType": "NoEmail", "timestamp": "2026-11-30T05:00:01Z",
                          "bouncedRecipients": [{"emailAddress": to, "diagnosticCode": "smtp; 550 5.1.1 unknown"}]}
    else:
        note["delivery"] = {"recipients": [to], "smtpResponse": "250 2.0.0 OK", "timestamp": "2026-11-30T05:00:01Z"}
    stack.clients.client("sns").publish(TopicArn=topic_arn(stack, code), Message=json.dumps(note))


def test_a_bounce_marks_the_recipient_shows_in_the_delivery_view_and_the_next_change_skips_it(
        runtime, fstack, lc, sample_change, run_cli):
    from runtime.web import start_portal
    from tests.web.conftest import SECRET, session_cookie

    cid, title = submitted(lc, sample_change)
    assert "alice@example.com" in sent_to(title)            # aws-approval, opted in
    ledger = fstack.get_json(f"ledger/{cid}/hts/1.json")
    mid = ledger["recipients"]["alice@example.com"]["messageId"]
    other = fstack.get_json(f"ledger/{cid}/htsnonprod/1.json")
    assert "dana@example.com" in other["recipients"]

    bounce(fstack, "hts", to="alice@example.com", message_id=mid, ref=f"{cid}/hts/1")
    bounce(fstack, "htsnonprod", to="dana@example.com", message_id="m-dana", ref=f"{cid}/htsnonprod/1",
           kind="Delivery")
    fb = wait_for(lambda: fstack.keys(f"ledger/{cid}/hts/1.feedback.json") and
                  fstack.get_json(f"ledger/{cid}/hts/1.feedback.json"), 30, "the bounce recorded")
    (event,) = fb["recipients"]["alice@example.com"]
    assert event["kind"] == "bounce" and event["permanent"] and event["messageId"] == mid
    wait_for(lambda: fstack.keys(f"ledger/{cid}/htsnonprod/1.feedback.json"), 30, "the delivery recorded")
    wait_for(lambda: fstack.keys("suppressed/hts.json"), 30, "the address suppressed")
    sup = fstack.get_json("suppressed/hts.json")["addresses"]
    assert set(sup) == {"alice@example.com"} and sup["alice@example.com"]["reason"] == "bounce"
    assert fstack.keys("suppressed/htsnonprod.json") == []   # a delivery suppresses nothing

    code, out, _ = run_cli("status", "--config", fstack.path, "--namespace", runtime.namespace)
    assert "ses feedback: 1 bounce, 1 delivery" in out, out

    # the delivery view (the portal's change page) shows it
    handle = start_portal(fstack.cfg, 0, session_secret=SECRET)
    try:
        import httpx

        with httpx.Client(base_url=handle.url, timeout=15) as c:
            c.cookies.set("ttr_session", session_cookie(fstack.cfg, "victor"))
            page = c.get(f"/changes/{cid}")
            assert page.status_code == 200
            assert "1 bounced" in page.text and "sent · bounced (hard)" in page.text
            assert "sent · delivered" in page.text
            api = c.get(f"/api/changes/{cid}/delivery")
            assert api.status_code == 200
            rows = {r["customer"]: r for r in api.json()["customers"]}
            assert rows["hts"]["steps"][0]["bounced"] == 1 and rows["htsnonprod"]["steps"][0]["delivered"] == 1
    finally:
        handle.stop()

    # the next change skips the address; the operator sees it and clears it
    _, title2 = submitted(lc, sample_change)
    assert "alice@example.com" not in sent_to(title2) and "dana@example.com" in sent_to(title2)
    code, out, _ = run_cli("suppressed", "list", "--config", fstack.path, "--json")
    assert code == 0 and [(r["customer"], r["address"], r["reason"]) for r in json.loads(out)] == \
        [("hts", "alice@example.com", "bounce")]
    code, out, _ = run_cli("suppressed", "clear", "Alice@Example.com", "--customer", "hts", "--config", fstack.path)
    assert code == 0 and "cleared alice@example.com" in out
    _, title3 = submitted(lc, sample_change)
    assert "alice@example.com" in sent_to(title3)


def test_feedback_cannot_mark_another_tenants_recipient(runtime, fstack, lc, sample_change):
    cid, _ = submitted(lc, sample_change)
    mid = fstack.get_json(f"ledger/{cid}/hts/1.json")["recipients"]["alice@example.com"]["messageId"]
    before = fstack.keys("suppressed/")
    # htsnonprod's topic carrying a bounce of hts's email, from hts's account
    bounce(fstack, "htsnonprod", to="alice@example.com", message_id=mid, ref=f"{cid}/hts/1",
           account=fstack.cfg.customer("hts").account_id)
    # htsnonprod's topic and account, but the email's reference is hts's ledger
    bounce(fstack, "htsnonprod", to="alice@example.com", message_id=mid, ref=f"{cid}/hts/1")
    # hts's topic, but sent from another account
    bounce(fstack, "hts", to="alice@example.com", message_id=mid, ref=f"{cid}/hts/1", account="999999999999")
    wait_for(lambda: len(fstack.keys("rejected-feedback/htsnonprod/")) >= 2 and
             len(fstack.keys("rejected-feedback/hts/")) >= 1, 30, "all three refused")
    assert fstack.keys("suppressed/") == before
    assert not fstack.keys(f"ledger/{cid}/hts/1.feedback.json")
    reasons = sorted(fstack.get_json(k)["reason"] for k in fstack.keys("rejected-feedback/"))
    assert any("sent from account 111111111111, not tenant htsnonprod's" in r for r in reasons), reasons
    assert any("names customer 'hts', not 'htsnonprod'" in r for r in reasons), reasons
    assert any("sent from account 999999999999, not tenant hts's" in r for r in reasons), reasons


def test_suppressed_clear_refuses_bad_input(fstack, run_cli):
    code, _, err = run_cli("suppressed", "clear", "not-an-address", "--customer", "hts", "--config", fstack.path)
    assert code == 2 and "ADDRESS" in err
    code, _, err = run_cli("suppressed", "clear", "a@example.com", "--customer", "nope", "--config", fstack.path)
    assert code == 2 and "unknown customer" in err
    code, _, err = run_cli("suppressed", "clear", "nobody@example.com", "--customer", "hts", "--config", fstack.path)
    assert code == 1 and "not suppressed" in err


def test_every_email_carries_the_reference_that_ses_feedback_returns(stack, sample_change):
    """The handler's sends, seen through the botocore seam: X-TTR-Ref names the ledger. (Its
    own stack: no runtime polls these queues.)"""
    from runtime.adapters.aws import AwsClients
    from runtime.adapters.ses import TenantSes
    from runtime.ports import QueueMessage
    from runtime.services.archive import ArchiveRecorder
    from runtime.services.handler import TriggerHandler
    from runtime.services.pacing import RateLimiter

    seen: list[dict] = []

    def capture(params, **_):
        seen.append({h["Name"]: h["Value"] for h in params["Content"]["Simple"].get("Headers", [])})

    clients = AwsClients(stack.cfg.region, stack.cfg.aws_endpoint_url)
    clients.add_hook("provide-client-params.sesv2.SendEmail", capture)
    store = S3ObjectStore(clients, stack.cfg.bucket)
    cust = stack.cfg.customer("htsnonprod")
    handler = TriggerHandler(cfg=stack.cfg, customer=cust, store=store, mailer=TenantSes(clients, stack.cfg, cust),
                             archive=ArchiveRecorder(store), limiter=RateLimiter(1000))
    cid = Lifecycle(store, stack.cfg.customer_codes).submit(
        {**sample_change, "customers": ["htsnonprod"], "meeting": {"required": False}}, actor="ann").change_id
    body = json.dumps({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                                    "s3": {"bucket": {"name": stack.cfg.bucket},
                                           "object": {"key": f"customers/htsnonprod/{cid}.json"}}}]})
    out = handler.handle(QueueMessage(message_id="m-ref", receipt="r", body=body))
    assert out.ack and out.emails_sent == 1, out            # dana: aws-approval, allow-listed
    assert seen == [{REF_HEADER: f"{cid}/htsnonprod/1"}]


def test_the_handler_reads_the_suppression_list_once_per_ttl_and_again_when_told(fstack):
    # One S3 GET per transition was a sixth of a unit's calls: the handler keeps the list for the
    # contacts' TTL. The FeedbackActor's call (CustomerActor.suppression_changed ->
    # forget_suppressed) makes a new suppression count at once, and a skip is confirmed against a
    # fresh read, so a cleared address is emailed again at once.
    from runtime.adapters.aws import call_counts
    from runtime.adapters.ses import TenantSes
    from runtime.services.archive import ArchiveRecorder
    from runtime.services.feedback import FeedbackEvent, SuppressionList
    from runtime.services.handler import TriggerHandler

    cfg = fstack.cfg
    cust = cfg.customer("htsnonprod")
    store = S3ObjectStore(fstack.clients, cfg.bucket)
    handler = TriggerHandler(cfg=cfg, customer=cust, store=store, mailer=TenantSes(fstack.clients, cfg, cust),
                             archive=ArchiveRecorder(store))
    address = f"cache-{uuid.uuid4().hex[:6]}@example.com"
    suppression = SuppressionList(store, cust.code)

    def gets() -> int:
        return call_counts().get("s3.GetObject", 0)

    assert not handler.suppressed()(address)
    before = gets()
    for _ in range(3):
        assert not handler.suppressed()(address)
    assert gets() == before, "the suppression list is read once per TTL, not per delivery"

    suppression.add(FeedbackEvent("complaint", address, "m-1", "2026-11-30T00:00:00Z"))
    assert not handler.suppressed()(address), "the cached copy until the FeedbackActor says so"
    handler.forget_suppressed()
    check = handler.suppressed()
    assert check(address) and check(address.upper())

    before = gets()
    check = handler.suppressed()
    assert check(address) and check(address.upper()) and gets() == before + 1, "a skip is confirmed once per pass"

    suppression.clear(address)
    assert not handler.suppressed()(address), "cleared: the fresh read says so, no TTL to wait for"
    before = gets()
    assert not handler.suppressed()(address) and gets() == before
