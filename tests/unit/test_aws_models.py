"""The tenants' trimmed botocore data (runtime/adapters/aws_models.py): every operation a tenant's
adapters call is in it, and what it leaves out is really gone."""

from __future__ import annotations

import ast
import marshal
import os
from pathlib import Path

import botocore.loaders
import pytest
from botocore import xform_name

from runtime.adapters.aws import AwsClients
from runtime.adapters.aws_models import (
    COMPACT_SUFFIX,
    TENANT_OPERATIONS,
    compact,
    compact_loader,
    tenant_data_path,
    trim_endpoints,
    trim_service_model,
)

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
    assert path.parent == tmp_path and (path / f"endpoints{COMPACT_SUFFIX}").is_file()
    assert tenant_data_path() == str(path)  # generated once, then read
    assert os.stat(path).st_mode & 0o077 == 0  # ours alone
    endpoints = marshal.loads((path / f"endpoints{COMPACT_SUFFIX}").read_bytes())
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


def _ids(node, seen: dict) -> int:
    """How many container and string objects ``node`` holds (each counted once)."""
    if id(node) in seen or not isinstance(node, (dict, list, str)):
        return 0
    seen[id(node)] = node
    children = list(node.items()) if isinstance(node, dict) else node if isinstance(node, list) else []
    flat = [x for pair in children for x in (pair if isinstance(pair, tuple) else (pair,))]
    return 1 + sum(_ids(c, seen) for c in flat)


def test_compact_data_is_equal_with_one_object_per_string_and_only_rule_sets_sharing_subtrees():
    loader = botocore.loaders.Loader()
    rules = loader.load_service_model("s3", "endpoint-rule-set-1")
    model = loader.load_service_model("s3", "service-2")
    shared, plain = compact(rules, share_subtrees=True), compact(model)
    assert shared == rules and plain == model  # the same data (an OrderedDict equals its dict)
    assert type(shared) is dict and type(plain["shapes"]) is dict
    total = _ids(rules, {})
    assert _ids(shared, {}) < total / 4  # the rule set repeats whole subtrees
    names = [op["name"] for op in plain["operations"].values()]
    assert all(a is b for a, b in zip(names, [plain["operations"][n]["name"] for n in names]))
    # a plain compact never shares a container: botocore changes these in place
    seen: dict = {}
    _ids(plain, seen)
    containers = [o for o in seen.values() if not isinstance(o, str)]
    refs = [id(v) for o in containers for v in (o.values() if isinstance(o, dict) else o)
            if isinstance(v, (dict, list))]
    assert len(refs) == len(set(refs))
    assert compact([{"a": 1}, {"a": True}, {"a": 1.0}], share_subtrees=True)[1]["a"] is True  # 1 == True, kept apart


# (region, client config) pairs whose endpoints come from different branches of the rule sets
_VARIANTS = [
    ("eu-west-1", {}),
    ("us-east-1", {}),
    ("us-east-1", {"use_fips_endpoint": True}),
    ("eu-central-1", {"use_dualstack_endpoint": True}),
    ("us-west-2", {"use_fips_endpoint": True, "use_dualstack_endpoint": True}),
    ("eu-west-1", {"s3": {"addressing_style": "path"}}),
    ("us-east-1", {"s3": {"use_accelerate_endpoint": True}}),
    ("cn-north-1", {}),
    ("us-gov-west-1", {"use_fips_endpoint": True}),
    ("ap-southeast-2", {"s3": {"us_east_1_regional_endpoint": "regional"}}),
]


class _Sent(Exception):
    pass


def _urls(clients: AwsClients, region: str, config: dict) -> list[str]:
    """The URL of one request per tenant service, stopped before it is sent (no network)."""
    import botocore.config

    out = []
    calls = {"s3": ("get_object", {"Bucket": "ttr-archive", "Key": "archive/CHG-1.json"}),
             "sqs": ("get_queue_url", {"QueueName": "ttr-t00"}),
             "sts": ("assume_role", {"RoleArn": "arn:aws:iam::1:role/r", "RoleSessionName": "s"}),
             "sesv2": ("get_contact_list", {"ContactListName": "l"})}
    for service, (method, params) in calls.items():
        client = clients._session.create_client(service, region_name=region, aws_access_key_id="a",
                                                aws_secret_access_key="b",
                                                config=botocore.config.Config(**config))

        def stop(request, **_):
            raise _Sent(request.url)

        client.meta.events.register("before-send", stop)
        try:
            getattr(client, method)(**params)
        except _Sent as sent:
            out.append(str(sent))
        except botocore.exceptions.BotoCoreError as exc:  # a variant a partition refuses: the same refusal
            out.append(type(exc).__name__)
    return out


def test_compact_data_resolves_every_endpoint_as_botocores_own(tmp_path, monkeypatch):
    monkeypatch.setenv("TTR_CACHE_DIR", str(tmp_path))
    compact_clients = AwsClients("eu-west-1", data_path=tenant_data_path())
    own = AwsClients("eu-west-1")
    got = {}
    for round_ in range(2):  # twice, in another order: resolving changes nothing it shares
        for region, config in (_VARIANTS if round_ == 0 else _VARIANTS[::-1]):
            mine, theirs = _urls(compact_clients, region, config), _urls(own, region, config)
            assert mine == theirs, (region, config)
            got.setdefault((region, repr(config)), mine)
            assert got[(region, repr(config))] == mine
    assert any("s3-accelerate" in u for urls in got.values() for u in urls)
    assert any("fips" in u for urls in got.values() for u in urls)
    assert any(".amazonaws.com.cn" in u for urls in got.values() for u in urls)


def test_a_directory_others_can_write_is_not_used(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("TTR_CACHE_DIR", str(tmp_path))
    path = Path(tenant_data_path())
    path.chmod(0o777)
    assert tenant_data_path() is None
    assert "writable by other users" in caplog.text and "full models" in caplog.text


def test_a_damaged_compact_file_falls_back_to_botocores_own_data(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("TTR_CACHE_DIR", str(tmp_path))
    path = Path(tenant_data_path())
    model = next(path.glob(f"sqs/*/service-2{COMPACT_SUFFIX}"))
    model.write_bytes(model.read_bytes()[:100])  # cut short
    rules = next(path.glob(f"s3/*/endpoint-rule-set-1{COMPACT_SUFFIX}"))
    rules.write_bytes(marshal.dumps(["not", "a", "rule", "set"]))
    loader = compact_loader(str(path))
    assert "CreateQueue" in loader.load_service_model("sqs", "service-2")["operations"]  # botocore's full model
    assert "rules" in loader.load_service_model("s3", "endpoint-rule-set-1")
    assert "sqs/" in caplog.text and "not valid" in caplog.text and "holds a list, not a dict" in caplog.text
    sqs = AwsClients("eu-west-1", "http://127.0.0.1:1", data_path=str(path)).client("sqs")
    assert hasattr(sqs, "create_queue")
