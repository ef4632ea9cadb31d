"""The transition table and apply_transition (pure)."""

import pytest

from runtime.domain.errors import IllegalTransition, InvalidInput, StaleVersion
from runtime.services.lifecycle import TRANSITIONS, allowed_actions, apply_transition, new_archive

KNOWN = ("hts", "htsnonprod")
NOW = "2026-11-28T12:00:00.000Z"
CONTENT = {"title": "T", "customers": ["hts"], "extraField": {"kept": True},
           "schedule": {"implementationStart": "2026-12-08T02:00:00Z",
                        "implementationEnd": "2026-12-08T03:00:00Z", "timezone": "UTC"}}


def submitted():
    return new_archive(CONTENT, change_id="CHG-1", actor="ann", now=NOW, known_customers=KNOWN)


def step(ch, action, **params):
    return apply_transition(ch, action, actor="bob", now=NOW, params=params, known_customers=KNOWN)


def test_submit_creates_version_one_with_a_seq():
    ch = submitted()
    assert ch["status"] == "submitted" and ch["version"] == 1
    assert ch["modifications"] == [{"type": "submitted", "timestamp": NOW, "actor": "ann", "seq": 1,
                                    "customers": ["hts"]}]
    assert ch["extraField"] == {"kept": True} and ch["createdBy"] == "ann"


# Every (status, action) pair: legal ones per the contract's table, the rest refused.
LEGAL = {("submitted", "update"), ("submitted", "approve"), ("submitted", "reschedule"),
         ("approved", "reschedule"), ("approved", "complete"), ("submitted", "cancel"),
         ("approved", "cancel")}


@pytest.mark.parametrize("status", ["submitted", "approved", "completed", "cancelled"])
@pytest.mark.parametrize("action", ["update", "approve", "reschedule", "complete", "cancel", "submit"])
def test_transition_table(status, action):
    assert ((status, action) in LEGAL) == (action in allowed_actions(status))
    ch = {**submitted(), "status": status}
    params = {"update": {"title": "New"},
              "reschedule": {"start": "2026-12-09T02:00:00Z", "end": "2026-12-09T03:00:00Z"},
              "complete": {"before_start": True}}.get(action, {})
    if (status, action) in LEGAL:
        out = step(ch, action, **params)
        assert out["version"] == 2
        assert out["modifications"][-1]["seq"] == 2
        assert out["extraField"] == {"kept": True}
        expected = TRANSITIONS[action][1] or status
        assert out["status"] == expected
    else:
        with pytest.raises(IllegalTransition):
            step(ch, action, **params)


def test_illegal_transition_leaves_input_untouched():
    ch = step(submitted(), "approve")
    before = repr(ch)
    with pytest.raises(IllegalTransition, match="cannot approve a change that is approved"):
        step(ch, "approve")
    assert repr(ch) == before


def test_final_statuses_say_so():
    ch = step(step(submitted(), "approve"), "complete", before_start=True)
    with pytest.raises(IllegalTransition, match="final"):
        step(ch, "cancel")


def test_stale_expected_version():
    with pytest.raises(StaleVersion):
        apply_transition(submitted(), "approve", actor="x", now=NOW, expected_version=7)


def test_update_records_fields_and_added_customers():
    out = step(submitted(), "update", title="Renamed", customers=["hts", "htsnonprod"])
    mod = out["modifications"][-1]
    assert mod["type"] == "updated" and mod["fields"] == ["customers", "title"]
    assert mod["addedCustomers"] == ["htsnonprod"] and mod["customers"] == ["hts", "htsnonprod"]


def test_update_validates_and_refuses_noop():
    with pytest.raises(InvalidInput, match="unknown customer"):
        step(submitted(), "update", customers=["zzz"])
    with pytest.raises(InvalidInput, match="identical"):
        step(submitted(), "update", title="T")
    with pytest.raises(InvalidInput, match="^version: managed by ttr"):
        step(submitted(), "update", version=9)
    with pytest.raises(InvalidInput, match="nothing to change"):
        step(submitted(), "update", note="only a note")


def test_reschedule_keeps_status_and_records_both_schedules():
    ch = step(submitted(), "approve")
    out = step(ch, "reschedule", start="2026-12-09T02:00:00Z", end="2026-12-09T05:00:00Z")
    mod = out["modifications"][-1]
    assert out["status"] == "approved"
    assert mod["previousSchedule"]["implementationStart"] == "2026-12-08T02:00:00Z"
    assert out["schedule"]["implementationEnd"] == "2026-12-09T05:00:00Z"
    with pytest.raises(InvalidInput, match="must be after"):
        step(ch, "reschedule", start="2026-12-09T05:00:00Z", end="2026-12-09T02:00:00Z")


def test_cancel_remembers_whether_it_was_approved():
    assert step(submitted(), "cancel")["modifications"][-1]["wasApproved"] is False
    assert step(step(submitted(), "approve"), "cancel")["modifications"][-1]["wasApproved"] is True


def test_a_transition_note_never_overwrites_the_changes_reason():
    ch = submitted()
    ch["reason"] = "Original reason"
    out = apply_transition(ch, "update", actor="bob", now=NOW, known_customers=KNOWN,
                           params={"title": "New title", "note": "why we edited"})
    assert out["reason"] == "Original reason" and out["modifications"][-1]["note"] == "why we edited"
    out = apply_transition(ch, "approve", actor="bob", now=NOW, known_customers=KNOWN, params={"note": "ok"})
    assert out["reason"] == "Original reason" and out["modifications"][-1]["note"] == "ok"
