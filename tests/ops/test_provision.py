"""`ttr provision` against the moto server: idempotent, merges foreign rules, --dry-run writes nothing."""

from __future__ import annotations

import json
import uuid

import pytest
import yaml

from runtime.adapters.aws import AwsClients
from runtime.domain.config import parse_config
from runtime.provisioning.bootstrap import TRIGGER_LIFECYCLE_RULE
from tests.conftest import assert_loopback_url, make_config_dict, make_stack


@pytest.fixture()
def fresh(aws_emulator, tmp_path):
    """A config whose bucket and queues do not exist yet (unique names), and its clients."""
    bucket = f"ttr-prov-{uuid.uuid4().hex[:12]}"
    data = make_config_dict(aws_emulator.endpoint_url, bucket)
    for c in data["customers"]:
        c["queue"] = f"ttr-{c['code']}-{bucket[-6:]}"
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    cfg = parse_config(data, str(path))
    assert_loopback_url(cfg.aws_endpoint_url)
    return cfg, path, AwsClients(cfg.region, cfg.aws_endpoint_url)


def outcomes(stdout: str) -> list[tuple[str, str]]:
    """(outcome, resource) per line; outcomes may be two words ("would create")."""
    out = []
    for line in stdout.splitlines():
        head, _, resource = line.partition("  ")
        out.append((head.strip(), resource.strip()))
    return out


def state(cfg, clients) -> dict:
    """Everything provisioning may write, read back (raises nothing for what is missing)."""
    s3, sqs = clients.client("s3"), clients.client("sqs")
    snap: dict = {}

    def read(key, call):
        try:
            resp = call()
            resp.pop("ResponseMetadata", None)
            snap[key] = resp
        except Exception as exc:  # "missing" is a state too
            snap[key] = f"error: {getattr(exc, 'response', {}).get('Error', {}).get('Code', type(exc).__name__)}"

    b = cfg.bucket
    read("bucket", lambda: {"exists": bool(s3.head_bucket(Bucket=b))})
    read("versioning", lambda: s3.get_bucket_versioning(Bucket=b))
    read("encryption", lambda: s3.get_bucket_encryption(Bucket=b))
    read("public", lambda: s3.get_public_access_block(Bucket=b))
    read("lifecycle", lambda: s3.get_bucket_lifecycle_configuration(Bucket=b))
    read("notifications", lambda: s3.get_bucket_notification_configuration(Bucket=b))
    for c in cfg.customers:
        for name in (c.queue_name, c.dlq_name):
            def attrs(name=name):
                url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
                a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
                return {k: v for k, v in a.items() if not k.startswith("Approximate")}
            read(f"queue {name}", attrs)
    return snap


def test_provision_twice_creates_then_reports_everything_unchanged(fresh, run_cli):
    cfg, path, clients = fresh
    code, out, err = run_cli("provision", "--config", path)
    assert code == 0, err
    first = outcomes(out)
    assert {o for o, _ in first} == {"created"}, out
    # bucket + 4 settings, queue+DLQ each, notifications, then per customer the SES feedback queue, topic
    # and subscription
    assert len(first) == 5 + 2 * len(cfg.customers) + 1 + 3 * len(cfg.customers)
    assert "Customer accounts were not touched" in err

    code, out, err = run_cli("provision", "--config", path)
    assert code == 0, err
    second = outcomes(out)
    assert {o for o, _ in second} == {"unchanged"}, out
    assert len(second) == len(first)

    s = state(cfg, clients)
    assert s["versioning"]["Status"] == "Enabled"
    algo = s["encryption"]["ServerSideEncryptionConfiguration"]["Rules"][0]["ApplyServerSideEncryptionByDefault"]
    assert algo["SSEAlgorithm"] == "AES256"
    assert all(s["public"]["PublicAccessBlockConfiguration"].values())
    assert [r["ID"] for r in s["lifecycle"]["Rules"]] == [TRIGGER_LIFECYCLE_RULE["ID"]]
    for c in cfg.customers:
        q, dlq = s[f"queue {c.queue_name}"], s[f"queue {c.dlq_name}"]
        assert json.loads(q["RedrivePolicy"]) == {"deadLetterTargetArn": dlq["QueueArn"], "maxReceiveCount": 5}
        assert q["VisibilityTimeout"] == "60" and q["SqsManagedSseEnabled"] == "true"
        (stmt,) = json.loads(q["Policy"])["Statement"]
        assert stmt["Principal"] == {"Service": "s3.amazonaws.com"} and stmt["Action"] == "sqs:SendMessage"
        assert stmt["Condition"]["ArnEquals"] == {"aws:SourceArn": f"arn:aws:s3:::{cfg.bucket}"}
        assert stmt["Condition"]["StringEquals"] == {"aws:SourceAccount": q["QueueArn"].split(":")[4]}
    rules = {r["Id"]: r for r in s["notifications"]["QueueConfigurations"]}
    assert sorted(rules) == [f"ttr-{c.code}" for c in cfg.customers]


def test_foreign_notification_and_lifecycle_rules_survive(fresh, run_cli):
    cfg, path, clients = fresh
    s3, sqs = clients.client("s3"), clients.client("sqs")
    s3.create_bucket(Bucket=cfg.bucket)
    other = sqs.create_queue(QueueName=f"someone-else-{cfg.bucket[-6:]}")["QueueUrl"]
    other_arn = sqs.get_queue_attributes(QueueUrl=other, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    foreign = {"Id": "audit-logs", "QueueArn": other_arn, "Events": ["s3:ObjectCreated:*"],
               "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "audit/"}]}}}
    s3.put_bucket_notification_configuration(Bucket=cfg.bucket,
                                             NotificationConfiguration={"QueueConfigurations": [foreign]})
    expire_logs = {"ID": "expire-audit", "Filter": {"Prefix": "audit/"}, "Status": "Enabled",
                   "Expiration": {"Days": 30}}
    s3.put_bucket_lifecycle_configuration(Bucket=cfg.bucket, LifecycleConfiguration={"Rules": [expire_logs]})

    code, out, err = run_cli("provision", "--config", path)
    assert code == 0, err
    assert ("unchanged", f"s3 bucket {cfg.bucket}") in outcomes(out)

    s = state(cfg, clients)
    kept = [r for r in s["notifications"]["QueueConfigurations"] if r["Id"] == "audit-logs"]
    assert len(kept) == 1 and kept[0]["QueueArn"] == other_arn
    assert kept[0]["Filter"]["Key"]["FilterRules"] == [{"Name": "prefix", "Value": "audit/"}]
    assert sorted(r["Id"] for r in s["notifications"]["QueueConfigurations"]) == \
        ["audit-logs"] + [f"ttr-{c.code}" for c in cfg.customers]
    assert sorted(r["ID"] for r in s["lifecycle"]["Rules"]) == ["expire-audit", TRIGGER_LIFECYCLE_RULE["ID"]]
    assert next(r for r in s["lifecycle"]["Rules"] if r["ID"] == "expire-audit")["Expiration"] == {"Days": 30}

    code, out, _ = run_cli("provision", "--config", path)
    assert code == 0 and {o for o, _ in outcomes(out)} == {"unchanged"}, out
    assert state(cfg, clients) == s


def test_dry_run_of_a_new_setup_creates_nothing(fresh, run_cli):
    cfg, path, clients = fresh
    before = state(cfg, clients)
    assert before["bucket"] == "error: 404"
    code, out, err = run_cli("provision", "--config", path, "--dry-run")
    assert code == 0, err
    lines = outcomes(out)
    assert {o for o, _ in lines} == {"would create"}, out
    assert len(lines) == 5 + 2 * len(cfg.customers) + 1 + 3 * len(cfg.customers)
    assert "nothing was changed" in err
    assert state(cfg, clients) == before


def test_dry_run_of_a_drifted_setup_reports_and_changes_nothing(fresh, run_cli):
    cfg, path, clients = fresh
    assert run_cli("provision", "--config", path)[0] == 0
    s3, sqs = clients.client("s3"), clients.client("sqs")
    hts = cfg.customer("hts")
    # Drift: versioning suspended, public access opened, a queue's visibility changed and its
    # policy removed, a notification rule gone.
    s3.put_bucket_versioning(Bucket=cfg.bucket, VersioningConfiguration={"Status": "Suspended"})
    s3.delete_public_access_block(Bucket=cfg.bucket)
    url = sqs.get_queue_url(QueueName=hts.queue_name)["QueueUrl"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "300", "Policy": ""})
    current = s3.get_bucket_notification_configuration(Bucket=cfg.bucket)
    s3.put_bucket_notification_configuration(Bucket=cfg.bucket, NotificationConfiguration={
        "QueueConfigurations": [r for r in current["QueueConfigurations"] if r["Id"] != "ttr-hts"]})
    drifted = state(cfg, clients)

    code, out, err = run_cli("provision", "--config", path, "--dry-run")
    assert code == 0, err
    would = {r for o, r in outcomes(out) if o != "unchanged"}
    assert would == {f"s3 bucket {cfg.bucket} versioning (Enabled, was Suspended)",
                     f"s3 bucket {cfg.bucket} public access block",
                     f"sqs queue {hts.queue_name} (Policy, VisibilityTimeout)",
                     f"s3 notifications {cfg.bucket} (ttr-hts)"}, out
    assert state(cfg, clients) == drifted, "--dry-run changed something"

    code, out, _ = run_cli("provision", "--config", path)
    assert code == 0
    assert {r for o, r in outcomes(out) if o != "unchanged"} == would, out
    code, out, _ = run_cli("provision", "--config", path)
    assert {o for o, _ in outcomes(out)} == {"unchanged"}, out


def test_local_up_bootstrap_is_not_hardened(aws_emulator, tmp_path):
    """`ttr local up` keeps its behaviour: bucket, queues and notifications only."""
    stack = make_stack(aws_emulator.endpoint_url, tmp_path)
    assert "Status" not in stack.s3.get_bucket_versioning(Bucket=stack.cfg.bucket)


def test_provision_that_cannot_reach_aws_says_what_happened(fresh, run_cli, tmp_path):
    from runtime.local.aws_emulator import free_port

    cfg, path, _ = fresh
    data = yaml.safe_load(path.read_text())
    data["aws_endpoint_url"] = f"http://127.0.0.1:{free_port()}"   # nothing listens there
    path.write_text(yaml.safe_dump(data))
    code, out, err = run_cli("provision", "--config", path)
    assert code == 1
    assert out == ""
    assert "provisioning stopped" in err and "connection problem" in err and "run `ttr provision`" in err
