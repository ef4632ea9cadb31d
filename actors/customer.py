"""CustomerActor: one per tenant, long-lived, named ``customer:{code}``.

It owns the tenant's assumed-role SES session (no other actor holds tenant credentials) and its
Ray methods; the message pump (poll, heartbeat, ack batching, backoff, pause) is
``runtime.services.consumer.MessagePump`` and what happens to a message is ``runtime.services.handler``'s.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from dataclasses import asdict

import ray

from actors.messages import (
    AttendeesRequest,
    AttendeesResult,
    DrainResult,
    ErrorData,
    Probe,
    SuppressionChanged,
    TenantHealth,
    encode_error,
    tenant_config_of,
)
from actors.proxies import customer_actor_name  # noqa: F401 - re-exported: the name's old home
from runtime.domain.errors import TtrError

log = logging.getLogger("ttr.customer")


def _release_memory() -> None:
    """Give back what construction only needed for a moment (botocore parses large service
    models): a collection, then glibc's malloc_trim, which returns freed heap pages to the OS.
    A tenant lives long and mostly waits; the pages it keeps are its cost per tenant.

    Only the young generations are collected: what construction left as cyclic garbage is there,
    and a full collection walks every object of the worker (Ray's included) for nothing (measured:
    35 ms of CPU per tenant, the same USS afterwards)."""
    import ctypes
    import gc

    gc.collect(1)
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def _memory() -> tuple[int, int]:
    """(RSS, USS) of this process in bytes; USS is what it alone holds (what a tenant costs)."""
    try:
        import psutil

        info = psutil.Process().memory_full_info()
        return info.rss, info.uss
    except Exception:  # psutil is a declared dependency; a platform without it reports nothing
        return 0, 0


def _spawned_at() -> float:
    try:
        import psutil

        return psutil.Process().create_time()
    except Exception:  # psutil comes with ray[default]
        return 0.0


def _node_stats() -> dict:
    try:
        import psutil
        import ray

        return {"node_id": ray.get_runtime_context().get_node_id(), "cpu_pct": psutil.cpu_percent(None),
                "memory_pct": psutil.virtual_memory().percent}
    except Exception:  # psutil is a declared dependency; a platform without it reports nothing
        return {}


CUSTOMER_ACTOR_OPTIONS = {"num_cpus": 0.01, "max_restarts": -1, "max_task_retries": 0, "max_concurrency": 32}


class CustomerWorker:
    def __init__(self, tenant_cfg, code: str, namespace: str, *, concurrency: int = 8,
                 poll_wait: int = 20, base_backoff: float | None = None):
        self.init_started_at = time.time()
        self.cpu_at_init = time.process_time()
        from actors.proxies import ActorArchiveWriter, ActorMeetings, ActorRenderer
        from runtime.adapters.aws import AwsClients
        from runtime.adapters.aws_models import tenant_data_path
        from runtime.adapters.s3 import S3ObjectStore
        from runtime.adapters.ses import TenantSes
        from runtime.adapters.sqs import SqsQueue
        from runtime.services.consumer import MessagePump, PumpSettings
        from runtime.services.handler import TriggerHandler
        from runtime.telemetry import observe, setup_telemetry

        setup_telemetry("customer")
        self.cfg = tenant_config_of(tenant_cfg, code)  # its own customer's view: no pydantic in a tenant
        self.code = code
        self.customer = self.cfg.customer(code)
        # botocore data cut to the operations a tenant calls (runtime/adapters/aws_models.py)
        self.clients = clients = AwsClients(self.cfg.region, self.cfg.aws_endpoint_url, data_path=tenant_data_path())
        self.store = S3ObjectStore(clients, self.cfg.bucket)
        self.queue = SqsQueue(clients, self.customer.queue_name)
        self.ses = TenantSes(clients, self.cfg, self.customer)
        self.handler = TriggerHandler(cfg=self.cfg, customer=self.customer, store=self.store, mailer=self.ses,
                                      archive=ActorArchiveWriter(namespace),
                                      meetings=ActorMeetings(namespace), renderer=ActorRenderer(namespace),
                                      base_backoff=base_backoff)
        self.pump = MessagePump(self.queue, self.handler.handle, tenant=code,
                                dlq=SqsQueue(clients, self.customer.dlq_name, resolve=False),
                                settings=PumpSettings(concurrency=max(1, concurrency), poll_wait=poll_wait))
        self.incarnation = uuid.uuid4().hex[:12]
        self.started_at = time.time()
        tenant = {"tenant": code}
        observe("ttr.queue.depth", lambda: [(self.pump.depths["visible"], tenant)])
        observe("ttr.queue.in_flight", lambda: [(len(self.pump.inflight), tenant)])
        observe("ttr.dlq.depth", lambda: [(self.pump.depths["dlq"], tenant)])
        _release_memory()
        self.cpu_at_constructed = time.process_time()

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> str:
        if not self.pump.running:
            self.pump.start()
            log.info("tenant %s: polling %s (concurrency %d)", self.code, self.queue.name, self.pump.s.concurrency)
        return self.incarnation

    async def probe(self) -> Probe:
        return Probe(self.incarnation, self.pump.running)

    async def drain(self, timeout: float = 30.0) -> DrainResult:
        """Stop polling, let in-flight messages finish (up to ``timeout``), release the rest."""
        released, unfinished = await self.pump.drain(timeout)
        log.info("tenant %s: drained (%d released)", self.code, released)
        return DrainResult(released, unfinished)

    async def flush(self) -> bool:
        """Export buffered spans and metrics (the supervisor calls this before stopping us)."""
        from runtime.telemetry import flush_telemetry

        await asyncio.to_thread(flush_telemetry)
        return True

    async def health(self) -> TenantHealth:
        from runtime.adapters.aws import call_counts

        p = self.pump
        now = time.time()
        running = [now - t for t in p.started_work.values()]
        recent = [d for t, d in p.durations if now - t < 3600]
        rss, uss = _memory()
        return TenantHealth(
            code=self.code, pid=os.getpid(), incarnation=self.incarnation, running=p.running,
            started_at=self.started_at, in_flight=len(p.inflight), paused_until=p.paused_until,
            **asdict(p.stats), last_error=p.last_error, last_error_at=p.last_error_at,
            longest_running_s=max(running, default=0.0), max_duration_s=max(recent, default=0.0),
            assume_role_calls=self.ses.assume_role_calls, rss=rss, uss=uss, depths=dict(p.depths),
            window=p.window.snapshot(), deletes=self.handler.deletes.snapshot(), durations=tuple(p.durations[-500:]),
            aws_calls=call_counts(), node=_node_stats(), spawned_at=_spawned_at(),
            init_started_at=self.init_started_at, cpu_at_init=self.cpu_at_init,
            cpu_at_constructed=self.cpu_at_constructed)

    async def suppression_changed(self, request: SuppressionChanged) -> bool:
        """A bounce or complaint was just recorded for this tenant (the FeedbackActor says so):
        the next delivery reads the suppression list again instead of its cached copy."""
        self.handler.forget_suppressed()
        log.info("tenant %s: suppression list changed (%d address(es))", self.code, len(request.addresses))
        return True

    async def calendar_recipients(self, request: AttendeesRequest) -> AttendeesResult | ErrorData:
        """This tenant's meeting attendees (aws-calendar, whitelist applied): credentials stay here."""
        from runtime.telemetry import span

        with span("customer.calendar_recipients", {"ttr.tenant": self.code}, carrier=request.trace):
            try:
                return AttendeesResult(tuple(await self.pump.io_call(self.handler.recipients, "aws-calendar")))
            except TtrError as exc:
                return encode_error(exc)


CustomerActor = ray.remote(**CUSTOMER_ACTOR_OPTIONS)(CustomerWorker)
