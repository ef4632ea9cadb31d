"""The runtime's AlertActor on a real local Ray: an alert fires once and resolves once into a local
webhook receiver (Slack and Teams JSON), an SNS topic on moto (read through a subscribed SQS
queue) and an email from the management account's SES; `ttr status --json` carries each node's
CPU and memory (psutil)."""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from runtime.local.aws_emulator import AwsEmulator
from tests.conftest import make_stack, running_runtime, wait_for

pytestmark = pytest.mark.ray


class Receiver:
    """An incoming-webhook endpoint on 127.0.0.1 that keeps what it was sent, by path."""

    def __init__(self):
        got = self.got = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                got.append((self.path, self.headers.get("Content-Type"), json.loads(body)))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"1")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def alert_stack(aws_emulator, graph_emulator, receiver, tmp_path_factory):
    from runtime.adapters.aws import AwsClients

    clients = AwsClients("us-east-1", aws_emulator.endpoint_url)
    sns, sqs = clients.client("sns"), clients.client("sqs")
    topic = sns.create_topic(Name=f"ttr-alerts-{uuid.uuid4().hex[:8]}")["TopicArn"]
    qurl = sqs.create_queue(QueueName=f"alerts-inbox-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    qarn = sqs.get_queue_attributes(QueueUrl=qurl, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=qarn)
    oncall = f"oncall-{uuid.uuid4().hex[:6]}@example.com"

    def mutate(data):
        data["graph"]["base_url"] = graph_emulator.base_url
        data["alerting"] = {"interval_seconds": 0.5, "sinks": [
            {"type": "webhook", "format": "slack", "url": f"{receiver.url}/slack"},
            {"type": "webhook", "format": "teams", "url": f"{receiver.url}/teams"},
            {"type": "sns", "topic_arn": topic},
            {"type": "email", "to": [oncall]}]}

    st = make_stack(aws_emulator.endpoint_url, tmp_path_factory.mktemp("alerts"), mutate=mutate)
    # the management account's SES sends the alert emails from email.sender
    clients.client("sesv2").create_email_identity(EmailIdentity=st.cfg.email.sender)
    st.alert_queue, st.oncall = qurl, oncall
    return st


@pytest.fixture(scope="module")
def runtime(ray_session, alert_stack):
    with running_runtime(alert_stack.cfg, "alerts") as rt:
        yield rt


def _sns_notices(stack) -> list[dict]:
    out = []
    while True:
        msgs = stack.sqs.receive_message(QueueUrl=stack.alert_queue, MaxNumberOfMessages=10,
                                         WaitTimeSeconds=0).get("Messages", [])
        if not msgs:
            return out
        for m in msgs:
            out.append(json.loads(json.loads(m["Body"])["Message"]))
            stack.sqs.delete_message(QueueUrl=stack.alert_queue, ReceiptHandle=m["ReceiptHandle"])


def _health(runtime):
    import ray

    return ray.get(runtime.alerter.health.remote(), timeout=10).to_json()


def test_a_dlq_alert_fires_once_and_resolves_once_into_every_sink(runtime, alert_stack, receiver):
    dlq = alert_stack.sqs.get_queue_url(QueueName=alert_stack.cfg.customer("hts").dlq_name)["QueueUrl"]
    alert_stack.sqs.send_message(QueueUrl=dlq, MessageBody=json.dumps({"poison": True}))
    sns_seen: list[dict] = []

    def states(where):
        return [n["state"] for n in where if n.get("alert") == "dlq-messages" and n["labels"] == {"tenant": "hts"}]

    def hook(path):
        return [p for (pth, _, p) in receiver.got if pth == path]

    wait_for(lambda: sns_seen.extend(_sns_notices(alert_stack)) or states(sns_seen) == ["firing"], 60,
             "the firing notice on SNS")
    wait_for(lambda: any("dlq-messages" in p["text"] and "tenant=hts" in p["text"] for p in hook("/slack")), 20,
             "the Slack webhook")
    # still firing for several more passes: nothing new is sent
    passes = _health(runtime)["passes"]
    wait_for(lambda: _health(runtime)["passes"] >= passes + 4, 30, "four more passes")
    sns_seen.extend(_sns_notices(alert_stack))
    assert states(sns_seen) == ["firing"]

    alert_stack.sqs.purge_queue(QueueUrl=dlq)
    wait_for(lambda: sns_seen.extend(_sns_notices(alert_stack)) or states(sns_seen) == ["firing", "resolved"], 60,
             "the resolved notice on SNS")
    passes = _health(runtime)["passes"]
    wait_for(lambda: _health(runtime)["passes"] >= passes + 4, 30, "four more passes")
    sns_seen.extend(_sns_notices(alert_stack))
    assert states(sns_seen) == ["firing", "resolved"]

    slack = [p["text"] for p in hook("/slack") if "dlq-messages" in p["text"] and "tenant=hts" in p["text"]]
    assert len(slack) == 2 and slack[0].startswith("[ttr WARNING] dlq-messages") and "RESOLVED" in slack[1]
    teams = [p for p in hook("/teams") if "dlq-messages (tenant=hts)" in p["summary"]]
    assert [t["attachments"][0]["content"]["body"][0]["text"].split("]")[0] for t in teams] == \
        ["[ttr WARNING", "[ttr RESOLVED"]
    assert all(ct == "application/json" for (_, ct, _) in receiver.got)
    # one email per pass (other alerts of the same pass, e.g. node-cpu on a busy machine, share it)
    mails = [m.body for m in AwsEmulator.sent_emails() if alert_stack.oncall in m.to]
    assert sum("[ttr WARNING] dlq-messages (tenant=hts)" in b for b in mails) == 1, mails
    assert sum("[ttr RESOLVED] dlq-messages (tenant=hts)" in b for b in mails) == 1, mails
    h = _health(runtime)
    assert not h["last_error"] and all(n == 0 for n in h["pending"].values())


def test_status_json_has_each_nodes_cpu_and_memory(runtime, alert_stack, run_cli):
    def nodes():
        code, out, err = run_cli("status", "--json", "--config", alert_stack.path, "--namespace", runtime.namespace)
        return json.loads(out)["nodes"]

    found = wait_for(nodes, 30, "node observations in ttr status --json")
    assert len(found) >= 1
    for node_id, n in found.items():
        assert len(node_id) > 12
        assert 0 <= n["cpu_pct"] <= 100 and 0 < n["memory_pct"] <= 100
        assert set(n["tenants"]) <= {"hts", "htsnonprod"} and n["tenants"]
    code, out, _ = run_cli("status", "--json", "--config", alert_stack.path, "--namespace", runtime.namespace)
    st = json.loads(out)
    assert all((t["actor"] or {}).get("rss", 0) > 0 for t in st["tenants"].values())
    assert st["alerting"]["ok"] and st["alerting"]["passes"] >= 1 and st["alerting"]["interval_s"] == 0.5
    assert st["feedback"]["ok"] and st["feedback"]["errors"] == {}


def test_an_alert_actor_that_ray_restarted_evaluates_again(runtime):
    import ray
    from ray.exceptions import RayError

    before = _health(runtime)

    def restarted():
        try:
            h = _health(runtime)
        except RayError:
            return None
        return h if h["pid"] != before["pid"] and h["passes"] >= 2 else None

    ray.kill(runtime.alerter, no_restart=False)
    assert wait_for(restarted, 60, "the restarted alert actor evaluating")["interval_s"] == 0.5
