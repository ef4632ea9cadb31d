"""FeedbackActor: every tenant's SES feedback queue, read inside the runtime (``runtime.services.feedback``).

One actor for all tenants (feedback is light): a polling task per tenant, each long-polling its
own queue, so one tenant's trouble does not hold up another's. It holds no tenant credentials:
the queues and the bucket are the management account's.
"""

from __future__ import annotations

import asyncio
import logging

import ray

from actors.messages import FeedbackHealth, config_of
from actors.proxies import FEEDBACK_ACTOR_NAME  # noqa: F401 - re-exported: the name's old home

log = logging.getLogger("ttr.feedback")
RETRY_AFTER = 5.0


class FeedbackWorker:
    def __init__(self, cfg_data, namespace: str = "ttr", *, poll_wait: int = 10):
        from runtime.adapters.aws import AwsClients
        from runtime.adapters.s3 import S3ObjectStore
        from runtime.telemetry import setup_telemetry

        setup_telemetry("feedback")
        self.cfg = config_of(cfg_data)
        self.clients = AwsClients(self.cfg.region, self.cfg.aws_endpoint_url)
        self.store = S3ObjectStore(self.clients, self.cfg.bucket)
        self.namespace = namespace
        self.poll_wait = poll_wait
        self.consumers: dict = {}
        self.tasks: dict[str, asyncio.Task] = {}
        self.errors: dict[str, str] = {}

    def _consumer(self, code: str):
        from runtime.adapters.sqs import SqsQueue
        from runtime.services.feedback import FeedbackConsumer, feedback_topic_arn

        if code not in self.consumers:
            c = self.cfg.customer(code)
            queue = SqsQueue(self.clients, c.feedback_queue_name)
            topic = feedback_topic_arn(c, queue.arn())
            self.consumers[code] = FeedbackConsumer(code, c.account_id, queue, self.store, topic_arn=topic)
        return self.consumers[code]

    async def start(self) -> bool:
        for c in self.cfg.customers:
            if c.code not in self.tasks:
                self.tasks[c.code] = asyncio.get_running_loop().create_task(self._loop(c.code))
        return True

    async def stop(self) -> bool:
        """End the polling loops (before the supervisor stops the actor; see actors.periodic). A
        poll already handed to a thread finishes there; what it did not delete comes back."""
        from actors.periodic import cancel_tasks

        tasks, self.tasks = list(self.tasks.values()), {}
        await cancel_tasks(tasks)
        return True

    async def _loop(self, code: str) -> None:
        while True:
            try:
                consumer = await asyncio.to_thread(self._consumer, code)
                recorded = await asyncio.to_thread(consumer.poll_once, self.poll_wait)
                self.errors.pop(code, None)
                suppressed = tuple(e.recipient for e in recorded if e.suppresses)
                if suppressed:
                    await self._tell(code, suppressed)
            except Exception as exc:  # a missing queue, a network problem: say so, try again
                msg = f"{type(exc).__name__}: {exc}"
                if self.errors.get(code) != msg:
                    log.warning("tenant %s: feedback queue: %s", code, msg)
                self.errors[code] = msg
                await asyncio.sleep(RETRY_AFTER)

    async def _tell(self, code: str, addresses: tuple[str, ...]) -> None:
        """The tenant caches its suppression list: tell it at once. If it is down, the list is
        read fresh when it starts; if the call fails otherwise, its cache expires on its own."""
        from actors.proxies import tell_suppression_changed
        from runtime.domain.errors import TtrError

        try:
            await tell_suppression_changed(code, self.namespace, addresses)
        except TtrError as exc:
            log.warning("tenant %s: could not tell it about %d new suppression(s): %s", code, len(addresses), exc)

    async def flush(self) -> bool:
        from runtime.telemetry import flush_telemetry

        await asyncio.to_thread(flush_telemetry)
        return True

    async def health(self) -> FeedbackHealth:
        return FeedbackHealth(tenants={code: dict(c.counts) for code, c in self.consumers.items()},
                              errors=dict(self.errors))


FeedbackActor = ray.remote(num_cpus=0.05, max_restarts=-1, max_task_retries=0)(FeedbackWorker)
