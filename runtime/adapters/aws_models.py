"""Trimmed botocore data for a tenant process: only the operations a tenant calls.

A botocore client parses its service's full JSON model, and every botocore session parses
``endpoints.json`` (all services in all partitions, ~7 MB once parsed). A tenant calls a dozen
operations on four services, and there are a hundred tenant processes on a node, so each tenant's
session reads its data from a directory generated here: the same files, cut to

- ``service-2.json`` of s3, sqs, sts and sesv2 with only ``TENANT_OPERATIONS`` and the shapes
  they reach (documentation strings emptied);
- ``endpoints.json`` with every partition and region but only these four services.

Everything else (endpoint rule sets, partitions, paginators, retry and default configuration)
is not copied: botocore's loader looks for each file along its search path, so it still finds
those in its own data directory. The directory is generated from the installed botocore (never
copied by hand into the repository), once per botocore version, operation set and version of this
module, under ``$TTR_CACHE_DIR`` (default ``~/.cache/ttr``); a tenant only reads it.

Add an operation a tenant calls to ``TENANT_OPERATIONS``: tests/unit/test_aws_models.py fails
when an adapter the tenant uses calls one that is missing (the client would not have the method).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

from runtime.domain.cache_dir import cache_dir

# service -> operations (botocore's names). What a CustomerActor's adapters call (s3.py, sqs.py,
# ses.py, aws.py), plus what botocore itself may call on a tenant's behalf: S3's region
# redirector (HeadBucket) and the S3 Express identity resolver (CreateSession).
TENANT_OPERATIONS: dict[str, tuple[str, ...]] = {
    "s3": ("GetObject", "PutObject", "DeleteObject", "ListObjectsV2", "HeadBucket", "CreateSession"),
    "sqs": ("GetQueueUrl", "ReceiveMessage", "DeleteMessageBatch", "ChangeMessageVisibility", "SendMessage",
            "GetQueueAttributes"),
    "sts": ("AssumeRole",),
    "sesv2": ("SendEmail", "ListContacts", "GetContactList", "CreateContactList", "UpdateContactList",
              "GetContact", "CreateContact", "UpdateContact", "DeleteContact"),
}


def _reachable_shapes(model: dict, operations: tuple[str, ...]) -> set[str]:
    shapes = model["shapes"]
    seen: set[str] = set()
    todo: list[str] = []
    for name in operations:
        op = model["operations"][name]
        todo += [op[k]["shape"] for k in ("input", "output") if k in op]
        todo += [e["shape"] for e in op.get("errors", [])]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        shape = shapes[name]
        todo += [shape[k]["shape"] for k in ("member", "key", "value") if k in shape]
        todo += [m["shape"] for m in shape.get("members", {}).values()]
    return seen


def _undocumented(node):
    """Documentation strings emptied, not removed: botocore reads some (client context parameters)."""
    if isinstance(node, dict):
        return {k: "" if k == "documentation" and isinstance(v, str) else _undocumented(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_undocumented(v) for v in node]
    return node


def trim_service_model(model: dict, operations: tuple[str, ...]) -> dict:
    """``model`` with only ``operations`` and the shapes they reach; KeyError names a missing one."""
    missing = [op for op in operations if op not in model["operations"]]
    if missing:
        raise KeyError(f"{model['metadata'].get('serviceId')}: no operation {', '.join(missing)} in botocore's model")
    keep = _reachable_shapes(model, operations)
    out = {k: v for k, v in model.items() if k not in ("operations", "shapes")}
    out["operations"] = {op: model["operations"][op] for op in operations}
    out["shapes"] = {name: model["shapes"][name] for name in sorted(keep)}
    return _undocumented(out)


def trim_endpoints(endpoints: dict, prefixes: set[str]) -> dict:
    """``endpoints.json`` with every partition and region, and only the services in ``prefixes``."""
    out = dict(endpoints)
    out["partitions"] = [{**p, "services": {k: v for k, v in p.get("services", {}).items() if k in prefixes}}
                         for p in endpoints["partitions"]]
    return out


def _directory(operations: dict[str, tuple[str, ...]]) -> Path:
    import botocore

    base = cache_dir()
    # keyed by the operations and by this module's code: a change to either is a new directory
    digest = hashlib.sha256(json.dumps(operations, sort_keys=True).encode() + Path(__file__).read_bytes()).hexdigest()[:12]
    return base / f"botocore-{botocore.__version__}-{digest}"


def tenant_data_path(operations: dict[str, tuple[str, ...]] = TENANT_OPERATIONS) -> str | None:
    """The trimmed data directory for ``operations``, generated on first use (atomically: a
    directory is renamed into place complete, so concurrent first uses cannot see half of one).
    None, with a warning, when it cannot be written: the tenant then uses botocore's full data."""
    target = _directory(operations)
    if (target / "endpoints.json").is_file():
        return str(target)
    try:
        return _generate(target, operations)
    except OSError as exc:
        import logging

        logging.getLogger("ttr.aws").warning("trimmed botocore data not written (%s): this process uses "
                                             "botocore's full models (more memory per tenant)", exc)
        return None


def _generate(target: Path, operations: dict[str, tuple[str, ...]]) -> str:
    import botocore.loaders

    loader = botocore.loaders.Loader()  # botocore's own data only (no AWS_DATA_PATH of ours)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
    prefixes: set[str] = set()
    for service, ops in operations.items():
        version = loader.determine_latest_version(service, "service-2")
        model = loader.load_service_model(service, "service-2", version)
        prefixes.add(model["metadata"]["endpointPrefix"])
        (tmp / service / version).mkdir(parents=True)
        (tmp / service / version / "service-2.json").write_text(json.dumps(trim_service_model(model, ops)))
    (tmp / "endpoints.json").write_text(json.dumps(trim_endpoints(loader.load_data("endpoints"), prefixes)))
    try:
        tmp.rename(target)
    except OSError:  # another process put it there first: theirs is the same
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return str(target)
