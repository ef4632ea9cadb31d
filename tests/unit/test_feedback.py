"""SES feedback parsing (pure): SNS envelopes, the three kinds, tenant isolation, refusals."""

from __future__ import annotations

import json

import pytest

from runtime.domain.errors import RejectedInput
from runtime.services.feedback import REF_HEADER, parse_notification, summarize

CID = "CHG-2026-11-30-patch-the-vpn-0123abcd"
TOPIC = "arn:aws:sns:us-east-1:123456789012:ttr-hts-ses-feedback"


def ses_note(kind="Bounce", *, to="alice@example.com", ref=f"{CID}/hts/2", account="111111111111", **detail):
    mail = {"timestamp": "2026-11-30T05:00:00.000Z", "messageId": "0100-abc", "sendingAccountId": account,
            "destination": [to], "headers": [{"name": "From", "value": "n@hts.example.com"}]}
    if ref:
        mail["headers"].append({"name": REF_HEADER, "value": ref})
    body = {"notificationType": kind, "mail": mail}
    if kind == "Bounce":
        body["bounce"] = {"bounceType": detail.get("bounceType", "Permanent"), "bounceSubType": "General",
                          "bouncedRecipients": [{"emailAddress": to, "diagnosticCode": "smtp; 550 5.1.1 no such user"}],
                          "timestamp": "2026-11-30T05:00:01.000Z"}
    elif kind == "Complaint":
        body["complaint"] = {"complainedRecipients": [{"emailAddress": to}], "complaintFeedbackType": "abuse",
                             "timestamp": "2026-11-30T05:00:02.000Z"}
    elif kind == "Delivery":
        body["delivery"] = {"recipients": [to], "smtpResponse": "250 ok", "timestamp": "2026-11-30T05:00:03.000Z"}
    return body


def sns(note, topic=TOPIC):
    return json.dumps({"Type": "Notification", "TopicArn": topic, "Message": json.dumps(note)})


def parse(body, code="hts"):
    return parse_notification(body, code=code, account_id="111111111111", topic_arn=TOPIC)


def test_a_hard_bounce_names_the_recipient_its_ledger_and_suppresses():
    (e,) = parse(sns(ses_note()))
    assert (e.kind, e.recipient, e.change_id, e.seq, e.permanent) == ("bounce", "alice@example.com", CID, 2, True)
    assert e.suppresses and "550 5.1.1" in e.detail and e.message_id == "0100-abc"


def test_a_soft_bounce_and_a_delivery_do_not_suppress_a_complaint_does():
    assert not parse(sns(ses_note(bounceType="Transient")))[0].suppresses
    assert not parse(sns(ses_note("Delivery")))[0].suppresses
    (c,) = parse(sns(ses_note("Complaint")))
    assert c.kind == "complaint" and c.suppresses and c.detail == "abuse"


def test_raw_delivery_and_configuration_set_events_parse_too():
    note = ses_note("Delivery", ref=None)
    note["eventType"] = note.pop("notificationType")
    note["mail"]["tags"] = {"ttr-ref": [f"{CID}/hts/4"]}
    (e,) = parse(json.dumps(note))
    assert e.kind == "delivery" and e.seq == 4


def test_subscription_confirmations_are_housekeeping():
    assert parse(json.dumps({"Type": "SubscriptionConfirmation", "TopicArn": TOPIC})) == []


@pytest.mark.parametrize("body, why", [
    ("not json", "not JSON"),
    (json.dumps([1]), "not a JSON object"),
    (sns(ses_note(), topic="arn:aws:sns:us-east-1:123456789012:ttr-other-ses-feedback"), "not this tenant's"),
    (sns(ses_note(account="222222222222")), "not tenant hts's"),
    (sns(ses_note(ref=f"{CID}/htsnonprod/2")), "names customer 'htsnonprod'"),
    (sns(ses_note(ref=f"{CID}/hts/two")), "malformed"),
    (sns(ses_note(ref="../../etc/hts/2")), "malformed"),
    (sns({"notificationType": "Received", "mail": {}}), "not an SES bounce"),
    (json.dumps({"Type": "Notification", "TopicArn": TOPIC, "Message": "{"}), "not JSON"),
    (sns({**ses_note(), "bounce": {"bounceType": "Permanent", "bouncedRecipients": []}}), "without recipients"),
])
def test_what_is_not_this_tenants_ses_feedback_is_refused_saying_why(body, why):
    with pytest.raises(RejectedInput, match=why):
        parse(body)


def test_a_recipient_the_email_was_not_sent_to_is_refused():
    note = ses_note()
    note["bounce"]["bouncedRecipients"].append({"emailAddress": "someone-else@example.com"})
    with pytest.raises(RejectedInput, match="not sent to"):
        parse(sns(note))


def test_the_summary_shows_the_worst_per_recipient():
    fb = {"recipients": {"a@x": [{"kind": "delivery"}, {"kind": "bounce", "permanent": True}],
                         "b@x": [{"kind": "delivery"}], "c@x": [{"kind": "bounce", "permanent": False}],
                         "d@x": [{"kind": "complaint"}, {"kind": "delivery"}]}}
    assert summarize(fb) == {"a@x": "bounced (hard)", "b@x": "delivered", "c@x": "bounced (soft)",
                             "d@x": "complained"}
    assert summarize(None) == {}
