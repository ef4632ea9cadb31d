"""The Queue port's contract, run against both implementations: the SQS adapter on the moto server
over HTTP, and the in-memory queue (runtime/testing/memory_queue.py) the pump's tests use.

Outside the contract, on purpose: what a receipt from an earlier receive does (SQS may report
success and keep the message; moto deletes it; the memory queue reports it failed). The pump
always uses the newest receipt."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from runtime.domain.errors import TtrError
from runtime.testing.memory_queue import MemoryQueue

VISIBILITY = 30


@pytest.fixture(params=["sqs", "memory"])
def queue(request):
    if request.param == "memory":
        return MemoryQueue(visibility=VISIBILITY)
    from runtime.adapters.aws import AwsClients
    from runtime.adapters.sqs import SqsQueue

    emu = request.getfixturevalue("aws_emulator")
    clients = AwsClients("us-east-1", emu.endpoint_url)
    name = f"ttr-contract-{uuid.uuid4().hex[:12]}"
    clients.client("sqs").create_queue(QueueName=name, Attributes={"VisibilityTimeout": str(VISIBILITY)})
    return SqsQueue(clients, name)


def test_a_received_message_is_hidden_until_its_visibility_ends(queue):
    mid = queue.send("hello")
    [m] = queue.receive(10, 0)
    assert (m.message_id, m.body, m.receive_count) == (mid, "hello", 1)
    assert abs(m.sent_at - time.time()) < 10
    assert queue.receive(10, 0) == []
    assert queue.depth() == {"visible": 0, "in_flight": 1}


def test_visibility_zero_redelivers_with_a_new_receipt_and_a_higher_count(queue):
    queue.send("again")
    [first] = queue.receive(10, 0)
    queue.set_visibility(first.receipt, 0)
    assert queue.depth() == {"visible": 1, "in_flight": 0}
    [second] = queue.receive(10, 0)
    assert second.message_id == first.message_id and second.receipt != first.receipt
    assert second.receive_count == 2


def test_a_heartbeat_keeps_the_message_hidden(queue):
    queue.send("long work")
    [m] = queue.receive(10, 0)
    queue.set_visibility(m.receipt, VISIBILITY)
    assert queue.receive(10, 0) == []
    assert queue.depth()["in_flight"] == 1


def test_delete_batch_removes_and_reports_what_it_could_not_delete(queue):
    for i in range(3):
        queue.send(f"m{i}")
    got = queue.receive(10, 0)
    assert sorted(m.body for m in got) == ["m0", "m1", "m2"]
    assert queue.delete_batch([m.receipt for m in got] + ["not-a-receipt"]) == ["not-a-receipt"]
    assert queue.depth() == {"visible": 0, "in_flight": 0}
    assert queue.receive(10, 0) == []


def test_set_visibility_of_a_deleted_message_is_an_error(queue):
    queue.send("x")
    [m] = queue.receive(10, 0)
    assert queue.delete_batch([m.receipt]) == []
    with pytest.raises(TtrError):
        queue.set_visibility(m.receipt, 0)
    with pytest.raises(TtrError):
        queue.set_visibility("not-a-receipt", 0)


def test_receive_returns_at_most_ten_and_every_message_once(queue):
    bodies = {f"b{i}" for i in range(12)}
    for b in sorted(bodies):
        queue.send(b)
    first = queue.receive(12, 0)
    assert 1 <= len(first) <= 10
    seen = [m.body for m in first]
    deadline = time.monotonic() + 10
    while len(seen) < 12 and time.monotonic() < deadline:
        seen += [m.body for m in queue.receive(10, 0)]
    assert sorted(seen) == sorted(bodies)


def test_a_long_poll_returns_a_message_sent_while_it_waits(queue):
    timer = threading.Timer(0.3, queue.send, args=("late",))
    started = time.monotonic()
    timer.start()
    try:
        got = queue.receive(10, 5)
    finally:
        timer.join()
    assert [m.body for m in got] == ["late"]
    assert time.monotonic() - started < 4


def test_an_empty_long_poll_waits_then_returns_nothing(queue):
    started = time.monotonic()
    assert queue.receive(10, 1) == []
    assert time.monotonic() - started >= 0.9
