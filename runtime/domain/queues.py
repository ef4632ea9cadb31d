"""Facts about each customer's queue that provisioning sets and the consumer relies on."""

from __future__ import annotations

# Seconds a received message stays hidden: provisioning sets it on every queue, and the consumer
# extends a message in flight by as much on each heartbeat.
VISIBILITY_TIMEOUT = 60

# Receives before SQS moves a message to the customer's DLQ (the queue's redrive policy).
MAX_RECEIVE_COUNT = 5
