"""The supervisor (the ``ttr run`` process): creates the actors from config, keeps them running,
drains them on shutdown.

Ray restarts a crashed actor (``max_restarts=-1``); the supervisor notices the new incarnation
(or an actor that is not polling) and starts it again, and recreates an actor that is gone for
good. Restarts are counted.
"""

from __future__ import annotations

import logging
import os
import threading

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayError

from actors.alerter import ALERT_ACTOR_NAME, AlertActor
from actors.archive import ARCHIVE_ACTOR_NAME, ArchiveActor
from actors.customer import CustomerActor, customer_actor_name
from actors.feedback import FEEDBACK_ACTOR_NAME, FeedbackActor
from actors.meetings import MEETINGS_ACTOR_NAME, MeetingCoordinator
from actors.placement import Demand, check_fit, service_options, tenant_options
from actors.proxies import RENDERER_ACTOR_NAME, health_of
from actors.reconciler import RECONCILER_ACTOR_NAME, ReconcilerActor
from actors.renderer import RendererActor
from runtime.domain.config import Config
from runtime.services.orphans import DEFAULT_THRESHOLD_S
from runtime.telemetry import metrics, observe, setup_telemetry

log = logging.getLogger("ttr.supervisor")

DEFAULT_NAMESPACE = "ttr"
CHECK_EVERY = 5.0      # seconds between supervision passes (a probe per tenant: cheap)
PROBE_TIMEOUT = 10.0


# The forwarded variables (runtime.telemetry.forwarded_env) as they were when this process started
# a local Ray: its raylet, and every worker it starts, inherited them. None when this process
# joined a cluster (workers on other nodes inherit nothing from it) or started no Ray.
_inherited_env: dict[str, str] | None = None


def worker_env(current: dict[str, str], inherited: dict[str, str] | None) -> dict | None:
    """The ``runtime_env`` an actor needs so its worker sees ``current``; None when it inherits it.

    Not a detail: Ray starts a worker that has a ``runtime_env`` through ``setup_worker.py``, a
    second Python process that imports Ray's runtime-env code and then executes the worker, about
    0.45 s more CPU per worker (measured at 100 tenants, issue 11). A local Ray's workers inherit
    the variables they were started with, so only what changed since then needs forwarding."""
    if not current or current == inherited:
        return None
    return {"env_vars": dict(current)}


def init_ray(address: str | None = None, namespace: str = DEFAULT_NAMESPACE, cfg: Config | None = None) -> None:
    """Join ``address`` (``auto`` = the cluster on this node) or start a local Ray (sized by
    ``cfg.runtime`` when given)."""
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    if not address:
        # A private local Ray for the embedded stack and tests: token auth adds nothing there.
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        # The raylet starts this many worker processes at once (Ray's default: the CPU count).
        # Starting one is CPU-bound (Python, Ray, the tenant's imports): on 2 cores, 8 or 32 at
        # once made the last of 50 workers later than 2 or 4 (issue 11), so Ray's default stays
        # unless the config says otherwise.
        startup = cfg.runtime.worker_startup_concurrency if cfg is not None else None
        if startup:
            os.environ.setdefault("RAY_worker_maximum_startup_concurrency", str(startup))
    kwargs: dict = {"namespace": namespace, "logging_level": logging.WARNING, "log_to_driver": True}
    if address:
        ray.init(address=address, **kwargs)
    else:
        if cfg is not None and cfg.runtime.local_cpus:
            kwargs["num_cpus"] = cfg.runtime.local_cpus
        from runtime.telemetry import forwarded_env

        inherited = forwarded_env()
        ray.init(include_dashboard=False, **kwargs)
        global _inherited_env
        _inherited_env = inherited


class Runtime:
    def __init__(self, cfg: Config, *, namespace: str = DEFAULT_NAMESPACE, concurrency: int = 8,
                 poll_wait: int = 20, orphan_threshold_s: float = DEFAULT_THRESHOLD_S, orphan_interval_s: float = 60.0,
                 max_wakeups: int = 3, customer_cls=None, archive_cls=None, meetings_cls=None,
                 base_backoff: float | None = None, alert_interval_s: float | None = None,
                 fit_wait: float | None = 0.0):
        self.cfg = cfg
        self.fit_wait = fit_wait  # seconds check_fit waits for nodes to join (None: $TTR_CLUSTER_WAIT)
        self.namespace = namespace
        self.concurrency = concurrency
        self.poll_wait = poll_wait
        # Every actor gets this parsed Config (pickled once per call; no re-validation over there).
        self.cfg_data = cfg
        self.archive = None
        self.meetings = None
        self.reconciler = None
        self.alerter = None
        self.feedback = None
        self.renderer = None
        self.alert_interval_s = alert_interval_s
        self.orphan_opts = {"threshold_s": orphan_threshold_s, "interval_s": orphan_interval_s,
                            "max_wakeups": max_wakeups}
        # Actor classes are parameters so a test harness can run subclasses with fault seams.
        self.customer_cls = customer_cls or CustomerActor
        self.archive_cls = archive_cls or ArchiveActor
        self.meetings_cls = meetings_cls or MeetingCoordinator
        self.base_backoff = base_backoff
        self.customers: dict[str, ray.actor.ActorHandle] = {}
        self.incarnations: dict[str, str] = {}
        self.pending: list[str] = []       # tenants that did not start in time (supervision retries)
        self.restarts: dict[str, int] = {}
        self.last_check: dict[str, dict] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- actors --------------------------------------------------------------------------------
    def _opts(self, name: str) -> dict:
        from runtime.telemetry import forwarded_env

        opts = {"name": name, "namespace": self.namespace, "get_if_exists": True, "lifetime": None}
        env = worker_env(forwarded_env(), _inherited_env)
        if env:  # workers on other nodes, or started before the variables changed, do not have them
            opts["runtime_env"] = env
        return opts

    def _create_customer(self, code: str):
        return self.customer_cls.options(**self._opts(customer_actor_name(code)),
                                         **tenant_options(self.cfg)).remote(
            self.cfg.tenant_view(code), code, self.namespace, concurrency=self.concurrency, poll_wait=self.poll_wait,
            base_backoff=self.base_backoff)

    def start(self) -> "Runtime":
        """Check that the actors fit (``ClusterTooSmall`` otherwise, before any is created), create
        them all at once, and wait until every tenant accepts work. A tenant that does not start
        within ``runtime.start_timeout_s`` is logged and left to the supervision loop: it never
        takes the others down."""
        check_fit(ray, Demand.of(self.cfg), wait=self.fit_wait)
        from runtime.adapters.aws_models import tenant_data_path

        tenant_data_path()  # the tenants' trimmed botocore data: generated once here, not by each tenant
        from runtime.emails import warm_template_cache

        warm_template_cache()  # the email templates: compiled once here, loaded by the renderer actor
        svc = service_options(self.cfg)
        self.archive = self.archive_cls.options(**self._opts(ARCHIVE_ACTOR_NAME), **svc).remote(self.cfg_data)
        self.meetings = self.meetings_cls.options(**self._opts(MEETINGS_ACTOR_NAME), **svc).remote(
            self.cfg_data, self.namespace)
        self.reconciler = ReconcilerActor.options(**self._opts(RECONCILER_ACTOR_NAME), **svc).remote(
            self.cfg_data, **self.orphan_opts)
        self.alerter = AlertActor.options(**self._opts(ALERT_ACTOR_NAME), **svc).remote(
            self.cfg_data, self.namespace, interval_s=self.alert_interval_s)
        self.feedback = FeedbackActor.options(**self._opts(FEEDBACK_ACTOR_NAME), **svc).remote(
            self.cfg_data, self.namespace, poll_wait=self.poll_wait)
        self.renderer = RendererActor.options(**self._opts(RENDERER_ACTOR_NAME), **svc).remote()
        for c in self.cfg.customers:
            self.customers[c.code] = self._create_customer(c.code)
        self.restarts = {code: 0 for code in self.customers}
        timeout = self.cfg.runtime.start_timeout_s
        services = {self.archive.health.remote(): ARCHIVE_ACTOR_NAME, self.meetings.health.remote(): MEETINGS_ACTOR_NAME,
                    self.reconciler.start.remote(): RECONCILER_ACTOR_NAME,
                    self.feedback.start.remote(): FEEDBACK_ACTOR_NAME, self.renderer.health.remote(): RENDERER_ACTOR_NAME}
        starts = {a.start.remote(): code for code, a in self.customers.items()}
        done, _ = _wait_all([*services, *starts], timeout)
        failed_services = [name for ref, name in services.items() if ref not in done or _failed(ref)]
        if failed_services:
            from runtime.domain.errors import PermanentError

            self.shutdown(timeout=1)
            raise PermanentError(f"the runtime's {', '.join(failed_services)} actor(s) did not start within "
                                 f"{timeout:g}s (runtime.start_timeout_s); `ray status` shows what Ray waits for",
                                 operation="ray.start")
        for ref, code in starts.items():
            if ref in done and not _failed(ref):
                self.incarnations[code] = ray.get(ref)
        self.pending = sorted(set(self.customers) - set(self.incarnations))
        # once the tenants run, so its first pass reports no false "all processors down"
        try:
            ray.get(self.alerter.start.remote(), timeout=60)
        except RayError as exc:
            log.error("the alert actor did not start: %s (supervision retries it)", type(exc).__name__)
        if self.pending:
            log.error("tenant(s) %s did not start within %gs; the others run, and supervision keeps trying them",
                      ", ".join(self.pending), timeout)
        log.info("runtime started: %d of %d tenant actor(s) in namespace %s", len(self.incarnations),
                 len(self.customers), self.namespace)
        return self

    def check(self) -> dict[str, dict]:
        """One supervision pass: a cheap probe of every tenant actor at once; restart what needs it."""
        report: dict[str, dict] = {}
        for loop in (self.alerter, self.feedback):
            # idempotent; after Ray restarted one of them, this starts its loop again
            if loop is not None and not self._stop.is_set():
                loop.start.remote()
        refs = {code: actor.probe.remote() for code, actor in list(self.customers.items())}
        ray.wait(list(refs.values()), num_returns=len(refs), timeout=PROBE_TIMEOUT)
        for code, ref in refs.items():
            try:
                p = ray.get(ref, timeout=0)
            except (RayActorError, GetTimeoutError, RayError) as exc:
                report[code] = {"ok": False, "error": type(exc).__name__}
                if isinstance(exc, RayActorError) and not self._alive(code):
                    log.error("tenant %s: actor is gone; recreating it", code)
                    self.customers[code] = self._create_customer(code)
                    self.restarts[code] += 1
                    metrics().actor_restarts.add(1, {"tenant": code})
                continue
            if p.incarnation != self.incarnations.get(code) or not p.running:
                if code in self.incarnations and p.incarnation != self.incarnations[code]:
                    self.restarts[code] += 1
                    metrics().actor_restarts.add(1, {"tenant": code})
                    log.warning("tenant %s: actor restarted (incarnation %s)", code, p.incarnation)
                if not self._stop.is_set():
                    self.incarnations[code] = ray.get(self.customers[code].start.remote(), timeout=30)
                    if code in self.pending:
                        self.pending.remove(code)
                        log.info("tenant %s: started", code)
            report[code] = {"ok": True, "incarnation": self.incarnations.get(code), "restarts": self.restarts[code]}
        self.last_check = report
        return report

    def _alive(self, code: str) -> bool:
        try:
            ray.get_actor(customer_actor_name(code), namespace=self.namespace)
            return True
        except ValueError:
            return False

    def health(self) -> dict[str, dict]:
        """Every tenant actor's health (``TenantHealth`` as a dict, with ``ok`` and ``restarts``)."""
        return {code: {**health_of(actor), "restarts": self.restarts.get(code, 0)}
                for code, actor in self.customers.items()}

    # -- running -------------------------------------------------------------------------------
    def supervise_in_background(self) -> None:
        def loop():
            while not self._stop.wait(CHECK_EVERY):
                try:
                    self.check()
                except Exception:  # keep supervising whatever one pass did
                    log.exception("supervision pass failed")

        self._thread = threading.Thread(target=loop, name="ttr-supervisor", daemon=True)
        self._thread.start()

    def shutdown(self, timeout: float = 30.0) -> None:
        """Drain: stop polling, finish or release in-flight messages, then stop the actors."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        drains = {code: a.drain.remote(timeout) for code, a in self.customers.items()}
        for code, ref in drains.items():
            try:
                result = ray.get(ref, timeout=timeout + 15)
                log.info("tenant %s drained: %s", code, result)
            except RayError as exc:
                log.warning("tenant %s: drain failed: %s", code, type(exc).__name__)
        loops = [a for a in (self.reconciler, self.alerter, self.feedback) if a is not None]
        try:   # their loops end before they do (a task pending at exit is logged as an error)
            ray.get([a.stop.remote() for a in loops], timeout=10)
        except RayError as exc:
            log.warning("stopping the periodic loops failed: %s", type(exc).__name__)
        actors = [a for a in [*self.customers.values(), self.meetings, self.reconciler, self.alerter, self.feedback,
                                self.renderer, self.archive]
                  if a is not None]
        try:
            ray.get([a.flush.remote() for a in actors], timeout=15)
        except RayError as exc:
            log.warning("telemetry flush failed: %s", type(exc).__name__)
        for a in actors:
            if a is not None:
                try:
                    ray.kill(a, no_restart=True)
                except RayError:
                    pass
        self.customers.clear()
        self.archive = self.meetings = self.reconciler = self.alerter = self.feedback = self.renderer = None


def _wait_all(refs: list, timeout: float) -> tuple[set, set]:
    """(ready, not ready) after at most ``timeout`` seconds."""
    ready, rest = ray.wait(refs, num_returns=len(refs), timeout=timeout)
    return set(ready), set(rest)


def _failed(ref) -> bool:
    try:
        ray.get(ref, timeout=0)
        return False
    except RayError as exc:
        log.error("actor call failed at start: %s", exc)
        return True


def start_runtime(cfg: Config, *, address: str | None = None, namespace: str = DEFAULT_NAMESPACE,
                  **kw) -> Runtime:
    """Ray (local or joined), the actors, and the supervision loop in a background thread."""
    setup_telemetry("supervisor")
    init_ray(address, namespace, cfg)
    joined = bool(address or os.environ.get("RAY_ADDRESS"))
    # Joining a cluster: give worker nodes time to join before deciding; a local Ray is all there.
    kw.setdefault("poll_wait", cfg.runtime.poll_wait_s)
    rt = Runtime(cfg, namespace=namespace, fit_wait=None if joined else 0.0, **kw).start()
    observe("ttr.actors", lambda: [(sum(1 for r in rt.last_check.values() if r.get("ok")), {})],
            description="healthy CustomerActors")
    rt.supervise_in_background()
    return rt
