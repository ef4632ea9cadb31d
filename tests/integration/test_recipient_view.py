"""What a customer's recipient sees, end to end in-process: handler -> SES on the moto server
(raw MIME parsed here), MeetingService -> msgraph-sdk -> the Graph emulator.

Privacy between customers, the join URL in every approved email, the calendar file (parsed with
the icalendar package), times in each reader's zone, the one notice to a removed customer, and
the record of who was not told and why."""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timedelta, timezone
from email import message_from_string
from email.policy import default as default_policy

import icalendar
import pytest

from runtime.emails import UNSUBSCRIBE_PLACEHOLDER
from runtime.emails.ics import calendar_uid
from runtime.local.aws_emulator import AwsEmulator
from tests.conftest import SAMPLE_DAY
from tests.integration.meetings_env import CUSTOMERS, Crowd, Env, mods, three_customers

ACCOUNTS = {"111111111111": "hts", "222222222222": "htsnonprod", "333333333333": "acme"}
OPS = "ops@acme.example.com"


def with_acme_approver(data):
    three_customers(data)
    data["local"]["contacts"]["acme"].append({"email": OPS, "topics": {"aws-approval": "OPT_IN"}})
    data["customers"][1]["timezone"] = "Europe/Paris"  # htsnonprod reads its times in Paris


@pytest.fixture()
def stack3_shape():
    return with_acme_approver


def submit(env, sample_change, **over):
    title = f"Seen {uuid.uuid4().hex[:8]}"
    cid = env.lc.submit({**sample_change, "title": title, "customers": CUSTOMERS, **over}, actor="ann").change_id
    return cid, title


class Mail:
    """One sent email, parsed: its parts decoded, its calendar file read."""

    def __init__(self, m):
        self.customer = ACCOUNTS[m.account]
        self.to = m.to
        self.subject = m.subject
        self.raw = m.raw
        if m.raw:
            msg = message_from_string(m.raw, policy=default_policy)
            self.text = msg.get_body(preferencelist=("plain",)).get_content()
            self.html = msg.get_body(preferencelist=("html",)).get_content()
            cals = [p for p in msg.walk() if p.get_content_type() == "text/calendar"]
            self.calendar_part = cals[0] if cals else None
            self.ics = cals[0].get_payload(decode=True).decode("utf-8") if cals else None
        else:
            self.text, self.html, self.calendar_part, self.ics = "", m.body, None, None

    @property
    def everything(self) -> str:
        unfolded = re.sub(r"\r\n[ \t]", "", self.ics or "")  # RFC 5545 folds long lines
        return "\n".join([self.subject, self.text, self.html, unfolded])

    def event(self):
        cal = icalendar.Calendar.from_ical(self.ics)
        [vevent] = cal.walk("VEVENT")
        return cal, vevent


def approve_in_a_fresh_env(stack, emu, sample_change, customers=("hts",)):
    env = Env(stack, emu)
    try:
        cid, title = submit(env, sample_change, customers=list(customers))
        env.lc.transition(cid, "approve", actor="bob")
        env.process()
        return cid, title
    finally:
        env.close()


def mails(title, prefix=None):
    out = [Mail(m) for m in AwsEmulator.sent_emails() if title in m.subject]
    return [m for m in out if prefix is None or m.subject.startswith(prefix)]


def contacts_of(cfg, code):
    return {c.email.lower() for c in cfg.local.contacts.get(code, ())}


def test_each_customer_hears_only_about_itself_and_gets_the_join_url_and_a_calendar_file(env, emu, sample_change):
    cid, title = submit(env, sample_change)
    env.lc.transition(cid, "approve", actor="bob")
    env.process()
    [event] = emu.events()
    assert event["hideAttendees"] is True  # no customer sees another's invitees
    for other in env.stack.cfg.customers:  # one meeting for all: its body names none of them
        assert not re.search(rf"\b{re.escape(other.code)}\b", event["body"]["content"])
        assert other.name not in event["body"]["content"]
    join_url = env.change(cid)["meetingMetadata"]["joinUrl"]
    assert join_url

    cfg = env.stack.cfg
    everyone = list(mails(title))
    approved = [m for m in everyone if m.subject.startswith("Approved:")]
    assert {m.customer for m in approved} == {"hts", "htsnonprod", "acme"}
    for m in everyone:
        own = contacts_of(cfg, m.customer)
        for other in cfg.customers:
            if other.code == m.customer:
                continue
            assert not re.search(rf"\b{re.escape(other.code)}\b", m.everything), (m.customer, other.code)
            assert other.name not in m.everything, (m.customer, other.name)
            for address in contacts_of(cfg, other.code) - own:
                assert address not in m.everything.lower(), (m.customer, address)
    for m in approved:
        assert join_url in m.text and f'href="{join_url}"' in m.html
        assert m.html.count("Join the Teams meeting") == 1
        cal, ev = m.event()
        assert str(ev["LOCATION"]) == join_url and join_url in str(ev["DESCRIPTION"])
        assert str(cal["METHOD"]) == "PUBLISH" and str(cal["VERSION"]) == "2.0" and cal.get("PRODID")
        assert str(ev["UID"]) == calendar_uid(cid)
        assert int(ev["SEQUENCE"]) == 1  # approved is the second transition
        assert str(ev["STATUS"]) == "CONFIRMED"
        assert ev.decoded("DTSTART") == datetime.fromisoformat(sample_change["schedule"]["implementationStart"])
        assert ev.decoded("DTEND") == datetime.fromisoformat(sample_change["schedule"]["implementationEnd"])
        assert ev.decoded("DTSTART").utcoffset() == timedelta(0)   # written in UTC
        assert ev.decoded("DTSTAMP").tzinfo is not None
        assert m.calendar_part.get_param("method") == "PUBLISH"
        assert m.calendar_part.get_filename() == "change.ics"
        # the unsubscribe placeholder reaches SES verbatim in both parts, unfolded by quoted-printable
        assert m.raw.count(UNSUBSCRIBE_PLACEHOLDER) == 2
    # the approval requests (before any meeting) carry no calendar file
    assert all(m.ics is None for m in everyone if m.subject.startswith("Approval required"))


def test_a_reschedule_raises_the_sequence_and_a_cancel_sends_cancelled(env, emu, sample_change):
    cid, title = submit(env, sample_change)
    env.lc.transition(cid, "approve", actor="bob")
    env.process()
    moved_to = (datetime.now(timezone.utc) + timedelta(days=10)).replace(hour=7, minute=0, second=0, microsecond=0)
    env.lc.transition(cid, "reschedule", actor="bob", params={
        "start": moved_to.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "end": (moved_to + timedelta(minutes=90)).strftime("%Y-%m-%dT%H:%M:%SZ")})
    env.process()
    env.lc.transition(cid, "cancel", actor="bob")
    env.process()
    seqs = {}
    for prefix in ("Approved:", "Rescheduled:", "Cancelled:"):
        got = [m for m in mails(title, prefix) if m.customer == "hts"]
        assert got, prefix
        found = {(str(ev["UID"]), int(ev["SEQUENCE"]), str(ev["STATUS"])) for ev in (m.event()[1] for m in got)}
        [seqs[prefix]] = found
    assert seqs["Approved:"][0] == seqs["Rescheduled:"][0] == seqs["Cancelled:"][0] == calendar_uid(cid)
    assert seqs["Approved:"][1] < seqs["Rescheduled:"][1] < seqs["Cancelled:"][1]
    assert [s[2] for s in seqs.values()] == ["CONFIRMED", "CONFIRMED", "CANCELLED"]
    [moved] = [m for m in mails(title, "Rescheduled:") if m.customer == "hts"][:1]
    assert moved.event()[1].decoded("DTSTART") == moved_to
    assert "Duration: 1 hour 30 minutes" in moved.text


def test_a_failed_meeting_still_sends_the_approved_emails_saying_the_invitation_will_follow(stack3, emu,
                                                                                             sample_change):
    env = Env(stack3, emu, attendees=Crowd)
    try:
        cid, title = submit(env, sample_change)
        env.lc.transition(cid, "approve", actor="bob")
        env.process()
        assert mods(env.change(cid), "meeting_failed")
        approved = mails(title, "Approved:")
        assert approved
        for m in approved:
            assert "Teams meeting: the invitation will follow in a separate email" in m.text
            assert m.ics is not None and "meetup-join" not in m.ics
    finally:
        env.close()


def test_a_removed_customer_is_told_exactly_once(env, emu, sample_change):
    cid, title = submit(env, sample_change)
    env.process()
    assert [m.to for m in mails(title, "Approval required") if m.customer == "acme"] == [(OPS,)]
    env.lc.transition(cid, "update", actor="ann", params={"customers": ["hts", "htsnonprod"]})
    env.process()
    env.lc.retrigger(cid)                      # a stray wake-up changes nothing
    env.process()
    env.lc.transition(cid, "approve", actor="bob")
    env.process()
    acme = [m for m in mails(title) if m.customer == "acme"]
    notices = [m for m in acme if m.subject.startswith("No longer affects you")]
    assert [m.to for m in notices] == [(OPS,)]  # on the topic its last email used (aws-approval)
    assert "This change no longer affects ACME Corp" in notices[0].html  # a simple email: moto keeps the HTML
    assert [m.subject.split(":")[0] for m in acme] == ["Approval required", "No longer affects you"]
    # the meeting made at approval invites none of acme's people
    [event] = emu.events()
    assert not {a["emailAddress"]["address"].lower() for a in event["attendees"]} & {"zed@acme.example.com"}
    ch = env.change(cid)
    [rec] = [m for m in mods(ch, "processed") if m["customer"] == "acme" and m["transitionType"] == "removed"]
    assert rec["emailsSent"] == 1 and rec["topic"] == "aws-approval"


def test_times_are_shown_in_each_readers_own_zone(stack3, emu, sample_change):
    # SES keeps a contact's attributes, but moto does not: our botocore seam answers GetContact
    # with the AttributesData real SES would return for chris.
    def attributes(parsed=None, **_):
        if parsed and parsed.get("EmailAddress", "").lower() == "chris@example.com":
            parsed["AttributesData"] = json.dumps({"timezone": "Asia/Tokyo"})

    stack3.clients.add_hook("after-call.sesv2.GetContact", attributes)
    env = Env(stack3, emu)
    try:
        cid, title = submit(env, sample_change)
        env.lc.transition(cid, "approve", actor="bob")
        env.process()
        by_reader = {m.to[0].lower(): m for m in mails(title, "Approved:")}
        tokyo, own, paris = by_reader["chris@example.com"], by_reader["alice@example.com"], by_reader["dana@example.com"]
        assert "Schedule: Tue 8 Dec 2026 16:00 \u2013 18:00 JST (Asia/Tokyo)" in tokyo.text
        assert "Schedule: Tue 8 Dec 2026 02:00 \u2013 04:00 EST (America/New_York)" in own.text  # the change's
        assert "Schedule: Tue 8 Dec 2026 08:00 \u2013 10:00 CET (Europe/Paris)" in paris.text    # the customer's
        for m in (tokyo, own, paris):
            assert "In UTC: Tue 8 Dec 2026 07:00 \u2013 09:00 UTC" in m.text
            assert "Duration: 2 hours" in m.text
            assert m.subject.endswith(f"({SAMPLE_DAY})")
    finally:
        env.close()


def test_who_was_not_told_and_why_is_recorded_beside_who_was(env, sample_change):
    cid, _ = submit(env, sample_change)
    env.lc.transition(cid, "approve", actor="bob")
    env.process()
    hts = env.stack.get_json(f"ledger/{cid}/hts/2.json")
    assert set(hts["recipients"]) == {"alice@example.com", "chris@example.com"}
    assert hts["skipped"] == {"bob@example.com": "unsubscribed_all", "carol@example.com": "opted_out"}
    nonprod = env.stack.get_json(f"ledger/{cid}/htsnonprod/2.json")
    assert nonprod["skipped"] == {"frank@example.com": "opted_out", "gail@example.com": "not_allowed"}
    [rec] = [m for m in mods(env.change(cid), "processed") if m["customer"] == "hts" and m["transition"] == 2]
    assert rec["recipientsSkipped"] == 2 and rec["emailsSent"] == 2


def test_sendemail_names_the_contact_list_and_topic_for_one_click_unsubscribe(stack3, emu, sample_change):
    # What SES needs to add its List-Unsubscribe headers: ListManagementOptions on the raw send.
    seen = []

    def capture(params=None, **_):
        body = json.loads(params["body"] or b"{}")
        seen.append((body.get("ListManagementOptions"), "Raw" in body.get("Content", {})))

    stack3.clients.add_hook("before-call.sesv2.SendEmail", capture)
    approve_in_a_fresh_env(stack3, emu, sample_change)
    contact_list = stack3.cfg.customer("hts").contact_list
    assert (({"ContactListName": contact_list, "TopicName": "aws-announce"}, True)) in seen
    assert all(opts and opts["ContactListName"] == contact_list for opts, _ in seen)


def test_change_view_lists_every_contact_with_what_happened(env, run_cli, sample_change):
    cid, title = submit(env, sample_change)
    env.process()
    env.lc.transition(cid, "update", actor="ann", params={"customers": ["hts", "htsnonprod"]})
    env.lc.transition(cid, "approve", actor="bob")
    env.process()
    join_url = env.change(cid)["meetingMetadata"]["joinUrl"]
    code, out, err = run_cli("change", "view", cid, "--config", env.stack.path)
    assert code == 0, err
    assert out.startswith(f"{cid}  {title}")
    assert "Window:    Tue 8 Dec 2026 02:00 \u2013 04:00 EST (America/New_York)" in out
    assert "Tue 8 Dec 2026 07:00 \u2013 09:00 UTC  (2 hours)" in out
    assert join_url in out
    lines = [line.strip() for line in out.splitlines()]
    delivery = out[out.index("\nDelivery\n"):out.index("\nHistory\n")]
    hts = delivery[delivery.index("HTS Production (hts)"):delivery.index("HTS Non-Production (htsnonprod)")]
    assert "#3 approval notice \u00b7 aws-announce \u00b7 2 sent" in hts
    for expected in ("alice@example.com  sent", "chris@example.com  sent",
                     "bob@example.com    not told: unsubscribed from everything",
                     "carol@example.com  not told: opted out of this topic"):
        assert expected in hts, expected
    assert "gail@example.com   not told: not on this customer's allow-list" in lines
    acme = delivery[delivery.index("ACME Corp (acme)"):]
    assert "Removed from the change" in acme
    assert "notice that the change no longer affects it \u00b7 aws-approval \u00b7 1 sent" in acme
    assert "History" in out and "Approved (by bob)" in out

    code, _, err = run_cli("change", "view", "CHG-does-not-exist", "--config", env.stack.path)
    assert code != 0 and "CHG-does-not-exist" in err
    code, _, err = run_cli("change", "view", "../etc", "--config", env.stack.path)
    assert code == 2 and "../etc" in err


def test_a_meeting_that_keeps_failing_holds_the_emails_back_only_so_long(env, emu, sample_change):
    emu.add_fault(status=503, count=1000)      # Graph unavailable (each call: 4 tries by the SDK)
    cid, title = submit(env, sample_change, customers=["hts"])
    env.lc.transition(cid, "approve", actor="bob")
    env.process(rounds=2)                      # receives 1 and 2: the approved emails wait for the meeting
    assert mails(title, "Approved:") == []
    outcomes = env.process(rounds=1)           # receive 3 (MEETING_PATIENCE): the emails go first
    assert any(not o.ack and o.emails_sent == 2 for o in outcomes)
    approved = mails(title, "Approved:")
    assert sorted(m.to for m in approved) == [("alice@example.com",), ("chris@example.com",)]
    assert all("the invitation will follow" in m.text for m in approved)
    assert emu.events() == []
    emu.reset()                                # Graph is back
    env.process(rounds=4)
    assert len(mails(title, "Approved:")) == 2  # nothing sent twice
    ch = env.change(cid)
    [event] = emu.events()                      # and the meeting was made, once
    assert ch["meetingMetadata"]["meetingId"] == event["id"]
    [rec] = [m for m in mods(ch, "processed") if m["transition"] == 2]
    assert rec["emailsAlreadySent"] == 2 and rec["emailsSent"] == 0


def test_contact_attributes_are_read_once_and_never_hold_delivery_past_the_budget(stack3, emu, sample_change):
    calls = []

    def count(params=None, **_):
        calls.append(1)

    stack3.clients.add_hook("before-call.sesv2.GetContact", count)
    approve_in_a_fresh_env(stack3, emu, sample_change)
    assert len(calls) == 2                # alice (asked for approval, then told), chris: once each
    other = Env(stack3, emu)              # a fresh handler that may not wait at all for SES
    try:
        for h in other.handlers.values():
            h.attribute_budget = 0
        _, title = submit(other, sample_change, customers=["htsnonprod"])
        other.process()
    finally:
        other.close()
    assert len(calls) == 2                # no GetContact: the customer's zone, this once
    [mail] = mails(title, "Approval required")
    assert "08:00 \u2013 10:00 CET (Europe/Paris)" in mail.html
