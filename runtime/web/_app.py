"""The application factory: the portal's state, the authentication gate, error mapping.

Request path, outermost first:

    SessionMiddleware   signed cookie ``ttr_session`` (itsdangerous; HttpOnly, SameSite=Lax,
                        Max-Age = the idle lifetime, Secure when the portal URL is https)
    AuthGate            who is asking (bearer token, else the session); default deny: a route
                        outside OPEN_PATHS/OPEN_PREFIXES without a user gets 401 (API) or a
                        redirect to /login (pages); an unsafe method with a session needs the
                        session's CSRF token (header X-CSRF-Token or form field csrf_token)
    routes              the API (``_api``) and the pages (``_pages``) check roles per action
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import sys
import threading
import time
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import parse_qs, quote

from runtime.domain.errors import (AlreadyExists, ConflictError, ExternalError, IllegalTransition, InvalidInput, NotFound,
                      RetryableError, StaleVersion, TtrError)
from runtime.domain.words import topic_display, topic_names
from runtime.web._principals import PrincipalRecords
from runtime.web._auth import (ApiTokens, Forbidden, LocalUsers, LoginThrottle, Principal, TooManyAttempts, Unauthenticated,
                    load_session_secret)

log = logging.getLogger("ttr.web")

HERE = Path(__file__).resolve().parent
OPEN_PATHS = frozenset({"/healthz", "/login", "/logout", "/docs", "/openapi.json", "/favicon.ico"})
OPEN_PREFIXES = ("/auth/", "/static/")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SESSION_COOKIE = "ttr_session"
SESSION_IDLE = 2 * 3600          # the cookie's Max-Age and signature age: idle sessions end
SESSION_MAX = 12 * 3600          # absolute: a sign-in is good for this long at most
SESSION_REFRESH = 300            # re-sign the cookie at most this often (sliding idle lifetime)
LEDGER_CACHE = 5000                # delivery ledgers kept parsed (by ETag)
MAX_FORM_BYTES = 1024 * 1024      # any request body (a change is at most ~120 kB)
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; "
     b"base-uri 'none'; frame-ancestors 'none'; form-action 'self'"),
]


class BadRequest(InvalidInput):
    """Malformed request (HTTP 400) rather than invalid content (422)."""


class PreconditionRequired(TtrError):
    """A transition without If-Match (HTTP 428)."""


def http_status(exc: Exception) -> int:
    for cls, code in ((Unauthenticated, 401), (Forbidden, 403), (TooManyAttempts, 429),
                      (PreconditionRequired, 428), (StaleVersion, 412), (IllegalTransition, 409),
                      (AlreadyExists, 409), (ConflictError, 409), (NotFound, 404), (BadRequest, 400),
                      (InvalidInput, 422), (RetryableError, 503), (ExternalError, 502)):
        if isinstance(exc, cls):
            return code
    return 500


ERROR_CODES = {401: "unauthorized", 403: "forbidden", 404: "not_found", 400: "bad_request",
               409: "conflict", 412: "stale_version", 422: "invalid_input", 428: "precondition_required",
               429: "too_many_requests", 502: "upstream_error", 503: "unavailable", 500: "internal_error"}


def error_body(exc: Exception, status: int) -> dict:
    from runtime.web._views import api_field_of

    code = ERROR_CODES.get(status, "error")
    if isinstance(exc, IllegalTransition):
        code = "illegal_transition"
    elif isinstance(exc, AlreadyExists):
        code = "already_exists"
    body: dict[str, Any] = {"error": code, "message": str(exc)}
    if isinstance(exc, InvalidInput):
        fld = api_field_of(str(exc))
        if fld:
            body["field"] = fld
    return body


def is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def is_api(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


def safe_next(target: str | None) -> str:
    """A local path to go to after sign-in; anything else (another host, a scheme) is /."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if any(ord(c) < 32 for c in target):
        return "/"
    return target


def new_csrf(session: dict) -> str:
    token = session.get("csrf")
    if not isinstance(token, str) or len(token) < 20:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def etag_of(change: Mapping) -> str:
    """``"v{version}.{digest}"``: the version for If-Match, the digest so caches see backend appends."""
    digest = hashlib.sha256(json.dumps(change, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:12]
    return f'"v{int(change.get("version") or 0)}.{digest}"'


# ---------------------------------------------------------------------------------------------


class Portal:
    """Everything a request handler needs: config, lifecycle, index, identity sources."""

    def __init__(self, cfg, store, *, session_secret: str, throttle: LoginThrottle | None = None,
                 session_idle: int = SESSION_IDLE, session_max: int = SESSION_MAX,
                 clock=time.time):
        from jinja2 import Environment, FileSystemLoader, select_autoescape

        from runtime.services.lifecycle import Lifecycle
        from runtime.web import _views
        from runtime.web._index import ChangeIndex

        self.cfg = cfg
        self.store = store
        self.lifecycle = Lifecycle(store, cfg.customer_codes, topics=[t.name for t in cfg.topics])
        self.index = ChangeIndex(store)
        self.users = LocalUsers(cfg.web.users)
        self.records = PrincipalRecords(store, clock=clock)
        self.tokens = ApiTokens(session_secret, self.records, clock=clock,
                                credential_of=lambda u: self.users.credential(u.name) if u.source == "local" else "")
        self.throttle = throttle or LoginThrottle()
        self.session_idle = session_idle
        self.session_max = session_max
        self.clock = clock
        self.names = _views.customer_names(cfg)
        self.topic_names = topic_names(cfg)
        self._ledgers: dict[str, tuple[str, dict]] = {}
        self._ledger_lock = threading.Lock()
        self.oidc = None
        if cfg.web.oidc is not None:
            from runtime.web._oidc import Oidc

            self.oidc = Oidc(cfg.web.oidc)
        self.templates = Environment(loader=FileSystemLoader(str(HERE / "templates")),
                                     autoescape=select_autoescape(default=True, default_for_string=True),
                                     trim_blocks=True, lstrip_blocks=True)
        self.templates.filters.update(when=_views.fmt_time, window=_views.fmt_window, safe_url=_views.safe_url,
                                      ts=_views.local_time, md=_views.mini_markdown,
                                      topic=lambda name: topic_display(name, names=self.topic_names),
                                      customer=lambda code: self.names.get(code, code))
        self.templates.globals.update(customer_names=self.names)

    # identity --------------------------------------------------------------------------------
    def session_user(self, session: dict) -> Principal | None:
        data = session.get("user") if isinstance(session, dict) else None
        if not isinstance(data, dict) or "name" not in data:
            return None
        at = float(data.get("at") or 0)
        if not (self.clock() - self.session_max <= at <= self.clock() + 60):
            session.pop("user", None)
            return None
        name, source = str(data["name"]), str(data.get("source") or "oidc")
        # signed out since (on any instance), or the password changed since: the session is over
        if (not self.records.session_valid(source, name, data.get("gen"))
                or (source == "local" and data.get("cred") != self.users.credential(name))):
            session.pop("user", None)
            return None
        if source == "local":
            user = self.users.current(name)
            if user is None:
                session.pop("user", None)
            return user
        if self.oidc is None:  # single sign-on switched off: its sessions end with it
            session.pop("user", None)
            return None
        return Principal(name=name, roles=frozenset(data.get("roles") or ()), source=source,
                         display=str(data.get("display") or ""))

    def touch(self, session: dict) -> None:
        """Re-issue the cookie now and then, so the idle lifetime slides while the user is active
        (the absolute lifetime, ``session_max`` from sign-in, still ends it)."""
        now = int(self.clock())
        if now - int(session.get("seen") or 0) >= SESSION_REFRESH:
            session["seen"] = now

    def start_session(self, session: dict, user: Principal) -> None:
        session.clear()  # nothing from before the sign-in survives it
        cred = self.users.credential(user.name) if user.source == "local" else ""
        session["user"] = user.to_session(at=self.clock(), generation=self.records.generation(user.source, user.name),
                                          credential=cred)
        session["seen"] = int(self.clock())
        new_csrf(session)

    def end_sessions(self, user: Principal) -> None:
        """Sign-out: every session of this user ends, here and on the other instances."""
        self.records.end_sessions(user.source, user.name)

    async def verify_bearer(self, token: str) -> Principal:
        from runtime.web._auth import API_TOKEN_PREFIX

        if token.startswith(API_TOKEN_PREFIX):
            user = self.tokens.verify(token)
            if user.source != "local" and self.oidc is None:
                raise Unauthenticated("the API token came from single sign-on, which is switched off")
            if user.source == "local":
                current = self.users.current(user.name, via="bearer")
                if current is None:
                    raise Unauthenticated("the API token's user no longer exists")
                # the token never grants more than the user has now
                return Principal(name=current.name, roles=current.roles & user.roles, source="local",
                                 via="bearer", token_id=user.token_id)
            return user
        if self.oidc is not None:
            return await self.oidc.verify_bearer(token)
        raise Unauthenticated("the bearer token is not valid")

    # data ------------------------------------------------------------------------------------
    def ledgers(self, change_id: str) -> dict[tuple[str, int], dict]:
        from runtime.domain.model import LEDGER_PREFIX, check_change_id

        """The delivery ledgers of a change, by (customer, seq); unchanged ones come from a cache."""
        out: dict[tuple[str, int], dict] = {}
        feedback: dict[tuple[str, str], dict] = {}
        for info in self.store.list(f"{LEDGER_PREFIX}{check_change_id(change_id)}/"):
            parts = info.key.split("/")
            if len(parts) != 4 or not parts[3].endswith(".json"):
                continue
            cached = self._ledgers.get(info.key)
            if cached is not None and cached[0] == info.etag:
                data = cached[1]
            else:
                try:
                    data = json.loads(self.store.get(info.key).body)
                except (ValueError, NotFound):
                    continue
                with self._ledger_lock:
                    self._ledgers[info.key] = (info.etag, data)
                    while len(self._ledgers) > LEDGER_CACHE:
                        self._ledgers.pop(next(iter(self._ledgers)))
            if parts[3].endswith(".feedback.json"):  # SES feedback next to the ledger (runtime.services.feedback)
                feedback[parts[2], parts[3][:-len(".feedback.json")]] = data
                continue
            try:
                out[(parts[2], int(parts[3][:-5]))] = data
            except ValueError:
                continue
        for (code, seq), data in feedback.items():
            if seq.isdigit() and (code, int(seq)) in out:
                out[(code, int(seq))] = {**out[(code, int(seq))], "feedback": data}
        return out

    def render(self, template: str, **ctx) -> str:
        return self.templates.get_template(template).render(**ctx)


# ---------------------------------------------------------------------------------------------
# The gate (pure ASGI, so it also guards paths no route matches)


class AuthGate:
    def __init__(self, app, portal: Portal):
        self.app = app
        self.portal = portal

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_secure(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        path, method = scope["path"], scope["method"].upper()
        session = scope.get("session")
        if session is None:  # pragma: no cover - SessionMiddleware always runs first
            session = scope["session"] = {}
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        user: Principal | None = None
        via = None
        auth = headers.get("authorization")
        if auth:
            scheme, _, token = auth.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return await _json(send_secure, 401, {"error": "unauthorized",
                                                      "message": "Authorization: only Bearer tokens are accepted"},
                                   bearer_error=True)
            try:
                user = await self.portal.verify_bearer(token.strip())
                via = "bearer"
            except (Unauthenticated, Forbidden) as exc:
                return await _json(send_secure, 401, {"error": "unauthorized", "message": str(exc)},
                                   bearer_error=True)
        else:
            user = self.portal.session_user(session)
            via = "session" if user else None
            if user is not None:
                self.portal.touch(session)
        scope.setdefault("state", {})["user"] = user

        if user is None and not is_open(path):
            if is_api(path):
                return await _json(send_secure, 401, {"error": "unauthorized",
                                                      "message": "sign in, or send Authorization: Bearer <token>"})
            target = path + ("?" + scope["query_string"].decode("latin-1") if scope.get("query_string") else "")
            location = "/login" if target == "/" else "/login?next=" + quote(target, safe="/")
            return await _redirect(send_secure, location)

        if user is not None and not user.roles and not is_open(path):
            # signed in, but no role (taken away since, or a token that kept none): nothing to read
            message = f"{user.name} has no role in ttr; ask an administrator"
            if is_api(path):
                return await _json(send_secure, 403, {"error": "forbidden", "message": message})
            html = self.portal.render("error.html", user=None, status=403, title="Not allowed", message=message,
                                      csrf="", flashes=[], nav="")
            return await _html(send_secure, 403, html)

        if method not in SAFE_METHODS:
            body, too_big = await _read_body(receive)
            if too_big:
                return await _json(send_secure, 413, {"error": "too_large",
                                                      "message": f"request body over {MAX_FORM_BYTES} bytes"})
            receive = _replay(body)
        if method not in SAFE_METHODS and via != "bearer":
            if not self._csrf_ok(session, headers, body):
                if is_api(path):
                    return await _json(send_secure, 403, {
                        "error": "forbidden",
                        "message": "a signed-in browser request needs the X-CSRF-Token header "
                                   "(API clients: use a bearer token)"})
                if path in ("/login", "/logout"):
                    return await _redirect(send_secure, "/login?e=expired")
                html = self.portal.render("error.html", user=user, status=403, title="This form has expired",
                                          message="For your safety, forms stop working after a while or after "
                                                  "you sign in again. Go back, reload the page and try again.",
                                          csrf="", flashes=[], nav="")
                return await _html(send_secure, 403, html)

        await self.app(scope, receive, send_secure)

    @staticmethod
    def _csrf_ok(session: dict, headers: Mapping[str, str], body: bytes) -> bool:
        expected = session.get("csrf") if isinstance(session, dict) else None
        if not isinstance(expected, str) or not expected:
            return False
        got = headers.get(CSRF_HEADER)
        if not got and headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            try:
                got = (parse_qs(body.decode("utf-8"), max_num_fields=500).get(CSRF_FIELD) or [""])[0]
            except (UnicodeDecodeError, ValueError):
                got = ""
        return bool(got) and hmac.compare_digest(got.encode(), expected.encode())


async def _read_body(receive) -> tuple[bytes, bool]:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            return b"", True
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks), False


def _replay(body: bytes):
    sent = False

    async def receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


async def _json(send, status: int, body: dict, *, bearer_error: bool = False) -> None:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
               (b"cache-control", b"no-store")]
    if status == 401:
        challenge = 'Bearer realm="ttr"' + (', error="invalid_token"' if bearer_error else "")
        headers.append((b"www-authenticate", challenge.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def _html(send, status: int, html: str) -> None:
    data = html.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/html; charset=utf-8"),
                            (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


async def _redirect(send, location: str) -> None:
    await send({"type": "http.response.start", "status": 303,
                "headers": [(b"location", location.encode("latin-1")), (b"content-length", b"0"),
                            (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": b""})


# ---------------------------------------------------------------------------------------------


def create_app(cfg, *, store=None, session_secret: str | None = None, throttle: LoginThrottle | None = None,
               session_idle: int = SESSION_IDLE, session_max: int = SESSION_MAX, secret_dir: str = ".ttr"):
    """The portal and its API for ``cfg``. ``store`` defaults to the configured S3 bucket.

    The session key: ``session_secret``, else ``$TTR_SESSION_SECRET``, else one generated and
    kept in ``{secret_dir}/session-secret``.
    """
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse
    from fastapi.staticfiles import StaticFiles
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.middleware.sessions import SessionMiddleware

    from runtime.web import _announce, _api, _audience, _pages

    if store is None:
        from runtime.adapters.aws import AwsClients
        from runtime.adapters.s3 import S3ObjectStore

        store = S3ObjectStore(AwsClients(cfg.region, cfg.aws_endpoint_url), cfg.bucket)
    secret = load_session_secret(session_secret, directory=secret_dir,
                                 log=lambda m: print(m, file=sys.stderr, flush=True))
    portal = Portal(cfg, store, session_secret=secret, throttle=throttle, session_idle=session_idle,
                    session_max=session_max)

    app = FastAPI(
        title="ttr portal API",
        version="1",
        summary="Changes, drafts and their lifecycle: the same lifecycle code as the ttr CLI.",
        description=_api.API_DESCRIPTION,
        docs_url=None, redoc_url=None, openapi_url="/openapi.json",
    )
    app.state.portal = portal
    app.include_router(_api.router)
    app.include_router(_pages.router)
    app.include_router(_audience.router)
    app.include_router(_announce.router)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.get("/healthz", include_in_schema=False)
    def healthz():
        return {"status": "ok"}

    def wants_json(request: Request) -> bool:
        return is_api(request.url.path) or request.url.path == "/openapi.json"

    def page_error(request: Request, status: int, title: str, message: str) -> HTMLResponse:
        user = request.state.user if hasattr(request.state, "user") else None
        html = portal.render("error.html", user=user, status=status, title=title, message=message,
                             csrf=new_csrf(request.session) if user else "", flashes=[], nav="")
        return HTMLResponse(html, status_code=status)

    @app.exception_handler(TtrError)
    async def ttr_error(request: Request, exc: TtrError):
        status = http_status(exc)
        if status >= 500:
            log.warning("%s %s: %s", request.method, request.url.path, exc)
        headers = {}
        if exc.retry_after:
            headers["Retry-After"] = str(int(exc.retry_after))
        if wants_json(request):
            return JSONResponse(error_body(exc, status), status_code=status, headers=headers)
        titles = {403: "Not allowed", 404: "Not found", 409: "Not possible now", 412: "Changed meanwhile",
                  429: "Slow down"}
        from runtime.web._views import not_found_text

        message = not_found_text(request.url.path) if status == 404 else str(exc)
        return page_error(request, status, titles.get(status, "Something went wrong"), message)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        errs = exc.errors()
        first = errs[0] if errs else {}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header")]
        where = ".".join(loc) or "request"
        body = {"error": "invalid_input", "message": f"{where}: {first.get('msg', 'invalid')}", "field": where}
        if wants_json(request):
            return JSONResponse(body, status_code=422)
        return page_error(request, 422, "That did not look right", body["message"])

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if wants_json(request):
            return JSONResponse({"error": ERROR_CODES.get(exc.status_code, "error"), "message": str(exc.detail)},
                                status_code=exc.status_code, headers=getattr(exc, "headers", None))
        if exc.status_code == 404:
            return page_error(request, 404, "Not found", "There is no page at this address.")
        return page_error(request, exc.status_code, "Something went wrong", str(exc.detail))

    app.add_middleware(AuthGate, portal=portal)
    https = (cfg.email.portal_base_url or "").startswith("https://")
    app.add_middleware(SessionMiddleware, secret_key=secret, session_cookie=SESSION_COOKIE, max_age=session_idle,
                       same_site="lax", https_only=https)
    return app


__all__ = ["create_app", "Portal", "AuthGate", "etag_of", "is_open", "safe_next", "OPEN_PATHS", "OPEN_PREFIXES"]
