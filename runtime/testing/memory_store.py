"""An in-memory implementation of the ``ObjectStore`` port, with S3's semantics where ttr relies on
them (``tests/integration/test_object_store_contract.py`` runs the same assertions against this
store and the S3 adapter on moto):

- ETags are the quoted MD5 of the body (a single-part PUT); ``if_match`` accepts them quoted or not;
- ``put(if_none_match=True)`` on an existing key raises AlreadyExists; ``put(if_match=...)`` raises
  PreconditionFailed on another ETag, NotFound when the key does not exist;
- ``get`` of a missing key raises NotFound; deleting a missing key is not an error;
- ``list`` yields every object under the prefix in S3's order (UTF-8 bytes), fetched in pages of
  ``page_size`` like ListObjectsV2, with ``last_modified`` in whole seconds, UTC.

Thread-safe. ``notify_queues`` delivers S3 event notifications for the bucket's trigger rules (the
rules ``ttr provision`` writes) to in-memory queues, so a handler can be fed like from SQS.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterator, Mapping
from urllib.parse import quote_plus

from runtime.domain.errors import AlreadyExists, NotFound, PreconditionFailed
from runtime.ports import ObjectInfo, StoredObject

Listener = Callable[[str, ObjectInfo], None]   # (S3 event name, the object) after a write


@dataclass(frozen=True)
class _Held:
    body: bytes
    etag: str
    last_modified: datetime


class MemoryObjectStore:
    def __init__(self, bucket: str = "memory", *, page_size: int = 1000,
                 clock: Callable[[], float] = time.time):
        self.bucket = bucket
        self.page_size = page_size
        self.clock = clock
        self._objects: dict[str, _Held] = {}
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self.list_pages = 0   # ListObjectsV2 calls the store would have made

    # -- the port --------------------------------------------------------------------------------
    def get(self, key: str) -> StoredObject:
        with self._lock:
            held = self._objects.get(key)
        if held is None:
            raise NotFound(f"s3.GetObject: NoSuchKey: {key} does not exist", code="NoSuchKey")
        return StoredObject(key=key, body=held.body, etag=held.etag)

    def put(self, key: str, body: bytes, *, if_match: str | None = None,
            if_none_match: bool = False) -> str:
        body = bytes(body)
        etag = f'"{hashlib.md5(body).hexdigest()}"'  # noqa: S324 - S3's ETag, not a security hash
        with self._lock:
            current = self._objects.get(key)
            if if_none_match and current is not None:
                raise AlreadyExists(f"{key} already exists", code="PreconditionFailed")
            if if_match is not None:
                if current is None:
                    raise NotFound(f"s3.PutObject: NoSuchKey: {key} does not exist", code="NoSuchKey")
                if current.etag.strip('"') != if_match.strip('"'):
                    raise PreconditionFailed(f"s3.PutObject: PreconditionFailed: {key} has another ETag",
                                             operation="s3.PutObject", code="PreconditionFailed")
            stamp = datetime.fromtimestamp(int(self.clock()), tz=timezone.utc)
            self._objects[key] = _Held(body, etag, stamp)
            listeners = list(self._listeners)
        info = ObjectInfo(key=key, etag=etag, size=len(body), last_modified=stamp)
        for listener in listeners:
            listener("ObjectCreated:Put", info)
        return etag

    def delete(self, key: str) -> None:
        with self._lock:
            held = self._objects.pop(key, None)
            listeners = list(self._listeners)
        if held is not None:
            info = ObjectInfo(key=key, etag=held.etag, size=len(held.body), last_modified=held.last_modified)
            for listener in listeners:
                listener("ObjectRemoved:Delete", info)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        after = None
        while True:
            page = self._page(prefix, after)
            yield from page
            if len(page) < self.page_size:
                return
            after = page[-1].key

    # -- for tests -------------------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(event name, object)`` after every write (as S3 notifications would)."""
        with self._lock:
            self._listeners.append(listener)

    def keys(self, prefix: str = "") -> list[str]:
        return [o.key for o in self.list(prefix)]

    def snapshot(self) -> dict[str, str]:
        """key -> ETag of every object: compare before/after to prove nothing was written."""
        return {o.key: o.etag for o in self.list("")}

    def get_json(self, key: str):
        return json.loads(self.get(key).body)

    def _page(self, prefix: str, after: str | None) -> list[ObjectInfo]:
        """One ListObjectsV2 page: up to ``page_size`` keys after ``after`` (S3 orders by UTF-8 bytes)."""
        with self._lock:
            self.list_pages += 1
            keys = sorted((k for k in self._objects if k.startswith(prefix)
                           and (after is None or k.encode() > after.encode())), key=str.encode)
            page = keys[:self.page_size]
            return [ObjectInfo(key=k, etag=self._objects[k].etag, size=len(self._objects[k].body),
                               last_modified=self._objects[k].last_modified) for k in page]


# ---------------------------------------------------------------------------------------------
# Bucket notifications


def s3_event(bucket: str, region: str, event_name: str, info: ObjectInfo, rule_id: str = "") -> str:
    """The SQS body S3 sends for one event: one record, the key URL-encoded as S3 does."""
    record = {
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": region,
        "eventTime": info.last_modified.strftime("%Y-%m-%dT%H:%M:%S.000Z"), "eventName": event_name,
        "s3": {"s3SchemaVersion": "1.0", "configurationId": rule_id,
               "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
               "object": {"key": quote_plus(info.key, safe=""), "size": info.size,
                          "eTag": info.etag.strip('"'), "sequencer": f"{time.time_ns():016X}"}},
    }
    return json.dumps({"Records": [record]})


def rule_matches(rule: Mapping, event_name: str, key: str) -> bool:
    """Whether an S3 ``QueueConfigurations`` rule fires for this event on this key."""
    if not any(event_name.startswith(e.removeprefix("s3:").removesuffix("*")) for e in rule.get("Events", [])):
        return False
    for f in rule.get("Filter", {}).get("Key", {}).get("FilterRules", []):
        name, value = f["Name"].lower(), f["Value"]
        if (name == "prefix" and not key.startswith(value)) or (name == "suffix" and not key.endswith(value)):
            return False
    return True


def notify_queues(store: MemoryObjectStore, cfg, queues: Mapping) -> None:
    """Route the store's events to ``queues`` (customer code -> Queue) by the rules ``ttr provision``
    puts on the bucket (``notification_rule``): a trigger write lands on its customer's queue."""
    from runtime.provisioning.bootstrap import notification_rule

    rules = [(code, notification_rule(cfg.customer(code), f"memory:{code}")) for code in queues]

    def route(event_name: str, info: ObjectInfo) -> None:
        for code, rule in rules:
            if rule_matches(rule, event_name, info.key):
                queues[code].send(s3_event(store.bucket, cfg.region, event_name, info, rule["Id"]))

    store.subscribe(route)
