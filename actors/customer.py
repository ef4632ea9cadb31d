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


def customer_actor_name(code: str) -> str:
    return f"customer:{code}"


@ray.remote(num_cpus=0.1, max_restarts=-1, max_task_retries=0, max_concurrency=32)
class CustomerActor:
    def __init__(self, cfg_data: dict, code: str, namespace: str, *, concurrency: int = 8,
                 poll_wait: int = 10):
        from actors.proxies import ActorArchiveWriter, ActorMeetings
        from runtime.adapters.aws import AwsClients
        from runtime.adapters.s3 import S3ObjectStore
        from runtime.adapters.ses import TenantSes
        from runtime.adapters.sqs import SqsQueue
        from runtime.config import parse_config
        from runtime.handler import TriggerHandler
        from runtime.telemetry import setup_logging

        setup_logging()
        self.cfg = parse_config(cfg_data, cfg_data.get("source") or "<runtime>")
        self.code = code
        self.customer = self.cfg.customer(code)
        clients = AwsClients(self.cfg.region, self.cfg.aws_endpoint_url)
        self.store = S3ObjectStore(clients, self.cfg.bucket)
        self.queue = SqsQueue(clients, self.customer.queue_name)
        self.ses = TenantSes(clients, self.cfg, self.customer)
        self.handler = TriggerHandler(cfg=self.cfg, customer=self.customer, store=self.store, mailer=self.ses,
                                      archive=ActorArchiveWriter(namespace),
                                      meetings=ActorMeetings(namespace))
        self.concurrency = max(1, concurrency)
        self.poll_wait = poll_wait
        self.pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix=f"ttr-{code}")
        self.io = ThreadPoolExecutor(max_workers=4, thread_name_prefix=f"ttr-{code}-io")
        self.incarnation = uuid.uuid4().hex[:12]
        self.started_at = time.time()
        self.running = False
        self.inflight: dict[str, asyncio.Task] = {}
        self.to_delete: list[str] = []
        self.paused_until = 0.0
        self.tasks: list[asyncio.Task] = []
        self.stats = {"received": 0, "acked": 0, "retried": 0, "rejected": 0, "emails_sent": 0,
                      "emails_failed": 0, "steps": 0, "errors": 0, "delete_failures": 0}
        self.last_error = ""
        self.last_error_at = 0.0

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> str:
        if not self.running:
            self.running = True
            loop = asyncio.get_running_loop()
            self.tasks = [loop.create_task(self._poll()), loop.create_task(self._heartbeat()),
                          loop.create_task(self._deleter())]
            log.info("tenant %s: polling %s (concurrency %d)", self.code, self.queue.name, self.concurrency)
        return self.incarnation

    async def drain(self, timeout: float = 30.0) -> dict:
        """Stop polling, let in-flight messages finish (up to ``timeout``), release the rest."""
        self.running = False
        deadline = time.monotonic() + timeout
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

    async def health(self) -> dict:
        from runtime.adapters.aws import call_counts

        return {"code": self.code, "pid": os.getpid(), "rss": _rss(), "aws_calls": call_counts(), "incarnation": self.incarnation, "running": self.running,
                "in_flight": len(self.inflight), "paused_until": self.paused_until,
                "started_at": self.started_at, "assume_role_calls": self.ses.assume_role_calls,
                "last_error": self.last_error, "last_error_at": self.last_error_at, **self.stats}

    async def calendar_recipients(self) -> list[str]:
        """This tenant's meeting attendees (aws-calendar, whitelist applied): credentials stay here."""
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
                messages = await self._io(self.queue.receive, min(10, room), self.poll_wait)
            except TtrError as exc:
                self._error(f"receive: {exc}")
                await asyncio.sleep(2.0)
                continue
            for m in messages:
                self.stats["received"] += 1
                self.inflight[m.receipt] = asyncio.get_running_loop().create_task(self._run(m))

    async def _run(self, message) -> None:
        try:
            outcome = await asyncio.get_running_loop().run_in_executor(self.pool, self.handler.handle, message)
            self.stats["emails_sent"] += outcome.emails_sent
            self.stats["emails_failed"] += outcome.emails_failed
            self.stats["steps"] += len(outcome.steps_done)
            self.stats["rejected"] += len(outcome.rejected)
            if outcome.ack:
                self.to_delete.append(message.receipt)
                self.stats["acked"] += 1
            else:
                self.stats["retried"] += 1
                self._error(outcome.error)
                if outcome.pause_tenant:
                    self.paused_until = max(self.paused_until, time.time() + outcome.pause_tenant)
                try:
                    await self._io(self.queue.set_visibility, message.receipt, int(outcome.retry_after))
                except TtrError as exc:  # it comes back after the visibility timeout anyway
                    log.warning("tenant %s: could not set the retry delay: %s", self.code, exc)
        finally:
            self.inflight.pop(message.receipt, None)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_EVERY)
            for receipt in list(self.inflight):
                try:
                    await self._io(self.queue.set_visibility, receipt, VISIBILITY)
                except TtrError as exc:
                    log.warning("tenant %s: heartbeat failed: %s", self.code, exc)

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
