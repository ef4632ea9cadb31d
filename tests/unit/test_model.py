"""Pure validation of change content and ids (no I/O)."""

import pytest

from runtime.domain.errors import InvalidInput, RejectedInput
from runtime.domain.model import append_modifications, archive_key, check_change_id, parse_trigger_key, validate_change

KNOWN = ("hts", "htsnonprod")


def change(**over):
    base = {"title": "T", "customers": ["hts"],
            "schedule": {"implementationStart": "2026-12-08T02:00:00Z",
                         "implementationEnd": "2026-12-08T03:00:00Z", "timezone": "UTC"}}
    base.update(over)
    return base


def test_valid_change_is_returned_with_unknown_fields_preserved():
    out = validate_change(change(customFlag={"x": 1}, title="  Padded  "), KNOWN)
    assert out["customFlag"] == {"x": 1}
    assert out["title"] == "Padded"


@pytest.mark.parametrize("value", ["CHG-1", "a", "A_b-c", "x" * 128])
def test_change_id_pattern_accepts(value):
    assert check_change_id(value) == value


@pytest.mark.parametrize("value", ["", "../etc/passwd", "a/b", "-lead", "x" * 129, "a b", "a.json", None, 7])
def test_change_id_pattern_rejects(value):
    with pytest.raises(InvalidInput, match="changeId"):
        check_change_id(value)


def test_archive_key_refuses_traversal():
    with pytest.raises(InvalidInput):
        archive_key("../x")


@pytest.mark.parametrize("over, fragment", [
    ({"title": ""}, "title"),
    ({"title": None}, "title"),
    ({"title": "two\nlines"}, "title"),
    ({"title": "x" * 201}, "title"),
    ({"customers": []}, "customers"),
    ({"customers": ["nope"]}, "unknown customer 'nope'"),
    ({"customers": "hts"}, "customers"),
    ({"schedule": None}, "schedule"),
    ({"schedule": {"implementationStart": "2026-12-08T02:00:00Z", "timezone": "UTC"}}, "implementationEnd"),
    ({"schedule": {"implementationStart": "2026-12-08T02:00:00", "implementationEnd": "2026-12-08T03:00:00Z",
                   "timezone": "UTC"}}, "with an offset"),
    ({"schedule": {"implementationStart": "2026-12-08", "implementationEnd": "2026-12-09",
                   "timezone": "UTC"}}, "RFC 3339"),
    ({"schedule": {"implementationStart": "2026-02-30T02:00:00Z", "implementationEnd": "2026-03-01T02:00:00Z",
                   "timezone": "UTC"}}, "not a valid date"),
    ({"schedule": {"implementationStart": "2026-12-08T03:00:00Z", "implementationEnd": "2026-12-08T02:00:00Z",
                   "timezone": "UTC"}}, "must be after"),
    ({"schedule": {"implementationStart": "2026-12-08T03:00:00Z", "implementationEnd": "2026-12-08T03:00:00Z",
                   "timezone": "UTC"}}, "must be after"),
    ({"schedule": {"implementationStart": "2026-12-08T02:00:00Z", "implementationEnd": "2026-12-08T03:00:00Z",
                   "timezone": "Mars/Olympus"}}, "unknown time zone"),
    ({"schedule": {"implementationStart": "2026-12-08T02:00:00Z", "implementationEnd": "2026-12-08T03:00:00Z",
                   "timezone": "../../etc/passwd"}}, "time zone"),
    ({"meeting": {"required": "yes"}}, "meeting.required"),
    ({"meeting": {"required": True, "durationMinutes": 0}}, "durationMinutes"),
    ({"reason": 5}, "reason"),
    ({"tickets": ["x"]}, "tickets"),
    ({"status": "bogus"}, "status"),
])
def test_invalid_content_names_the_problem(over, fragment):
    with pytest.raises(InvalidInput, match=fragment.replace("(", r"\(")):
        validate_change(change(**over), KNOWN)


def test_offsets_other_than_utc_compare_correctly():
    # 02:00-05:00 is 07:00Z, after 06:00Z: valid although the local clock reads earlier
    validate_change(change(schedule={"implementationStart": "2026-12-08T06:00:00Z",
                                     "implementationEnd": "2026-12-08T02:00:00-05:00",
                                     "timezone": "America/New_York"}), KNOWN)


def test_markup_in_content_is_kept_not_rejected():
    out = validate_change(change(title="<b>bold</b>", reason="<script>x</script>"), KNOWN)
    assert out["title"] == "<b>bold</b>" and out["reason"] == "<script>x</script>"


def test_duplicate_customers_collapse():
    assert validate_change(change(customers=["hts", "hts"]), KNOWN)["customers"] == ["hts"]


def test_partial_validation_for_drafts():
    validate_change({"title": "only a title"}, KNOWN, partial=True)
    with pytest.raises(InvalidInput, match="unknown customer"):
        validate_change({"customers": ["zzz"]}, KNOWN, partial=True)
    with pytest.raises(InvalidInput, match="offset"):
        validate_change({"schedule": {"implementationStart": "2026-12-08T02:00:00"}}, KNOWN, partial=True)


def test_appends_are_idempotent_by_key():
    ch = {"modifications": [{"type": "submitted", "seq": 1}]}
    rec = {"type": "processed", "key": "processed:hts:1", "customer": "hts", "transition": 1}
    assert len(append_modifications(ch, [rec])) == 1
    assert append_modifications(ch, [rec, dict(rec)]) == []
    assert append_modifications(ch, [{"type": "submitted", "seq": 1}]) == []
    assert len(ch["modifications"]) == 2


@pytest.mark.parametrize("key, expected", [
    ("customers/hts/CHG-1.json", ("hts", "CHG-1")),
    ("customers/a-b/x_y.json", ("a-b", "x_y")),
])
def test_trigger_keys_parse(key, expected):
    assert parse_trigger_key(key) == expected


@pytest.mark.parametrize("key", ["archive/CHG-1.json", "customers/hts/CHG-1.txt", "customers/hts/a/b.json",
                                 "customers/HTS/CHG-1.json", "customers/hts/..json", "customers/hts/.json"])
def test_bad_trigger_keys_are_rejected(key):
    with pytest.raises(RejectedInput):
        parse_trigger_key(key)
