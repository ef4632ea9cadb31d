"""The audience plans (pure): import files, topic lists, Identity Center sync."""

import json

import pytest

from runtime.domain.audience import (
    MANAGED_BY,
    SYNC_MARK,
    SYNC_TOPICS,
    Wanted,
    approval_topics,
    export,
    format_of,
    merge_mapped,
    parse_import,
    plan_identity,
    plan_import,
    plan_topics,
    preview,
    sync_topics,
    who_gets_what,
)
from runtime.domain.config import DEFAULT_TOPICS
from runtime.domain.errors import InvalidInput, RetryableError
from runtime.domain.recipients import Contact

TOPICS = ["aws-approval", "aws-announce", "aws-calendar"]


def c(email, prefs=None, unsub=False, attrs=None):
    return Contact(email, unsub, prefs or {}, attrs or {})


def kinds(actions):
    return [(a.kind, a.email) for a in actions]


# ---------------------------------------------------------------------------------------------
# import files


def test_csv_reads_cells_and_keeps_empty_cells_as_no_choice():
    text = "email,topic:aws-approval,topic:aws-calendar\na@x.com,OPT_IN,\nb@x.com,,opt_out\n\n"
    got = parse_import(text, fmt="csv", topics=TOPICS)
    assert [(w.email, dict(w.topics), w.line) for w in got] == [
        ("a@x.com", {"aws-approval": "OPT_IN"}, 2), ("b@x.com", {"aws-calendar": "OPT_OUT"}, 3)]


@pytest.mark.parametrize("text, fragment", [
    ("", "line 1: empty file"),
    ("mail,topic:aws-approval\n", "line 1: the header must start with 'email'"),
    ("email,aws-approval\n", "line 1: column 'aws-approval' is not topic:NAME"),
    ("email,topic:aws-nope\n", "line 1: unknown topic 'aws-nope'"),
    ("email,topic:aws-approval\na@x.com,OPT_IN\nnot-an-address,OPT_IN\n", "line 3: 'not-an-address' is not"),
    ("email,topic:aws-approval\na@x.com,MAYBE\n", "line 2: topic aws-approval: 'MAYBE' is not OPT_IN"),
    ("email,topic:aws-approval\na@x.com,OPT_IN,extra\n", "line 2: 3 cells, the header has 2"),
    ("email,topic:aws-approval\na@x.com,OPT_IN\nA@X.com,OPT_OUT\n", "line 3: A@X.com is listed twice (first at F line 2)"),
])
def test_bad_csv_names_the_line(text, fragment):
    with pytest.raises(InvalidInput) as info:
        parse_import(text, fmt="csv", topics=TOPICS, source="F")
    assert fragment in str(info.value)


def test_json_reads_entries_and_names_the_line_of_a_bad_one():
    good = json.dumps([{"email": "a@x.com", "topics": {"aws-approval": "OPT_IN"}}, {"email": "b@x.com"}], indent=2)
    assert [w.email for w in parse_import(good, fmt="json", topics=TOPICS)] == ["a@x.com", "b@x.com"]
    bad = '[\n  {"email": "a@x.com"},\n  {"email": "b@x.com",\n   "topics": {"aws-approval": "YES"}}\n]'
    with pytest.raises(InvalidInput, match=r"F line 3 \(entry 2\): topic aws-approval: 'YES'"):
        parse_import(bad, fmt="json", topics=TOPICS, source="F")
    with pytest.raises(InvalidInput, match="line 1 .entry 1.: unknown field.s. .'name'."):
        parse_import('[{"email": "a@x.com", "name": "A"}]', fmt="json", topics=TOPICS, source="F")
    with pytest.raises(InvalidInput, match="F line 2: not JSON"):
        parse_import('[\n{', fmt="json", topics=TOPICS, source="F")
    with pytest.raises(InvalidInput, match="expected a JSON list"):
        parse_import('{}', fmt="json", topics=TOPICS, source="F")


def test_format_comes_from_the_file_name():
    assert format_of("a/B.CSV") == "csv" and format_of("x.json") == "json"
    with pytest.raises(InvalidInput, match="name the file .csv or .json"):
        format_of("contacts.txt")


def test_export_round_trips_through_import():
    contacts = [c("b@x.com", {"aws-calendar": "OPT_IN"}), c("a@x.com", {"aws-approval": "OPT_OUT"})]
    for fmt in ("csv", "json"):
        back = parse_import(export(contacts, TOPICS, fmt), fmt=fmt, topics=TOPICS)
        assert [(w.email, dict(w.topics)) for w in back] == [
            ("a@x.com", {"aws-approval": "OPT_OUT"}), ("b@x.com", {"aws-calendar": "OPT_IN"})]
        assert [a.kind for a in plan_import(contacts, back)] == ["unchanged", "unchanged"]


def test_plan_import_adds_updates_and_leaves_the_rest():
    current = [c("A@x.com", {"aws-approval": "OPT_OUT"}, attrs={"timezone": "Europe/Paris"}), c("b@x.com")]
    wanted = [Wanted("a@x.com", {"aws-approval": "OPT_IN"}), Wanted("b@x.com", {}), Wanted("new@x.com", {"aws-calendar": "OPT_IN"})]
    plan = plan_import(current, wanted)
    assert kinds(plan) == [("update", "A@x.com"), ("unchanged", "b@x.com"), ("add", "new@x.com")]
    assert dict(plan[0].preferences) == {"aws-approval": "OPT_IN"}
    assert plan[0].attributes is None      # kept as the contact has them (read again when written)
    assert plan[0].line() == "update A@x.com aws-approval=OPT_IN"
    assert plan[2].line() == "add new@x.com aws-calendar=OPT_IN"


def test_plan_import_never_resubscribes_someone_who_unsubscribed_from_everything():
    plan = plan_import([c("u@x.com", unsub=True)], [Wanted("u@x.com", {"aws-approval": "OPT_IN"})])
    assert kinds(plan) == [("unchanged", "u@x.com")] and not plan[0].writes
    assert "not re-subscribed" in plan[0].line()


# ---------------------------------------------------------------------------------------------
# topics


def test_plan_topics_adds_updates_and_removes_to_match_the_configuration():
    current = [{"TopicName": "aws-approval", "DisplayName": "Change approvals", "DefaultSubscriptionStatus": "OPT_OUT"},
               {"TopicName": "aws-announce", "DisplayName": "Old words", "DefaultSubscriptionStatus": "OPT_OUT"},
               {"TopicName": "legacy", "DisplayName": "x", "DefaultSubscriptionStatus": "OPT_IN"}]
    steps = plan_topics(current, DEFAULT_TOPICS)
    assert [(s.kind, s.name) for s in steps] == [("unchanged", "aws-approval"), ("update", "aws-announce"),
                                                 ("add", "aws-calendar"), ("add", "cic-announce"),
                                                 ("add", "finops-announce"), ("add", "inner-announce"),
                                                 ("add", "general-updates"), ("add", "announce-approval"),
                                                 ("remove", "legacy")]
    assert steps[1].line() == ("update topic aws-announce ('Change announcements', default OPT_IN); "
                               "was 'Old words', default OPT_OUT")


# ---------------------------------------------------------------------------------------------
# identity sync


def mark(topics):
    return {MANAGED_BY: SYNC_MARK, SYNC_TOPICS: ";".join(f"{t}={s}" for t, s in topics.items())}


def test_identity_adds_members_marked_with_what_it_set():
    plan = plan_identity([], {"New@x.com": {"aws-approval": "OPT_IN"}})
    assert kinds(plan) == [("add", "New@x.com")]
    assert plan[0].attributes[MANAGED_BY] == SYNC_MARK
    assert sync_topics(plan[0].attributes) == {"aws-approval": "OPT_IN"}


def test_identity_second_run_is_unchanged():
    first = plan_identity([], {"a@x.com": {"aws-approval": "OPT_IN"}})[0]
    again = plan_identity([c("a@x.com", first.preferences, attrs=first.attributes)], {"a@x.com": {"aws-approval": "OPT_IN"}})
    assert kinds(again) == [("unchanged", "a@x.com")]


def test_identity_never_touches_a_contact_it_did_not_create():
    plan = plan_identity([c("a@x.com", {"aws-approval": "OPT_OUT"}), c("other@x.com")], {"a@x.com": {"aws-approval": "OPT_IN"}})
    assert kinds(plan) == [("unchanged", "a@x.com")]   # 'other' not even listed: not ours, not a member
    assert "not created by identity sync" in plan[0].line()


def test_identity_unsubscribes_a_leaver_from_what_it_set_only():
    leaver = c("l@x.com", {"aws-approval": "OPT_IN", "aws-announce": "OPT_IN"},
               attrs={**mark({"aws-approval": "OPT_IN"}), "timezone": "UTC"})
    plan = plan_identity([leaver], {})
    assert plan[0].line() == "unsubscribe l@x.com aws-approval"
    assert dict(plan[0].preferences) == {"aws-approval": "OPT_OUT", "aws-announce": "OPT_IN"}
    assert plan[0].attributes["timezone"] == "UTC" and sync_topics(plan[0].attributes) == {}
    again = plan_identity([c("l@x.com", plan[0].preferences, attrs=plan[0].attributes)], {})
    assert kinds(again) == [("unchanged", "l@x.com")]


def test_identity_keeps_a_persons_own_choice():
    # sync set OPT_IN; the person opted out themselves: kept now and on every later run
    p = c("p@x.com", {"aws-approval": "OPT_OUT"}, attrs=mark({"aws-approval": "OPT_IN"}))
    plan = plan_identity([p], {"p@x.com": {"aws-approval": "OPT_IN", "aws-calendar": "OPT_IN"}})
    assert plan[0].kind == "update" and dict(plan[0].preferences) == {"aws-approval": "OPT_OUT", "aws-calendar": "OPT_IN"}
    assert "kept the person's own choice for aws-approval" in plan[0].line()
    assert sync_topics(plan[0].attributes) == {"aws-calendar": "OPT_IN"}
    after = c("p@x.com", plan[0].preferences, attrs=plan[0].attributes)
    assert plan_identity([after], {"p@x.com": {"aws-approval": "OPT_IN", "aws-calendar": "OPT_IN"}})[0].kind == "unchanged"
    # and when they leave, their own choice stays too; only what sync set is taken back
    gone = plan_identity([after], {})[0]
    assert gone.kind == "unsubscribe" and dict(gone.preferences) == {"aws-approval": "OPT_OUT", "aws-calendar": "OPT_OUT"}
    assert gone.changed == ("aws-calendar",)


def test_identity_never_resubscribes_an_unsubscribed_member():
    u = c("u@x.com", {}, unsub=True, attrs=mark({}))
    assert kinds(plan_identity([u], {"u@x.com": {"aws-approval": "OPT_IN"}})) == [("unchanged", "u@x.com")]


def test_groups_merge_with_opt_in_winning():
    assert merge_mapped([{"aws-approval": "OPT_OUT"}, {"aws-approval": "OPT_IN", "aws-calendar": "OPT_OUT"}]) == {
        "aws-approval": "OPT_IN", "aws-calendar": "OPT_OUT"}


# ---------------------------------------------------------------------------------------------
# who gets what, and the preview before approval (decide_recipients underneath)

DEFAULTS = {"aws-approval": "OPT_OUT", "aws-announce": "OPT_IN", "aws-calendar": "OPT_OUT"}


def test_who_gets_what_gives_each_topic_its_decision_and_reason():
    rows = who_gets_what([c("a@x.com", {"aws-approval": "OPT_IN"}), c("u@x.com", unsub=True),
                          c("o@x.com", {"aws-announce": "OPT_OUT"}), c("A@X.com")],
                         TOPICS, DEFAULTS, allow=lambda e: True)
    told = {(r["email"], cell["topic"]): (cell["told"], cell["reason"]) for r in rows for cell in r["cells"]}
    assert told[("a@x.com", "aws-approval")] == (True, "")
    assert told[("a@x.com", "aws-calendar")] == (False, "default_opt_out")
    assert told[("u@x.com", "aws-announce")] == (False, "unsubscribed_all")
    assert told[("o@x.com", "aws-announce")] == (False, "opted_out")
    assert told[("A@X.com", "aws-announce")] == (False, "duplicate")      # a@x.com already told
    only_a = who_gets_what([c("a@x.com", {"aws-approval": "OPT_IN"})], TOPICS, DEFAULTS, allow=lambda e: e == "z")
    assert only_a[0]["cells"][0]["reason"] == "not_allowed"


def test_approval_topics_follow_the_runtime_routes():
    assert approval_topics({}) == [("aws-announce", "the approval email")]
    assert [t for t, _ in approval_topics({"meeting": {"required": True}})] == ["aws-announce", "aws-calendar"]


def test_preview_per_customer_and_topic_with_errors_shown():
    change = {"customers": ["a", "b"], "meeting": {"required": False}}
    got = preview(change, {"a": ([c("x@x.com"), c("y@x.com", {"aws-announce": "OPT_OUT"})], DEFAULTS),
                           "b": RetryableError("sts.AssumeRole: throttled")},
                  allow_of=lambda code: (lambda e: True), names={"a": "A corp"})
    assert got[0]["name"] == "A corp" and got[0]["topics"][0]["told"] == ["x@x.com"]
    assert got[0]["topics"][0]["skipped"] == [{"email": "y@x.com", "reason": "opted_out", "why": "opted out of this topic"}]
    assert got[1]["error"] == "sts.AssumeRole: throttled" and got[1]["topics"] == []


def test_the_preview_and_who_gets_what_skip_suppressed_addresses_as_the_runtime_does():
    change = {"customers": ["a"], "meeting": {"required": False}}
    contacts = [c("x@x.com"), c("bounced@x.com")]
    got = preview(change, {"a": (contacts, DEFAULTS)}, allow_of=lambda code: (lambda e: True), names={},
                  suppressed_of=lambda code: (lambda e: e == "bounced@x.com"))
    assert got[0]["topics"][0]["told"] == ["x@x.com"]
    assert got[0]["topics"][0]["skipped"][0]["reason"] == "suppressed"
    rows = who_gets_what(contacts, TOPICS, DEFAULTS, allow=lambda e: True, suppressed=lambda e: e.startswith("b"))
    announce = {r["email"]: cell for r in rows for cell in r["cells"] if cell["topic"] == "aws-announce"}
    assert announce["bounced@x.com"]["reason"] == "suppressed" and announce["x@x.com"]["told"]
