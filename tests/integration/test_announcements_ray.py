"""Announcements end to end on a real local Ray (supervisor, CustomerActors, ArchiveActor, the
MeetingCoordinator) against the moto server and the Graph emulator: the same path as changes,
with the kind as data."""

from __future__ import annotations

import json
import uuid

import pytest

from runtime.domain.processing import plan
from runtime.local.aws_emulator import AwsEmulator
from tests.conftest import make_stack, running_runtime, wait_for, window

pytestmark = pytest.mark.ray

TOPIC = {"cic": "cic-announce", "finops": "finops-announce", "innersource": "inner-announce",
         "general": "general-updates"}
NOT_GENERAL = {"general-updates": "OPT_OUT"}


def _contacts(data):
    """Per customer: one subscriber per type topic, one approver, one who wants nothing."""
    data["local"]["contacts"] = {
        code: [
            {"email": f"cic@{code}.example.com", "topics": {"cic-announce": "OPT_IN", **NOT_GENERAL}},
            {"email": f"fin@{code}.example.com", "topics": {"finops-announce": "OPT_IN", **NOT_GENERAL}},
            {"email": f"inner@{code}.example.com", "topics": {"inner-announce": "OPT_IN", **NOT_GENERAL}},
            {"email": f"news@{code}.example.com"},                      # general-updates by default
            {"email": f"appr@{code}.example.com",
             "topics": {"announce-approval": "OPT_IN", "aws-calendar": "OPT_IN", **NOT_GENERAL}},
            {"email": f"out@{code}.example.com", "unsubscribe_all": True},
        ] for code in ("hts", "htsnonprod")}
    for c in data["customers"]:
        if c.get("restricted_recipients"):
            c["restricted_recipients"] = [e["email"] for e in data["local"]["contacts"][c["code"]]]


def subscribers(kind: str) -> set[str]:
    who = {"cic": "cic", "finops": "fin", "innersource": "inner", "general": "news"}[kind]
    return {f"{who}@{code}.example.com" for code in ("hts", "htsnonprod")}


APPROVERS = {"appr@hts.example.com", "appr@htsnonprod.example.com"}


@pytest.fixture(scope="module")
def ann_stack(aws_emulator, graph_emulator, tmp_path_factory):
    return make_stack(aws_emulator.endpoint_url, tmp_path_factory.mktemp("ann"), mutate=_contacts,
                      graph_url=graph_emulator.base_url)


@pytest.fixture(scope="module")
def runtime(ray_session, ann_stack):
    with running_runtime(ann_stack.cfg, "ann") as rt:
        yield rt


@pytest.fixture()
def lc(ann_stack):
    return ann_stack.lifecycle(topics=[t.name for t in ann_stack.cfg.topics])


def announcement(kind: str, **over) -> tuple[dict, str]:
    title = f"{kind} news {uuid.uuid4().hex[:8]}"
    return {"type": kind, "title": title, "customers": ["hts", "htsnonprod"],
            "summary": "What changes for you <b>now</b>.", "content": "Details.\nMore details.",
            "links": [{"title": "Read more", "url": "https://example.com/more?a=1&b=2"}], **over}, title


def all_processed(lc, ann_id, seqs):
    def check():
        a = lc.show(ann_id)
        done = {(m["customer"], m["transition"]) for m in a["modifications"] if m["type"] == "processed"}
        return a if all((c, s) in done for c in a["customers"] for s in seqs) and \
            all(not plan(a, c).steps for c in a["customers"]) else None
    return check


def mail(title: str) -> dict[str, list]:
    out: dict[str, list] = {}
    for m in AwsEmulator.sent_emails():
        if title in m.subject:
            for to in m.to:
                out.setdefault(to, []).append(m)
    return out


def subjects(title: str) -> dict[str, list[str]]:
    return {to: [m.subject for m in ms] for to, ms in mail(title).items()}


@pytest.mark.parametrize("kind", list(TOPIC))
def test_each_type_reaches_exactly_its_topic_after_approval_requests(runtime, lc, kind):
    content, title = announcement(kind)
    ann_id = lc.announce(content, actor="alice").change_id
    assert ann_id.startswith("ANN-")
    lc.transition(ann_id, "approve", actor="bob")            # rapid submit -> approve: both delivered
    a = wait_for(all_processed(lc, ann_id, (1, 2)), timeout=60, what="both transitions processed")
    got = subjects(title)
    expected = {to: [f"Approval required: {title}"] for to in APPROVERS}
    label = {"cic": "CIC", "finops": "FinOps", "innersource": "InnerSource", "general": "General"}[kind]
    for to in subscribers(kind):
        expected[to] = [f"{label} announcement: {title}"]
    assert got == expected
    told = {(m["customer"], m["transition"]): m["topic"] for m in a["modifications"] if m["type"] == "processed"}
    assert told == {(c, 1): "announce-approval" for c in ("hts", "htsnonprod")} | \
        {(c, 2): TOPIC[kind] for c in ("hts", "htsnonprod")}
    # each customer reads only about itself; user text is escaped; the link is there
    hts_reader = next(to for to in subscribers(kind) if to.endswith("@hts.example.com"))
    (m,) = mail(title)[hts_reader]
    assert "&lt;b&gt;now&lt;/b&gt;" in m.body and "<b>now</b>" not in m.body
    assert 'href="https://example.com/more?a=1&amp;b=2"' in m.body
    assert "HTS Production" in m.body and "HTS Non-Production" not in m.body and "htsnonprod" not in m.body


def test_cancel_after_approval_tells_the_types_subscribers(runtime, lc):
    content, title = announcement("cic")
    ann_id = lc.announce(content, actor="alice").change_id
    lc.transition(ann_id, "approve", actor="bob")
    wait_for(all_processed(lc, ann_id, (1, 2)), timeout=60, what="approval processed")
    lc.transition(ann_id, "cancel", actor="bob", params={"note": "Sent too early."})
    wait_for(all_processed(lc, ann_id, (1, 2, 3)), timeout=60, what="cancel processed")
    got = subjects(title)
    for to in subscribers("cic"):
        assert got[to] == [f"CIC announcement: {title}", f"Cancelled: {title}"]
    for to in APPROVERS:
        assert got[to] == [f"Approval required: {title}"]


def test_cancel_before_approval_tells_only_the_approvers(runtime, lc):
    content, title = announcement("finops", customers=["hts"])
    ann_id = lc.announce(content, actor="alice").change_id
    wait_for(all_processed(lc, ann_id, (1,)), timeout=60, what="request processed")
    lc.transition(ann_id, "cancel", actor="alice")
    wait_for(all_processed(lc, ann_id, (1, 2)), timeout=60, what="cancel processed")
    assert subjects(title) == {"appr@hts.example.com": [f"Approval required: {title}", f"Cancelled: {title}"]}


def test_duplicate_events_and_retriggers_send_nothing_twice(runtime, lc, ann_stack):
    content, title = announcement("innersource", customers=["hts"])
    ann_id = lc.announce(content, actor="alice").change_id
    lc.transition(ann_id, "approve", actor="bob")
    wait_for(all_processed(lc, ann_id, (1, 2)), timeout=60, what="processing")
    event = {"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                          "s3": {"bucket": {"name": ann_stack.cfg.bucket},
                                 "object": {"key": f"customers%2Fhts%2F{ann_id}.json"}}}]}
    url = ann_stack.queue_url("hts")
    for _ in range(3):
        ann_stack.sqs.send_message(QueueUrl=url, MessageBody=json.dumps(event))
    lc.retrigger(ann_id)
    wait_for(lambda: runtime.health()["hts"]["in_flight"] == 0 and ann_stack.sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]["ApproximateNumberOfMessages"]
        == "0", what="queue drained")
    wait_for(lambda: not [k for k in ann_stack.keys("customers/") if ann_id in k], what="trigger deleted")
    assert subjects(title) == {"appr@hts.example.com": [f"Approval required: {title}"],
                               "inner@hts.example.com": [f"InnerSource announcement: {title}"]}


def test_an_announcement_with_a_meeting_makes_one_event(runtime, lc, graph_emulator):
    content, title = announcement("finops", meeting={"required": True, "title": None}, schedule=window(days=9))
    ann_id = lc.announce(content, actor="alice").change_id
    lc.transition(ann_id, "approve", actor="bob")
    a = wait_for(all_processed(lc, ann_id, (1, 2)), timeout=60, what="processing with the meeting")
    events = [e for e in graph_emulator.events() if title in e["subject"]]
    assert len(events) == 1 and events[0]["subject"] == f"Announcement: {title}"
    assert {x["emailAddress"]["address"] for x in events[0]["attendees"]} == APPROVERS  # aws-calendar
    assert a["meetingMetadata"]["meetingId"] == events[0]["id"]
    join = a["meetingMetadata"]["joinUrl"]
    for to in subscribers("finops"):
        (m,) = mail(title)[to]
        assert join.replace("&", "&amp;") in m.body
    lc.transition(ann_id, "cancel", actor="bob")
    wait_for(all_processed(lc, ann_id, (1, 2, 3)), timeout=60, what="cancel processed")
    wait_for(lambda: [e for e in graph_emulator.events() if e["id"] == events[0]["id"]
                      and e.get("isCancelled")], what="the meeting cancelled")
