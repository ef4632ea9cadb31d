"""The meeting of a change as data: transactionId, subject, body, times, limits (pure)."""

import copy
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.domain.errors import RejectedInput
from runtime.domain.meetings import (
    EXTENDED_PROPERTY_ID,
    MAX_ATTENDEES,
    CalendarEvent,
    build_meeting_request,
    meeting_metadata,
    transaction_id,
)

PORTAL = "http://127.0.0.1:8080"
CHANGE = {
    "changeId": "CHG-42",
    "title": "Patch the shared VPN gateways",
    "customers": ["hts", "htsnonprod"],
    "schedule": {"implementationStart": "2026-12-08T07:00:00Z",
                 "implementationEnd": "2026-12-08T09:00:00Z",
                 "timezone": "America/New_York"},
    "reason": "Security fixes",
    "implementationPlan": "1. drain\n2. patch",
    "customerImpact": "VPN down 5 minutes",
    "rollbackPlan": "Restore the snapshot",
    "meeting": {"required": True},
}


def change(**overrides):
    c = copy.deepcopy(CHANGE)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(c.get(key), dict):
            c[key].update(value)
        else:
            c[key] = value
    return c


def build(c=None, attendees=("a@example.com",), **kw):
    return build_meeting_request(c or change(), list(attendees), portal_base_url=PORTAL, **kw)


# --- identity --------------------------------------------------------------------------------
def test_transaction_id_is_deterministic_and_per_change():
    assert transaction_id("CHG-42") == transaction_id("CHG-42")
    assert transaction_id("CHG-42") != transaction_id("CHG-43")
    assert build().transaction_id == transaction_id("CHG-42")


def test_transaction_id_is_stable_across_processes():
    # uuid5, not hash(): PYTHONHASHSEED must not change it.
    code = "from runtime.domain.meetings import transaction_id; print(transaction_id('CHG-42'))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, env={"PYTHONHASHSEED": "123"},
                           cwd=Path(__file__).resolve().parents[2]).stdout.strip()
    assert other == transaction_id("CHG-42")


def test_extended_property_id_has_graph_named_property_format():
    assert EXTENDED_PROPERTY_ID.startswith("String {") and EXTENDED_PROPERTY_ID.endswith("} Name ttrChangeId")


# --- subject ---------------------------------------------------------------------------------
def test_subject_defaults_to_the_title():
    assert build().subject == "Change Implementation: Patch the shared VPN gateways"


def test_meeting_title_overrides_the_subject():
    assert build(change(meeting={"title": "VPN patch bridge"})).subject == "VPN patch bridge"


def test_blank_meeting_title_falls_back_to_the_default():
    assert build(change(meeting={"title": "  "})).subject.startswith("Change Implementation: ")


def test_subject_has_no_cr_or_lf():
    req = build(change(title="Line one\r\nBcc: evil@example.com\rx\ny"))
    assert "\r" not in req.subject and "\n" not in req.subject
    assert req.subject == "Change Implementation: Line one Bcc: evil@example.com x y"


# --- body ------------------------------------------------------------------------------------
def test_body_escapes_every_field():
    c = change(title="<script>alert(1)</script>", reason="a & b <b>bold</b>",
               rollbackPlan='"quoted"', customerImpact="<img src=x onerror=alert(1)>")
    body = build(c).body_html
    assert "<script>" not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "a &amp; b &lt;b&gt;bold&lt;/b&gt;" in body
    assert "<img" not in body and "&lt;img src=x onerror=alert(1)&gt;" in body
    assert "&quot;quoted&quot;" in body


def test_body_has_the_details_and_the_portal_link():
    body = build().body_html
    for text in ("CHG-42", "Security fixes", "1. drain<br>\n2. patch", "VPN down 5 minutes",
                 "Restore the snapshot"):
        assert text in body
    assert f'href="{PORTAL}/changes/CHG-42"' in body


def test_one_meeting_for_every_customer_names_none_of_them_and_hides_attendees():
    req = build()
    assert "hts" not in req.body_html and "Customers" not in req.body_html
    assert req.hide_attendees is True
    shown = build(show_customers=True, hide_attendees=False)
    assert "hts, htsnonprod" in shown.body_html and shown.hide_attendees is False


# --- times -----------------------------------------------------------------------------------
def test_times_are_wall_clock_in_the_change_timezone():
    req = build()
    assert (req.start, req.end, req.time_zone) == ("2026-12-08T02:00:00", "2026-12-08T04:00:00",
                                                   "America/New_York")


def test_offsets_in_the_schedule_are_converted():
    req = build(change(schedule={"implementationStart": "2026-12-08T08:00:00+01:00",
                                 "timezone": "Asia/Tokyo"}))
    assert req.start == "2026-12-08T16:00:00" and req.time_zone == "Asia/Tokyo"


def test_duration_minutes_sets_the_end():
    req = build(change(meeting={"durationMinutes": 30}))
    assert (req.start, req.end) == ("2026-12-08T02:00:00", "2026-12-08T02:30:00")


def test_duration_is_elapsed_time_across_a_dst_change():
    # 2026-11-01 01:30 EDT + 60 minutes = 01:30 EST (the clock fell back in between).
    req = build(change(schedule={"implementationStart": "2026-11-01T05:30:00Z"},
                       meeting={"durationMinutes": 60}))
    assert (req.start, req.end) == ("2026-11-01T01:30:00", "2026-11-01T01:30:00")


def test_a_broken_schedule_is_rejected_input():
    with pytest.raises(RejectedInput) as err:
        build(change(schedule={"timezone": "Mars/Olympus"}))
    assert err.value.code == "invalid_schedule"


# --- attendees and location ------------------------------------------------------------------
def test_attendees_are_deduplicated_case_insensitively():
    req = build(attendees=["A@example.com", "a@example.com", " b@example.com ", ""])
    assert req.attendees == ("A@example.com", "b@example.com")


def test_exactly_max_attendees_is_fine():
    assert len(build(attendees=[f"u{i}@example.com" for i in range(MAX_ATTENDEES)]).attendees) == 500


def test_more_than_max_attendees_is_rejected():
    with pytest.raises(RejectedInput) as err:
        build(attendees=[f"u{i}@example.com" for i in range(MAX_ATTENDEES + 1)])
    assert err.value.code == "too_many_attendees"
    assert "501" in str(err.value)


def test_location_comes_from_the_meeting():
    assert build().location is None
    assert build(change(meeting={"location": "Room 4"})).location == "Room 4"


def test_the_request_carries_the_change_id():
    assert build().change_id == "CHG-42"


# --- metadata --------------------------------------------------------------------------------
def test_meeting_metadata_shape():
    ev = CalendarEvent(id="AAMk1", subject="S", start="2026-12-08T02:00:00-05:00",
                       end="2026-12-08T04:00:00-05:00", join_url="https://teams/x",
                       organizer="cal@example.com", attendee_count=3)
    assert meeting_metadata(ev) == {
        "meetingId": "AAMk1", "joinUrl": "https://teams/x", "subject": "S",
        "startTime": "2026-12-08T02:00:00-05:00", "endTime": "2026-12-08T04:00:00-05:00",
        "organizer": "cal@example.com", "attendeeCount": 3}
