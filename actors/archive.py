"""ArchiveActor: the only writer of ``archive/`` inside the cluster.

Per-change serialisation (an asyncio lock per changeId), concurrent across changes. The writes
themselves are ``ArchiveRecorder``'s: If-Match read-modify-write, idempotent appends, unknown
fields preserved, so writers outside the cluster (the CLI, the web API) are never overwritten.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

import ray

from runtime.errors import TtrError

from .proxies import error_data

ARCHIVE_ACTOR_NAME = "archive"


@ray.remote(num_cpus=0.05, max_restarts=-1, max_task_retries=3, max_concurrency=64)
class ArchiveActor:
    def __init__(self, cfg_data: dict):
        from runtime.adapters.aws import AwsClients
        from runtime.adapters.s3 import S3ObjectStore
        from runtime.archive import ArchiveRecorder
        from runtime.config import parse_config
        from runtime.telemetry import setup_logging

        setup_logging()
        cfg = parse_config(cfg_data, cfg_data.get("source") or "<runtime>")
        self.recorder = ArchiveRecorder(S3ObjectStore(AwsClients(cfg.region, cfg.aws_endpoint_url), cfg.bucket))
        self.locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.writes = 0
        self.failures = 0

    async def record(self, change_id: str, records: list[dict], set_fields: dict | None = None) -> dict:
        """Append records idempotently. Returns {"appended": n} or {"error", "retryable", "retry_after"}:
        our errors travel back as data, so callers never see a Ray-wrapped exception for them."""
        async with self.locks[change_id]:
            try:
                n = await asyncio.to_thread(self.recorder.record, change_id, records, set_fields)
                self.writes += 1
                return {"appended": n}
            except TtrError as exc:
                self.failures += 1
                return error_data(exc)

    async def health(self) -> dict:
        from runtime.adapters.aws import call_counts

        return {"ok": True, "writes": self.writes, "failures": self.failures, "aws_calls": call_counts()}
