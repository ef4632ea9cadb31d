"""ArchiveActor: the only writer of ``archive/`` inside the cluster.

Per-change serialisation (an asyncio lock per changeId), concurrent across changes. The writes
themselves are ``ArchiveRecorder``'s: If-Match read-modify-write, idempotent appends, unknown
fields preserved, so writers outside the cluster (the CLI, the web API) are never overwritten.
"""

from __future__ import annotations

import asyncio

import ray

from runtime.errors import TtrError

from .proxies import error_data

ARCHIVE_ACTOR_NAME = "archive"


ARCHIVE_ACTOR_OPTIONS = {"num_cpus": 0.05, "max_restarts": -1, "max_task_retries": 3, "max_concurrency": 64}


class ArchiveWorker:
    def __init__(self, cfg_data: dict):
        from runtime.adapters.aws import AwsClients
        from runtime.adapters.s3 import S3ObjectStore
        from runtime.archive import ArchiveRecorder
        from runtime.config import parse_config
        from runtime.telemetry import setup_telemetry

        setup_telemetry("archive")
        cfg = parse_config(cfg_data, cfg_data.get("source") or "<runtime>")
        self.clients = AwsClients(cfg.region, cfg.aws_endpoint_url)
        self.recorder = ArchiveRecorder(S3ObjectStore(self.clients, cfg.bucket))
        from runtime.locks import KeyedAsyncLock

        self.locks = KeyedAsyncLock()
        self.writes = 0
        self.failures = 0
        from runtime.alerts import WindowCounter

        self.window = WindowCounter()

    async def record(self, change_id: str, records: list[dict], set_fields: dict | None = None,
                     trace: dict | None = None) -> dict:
        """Append records idempotently. Returns {"appended": n} or {"error", "retryable", "retry_after"}:
        our errors travel back as data, so callers never see a Ray-wrapped exception for them.
        ``trace`` is the caller's W3C trace context."""
        from runtime.telemetry import metrics, span

        async with self.locks.hold(change_id):
            with span("archive.write", {"ttr.change_id": change_id, "ttr.records": len(records),
                                        "ttr.fields": ",".join(sorted(set_fields or {}))}, carrier=trace) as sp:
                try:
                    n = await asyncio.to_thread(self.recorder.record, change_id, records, set_fields)
                except TtrError as exc:
                    self.failures += 1
                    self.window.add("failure")
                    metrics().archive_updates.add(1, {"outcome": "failure"})
                    sp.set_attribute("ttr.outcome", "failure")
                    sp.set_attribute("ttr.error.type", type(exc).__name__)
                    return error_data(exc)
                self.writes += 1
                self.window.add("success")
                metrics().archive_updates.add(1, {"outcome": "success"})
                sp.set_attribute("ttr.appended", n)
                return {"appended": n}

    async def flush(self) -> bool:
        """Export buffered spans and metrics (the supervisor calls this before stopping us)."""
        from runtime.telemetry import flush_telemetry

        await asyncio.to_thread(flush_telemetry)
        return True

    async def health(self) -> dict:
        from runtime.adapters.aws import call_counts

        return {"ok": True, "writes": self.writes, "failures": self.failures, "aws_calls": call_counts(),
                "window": self.window.snapshot()}


ArchiveActor = ray.remote(**ARCHIVE_ACTOR_OPTIONS)(ArchiveWorker)
