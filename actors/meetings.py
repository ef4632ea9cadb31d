"""MeetingCoordinator: Graph meeting work, serialised per changeId, concurrent across changes.

It never holds tenant credentials: attendees come from each CustomerActor. Archive writes go
through the ArchiveActor. The decisions are ``runtime.coordinator.MeetingService``'s.
"""

from __future__ import annotations

import asyncio

import ray

from runtime.errors import TtrError

from .archive import ARCHIVE_ACTOR_NAME
from .customer import customer_actor_name
from .proxies import error_data, raise_error_data

MEETINGS_ACTOR_NAME = "meetings"


class _ActorAttendees:
    def __init__(self, namespace: str):
        self.namespace = namespace

    async def calendar_recipients(self, customer: str) -> list[str]:
        from ray.exceptions import RayError

        from runtime.errors import RetryableError
        from runtime.telemetry import inject

        try:
            handle = ray.get_actor(customer_actor_name(customer), namespace=self.namespace)
            return await handle.calendar_recipients.remote(inject())
        except (ValueError, RayError) as exc:
            raise RetryableError(f"attendees of {customer} unavailable: {type(exc).__name__}",
                                 operation="customer.calendar_recipients") from None


MEETINGS_ACTOR_OPTIONS = {"num_cpus": 0.05, "max_restarts": -1, "max_task_retries": 0, "max_concurrency": 64}


class MeetingsWorker:
    def __init__(self, cfg_data: dict, namespace: str):
        from runtime.config import parse_config
        from runtime.telemetry import setup_telemetry

        setup_telemetry("meetings")
        import runtime.adapters.graph  # noqa: F401 - msgraph takes seconds to import: pay it at start
        self.cfg = parse_config(cfg_data, cfg_data.get("source") or "<runtime>")
        self.namespace = namespace
        from runtime.locks import KeyedAsyncLock

        self.locks = KeyedAsyncLock()
        self.service = None
        self.stats = {"calls": 0, "errors": 0}

    def _service(self):
        # Built inside the actor's event loop: the Graph client is bound to the loop it runs on.
        if self.service is None:
            from runtime.adapters.aws import AwsClients
            from runtime.adapters.graph import GraphCalendar
            from runtime.adapters.s3 import S3ObjectStore
            from runtime.archive import ArchiveStore
            from runtime.coordinator import MeetingService, sync_load

            reader = ArchiveStore(S3ObjectStore(AwsClients(self.cfg.region, self.cfg.aws_endpoint_url),
                                                self.cfg.bucket))
            self.service = MeetingService(
                calendar=GraphCalendar.from_config(self.cfg.graph, emulator=False),
                attendees=_ActorAttendees(self.namespace), load=sync_load(reader), record=self._record,
                portal_base_url=self.cfg.email.portal_base_url,
                show_customers=self.cfg.email.show_affected_customers,
                hide_attendees=self.cfg.graph.hide_attendees)
        return self.service

    async def _record(self, change_id: str, records: list, set_fields: dict | None) -> int:
        from ray.exceptions import RayError

        from runtime.errors import RetryableError
        from runtime.telemetry import inject

        try:
            archive = ray.get_actor(ARCHIVE_ACTOR_NAME, namespace=self.namespace)
            result = await archive.record.remote(change_id, records, set_fields, inject())
        except (ValueError, RayError) as exc:
            raise RetryableError(f"archive actor unavailable: {type(exc).__name__}",
                                 operation="archive.record") from None
        raise_error_data(result, "archive.record")
        return int(result["appended"])

    async def handle(self, change_id: str, action: str, seq: int, trace: dict | None = None) -> dict:
        from runtime.telemetry import span

        self.stats["calls"] += 1
        async with self.locks.hold(change_id):
            with span(f"coordinator.{action}", {"ttr.change_id": change_id, "ttr.seq": seq},
                      carrier=trace) as sp:
                try:
                    result = await self._service().handle(change_id, action, seq)
                    sp.set_attribute("ttr.outcome", result)
                    return {"result": result}
                except TtrError as exc:
                    self.stats["errors"] += 1
                    sp.set_attribute("ttr.outcome", "error")
                    sp.set_attribute("ttr.error.type", type(exc).__name__)
                    return error_data(exc)

    async def flush(self) -> bool:
        """Export buffered spans and metrics (the supervisor calls this before stopping us)."""
        from runtime.telemetry import flush_telemetry

        await asyncio.to_thread(flush_telemetry)
        return True

    async def health(self) -> dict:
        return {"ok": True, **self.stats}


MeetingCoordinator = ray.remote(**MEETINGS_ACTOR_OPTIONS)(MeetingsWorker)
