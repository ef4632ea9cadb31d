"""Trimmed botocore data for a tenant process: only the operations a tenant calls.

A botocore client parses its service's full JSON model, and every botocore session parses
``endpoints.json`` (all services in all partitions, ~7 MB once parsed). A tenant calls a dozen
operations on four services, and there are a hundred tenant processes on a node, so each tenant's
session reads its data from a directory generated here: the same data, cut to

- the service model (``service-2``) of s3, sqs, sts and sesv2 with only ``TENANT_OPERATIONS``
  and the shapes they reach (documentation strings emptied);
- ``endpoints`` with every partition and region but only these four services;
- the four services' endpoint rule sets, ``partitions`` and ``sdk-default-configuration``,
  whole (only stored compact, below).

Everything else (paginators, retry configuration, the sdk-extras) is not copied: botocore's
loader looks for each file along its search path, so it still finds those in its own data
directory. The directory is generated from the installed botocore (never copied by hand into the
repository), once per botocore version, operation set, Python version and version of this module,
under ``$TTR_CACHE_DIR`` (default ``~/.cache/ttr``); a tenant only reads it.

Add an operation a tenant calls to ``TENANT_OPERATIONS``: tests/unit/test_aws_models.py fails
when an adapter the tenant uses calls one that is missing (the client would not have the method).

The files are written compact (``.marshal``, read by ``CompactFileLoader``), because what a
tenant's four clients keep of them is most of what botocore costs a tenant beyond its code. Parsed
by botocore's own loader, that is 2.5 MB, 1.3 MB of it the S3 endpoint rule set:

- botocore parses into ``OrderedDict``, twice the size of a ``dict`` (which keeps the order too);
- each occurrence of a string is its own object ("fn", "argv", "booleanEquals", shape names...);
- an endpoint rule set repeats whole subtrees (the same conditions, errors and endpoints under
  each FIPS, dual-stack and accelerate branch).

So every file is stored with plain dicts and one object per distinct string, and the endpoint rule
sets with one object per distinct subtree as well. marshal keeps that sharing on disk and loads
it back in one C call (faster than the JSON it replaces). Only the rule sets share subtrees:
botocore never changes them in place (``botocore.endpoint_provider`` reads them), while it does
change the others (``regions.py`` merges defaults into an endpoint's dict, ``loaders.py`` merges
the sdk-extras into a model, ``format_partition_output`` writes into a partition), so a shared
subtree there would carry one service's values into another's. Measured in one process with the
four clients: 2,484 KB of parsed data become 695 KB.

marshal data is trusted input (a crafted file can crash the interpreter), so the directory is used
only when this user owns it and nobody else can write to it (``runtime.domain.cache_dir``);
otherwise the tenant falls back to botocore's full data, with a warning.
"""

from __future__ import annotations

import hashlib
import json
import marshal
import os
import sys
import tempfile
from pathlib import Path

import botocore.loaders

from runtime.domain.cache_dir import cache_dir, check_private

COMPACT_SUFFIX = ".marshal"
# what botocore loads for a tenant's clients besides their service models (all from botocore's
# own data); a file missing here is still found, parsed as JSON, along botocore's search path
SHARED_DATA = ("endpoints", "partitions", "sdk-default-configuration")

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


def compact(node, *, share_subtrees: bool = False):
    """``node`` (parsed JSON) as plain dicts and lists with one object per distinct string; with
    ``share_subtrees``, one object per distinct subtree too (only for data nobody changes in place).
    Equal to ``node`` (``==``), order kept."""
    memo: dict = {}

    def key(value) -> tuple:  # children are already compacted: equal strings and subtrees are one object
        return (id(value),) if isinstance(value, (str, dict, list)) else (type(value), value)

    def walk(value):
        if isinstance(value, str):
            return memo.setdefault(("s", value), value)
        if isinstance(value, dict):
            out = {walk(k): walk(v) for k, v in value.items()}
            return memo.setdefault(("d",) + tuple((id(k),) + key(v) for k, v in out.items()), out) \
                if share_subtrees else out
        if isinstance(value, list):
            out = [walk(v) for v in value]
            return memo.setdefault(("l",) + tuple(key(v) for v in out), out) if share_subtrees else out
        return value

    return walk(node)


class CompactFileLoader(botocore.loaders.JSONFileLoader):
    """botocore's file loader (it is given the path without extension), reading our compact
    ``.marshal`` file where there is one and botocore's JSON otherwise."""

    def exists(self, file_path: str) -> bool:
        return os.path.isfile(file_path + COMPACT_SUFFIX) or super().exists(file_path)

    def load_file(self, file_path: str):
        try:
            with open(file_path + COMPACT_SUFFIX, "rb") as f:
                data = marshal.load(f)
        except FileNotFoundError:
            return super().load_file(file_path)
        except (EOFError, ValueError, TypeError) as exc:
            data, problem = None, str(exc)
        else:
            problem = "" if isinstance(data, dict) else f"holds a {type(data).__name__}, not a dict"
        if problem:  # damaged: None, and botocore goes on along its search path (to its own data)
            import logging

            logging.getLogger("ttr.aws").warning("%s%s is not valid (%s): botocore's own data is used instead",
                                                 file_path, COMPACT_SUFFIX, problem)
            return None
        return data


class _TenantLoader(botocore.loaders.Loader):
    """botocore's loader that counts the generated directory as botocore's own data, which it is
    (cut to the tenant's services). botocore treats an ``endpoints`` file from anywhere else as a
    customised one and then hands its legacy resolution to the endpoint rule sets as a fixed
    endpoint, which resolves some endpoints differently (S3 with FIPS in us-east-1 went to
    ``s3-fips.aws-global``): tests/unit/test_aws_models.py compares every tenant service's
    endpoints with botocore's own over regions, partitions and FIPS, dual-stack and S3 variants."""

    def __init__(self, data_path: str) -> None:
        super().__init__(extra_search_paths=[data_path], file_loader=CompactFileLoader())
        self._generated = os.path.join(os.path.realpath(data_path), "")

    def is_builtin_path(self, path: str) -> bool:
        return (os.path.realpath(os.path.expanduser(os.path.expandvars(path))).startswith(self._generated)
                or super().is_builtin_path(path))


def compact_loader(data_path: str) -> botocore.loaders.Loader:
    """botocore's loader over ``data_path`` (searched first) and botocore's own data."""
    return _TenantLoader(data_path)


def _directory(operations: dict[str, tuple[str, ...]]) -> Path:
    import botocore

    base = cache_dir()
    # keyed by the operations and by this module's code: a change to either is a new directory;
    # and by the Python version, whose marshal format the files are in
    digest = hashlib.sha256(json.dumps(operations, sort_keys=True).encode() + Path(__file__).read_bytes()
                            + sys.version.encode()).hexdigest()[:12]
    return base / f"botocore-{botocore.__version__}-{digest}"


def tenant_data_path(operations: dict[str, tuple[str, ...]] = TENANT_OPERATIONS) -> str | None:
    """The trimmed data directory for ``operations``, generated on first use (atomically: a
    directory is renamed into place complete, so concurrent first uses cannot see half of one).
    None, with a warning, when it cannot be written: the tenant then uses botocore's full data."""
    target = _directory(operations)
    try:
        if not (target / f"endpoints{COMPACT_SUFFIX}").is_file():
            _generate(target, operations)
        check_private(target)  # its files are loaded with marshal: ours alone, or not used
        return str(target)
    except OSError as exc:
        import logging

        logging.getLogger("ttr.aws").warning("trimmed botocore data not written (%s): this process uses "
                                             "botocore's full models (more memory per tenant)", exc)
        return None


def _write(path: Path, data) -> None:
    path.write_bytes(marshal.dumps(data))


def _generate(target: Path, operations: dict[str, tuple[str, ...]]) -> str:
    loader = botocore.loaders.Loader()  # botocore's own data only (no AWS_DATA_PATH of ours)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))  # mode 0700
    prefixes: set[str] = set()
    for service, ops in operations.items():
        version = loader.determine_latest_version(service, "service-2")
        model = loader.load_service_model(service, "service-2", version)
        prefixes.add(model["metadata"]["endpointPrefix"])
        (tmp / service / version).mkdir(parents=True)
        _write(tmp / service / version / f"service-2{COMPACT_SUFFIX}", compact(trim_service_model(model, ops)))
        rules_version = loader.determine_latest_version(service, "endpoint-rule-set-1")
        rules = loader.load_service_model(service, "endpoint-rule-set-1", rules_version)
        (tmp / service / rules_version).mkdir(parents=True, exist_ok=True)
        _write(tmp / service / rules_version / f"endpoint-rule-set-1{COMPACT_SUFFIX}",
               compact(rules, share_subtrees=True))
    for name in SHARED_DATA:
        data = loader.load_data(name)
        _write(tmp / f"{name}{COMPACT_SUFFIX}", compact(trim_endpoints(data, prefixes) if name == "endpoints" else data))
    try:
        tmp.rename(target)
    except OSError:  # another process put it there first: theirs is the same
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return str(target)
