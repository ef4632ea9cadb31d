"""The bare call sequence (runtime/local/replay.py) run as bench.py runs it: a separate process
against the emulators over HTTP, on its own bucket and queues."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from runtime.local.aws_emulator import AwsEmulator
from runtime.local.replay import build_plan

ROOT = Path(__file__).resolve().parents[2]
TENANT = {"sqs.ReceiveMessage": 1, "s3.GetObject": 2, "s3.PutObject": 1, "sts.AssumeRole": 1,
          "sesv2.ListContacts": 1, "sesv2.GetContact": 1, "sesv2.SendEmail": 2, "s3.DeleteObject": 2,
          "sqs.DeleteMessageBatch": 1}


def replay(plan: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runtime.local.replay"], input=json.dumps(plan), text=True,
                          capture_output=True, cwd=ROOT, timeout=120)


def queue_depths(stack) -> dict[str, str]:
    out = {}
    for code in stack.cfg.customer_codes:
        attrs = stack.sqs.get_queue_attributes(QueueUrl=stack.queue_url(code), AttributeNames=["All"])["Attributes"]
        out[code] = attrs["ApproximateNumberOfMessages"] + "/" + attrs["ApproximateNumberOfMessagesNotVisible"]
    return out


def plan_for(stack, graph_emulator, endpoint: str) -> dict:
    cfg = stack.cfg
    codes = list(cfg.customer_codes)
    customers = {c.code: {"role_arn": c.ses_role_arn, "external_id": c.external_id, "sender": c.sender,
                          "region": cfg.region_of(c), "contact_list": c.contact_list} for c in cfg.customers}
    first = {code: cfg.local.contacts[code][0].email for code in codes}
    emails = {code: [{"to": first[code], "subject": f"Replayed <b>{code}</b>", "html": "<p>replayed</p>",
                      "raw": ""}] for code in codes}
    event = {"subject": "Broadcast", "body": {"contentType": "html", "content": "<p>meeting</p>"},
             "start": {"dateTime": "2026-12-08T10:00:00", "timeZone": "UTC"},
             "end": {"dateTime": "2026-12-08T11:00:00", "timeZone": "UTC"},
             "attendees": [{"emailAddress": {"address": a}, "type": "required"} for a in first.values()]}
    graph = {"base_url": graph_emulator.base_url, "event": event,
             "calls": [{"method": "POST", "path": f"/v1.0/users/{cfg.graph.organizer}/events", "query": ""}]}
    return build_plan(endpoint=endpoint, region=cfg.region, width=4, archive_bytes=20_000,
                      trigger_bytes=150, submitter={"s3.PutObject": 2 + 2 * len(codes), "s3.GetObject": 1},
                      triggers=2 * len(codes), tenants={c: TENANT for c in codes},
                      services={"s3.GetObject": 1, "s3.PutObject": 2}, customers=customers, emails=emails,
                      graph=graph)


def test_the_replay_makes_every_call_on_its_own_resources(stack, graph_emulator):
    codes = list(stack.cfg.customer_codes)
    plan = plan_for(stack, graph_emulator, stack.cfg.aws_endpoint_url)
    objects_before = stack.snapshot()
    depths_before = queue_depths(stack)
    sent_before = Counter(m.source for m in AwsEmulator.sent_emails())
    proc = replay(plan)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)

    assert result["errors"] == {}
    assert result["not_replayed"] == {}
    assert result["aws_calls"] == 3 + 2 * len(codes) + 3 + len(codes) * sum(TENANT.values())
    assert result["graph_calls"] == 1
    assert result["messages_received"] == 2 * len(codes)   # each trigger write notified its tenant's queue
    assert result["triggers_left"] == 0                    # and each tenant deleted the triggers it was sent
    assert len(result["stage_s"]) == 4 and result["bare_s"] >= sum(result["stage_s"]) * 0.99
    # the list is kept per account: compare what each sender sent, not the list's tail
    sent = Counter(m.source for m in AwsEmulator.sent_emails()) - sent_before
    assert sent == Counter({stack.cfg.customer(c).sender: 2 for c in codes})
    assert [e for e in graph_emulator.events() if e["subject"] == "[replay] Broadcast"]
    # the runtime's own bucket and queues are not touched
    assert stack.snapshot() == objects_before
    assert queue_depths(stack) == depths_before
    # and the replay's own bucket and queues are gone once it has answered
    assert not [b for b in stack.s3.list_buckets()["Buckets"] if b["Name"].startswith("ttr-replay-")]
    assert not stack.sqs.list_queues(QueueNamePrefix="ttr-replay-").get("QueueUrls")


def test_the_replay_refuses_an_endpoint_off_this_machine(stack, graph_emulator):
    buckets_before = stack.s3.list_buckets()["Buckets"]
    proc = replay(plan_for(stack, graph_emulator, "http://192.0.2.1:4566"))
    assert proc.returncode == 2
    assert "http://192.0.2.1:4566 is not a loopback address" in proc.stderr
    assert proc.stdout == ""
    assert stack.s3.list_buckets()["Buckets"] == buckets_before
