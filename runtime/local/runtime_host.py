"""Starting the Ray runtime from the embedded stack (the only place runtime/ reaches for actors/)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from runtime.domain.config import Config

# Where `ttr local up` and `ttr demo` leave the embedded runtime's Ray address for `ttr status`.
RAY_ADDRESS_FILE = Path(".ttr") / "ray-address"


def loopback_ray() -> None:
    """A private, single-machine Ray: every Ray socket on 127.0.0.1, no token auth.

    Ray reads these at import time, so this runs before anything imports ray. By default Ray
    binds to the node's primary IP (it expects other nodes); the embedded stack and the tests
    have none, and must not send traffic beyond loopback."""
    import os

    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def ray_address(address: str | None) -> str:
    """The Ray cluster to ask: ``--address``, else RAY_ADDRESS, else the embedded runtime's, else auto."""
    if address:
        return address
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"]
    if RAY_ADDRESS_FILE.exists():  # written by `ttr local up`
        return RAY_ADDRESS_FILE.read_text().strip()
    return "auto"


def _port_open(address: str, timeout: float = 2.0) -> bool:
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def ray_connection(address: str | None, namespace: str) -> Iterator[str]:
    """Connected to the runtime's Ray for the block: yields "" (inside a driver already, as in the
    tests and tools, it is reused), or why no cluster answers. Disconnects after, if it connected."""
    loopback_ray()
    import ray

    connected_here = not ray.is_initialized()
    target = ray_address(address)
    if connected_here and target != "auto" and not _port_open(target):
        yield f"no Ray cluster answers at {target}"
        return
    # Ray retries a dead GCS for a long time; a status command must answer promptly.
    os.environ.setdefault("RAY_gcs_server_port_wait_time_s", "5")
    if connected_here:
        try:
            ray.init(address=target, namespace=namespace, logging_level="ERROR", log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            yield f"no Ray cluster reachable ({type(exc).__name__}: {str(exc)[:160]})"
            return
    try:
        yield ""
    finally:
        if connected_here:
            ray.shutdown()


def start_runtime(cfg: Config, *, address: str | None = None, **kw):
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
