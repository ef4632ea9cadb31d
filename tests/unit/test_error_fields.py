"""Bad input names its field as data (``exc.field``), and the message keeps its ``field: `` text.

The web maps ``exc.field`` to the form field and the API's 422 ``field``; the CLI prints the
message. Both must agree: for every refusal below, the message starts with the field it carries.
"""

from __future__ import annotations

import pytest

from runtime.domain.announcements import validate_announcement
from runtime.domain.errors import ConfigError, InvalidInput, RejectedInput
from runtime.domain.model import check_change_id, validate_change
from runtime.domain.rules import check_known_fields, check_window
from runtime.services.review import check_comment
from runtime.web._forms import form_errors, form_field
from tests.conftest import SAMPLE_CHANGE

KNOWN = ("hts", "htsnonprod")
SCHED = SAMPLE_CHANGE["schedule"]


def refusal(fn, *args, **kwargs) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        fn(*args, **kwargs)
    return info.value


@pytest.mark.parametrize(("change", "field"), [
    ({**SAMPLE_CHANGE, "title": ""}, "title"),
    ({**SAMPLE_CHANGE, "title": "two\nlines"}, "title"),
    ({**SAMPLE_CHANGE, "customers": []}, "customers"),
    ({**SAMPLE_CHANGE, "customers": ["nope"]}, "customers"),
    ({**SAMPLE_CHANGE, "schedule": {**SCHED, "timezone": "Mars/Base"}}, "schedule.timezone"),
    ({**SAMPLE_CHANGE, "schedule": {**SCHED, "implementationStart": "tomorrow"}}, "schedule.implementationStart"),
    ({**SAMPLE_CHANGE, "schedule": {**SCHED, "implementationEnd": SCHED["implementationStart"]}},
     "schedule.implementationEnd"),
    ({**SAMPLE_CHANGE, "schedule": {k: v for k, v in SCHED.items() if k != "timezone"}}, "schedule.timezone"),
    ({**SAMPLE_CHANGE, "meeting": {"required": True, "durationMinutes": 0}}, "meeting.durationMinutes"),
    ({**SAMPLE_CHANGE, "meeting": {"required": "yes"}}, "meeting.required"),
    ({**SAMPLE_CHANGE, "tickets": {"snow": 5}}, "tickets.snow"),
    ({**SAMPLE_CHANGE, "reason": "x" * 200_000}, "reason"),
])
def test_change_validation_names_its_field(change, field):
    exc = refusal(validate_change, change, KNOWN)
    assert exc.field == field
    assert str(exc).startswith(f"{field}: "), str(exc)   # the CLI's text is as it was
    assert not exc.detail().startswith(field)


def test_the_other_rules_name_their_fields():
    assert refusal(check_change_id, "a/b").field == "changeId"
    assert refusal(check_known_fields, {"rolbackPlan": "x"}).field == "rolbackPlan"
    assert refusal(check_known_fields, {"status": "approved"}).field == "status"
    assert refusal(check_known_fields, {"meeting": {"titel": "x"}}).field == "meeting.titel"
    assert refusal(check_window, {**SCHED, "implementationStart": "2020-01-01T00:00:00Z"},
                   "2026-11-30T00:00:00Z").field == "schedule.implementationStart"
    assert refusal(check_comment, "", required=True).field == "comment"
    announcement = {"type": "finops", "title": "t", "customers": ["hts"], "summary": "s", "content": "c",
                    "links": [{"url": "javascript:alert(1)"}]}
    exc = refusal(validate_announcement, announcement, KNOWN)
    assert exc.field == "links[0].url" and str(exc).startswith("links[0].url: ")


def test_detail_drops_only_the_fields_own_prefix():
    exc = InvalidInput("update: nothing to change", field="update")
    assert exc.detail() == "nothing to change"
    assert InvalidInput("reschedule: start: bad", field="start").detail() == "bad"
    assert InvalidInput("timezone: unknown", field="schedule.timezone").detail() == "timezone: unknown"
    assert InvalidInput("no field here").detail() == "no field here" and InvalidInput("x").field is None
    assert RejectedInput("a: b", field="a").field == "a" and ConfigError("c: d", field="c").detail() == "d"


def test_the_form_shows_an_error_at_its_field_from_the_data_not_the_text():
    # the text says one thing, the field another: the field wins (nothing parses the text)
    assert form_errors(InvalidInput("title: Mars/Base is no zone", field="schedule.timezone")) == {
        "timezone": "Title: Mars/Base is no zone"}
    assert form_errors(InvalidInput("schedule.implementationStart: in the past",
                                    field="schedule.implementationStart")) == {"start": "In the past"}
    assert form_errors(InvalidInput("title: looks like a field")) == {"_form": "Title: looks like a field"}
    assert form_field("links[2].url") == "links" and form_field("changeId") is None
