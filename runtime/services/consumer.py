"""The message pump of one tenant: poll, heartbeat, ack batching, backoff and pause, over the
``Queue`` port. The CustomerActor runs one; tests run it against ``runtime.testing.memory_queue``.

    receive (long poll, up to ``concurrency`` in flight)
      -> handle (the TriggerHandler, in a worker thread) -> Outcome.kind
           success / rejected: ack (batched DeleteMessageBatch)
           retry: visibility = the outcome's backoff; pause the tenant when SES paused it

Nothing ticks while there is nothing to do: the long poll is the only wake-up of an idle tenant
(queue depths are refreshed after an empty poll, at most every ``gauge_every`` seconds); a
message in flight gets its own heartbeat that ends with it; acks wait at most ``ack_linger``
seconds for others to share their batch, and only when there is one.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

from runtime.domain.errors import TtrError
from runtime.domain.queues import VISIBILITY_TIMEOUT
from runtime.domain.windows import WindowCounter
from runtime.ports import Queue, QueueMessage

log = logging.getLogger("ttr.consumer")


@dataclass(frozen=True)
class PumpSettings:
    concurrency: int = 8          # messages handled at once
    poll_wait: int = 20           # seconds of an SQS long poll
    visibility: int = VISIBILITY_TIMEOUT  # the queue's visibility timeout (provisioning sets it)
    heartbeat_every: float = 20.0  # extend a message in flight this often
    ack_linger: float = 1.0       # an ack waits this long for others to share its batch (a late delete is harmless)
    gauge_every: float = 60.0     # queue and DLQ depth refresh, after an empty poll
    receive_linger: float = 0.2   # after a partial batch, let the next messages gather this long
    receive_error_wait: float = 2.0


@dataclass
class PumpStats:
    received: int = 0
    acked: int = 0
    retried: int = 0
    rejected: int = 0
    emails_sent: int = 0
    emails_failed: int = 0
    steps: int = 0
    errors: int = 0
    delete_failures: int = 0


class MessagePump:
    """``handle(message)`` is the synchronous handler (it returns a ``handler.Outcome``); it runs in
    a pool of ``concurrency`` threads, each message in its own copy of the context (so its spans
    belong to the message's trace)."""

    def __init__(self, queue: Queue, handle: Callable[[QueueMessage], object], *, tenant: str,
                 settings: PumpSettings = PumpSettings(), dlq: Queue | None = None,
                 clock: Callable[[], float] = time.time):
        self.queue, self.dlq, self.handle, self.tenant = queue, dlq, handle, tenant
        self.s = settings
        self.clock = clock
        self.pool = ThreadPoolExecutor(max_workers=max(1, settings.concurrency), thread_name_prefix=f"ttr-{tenant}")
        self.io = ThreadPoolExecutor(max_workers=4, thread_name_prefix=f"ttr-{tenant}-io")
        self.running = False
        self.inflight: dict[str, asyncio.Task] = {}
        self.started_work: dict[str, float] = {}
        self.to_delete: list[str] = []
        self.paused_until = 0.0
        self.stats = PumpStats()
        self.window = WindowCounter()        # outcomes per minute: success / retry / rejected
        self.durations: list[tuple[float, float]] = []  # (finished at, seconds), last hour
        self.depths = {"visible": 0, "in_flight": 0, "dlq": 0}
        self.last_error = ""
        self.last_error_at = 0.0
        self._poller: asyncio.Task | None = None
        self._flusher: asyncio.Task | None = None
        self._gauged_at = 0.0

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        if not self.running:
            self.running = True
            self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def drain(self, timeout: float) -> tuple[int, int]:
        """Stop polling, let in-flight messages finish (up to ``timeout``), release the rest.
        Returns (released, unfinished)."""
        self.running = False
        deadline = time.monotonic() + timeout
        if self._poller:  # the poll in progress ends within poll_wait and releases what it got
            await asyncio.wait([self._poller], timeout=self.s.poll_wait + 5)
        while self.inflight and time.monotonic() < deadline:
            await asyncio.wait(list(self.inflight.values()), timeout=max(0.0, deadline - time.monotonic()))
        released = 0
        for receipt in list(self.inflight):
            if await self._release(receipt):
                released += 1
        await self.flush_acks()
        return released, len(self.inflight)

    # -- the loop ----------------------------------------------------------------------------------
    async def io_call(self, fn, *args):
        """``fn(*args)`` in the pump's I/O threads (blocking AWS calls stay off the event loop)."""
        return await asyncio.get_running_loop().run_in_executor(self.io, fn, *args)

    async def _poll(self) -> None:
        while self.running:
            now = self.clock()
            if now < self.paused_until:
                # bounded like a poll, so a drain during a long pause is not kept waiting
                await asyncio.sleep(min(self.paused_until - now, self.s.poll_wait))
                continue
            room = self.s.concurrency - len(self.inflight)
            if room <= 0:
                await asyncio.wait(list(self.inflight.values()), return_when=asyncio.FIRST_COMPLETED)
                continue
            try:
                t0 = time.time_ns()
                messages = await self.io_call(self.queue.receive, min(10, room), self.s.poll_wait)
                t1 = time.time_ns()
            except TtrError as exc:
                self._error(f"receive: {exc}")
                await asyncio.sleep(self.s.receive_error_wait)
                continue
            if not self.running:
                # Drain began while this poll waited: hand these back at once, do not hide them.
                for m in messages:
                    await self._release(m.receipt)
                break
            for m in messages:
                self.stats.received += 1
                self.inflight[m.receipt] = asyncio.get_running_loop().create_task(self._run(m, (t0, t1)))
            if not messages and self.clock() - self._gauged_at >= self.s.gauge_every:
                await self.refresh_depths()
            elif 0 < len(messages) < room and self.s.receive_linger:
                # Messages trickle in (one trigger write each): polling again at once would fetch
                # them one receive each; a moment's wait lets the next receive take several.
                await asyncio.sleep(self.s.receive_linger)

    async def _run(self, message: QueueMessage, received: tuple[int, int]) -> None:
        from runtime.telemetry import metrics, span, tracer

        self.started_work[message.receipt] = started = self.clock()
        beat = asyncio.get_running_loop().create_task(self._heartbeat(message.receipt))
        if message.sent_at:
            metrics().message_age.record(max(0.0, started - message.sent_at), {"tenant": self.tenant})
        # One trace per message: the root starts when the receive that fetched it started.
        with span("ttr.message", {"ttr.tenant": self.tenant, "messaging.system": "aws_sqs",
                                  "messaging.message.id": message.message_id,
                                  "ttr.receive_count": message.receive_count},
                  kind="consumer", start_time=received[0]) as root:
            tracer().start_span("sqs.receive", start_time=received[0]).end(end_time=received[1])
            kind = "unknown"
            try:
                ctx = contextvars.copy_context()
                outcome = await asyncio.get_running_loop().run_in_executor(self.pool, ctx.run, self.handle, message)
                kind = outcome.kind
                await self._settle(message, outcome)
            finally:
                beat.cancel()
                root.set_attribute("ttr.outcome", kind)
                self.inflight.pop(message.receipt, None)
                self.started_work.pop(message.receipt, None)
                now = self.clock()
                self.durations.append((now, now - started))
                self.durations = [d for d in self.durations[-2000:] if now - d[0] < 3600]

    async def _settle(self, message: QueueMessage, outcome) -> None:
        """What the outcome means for the message and the tenant: the one place that decides."""
        from runtime.telemetry import span

        st = self.stats
        st.emails_sent += outcome.emails_sent
        st.emails_failed += outcome.emails_failed
        st.steps += len(outcome.steps_done)
        st.rejected += len(outcome.rejected)
        self.window.add(outcome.kind)
        if outcome.ack:
            with span("sqs.ack", {"ttr.batched": True}):
                self.ack(message.receipt)
            st.acked += 1
            return
        st.retried += 1
        self._error(outcome.error)
        if outcome.pause_tenant:
            self.paused_until = max(self.paused_until, self.clock() + outcome.pause_tenant)
        with span("sqs.retry_later", {"ttr.retry_after_s": outcome.retry_after}):
            try:
                await self.io_call(self.queue.set_visibility, message.receipt, int(outcome.retry_after))
            except TtrError as exc:  # it comes back after the visibility timeout anyway
                log.warning("tenant %s: could not set the retry delay: %s", self.tenant, exc)

    async def _heartbeat(self, receipt: str) -> None:
        """Keep one message hidden while it is handled; ends with it."""
        while True:
            await asyncio.sleep(self.s.heartbeat_every)
            try:
                await self.io_call(self.queue.set_visibility, receipt, self.s.visibility)
            except TtrError as exc:
                log.warning("tenant %s: heartbeat failed: %s", self.tenant, exc)

    async def _release(self, receipt: str) -> bool:
        try:
            await self.io_call(self.queue.set_visibility, receipt, 0)
            return True
        except TtrError as exc:
            log.warning("tenant %s: could not release a message: %s", self.tenant, exc)
            return False

    # -- acks --------------------------------------------------------------------------------------
    def ack(self, receipt: str) -> None:
        """Queue a delete: a full batch goes at once, else after ``ack_linger`` seconds."""
        self.to_delete.append(receipt)
        if len(self.to_delete) >= 10:
            asyncio.get_running_loop().create_task(self.flush_acks())
        elif self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.s.ack_linger)
        await self.flush_acks()

    async def flush_acks(self) -> None:
        while self.to_delete:
            batch, self.to_delete = self.to_delete[:10], self.to_delete[10:]   # SQS takes 10 a call
            try:
                failed = await self.io_call(self.queue.delete_batch, batch)
            except TtrError as exc:
                failed = batch
                log.warning("tenant %s: batch delete failed: %s", self.tenant, exc)
            if failed:
                # Redelivery is harmless (nothing is pending any more); count it.
                self.stats.delete_failures += len(failed)

    # -- gauges ------------------------------------------------------------------------------------
    async def refresh_depths(self) -> None:
        self._gauged_at = self.clock()
        try:
            d = await self.io_call(self.queue.depth)
            self.depths.update(visible=d["visible"], in_flight=d["in_flight"])
            if self.dlq is not None:
                self.depths["dlq"] = (await self.io_call(self.dlq.depth))["visible"]
        except TtrError as exc:
            log.warning("tenant %s: queue depth: %s", self.tenant, exc)

    def _error(self, text: str) -> None:
        self.stats.errors += 1
        self.last_error, self.last_error_at = text[:500], self.clock()
