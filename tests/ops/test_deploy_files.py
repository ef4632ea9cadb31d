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

from runtime.domain.config import load_config

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
    "customer-ses-contacts-admin-policy.json": set(),
    "task-execution-policy.json": set(),
    "portal-policy.json": set(),
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
    # the customer's role trusts the runtime only with that customer's ExternalId (confused deputy)
    assert st["Condition"]["StringEquals"]["sts:ExternalId"] == hts.external_id
    assert len({c.external_id for c in PROD.customers}) == len(PROD.customers)


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
              for n in ("ray-head-task.json", "ray-worker-task.json", "portal-task.json")}
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
    from runtime.cli.main import build_parser

    text = (DEPLOY / "Dockerfile").read_text()
    instructions = [line.split(None, 1) for line in text.splitlines() if line and not line.startswith(("#", " "))]
    kinds = [i[0] for i in instructions]
    assert kinds.count("FROM") == 1 and "USER" in kinds and "ENTRYPOINT" in kinds
    # dependencies only from the lock file, by hash, wheels only; ttr itself without resolving anything
    runs = [args for kind, args in instructions if kind == "RUN"]
    assert any("--require-hashes" in r and "--only-binary=:all:" in r and "requirements.lock" in r for r in runs)
    assert any("--no-deps" in r for r in runs) and not any("pip wheel" in r for r in runs)
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


# ---------------------------------------------------------------------------------------------
# Dependencies and the portal in production


def test_the_lock_file_pins_every_dependency_with_hashes_and_leaves_the_emulator_out():
    text = (DEPLOY / "requirements.lock").read_text()
    pins = dict(re.findall(r"^([a-z0-9._-]+)==(\S+) \\$", text, re.M))
    assert len(pins) > 50
    blocks = re.split(r"^(?=[a-z0-9._-]+==)", text, flags=re.M)[1:]
    assert all("--hash=sha256:" in b for b in blocks), "a pin without its hash"
    assert "moto" not in pins and "flask" not in pins              # the `local` extra is not in the image
    from packaging.requirements import Requirement

    project = _project()
    for dep in project["dependencies"]:
        name = Requirement(dep).name.lower().replace("_", "-")
        assert name in pins, f"{name} is not in deploy/requirements.lock (make lock)"
        assert Requirement(dep).specifier.contains(pins[name]), f"{name}=={pins[name]} outside {dep}"
    assert not any(d.startswith("moto") for d in project["dependencies"])
    assert any(d.startswith("moto[server]") for d in project["optional-dependencies"]["local"])


def _project() -> dict:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_security_lower_bounds():
    from packaging.requirements import Requirement

    reqs = {Requirement(r).name.lower(): Requirement(r) for r in _project()["dependencies"]}
    # the first versions past the advisories named in docs/SECURITY.md; older ones must not install
    for name, bad, good in (("fastapi", "0.132.9", "0.133.0"), ("starlette", "1.0.0", "1.0.1"),
                            ("jinja2", "3.1.5", "3.1.6"), ("authlib", "1.6.11", "1.6.12"),
                            ("python-multipart", "0.0.25", "0.0.26")):
        assert not reqs[name].specifier.contains(bad) and reqs[name].specifier.contains(good), name
    security = (ROOT / "docs" / "SECURITY.md").read_text()
    for cve in ("CVE-2026-48710", "CVE-2025-27516", "CVE-2026-27962", "CVE-2026-44681", "CVE-2026-40347"):
        assert cve in security, cve


def test_portal_policy_is_s3_on_the_bucket_only():
    policy = load(DEPLOY / "iam" / "portal-policy.json")
    bucket = f"arn:aws:s3:::{PROD.bucket}"
    actions = {a for st in statements(policy) for a in as_list(st["Action"])}
    assert all(a.startswith("s3:") for a in actions), actions                  # no SES, no STS, no SQS
    assert actions == {"s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:DeleteObject"}
    resources = [r for st in statements(policy) for r in as_list(st["Resource"])]
    assert all(r == bucket or r.startswith(bucket + "/") for r in resources)
    prefixes = {r[len(bucket) + 1:].split("/")[0] for r in resources if r.startswith(bucket + "/")}
    assert prefixes == {"archive", "customers", "drafts", "ledger", "web"}        # never rejected/
    (delete,) = [st for st in statements(policy) if as_list(st["Action"]) == ["s3:DeleteObject"]]
    assert as_list(delete["Resource"]) == [f"{bucket}/drafts/*"]               # it deletes drafts, nothing else
    (put,) = [st for st in statements(policy) if as_list(st["Action"]) == ["s3:PutObject"]]
    assert f"{bucket}/ledger/*" not in as_list(put["Resource"])                 # delivery records are the runtime's


def _validate(service: str, operation: str, params: dict) -> None:
    import botocore.session
    from botocore.validate import ParamValidator

    shape = botocore.session.get_session().get_service_model(service).operation_model(operation).input_shape
    report = ParamValidator().validate(params, shape)
    assert not report.has_errors(), report.generate_report()


def test_portal_service_behind_an_https_load_balancer_with_oidc():
    from runtime.web._app import OPEN_PATHS

    task = load(DEPLOY / "ecs" / "portal-task.json")
    _validate("ecs", "RegisterTaskDefinition", task)
    (container,) = task["containerDefinitions"]
    assert container["command"] == ["portal"] and task["taskRoleArn"].endswith(":role/ttr-portal")
    secrets = {s["name"]: s["valueFrom"] for s in container["secrets"]}
    assert {"TTR_CONFIG_YAML", "TTR_SESSION_SECRET", "TTR_OIDC_CLIENT_SECRET"} <= set(secrets)
    assert PROD.web.oidc.client_secret_env in secrets
    assert "AZURE_CLIENT_SECRET" not in secrets                                # the portal does not talk to Graph
    port = container["portMappings"][0]["containerPort"]
    env = {e["name"]: e["value"] for e in container["environment"]}
    assert env["TTR_PORTAL_PORT"] == str(port)
    execution = load(DEPLOY / "iam" / "task-execution-policy.json")
    allowed = [r for st in statements(execution) for r in as_list(st["Resource"])]
    for arn in secrets.values():
        assert any(fnmatch.fnmatch(arn + "-AbCdEf", r) or arn == r for r in allowed), arn

    service = load(DEPLOY / "ecs" / "portal-service.json")
    _validate("ecs", "CreateService", service)
    assert service["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"] == "DISABLED"
    (lb,) = service["loadBalancers"]
    assert (lb["containerName"], lb["containerPort"]) == (container["name"], port)

    group = load(DEPLOY / "elb" / "portal-target-group.json")
    _validate("elbv2", "CreateTargetGroup", group)
    assert group["Port"] == port and group["HealthCheckPath"] in OPEN_PATHS
    listener = load(DEPLOY / "elb" / "portal-listener.json")
    _validate("elbv2", "CreateListener", listener)
    assert listener["Protocol"] == "HTTPS" and "TLS13" in listener["SslPolicy"]
    first, second = sorted(listener["DefaultActions"], key=lambda a: a["Order"])
    assert first["Type"] == "authenticate-oidc" and second["Type"] == "forward"
    assert first["AuthenticateOidcConfig"]["Issuer"] == PROD.web.oidc.issuer
    assert first["AuthenticateOidcConfig"]["ClientSecret"].startswith("SET-AT-DEPLOY-TIME")   # no secret in git
    rule = load(DEPLOY / "elb" / "portal-api-rule.json")
    _validate("elbv2", "CreateRule", rule)
    # API clients carry bearer tokens the portal checks itself; pages get the edge sign-in
    assert set(rule["Conditions"][0]["PathPatternConfig"]["Values"]) == {"/api/*", "/healthz"}
    redirect = load(DEPLOY / "elb" / "portal-http-redirect.json")
    _validate("elbv2", "CreateListener", redirect)
    assert redirect["DefaultActions"][0]["RedirectConfig"]["Protocol"] == "HTTPS"


def test_the_production_portal_config_is_safe_to_serve():
    from runtime.web._auth import demo_exposed

    assert PROD.email.portal_base_url.startswith("https://")
    assert PROD.web.trusted_proxies and PROD.web.oidc and PROD.web.oidc.role_map
    assert demo_exposed(PROD, "0.0.0.0") is None                               # no demo sign-ins in it
    script = (DEPLOY / "entrypoint.sh").read_text()
    assert 'exec ttr web --host 0.0.0.0 --port "${TTR_PORTAL_PORT:-8080}"' in script
