"""The calendar file and the MIME message around it (pure), read back with strict parsers."""

from email import message_from_bytes
from email.policy import default as default_policy

import icalendar
import pytest

from runtime.emails import UNSUBSCRIBE_PLACEHOLDER
from runtime.emails.ics import calendar_uid, render_calendar, sequence_of
from runtime.emails.mime import build_mime

PORTAL = "http://127.0.0.1:8080/changes/CHG-7"


def change(**over):
    base = {"changeId": "CHG-7", "title": "Patch; the, fleet\\now", "customers": ["hts", "acme"],
            "schedule": {"implementationStart": "2026-12-08T02:00:00-05:00",
                         "implementationEnd": "2026-12-08T04:00:00-05:00", "timezone": "America/New_York"},
            "modifications": [
                {"type": "submitted", "seq": 1, "timestamp": "2026-11-28T10:00:00Z", "customers": ["hts"]},
                {"type": "approved", "seq": 2, "timestamp": "2026-11-28T11:00:00Z", "customers": ["hts"]},
                {"type": "processed", "key": "processed:hts:1"},
                {"type": "rescheduled", "seq": 3, "timestamp": "2026-11-29T09:30:00Z", "customers": ["hts"],
                 "schedule": {"implementationStart": "2026-12-09T07:00:00Z",
                              "implementationEnd": "2026-12-09T07:45:00Z", "timezone": "UTC"}},
                {"type": "cancelled", "seq": 4, "timestamp": "2026-11-30T08:00:00Z", "customers": ["hts"]},
            ]}
    base.update(over)
    return base


def entry(ch, seq):
    return next(m for m in ch["modifications"] if m.get("seq") == seq)


def parse(text):
    cal = icalendar.Calendar.from_ical(text)
    [ev] = cal.walk("VEVENT")
    return cal, ev


def test_approved_calendar_is_valid_rfc5545_in_utc():
    ch = change()
    text = render_calendar(ch, entry(ch, 2), cancelled=False, portal_link=PORTAL, join_url="https://t.example/j?a=1")
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    assert all(len(line.encode()) <= 75 for line in text.split("\r\n"))
    cal, ev = parse(text)
    assert (str(cal["VERSION"]), str(cal["METHOD"])) == ("2.0", "PUBLISH")
    assert str(ev["UID"]) == calendar_uid("CHG-7") == "CHG-7@ttr.change-notifications"
    assert int(ev["SEQUENCE"]) == 1 and str(ev["STATUS"]) == "CONFIRMED"
    assert ev.decoded("DTSTART").isoformat() == "2026-12-08T07:00:00+00:00"
    assert ev.decoded("DTEND").isoformat() == "2026-12-08T09:00:00+00:00"
    assert ev.decoded("DTSTAMP").isoformat() == "2026-11-28T11:00:00+00:00"
    assert str(ev["SUMMARY"]) == "Patch; the, fleet\\now"  # escaped on the wire, intact when read
    assert str(ev["LOCATION"]) == "https://t.example/j?a=1" and str(ev["URL"]) == PORTAL
    assert "hts" not in text and "acme" not in text


def test_sequence_rises_with_each_move_and_a_cancel_is_cancelled():
    ch = change()
    seqs = [sequence_of(ch, s) for s in (2, 3, 4)]
    assert seqs == sorted(set(seqs)) == [1, 2, 3]
    _, moved = parse(render_calendar(ch, entry(ch, 3), cancelled=False, portal_link=PORTAL))
    assert moved.decoded("DTSTART").isoformat() == "2026-12-09T07:00:00+00:00"  # the transition's schedule
    _, gone = parse(render_calendar(ch, entry(ch, 4), cancelled=True, portal_link=PORTAL))
    assert str(gone["STATUS"]) == "CANCELLED" and int(gone["SEQUENCE"]) == 3
    assert str(gone["UID"]) == calendar_uid("CHG-7")


def test_long_and_non_ascii_titles_fold_without_splitting_a_character():
    ch = change(title="Ünïcödé " * 40)
    text = render_calendar(ch, entry(ch, 2), cancelled=False, portal_link=PORTAL)
    assert all(len(line.encode()) <= 75 for line in text.split("\r\n"))
    assert str(parse(text)[1]["SUMMARY"]) == ("Ünïcödé " * 40).strip()


@pytest.mark.parametrize("schedule", [{}, {"implementationStart": "soon", "implementationEnd": "later"},
                                      {"implementationStart": "2026-12-08T09:00:00Z",
                                       "implementationEnd": "2026-12-08T08:00:00Z"}])
def test_an_unreadable_window_gives_no_file(schedule):
    ch = change(schedule=schedule)
    assert render_calendar(ch, entry(ch, 2), cancelled=False, portal_link=PORTAL) is None


def test_mime_message_has_text_html_and_the_calendar_with_the_placeholder_intact():
    ch = change()
    ics = render_calendar(ch, entry(ch, 2), cancelled=False, portal_link=PORTAL)
    long_line = "x" * 300
    raw = build_mime(sender="n@hts.example.com", to="a@example.com", subject="Approved: Ünï (Tue 8 Dec 2026)",
                     text=f"hello\n{long_line}\n{UNSUBSCRIBE_PLACEHOLDER}\n",
                     html=f"<p>{long_line}</p>\n<a\n href=\"{UNSUBSCRIBE_PLACEHOLDER}\"\n>x</a>", calendar=ics)
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert raw.count(UNSUBSCRIBE_PLACEHOLDER.encode()) == 2  # quoted-printable, never base64
    msg = message_from_bytes(raw, policy=default_policy)
    assert msg.get_content_type() == "multipart/mixed"
    assert str(msg["Subject"]) == "Approved: Ünï (Tue 8 Dec 2026)"
    assert long_line in msg.get_body(("plain",)).get_content()
    assert long_line in msg.get_body(("html",)).get_content()
    [cal] = [p for p in msg.walk() if p.get_content_type() == "text/calendar"]
    assert cal.get_param("method") == "PUBLISH" and cal.get_filename() == "change.ics"
    assert parse(cal.get_payload(decode=True))[1]["UID"] == calendar_uid("CHG-7")


def test_each_recipient_gets_its_own_to_header_over_the_same_body():
    kw = dict(sender="n@hts.example.com", subject="Approved: x", text="t\n", html="<p>h</p>", calendar=None)
    a = message_from_bytes(build_mime(to="a@example.com", **kw), policy=default_policy)
    b = message_from_bytes(build_mime(to="b@example.com", **kw), policy=default_policy)
    assert (str(a["To"]), str(b["To"])) == ("a@example.com", "b@example.com")
    assert len(a.get_all("To")) == 1 and a["Date"] and a["From"] == "n@hts.example.com"
    assert a.get_body(("html",)).get_content() == b.get_body(("html",)).get_content()
    intl = message_from_bytes(build_mime(to="jörg@example.com", **kw), policy=default_policy)
    assert str(intl["To"]) == "jörg@example.com"
