"""The portal's shared HTTP helpers: a leaf that every router may import (it imports no other
web module but ``_auth``).

- what the gate lets through (``OPEN_PATHS``, ``is_open``, ``is_api``), the session's constants,
  ``new_csrf`` and ``safe_next``;
- errors -> HTTP: ``http_status``, ``error_body`` (the API's ``{"error", "message", "field"}``);
- ETags: ``etag_of``, ``expected_version`` (If-Match), ``none_match`` (If-None-Match);
- the request's portal, user and form.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from pathlib import Path
from typing import Any, Mapping

from starlette.datastructures import FormData
from starlette.requests import Request

from runtime.domain.errors import (
    AlreadyExists,
    ConflictError,
    ExternalError,
    IllegalTransition,
    InvalidInput,
    NotFound,
    RetryableError,
    StaleVersion,
    TtrError,
)
from runtime.web._auth import Forbidden, TooManyAttempts, Unauthenticated

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
    """The API's error body: ``{"error": code, "message": text}``, and the ``field`` bad input is about."""
    code = ERROR_CODES.get(status, "error")
    if isinstance(exc, IllegalTransition):
        code = "illegal_transition"
    elif isinstance(exc, AlreadyExists):
        code = "already_exists"
    body: dict[str, Any] = {"error": code, "message": str(exc)}
    if isinstance(exc, InvalidInput) and exc.field:
        body["field"] = exc.field
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


_ETAG_VERSION = re.compile(r'^(?:W/)?"?v?(\d+)(?:\.[0-9a-f]+)?"?$')


def expected_version(if_match: str | None) -> int | None:
    """The version an ``If-Match`` names (None for ``*``); 428 without the header."""
    if if_match is None or not if_match.strip():
        raise PreconditionRequired("If-Match is required: send the ETag of GET /api/changes/{id} "
                                   "(transitions are refused on a version you have not seen)")
    value = if_match.strip()
    if value == "*":
        return None
    m = _ETAG_VERSION.match(value)
    if not m:
        raise BadRequest(f"If-Match: {value!r} is not an ETag of this API (like \"v3.1a2b3c4d5e6f\")")
    return int(m.group(1))


def none_match(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` already holds ``etag`` (answer 304)."""
    if not if_none_match:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags


# ---------------------------------------------------------------------------------------------
# The request


def portal_of(request):
    """The ``Portal`` (``runtime.web._portal``) this request's app serves."""
    return request.app.state.portal


def user_of(request):
    """The ``Principal`` the gate let in."""
    return request.state.user


async def form_data(request: Request) -> FormData:
    """A posted form (a FastAPI dependency: the annotation is how FastAPI knows the request)."""
    return await request.form()
