"""End to end on a real local Ray: the supervisor, a CustomerActor per tenant, the ArchiveActor."""

from __future__ import annotations

import json
import uuid

import pytest
import ray

from runtime.adapters.s3 import S3ObjectStore
from runtime.local.aws_emulator import AwsEmulator
from runtime.services.archive import ArchiveStore
from tests.conftest import SAMPLE_DAY, all_processed, running_runtime, wait_for

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def runtime(ray_session, module_stack):
    with running_runtime(module_stack.cfg, "test") as rt:
        yield rt


@pytest.fixture()
def lc(module_stack):
    return module_stack.lifecycle()




def emails(title):
    out: dict[str, list[str]] = {}
    for m in AwsEmulator.sent_emails():
        if title in m.subject:
            for to in m.to:
                out.setdefault(to, []).append(m.subject)
    return out


def new_change(sample_change, **over):
    title = f"Ray change {uuid.uuid4().hex[:8]}"
    return {**sample_change, "title": title, **over}, title


def test_submit_then_approve_both_notifications_delivered(runtime, lc, module_stack, sample_change):
    content, title = new_change(sample_change)
    cid = lc.submit(content, actor="ann").change_id
    lc.transition(cid, "approve", actor="bob")
    ch = wait_for(all_processed(lc, cid), what="processing")
    for code in ("hts", "htsnonprod"):
        assert sorted(m["transition"] for m in ch["modifications"]
                      if m["type"] == "processed" and m["customer"] == code) == [1, 2]
    got = emails(title)
    assert got["alice@example.com"] == [f"Approval required: {title} ({SAMPLE_DAY})", f"Approved: {title} ({SAMPLE_DAY})"]
    assert got["dana@example.com"] == [f"Approval required: {title} ({SAMPLE_DAY})", f"Approved: {title} ({SAMPLE_DAY})"]
    assert got["chris@example.com"] == [f"Approved: {title} ({SAMPLE_DAY})"] and got["erin@example.com"] == [f"Approved: {title} ({SAMPLE_DAY})"]
    wait_for(lambda: not [k for k in module_stack.keys("customers/") if cid in k], what="triggers deleted")


def test_duplicate_events_and_reput_triggers_send_nothing_twice(runtime, lc, module_stack, sample_change):
    content, title = new_change(sample_change, customers=["hts"])
    cid = lc.submit(content, actor="ann").change_id
    wait_for(all_processed(lc, cid), what="processing")
    # The same S3 event delivered three more times, and the trigger put again twice.
    event = {"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                          "s3": {"bucket": {"name": module_stack.cfg.bucket},
                                 "object": {"key": f"customers%2Fhts%2F{cid}.json"}}}]}
    url = module_stack.queue_url("hts")
    for _ in range(3):
        module_stack.sqs.send_message(QueueUrl=url, MessageBody=json.dumps(event))
    lc.retrigger(cid)
    lc.retrigger(cid)
    wait_for(lambda: runtime.health()["hts"]["in_flight"] == 0 and module_stack.sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]["ApproximateNumberOfMessages"]
        == "0", what="queue drained")
    wait_for(lambda: not [k for k in module_stack.keys("customers/") if cid in k], what="trigger deleted")
    assert emails(title) == {"alice@example.com": [f"Approval required: {title} ({SAMPLE_DAY})"]}
    processed = [m for m in lc.show(cid)["modifications"] if m["type"] == "processed"]
    assert len(processed) == 1


def test_trigger_for_a_customer_not_on_the_change_is_refused(runtime, lc, module_stack, sample_change):
    content, title = new_change(sample_change, customers=["hts"])
    cid = lc.submit(content, actor="ann").change_id
    module_stack.s3.put_object(Bucket=module_stack.cfg.bucket, Key=f"customers/htsnonprod/{cid}.json", Body=b"{}")
    ch = wait_for(lambda: (c := lc.show(cid)) and any(m["type"] == "rejected" for m in c["modifications"]) and c,
                  what="rejection recorded")
    wait_for(all_processed(lc, cid), what="hts processed")
    assert [m["customer"] for m in ch["modifications"] if m["type"] == "rejected"] == ["htsnonprod"]
    assert set(emails(title)) == {"alice@example.com"}      # nothing from htsnonprod's account
    assert all(m.account != "222222222222" for m in AwsEmulator.sent_emails() if title in m.subject)


def test_garbage_dangling_and_non_s3_messages_do_not_stop_the_runtime(runtime, lc, module_stack, sample_change):
    s3, bucket = module_stack.s3, module_stack.cfg.bucket
    s3.put_object(Bucket=bucket, Key="customers/hts/CHG-dangling-ray.json", Body=b"not json at all")
    s3.put_object(Bucket=bucket, Key="customers/hts/a/b.json", Body=b"{}")
    module_stack.sqs.send_message(QueueUrl=module_stack.queue_url("hts"), MessageBody="<xml>not an event</xml>")
    wait_for(lambda: not module_stack.keys("customers/hts/CHG-dangling") and not module_stack.keys("customers/hts/a/"),
             what="garbage triggers removed")
    reasons = [module_stack.get_json(k)["reason"] for k in module_stack.keys("rejected/hts/")]
    assert any("unknown change CHG-dangling-ray" in r for r in reasons)
    content, title = new_change(sample_change, customers=["hts"])
    cid = lc.submit(content, actor="ann").change_id
    wait_for(all_processed(lc, cid), what="later work processed")
    assert set(emails(title)) == {"alice@example.com"}
    wait_for(lambda: any("not JSON" in module_stack.get_json(k)["reason"]
                         for k in module_stack.keys("rejected/hts/")), what="non-S3 message kept")


def test_concurrent_writer_loses_nothing(runtime, lc, module_stack, sample_change):
    content, title = new_change(sample_change)
    cid = lc.submit(content, actor="ann").change_id
    other = ArchiveStore(S3ObjectStore(module_stack.clients, module_stack.cfg.bucket))
    for i in range(8):  # another writer (e.g. the web API) edits while the runtime records
        other.update(cid, lambda c, i=i: {**c, f"note{i}": i})
    lc.transition(cid, "approve", actor="bob")
    ch = wait_for(all_processed(lc, cid), what="processing")
    assert all(ch[f"note{i}"] == i for i in range(8))
    assert len([m for m in ch["modifications"] if m["type"] == "processed"]) == 4
    assert ch["version"] == 2


def test_a_killed_customer_actor_is_restarted_and_keeps_working(runtime, lc, sample_change):
    import ray

    from actors.customer import customer_actor_name

    before = runtime.restarts["hts"]
    ray.kill(ray.get_actor(customer_actor_name("hts"), namespace=runtime.namespace), no_restart=False)
    wait_for(lambda: runtime.restarts["hts"] > before, timeout=60, what="supervisor noticing the restart")
    content, title = new_change(sample_change, customers=["hts"])
    cid = lc.submit(content, actor="ann").change_id
    wait_for(all_processed(lc, cid), timeout=60, what="processing after restart")
    assert set(emails(title)) == {"alice@example.com"}


def test_one_meeting_for_a_change_of_two_customers_through_the_actors(runtime, lc, graph_emulator, sample_change):
    content, title = new_change(sample_change)
    cid = lc.submit(content, actor="ann").change_id
    lc.transition(cid, "approve", actor="bob")
    ch = wait_for(all_processed(lc, cid), timeout=60, what="processing with the meeting")
    events = [e for e in graph_emulator.events() if title in e["subject"]]
    assert len(events) == 1
    assert {a["emailAddress"]["address"] for a in events[0]["attendees"]} == {
        "alice@example.com", "carol@example.com", "dana@example.com"}
    assert ch["meetingMetadata"]["meetingId"] == events[0]["id"] and ch["meetingMetadata"]["joinUrl"]
    assert len([m for m in ch["modifications"] if m["type"] == "meeting_scheduled"]) == 1
    # the coordinator reads the archive itself, and says so in its health (bench.py replays its calls)
    assert ray.get(runtime.meetings.health.remote()).aws_calls.get("s3.GetObject", 0) >= 1


def test_status_shows_every_tenant_healthy_and_exits_0(runtime, module_stack, run_cli):
    import json as _json

    code, out, err = run_cli("status", "--json", "--config", module_stack.path, "--namespace", runtime.namespace)
    assert code == 0, err
    st = _json.loads(out)
    assert st["runtime"]["reachable"] and st["healthy"]
    assert set(st["tenants"]) == {"hts", "htsnonprod"}
    assert all(t["healthy"] and t["dlq_depth"] == 0 for t in st["tenants"].values())
    assert not [a for a in st["alerts"] if a["severity"] == "critical"]
    code, out, _ = run_cli("status", "--config", module_stack.path, "--namespace", runtime.namespace)
    assert code == 0 and "healthy" in out and "hts" in out


def test_status_without_processors_fires_the_critical_alert(runtime, module_stack, run_cli):
    code, out, _ = run_cli("status", "--config", module_stack.path, "--namespace", "ttr-nobody-here")
    assert code == 1
    assert "NOT reachable" in out and "CRITICAL all-processors-down" in out


def test_a_tenant_process_holds_no_configuration_models_after_its_work(runtime, lc, sample_change):
    """Issue 11 (a tenant's memory): each CustomerActor is shipped its TenantConfig view and, after
    sending mail and answering the meeting's attendee call, its process has loaded none of the
    pydantic configuration models (runtime.domain.config, notices, alerts); the ArchiveActor,
    given the whole Config, has. pydantic itself is in every Ray worker that has (de)serialized a
    value: Ray's serialization context registers pydantic serializers (ray._common.pydantic_compat).
    Nor has it loaded jinja2: its emails were rendered by the renderer actor, which has."""
    import ray

    content, _ = new_change(sample_change)
    cid = lc.submit(content, actor="ann").change_id
    lc.transition(cid, "approve", actor="bob")
    wait_for(all_processed(lc, cid), timeout=60, what="processing")

    def loaded(worker):
        import sys

        ours = ("runtime.domain.config", "runtime.domain.notices", "runtime.domain.alerts")
        return (type(worker.cfg).__name__ if hasattr(worker, "cfg") else None,
                sorted(m for m in ours if m in sys.modules), "jinja2" in sys.modules,
                "pydantic" not in sys.modules or "ray._common.pydantic_compat" in sys.modules)

    sent = {code: h["emails_sent"] for code, h in runtime.health().items()}
    for code, actor in runtime.customers.items():
        cfg_type, modules, jinja, pydantic_by_ray = ray.get(actor.__ray_call__.remote(loaded), timeout=30)
        assert (cfg_type, modules, jinja, pydantic_by_ray) == ("TenantConfig", [], False, True), code
        assert sent[code] > 0, code  # it did send: its emails were rendered elsewhere
    _, archive_modules, _, _ = ray.get(runtime.archive.__ray_call__.remote(loaded), timeout=30)
    assert "runtime.domain.config" in archive_modules  # the check can fail: a service actor has them
    _, _, renderer_jinja, _ = ray.get(runtime.renderer.__ray_call__.remote(loaded), timeout=30)
    assert renderer_jinja and ray.get(runtime.renderer.health.remote(), timeout=30).calls > 0
