"""Running the portal: uvicorn in a background thread (``start_portal``) or in the foreground."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

LOOPBACK = "127.0.0.1"


@dataclass
class PortalHandle:
    """A running portal. ``url`` is where it listens; ``stop()`` shuts it down (idempotent)."""

    url: str
    port: int
    server: object = field(repr=False)
    thread: threading.Thread = field(repr=False)

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)

    def __enter__(self) -> "PortalHandle":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_portal(cfg, port: int = 0, *, host: str = LOOPBACK, store=None, session_secret: str | None = None,
                 app=None, timeout: float = 15.0, **app_options) -> PortalHandle:
    """Serve the portal for ``cfg`` on ``host:port`` (0: a free port) from a background thread."""
    import uvicorn

    from runtime.web._app import create_app

    if app is None:
        app = create_app(cfg, store=store, session_secret=session_secret, **app_options)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            lifespan="off", server_header=False, timeout_graceful_shutdown=3,
                            # X-Forwarded-For is read by the portal, from web.trusted_proxies only
                            proxy_headers=False)
    server = uvicorn.Server(config)
    failed: list[BaseException] = []

    def run() -> None:
        try:
            server.run()
        except BaseException as exc:  # noqa: BLE001 - reported to the caller below
            failed.append(exc)

    thread = threading.Thread(target=run, name=f"ttr-portal-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if failed or not thread.is_alive():
            why = failed[0] if failed else "it exited"
            raise OSError(f"the web portal could not start on {host}:{port}: {why} "
                          "(is the port in use? change local.web_port or --port)")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise TimeoutError(f"the web portal did not start on {host}:{port} within {timeout:.0f}s")
        time.sleep(0.02)
    bound = port
    for s in getattr(server, "servers", []):
        for sock in getattr(s, "sockets", []):
            bound = sock.getsockname()[1]
            break
    shown = host if ":" not in host else f"[{host}]"
    return PortalHandle(url=f"http://{shown}:{bound}", port=bound, server=server, thread=thread)
