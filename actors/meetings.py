"""MeetingCoordinator: Graph meeting work, serialised per changeId, concurrent across changes.

It never holds tenant credentials: attendees come from each CustomerActor, all asked at once.
Archive writes go through the ArchiveActor. The decisions are ``runtime.services.meeting_service.MeetingService``'s;
every call to another actor goes through ``actors.proxies``.
"""

from __future__ import annotations

import asyncio
import os

import ray

from actors.messages import ErrorData, MeetingCall, MeetingResult, MeetingsHealth, config_of, encode_error
from actors.proxies import MEETINGS_ACTOR_NAME, ActorAttendees, AsyncArchiveWriter
from runtime.domain.errors import TtrError

__all__ = ["MEETINGS_ACTOR_NAME", "MeetingCoordinator", "MeetingsWorker"]

MEETINGS_ACTOR_OPTIONS = {"num_cpus": 0.05, "max_restarts": -1, "max_task_retries": 0, "max_concurrency": 64}


class MeetingsWorker:
    def __init__(self, cfg_data, namespace: str):
        from runtime.services.locks import KeyedAsyncLock
        from runtime.telemetry import setup_telemetry

        setup_telemetry("meetings")
        import runtime.adapters.graph  # noqa: F401 - msgraph takes seconds to import: pay it at start
        self.cfg = config_of(cfg_data)
        self.namespace = namespace
        self.locks = KeyedAsyncLock()
        self.service = None
        self.calls = self.errors = 0

    def _service(self):
        # Built inside the actor's event loop: the Graph client is bound to the loop it runs on.
        if self.service is None:
            from runtime.adapters.aws import AwsClients
            from runtime.adapters.graph import GraphCalendar
            from runtime.adapters.s3 import S3ObjectStore
            from runtime.services.archive import ArchiveStore
            from runtime.services.meeting_service import MeetingService, sync_load

            reader = ArchiveStore(S3ObjectStore(AwsClients(self.cfg.region, self.cfg.aws_endpoint_url),
                                                self.cfg.bucket))
            self.service = MeetingService(
                calendar=GraphCalendar.from_config(self.cfg.graph, emulator=False),
                attendees=ActorAttendees(self.namespace), load=sync_load(reader),
                record=AsyncArchiveWriter(self.namespace), portal_base_url=self.cfg.email.portal_base_url,
                show_customers=self.cfg.email.show_affected_customers,
                hide_attendees=self.cfg.graph.hide_attendees)
        return self.service

    async def handle(self, call: MeetingCall) -> MeetingResult | ErrorData:
        from runtime.telemetry import span

        self.calls += 1
        async with self.locks.hold(call.change_id):
            with span(f"coordinator.{call.action}", {"ttr.change_id": call.change_id, "ttr.seq": call.seq},
                      carrier=call.trace) as sp:
                try:
                    result = await self._service().handle(call.change_id, call.action, call.seq)
                    sp.set_attribute("ttr.outcome", result)
                    return MeetingResult(result)
                except TtrError as exc:
                    self.errors += 1
                    sp.set_attribute("ttr.outcome", "error")
                    sp.set_attribute("ttr.error.type", type(exc).__name__)
                    return encode_error(exc)

    async def flush(self) -> bool:
        """Export buffered spans and metrics (the supervisor calls this before stopping us)."""
        from runtime.telemetry import flush_telemetry

        await asyncio.to_thread(flush_telemetry)
        return True

    async def health(self) -> MeetingsHealth:
        calls = {}
        if self.service is not None:   # its AWS client exists (and botocore is loaded) once it has worked
            from runtime.adapters.aws import call_counts

            calls = call_counts()
        return MeetingsHealth(calls=self.calls, errors=self.errors, pid=os.getpid(), aws_calls=calls)


MeetingCoordinator = ray.remote(**MEETINGS_ACTOR_OPTIONS)(MeetingsWorker)
