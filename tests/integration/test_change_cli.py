"""The change CLI against a real moto server over HTTP."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.conftest import day, window


def write(tmp_path, data, name="change.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data) if name.endswith(".yaml") else json.dumps(data))
    return p


def submit(run_cli, stack, tmp_path, change, *extra):
    code, out, err = run_cli("change", "submit", write(tmp_path, change), "--config", stack.path, *extra)
    assert code == 0, err
    return out.strip()


def test_submit_writes_archive_then_one_trigger_per_customer_and_events_queue(run_cli, stack, tmp_path,
                                                                              sample_change):
    change_id = submit(run_cli, stack, tmp_path, sample_change, "--as", "ann")
    assert change_id.startswith("CHG-")
    archive = stack.get_json(f"archive/{change_id}.json")
    assert archive["status"] == "submitted" and archive["version"] == 1 and archive["createdBy"] == "ann"
    assert archive["modifications"][0]["seq"] == 1
    assert stack.keys("customers/") == [f"customers/hts/{change_id}.json", f"customers/htsnonprod/{change_id}.json"]
    trig = stack.get_json(f"customers/hts/{change_id}.json")
    assert trig == {"changeId": change_id, "customer": "hts", "seq": 1, "action": "submit",
                    "requestedAt": trig["requestedAt"]}
    for code in ("hts", "htsnonprod"):
        events = stack.drain_events(code, expect=1)
        assert [e["s3"]["object"]["key"] for e in events] == [f"customers/{code}/{change_id}.json"]


def test_approve_bumps_version_and_writes_new_triggers(run_cli, stack, tmp_path, sample_change):
    change_id = submit(run_cli, stack, tmp_path, sample_change)
    for code in ("hts", "htsnonprod"):
        stack.drain_events(code, expect=1)
    code, out, err = run_cli("change", "approve", change_id, "--config", stack.path, "--as", "bob")
    assert code == 0, err
    archive = stack.get_json(f"archive/{change_id}.json")
    assert archive["status"] == "approved" and archive["version"] == 2
    assert [m["type"] for m in archive["modifications"]] == ["submitted", "approved"]
    assert archive["modifications"][1]["actor"] == "bob"
    assert stack.get_json(f"customers/hts/{change_id}.json")["seq"] == 2
    for c in ("hts", "htsnonprod"):
        assert len(stack.drain_events(c, expect=1)) == 1


def test_actor_comes_from_env_then_os_user(run_cli, stack, tmp_path, sample_change, monkeypatch):
    monkeypatch.setenv("TTR_ACTOR", "env-user")
    change_id = submit(run_cli, stack, tmp_path, sample_change)
    assert stack.get_json(f"archive/{change_id}.json")["createdBy"] == "env-user"
    monkeypatch.delenv("TTR_ACTOR")
    run_cli("change", "approve", change_id, "--config", stack.path)
    import getpass

    assert stack.get_json(f"archive/{change_id}.json")["modifications"][-1]["actor"] == getpass.getuser()


def test_full_lifecycle_and_reads(run_cli, stack, tmp_path, sample_change):
    change_id = submit(run_cli, stack, tmp_path, {**sample_change, "customers": ["hts"]})
    upd = write(tmp_path, {"customers": ["hts", "htsnonprod"], "title": "Renamed"}, "upd.json")
    assert run_cli("change", "update", change_id, upd, "--config", stack.path)[0] == 0
    assert run_cli("change", "reschedule", change_id, "--start", f"{day(9)}T02:00:00Z",
                   "--end", f"{day(9)}T03:00:00Z", "--config", stack.path)[0] == 0
    assert run_cli("change", "approve", change_id, "--config", stack.path)[0] == 0
    assert run_cli("change", "complete", change_id, "--before-start", "--config", stack.path)[0] == 0
    code, out, _ = run_cli("change", "show", change_id, "--config", stack.path)
    shown = json.loads(out)
    assert shown["status"] == "completed" and shown["version"] == 5
    assert [m["type"] for m in shown["modifications"]] == ["submitted", "updated", "rescheduled", "approved",
                                                          "completed"]
    assert stack.keys("customers/htsnonprod/") == [f"customers/htsnonprod/{change_id}.json"]
    code, out, _ = run_cli("change", "list", "--status", "completed", "--json", "--config", stack.path)
    assert [c["changeId"] for c in json.loads(out)] == [change_id]
    code, out, _ = run_cli("change", "list", "--status", "submitted", "--json", "--config", stack.path)
    assert json.loads(out) == []
    code, out, _ = run_cli("change", "list", "--config", stack.path)
    assert change_id in out and "Renamed" in out


def test_illegal_transition_exits_3_and_writes_nothing(run_cli, stack, tmp_path, sample_change):
    change_id = submit(run_cli, stack, tmp_path, sample_change)
    before = stack.snapshot()
    code, _, err = run_cli("change", "complete", change_id, "--config", stack.path)
    assert code == 3 and "cannot complete a change that is submitted" in err
    assert stack.snapshot() == before


def test_stale_expected_version_exits_3(run_cli, stack, tmp_path, sample_change):
    change_id = submit(run_cli, stack, tmp_path, sample_change)
    before = stack.snapshot()
    code, _, err = run_cli("change", "approve", change_id, "--expect-version", "4", "--config", stack.path)
    assert code == 3 and "version 1, not 4" in err
    assert stack.snapshot() == before


def test_existing_id_exits_3_and_keeps_the_original(run_cli, stack, tmp_path, sample_change):
    submit(run_cli, stack, tmp_path, {**sample_change, "changeId": "CHG-fixed-1"})
    before = stack.snapshot()
    code, _, err = run_cli("change", "submit", write(tmp_path, {**sample_change, "changeId": "CHG-fixed-1",
                                                                 "title": "Other"}), "--config", stack.path)
    assert code == 3 and "already exists" in err
    assert stack.snapshot() == before


def test_unknown_fields_survive_every_writer(run_cli, stack, tmp_path, sample_change):
    change_id = submit(run_cli, stack, tmp_path, {**sample_change, "x-portalHints": {"color": "red"}})
    key = f"archive/{change_id}.json"
    archive = stack.get_json(key)
    archive["addedByAnotherTool"] = [1, 2, 3]
    stack.s3.put_object(Bucket=stack.cfg.bucket, Key=key, Body=json.dumps(archive).encode())
    assert run_cli("change", "approve", change_id, "--config", stack.path)[0] == 0
    after = stack.get_json(key)
    assert after["x-portalHints"] == {"color": "red"} and after["addedByAnotherTool"] == [1, 2, 3]


def test_drafts_then_submit_from_draft(run_cli, stack, tmp_path, sample_change):
    code, out, err = run_cli("change", "draft", write(tmp_path, {"title": "WIP", "customers": ["hts"]}),
                             "--config", stack.path)
    assert code == 0, err
    draft_id = out.strip()
    assert stack.get_json(f"drafts/{draft_id}.json")["status"] == "draft"
    assert stack.keys("customers/") == [] and stack.keys("archive/") == []
    # incomplete: exits 2 and writes nothing
    before = stack.snapshot()
    code, _, err = run_cli("change", "submit", "--draft", draft_id, "--config", stack.path)
    assert code == 2 and "schedule" in err and stack.snapshot() == before
    # complete the draft, then submit it
    run_cli("change", "draft", write(tmp_path, {**sample_change, "changeId": draft_id}), "--config", stack.path)
    code, out, err = run_cli("change", "submit", "--draft", draft_id, "--config", stack.path)
    assert code == 0, err and out.strip() == draft_id
    assert stack.keys("drafts/") == []
    assert stack.get_json(f"archive/{draft_id}.json")["status"] == "submitted"


def test_retrigger_rewrites_triggers(run_cli, stack, tmp_path, sample_change):
    change_id = submit(run_cli, stack, tmp_path, sample_change)
    stack.s3.delete_object(Bucket=stack.cfg.bucket, Key=f"customers/hts/{change_id}.json")
    stack.drain_events("hts", expect=1)
    code, _, err = run_cli("change", "retrigger", change_id, "--customer", "hts", "--config", stack.path)
    assert code == 0, err
    assert stack.get_json(f"customers/hts/{change_id}.json")["seq"] == 1
    assert len(stack.drain_events("hts", expect=1)) == 1
    code, _, err = run_cli("change", "retrigger", change_id, "--customer", "zzz", "--config", stack.path)
    assert code == 2 and "not on change" in err


# --- bad input: exit 2, a message naming the problem, nothing written ---------------------------

BAD_CHANGES = [
    ({"customers": ["nobody"]}, "unknown customer 'nobody'"),
    ({"changeId": "../../archive/evil"}, "changeId"),
    ({"changeId": "x" * 129}, "changeId"),
    ({"schedule": {"implementationStart": f"{day(8)}T04:00:00Z", "implementationEnd": f"{day(8)}T02:00:00Z",
                   "timezone": "UTC"}}, "schedule.implementationEnd: "),
    ({"schedule": {"implementationStart": f"{day(8)}T02:00:00Z", "implementationEnd": f"{day(8)}T02:00:00Z",
                   "timezone": "UTC"}}, "must be after the start"),
    ({"schedule": {"implementationStart": f"{day(8)}T02:00:00Z", "implementationEnd": f"{day(8)}T04:00:00Z",
                   "timezone": "Atlantis/Capital"}}, "unknown time zone"),
    ({"schedule": {"implementationStart": f"{day(8)}T02:00:00", "implementationEnd": f"{day(8)}T04:00:00Z",
                   "timezone": "UTC"}}, "offset"),
    ({"title": ""}, "title"),
    ({"schedule": window(-2)}, "schedule.implementationStart: "),
    ({"schedule": window(-1, hours=72)}, "is in the past"),
    ({"rolbackPlan": "undo"}, "rolbackPlan: unknown field; did you mean rollbackPlan?"),
    ({"schedule": {**window(8), "implementationStrat": "x"}},
     "schedule.implementationStrat: unknown field; did you mean schedule.implementationStart?"),
    ({"meeting": {"required": True, "duration": 30}}, "did you mean meeting.durationMinutes?"),
    ({"status": "approved"}, "status: managed by ttr"),
]


@pytest.mark.parametrize("over, fragment", BAD_CHANGES)
def test_bad_change_exits_2_and_writes_nothing(run_cli, stack, tmp_path, sample_change, over, fragment):
    before = stack.snapshot()
    code, out, err = run_cli("change", "submit", write(tmp_path, {**sample_change, **over}), "--config", stack.path)
    assert code == 2 and fragment in err and out == ""
    assert stack.snapshot() == before


@pytest.mark.parametrize("content, name, fragment", [
    (None, "missing.yaml", "file not found"),
    ("{not json", "bad.json", "malformed JSON"),
    ("title: [unclosed\n", "bad.yaml", "malformed YAML"),
    ("- a\n- list\n", "list.yaml", "expected a mapping"),
    (b"\xff\xfe\x00garbage", "binary.yaml", "not UTF-8"),
])
def test_unreadable_or_malformed_files_exit_2(run_cli, stack, tmp_path, content, name, fragment):
    p = tmp_path / name
    if isinstance(content, bytes):
        p.write_bytes(content)
    elif content is not None:
        p.write_text(content)
    before = stack.snapshot()
    code, _, err = run_cli("change", "submit", p, "--config", stack.path)
    assert code == 2 and fragment in err and name in err
    assert stack.snapshot() == before


def test_directory_instead_of_file_exits_2(run_cli, stack, tmp_path):
    code, _, err = run_cli("change", "submit", tmp_path, "--config", stack.path)
    assert code == 2 and "is a directory" in err


def test_bad_reschedule_and_update_exit_2_and_write_nothing(run_cli, stack, tmp_path, sample_change):
    change_id = submit(run_cli, stack, tmp_path, sample_change)
    before = stack.snapshot()
    code, _, err = run_cli("change", "reschedule", change_id, "--start", f"{day(9)}T05:00:00Z",
                           "--end", f"{day(9)}T01:00:00Z", "--config", stack.path)
    assert code == 2 and "must be after" in err
    code, _, err = run_cli("change", "update", change_id, write(tmp_path, {"customers": ["zzz"]}),
                           "--config", stack.path)
    assert code == 2 and "unknown customer" in err
    code, _, err = run_cli("change", "update", change_id, write(tmp_path, {"status": "approved"}),
                           "--config", stack.path)
    assert code == 2 and "managed by ttr" in err
    assert stack.snapshot() == before


def test_unknown_change_and_bad_id_exit_2(run_cli, stack):
    code, _, err = run_cli("change", "approve", "CHG-does-not-exist", "--config", stack.path)
    assert code == 2 and "not found" in err
    code, _, err = run_cli("change", "show", "../etc", "--config", stack.path)
    assert code == 2 and "changeId" in err


def test_bad_config_exits_2_naming_the_field(run_cli, tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("bucket: x-bucket\nemail: {sender: a@b.c}\ngraph: {organizer: o@b.c}\ncustomers: []\n")
    code, _, err = run_cli("change", "list", "--config", p)
    assert code == 2 and "customers" in err and str(p) in err


# --- scheduling windows and unknown fields (second wave) ----------------------------------------


def test_a_past_start_is_refused_everywhere_unless_allowed(run_cli, stack, tmp_path, sample_change):
    past = window(-3)
    change_id = submit(run_cli, stack, tmp_path, sample_change)
    before = stack.snapshot()
    code, out, err = run_cli("change", "reschedule", change_id, "--start", past["implementationStart"],
                             "--end", past["implementationEnd"], "--config", stack.path)
    assert code == 2 and "error: schedule.implementationStart: " in err and "in the past" in err
    assert "--allow-past" in err and out == ""
    code, _, err = run_cli("change", "update", change_id, write(tmp_path, {"schedule": past}), "--config", stack.path)
    assert code == 2 and "schedule.implementationStart: " in err and "in the past" in err
    code, _, err = run_cli("change", "update", change_id, write(tmp_path, {"rolbackPlan": "undo"}),
                           "--config", stack.path)
    assert code == 2 and "did you mean rollbackPlan?" in err
    code, _, err = run_cli("change", "update", change_id, write(tmp_path, {"allow_past": True, "title": "t"}),
                           "--config", stack.path)
    assert code == 2 and "allow_past: unknown field" in err  # an option is not a field of the file
    assert stack.snapshot() == before
    # an update that leaves the window alone is judged on what it changes
    assert run_cli("change", "update", change_id, write(tmp_path, {"title": "Renamed"}),
                   "--config", stack.path)[0] == 0
    # recorded after the fact: allowed with --allow-past, on every writer
    assert run_cli("change", "update", change_id, write(tmp_path, {"schedule": past}), "--allow-past",
                   "--config", stack.path)[0] == 0
    late = window(-1)
    assert run_cli("change", "reschedule", change_id, "--start", late["implementationStart"],
                   "--end", late["implementationEnd"], "--allow-past", "--config", stack.path)[0] == 0
    old_id = submit(run_cli, stack, tmp_path, {**sample_change, "schedule": past}, "--allow-past")
    assert stack.get_json(f"archive/{old_id}.json")["schedule"]["implementationStart"] == past["implementationStart"]


def test_free_x_fields_are_kept_and_updatable(run_cli, stack, tmp_path, sample_change):
    change_id = submit(run_cli, stack, tmp_path, {**sample_change, "x-team": "network"})
    assert run_cli("change", "update", change_id, write(tmp_path, {"x-team": "edge"}), "--config", stack.path)[0] == 0
    assert stack.get_json(f"archive/{change_id}.json")["x-team"] == "edge"


def test_complete_before_the_window_needs_before_start(run_cli, stack, tmp_path, sample_change):
    change_id = submit(run_cli, stack, tmp_path, sample_change)
    assert run_cli("change", "approve", change_id, "--config", stack.path)[0] == 0
    before = stack.snapshot()
    code, out, err = run_cli("change", "complete", change_id, "--config", stack.path)
    assert code == 2 and "error: beforeStart: the window has not started yet" in err and "--before-start" in err
    assert out == "" and stack.snapshot() == before
    assert run_cli("change", "complete", change_id, "--before-start", "--config", stack.path)[0] == 0
    assert stack.get_json(f"archive/{change_id}.json")["status"] == "completed"
    # once the window has started, no confirmation is needed
    started = submit(run_cli, stack, tmp_path, {**sample_change, "schedule": window(-1, hours=72)}, "--allow-past")
    run_cli("change", "approve", started, "--config", stack.path)
    assert run_cli("change", "complete", started, "--config", stack.path)[0] == 0


def test_the_example_change_has_a_window_from_today_and_submits(run_cli, stack, tmp_path):
    code, out, err = run_cli("change", "example", "--days", "3")
    assert code == 0, err
    example = yaml.safe_load(out)
    assert example["schedule"]["implementationStart"].startswith(day(3))
    assert example["rollbackPlan"] and example["customers"] == ["hts", "htsnonprod"]
    path = tmp_path / "example.yaml"
    path.write_text(out)
    assert run_cli("change", "submit", path, "--config", stack.path)[0] == 0
    assert run_cli("change", "example", "--days", "-1")[0] == 2


def test_request_changes_and_comment_tell_nobody_and_keep_the_version(run_cli, stack, tmp_path, sample_change):
    change_id = submit(run_cli, stack, tmp_path, sample_change, "--as", "ann")
    for c in ("hts", "htsnonprod"):
        stack.drain_events(c, expect=1)
    before = stack.snapshot()
    code, _, err = run_cli("change", "request-changes", change_id, "--comment", " ", "--config", stack.path)
    assert code == 2 and "comment: a comment is required" in err and stack.snapshot() == before
    code, _, err = run_cli("change", "request-changes", change_id, "--comment", "Name the gateways",
                           "--as", "bob", "--config", stack.path)
    assert code == 0, err
    assert run_cli("change", "comment", change_id, "--comment", "Done soon", "--as", "ann",
                   "--config", stack.path)[0] == 0
    archive = stack.get_json(f"archive/{change_id}.json")
    assert archive["version"] == 1 and archive["status"] == "submitted"
    assert [(m["type"], m["actor"], m.get("comment")) for m in archive["modifications"]] == [
        ("submitted", "ann", None), ("changes_requested", "bob", "Name the gateways"), ("comment", "ann", "Done soon")]
    after = stack.snapshot()
    assert {k: v for k, v in after.items() if not k.startswith("archive/")} == \
        {k: v for k, v in before.items() if not k.startswith("archive/")}      # no trigger written
    assert not stack.drain_events("hts", expect=1, timeout=2)
    run_cli("change", "approve", change_id, "--config", stack.path)
    code, _, err = run_cli("change", "request-changes", change_id, "--comment", "late", "--config", stack.path)
    assert code == 3 and "cannot request changes on a change that is approved" in err
