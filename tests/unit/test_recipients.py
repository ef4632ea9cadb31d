"""SES topic semantics, recipient selection and the transition -> topic routing (pure)."""

import dataclasses

import pytest

from runtime.domain.config import TOPICS, CustomerConfig
from runtime.domain.recipients import (
    ANNOUNCE,
    APPROVAL,
    CALENDAR,
    Contact,
    merge_attendees,
    select_recipients,
    subscribed,
    topic_for,
    valid_address,
)

DEFAULTS = {"aws-announce": "OPT_IN", "aws-approval": "OPT_OUT", "aws-calendar": "OPT_OUT"}
EVERYONE = lambda address: True  # noqa: E731


def contact(email, unsubscribe_all=False, **prefs):
    return Contact(email, unsubscribe_all, {k.replace("_", "-"): v for k, v in prefs.items()})


def test_topic_constants_are_the_configured_topics():
    assert (APPROVAL, ANNOUNCE, CALENDAR) == TOPICS


# ---------------------------------------------------------------------------------------------
# Contact.from_ses


def test_from_ses_reads_explicit_preferences_and_ignores_defaults():
    item = {"EmailAddress": "Alice@Example.com", "UnsubscribeAll": False,
            "TopicPreferences": [{"TopicName": "aws-approval", "SubscriptionStatus": "OPT_IN"},
                                 {"TopicName": "aws-announce", "SubscriptionStatus": "OPT_OUT"}],
            "TopicDefaultPreferences": [{"TopicName": "aws-calendar", "SubscriptionStatus": "OPT_IN"}],
            "LastUpdatedTimestamp": "2026-01-01T00:00:00Z"}
    c = Contact.from_ses(item)
    assert c.email == "Alice@Example.com"
    assert c.unsubscribe_all is False
    assert dict(c.preferences) == {"aws-approval": "OPT_IN", "aws-announce": "OPT_OUT"}


def test_from_ses_tolerates_a_minimal_item():
    c = Contact.from_ses({"EmailAddress": "a@example.com", "UnsubscribeAll": True})
    assert c == Contact("a@example.com", True, {})


def test_contact_is_frozen_and_does_not_share_the_callers_dict():
    prefs = {"aws-approval": "OPT_IN"}
    c = Contact("a@example.com", False, prefs)
    prefs["aws-approval"] = "OPT_OUT"
    assert c.preferences["aws-approval"] == "OPT_IN"
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.email = "b@example.com"
    with pytest.raises(TypeError):
        c.preferences["aws-approval"] = "OPT_OUT"
    assert hash(c) == hash(Contact("a@example.com", False, {}))  # usable in sets


# ---------------------------------------------------------------------------------------------
# subscribed: the truth table


@pytest.mark.parametrize("unsub, explicit, default, expected", [
    (False, "OPT_IN", "OPT_OUT", True),    # explicit opt-in beats an opt-out default
    (False, "OPT_OUT", "OPT_IN", False),   # explicit opt-out beats an opt-in default
    (False, None, "OPT_IN", True),         # no preference: the default decides
    (False, None, "OPT_OUT", False),
    (False, "OPT_IN", "OPT_IN", True),
    (False, "OPT_OUT", "OPT_OUT", False),
    (True, "OPT_IN", "OPT_IN", False),     # unsubscribe-all wins over everything
    (True, None, "OPT_IN", False),
])
def test_subscribed_truth_table(unsub, explicit, default, expected):
    prefs = {"aws-approval": explicit} if explicit else {}
    c = Contact("a@example.com", unsub, prefs)
    assert subscribed(c, "aws-approval", {"aws-approval": default}) is expected


def test_topic_without_a_default_is_opt_out():
    assert subscribed(contact("a@example.com"), "general-updates", DEFAULTS) is False
    assert subscribed(contact("a@example.com", general_updates="OPT_IN"), "general-updates", DEFAULTS)


def test_preference_for_another_topic_does_not_leak():
    c = contact("a@example.com", aws_approval="OPT_IN")
    assert subscribed(c, "aws-calendar", DEFAULTS) is False
    assert subscribed(c, "aws-announce", DEFAULTS) is True


# ---------------------------------------------------------------------------------------------
# select_recipients


def test_select_recipients_applies_topic_semantics_in_contact_order():
    contacts = [contact("alice@example.com", aws_approval="OPT_IN"),
                contact("bob@example.com", unsubscribe_all=True, aws_approval="OPT_IN"),
                contact("carol@example.com", aws_announce="OPT_OUT"),
                contact("chris@example.com")]
    assert select_recipients(contacts, "aws-announce", DEFAULTS, EVERYONE) == [
        "alice@example.com", "chris@example.com"]
    assert select_recipients(contacts, "aws-approval", DEFAULTS, EVERYONE) == ["alice@example.com"]
    assert select_recipients(contacts, "aws-calendar", DEFAULTS, EVERYONE) == []


def test_select_recipients_honours_the_tenant_whitelist_case_insensitively():
    tenant = CustomerConfig(code="htsnonprod", name="Non-prod",
                            ses_role_arn="arn:aws:iam::222222222222:role/ttr-ses-sender",
                            restricted_recipients=("Dana@Example.com", "erin@example.com"))
    contacts = [contact("dana@example.com"), contact("ERIN@example.com"), contact("gail@example.com")]
    assert select_recipients(contacts, "aws-announce", DEFAULTS, tenant.allows) == [
        "dana@example.com", "ERIN@example.com"]


def test_select_recipients_dedupes_case_insensitively_keeping_the_first_spelling():
    contacts = [contact("Alice@Example.com"), contact("bob@example.com"), contact("alice@example.COM")]
    assert select_recipients(contacts, "aws-announce", DEFAULTS, EVERYONE) == [
        "Alice@Example.com", "bob@example.com"]


def test_a_duplicate_that_is_not_subscribed_does_not_hide_one_that_is():
    contacts = [contact("a@example.com", aws_announce="OPT_OUT"), contact("A@example.com")]
    assert select_recipients(contacts, "aws-announce", DEFAULTS, EVERYONE) == ["A@example.com"]


@pytest.mark.parametrize("address", ["", "   ", "no-at-sign", "@example.com", "a@", "a b@example.com",
                                     "a@example.com\r\nBcc: x@evil.com", "a@example.com\n",
                                     "a\t@example.com", "a@b@example.com", "a\x00@example.com"])
def test_invalid_addresses_are_skipped(address):
    assert not valid_address(address)
    assert select_recipients([contact(address), contact("ok@example.com")], "aws-announce",
                             DEFAULTS, EVERYONE) == ["ok@example.com"]


def test_valid_address_accepts_ordinary_addresses():
    assert valid_address("first.last+tag@sub.example.co.uk")
    assert not valid_address(None)


# ---------------------------------------------------------------------------------------------
# topic_for: the routing table


@pytest.mark.parametrize("transition, approved_before, topic", [
    ("submitted", False, "aws-approval"),
    ("updated", False, "aws-approval"),
    ("approved", False, "aws-announce"),
    ("completed", True, "aws-announce"),
    ("cancelled", False, "aws-approval"),   # never approved: the approvers are told
    ("cancelled", True, "aws-announce"),    # approved: everyone who was announced to
    ("rescheduled", False, "aws-approval"),
    ("rescheduled", True, "aws-announce"),
])
def test_topic_for_routing_table(transition, approved_before, topic):
    assert topic_for(transition, approved_before=approved_before) == topic


@pytest.mark.parametrize("transition", ["processed", "meeting_scheduled", "Submitted", "", None, "draft"])
def test_topic_for_unknown_type_raises_instead_of_defaulting_to_approval(transition):
    with pytest.raises(ValueError, match="no email topic"):
        topic_for(transition, approved_before=False)


# ---------------------------------------------------------------------------------------------
# merge_attendees


def test_merge_attendees_dedupes_across_tenants_in_stable_order():
    assert merge_attendees([["alice@example.com", "Bob@example.com"],
                            ["bob@example.com", "dana@example.com"],
                            ["ALICE@example.com", "erin@example.com"]]) == [
        "alice@example.com", "Bob@example.com", "dana@example.com", "erin@example.com"]


def test_merge_attendees_handles_empty_and_invalid_input():
    assert merge_attendees([]) == []
    assert merge_attendees([[], ["", "x@example.com\r\n", "y@example.com"], iter(["y@EXAMPLE.com"])]) == [
        "y@example.com"]


# ---------------------------------------------------------------------------------------------
# decide_recipients: the reasons behind every skip


def test_every_contact_gets_a_decision_with_its_reason():
    from runtime.domain.recipients import decide_recipients

    contacts = [contact("in@example.com", aws_approval="OPT_IN"),
                contact("out@example.com", aws_approval="OPT_OUT"),
                contact("default@example.com"),
                contact("gone@example.com", unsubscribe_all=True, aws_approval="OPT_IN"),
                contact("other@elsewhere.com", aws_approval="OPT_IN"),
                contact("bounced@example.com", aws_approval="OPT_IN"),
                contact("IN@example.com", aws_approval="OPT_IN"),
                contact("bad address", aws_approval="OPT_IN")]
    decisions = decide_recipients(contacts, "aws-approval", DEFAULTS,
                                  allow=lambda a: a.endswith("@example.com"),
                                  suppressed=lambda a: a.startswith("bounced@"))
    assert [(d.email, d.send, d.reason) for d in decisions] == [
        ("in@example.com", True, ""),
        ("out@example.com", False, "opted_out"),
        ("default@example.com", False, "default_opt_out"),
        ("gone@example.com", False, "unsubscribed_all"),
        ("other@elsewhere.com", False, "not_allowed"),
        ("bounced@example.com", False, "suppressed"),
        ("IN@example.com", False, "duplicate"),
        ("bad address", False, "invalid_address"),
    ]
    assert all(d.why and d.why != d.reason for d in decisions if not d.send)


def test_select_recipients_is_the_sent_part_of_the_decisions():
    from runtime.domain.recipients import decide_recipients

    contacts = [contact("a@example.com"), contact("b@example.com", aws_announce="OPT_OUT"),
                contact("c@example.com", unsubscribe_all=True)]
    sent = [d.email for d in decide_recipients(contacts, "aws-announce", DEFAULTS, EVERYONE) if d.send]
    assert sent == select_recipients(contacts, "aws-announce", DEFAULTS, EVERYONE) == ["a@example.com"]


def test_contact_attributes_come_from_the_ses_json_string():
    c = Contact.from_ses({"EmailAddress": "a@example.com", "AttributesData": '{"timezone": "Europe/Paris"}'})
    assert dict(c.attributes) == {"timezone": "Europe/Paris"}
    for junk in ("not json", "[1, 2]", "", None):
        assert dict(Contact.from_ses({"EmailAddress": "a@example.com", "AttributesData": junk}).attributes) == {}
