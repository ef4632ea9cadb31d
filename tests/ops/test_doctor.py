"""`ttr doctor` against the moto server and the Graph emulator: a good setup passes (exit 0), each
planted fault is found (exit 1) with a message that says what is wrong and how to fix it.

Faults the emulator holds as state (a missing topic, queue, DLQ or notification rule, an
unverified sender) are planted in it. What moto cannot do (refuse AssumeRole: its STS accepts any
role; answer SES GetAccount) is injected through botocore event hooks on the clients handed to
the doctor, never through a switch in the product.
"""

from __future__ import annotations

import json

import pytest

from runtime.adapters.aws import AwsClients
from runtime.local.aws_emulator import free_port
from runtime.provisioning.bootstrap import assume_customer, ensure_management
from runtime.provisioning.doctor import FAIL, PASS, WARN, Doctor, exit_code
from tests.conftest import make_stack


def set_verified(stack, code: str, verified: bool = True) -> None:
    """What SES does once the owner clicks the verification link (moto never does it: it reports
    every identity as not verified for sending)."""
    from moto.ses.models import ses_backends

    c = stack.cfg.customer(code)
    backend = ses_backends[c.account_id][stack.cfg.region_of(c)]
    backend.email_identities[stack.cfg.sender_of(c)].verified_for_sending_status = verified


@pytest.fixture()
def good(aws_emulator, graph_emulator, tmp_path):
    """A stack as `ttr provision` plus each customer's SES administrator would leave it."""
    stack = make_stack(aws_emulator.endpoint_url, tmp_path, graph_url=graph_emulator.base_url)
    ensure_management(stack.cfg, stack.clients, harden=True)
    for code in stack.cfg.customer_codes:
        set_verified(stack, code)
    return stack


def by_name(checks) -> dict:
    return {c["name"] if isinstance(c, dict) else c.name: c for c in checks}


class HookedClients(AwsClients):
    """AwsClients whose every client (the runtime's and the tenants') carries botocore hooks."""

    def __init__(self, region, endpoint_url, hooks: dict):
        super().__init__(region, endpoint_url)
        self.hooks = hooks
        for event, handler in hooks.items():
            self.session.register(event, handler)

    def client_with(self, service, credentials, region=None):
        client = super().client_with(service, credentials, region)
        for event, handler in self.hooks.items():
            client.meta.events.register(event, handler)
        return client


class _Http:
    def __init__(self, status):
        self.status_code = status
        self.headers = {}
        self.content = b""


def answer(status: int, parsed: dict):
    """A before-call hook's answer: botocore takes it instead of sending the request."""
    parsed = {**parsed, "ResponseMetadata": {"HTTPStatusCode": status}}
    return _Http(status), parsed


def refuse_role(role_arn: str):
    def hook(params, **_):
        if role_arn in params.get("body", {}).get("RoleArn", "") or role_arn in str(params.get("body")):
            return answer(403, {"Error": {"Code": "AccessDenied", "Message": f"not authorized to assume {role_arn}"}})
        return None
    return hook


def ses_account(**fields):
    acct = {"ProductionAccessEnabled": True, "SendingEnabled": True, "EnforcementStatus": "HEALTHY",
            "SendQuota": {"Max24HourSend": 50000.0, "MaxSendRate": 14.0, "SentLast24Hours": 12.0}}
    acct.update(fields)
    return lambda **_: answer(200, acct)


# ---------------------------------------------------------------------------------------------


def test_doctor_passes_on_a_good_setup(good, run_cli):
    code, out, err = run_cli("doctor", "--config", good.path)
    assert code == 0, out + err
    assert "FAIL" not in out
    code, out, err = run_cli("doctor", "--config", good.path, "--json")
    assert code == 0
    report = json.loads(out)
    assert report["ok"] is True
    checks = by_name(report["checks"])
    per_customer = ["queue", "dlq", "notification", "feedback", "role", "sender", "contact-list", "ses-account",
                    "send-quota"]
    assert set(checks) == {"aws/credentials", "bucket", "graph/token", "graph/mailbox", "web/demo-logins",
                           *(f"{c}/{n}" for c in good.cfg.customer_codes for n in per_customer)}
    # moto does not implement SES GetAccount: the sandbox and quota checks can only warn; the local
    # config's demo sign-ins warn (loopback only)
    warned = {n for n, c in checks.items() if c["status"] == WARN}
    assert warned == {f"{c}/{n}" for c in good.cfg.customer_codes for n in ("ses-account", "send-quota")} | {
        "web/demo-logins"}
    assert "loopback only" in checks["web/demo-logins"]["message"]
    assert all(c["status"] == PASS for n, c in checks.items() if n not in warned)
    assert "GetAccount" in checks["hts/ses-account"]["message"]
    assert report["summary"] == {"pass": len(checks) - len(warned), "warn": len(warned), "fail": 0}


def test_missing_feedback_subscription_only_warns(good, run_cli):
    c = good.cfg.customer("htsnonprod")
    sns = good.clients.client("sns")
    topic = next(t["TopicArn"] for page in sns.get_paginator("list_topics").paginate()   # tests share moto
                 for t in page["Topics"] if t["TopicArn"].endswith(":" + c.feedback_topic_name))
    for sub in sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]:
        sns.unsubscribe(SubscriptionArn=sub["SubscriptionArn"])
    code, out, _ = run_cli("doctor", "--config", good.path, "--json")
    assert code == 0
    check = by_name(json.loads(out)["checks"])["htsnonprod/feedback"]
    assert check["status"] == WARN and "does not feed" in check["message"] and "ttr provision" in check["fix"]
    assert by_name(json.loads(out)["checks"])["hts/feedback"]["status"] == PASS


def test_missing_topic_is_found(good, run_cli):
    c = good.cfg.customer("hts")
    ses = good.clients.client_with("sesv2", assume_customer(good.clients, c, "plant"), good.cfg.region)
    topics = ses.get_contact_list(ContactListName=c.contact_list)["Topics"]
    ses.update_contact_list(ContactListName=c.contact_list,
                            Topics=[t for t in topics if t["TopicName"] != "aws-calendar"])
    code, out, _ = run_cli("doctor", "--config", good.path, "--json")
    assert code == 1
    checks = by_name(json.loads(out)["checks"])
    bad = checks["hts/contact-list"]
    assert bad["status"] == FAIL
    assert "lacks topic(s) aws-calendar" in bad["message"] and c.contact_list in bad["message"]
    assert "update-contact-list" in bad["fix"] and "TopicName=aws-approval" in bad["fix"]  # existing ones kept
    assert [n for n, x in checks.items() if x["status"] == FAIL] == ["hts/contact-list"]


def test_unverified_sender_is_found(good, run_cli):
    set_verified(good, "htsnonprod", False)
    code, out, _ = run_cli("doctor", "--config", good.path)
    assert code == 1
    line = next(x for x in out.splitlines() if "htsnonprod/sender" in x)
    assert line.startswith("FAIL") and "not verified for sending" in line
    assert "account 222222222222" in line
    assert "fix: finish the verification" in out


def test_sender_verified_through_its_domain_passes(good, run_cli):
    c = good.cfg.customer("hts")
    set_verified(good, "hts", False)
    ses = good.clients.client_with("sesv2", assume_customer(good.clients, c, "plant"), good.cfg.region)
    domain = good.cfg.sender_of(c).rpartition("@")[2]
    ses.create_email_identity(EmailIdentity=domain)
    from moto.ses.models import ses_backends

    ses_backends[c.account_id][good.cfg.region].email_identities[domain].verified_for_sending_status = True
    code, out, _ = run_cli("doctor", "--config", good.path, "--customer", "hts")
    assert code == 0, out
    assert f"through the verified domain {domain}" in out


def test_missing_queue_dlq_and_notification_are_found(good, run_cli):
    hts, nonprod = good.cfg.customer("hts"), good.cfg.customer("htsnonprod")
    good.sqs.delete_queue(QueueUrl=good.sqs.get_queue_url(QueueName=hts.queue_name)["QueueUrl"])
    good.sqs.delete_queue(QueueUrl=good.sqs.get_queue_url(QueueName=nonprod.dlq_name)["QueueUrl"])
    code, out, _ = run_cli("doctor", "--config", good.path, "--json")
    assert code == 1
    checks = by_name(json.loads(out)["checks"])
    assert checks["hts/queue"]["status"] == FAIL
    assert f"queue {hts.queue_name} does not exist" in checks["hts/queue"]["message"]
    assert "ttr provision" in checks["hts/queue"]["fix"]
    assert checks["hts/notification"]["status"] == FAIL   # cannot be in place without its queue
    assert checks["htsnonprod/dlq"]["status"] == FAIL and nonprod.dlq_name in checks["htsnonprod/dlq"]["message"]
    assert checks["htsnonprod/queue"]["status"] == PASS or "redrive" in checks["htsnonprod/queue"]["message"]

    # and `ttr provision` repairs it
    assert run_cli("provision", "--config", good.path)[0] == 0
    assert run_cli("doctor", "--config", good.path)[0] == 0


def test_missing_notification_rule_and_dlq_messages_are_found(good, run_cli):
    s3 = good.s3
    current = s3.get_bucket_notification_configuration(Bucket=good.cfg.bucket)
    s3.put_bucket_notification_configuration(Bucket=good.cfg.bucket, NotificationConfiguration={
        "QueueConfigurations": [r for r in current["QueueConfigurations"] if r["Id"] != "ttr-htsnonprod"]})
    dlq = good.sqs.get_queue_url(QueueName=good.cfg.customer("hts").dlq_name)["QueueUrl"]
    good.sqs.send_message(QueueUrl=dlq, MessageBody="{}")
    code, out, _ = run_cli("doctor", "--config", good.path, "--json")
    assert code == 1
    checks = by_name(json.loads(out)["checks"])
    assert checks["htsnonprod/notification"]["status"] == FAIL
    assert "customers/htsnonprod/*.json" in checks["htsnonprod/notification"]["message"]
    assert checks["hts/dlq"]["status"] == WARN and "1 message(s)" in checks["hts/dlq"]["message"]
    assert "ttr dlq redrive --customer hts" in checks["hts/dlq"]["fix"]


def test_unassumable_role_is_found(good):
    nonprod = good.cfg.customer("htsnonprod")
    clients = HookedClients(good.cfg.region, good.cfg.aws_endpoint_url,
                            {"before-call.sts.AssumeRole": refuse_role(nonprod.ses_role_arn)})
    checks = Doctor(good.cfg, clients).run()
    assert exit_code(checks) == 1
    got = by_name(checks)
    role = got["htsnonprod/role"]
    assert role.status == FAIL and "AccessDenied" in role.message and nonprod.ses_role_arn in role.message
    assert "trust-policy" in role.fix and "sts:AssumeRole" in role.fix
    for dep in ("sender", "contact-list", "ses-account", "send-quota"):
        assert got[f"htsnonprod/{dep}"].status == FAIL and "not checked" in got[f"htsnonprod/{dep}"].message
    assert got["hts/role"].status == PASS and got["hts/sender"].status == PASS


def test_ses_account_status_and_quota(good):
    def run(**acct):
        clients = HookedClients(good.cfg.region, good.cfg.aws_endpoint_url,
                                {"before-call.sesv2.GetAccount": ses_account(**acct)})
        return by_name(Doctor(good.cfg, clients).run("hts"))

    got = run()
    assert got["hts/ses-account"].status == PASS and got["hts/send-quota"].status == PASS
    assert "14/s, 12 of 50000 sent" in got["hts/send-quota"].message
    assert exit_code(got.values()) == 0

    got = run(ProductionAccessEnabled=False)
    assert got["hts/ses-account"].status == WARN and "sandbox" in got["hts/ses-account"].message
    assert "production-access-enabled" in got["hts/ses-account"].fix
    assert exit_code(got.values()) == 0          # a warning does not fail the doctor

    got = run(SendingEnabled=False)
    assert got["hts/ses-account"].status == FAIL and exit_code(got.values()) == 1

    got = run(SendQuota={"Max24HourSend": 200.0, "MaxSendRate": 1.0, "SentLast24Hours": 0.0})
    quota = got["hts/send-quota"]
    assert quota.status == WARN and "above SES's 1/s" in quota.message and "max_send_rate" in quota.fix


def test_graph_unreachable_is_found(aws_emulator, tmp_path, run_cli):
    dead = f"http://127.0.0.1:{free_port()}/v1.0"     # nothing listens there
    stack = make_stack(aws_emulator.endpoint_url, tmp_path, graph_url=dead)
    code, out, _ = run_cli("doctor", "--config", stack.path, "--json")
    assert code == 1
    mailbox = by_name(json.loads(out)["checks"])["graph/mailbox"]
    assert mailbox["status"] == FAIL and "cannot be read" in mailbox["message"]
    assert "reachable" in mailbox["fix"]


def test_graph_without_credentials_is_found(good, monkeypatch):
    for k in ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"):
        monkeypatch.delenv(k, raising=False)
    cfg = good.cfg.with_overrides(graph=good.cfg.graph.model_copy(
        update={"base_url": "https://graph.microsoft.com/v1.0"}))
    got = by_name(Doctor(cfg, good.clients).run("hts"))
    assert got["graph/token"].status == FAIL and "AZURE_TENANT_ID" in got["graph/token"].message
    assert got["graph/mailbox"].status == FAIL and "not checked" in got["graph/mailbox"].message


def test_customer_filter_and_unknown_customer(good, run_cli):
    code, out, _ = run_cli("doctor", "--config", good.path, "--customer", "hts", "--json")
    assert code == 0
    names = set(by_name(json.loads(out)["checks"]))
    assert not any(n.startswith("htsnonprod/") for n in names) and "hts/role" in names and "bucket" in names
    code, _, err = run_cli("doctor", "--config", good.path, "--customer", "nope")
    assert code == 2 and "unknown customer 'nope'" in err


def test_unhardened_bucket_only_warns(aws_emulator, graph_emulator, tmp_path, run_cli):
    stack = make_stack(aws_emulator.endpoint_url, tmp_path, graph_url=graph_emulator.base_url)  # `local up` style
    for code in stack.cfg.customer_codes:
        set_verified(stack, code)
    code, out, _ = run_cli("doctor", "--config", stack.path, "--json")
    bucket = by_name(json.loads(out)["checks"])["bucket"]
    assert code == 0 and bucket["status"] == WARN and "versioning is off" in bucket["message"]


def test_demo_sign_ins_on_a_public_portal_fail(good):
    cfg = good.cfg.model_copy(update={"email": good.cfg.email.model_copy(
        update={"portal_base_url": "https://changes.example.com"})})
    doctor = Doctor(cfg, good.clients)
    doctor.check_portal_sign_ins()
    (check,) = doctor.checks
    assert check.status == FAIL and "refuses to start" in check.message and "admin" in check.message
    assert "ttr web hash-password" in check.fix


def test_a_customer_without_an_external_id_is_warned_about(good):
    hts = good.cfg.customer("hts").model_copy(update={"external_id": None})
    doctor = Doctor(good.cfg, good.clients)
    doctor.check_customer_ses(hts)
    role = by_name(doctor.checks)["hts/role"]
    assert role.status == WARN and "without an ExternalId" in role.message
    assert "sts:ExternalId" in role.fix
    doctor = Doctor(good.cfg, good.clients)
    doctor.check_customer_ses(good.cfg.customer("hts"))
    assert by_name(doctor.checks)["hts/role"].status == PASS
