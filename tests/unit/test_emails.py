"""Notification emails: content, escaping, subjects, schedules in the change's zone (pure)."""

import re

import pytest

from runtime.emails import (
    KIND_FOR_TRANSITION,
    KINDS,
    UNSUBSCRIBE_PLACEHOLDER,
    RenderedEmail,
    format_schedule,
    render_email,
)

PORTAL = "http://127.0.0.1:8080"
XSS = "<script>alert(1)</script>"


def change(**over):
    base = {
        "changeId": "CHG-1234", "title": "Patch the database fleet", "customers": ["hts", "htsnonprod"],
        "status": "submitted", "version": 1, "createdAt": "2026-11-28T12:00:00.000Z", "createdBy": "alice",
        "reason": "Security fix for CVE-2026-0001", "implementationPlan": "1. Drain\n2. Patch\n3. Restore",
        "customerImpact": "Five minutes of read-only mode", "rollbackPlan": "Restore the snapshot",
        "testPlan": "Run the smoke tests", "tickets": {"snow": "CHG0012345", "jira": "OPS-42"},
        "schedule": {"implementationStart": "2026-12-08T07:00:00Z",
                     "implementationEnd": "2026-12-08T09:00:00Z", "timezone": "America/New_York"},
        "meeting": {"required": False}, "modifications": [],
    }
    base.update(over)
    return base


def transition(type_="submitted", **over):
    return {"type": type_, "timestamp": "2026-11-28T12:12:41.266Z", "actor": "bob", "seq": 1,
            "customers": ["hts"], **over}


def render(kind="approval_request", chg=None, trans=None, **kw):
    return render_email(kind, chg if chg is not None else change(), customer_code="hts",
                        customer_name="HTS Production", portal_base_url=PORTAL,
                        transition=trans if trans is not None else transition(), **kw)


def visible_text(html):
    return re.sub(r"<[^>]+>", " ", html)


ALL_KINDS = sorted(KINDS)


def test_kind_for_transition_covers_every_lifecycle_type():
    from runtime.domain.model import LIFECYCLE_TYPES
    assert set(KIND_FOR_TRANSITION) == set(LIFECYCLE_TYPES)
    assert set(KIND_FOR_TRANSITION.values()) == set(KINDS) - {"removed"}  # removed: no transition of its own


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_every_kind_renders_with_the_essentials(kind):
    email = render(kind, trans=transition(kind if kind != "approval_request" else "submitted"))
    assert isinstance(email, RenderedEmail)
    assert email.subject.endswith(": Patch the database fleet (Tue 8 Dec 2026)")
    for part in (email.html, email.text):
        assert "Patch the database fleet" in part
        assert "CHG-1234" in part
        assert "HTS Production" in part
        assert "htsnonprod" not in part  # each customer is told only about itself
        if kind != "removed":  # the notice of a removal carries no details
            assert "Security fix for CVE-2026-0001" in part
            assert "Restore the snapshot" in part
            assert "Run the smoke tests" in part
            assert "bob" in part
        assert "CHG0012345" in part and "OPS-42" in part
        assert f"{PORTAL}/changes/CHG-1234" in part
        assert UNSUBSCRIBE_PLACEHOLDER in part
        assert "Sent by the change notification service on behalf of HTS Production" in part
        assert "None" not in part


@pytest.mark.parametrize("kind, prefix", [
    ("approval_request", "Approval required"), ("approved", "Approved"), ("completed", "Completed"),
    ("cancelled", "Cancelled"), ("rescheduled", "Rescheduled")])
def test_subject_prefix_per_kind(kind, prefix):
    assert render(kind).subject == f"{prefix}: Patch the database fleet (Tue 8 Dec 2026)"


def test_updated_approval_request_lists_the_changed_fields():
    email = render("approval_request", trans=transition("updated", fields=["title", "implementationPlan"]),
                   first_request=False)
    assert email.subject == "Updated \u2014 approval required: Patch the database fleet (Tue 8 Dec 2026)"
    assert "Changed: Title, Implementation plan" in email.text
    assert "Title, Implementation plan" in email.html
    assert "Review and approve" in email.html


def test_first_approval_request_has_no_changed_fields_line():
    email = render("approval_request", trans=transition("updated", fields=["customers"]))
    assert "Changed:" not in email.text


def test_approval_request_has_a_review_button_to_the_portal():
    email = render("approval_request")
    assert re.search(r'<a href="http://127\.0\.0\.1:8080/changes/CHG-1234"[^>]*>Review and approve</a>', email.html)
    assert f"Review and approve: {PORTAL}/changes/CHG-1234" in email.text
    assert "Review and approve" not in render("approved").html


def test_portal_link_quotes_the_id_and_tolerates_a_trailing_slash():
    email = render_email("approved", change(changeId="a b/c?"), customer_code="hts", customer_name="HTS",
                         portal_base_url=PORTAL + "/", transition=transition("approved"))
    assert f"{PORTAL}/changes/a%20b%2Fc%3F" in email.text
    assert "//changes" not in email.text


# ---------------------------------------------------------------------------------------------
# Escaping


def test_html_escapes_the_title_everywhere():
    email = render(chg=change(title=XSS))
    assert XSS not in email.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in email.html
    assert XSS in email.text  # plain text is not escaped
    assert "&lt;" not in email.text
    assert email.subject == f"Approval required: {XSS} (Tue 8 Dec 2026)"


@pytest.mark.parametrize("field", ["reason", "implementationPlan", "customerImpact", "rollbackPlan", "testPlan"])
def test_html_escapes_free_text_fields(field):
    email = render(chg=change(**{field: f'{XSS}\n<img src=x onerror="alert(2)">'}))
    assert "<script>" not in email.html and "<img" not in email.html
    assert "&lt;img src=x onerror=&#34;alert(2)&#34;&gt;" in email.html
    assert XSS in email.text


def test_html_escapes_other_user_values():
    chg = change(tickets={"snow": XSS, "jira": None}, customers=[XSS], changeId="CHG-1")
    email = render_email("cancelled", chg, customer_code="hts", customer_name="<b>Evil</b>",
                         portal_base_url=PORTAL, transition=transition("cancelled", actor=XSS, note=XSS))
    assert "<script>" not in email.html and "<b>Evil</b>" not in email.html
    assert "&lt;b&gt;Evil&lt;/b&gt;" in email.html


def test_multiline_text_keeps_its_line_breaks():
    email = render(chg=change(implementationPlan="1. Drain & wait\n2. Patch\r\n3. Restore"))
    assert "1. Drain &amp; wait<br>\n2. Patch<br>\n3. Restore" in email.html
    assert "1. Drain & wait\n2. Patch\n3. Restore" in email.text.replace("\r\n", "\n")


def test_text_part_has_no_html_tags():
    for kind in ALL_KINDS:
        text = render(kind, trans=transition("rescheduled", previousSchedule=change()["schedule"])).text
        assert not re.search(r"</?[A-Za-z][^>]*>", text), kind
        assert "&amp;" not in text and "&lt;" not in text


# ---------------------------------------------------------------------------------------------
# Subjects


def test_subject_strips_control_characters():
    email = render(chg=change(title="Line one\r\nBcc: evil@example.com\tand\x00\u2028more"))
    assert not re.search(r"[\x00-\x1f\x7f\u2028\u2029]", email.subject)
    assert email.subject == "Approval required: Line one Bcc: evil@example.com and more (Tue 8 Dec 2026)"


def test_subject_is_capped():
    email = render(chg=change(title="x" * 500))
    assert len(email.subject) <= 200
    assert email.subject.startswith("Approval required: xxx")
    assert email.subject.endswith("\u2026 (Tue 8 Dec 2026)")  # the title is cut, never the date


def test_missing_title_falls_back_to_the_change_id():
    assert render(chg=change(title=None)).subject == "Approval required: CHG-1234 (Tue 8 Dec 2026)"


# ---------------------------------------------------------------------------------------------
# Schedules


def test_schedule_is_shown_in_the_changes_own_time_zone():
    email = render()
    expected = "Tue 8 Dec 2026 02:00 \u2013 04:00 EST (America/New_York)"
    assert expected in email.text
    assert expected in email.html
    assert "In UTC: Tue 8 Dec 2026 07:00 \u2013 09:00 UTC" in email.text  # UTC beside it
    assert "Duration: 2 hours" in email.text


def test_schedule_spanning_midnight_repeats_the_date():
    sched = {"implementationStart": "2026-12-08T22:00:00+01:00", "implementationEnd": "2026-12-09T01:30:00Z",
             "timezone": "Europe/Paris"}
    assert format_schedule(sched) == "Tue 8 Dec 2026 22:00 \u2013 Wed 9 Dec 2026 02:30 CET (Europe/Paris)"


def test_schedule_over_a_dst_switch_names_both_abbreviations():
    sched = {"implementationStart": "2026-11-01T04:30:00Z", "implementationEnd": "2026-11-01T08:00:00Z",
             "timezone": "America/New_York"}
    assert format_schedule(sched) == "Sun 1 Nov 2026 00:30 EDT \u2013 03:00 EST (America/New_York)"


def test_schedule_with_unknown_zone_or_bad_times_does_not_crash():
    assert format_schedule({"implementationStart": "2026-12-08T07:00:00Z",
                            "implementationEnd": "2026-12-08T09:00:00Z", "timezone": "Mars/Olympus"}) == \
        "Tue 8 Dec 2026 07:00 \u2013 09:00 UTC (UTC)"
    assert format_schedule({"implementationStart": "soon", "timezone": "UTC"}) == "soon"
    assert format_schedule(None) == ""


def test_actor_and_time_of_the_transition_are_shown_in_the_changes_zone():
    email = render("approved", trans=transition("approved", actor="carol"))
    assert "Approved by carol on Sat 28 Nov 2026 07:12 EST" in email.text


def test_rescheduled_shows_previous_and_new_schedule():
    old = {"implementationStart": "2026-12-01T07:00:00Z", "implementationEnd": "2026-12-01T09:00:00Z",
           "timezone": "America/New_York"}
    email = render("rescheduled", trans=transition("rescheduled", previousSchedule=old))
    assert "Previous schedule: Tue 1 Dec 2026 02:00 \u2013 04:00 EST (America/New_York)" in email.text
    assert "New schedule: Tue 8 Dec 2026 02:00 \u2013 04:00 EST (America/New_York)" in email.text
    assert "Tue 1 Dec 2026 02:00" in email.html and "Tue 8 Dec 2026 02:00" in email.html


def test_rescheduled_prefers_the_schedule_recorded_on_the_transition():
    # Processing an older reschedule after a newer one: the email describes the one it is about.
    then = {"implementationStart": "2026-12-05T07:00:00Z", "implementationEnd": "2026-12-05T09:00:00Z",
            "timezone": "America/New_York"}
    email = render("rescheduled", trans=transition("rescheduled", previousSchedule={}, schedule=then))
    assert "New schedule" not in email.text  # no previous schedule to contrast with
    assert "Schedule: Sat 5 Dec 2026 02:00" in email.text


# ---------------------------------------------------------------------------------------------
# Robustness


def test_minimal_change_renders_without_none_or_empty_sections():
    email = render_email("completed", {"changeId": "CHG-9"}, customer_code="hts", customer_name="HTS",
                         portal_base_url=PORTAL, transition={})
    for part in (email.html, email.text):
        assert "None" not in part
        assert "Reason" not in part and "Schedule" not in part and "ServiceNow" not in part
        assert "CHG-9" in part
    assert email.subject == "Completed: CHG-9"


def test_unknown_kind_raises():
    with pytest.raises(ValueError, match="unknown email kind"):
        render("submitted")


def test_unsubscribe_placeholder_is_emitted_literally():
    html = render("approved").html
    assert f'href="{UNSUBSCRIBE_PLACEHOLDER}"' in html
    assert UNSUBSCRIBE_PLACEHOLDER == "{{amazonSESUnsubscribeUrl}}"


def test_html_is_a_complete_document():
    html = render().html
    assert html.lstrip().startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert "HTS Production" in visible_text(html)


# ---------------------------------------------------------------------------------------------
# What a customer's recipient sees (second wave)


def test_other_customers_are_named_only_when_configured():
    chg = change(customers=["hts", "acme"])
    for kind in ALL_KINDS:
        email = render(kind, chg=chg, trans=transition("approved"))
        assert "acme" not in email.html + email.text + email.subject, kind
        assert "Affected customers" not in email.html
    shown = render("approved", chg=chg, show_customers=True)
    assert "Affected customers: hts, acme" in shown.text


def test_times_in_the_readers_zone_with_utc_and_duration():
    email = render("approved", zone="Asia/Tokyo")
    assert "Schedule: Tue 8 Dec 2026 16:00 \u2013 18:00 JST (Asia/Tokyo)" in email.text
    assert "In UTC: Tue 8 Dec 2026 07:00 \u2013 09:00 UTC" in email.text
    assert "Duration: 2 hours" in email.text
    assert "Tue 8 Dec 2026 16:00" in email.html
    # the date in the subject is the reader's: 23:30 UTC is already the next day in Tokyo
    late = change(schedule={"implementationStart": "2026-12-08T23:30:00Z",
                            "implementationEnd": "2026-12-09T01:00:00Z", "timezone": "UTC"})
    assert render("approved", chg=late, zone="Asia/Tokyo").subject.endswith("(Wed 9 Dec 2026)")
    assert render("approved", chg=late).subject.endswith("(Tue 8 Dec 2026)")
    assert "Duration: 1 hour 30 minutes" in render("approved", chg=late).text
    assert "In UTC" not in render("approved", chg=late).text  # already in UTC: said once


def test_an_unknown_reader_zone_falls_back_to_the_changes():
    assert "02:00 \u2013 04:00 EST (America/New_York)" in render(zone="Not/AZone").text


def test_approved_email_carries_the_join_url_or_says_the_invitation_will_follow():
    url = "https://teams.example.invalid/l/meetup-join/abc?x=1&y=2"
    email = render("approved", meeting={"joinUrl": url})
    assert f"Teams meeting: {url}" in email.text
    assert email.html.count('href="https://teams.example.invalid/l/meetup-join/abc?x=1&amp;y=2"') == 2  # button + row
    pending = render("approved", meeting={"pending": True})
    assert "the invitation will follow" in pending.text
    assert "invitation will follow" in pending.html
    assert "Teams meeting" not in render("approved").text  # no meeting asked for


def test_approval_request_says_what_to_do_and_by_when():
    email = render("approval_request", zone="Europe/Paris")
    assert ("What you are asked to do: review this change and approve it in the portal before "
            "Tue 8 Dec 2026 08:00 CET (07:00 UTC), when the work is due to start.") in email.text
    assert "It will not go ahead until it is approved." in email.text
    assert "What you are asked to do:" in email.html and "Tue 8 Dec 2026 08:00 CET (07:00 UTC)" in email.html


@pytest.mark.parametrize("kind", sorted(["approved", "rescheduled", "cancelled"]))
def test_calendar_kinds_mention_the_attached_file(kind):
    assert "change.ics" in render(kind).text
    assert "change.ics" not in render("completed").text


def test_removed_notice_says_plainly_that_nothing_more_will_come():
    email = render("removed", trans=transition("updated", customers=["acme"]))
    assert email.subject == "No longer affects you: Patch the database fleet (Tue 8 Dec 2026)"
    assert "This change no longer affects HTS Production" in email.text
    assert "acme" not in email.text + email.html


def test_unsubscribe_placeholder_sits_on_a_short_line_of_its_own():
    # Quoted-printable folds lines over 76 characters: the placeholder must not be split.
    for part in (render().html, render().text):
        [line] = [ln for ln in part.splitlines() if UNSUBSCRIBE_PLACEHOLDER in ln]
        assert len(line) < 76


@pytest.mark.parametrize("transition_type, first", [("submitted", True), ("updated", False), ("approved", True),
                                                    ("completed", True), ("cancelled", True), ("rescheduled", True)])
def test_subject_line_is_the_subject_the_email_carries(transition_type, first):
    # the chaos runner counts deliveries by subject_line: it must be the email's own subject, date aside
    from runtime.emails import subject_line

    kind = KIND_FOR_TRANSITION[transition_type]
    email = render(kind, trans=transition(transition_type), first_request=first)
    assert email.subject == subject_line(kind, "Patch the database fleet", first_request=first, day="Tue 8 Dec 2026")
    assert subject_line(kind, "Patch the database fleet", first_request=first) == email.subject.removesuffix(
        " (Tue 8 Dec 2026)")
    assert subject_line(kind, "  \n").endswith(": (untitled change)")
