"""CustomerActor: one per tenant, long-lived, named ``customer:{code}``.

It owns the tenant's assumed-role SES session (no other actor holds tenant credentials),
long-polls the tenant's queue in batches, runs up to ``concurrency`` messages at once through
``TriggerHandler`` (in threads: the work is blocking I/O), extends visibility while work runs,
and deletes handled messages in batches. Everything it decides comes from ``runtime``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import ray

from runtime.errors import TtrError

log = logging.getLogger("ttr.customer")

VISIBILITY = 60            # the queue's visibility timeout (bootstrap sets the same)
HEARTBEAT_EVERY = 20       # extend in-flight messages this often
DELETE_EVERY = 0.25        # seconds between batched deletes


def _rss() -> int:
    try:
        import psutil

        return psutil.Process().memory_info().rss
    except Exception:  # psutil comes with ray[default]; without it, report nothing
        return 0


def _node_stats() -> dict:
    try:
        import psutil

        import ray

        return {"node_id": ray.get_runtime_context().get_node_id(), "cpu_pct": psutil.cpu_percent(None),
                "memory_pct": psutil.virtual_memory().percent}
    except Exception:  # psutil comes with ray[default]
        return {}


def customer_actor_name(code: str) -> str:
    return f"customer:{code}"


CUSTOMER_ACTOR_OPTIONS = {"num_cpus": 0.1, "max_restarts": -1, "max_task_retries": 0, "max_concurrency": 32}


class CustomerWorker:
    def __init__(self, cfg_data: dict, code: str, namespace: str, *, concurrency: int = 8,
                 poll_wait: int = 10, base_backoff: float | None = None):
        from actors.proxies import ActorArchiveWriter, ActorMeetings
        from runtime.adapters.aws import AwsClients
        from runtime.adapters.s3 import S3ObjectStore
        from runtime.adapters.ses import TenantSes
        from runtime.adapters.sqs import SqsQueue
        from runtime.config import parse_config
        from runtime.handler import TriggerHandler
        from runtime.alerts import WindowCounter
        from runtime.telemetry import observe, setup_telemetry

        setup_telemetry("customer")
        self.cfg = parse_config(cfg_data, cfg_data.get("source") or "<runtime>")
        self.code = code
        self.customer = self.cfg.customer(code)
        self.clients = clients = AwsClients(self.cfg.region, self.cfg.aws_endpoint_url)
        self.store = S3ObjectStore(clients, self.cfg.bucket)
        self.queue = SqsQueue(clients, self.customer.queue_name)
        self.dlq = SqsQueue(clients, self.customer.dlq_name)
        self.ses = TenantSes(clients, self.cfg, self.customer)
        self.handler = TriggerHandler(cfg=self.cfg, customer=self.customer, store=self.store, mailer=self.ses,
                                      archive=ActorArchiveWriter(namespace),
                                      meetings=ActorMeetings(namespace), base_backoff=base_backoff)
        self.concurrency = max(1, concurrency)
        self.poll_wait = poll_wait
        self.pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix=f"ttr-{code}")
        self.io = ThreadPoolExecutor(max_workers=4, thread_name_prefix=f"ttr-{code}-io")
        self.incarnation = uuid.uuid4().hex[:12]
        self.started_at = time.time()
        self.running = False
        self.inflight: dict[str, asyncio.Task] = {}
        self.started_work: dict[str, float] = {}
        self.last_outcome: dict[str, str] = {}
        self.to_delete: list[str] = []
        self.paused_until = 0.0
        self.tasks: list[asyncio.Task] = []
        self.stats = {"received": 0, "acked": 0, "retried": 0, "rejected": 0, "emails_sent": 0,
                      "emails_failed": 0, "steps": 0, "errors": 0, "delete_failures": 0}
        self.last_error = ""
        self.last_error_at = 0.0
        self.window = WindowCounter()        # outcomes per minute: success/retry/rejected, delete_*
        self.durations: list[tuple[float, float]] = []  # (finished at, seconds), last hour
        self.depths = {"visible": 0, "in_flight": 0, "dlq": 0}
        tenant = {"tenant": code}
        observe("ttr.queue.depth", lambda: [(self.depths["visible"], tenant)])
        observe("ttr.queue.in_flight", lambda: [(len(self.inflight), tenant)])
        observe("ttr.dlq.depth", lambda: [(self.depths["dlq"], tenant)])

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> str:
        if not self.running:
            self.running = True
            loop = asyncio.get_running_loop()
            self.tasks = [loop.create_task(self._poll()), loop.create_task(self._heartbeat()),
                          loop.create_task(self._deleter()), loop.create_task(self._gauges())]
            log.info("tenant %s: polling %s (concurrency %d)", self.code, self.queue.name, self.concurrency)
        return self.incarnation

    async def drain(self, timeout: float = 30.0) -> dict:
        """Stop polling, let in-flight messages finish (up to ``timeout``), release the rest."""
        self.running = False
        deadline = time.monotonic() + timeout
        if self.tasks:  # the poll in progress ends within poll_wait and releases what it got
            await asyncio.wait([self.tasks[0]], timeout=self.poll_wait + 5)
        while self.inflight and time.monotonic() < deadline:
            await asyncio.wait(list(self.inflight.values()), timeout=max(0.0, deadline - time.monotonic()))
        released = 0
        for receipt in list(self.inflight):
            try:
                await self._io(self.queue.set_visibility, receipt, 0)
                released += 1
            except TtrError as exc:
                log.warning("tenant %s: could not release a message: %s", self.code, exc)
        await self._flush_deletes()
        for t in self.tasks:
            t.cancel()
        log.info("tenant %s: drained (%d released)", self.code, released)
        return {"released": released, "unfinished": len(self.inflight)}

    async def flush(self) -> bool:
        """Export buffered spans and metrics (the supervisor calls this before stopping us)."""
        from runtime.telemetry import flush_telemetry

        await asyncio.to_thread(flush_telemetry)
        return True

    async def health(self) -> dict:
        from runtime.adapters.aws import call_counts

        now = time.time()
        running = [now - t for t in self.started_work.values()]
        recent = [d for t, d in self.durations if now - t < 3600]
        return {"code": self.code, "pid": os.getpid(), "rss": _rss(), "aws_calls": call_counts(),
                "node": _node_stats(), "window": self.window.snapshot(), "depths": dict(self.depths),
                "deletes": self.handler.deletes.snapshot(),
                "longest_running_s": max(running, default=0.0), "durations": self.durations[-500:],
                "max_duration_s": max(recent, default=0.0), "incarnation": self.incarnation, "running": self.running,
                "in_flight": len(self.inflight), "paused_until": self.paused_until,
                "started_at": self.started_at, "assume_role_calls": self.ses.assume_role_calls,
                "last_error": self.last_error, "last_error_at": self.last_error_at, **self.stats}

    async def calendar_recipients(self, trace: dict | None = None) -> list[str]:
        """This tenant's meeting attendees (aws-calendar, whitelist applied): credentials stay here."""
        from runtime.telemetry import span

        with span("customer.calendar_recipients", {"ttr.tenant": self.code}, carrier=trace):
            return await self._io(self.handler.recipients, "aws-calendar")

    # -- loops ---------------------------------------------------------------------------------
    async def _io(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.io, fn, *args)

    async def _poll(self) -> None:
        while self.running:
            if time.time() < self.paused_until:
                await asyncio.sleep(min(1.0, self.paused_until - time.time()))
                continue
            room = self.concurrency - len(self.inflight)
            if room <= 0:
                await asyncio.wait(list(self.inflight.values()), return_when=asyncio.FIRST_COMPLETED)
                continue
            try:
                t0 = time.time_ns()
                messages = await self._io(self.queue.receive, min(10, room), self.poll_wait)
                t1 = time.time_ns()
            except TtrError as exc:
                self._error(f"receive: {exc}")
                await asyncio.sleep(2.0)
                continue
            if not self.running:
                # Drain began while this poll waited: hand these back at once, do not hide them.
                for m in messages:
                    try:
                        await self._io(self.queue.set_visibility, m.receipt, 0)
                    except TtrError as exc:
                        log.warning("tenant %s: could not release a message: %s", self.code, exc)
                break
            for m in messages:
                self.stats["received"] += 1
                self.inflight[m.receipt] = asyncio.get_running_loop().create_task(self._run(m, (t0, t1)))

    async def _run(self, message, received: tuple[int, int]) -> None:
        import contextvars

        from opentelemetry.trace import SpanKind

        from runtime.telemetry import metrics, span, tracer

        self.started_work[message.receipt] = time.time()
        if message.sent_at:
            metrics().message_age.record(max(0.0, time.time() - message.sent_at), {"tenant": self.code})
        # One trace per message: the root starts when the receive that fetched it started.
        with span("ttr.message", {"ttr.tenant": self.code, "messaging.system": "aws_sqs",
                                  "messaging.message.id": message.message_id,
                                  "ttr.receive_count": message.receive_count},
                  kind=SpanKind.CONSUMER, start_time=received[0]) as root:
            tracer().start_span("sqs.receive", start_time=received[0]).end(end_time=received[1])
            try:
                await self._handle(message, contextvars.copy_context())
            finally:
                root.set_attribute("ttr.outcome", self.last_outcome.get(message.receipt, "unknown"))
                self.last_outcome.pop(message.receipt, None)

    async def _handle(self, message, ctx) -> None:
        from runtime.telemetry import span

        started = time.time()
        try:
            # copy_context: the handler's spans (in a pool thread) belong to this message's trace
            outcome = await asyncio.get_running_loop().run_in_executor(self.pool, ctx.run, self.handler.handle,
                                                                       message)
            self.stats["emails_sent"] += outcome.emails_sent
            self.stats["emails_failed"] += outcome.emails_failed
            self.stats["steps"] += len(outcome.steps_done)
            self.stats["rejected"] += len(outcome.rejected)
            kind = "success" if outcome.ack and not outcome.rejected else ("rejected" if outcome.ack else "retry")
            self.window.add(kind)
            self.last_outcome[message.receipt] = kind
            if outcome.ack:
                with span("sqs.ack", {"ttr.batched": True}):
                    self.to_delete.append(message.receipt)
                self.stats["acked"] += 1
            else:
                self.stats["retried"] += 1
                self._error(outcome.error)
                if outcome.pause_tenant:
                    self.paused_until = max(self.paused_until, time.time() + outcome.pause_tenant)
                with span("sqs.retry_later", {"ttr.retry_after_s": outcome.retry_after}):
                    try:
                        await self._io(self.queue.set_visibility, message.receipt, int(outcome.retry_after))
                    except TtrError as exc:  # it comes back after the visibility timeout anyway
                        log.warning("tenant %s: could not set the retry delay: %s", self.code, exc)
        finally:
            self.inflight.pop(message.receipt, None)
            self.started_work.pop(message.receipt, None)
            now = time.time()
            self.durations.append((now, now - started))
            self.durations = [d for d in self.durations[-2000:] if now - d[0] < 3600]

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_EVERY)
            for receipt in list(self.inflight):
                try:
                    await self._io(self.queue.set_visibility, receipt, VISIBILITY)
                except TtrError as exc:
                    log.warning("tenant %s: heartbeat failed: %s", self.code, exc)

    async def _gauges(self) -> None:
        """Queue and DLQ depth every 30 s, for the metrics and `ttr status` alike."""
        while True:
            try:
                d = await self._io(self.queue.depth)
                self.depths.update(visible=d["visible"], in_flight=d["in_flight"])
                self.depths["dlq"] = (await self._io(self.dlq.depth))["visible"]
            except TtrError as exc:
                log.warning("tenant %s: queue depth: %s", self.code, exc)
            await asyncio.sleep(30)

    async def _deleter(self) -> None:
        while True:
            await asyncio.sleep(DELETE_EVERY)
            await self._flush_deletes()

    async def _flush_deletes(self) -> None:
        if not self.to_delete:
            return
        batch, self.to_delete = self.to_delete, []
        try:
            failed = await self._io(self.queue.delete_batch, batch)
        except TtrError as exc:
            failed = batch
            log.warning("tenant %s: batch delete failed: %s", self.code, exc)
        if failed:
            # Redelivery is harmless (nothing is pending any more); count it.
            self.stats["delete_failures"] += len(failed)

    def _error(self, text: str) -> None:
        self.stats["errors"] += 1
        self.last_error, self.last_error_at = text[:500], time.time()


CustomerActor = ray.remote(**CUSTOMER_ACTOR_OPTIONS)(CustomerWorker)
