"""``ttr local up``: the embedded stack in the foreground."""

from __future__ import annotations

import signal
import sys
import threading
from contextlib import ExitStack

from runtime.domain.config import Config
from runtime.local.aws_emulator import LOOPBACK, AwsEmulator, require_moto
from runtime.local.graph_emulator import GraphEmulator


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class LocalStack:
    """The emulators, bootstrapped; usable as a context manager (tests, demo) or in the foreground."""

    def __init__(self, cfg: Config, *, aws_port: int | None = None, graph_port: int | None = None):
        self.source_cfg = cfg
        self.aws = AwsEmulator(port=cfg.local.aws_port if aws_port is None else aws_port)
        self.graph = GraphEmulator(port=cfg.local.graph_port if graph_port is None else graph_port,
                                   organizer=cfg.graph.organizer)
        self.cfg = cfg
        self._stack = ExitStack()

    def start(self, *, quiet: bool = False) -> "LocalStack":
        from runtime.adapters.aws import AwsClients
        from runtime.provisioning.bootstrap import ensure_management, seed_customer_ses

        self._stack.enter_context(self.aws)
        self._stack.enter_context(self.graph)
        self.cfg = self.source_cfg.with_overrides(
            aws_endpoint_url=self.aws.endpoint_url,
            graph=self.source_cfg.graph.model_copy(update={"base_url": self.graph.base_url}))
        clients = AwsClients(self.cfg.region, self.cfg.aws_endpoint_url)
        report = None if quiet else (lambda step: _log(f"  {step}"))
        if not quiet:
            _log(f"AWS emulator (moto) on {self.aws.endpoint_url}, Graph emulator on {self.graph.base_url}; "
                 "bootstrapping:")
        ensure_management(self.cfg, clients, report=report)
        seed_customer_ses(self.cfg, clients, report=report)
        return self

    def stop(self) -> None:
        self._stack.close()

    def __enter__(self) -> "LocalStack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def warn_unreachable(cfg: Config, stack: LocalStack) -> None:
    """Say so when the configuration points other ttr commands somewhere the stack does not listen."""
    if cfg.aws_endpoint_url and cfg.aws_endpoint_url.rstrip("/") != stack.aws.endpoint_url:
        _log(f"warning: {cfg.source} points aws_endpoint_url at {cfg.aws_endpoint_url}, but the "
             f"emulator listens on {stack.aws.endpoint_url}; other ttr commands will not reach it")
    if cfg.graph.base_url.rstrip("/") != stack.graph.base_url:
        _log(f"warning: {cfg.source} points graph.base_url at {cfg.graph.base_url}, but the "
             f"Graph emulator listens on {stack.graph.base_url}; `ttr run` beside it will not reach it")


def with_portal_links(cfg: Config, portal_url: str) -> Config:
    """The configuration the runtime sends emails with: their links point where the portal listens."""
    return cfg.with_overrides(email=cfg.email.model_copy(update={"portal_base_url": portal_url}))


def wait_for_signal() -> None:
    stop = threading.Event()

    def handler(signum, frame):  # noqa: ARG001
        _log(f"received {signal.Signals(signum).name}, stopping")
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    while not stop.wait(0.5):
        pass


def start_local_portal(cfg: Config, port: int):
    """The web portal beside the emulators; prints its URL and the demo sign-ins."""
    from runtime.web import demo_logins, start_portal

    portal = start_portal(cfg, port)
    _log(f"portal: {portal.url}")
    for u in demo_logins(cfg):
        secret = f"password {u['password']}" if u["password"] else "(own password)"
        _log(f"  sign in as {u['username']:<8} {secret:<24} roles: {', '.join(u['roles'])}")
    return portal


def write_ray_address() -> None:
    """`ttr status` finds the embedded runtime's Ray through .ttr/ray-address."""
    import ray

    from runtime.local.runtime_host import RAY_ADDRESS_FILE

    RAY_ADDRESS_FILE.parent.mkdir(exist_ok=True)
    RAY_ADDRESS_FILE.write_text(ray.get_runtime_context().gcs_address + "\n")


def clear_ray_address() -> None:
    from runtime.local.runtime_host import RAY_ADDRESS_FILE

    RAY_ADDRESS_FILE.unlink(missing_ok=True)


def run_local_up(cfg: Config, *, emulators_only: bool) -> int:
    require_moto()
    stack = LocalStack(cfg)
    try:
        stack.start()
    except OSError as exc:
        _log(f"ttr: error: {exc}")
        return 1
    try:
        warn_unreachable(cfg, stack)
        parts = [f"aws={stack.aws.endpoint_url}", f"graph={stack.graph.base_url}", f"bucket={cfg.bucket}",
                 f"customers={','.join(cfg.customer_codes)}"]
        runtime = None
        portal = start_local_portal(stack.cfg, cfg.local.web_port)
        try:
            if not emulators_only:
                from runtime.local.runtime_host import default_telemetry_files, start_runtime

                traces, metrics_file = default_telemetry_files("local")
                _log(f"traces: {traces}\nmetrics: {metrics_file}")
                runtime = start_runtime(with_portal_links(stack.cfg, portal.url))
                parts.append("runtime=local-ray")
                write_ray_address()
            parts.append(f"portal={portal.url}")
            print("ready " + " ".join(parts), flush=True)
            wait_for_signal()
        finally:
            portal.stop()
            if runtime is not None:
                runtime.shutdown()
                clear_ray_address()
    finally:
        stack.stop()
    _log("stopped")
    return 0


__all__ = ["LocalStack", "run_local_up", "LOOPBACK"]
