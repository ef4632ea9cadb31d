"""The application factory: composition only (the app, its routers, middleware, error pages).

Request path, outermost first:

    SessionMiddleware   signed cookie ``ttr_session`` (itsdangerous; HttpOnly, SameSite=Lax,
                        Max-Age = the idle lifetime, Secure when the portal URL is https)
    AuthGate            who is asking (bearer token, else the session); default deny: a route
                        outside OPEN_PATHS/OPEN_PREFIXES without a user gets 401 (API) or a
                        redirect to /login (pages); an unsafe method with a session needs the
                        session's CSRF token (header X-CSRF-Token or form field csrf_token)
    routes              the API (``_api``, ``_announce``) and the pages (``_pages``, ``_audience``,
                        ``_announce``) check roles per action

The routers import only leaves (``_http``, ``_portal``, ``_page``, ``_schemas``, ...), never this
module or each other (tests/unit/test_web_imports.py).
"""

from __future__ import annotations

import hmac
import json
import logging
import sys
from typing import Mapping
from urllib.parse import parse_qs, quote

from runtime.domain.errors import TtrError
from runtime.web._auth import Forbidden, LoginThrottle, Principal, Unauthenticated, load_session_secret
from runtime.web._http import (
    CSRF_FIELD,
    CSRF_HEADER,
    ERROR_CODES,
    HERE,
    MAX_FORM_BYTES,
    OPEN_PATHS,
    OPEN_PREFIXES,
    SAFE_METHODS,
    SECURITY_HEADERS,
    SESSION_COOKIE,
    SESSION_IDLE,
    SESSION_MAX,
    error_body,
    etag_of,
    http_status,
    is_api,
    is_open,
    new_csrf,
    safe_next,
)
from runtime.web._portal import Portal

log = logging.getLogger("ttr.web")


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
