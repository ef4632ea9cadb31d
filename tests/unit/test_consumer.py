"""The message pump (runtime/services/consumer.py) without Ray, against the in-memory Queue: acks in
batches, backoff on retry, the tenant's pause, a heartbeat only while a message is in flight,
nothing but the long poll while idle, and a drain that releases what it could not finish."""

from __future__ import annotations

import asyncio
import threading
import time

from runtime.services.consumer import MessagePump, PumpSettings
from runtime.services.handler import Outcome
from runtime.testing.memory_queue import MemoryQueue

FAST = PumpSettings(concurrency=4, poll_wait=1, visibility=30, heartbeat_every=0.2, ack_linger=0.05,
                    gauge_every=3600.0, receive_error_wait=0.05)


def run(coro):
    return asyncio.run(coro)


async def until(cond, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def test_outcomes_are_classified_in_one_place():
    assert Outcome(ack=True).kind == "success"
    assert Outcome(ack=True, rejected=["rejected/x.json"]).kind == "rejected"
    assert Outcome(ack=False, retry_after=5).kind == "retry"


def test_handled_messages_are_acked_in_batches():
    q = MemoryQueue()
    for i in range(25):
        q.send(f"body {i}")

    async def main():
        pump = MessagePump(q, lambda m: Outcome(ack=True, emails_sent=1), tenant="t", settings=FAST)
        pump.start()
        await until(lambda: len(q) == 0, 10, "every message deleted")
        await pump.drain(2)
        return pump

    pump = run(main())
    deletes = [c[1] for c in q.calls if c[0] == "delete_batch"]
    assert sum(len(d) for d in deletes) == 25 and all(len(d) <= 10 for d in deletes)
    assert len(deletes) < 25, "acks were not batched"
    assert (pump.stats.received, pump.stats.acked, pump.stats.emails_sent) == (25, 25, 25)
    assert pump.window.snapshot()   # outcomes counted per minute


def test_a_retry_sets_the_backoff_and_keeps_the_message():
    q = MemoryQueue()
    mid = q.send("fails")

    async def main():
        pump = MessagePump(q, lambda m: Outcome(ack=False, retry_after=120, error="RetryableError: s3 down"),
                           tenant="t", settings=FAST)
        pump.start()
        await until(lambda: pump.stats.retried == 1, 5, "the retry")
        await pump.drain(2)
        return pump

    started = time.time()
    pump = run(main())
    assert ("set_visibility", f"{mid}#1", 120) in q.calls
    assert len(q) == 1 and q.visible_at(mid) >= started + 119       # kept, hidden for the backoff
    assert q.count("delete_batch") == 0
    assert pump.last_error == "RetryableError: s3 down" and pump.stats.errors == 1


def test_a_paused_tenant_stops_receiving_until_the_pause_ends():
    q = MemoryQueue()
    q.send("ses paused")
    receives_at_pause: list[int] = []

    def handle(m):
        if m.receive_count == 1:
            receives_at_pause.append(q.count("receive"))
            return Outcome(ack=False, retry_after=0, pause_tenant=1.0, error="TenantPaused: SendingPaused")
        return Outcome(ack=True)

    async def main():
        pump = MessagePump(q, handle, tenant="t", settings=FAST)
        pump.start()
        await until(lambda: pump.paused_until > 0, 5, "the pause")
        paused_at = time.time()
        await asyncio.sleep(0.6)
        during = q.count("receive") - receives_at_pause[0]
        await until(lambda: len(q) == 0, 5, "the message handled after the pause")
        await pump.drain(2)
        return during, time.time() - paused_at

    during, waited = run(main())
    # at most the long poll that was already waiting when the pause began
    assert during <= 1, f"{during} receives while paused"
    assert waited >= 0.9


def test_a_message_in_flight_gets_heartbeats_and_an_idle_pump_gets_none():
    q = MemoryQueue()
    release = threading.Event()

    def slow(m):
        release.wait(5)
        return Outcome(ack=True)

    async def main():
        pump = MessagePump(q, slow, tenant="t", settings=FAST)
        pump.start()
        await asyncio.sleep(0.7)                       # idle: only long polls
        idle_calls = [c[0] for c in q.calls]
        mid = q.send("slow")
        await until(lambda: pump.inflight, 3, "the message in flight")
        await asyncio.sleep(0.7)
        beats = [c for c in q.calls if c[0] == "set_visibility" and c[1].startswith(mid)]
        release.set()
        await until(lambda: len(q) == 0, 5, "the ack")
        n = q.count("set_visibility")
        await asyncio.sleep(0.5)                       # the heartbeat ended with the message
        after = q.count("set_visibility")
        await pump.drain(2)
        return idle_calls, beats, n, after

    idle_calls, beats, n, after = run(main())
    assert set(idle_calls) == {"receive"} and len(idle_calls) <= 2, idle_calls
    assert len(beats) >= 2 and all(c[2] == 30 for c in beats), beats
    assert after == n


def test_an_idle_pump_only_long_polls_and_refreshes_depths_rarely():
    q, dlq = MemoryQueue(), MemoryQueue(name="dlq")
    settings = PumpSettings(concurrency=4, poll_wait=1, gauge_every=1.5)

    async def main():
        pump = MessagePump(q, lambda m: Outcome(ack=True), tenant="t", settings=settings, dlq=dlq)
        pump.start()
        await asyncio.sleep(3.3)
        await pump.drain(2)

    run(main())
    ops = [c[0] for c in q.calls]
    assert ops.count("receive") <= 4                   # one per second of long poll
    assert 1 <= ops.count("depth") <= 2 and dlq.count("depth") == ops.count("depth")
    assert set(ops) == {"receive", "depth"}


def test_drain_finishes_what_it_can_and_releases_the_rest():
    q = MemoryQueue()
    for i in range(3):
        q.send(f"m{i}")
    block = threading.Event()

    def handle(m):
        if m.body == "m0":
            return Outcome(ack=True)
        block.wait(3)
        return Outcome(ack=True)

    async def main():
        pump = MessagePump(q, handle, tenant="t", settings=FAST)
        pump.start()
        await until(lambda: pump.stats.acked == 1 and len(pump.inflight) == 2, 5, "one done, two in flight")
        released, unfinished = await pump.drain(0.3)
        block.set()
        return pump, released, unfinished

    pump, released, unfinished = run(main())
    assert (released, unfinished) == (2, 2)
    assert [c[2] for c in q.calls if c[0] == "set_visibility" and c[2] == 0] == [0, 0]   # (others: heartbeats)
    assert not pump.running


def test_receive_errors_are_counted_and_polling_goes_on():
    q = MemoryQueue(fail_next={"receive": 2})
    q.send("after the errors")

    async def main():
        pump = MessagePump(q, lambda m: Outcome(ack=True), tenant="t", settings=FAST)
        pump.start()
        await until(lambda: len(q) == 0, 5, "the message, after two failed receives")
        await pump.drain(2)
        return pump

    pump = run(main())
    assert pump.stats.errors == 2 and pump.last_error.startswith("receive: injected receive failure")


def test_failed_deletes_are_counted_not_lost():
    q = MemoryQueue()
    mid = q.send("x")
    q.delete_refuses.add(f"{mid}#1")

    async def main():
        pump = MessagePump(q, lambda m: Outcome(ack=True), tenant="t", settings=FAST)
        pump.start()
        await until(lambda: pump.stats.delete_failures == 1, 5, "the failed delete")
        await pump.drain(2)
        return pump

    pump = run(main())
    assert pump.stats.acked == 1 and len(q) == 1   # it comes back; the handler finds nothing pending

