"""moto's server, in this process, on real HTTP: boto3 talks to it exactly as to AWS.

It runs in the process that starts it (``ttr local up``, ``ttr demo``, the test session), so that
process can also look at what moto keeps but does not serve over HTTP, such as the emails SES
"sent". Everything else (Ray workers, ``ttr`` commands) reaches it over HTTP only.
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError as exc:
            last = exc
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s: {last}")


@dataclass
class SentEmail:
    account: str
    region: str
    source: str
    to: tuple[str, ...]
    subject: str
    body: str                 # the HTML part (or the only part)
    raw: str = ""             # the whole MIME message, for emails sent as Raw content


LOCAL_EXTRA = ("the embedded AWS emulator needs moto, which is not installed (production images leave it "
               "out): pip install 'ttr[local]' (in a checkout: .venv/bin/pip install -e '.[local]'; `make demo` "
               "and `make test` install it)")


def require_moto() -> None:
    """A clear exit (1) instead of a traceback when the ``local`` extra is missing."""
    from runtime.domain.errors import TtrError

    try:
        import moto.server  # noqa: F401
    except ImportError:
        raise TtrError(LOCAL_EXTRA) from None


# moto's dispatcher looks up the backend for a request's host on every request, under one lock:
# ``get_backend_for_host`` lists moto's package folder (``os.listdir`` and an ``isdir`` per entry)
# and then tries every service's URL pattern, ~0.6 ms each time, about a quarter of moto's CPU
# per call here. The answer depends on the host alone (the folder and the patterns do not change
# while it runs), so the embedded emulator remembers it per host. tests/integration/
# test_emulator_dispatch.py holds moto to that: the remembered answer equals moto's own, and every
# service ttr uses is routed over HTTP.
HOSTS_REMEMBERED = 256   # hosts are "<service>.<region>.amazonaws.com": a handful in practice


def dispatcher_app():
    """moto's ``DomainDispatcherApplication``, with the host -> backend lookup remembered."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    class RememberingDispatcher(DomainDispatcherApplication):
        def __init__(self, create_app):
            super().__init__(create_app)
            self.backend_for_host: dict = {}

        def get_backend_for_host(self, host):
            # moto calls this with self.lock held: the dict needs no lock of its own
            try:
                return self.backend_for_host[host]
            except KeyError:
                backend = super().get_backend_for_host(host)
                if len(self.backend_for_host) < HOSTS_REMEMBERED:
                    self.backend_for_host[host] = backend
                return backend

    return RememberingDispatcher(create_backend_app)


class AwsEmulator:
    """moto's server (as its ThreadedMotoServer runs it: werkzeug, threaded, moto's request
    handler) bound to loopback, with the dispatcher above."""

    def __init__(self, port: int = 0, host: str = LOOPBACK):
        if host not in (LOOPBACK, "localhost", "::1"):
            raise ValueError("the AWS emulator only binds to loopback")
        self.host = host
        self.port = port or free_port()
        self._server = None
        self._thread: threading.Thread | None = None
        self.dispatcher = None   # moto's WSGI application, once started

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "AwsEmulator":
        import logging

        from moto.moto_server.werkzeug_app import MotoRequestHandler
        from werkzeug.serving import make_server

        # One line per request on stderr drowns everything else; keep warnings and errors.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)

        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((self.host, self.port))
        except OSError as exc:
            raise OSError(f"cannot start the AWS emulator on {self.host}:{self.port}: {exc} "
                          "(is another `ttr local up` running? change local.aws_port)") from None
        self.dispatcher = dispatcher_app()
        self._server = make_server(self.host, self.port, self.dispatcher, threaded=True,
                                   request_handler=MotoRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="aws-emulator", daemon=True)
        self._thread.start()
        wait_http(self.endpoint_url + "/moto-api/data.json")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._thread.join()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "AwsEmulator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # inspection (in-process only; moto does not serve these over HTTP) ------------------------
    @staticmethod
    def sent_emails() -> list[SentEmail]:
        from moto.ses.models import ses_backends

        out = []
        for account, regions in ses_backends.items():
            for region, backend in regions.items():
                for m in list(backend.sent_messages):
                    dest = getattr(m, "destinations", {}) or {}
                    to = tuple(dest.get("ToAddresses", [])) if isinstance(dest, dict) else tuple(dest)
                    raw = getattr(m, "raw_data", "") or ""
                    subject, body = getattr(m, "subject", ""), getattr(m, "body", "")
                    if raw:
                        subject, body = _raw_subject_and_html(raw)
                        to = tuple(dict.fromkeys(to))  # moto adds the To: header's address to the given one
                    out.append(SentEmail(account=account, region=region, source=m.source, to=to,
                                         subject=subject, body=body, raw=raw))
        return out


def _raw_subject_and_html(raw: str) -> tuple[str, str]:
    from email import message_from_string
    from email.policy import default

    msg = message_from_string(raw, policy=default)
    part = msg.get_body(preferencelist=("html", "plain"))
    return str(msg.get("Subject", "")), (part.get_content() if part is not None else "")
