"""ArchiveActor: the only writer of ``archive/`` inside the cluster.

Group commit per change (``runtime.services.archive.GroupCommit``): record requests for the same change
that arrive together are applied in one read and one compare-and-swap; changes are written
concurrently. The writes themselves are ``ArchiveRecorder``'s: If-Match read-modify-write,
idempotent appends, unknown fields preserved, so writers outside the cluster (the CLI, the web
API) are never overwritten.
"""

from __future__ import annotations

import asyncio
import os

import ray

from actors.messages import ArchiveHealth, ErrorData, RecordRequest, RecordResult, config_of, encode_error
from actors.proxies import ARCHIVE_ACTOR_NAME  # noqa: F401 - re-exported: the name's old home
from runtime.domain.errors import TtrError

ARCHIVE_ACTOR_OPTIONS = {"num_cpus": 0.05, "max_restarts": -1, "max_task_retries": 3, "max_concurrency": 256}


class ArchiveWorker:
    def __init__(self, cfg_data):
        from runtime.adapters.aws import AwsClients
        from runtime.adapters.s3 import S3ObjectStore
        from runtime.domain.windows import WindowCounter
        from runtime.services.archive import ArchiveRecorder, GroupCommit
        from runtime.telemetry import setup_telemetry

        setup_telemetry("archive")
        cfg = config_of(cfg_data)
        self.clients = AwsClients(cfg.region, cfg.aws_endpoint_url)
        self.recorder = ArchiveRecorder(S3ObjectStore(self.clients, cfg.bucket))
        self.group = GroupCommit(self.recorder.record_many, linger=cfg.runtime.archive_linger_ms / 1000)
        self.requests = 0
        self.failures = 0
        self.window = WindowCounter()

    async def record(self, request: RecordRequest) -> RecordResult | ErrorData:
        """Append the request's records idempotently, with whatever else arrived for the change."""
        from runtime.telemetry import metrics, span

        self.requests += 1
        with span("archive.write", {"ttr.change_id": request.change_id, "ttr.records": len(request.records),
                                    "ttr.fields": ",".join(sorted(request.set_fields or {}))},
                  carrier=request.trace) as sp:
            try:
                appended, batch = await self.group.submit(request.change_id,
                                                          (list(request.records), request.set_fields))
            except TtrError as exc:
                self.failures += 1
                self.window.add("failure")
                metrics().archive_updates.add(1, {"outcome": "failure"})
                sp.set_attribute("ttr.outcome", "failure")
                sp.set_attribute("ttr.error.type", type(exc).__name__)
                return encode_error(exc)
            self.window.add("success")
            metrics().archive_updates.add(1, {"outcome": "success"})
            sp.set_attributes({"ttr.appended": appended, "ttr.batch": batch})
            return RecordResult(appended, batch)

    async def flush(self) -> bool:
        """Export buffered spans and metrics (the supervisor calls this before stopping us)."""
        from runtime.telemetry import flush_telemetry

        await asyncio.to_thread(flush_telemetry)
        return True

    async def health(self) -> ArchiveHealth:
        from runtime.adapters.aws import call_counts

        return ArchiveHealth(writes=self.group.writes, requests=self.requests, failures=self.failures,
                             aws_calls=call_counts(), window=self.window.snapshot(), pid=os.getpid(),
                             batches=tuple(self.group.batches))


ArchiveActor = ray.remote(**ARCHIVE_ACTOR_OPTIONS)(ArchiveWorker)
