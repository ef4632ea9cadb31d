"""The portal's pure parts: permissions, tokens, rate limits, listing, delivery status, the form."""

from __future__ import annotations

import pytest

from runtime.domain.errors import InvalidInput
from runtime.services.delivery import delivery, meeting, safe_url, timeline
from runtime.services.lifecycle import apply_transition, new_archive
from runtime.web._auth import (
    AttemptWindow,
    Backoff,
    Forbidden,
    LoginThrottle,
    Principal,
    TooManyAttempts,
    client_address,
    load_session_secret,
    may_edit_draft,
    require,
    verify_password,
    why_not,
)
from runtime.web._forms import change_to_form, changed_fields, form_field, form_to_content, merge_stale, touched_fields
from runtime.web._index import Filters, decode_cursor, matches, paginate, parse_date, summarize_change
from tests.conftest import SAMPLE_CHANGE

CUSTOMERS = ("hts", "htsnonprod")
# Pure functions with a fixed "now": these fixed dates are relative to it and never go stale.
NOW = "2026-11-01T10:00:00.000Z"
FIXED = {**SAMPLE_CHANGE, "schedule": {"implementationStart": "2026-12-08T02:00:00-05:00",
                                       "implementationEnd": "2026-12-08T04:00:00-05:00",
                                       "timezone": "America/New_York"}}


def user(name, *roles):
    return Principal(name=name, roles=frozenset(roles))


def submitted(actor="alice", **over):
    return new_archive({**FIXED, **over}, change_id="CHG-1", actor=actor, now=NOW, known_customers=CUSTOMERS)


# permissions ----------------------------------------------------------------------------------

def test_roles_allow_what_they_say():
    change = submitted("alice")
    assert why_not(user("v", "viewer"), "read") is None
    for action in ("draft", "submit", "approve", "update", "cancel", "retrigger"):
        assert "needs the" in why_not(user("v", "viewer"), action, change)
    assert why_not(user("alice", "submitter"), "update", change) is None
    assert why_not(user("alice", "submitter"), "approve", change) == \
        "approving changes needs the approver or admin role (you have: submitter)"
    assert "only the submitter (alice)" in why_not(user("sam", "submitter"), "cancel", change)
    assert why_not(user("bob", "approver"), "approve", change) is None
    assert why_not(user("bob", "approver"), "cancel", change) is None
    assert why_not(user("bob", "approver"), "submit") is not None
    assert why_not(user("root", "admin"), "submit") is None
    assert why_not(user("nobody"), "read") == "your account has no role in ttr"
    assert why_not(user("x", "admin"), "fly") == "unknown action 'fly'"


def test_four_eyes_covers_the_submitter_and_anyone_who_edited_the_content():
    change = submitted("carol")
    assert "you submitted this change" in why_not(user("Carol", "submitter", "approver"), "approve", change)
    assert "you submitted" in why_not(user("carol", "admin"), "approve", change)   # admins too
    edited = apply_transition(change, "update", actor="bob", now=NOW, params={"testPlan": "ping"},
                              known_customers=CUSTOMERS)
    assert "you edited this change" in why_not(user("bob", "approver"), "approve", edited)
    assert why_not(user("dave", "approver"), "approve", edited) is None
    with pytest.raises(Forbidden, match="four-eyes"):
        require(user("carol", "approver"), "approve", change)


def test_four_eyes_covers_who_moved_the_window():
    # reproduced before the fix: an approver reschedules someone else's change, then approves it alone
    change = submitted("alice")
    moved = apply_transition(change, "reschedule", actor="bob", now=NOW, known_customers=CUSTOMERS,
                             params={"start": "2026-12-09T02:00:00-05:00", "end": "2026-12-09T04:00:00-05:00"})
    assert "you edited this change" in why_not(user("bob", "approver"), "approve", moved)
    assert why_not(user("dave", "approver"), "approve", moved) is None
    assert summarize_change(moved)["editedBy"] == ["alice", "bob"]


def test_four_eyes_keeps_the_drafts_authors_when_someone_else_submits_it():
    # reproduced before the fix: an admin submits carol's draft; createdBy became the admin
    change = new_archive({**SAMPLE_CHANGE}, change_id="CHG-1", actor="root", now=NOW, known_customers=CUSTOMERS,
                         author="carol", draft_authors=["carol", "erin"])
    assert change["createdBy"] == "carol"
    assert change["modifications"][0]["actor"] == "root"                     # who submitted
    assert change["modifications"][0]["draftAuthors"] == ["carol", "erin"]
    for who in ("carol", "erin", "root"):
        assert "four-eyes" in why_not(user(who, "approver"), "approve", change), who
    assert why_not(user("dave", "approver"), "approve", change) is None


def test_drafts_belong_to_their_author_or_an_admin():
    draft = {"changeId": "CHG-d", "createdBy": "alice"}
    assert may_edit_draft(user("alice", "submitter"), draft) is None
    assert may_edit_draft(user("root", "admin"), draft) is None
    assert "belongs to alice" in may_edit_draft(user("sam", "submitter"), draft)
    assert "needs the submitter" in may_edit_draft(user("bob", "approver"), draft)


# secrets, passwords, tokens, rate limits --------------------------------------------------------

def test_session_secret_from_argument_env_then_a_generated_file(tmp_path):
    assert load_session_secret("a" * 32, directory=tmp_path, environ={}) == "a" * 32
    assert load_session_secret(None, directory=tmp_path, environ={"TTR_SESSION_SECRET": "b" * 40}) == "b" * 40
    with pytest.raises(InvalidInput, match="at least 32 characters"):
        load_session_secret(None, directory=tmp_path, environ={"TTR_SESSION_SECRET": "short"})
    made = load_session_secret(None, directory=tmp_path, environ={})
    assert len(made) == 64 and (tmp_path / "session-secret").stat().st_mode & 0o777 == 0o600
    assert load_session_secret(None, directory=tmp_path, environ={}) == made       # kept


def test_passwords_verify_only_with_the_right_password():
    from runtime.web import hash_password

    h = hash_password("pw-1")
    assert h.startswith("$argon2id$") and verify_password(h, "pw-1")
    assert not verify_password(h, "pw-2")
    assert not verify_password("not-a-hash", "pw-1")
    assert not verify_password(None, "pw-1")                   # unknown user: a dummy check, False
    with pytest.raises(InvalidInput):
        hash_password("")


def test_rate_limiter_blocks_then_lets_through_after_the_window():
    now = [0.0]
    limiter = AttemptWindow(limit=3, window=60, clock=lambda: now[0])
    for _ in range(3):
        assert limiter.retry_after("k") is None
        limiter.hit("k")
    assert limiter.retry_after("k") == 60
    assert limiter.retry_after("other") is None
    now[0] = 61
    assert limiter.retry_after("k") is None


def test_sign_in_backoff_doubles_per_username_and_client_and_never_locks_the_username():
    now = [0.0]
    throttle = LoginThrottle(per_client=AttemptWindow(100, 60, clock=lambda: now[0]),
                             backoff=Backoff(free=2, base=1.0, cap=8.0, forget=600, clock=lambda: now[0]))
    throttle.failed("Alice", "1.2.3.4")
    throttle.failed("alice ", "1.2.3.4")
    with pytest.raises(TooManyAttempts, match="too many sign-in attempts") as exc:
        throttle.check("1.2.3.4", "ALICE")
    assert exc.value.retry_after == 2                        # 1 s, rounded up
    throttle.check("5.6.7.8", "alice")                      # another client: not affected
    waits = []
    for _ in range(6):
        now[0] += 100
        throttle.check("1.2.3.4", "alice")                  # the wait always ends
        throttle.failed("alice", "1.2.3.4")
        waits.append(throttle.backoff.retry_after(("alice", "1.2.3.4")))
    assert waits == [2.0, 4.0, 8.0, 8.0, 8.0, 8.0]          # doubling, capped
    throttle.succeeded("alice", "1.2.3.4")
    throttle.check("1.2.3.4", "alice")
    throttle.failed("bob", "1.2.3.4")
    throttle.failed("bob", "1.2.3.4")
    now[0] += 601                                            # forgotten after a quiet while
    throttle.check("1.2.3.4", "bob")


def test_the_client_address_comes_from_trusted_proxies_only():
    trusted = ("10.0.0.0/8", "127.0.0.1")
    assert client_address("203.0.113.9", "198.51.100.1", trusted) == "203.0.113.9"   # not a proxy: ignored
    assert client_address("127.0.0.1", "198.51.100.1", ()) == "127.0.0.1"             # nothing trusted
    assert client_address("10.1.2.3", "198.51.100.1", trusted) == "198.51.100.1"
    # the client writes what it likes on the left; the first proxy appended what it saw
    assert client_address("10.1.2.3", "1.1.1.1, 198.51.100.1, 10.9.9.9", trusted) == "198.51.100.1"
    assert client_address("10.1.2.3", "10.2.2.2", trusted) == "10.1.2.3"              # only proxies
    assert client_address("10.1.2.3", "not-an-ip", trusted) == "10.1.2.3"
    assert client_address(None, None, trusted) == "?"


def test_trusted_proxies_must_be_addresses():
    from runtime.domain.config import WebConfig

    assert WebConfig(trusted_proxies=("10.0.0.0/8", "::1")).trusted_proxies == ("10.0.0.0/8", "::1")
    with pytest.raises(Exception, match="'proxy.example.com' is not an IP address or CIDR range"):
        WebConfig(trusted_proxies=("proxy.example.com",))


def test_rate_limiter_memory_is_bounded():
    limiter = AttemptWindow(limit=1, window=60, max_keys=10)
    for i in range(100):
        limiter.hit(f"k{i}")
    assert len(limiter._hits) == 10


# listing ------------------------------------------------------------------------------------------

def summaries(n):
    return [{"changeId": f"CHG-{i:05d}", "createdAt": f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}Z",
             "status": "submitted"} for i in range(n)]


def test_pagination_walks_every_item_once_past_a_thousand():
    items = summaries(2345)
    seen, cursor, pages = [], None, 0
    while True:
        page = paginate(items, cursor=cursor, limit=200)
        assert page.total == 2345
        seen += [s["changeId"] for s in page.items]
        pages += 1
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert pages == 12 and len(seen) == 2345 and len(set(seen)) == 2345
    assert seen[0] == "CHG-02344"                                   # newest first


def test_bad_cursors_and_limits_are_refused():
    for bad in ("not base64!", "bm90IGpzb24", "WzFd"):
        with pytest.raises(InvalidInput, match="cursor"):
            decode_cursor(bad)
    with pytest.raises(InvalidInput, match="limit"):
        paginate([], cursor=None, limit=0)


def test_filters_by_status_customer_words_author_and_window():
    change = summarize_change(submitted("alice", title="Patch VPN", tickets={"snow": "CHG77"}))
    text = "chg-1\npatch vpn\nalice\nhts htsnonprod\nchg77\nsecurity fixes"
    assert matches(change, text, Filters(status="submitted", customer="hts", text="VPN chg77"))
    assert not matches(change, text, Filters(status="approved"))
    assert not matches(change, text, Filters(text="vpn firewall"))
    assert matches(change, text, Filters(created_by="ALICE"))
    # the window is 2026-12-08 07:00Z to 09:00Z
    assert matches(change, text, Filters(date_from=parse_date("2026-12-08", "from"),
                                         date_to=parse_date("2026-12-08", "to", end=True)))
    assert not matches(change, text, Filters(date_from=parse_date("2026-12-09", "from")))
    assert not matches(change, text, Filters(date_to=parse_date("2026-12-07", "to", end=True)))
    assert matches(change, text, Filters(date_from=parse_date("2026-12-08T08:00:00Z", "from")))
    with pytest.raises(InvalidInput, match="from: 'yesterday' is not a date"):
        parse_date("yesterday", "from")


# delivery, meeting, timeline ---------------------------------------------------------------------

def processed(code, seq, sent):
    return {"type": "processed", "key": f"processed:{code}:{seq}", "customer": code, "transition": seq,
            "emailsSent": sent, "emailsFailed": 0, "topic": "aws-approval", "timestamp": NOW, "actor": "ttr-runtime"}


def test_delivery_per_customer_processed_pending_rejected():
    change = submitted()
    change = apply_transition(change, "approve", actor="bob", now=NOW, known_customers=CUSTOMERS)
    change["modifications"] += [processed("hts", 1, 2), processed("hts", 2, 3), processed("htsnonprod", 1, 1),
                                {"type": "rejected", "customer": "evil", "reason": "customer evil is not on the change",
                                 "timestamp": NOW}]
    rows = {r["customer"]: r for r in delivery(change, {"hts": "HTS"},
                                               {("hts", 1): {"recipients": {"a@x": {"status": "sent"}}}})}
    assert rows["hts"]["state"] == "delivered" and rows["hts"]["emailsSent"] == 5
    assert rows["hts"]["name"] == "HTS" and rows["hts"]["steps"][0]["recipients"] == [("a@x", "sent")]
    assert rows["htsnonprod"]["state"] == "pending" and rows["htsnonprod"]["pending"] == [2]
    assert [s["state"] for s in rows["htsnonprod"]["steps"]] == ["sent", "pending"]
    assert rows["evil"]["state"] == "rejected" and "not on the change" in rows["evil"]["rejected"][0]["reason"]


def test_a_removed_customer_is_shown_as_removed():
    change = submitted()
    change = apply_transition(change, "update", actor="alice", now=NOW, params={"customers": ["hts"]},
                              known_customers=CUSTOMERS)
    rows = {r["customer"]: r for r in delivery(change)}
    assert rows["htsnonprod"]["state"] == "removed" and rows["hts"]["state"] == "pending"


def test_meeting_states_and_only_http_links():
    change = submitted()
    assert meeting(change)["state"] == "after_approval"
    change = apply_transition(change, "approve", actor="bob", now=NOW, known_customers=CUSTOMERS)
    assert meeting(change)["state"] == "waiting"
    change["meetingMetadata"] = {"joinUrl": "javascript:alert(1)", "meetingId": "e1"}
    assert meeting(change)["state"] == "scheduled" and meeting(change)["joinUrl"] is None
    change["meetingMetadata"]["joinUrl"] = "https://teams.example.com/l/x"
    assert meeting(change)["joinUrl"] == "https://teams.example.com/l/x"
    change["modifications"].append({"type": "meeting_cancelled", "timestamp": NOW})
    assert meeting(change)["state"] == "cancelled" and meeting(change)["joinUrl"] is None
    failed = submitted()
    failed["status"] = "approved"
    failed["modifications"].append({"type": "meeting_failed", "reason": "too many attendees (612 > 500)"})
    assert meeting(failed)["state"] == "failed" and "612" in meeting(failed)["failure"]
    assert meeting(submitted(meeting={"required": False}))["state"] == "not_required"
    assert safe_url("http://ok.example/x") and not safe_url("data:text/html,x") and not safe_url(None)


def test_timeline_tells_the_story_in_order():
    change = submitted()
    change = apply_transition(change, "reschedule", actor="alice", now="2026-11-02T10:00:00Z",
                              params={"start": "2026-12-09T02:00:00-05:00", "end": "2026-12-09T04:00:00-05:00",
                                      "note": "freeze"}, known_customers=CUSTOMERS)
    change["modifications"].append({**processed("hts", 1, 4), "timestamp": "2026-11-01T11:00:00Z",
                                    "transitionType": "submitted"})
    entries = timeline(change, {"hts": "HTS Production"})
    assert [e["type"] for e in entries] == ["submitted", "processed", "rescheduled"]
    assert entries[1]["title"] == "HTS Production: approval request sent to 4 recipients"
    assert entries[2]["details"][-1] == "Note: freeze" and entries[2]["details"][0].startswith("From Tue 8 Dec")


# the form ----------------------------------------------------------------------------------------

def test_form_round_trip_keeps_times_in_the_change_zone():
    change = submitted()
    form = change_to_form(change)
    assert (form["start"], form["end"], form["timezone"]) == ("2026-12-08T02:00", "2026-12-08T04:00",
                                                               "America/New_York")
    content, errors = form_to_content(form, partial=False, current=change)
    assert errors == {}
    assert content["schedule"]["implementationStart"] == "2026-12-08T02:00:00-05:00"
    assert changed_fields(change, content) == {}
    form["title"] = "New title"
    form["start"] = "2026-12-08T01:00"
    content, _ = form_to_content(form, partial=False, current=change)
    changed = changed_fields(change, content)
    assert set(changed) == {"title", "schedule"}
    assert changed["schedule"]["implementationStart"] == "2026-12-08T01:00:00-05:00"


def test_form_errors_name_their_fields():
    content, errors = form_to_content({"meeting_duration": "an hour"}, partial=False)
    assert set(errors) == {"title", "customers", "start", "end", "meeting_duration"}
    _, errors = form_to_content({"title": "t", "customers": ["hts"], "start": "2026-12-08T01:00",
                                 "end": "2026-12-08T02:00"}, partial=False)
    assert errors == {"timezone": "Pick the time zone the times are in"}
    _, errors = form_to_content({"start": "2026-12-08T01:00", "timezone": "Mars/Base"}, partial=True)
    assert "Unknown time zone" in errors["timezone"]
    draft, errors = form_to_content({"title": "only a title"}, partial=True)
    assert draft == {"title": "only a title"} and errors == {}
    assert form_field("schedule.implementationStart") == "start"
    assert form_field("meeting.durationMinutes") == "meeting_duration"
    assert form_field(None) is None and form_field("nothing here") is None


def test_a_stale_edit_is_merged_over_the_current_version():
    base = change_to_form(submitted())
    mine = {**base, "title": "Mine", "testPlan": "my plan"}
    theirs = {**base, "reason": "Their reason", "testPlan": "their plan"}
    assert touched_fields(mine, base) == ["title", "testPlan"]
    merged, conflicts = merge_stale(mine, base, theirs)
    assert (merged["title"], merged["reason"], merged["testPlan"]) == ("Mine", "Their reason", "my plan")
    assert conflicts == {"testPlan": "their plan"}
