"""Announcements, pure parts: validation, transitions, the routing table, the emails."""

from __future__ import annotations

import pytest

from runtime.domain.announcements import TYPES, validate_announcement
from runtime.domain.errors import IllegalTransition, InvalidInput
from runtime.domain.kinds import route, topics_of
from runtime.domain.model import LIFECYCLE_TYPES
from runtime.emails import render_email
from runtime.services.lifecycle import apply_transition, new_announcement

CUSTOMERS = ("hts", "htsnonprod")
TOPICS = ("aws-approval", "aws-announce", "aws-calendar", "cic-announce", "finops-announce",
          "inner-announce", "general-updates", "announce-approval")
NOW = "2026-11-30T09:00:00.000Z"


def good(**over) -> dict:
    return {"type": "finops", "title": "Q4 cost review", "customers": ["hts"], "summary": "Short.",
            "content": "Long.", **over}


def submitted(**over) -> dict:
    return new_announcement(good(**over), announcement_id="ANN-1", actor="alice", now=NOW,
                            known_customers=CUSTOMERS, known_topics=TOPICS)


def test_a_submitted_announcement_is_an_archive_object_of_its_own_kind():
    a = submitted(**{"x-team": "ccoe"})
    assert a["kind"] == "announcement" and a["changeId"] == "ANN-1" and a["status"] == "submitted"
    assert a["version"] == 1 and a["modifications"][0]["type"] == "submitted" and a["x-team"] == "ccoe"
    assert a["meeting"] == {"required": False}


@pytest.mark.parametrize("content, message", [
    (good(type="news"), "type: 'news' is not an announcement type"),
    (good(type=None), "type: None is not an announcement type"),
    (good(title=" "), "title: required"),
    (good(title="two\nlines"), "title: must be one line"),
    (good(summary=None), "summary: required"),
    (good(content=""), "content: required"),
    (good(content=5), "content: expected text"),
    (good(customers=[]), "customers: required"),
    (good(customers=["nope"]), "customers: unknown customer 'nope'"),
    (good(links={"url": "https://a"}), "links: expected a list"),
    (good(links=[{"title": "x", "url": "javascript:alert(1)"}]), "links[0].url: 'javascript:alert(1)' is not an http"),
    (good(links=[{"title": "x", "url": "https://"}]), "links[0].url"),
    (good(links=[{"title": "x"}]), "links[0].url: required"),
    (good(links=[{"title": "x", "url": "https://a", "href": "y"}]), "links[0].href: unknown field"),
    (good(links=[{"title": "x", "url": "https://a b"}]), "links[0].url: not a valid address"),
    (good(meeting={"required": True}), "schedule: required for a meeting"),
    (good(meeting={"required": "yes"}), "meeting.required: expected true or false"),
])
def test_bad_announcements_are_refused_naming_the_field(content, message):
    with pytest.raises(InvalidInput) as exc:
        validate_announcement(content, CUSTOMERS, known_topics=TOPICS)
    assert message in str(exc.value)


def test_unknown_fields_get_a_suggestion_and_system_fields_are_refused():
    with pytest.raises(InvalidInput, match="sumary: unknown field; did you mean summary"):
        submitted(sumary="x")
    with pytest.raises(InvalidInput, match="meeting.titel: unknown field; did you mean meeting.title"):
        submitted(meeting={"required": False, "titel": "x"})
    with pytest.raises(InvalidInput, match="version: managed by ttr"):
        submitted(version=3)
    with pytest.raises(InvalidInput, match="kind: 'change'"):
        submitted(kind="change")


def test_a_meeting_window_follows_the_change_rules():
    past = {"implementationStart": "2026-11-29T10:00:00Z", "implementationEnd": "2026-11-29T11:00:00Z",
            "timezone": "Europe/Berlin"}
    with pytest.raises(InvalidInput, match="schedule.implementationStart: .* is in the past"):
        submitted(meeting={"required": True}, schedule=past)
    backwards = {**past, "implementationStart": "2026-12-09T11:00:00Z", "implementationEnd": "2026-12-09T10:00:00Z"}
    with pytest.raises(InvalidInput, match="schedule.implementationEnd: .* must be after the start"):
        submitted(meeting={"required": True}, schedule=backwards)
    ok = submitted(meeting={"required": True}, schedule={**past, "implementationStart": "2026-12-09T10:00:00Z",
                                                         "implementationEnd": "2026-12-09T11:00:00Z"})
    assert ok["schedule"]["timezone"] == "Europe/Berlin"


def test_a_type_whose_topic_is_not_configured_is_refused():
    with pytest.raises(InvalidInput, match="type: topic cic-announce is not configured"):
        validate_announcement(good(type="cic"), CUSTOMERS, known_topics=("aws-approval", "announce-approval"))
    with pytest.raises(InvalidInput, match="topic announce-approval is not configured"):
        validate_announcement(good(), CUSTOMERS, known_topics=("finops-announce",))


def test_lifecycle_submitted_approved_cancel_from_either_approved_final():
    a = submitted()
    approved = apply_transition(a, "approve", actor="bob", now=NOW)
    assert approved["status"] == "approved" and approved["version"] == 2
    with pytest.raises(IllegalTransition, match="cannot approve an announcement that is approved; "
                                                "from approved the announcement can: cancel"):
        apply_transition(approved, "approve", actor="bob", now=NOW)
    for action in ("update", "reschedule", "complete"):
        with pytest.raises(InvalidInput, match=f"unknown action '{action}' for an announcement"):
            apply_transition(approved, action, actor="bob", now=NOW)
    cancelled = apply_transition(approved, "cancel", actor="bob", now=NOW)
    assert cancelled["status"] == "cancelled" and cancelled["modifications"][-1]["wasApproved"] is True
    assert apply_transition(a, "cancel", actor="alice", now=NOW)["status"] == "cancelled"
    with pytest.raises(IllegalTransition, match="cancelled is final"):
        apply_transition(cancelled, "cancel", actor="bob", now=NOW)


@pytest.mark.parametrize("kind", list(TYPES))
def test_the_routing_table_sends_each_type_to_its_topic(kind):
    a = submitted(type=kind)
    topic = TYPES[kind][0]
    assert route(a, "submitted", approved_before=False).topic == "announce-approval"
    assert route(a, "approved", approved_before=False).topic == topic
    assert route(a, "cancelled", approved_before=False).topic == "announce-approval"
    assert route(a, "cancelled", approved_before=True).topic == topic
    assert route(a, "approved", approved_before=False).meeting is None  # no meeting asked for
    assert topics_of(a) == ["announce-approval", topic]
    with pytest.raises(ValueError, match="no email topic for the announcement transition 'rescheduled'"):
        route(a, "rescheduled", approved_before=True)


def test_meeting_actions_come_from_the_same_table_for_both_kinds():
    a = submitted(meeting={"required": True}, schedule={"implementationStart": "2026-12-09T10:00:00Z",
                                                       "implementationEnd": "2026-12-09T11:00:00Z",
                                                       "timezone": "UTC"})
    assert route(a, "approved", approved_before=False).meeting == "ensure"
    assert route(a, "cancelled", approved_before=True).meeting == "cancel"
    assert route(a, "cancelled", approved_before=False).meeting is None
    change = {"meeting": {"required": True}}
    assert [route(change, t, approved_before=True).meeting for t in LIFECYCLE_TYPES] == \
        [None, None, "ensure", "update", None, "cancel"]


def _render(kind, obj, **kw):
    return render_email(kind, obj, customer_code="hts", customer_name="HTS <Production>",
                        portal_base_url="https://portal.example.com", transition={"type": "approved", "actor": "bob"},
                        **kw)


def test_emails_escape_text_drop_unsafe_links_and_say_what_to_do():
    a = submitted(title="Cost <script>x</script>", summary="A & B", content="line 1\n<b>line 2</b>",
                  links=[{"title": "Report <1>", "url": "https://r.example.com/?a=1&b=2"}])
    a["links"].append({"title": "evil", "url": "javascript:alert(1)"})  # an archive written by hand
    mail = _render("announcement", a)
    assert mail.subject == "FinOps announcement: Cost <script>x</script>"
    assert "<script>" not in mail.html and "Cost &lt;script&gt;x&lt;/script&gt;" in mail.html
    assert "A &amp; B" in mail.html and "&lt;b&gt;line 2&lt;/b&gt;" in mail.html
    assert 'href="https://r.example.com/?a=1&amp;b=2"' in mail.html and "Report &lt;1&gt;" in mail.html
    assert "javascript:" not in mail.html and "javascript:" not in mail.text
    assert "https://portal.example.com/announcements/ANN-1" in mail.html
    assert "{{amazonSESUnsubscribeUrl}}" in mail.html and "{{amazonSESUnsubscribeUrl}}" in mail.text
    assert "- Report <1>: https://r.example.com/?a=1&b=2" in mail.text  # text: not escaped
    request = _render("announcement_request", a)
    assert request.subject.startswith("Approval required: ") and "What you are asked to do" in request.html
    assert "approve it in the portal" in request.text
    gone = _render("announcement_cancelled", a)
    assert gone.subject.startswith("Cancelled: ") and "withdrawn" in gone.text and "line 2" not in gone.text


def test_emails_name_only_the_readers_customer_unless_configured():
    a = submitted(customers=["hts", "htsnonprod"])
    assert "htsnonprod" not in _render("announcement", a).html
    assert "hts, htsnonprod" in _render("announcement", a, show_customers=True).html


def test_a_meeting_shows_the_join_link_or_that_the_invitation_follows():
    a = submitted(meeting={"required": True}, schedule={"implementationStart": "2026-12-09T15:00:00Z",
                                                       "implementationEnd": "2026-12-09T16:00:00Z",
                                                       "timezone": "Europe/Berlin"})
    joined = _render("announcement", a, meeting={"joinUrl": "https://teams.example.com/j?x=1&y=2"}, zone="Asia/Tokyo")
    assert "https://teams.example.com/j?x=1&amp;y=2" in joined.html
    assert "Thu 10 Dec 2026 00:00 \u2013 01:00 JST (Asia/Tokyo)" in joined.html and "15:00 \u2013 16:00 UTC" in joined.html
    assert joined.subject.endswith("(Thu 10 Dec 2026)")
    assert "invitation will follow" in _render("announcement", a, meeting={"pending": True}).text
    assert "Meeting (cancelled): Thu 10 Dec 2026" in _render("announcement_cancelled", a, zone="Asia/Tokyo").text
