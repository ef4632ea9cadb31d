"""ReconcilerActor: the orphan reconciler, inside the runtime (``runtime.services.orphans``)."""

from __future__ import annotations

import asyncio
import logging
import os

import ray

from actors.messages import ReconcilerHealth, config_of
from actors.periodic import PeriodicWorker
from actors.proxies import RECONCILER_ACTOR_NAME  # noqa: F401 - re-exported: the name's old home
from runtime.domain.errors import TtrError

log = logging.getLogger("ttr.orphans")


class ReconcilerWorker(PeriodicWorker):
    def __init__(self, cfg_data, *, threshold_s: float, interval_s: float, max_wakeups: int):
        from runtime.adapters.aws import AwsClients
        from runtime.adapters.s3 import S3ObjectStore
        from runtime.adapters.sqs import SqsQueue
        from runtime.services.orphans import OrphanReconciler
        from runtime.telemetry import setup_telemetry

        setup_telemetry("reconciler")
        cfg = config_of(cfg_data)
        clients = AwsClients(cfg.region, cfg.aws_endpoint_url)
        queues = {c.code: SqsQueue(clients, c.queue_name) for c in cfg.customers}
        self.reconciler = OrphanReconciler(cfg, S3ObjectStore(clients, cfg.bucket), queues,
                                           threshold_s=threshold_s, max_wakeups=max_wakeups)
        self.interval_s = interval_s
        self.last: list[dict] = []
        self.passes = 0
        self.last_error = ""

    async def _tick(self) -> None:
        from runtime.telemetry import metrics, span

        with span("orphans.pass"):
            try:
                seen = await asyncio.to_thread(self.reconciler.run_once)
            except TtrError as exc:
                self.last_error = str(exc)
                log.warning("orphan pass failed: %s", exc)
                return
        self.passes += 1
        self.last = [o.to_json() for o in seen]
        for o in seen:
            metrics().orphans.add(1, {"tenant": o.customer, "action": o.action, "state": o.state})
            if o.state == "stuck":
                log.error("STUCK trigger %s: %d wake-ups did not help; pending %s — look at the DLQ of %s",
                          o.key, o.wakeups, o.pending, o.customer)
            elif o.action in ("woken", "deleted"):
                log.info("orphan %s: %s (age %.0fs, pending %s)", o.key, o.action, o.age_s, o.pending)

    async def run_now(self) -> list[dict]:
        seen = await asyncio.to_thread(self.reconciler.run_once)
        return [o.to_json() for o in seen]

    async def health(self) -> ReconcilerHealth:
        return ReconcilerHealth(passes=self.passes, totals=dict(self.reconciler.totals), last=tuple(self.last[-50:]),
                                last_error=self.last_error, pid=os.getpid())


ReconcilerActor = ray.remote(num_cpus=0.05, max_restarts=-1, max_task_retries=0)(ReconcilerWorker)
