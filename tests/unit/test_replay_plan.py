"""The bare call sequence's plan (runtime/local/replay.py): pure, from call-count deltas."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from runtime.local.replay import (
    DELETES,
    RECEIVES,
    REPLAY_WIDTH_CAP,
    aws_calls_of,
    build_plan,
    build_stages,
    call_delta,
    is_loopback_url,
    replay_width,
    split_submitter_puts,
)


def test_the_delta_keeps_only_the_calls_made_in_between():
    before = {"s3.GetObject": 10, "sqs.ReceiveMessage": 4, "s3.PutObject": 2}
    after = {"s3.GetObject": 13, "sqs.ReceiveMessage": 4, "s3.PutObject": 3, "sesv2.SendEmail": 6}
    assert call_delta(before, after) == {"s3.GetObject": 3, "s3.PutObject": 1, "sesv2.SendEmail": 6}
    assert call_delta({}, {"sts.AssumeRole": 1}) == {"sts.AssumeRole": 1}
    # a counter that went down (a restarted process) gives no negative calls
    assert call_delta({"s3.GetObject": 9}, {"s3.GetObject": 2}) == {}


@pytest.mark.parametrize(("tenants", "concurrency", "width"),
                         [(100, 8, REPLAY_WIDTH_CAP), (2, 8, 16), (3, 1, 3), (0, 8, 1)])
def test_the_width_is_the_runtime_s_parallelism_capped(tenants, concurrency, width):
    assert replay_width(tenants, concurrency) == width


def test_the_submitter_s_puts_are_its_triggers_and_the_rest_archive_writes():
    assert split_submitter_puts({"s3.PutObject": 202, "s3.GetObject": 1}, triggers=200) == (2, 200)
    assert split_submitter_puts({"s3.PutObject": 3}, triggers=8) == (0, 3)
    assert split_submitter_puts({}, triggers=8) == (0, 0)


TENANTS = {
    "t00": {"sqs.ReceiveMessage": 2, "s3.GetObject": 3, "sesv2.SendEmail": 6, "s3.DeleteObject": 2,
            "sqs.DeleteMessageBatch": 1},
    "t01": {"sqs.ReceiveMessage": 1, "s3.GetObject": 2, "sesv2.SendEmail": 6, "sqs.DeleteMessageBatch": 1,
            "sqs.PurgeQueue": 1},
}
SERVICES = {"s3.GetObject": 1, "s3.PutObject": 2}
SUBMITTER = {"s3.PutObject": 6, "s3.GetObject": 1}


def test_the_stages_hold_every_replayable_call_once_in_its_stage():
    stages, skipped = build_stages(SUBMITTER, TENANTS, SERVICES, graph_calls=1)
    assert len(stages) == 4
    assert {t.owner for t in stages[0]} == {"submitter"}
    assert Counter(t.op for t in stages[0]) == Counter(SUBMITTER)
    assert {t.op for t in stages[1]} == set(RECEIVES)
    assert {t.op for t in stages[3]} <= set(DELETES)
    assert not {t.op for t in stages[2]} & (set(RECEIVES) | set(DELETES))
    every = Counter((t.owner, t.op) for s in stages[1:] for t in s)
    expected = Counter({(code, op): n for code, counts in TENANTS.items() for op, n in counts.items()
                        if op != "sqs.PurgeQueue"})
    expected.update({("services", op): n for op, n in SERVICES.items()})
    expected[("graph", "graph")] = 1
    assert every == expected
    assert skipped == {"sqs.PurgeQueue": 1}   # nothing the replay cannot make is counted as made


def test_within_a_stage_every_owner_s_first_call_comes_before_anyone_s_second():
    stages, _ = build_stages({}, TENANTS, SERVICES)
    middle = stages[2]
    owners_first = [t.owner for t in middle[:3]]
    assert owners_first == ["t00", "t01", "services"]
    # each owner's calls keep their numbering (n) in order
    for owner in ("t00", "t01", "services"):
        ns = [(t.op, t.n) for t in middle if t.owner == owner]
        for op in {op for op, _ in ns}:
            assert [n for o, n in ns if o == op] == sorted(n for o, n in ns if o == op)


def test_the_plan_is_json_and_counts_every_call_replayed_or_not():
    plan = build_plan(endpoint="http://127.0.0.1:5000", region="us-east-1", width=16, archive_bytes=40_000,
                      trigger_bytes=150, submitter=SUBMITTER, triggers=4, tenants=TENANTS, services=SERVICES,
                      customers={}, emails={}, graph=None)
    assert json.loads(json.dumps(plan)) == plan
    assert (plan["submitter_archive_puts"], plan["submitter_trigger_puts"]) == (2, 4)
    calls = aws_calls_of(plan)
    assert calls["s3.GetObject"] == 1 + 3 + 2 + 1
    assert calls["sqs.PurgeQueue"] == 1
    assert sum(calls.values()) == sum(SUBMITTER.values()) + sum(SERVICES.values()) + sum(
        sum(c.values()) for c in TENANTS.values())


@pytest.mark.parametrize(("url", "ok"), [("http://127.0.0.1:5000", True), ("http://localhost:1/v1.0", True),
                                         ("https://s3.amazonaws.com", False), ("http://10.0.0.1:5000", False)])
def test_the_replay_only_talks_to_loopback(url, ok):
    assert is_loopback_url(url) is ok
