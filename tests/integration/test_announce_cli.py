"""``ttr announce`` against a real moto server over HTTP."""

from __future__ import annotations

import json

import yaml

from tests.conftest import window


def write(tmp_path, data, name="ann.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data))
    return p


GOOD = {"type": "cic", "title": "Landing zone 4.2 is out", "customers": ["hts", "htsnonprod"],
        "summary": "New guard rails.", "content": "Read the release notes.",
        "links": [{"title": "Release notes", "url": "https://lz.example.com/4.2"}]}


def test_submit_approve_cancel_list_show(run_cli, stack, tmp_path, sample_change):
    code, out, err = run_cli("announce", "submit", write(tmp_path, GOOD), "--config", stack.path, "--as", "alice")
    assert code == 0, err
    ann_id = out.strip()
    assert ann_id.startswith("ANN-")
    archive = stack.get_json(f"archive/{ann_id}.json")
    assert archive["kind"] == "announcement" and archive["status"] == "submitted" and archive["createdBy"] == "alice"
    assert stack.keys("customers/") == [f"customers/hts/{ann_id}.json", f"customers/htsnonprod/{ann_id}.json"]
    # a change beside it: each list shows its own kind only
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(sample_change))
    code, out, err = run_cli("change", "submit", tmp_path / "c.yaml", "--config", stack.path)
    assert code == 0, err
    change_id = out.strip()
    code, out, _ = run_cli("announce", "list", "--json", "--config", stack.path)
    assert code == 0 and [r["id"] for r in json.loads(out)] == [ann_id]
    code, out, _ = run_cli("change", "list", "--json", "--config", stack.path)
    assert code == 0 and [r["changeId"] for r in json.loads(out)] == [change_id]

    code, out, err = run_cli("announce", "approve", ann_id, "--config", stack.path, "--as", "bob")
    assert code == 0, err
    assert stack.get_json(f"archive/{ann_id}.json")["status"] == "approved"
    code, _, err = run_cli("announce", "approve", ann_id, "--config", stack.path)
    assert code == 3 and "cannot approve an announcement that is approved" in err
    code, out, _ = run_cli("announce", "list", "--config", stack.path, "--status", "approved", "--type", "cic")
    assert code == 0 and ann_id in out and "Landing zone 4.2 is out" in out
    code, out, _ = run_cli("announce", "list", "--config", stack.path, "--type", "finops")
    assert code == 0 and ann_id not in out
    code, _, err = run_cli("announce", "cancel", ann_id, "--config", stack.path, "--reason", "wrong version",
                           "--expect-version", "1")
    assert code == 3 and "version 2, not 1" in err
    code, _, err = run_cli("announce", "cancel", ann_id, "--config", stack.path, "--reason", "wrong version")
    assert code == 0, err
    code, out, _ = run_cli("announce", "show", ann_id, "--config", stack.path)
    shown = json.loads(out)
    assert code == 0 and shown["status"] == "cancelled" and shown["modifications"][-1]["note"] == "wrong version"


def test_bad_input_exits_2_naming_the_problem_and_writes_nothing(run_cli, stack, tmp_path, sample_change):
    before = stack.snapshot()
    for bad, message in [
        ({**GOOD, "type": "news"}, "type: 'news' is not an announcement type"),
        ({**GOOD, "sumary": "x"}, "sumary: unknown field; did you mean summary?"),
        ({**GOOD, "links": [{"title": "x", "url": "ftp://x"}]}, "links[0].url"),
        ({**GOOD, "meeting": {"required": True}}, "schedule: required for a meeting"),
        ({**GOOD, "customers": ["zzz"]}, "customers: unknown customer 'zzz'"),
    ]:
        code, out, err = run_cli("announce", "submit", write(tmp_path, bad), "--config", stack.path)
        assert code == 2 and message in err and out == "", (bad, err)
    assert stack.snapshot() == before
    code, _, err = run_cli("announce", "list", "--type", "news", "--config", stack.path)
    assert code == 2 and "--type: 'news'" in err
    code, _, err = run_cli("announce", "show", "ANN-missing", "--config", stack.path)
    assert code == 2
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(sample_change))
    _, out, _ = run_cli("change", "submit", tmp_path / "c.yaml", "--config", stack.path)
    code, _, err = run_cli("announce", "approve", out.strip(), "--config", stack.path)
    assert code == 2 and "is not an announcement" in err
    assert stack.get_json(f"archive/{out.strip()}.json")["status"] == "submitted"


def test_a_meeting_window_in_the_past_needs_allow_past(run_cli, stack, tmp_path):
    past = window(days=-2)
    doc = {**GOOD, "meeting": {"required": True}, "schedule": past}
    code, _, err = run_cli("announce", "submit", write(tmp_path, doc), "--config", stack.path)
    assert code == 2 and "is in the past" in err
    code, out, err = run_cli("announce", "submit", write(tmp_path, doc), "--config", stack.path, "--allow-past")
    assert code == 0 and out.startswith("ANN-"), err
