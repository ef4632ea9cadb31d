"""deploy/: what cannot run here (no Docker daemon, no AWS) is validated as far as this machine
allows: every JSON and YAML parses; the IAM policies pass parliament (the IAM policy linter) and
agree with configs/examples/production.yaml; the ECS task definitions validate against botocore's
RegisterTaskDefinition model; the Ray cluster config validates against Ray's own schema; the
Dockerfile and its entrypoint are checked for structure and agree with the CLI."""

from __future__ import annotations

import copy
import fnmatch
import json
import re
import subprocess
import warnings
from pathlib import Path

import pytest
import yaml

from runtime.config import load_config

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROD = load_config(ROOT / "configs" / "examples" / "production.yaml")
PREFIXES = {"archive", "customers", "drafts", "ledger", "rejected", "suppressed", "rejected-feedback"}


def load(path: Path):
    return json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())


def statements(policy: dict) -> list[dict]:
    st = policy["Statement"]
    return [st] if isinstance(st, dict) else st


def as_list(v) -> list:
    return [v] if isinstance(v, str) else list(v)


IDENTITY_POLICIES = sorted(p for p in (DEPLOY / "iam").glob("*-policy.json") if not p.name.endswith("trust-policy.json"))
TRUST_POLICIES = sorted((DEPLOY / "iam").glob("*trust-policy.json"))
# parliament findings that are the point of the policy, not a mistake in it:
# - sts:AssumeRole hands out credentials (CREDENTIALS_EXPOSURE): assuming the customers' SES
#   roles is what the runtime and the doctor must do, and the resources name those roles only;
# - provisioning creates queues and sets their policies, sets the public access block and the
#   lifecycle rule (PERMISSIONS_MANAGEMENT_ACTIONS, RESOURCE_POLICY_PRIVILEGE_ESCALATION).
EXPECTED_FINDINGS = {
    "runtime-policy.json": {"CREDENTIALS_EXPOSURE"},
    "operator-policy.json": {"CREDENTIALS_EXPOSURE", "PERMISSIONS_MANAGEMENT_ACTIONS",
                             "RESOURCE_POLICY_PRIVILEGE_ESCALATION"},
    "customer-ses-sender-policy.json": set(),
    "task-execution-policy.json": set(),
}


def test_every_json_and_yaml_under_deploy_parses():
    files = [p for p in DEPLOY.rglob("*") if p.suffix in (".json", ".yaml", ".yml")]
    assert len(files) >= 9
    for path in files:
        assert isinstance(load(path), dict), path


def parliament_findings(text: str) -> list:
    pytest.importorskip("parliament", reason="parliament (the IAM policy linter) is a dev dependency")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # parliament imports pkg_resources
        from parliament import analyze_policy_string

        return analyze_policy_string(text, include_community_auditors=True).findings


@pytest.mark.parametrize("path", IDENTITY_POLICIES, ids=lambda p: p.name)
def test_identity_policies_pass_the_iam_linter(path):
    assert path.name in EXPECTED_FINDINGS, f"new policy {path.name}: decide which findings it may have"
    found = {f.issue for f in parliament_findings(path.read_text())}
    assert found == EXPECTED_FINDINGS[path.name], [(f.issue, f.detail) for f in parliament_findings(path.read_text())]


def test_the_linter_catches_mistakes():
    """parliament is live, not a no-op: a typo and a wrong resource type are findings."""
    policy = load(DEPLOY / "iam" / "runtime-policy.json")
    policy["Statement"][1]["Action"] = ["s3:GetObjekt"]
    policy["Statement"][3]["Resource"] = f"arn:aws:s3:::{PROD.bucket}"
    found = {f.issue for f in parliament_findings(json.dumps(policy))}
    assert {"UNKNOWN_ACTION", "RESOURCE_MISMATCH"} <= found


@pytest.mark.parametrize("path", TRUST_POLICIES, ids=lambda p: p.name)
def test_trust_policies_name_their_principals(path):
    """parliament reads identity policies only; trust policies get these structural checks."""
    policy = load(path)
    assert policy["Version"] == "2012-10-17"
    for st in statements(policy):
        assert st["Effect"] == "Allow" and as_list(st["Action"]) == ["sts:AssumeRole"]
        assert "Resource" not in st and "NotPrincipal" not in st
        principals = [p for v in st["Principal"].values() for p in as_list(v)]
        assert principals and "*" not in principals and not any(p.endswith(":root") for p in principals)
        assert st.get("Condition"), "a trust policy without a condition"


def test_runtime_policy_is_least_privilege_for_the_example_config():
    policy = load(DEPLOY / "iam" / "runtime-policy.json")
    bucket = f"arn:aws:s3:::{PROD.bucket}"
    resources = [r for st in statements(policy) for r in as_list(st["Resource"])]
    assert "*" not in resources
    objects = {r for r in resources if r.startswith(bucket + "/")}
    assert {r[len(bucket) + 1:].split("/")[0] for r in objects} == PREFIXES   # no other prefix, no bucket-wide
    (listing,) = [st for st in statements(policy) if "s3:ListBucket" in as_list(st["Action"])]
    assert {p.split("/")[0] for p in listing["Condition"]["StringLike"]["s3:prefix"]} == PREFIXES
    queues = [r for r in resources if r.startswith("arn:aws:sqs:")]
    for c in PROD.customers:
        for name in (c.queue_name, c.dlq_name):
            assert any(fnmatch.fnmatch(f"arn:aws:sqs:{PROD.region}:123456789012:{name}", q) for q in queues), name
    (assume,) = [st for st in statements(policy) if as_list(st["Action"]) == ["sts:AssumeRole"]]
    assert sorted(as_list(assume["Resource"])) == sorted(c.ses_role_arn for c in PROD.customers)
    actions = {a for st in statements(policy) for a in as_list(st["Action"])}
    assert not any(a.endswith("*") for a in actions)
    assert not {"sqs:CreateQueue", "sqs:SetQueueAttributes", "s3:PutBucketNotification"} & actions


def test_customer_ses_policy_matches_the_example_customer():
    policy = load(DEPLOY / "iam" / "customer-ses-sender-policy.json")
    hts = PROD.customer("hts")
    (send,) = [st for st in statements(policy) if as_list(st["Action"]) == ["ses:SendEmail"]]
    arn = f"arn:aws:ses:{PROD.region}:{hts.account_id}"
    assert f"{arn}:identity/{PROD.sender_of(hts)}" in send["Resource"]
    assert f"{arn}:contact-list/{hts.contact_list}" in send["Resource"]
    assert send["Condition"]["StringEquals"]["ses:FromAddress"] == PROD.sender_of(hts)
    trust = load(DEPLOY / "iam" / "customer-ses-sender-trust-policy.json")
    (st,) = statements(trust)
    assert "arn:aws:iam::123456789012:role/ttr-runtime" in st["Principal"]["AWS"]
    # the session names the runtime and the doctor use match the trust condition
    for session in (f"ttr-{hts.code}-ses", f"ttr-doctor-{hts.code}"):
        assert fnmatch.fnmatch(session, st["Condition"]["StringLike"]["sts:RoleSessionName"])


@pytest.mark.parametrize("name", ["ray-head-task.json", "ray-worker-task.json"])
def test_ecs_task_definitions_validate_against_the_ecs_api_model(name):
    import botocore.session
    from botocore.validate import ParamValidator

    task = load(DEPLOY / "ecs" / name)
    shape = botocore.session.get_session().get_service_model("ecs").operation_model(
        "RegisterTaskDefinition").input_shape
    report = ParamValidator().validate(task, shape)
    assert not report.has_errors(), report.generate_report()
    (container,) = task["containerDefinitions"]
    assert container["command"] == [name.split("-")[1]]           # head | worker (deploy/entrypoint.sh)
    assert task["taskRoleArn"].endswith(":role/ttr-runtime")
    env = {e["name"]: e["value"] for e in container["environment"]}
    secrets = {s["name"] for s in container.get("secrets", [])}
    assert {"AZURE_TENANT_ID", "AZURE_CLIENT_ID"} <= set(env) and "AZURE_CLIENT_SECRET" in secrets
    if name.startswith("ray-head"):
        assert "TTR_CONFIG_YAML" in secrets and env["RAY_HEAD_CPUS"] == "0"
        assert container["stopTimeout"] > int(env["TTR_DRAIN_TIMEOUT"])   # the drain ends before SIGKILL
    else:
        assert env["RAY_HEAD_ADDRESS"]


def test_both_tasks_and_the_launcher_run_the_same_image():
    images = {load(DEPLOY / "ecs" / n)["containerDefinitions"][0]["image"]
              for n in ("ray-head-task.json", "ray-worker-task.json")}
    images.add(load(DEPLOY / "ray" / "cluster.yaml")["docker"]["image"])
    assert len(images) == 1, images


def test_ray_cluster_config_validates_against_rays_schema():
    from ray.autoscaler._private.util import prepare_config, validate_config

    cfg = load(DEPLOY / "ray" / "cluster.yaml")
    validate_config(prepare_config(copy.deepcopy(cfg)))
    assert cfg["provider"]["type"] == "aws"
    assert cfg["available_node_types"][cfg["head_node_type"]]["resources"] == {"CPU": 0}
    assert any("--num-cpus=0" in c for c in cfg["head_start_ray_commands"])
    bad = copy.deepcopy(cfg)
    bad["available_node_types"]["ray.worker.default"]["min_wrokers"] = 1
    with pytest.raises(Exception, match="min_wrokers"):
        validate_config(prepare_config(bad))


def test_dockerfile_and_entrypoint_agree_with_the_repository_and_the_cli():
    from runtime.cli import build_parser

    text = (DEPLOY / "Dockerfile").read_text()
    instructions = [line.split(None, 1) for line in text.splitlines() if line and not line.startswith(("#", " "))]
    kinds = [i[0] for i in instructions]
    assert kinds.count("FROM") == 2 and "USER" in kinds and "ENTRYPOINT" in kinds
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'requires-python = ">=3\.11"', pyproject)
    assert all("python:3.11" in i[1] for i in instructions if i[0] == "FROM")
    for kind, args in instructions:
        if kind == "COPY" and not args.startswith("--from"):
            for src in args.split()[:-1]:
                assert (ROOT / src).exists(), f"COPY {src}: not in the repository"
    user = next(i[1] for i in instructions if i[0] == "USER")
    assert user.strip() not in ("root", "0")
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    for kind, args in instructions:
        if kind == "COPY" and not args.startswith("--from"):
            for src in args.split()[:-1]:
                assert f"!{src.rstrip('/')}" in [i.rstrip("/") for i in ignore], f"{src} is excluded from the context"

    entry = DEPLOY / "entrypoint.sh"
    assert subprocess.run(["sh", "-n", str(entry)]).returncode == 0
    script = entry.read_text()
    # the ttr command line the head runs is one the CLI accepts
    run = re.search(r"exec ttr run (.+?)\n\s+--drain-timeout (\S+) --namespace (\S+)", script)
    assert run, "no `exec ttr run` in the entrypoint"
    args = build_parser().parse_args(["run", "--address", "auto", "--config", "c.yaml", "--drain-timeout", "30",
                                      "--namespace", "ttr"])
    assert args.address == "auto" and args.drain_timeout == 30.0
