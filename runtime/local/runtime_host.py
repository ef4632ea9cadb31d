"""Starting the Ray runtime from the embedded stack (the only place runtime/ reaches for actors/)."""

from __future__ import annotations

from runtime.domain.config import Config


def loopback_ray() -> None:
    """A private, single-machine Ray: every Ray socket on 127.0.0.1, no token auth.

    Ray reads these at import time, so this runs before anything imports ray. By default Ray
    binds to the node's primary IP (it expects other nodes); the embedded stack and the tests
    have none, and must not send traffic beyond loopback."""
    import os

    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def start_runtime(cfg: Config, *, address: str | None = None, **kw):
    import os

    if not (address or os.environ.get("RAY_ADDRESS")):
        loopback_ray()
    from actors.supervisor import start_runtime as _start

    return _start(cfg, address=address, **kw)


def default_telemetry_files(prefix: str) -> tuple[str, str]:
    """Unless the environment names them, traces and metrics go to JSON-lines files under .ttr/.
    Set before Ray starts, so every worker inherits them. Returns (traces, metrics) paths."""
    import os
    import time
    from pathlib import Path

    from runtime.telemetry import METRICS_FILE_ENV, TRACES_FILE_ENV

    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(".ttr").resolve()
    base.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault(TRACES_FILE_ENV, str(base / f"{prefix}-traces-{stamp}.jsonl"))
    os.environ.setdefault(METRICS_FILE_ENV, str(base / f"{prefix}-metrics-{stamp}.jsonl"))
    return os.environ[TRACES_FILE_ENV], os.environ[METRICS_FILE_ENV]
