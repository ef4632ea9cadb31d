"""AlertActor: the alert rules, evaluated inside the runtime on ``alerting.interval_seconds``.

Each pass gathers what ``ttr status`` shows (``actors.observe.gather``: AWS and the actors'
health), evaluates ``configs/alerts.yaml`` (or ``alerting.rules``), and sends the notices the
pass owes (``runtime.domain.notices``: fire once, resolve once) to the configured sinks.
"""

from __future__ import annotations

import asyncio
import logging
import os

import ray

from actors.messages import AlertsHealth, config_of
from actors.periodic import PeriodicWorker
from actors.proxies import ALERT_ACTOR_NAME  # noqa: F401 - re-exported: the name's old home

log = logging.getLogger("ttr.alerts")


class AlertWorker(PeriodicWorker):
    def __init__(self, cfg_data, namespace: str, *, interval_s: float | None = None):
        from runtime.adapters.alert_sinks import build_sinks
        from runtime.adapters.aws import AwsClients
        from runtime.domain.alerts import load_alerts
        from runtime.domain.notices import AlertTracker, Dispatcher
        from runtime.telemetry import setup_telemetry

        setup_telemetry("alerts")
        # A pass calls ray.get (the actors' health, through actors.observe) in a worker thread, not
        # on the event loop; Ray's warning about blocking gets in async actors does not apply.
        os.environ["RAY_WARN_BLOCKING_GET_INSIDE_ASYNC"] = "0"
        self.cfg = config_of(cfg_data)
        self.namespace = namespace
        self.rules = load_alerts(self.cfg.alerting.rules)
        self.interval_s = interval_s or self.cfg.alerting.interval_seconds
        self.tracker = AlertTracker()
        self.dispatcher = Dispatcher(build_sinks(self.cfg, AwsClients(self.cfg.region, self.cfg.aws_endpoint_url)))
        self.passes = 0
        self.notices = 0
        self.last_error = ""
        self.nodes: dict[str, dict] = {}
        from runtime.telemetry import observe

        # each Ray node's CPU and memory, as the last pass saw them (the seed's "ECS CPU/memory")
        observe("ttr.node.cpu", lambda: [(n["cpu_pct"], {"node": k[:12]}) for k, n in self.nodes.items()],
                unit="%", description="Ray node CPU")
        observe("ttr.node.memory", lambda: [(n["memory_pct"], {"node": k[:12]}) for k, n in self.nodes.items()],
                unit="%", description="Ray node memory")

    async def _tick(self) -> None:
        try:
            await asyncio.to_thread(self.run_once)
        except Exception as exc:  # keep evaluating whatever one pass did
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("alert pass failed")

    def run_once(self) -> list[dict]:
        from actors.observe import gather
        from runtime.services.status import nodes
        from runtime.telemetry import metrics, span

        with span("alerts.pass"):
            st = gather(self.cfg, self.rules, namespace=self.namespace)
            self.nodes = nodes(st)
            notices = self.tracker.step(st.alerts)
            for n in notices:
                (log.warning if n.state == "firing" else log.info)("alert %s", n.text())
                metrics().alert_notices.add(1, {"alert": n.name, "state": n.state, "severity": n.severity})
            failed = self.dispatcher.deliver(notices)
            for sink, why in failed.items():
                log.error("alert sink %s failed: %s", sink, why)
        self.passes += 1
        self.notices += len(notices)
        self.last_error = "; ".join(f"{k}: {v}" for k, v in failed.items())
        return [n.to_json() for n in notices]

    async def health(self) -> AlertsHealth:
        return AlertsHealth(passes=self.passes, notices=self.notices, firing=self.tracker.firing(),
                            sent=dict(self.dispatcher.sent),
                            pending={s.name: len(self.dispatcher.pending[i]) for i, s in enumerate(self.dispatcher.sinks)},
                            interval_s=self.interval_s, last_error=self.last_error, pid=os.getpid())


AlertActor = ray.remote(num_cpus=0.05, max_restarts=-1, max_task_retries=0)(AlertWorker)
