"""Authoring rules (pure): unknown fields, past windows, early completion, review entries, the
window's phase."""

from datetime import datetime, timezone

import pytest

from runtime.domain.errors import IllegalTransition, InvalidInput, StaleVersion
from runtime.domain.processing import plan
from runtime.domain.rules import check_complete, check_known_fields, check_window, window_from_today
from runtime.services.lifecycle import apply_transition, new_archive
from runtime.services.review import comments, open_request, review_entry
from runtime.web._views import window_phase

KNOWN = ("hts", "htsnonprod")
NOW = "2026-11-28T12:00:00.000Z"
CONTENT = {"title": "T", "customers": ["hts"],
           "schedule": {"implementationStart": "2026-12-08T02:00:00Z",
                        "implementationEnd": "2026-12-08T03:00:00Z", "timezone": "UTC"}}


def submitted():
    return new_archive(CONTENT, change_id="CHG-1", actor="ann", now=NOW, known_customers=KNOWN)


@pytest.mark.parametrize("content, message", [
    ({"rolbackPlan": "x"}, "rolbackPlan: unknown field; did you mean rollbackPlan?"),
    ({"Title": "x"}, "Title: unknown field; did you mean title?"),
    ({"customer": ["hts"]}, "customer: unknown field; did you mean customers?"),
    ({"schedule": {"timeZone": "UTC"}}, "schedule.timeZone: unknown field; did you mean schedule.timezone?"),
    ({"meeting": {"requird": True}}, "meeting.requird: unknown field; did you mean meeting.required?"),
    ({"zzzz": 1}, "zzzz: unknown field (known: changeId, title"),
    ({"version": 3}, "version: managed by ttr"),
])
def test_unknown_fields_are_refused_with_the_nearest_known_one(content, message):
    with pytest.raises(InvalidInput) as exc:
        check_known_fields(content)
    assert str(exc.value).startswith(message)


def test_x_fields_and_known_fields_pass():
    check_known_fields({**CONTENT, "x-team": "net", "schedule": {**CONTENT["schedule"], "x-note": 1},
                        "meeting": {"required": True, "durationMinutes": 30, "x-room": "A"},
                        "tickets": {"snow": "1", "other": "2"}, "changeId": "CHG-9"})


def test_a_past_start_is_refused_unless_allowed():
    sched = CONTENT["schedule"]
    check_window(sched, "2026-12-08T01:59:00Z")
    check_window(sched, "2026-12-08T02:00:30Z")          # within the same minute: the form's precision
    with pytest.raises(InvalidInput, match=r"^schedule.implementationStart: .* is in the past \(it is now "
                                           r"2026-12-08 02:01 UTC\)"):
        check_window(sched, "2026-12-08T02:01:00Z")
    check_window(sched, "2027-01-01T00:00:00Z", allow_past=True)


def test_lifecycle_applies_the_window_rule_on_submit_update_and_reschedule():
    late = "2026-12-10T00:00:00.000Z"
    with pytest.raises(InvalidInput, match="^schedule.implementationStart"):
        new_archive(CONTENT, change_id="CHG-1", actor="ann", now=late, known_customers=KNOWN)
    assert new_archive(CONTENT, change_id="CHG-1", actor="ann", now=late, known_customers=KNOWN,
                       allow_past=True)["version"] == 1
    ch = submitted()
    past = {"implementationStart": "2026-11-01T02:00:00Z", "implementationEnd": "2026-11-01T03:00:00Z",
            "timezone": "UTC"}
    with pytest.raises(InvalidInput, match="in the past"):
        apply_transition(ch, "update", actor="a", now=NOW, params={"schedule": past}, known_customers=KNOWN)
    with pytest.raises(InvalidInput, match="in the past"):
        apply_transition(ch, "reschedule", actor="a", now=NOW, known_customers=KNOWN,
                         params={"start": past["implementationStart"], "end": past["implementationEnd"]})
    out = apply_transition(ch, "update", actor="a", now=NOW, known_customers=KNOWN,
                           params={"schedule": past, "allow_past": True})
    assert out["schedule"] == past and "allow_past" not in out and "allow_past" not in out["modifications"][-1]
    # a change whose window passed may still get a text fix: the window is judged only when it changes
    assert apply_transition(ch, "update", actor="a", now=late, params={"title": "T2"},
                            known_customers=KNOWN)["title"] == "T2"
    with pytest.raises(InvalidInput, match="did you mean rollbackPlan"):
        apply_transition(ch, "update", actor="a", now=NOW, params={"rolbackPlan": "x"}, known_customers=KNOWN)


def test_completing_before_the_window_needs_before_start():
    ch = apply_transition(submitted(), "approve", actor="bob", now=NOW, known_customers=KNOWN)
    with pytest.raises(InvalidInput, match="^beforeStart: the window has not started yet"):
        apply_transition(ch, "complete", actor="bob", now=NOW, known_customers=KNOWN)
    assert apply_transition(ch, "complete", actor="bob", now=NOW, known_customers=KNOWN,
                            params={"before_start": True})["status"] == "completed"
    assert apply_transition(ch, "complete", actor="bob", now="2026-12-08T02:30:00Z",
                            known_customers=KNOWN)["status"] == "completed"
    check_complete({"schedule": {}}, NOW)  # no readable window: nothing to compare


def test_window_from_today_is_in_the_future_in_its_zone():
    today = datetime(2026, 3, 7, 12, 0, tzinfo=timezone.utc)  # DST starts in New York on 8 March
    w = window_from_today(2, today=today)
    assert w == {"implementationStart": "2026-03-09T02:00:00-04:00", "implementationEnd": "2026-03-09T04:00:00-04:00",
                 "timezone": "America/New_York"}
    w = window_from_today(7)
    check_window(w, datetime.now(timezone.utc))


# review ---------------------------------------------------------------------------------------

def test_request_changes_is_an_entry_not_a_transition():
    ch = submitted()
    entry = review_entry(ch, "changes_requested", actor="bob", now=NOW, comment="  Add a rollback plan \r\n")
    assert entry["comment"] == "Add a rollback plan" and entry["version"] == 1 and "seq" not in entry
    ch["modifications"].append(entry)
    assert ch["version"] == 1 and ch["status"] == "submitted"
    # processing sees nothing new: the approval request (seq 1) is all there is to send
    assert [s.seq for s in plan(ch, "hts").steps] == [1]
    assert open_request(ch)["actor"] == "bob"
    ch["modifications"].append(review_entry(ch, "comment", actor="ann", now=NOW, comment="On it"))
    assert open_request(ch)["comment"] == "Add a rollback plan"        # a comment does not answer it
    assert [c["type"] for c in comments(ch)] == ["changes_requested", "comment"]
    updated = apply_transition(ch, "update", actor="ann", now=NOW, params={"rollbackPlan": "Revert"},
                               known_customers=KNOWN)
    assert open_request(updated) is None and [s.seq for s in plan(updated, "hts").steps] == [1, 2]


@pytest.mark.parametrize("comment", [None, "", "   "])
def test_a_request_for_changes_needs_a_comment(comment):
    with pytest.raises(InvalidInput, match="^comment: a comment is required"):
        review_entry(submitted(), "changes_requested", actor="bob", now=NOW, comment=comment)


def test_review_refusals():
    with pytest.raises(InvalidInput, match="^comment: 4001 characters"):
        review_entry(submitted(), "comment", actor="bob", now=NOW, comment="x" * 4001)
    approved = apply_transition(submitted(), "approve", actor="bob", now=NOW, known_customers=KNOWN)
    with pytest.raises(IllegalTransition, match="cannot request changes on a change that is approved"):
        review_entry(approved, "changes_requested", actor="bob", now=NOW, comment="x")
    assert review_entry(approved, "comment", actor="bob", now=NOW, comment="x")["type"] == "comment"
    with pytest.raises(StaleVersion):
        review_entry(submitted(), "changes_requested", actor="bob", now=NOW, comment="x", expected_version=4)


# the window's phase ------------------------------------------------------------------------------

@pytest.mark.parametrize("now, state, text", [
    ("2026-11-23T02:00:00Z", "upcoming", "Starts in 15 days"),
    ("2026-12-07T20:00:00Z", "upcoming", "Starts in 6 hours"),
    ("2026-12-08T01:59:00Z", "upcoming", "Starts in 1 minute"),
    ("2026-12-08T02:30:00Z", "in_progress", "In progress; ends in 30 minutes"),
    ("2026-12-08T05:00:00Z", "ended", "Ended 2 hours ago"),
    ("2026-12-11T03:00:00Z", "ended", "Ended 3 days ago"),
])
def test_window_phase_is_derived_from_now(now, state, text):
    phase = window_phase(CONTENT["schedule"], datetime.fromisoformat(now.replace("Z", "+00:00")))
    assert phase == {"state": state, "text": text}


def test_window_phase_without_a_window():
    assert window_phase({}, datetime.now(timezone.utc))["state"] == "unscheduled"


# words --------------------------------------------------------------------------------------------

def test_topic_display_names_default_and_configured():
    from types import SimpleNamespace

    from runtime.domain.words import topic_display, topic_names

    assert topic_display("aws-announce") == "Change announcements"
    assert topic_display("finops-announce") == "FinOps announcements"      # a default topic
    assert topic_display("sec-advisories") == "Sec advisories"             # unknown: words, not a key
    from runtime.domain.config import DEFAULT_TOPICS, TopicConfig

    cfg = SimpleNamespace(topics=[t.model_copy(update={"display": "Announcements"}) if t.name == "aws-announce"
                                  else t for t in DEFAULT_TOPICS]
                          + [TopicConfig(name="sec-advisories", display="Security news")])
    names = topic_names(cfg)
    assert topic_display("aws-announce", names=names) == "Announcements"
    assert topic_display("sec-advisories", cfg) == "Security news" and topic_display("aws-approval", cfg) == "Change approvals"


def test_not_found_says_what_was_not_found():
    from runtime.web._views import not_found_text

    assert not_found_text("/changes/CHG-x").startswith("There is no change CHG-x.")
    assert not_found_text("/drafts/CHG-y").startswith("There is no draft CHG-y.")
    assert not_found_text("/changes/CHG-x/edit").startswith("There is no change CHG-x.")
    assert not_found_text("/nowhere") == "There is no page at this address."
    assert not_found_text("/changes/CHG-x/frobnicate") == "There is no page at this address."
