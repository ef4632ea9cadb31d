"""The tenants' trimmed botocore data (runtime/adapters/aws_models.py): every operation a tenant's
adapters call is in it, and what it leaves out is really gone."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import botocore.loaders
import pytest
from botocore import xform_name

from runtime.adapters.aws import AwsClients
from runtime.adapters.aws_models import TENANT_OPERATIONS, tenant_data_path, trim_endpoints, trim_service_model

ROOT = Path(__file__).resolve().parents[2]
# The adapters a CustomerActor builds (actors/customer.py): every AWS call a tenant makes is in them.
TENANT_ADAPTERS = ["runtime/adapters/aws.py", "runtime/adapters/s3.py", "runtime/adapters/sqs.py",
                   "runtime/adapters/ses.py"]


def _full_operations() -> dict[str, dict[str, str]]:
    """service -> {python method name: operation} from botocore's full models."""
    loader = botocore.loaders.Loader()
    out = {}
    for service in TENANT_OPERATIONS:
        model = loader.load_service_model(service, "service-2")
        out[service] = {xform_name(op): op for op in model["operations"]}
    return out


def _called(source: str, methods: dict[str, dict[str, str]]) -> set[tuple[str, str]]:
    """(service, operation) for each call in ``source`` of a method named like an operation, and each
    ``aws_errors("service.Operation")`` label, the name our adapters give every call."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        if isinstance(node.func, ast.Attribute):
            name = node.func.attr
            if name == "get_paginator" and node.args and isinstance(node.args[0], ast.Constant):
                name = node.args[0].value
            for service, ops in methods.items():
                if name in ops:
                    found.add((service, ops[name]))
        if (isinstance(node.func, ast.Name) and node.func.id == "aws_errors" and node.args
                and isinstance(node.args[0], ast.Constant)):
            service, _, op = node.args[0].value.partition(".")
            found.add((service, op))
    return found


def test_every_operation_the_tenant_adapters_call_is_in_the_trimmed_model():
    methods = _full_operations()
    called = set().union(*(_called((ROOT / p).read_text(), methods) for p in TENANT_ADAPTERS))
    assert ("s3", "GetObject") in called and ("sesv2", "SendEmail") in called  # the scan sees calls
    missing = sorted(f"{s}.{op}" for s, op in called if op not in TENANT_OPERATIONS.get(s, ()))
    assert not missing, f"add to TENANT_OPERATIONS in runtime/adapters/aws_models.py: {missing}"


def test_the_scan_catches_a_call_that_is_not_listed():
    called = _called("def f(s3, q):\n    s3.create_bucket(Bucket='b')\n    q.purge_queue(QueueUrl='u')\n",
                     _full_operations())
    assert called == {("s3", "CreateBucket"), ("sqs", "PurgeQueue")}
    assert "CreateBucket" not in TENANT_OPERATIONS["s3"]


def test_generated_data_gives_clients_with_exactly_the_listed_operations(tmp_path, monkeypatch):
    monkeypatch.setenv("TTR_CACHE_DIR", str(tmp_path))
    path = Path(tenant_data_path())
    assert path.parent == tmp_path and (path / "endpoints.json").is_file()
    assert tenant_data_path() == str(path)  # generated once, then read
    endpoints = json.loads((path / "endpoints.json").read_text())
    assert {p["partition"] for p in endpoints["partitions"]} >= {"aws", "aws-cn", "aws-us-gov"}
    assert set(endpoints["partitions"][0]["services"]) <= {"s3", "sqs", "sts", "email"}

    clients = AwsClients("eu-west-1", "http://127.0.0.1:1", data_path=str(path))
    for service, ops in TENANT_OPERATIONS.items():
        client = clients.client(service)
        assert set(client.meta.service_model.operation_names) == set(ops), service
        for op in ops:
            assert callable(getattr(client, xform_name(op)))
    s3 = clients.client("s3")
    assert not hasattr(s3, "create_bucket")  # trimmed: the full model's other operations are gone
    assert s3.can_paginate("list_objects_v2")  # paginators still come from botocore's own data
    full = AwsClients("eu-west-1", "http://127.0.0.1:1").client("s3")
    assert hasattr(full, "create_bucket")  # other processes keep the full models


def test_trimming_an_unknown_operation_names_it():
    model = botocore.loaders.Loader().load_service_model("sqs", "service-2")
    with pytest.raises(KeyError, match="NoSuchCall"):
        trim_service_model(model, ("ReceiveMessage", "NoSuchCall"))


def test_trimmed_model_keeps_every_shape_an_operation_reaches():
    model = botocore.loaders.Loader().load_service_model("s3", "service-2")
    trimmed = trim_service_model(model, ("PutObject",))
    assert list(trimmed["operations"]) == ["PutObject"]
    assert "PutObjectRequest" in trimmed["shapes"] and "ServerSideEncryption" in trimmed["shapes"]
    assert "CreateBucketRequest" not in trimmed["shapes"]
    assert trimmed["metadata"] == model["metadata"]
    assert len(trimmed["shapes"]) < len(model["shapes"]) / 5


def test_trim_endpoints_keeps_partitions_and_regions():
    endpoints = botocore.loaders.Loader().load_data("endpoints")
    trimmed = trim_endpoints(endpoints, {"sqs"})
    assert [p["regions"] for p in trimmed["partitions"]] == [p["regions"] for p in endpoints["partitions"]]
    assert all(set(p["services"]) <= {"sqs"} for p in trimmed["partitions"])


def test_an_unwritable_cache_falls_back_to_botocores_full_data(tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setenv("TTR_CACHE_DIR", str(blocker))
    assert tenant_data_path() is None
    assert "full models" in caplog.text
    clients = AwsClients("eu-west-1", "http://127.0.0.1:1", data_path=None)
    assert hasattr(clients.client("s3"), "create_bucket")
