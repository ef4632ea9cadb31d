"""A local Microsoft Graph calendar emulator, on real HTTP, standard library only.

It implements the few Graph calendar endpoints ttr uses (see CONTRACT.md, "Local Graph
emulator"), under ``/v1.0/users/{id}/...`` and ``/v1.0/me/...``:

- ``POST   .../events``                create, with ``transactionId`` de-duplication;
- ``GET    .../events``                list, with ``$filter`` on one single-value extended
                                       property, ``$expand`` of that property, ``$top``/``$skip``
                                       paging through ``@odata.nextLink``, ``$select``, ``$count``;
- ``GET|PATCH|DELETE .../events/{id}``;
- ``POST   .../events/{id}/cancel``    answered 202 (it emails nobody).

Graph calls need ``Authorization: Bearer <anything non-empty>``. Test endpoints (no token):
``GET /_emulator/events``, ``GET /_emulator/calls``, ``GET|POST /_emulator/faults`` and
``POST /_emulator/reset``.

Known differences from Graph (deliberate, keep tests honest about them):
- the ``Prefer: outlook.timezone`` header is ignored: times come back as they were sent;
- a cancelled event stays readable, with ``isCancelled: true``; cancelling it again is accepted
  and counted (``cancelCount``), so tests can see a double cancellation;
- ``transactionId`` de-duplication never expires, and a deleted event no longer de-duplicates;
- query options other than ``$filter``, ``$expand``, ``$top``, ``$skip``, ``$select`` and
  ``$count`` are refused with 400 rather than silently ignored.

Manual use: ``python -m runtime.local.graph_emulator --port 8766`` prints ``ready <base_url>``.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import signal
import socket
import socketserver
import sys
import threading
import traceback
import uuid
from collections import deque
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

LOOPBACK = "127.0.0.1"
_LOOPBACK_HOSTS = {"127.0.0.1": "127.0.0.1", "localhost": "127.0.0.1", "::1": "::1"}

MAX_ATTENDEES = 500  # Graph's limit per event
DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 1000
MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_FAULT_DELAY = 300.0
_NULL_TIME = "0001-01-01T00:00:00Z"

# Fields the server owns: a client's value for them is ignored on create and on PATCH.
_READ_ONLY = {
    "@odata.etag", "@odata.context", "id", "createdDateTime", "lastModifiedDateTime",
    "changeKey", "iCalUId", "organizer", "webLink", "onlineMeeting", "isCancelled",
    "isOrganizer", "responseStatus", "seriesMasterId", "type", "bodyPreview", "hasAttachments",
}
_SUPPORTED_QUERY = {"$filter", "$expand", "$top", "$skip", "$select", "$count"}

_ODATA_STRING = r"'((?:[^']|'')*)'"
_FILTER_RE = re.compile(
    r"^\s*singleValueExtendedProperties\s*/\s*any\s*\(\s*([A-Za-z_]\w*)\s*:\s*(.*?)\s*\)\s*$",
    re.IGNORECASE | re.DOTALL)
_CLAUSE_RE = r"([A-Za-z_]\w*)\s*/\s*(id|value)\s+eq\s+" + _ODATA_STRING
_FILTER_BODY_RE = re.compile(r"^" + _CLAUSE_RE + r"\s+and\s+" + _CLAUSE_RE + r"$",
                             re.IGNORECASE | re.DOTALL)
_EXPAND_RE = re.compile(
    r"^\s*singleValueExtendedProperties\s*\(\s*\$filter\s*=\s*id\s+eq\s+" + _ODATA_STRING
    + r"\s*\)\s*$", re.IGNORECASE | re.DOTALL)


def free_port(host: str = LOOPBACK) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _now() -> str:
    # Graph's shape: seven fractional digits and a Z.
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def _unescape(odata_literal: str) -> str:
    return odata_literal.replace("''", "'")


class GraphError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def _bad(message: str, code: str = "ErrorInvalidRequest") -> GraphError:
    return GraphError(400, code, message)


def _not_found(what: str = "The specified object was not found in the store.") -> GraphError:
    return GraphError(404, "ErrorItemNotFound", what)


# --- validation -------------------------------------------------------------------------------
def _check_datetime_tz(name: str, value: Any) -> None:
    if not isinstance(value, dict):
        raise _bad(f"'{name}' must be an object with dateTime and timeZone")
    dt, tz = value.get("dateTime"), value.get("timeZone")
    if not isinstance(dt, str) or not dt:
        raise _bad(f"'{name}.dateTime' is required")
    if not isinstance(tz, str) or not tz:
        raise _bad(f"'{name}.timeZone' is required")
    try:
        datetime.fromisoformat(dt[:-1] if dt.endswith("Z") else dt)
    except ValueError:
        raise _bad(f"'{name}.dateTime' is not a valid date and time: {dt!r}") from None


def _check_attendees(value: Any) -> None:
    if not isinstance(value, list):
        raise _bad("'attendees' must be a list")
    if len(value) > MAX_ATTENDEES:
        raise GraphError(400, "ErrorTooManyAttendees",
                         f"An event can have at most {MAX_ATTENDEES} attendees; got {len(value)}.")
    for i, a in enumerate(value):
        email = a.get("emailAddress") if isinstance(a, dict) else None
        if not isinstance(email, dict) or not isinstance(email.get("address"), str) \
                or not email["address"]:
            raise _bad(f"'attendees[{i}].emailAddress.address' is required")
        if "type" in a and a["type"] not in ("required", "optional", "resource"):
            raise _bad(f"'attendees[{i}].type' must be required, optional or resource")


def _check_extended(value: Any) -> None:
    if not isinstance(value, list):
        raise _bad("'singleValueExtendedProperties' must be a list")
    for i, p in enumerate(value):
        if not isinstance(p, dict) or not isinstance(p.get("id"), str) or not p["id"] \
                or not isinstance(p.get("value"), str):
            raise _bad(f"'singleValueExtendedProperties[{i}]' needs a string id and value")


def _check_fields(body: dict, creating: bool) -> None:
    if creating or "subject" in body:
        if not isinstance(body.get("subject"), str):
            raise _bad("'subject' must be a string")
    for name in ("start", "end"):
        if creating or name in body:
            _check_datetime_tz(name, body.get(name))
    if "attendees" in body:
        _check_attendees(body["attendees"])
    if "singleValueExtendedProperties" in body:
        _check_extended(body["singleValueExtendedProperties"])
    if "transactionId" in body and body["transactionId"] is not None \
            and not isinstance(body["transactionId"], str):
        raise _bad("'transactionId' must be a string")
    if "body" in body and body["body"] is not None:
        b = body["body"]
        if not isinstance(b, dict) or not isinstance(b.get("content", ""), str):
            raise _bad("'body' must be an object with contentType and content")
    if "location" in body and body["location"] is not None and not isinstance(body["location"], dict):
        raise _bad("'location' must be an object")
    for flag in ("isOnlineMeeting", "hideAttendees"):
        if flag in body and not isinstance(body[flag], bool):
            raise _bad(f"'{flag}' must be a boolean")


def _normalise_attendees(attendees: list) -> list:
    out = []
    for a in attendees:
        a = copy.deepcopy(a)
        a.setdefault("type", "required")
        a.setdefault("status", {"response": "none", "time": _NULL_TIME})
        a["emailAddress"].setdefault("name", a["emailAddress"]["address"])
        out.append(a)
    return out


def _body_preview(body: dict | None) -> str:
    text = (body or {}).get("content") or ""
    if (body or {}).get("contentType", "").lower() == "html":
        text = re.sub(r"<[^>]*>", " ", text)
    return re.sub(r"\s+", " ", text).strip()[:255]


def _parse_fault(spec: Any) -> dict:
    if not isinstance(spec, dict):
        raise ValueError("a fault is a JSON object")
    unknown = set(spec) - {"status", "count", "retryAfter", "delay"}
    if unknown:
        raise ValueError(f"unknown fault fields: {sorted(unknown)}")
    status = spec.get("status")
    if status is not None and (isinstance(status, bool) or status not in (429, 503)):
        raise ValueError("'status' must be 429 or 503 (or omitted, with 'delay')")
    count = spec.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError("'count' must be a positive integer")
    retry_after = spec.get("retryAfter")
    if retry_after is not None:
        if isinstance(retry_after, bool) or not isinstance(retry_after, int) or retry_after < 0:
            raise ValueError("'retryAfter' must be a non-negative integer (seconds)")
        if status is None:
            raise ValueError("'retryAfter' needs a 'status'")
    delay = spec.get("delay", 0)
    if isinstance(delay, bool) or not isinstance(delay, (int, float)) \
            or not 0 <= delay <= MAX_FAULT_DELAY:
        raise ValueError(f"'delay' must be a number of seconds between 0 and {MAX_FAULT_DELAY:.0f}")
    if status is None and not delay:
        raise ValueError("a fault needs a 'status', a 'delay', or both")
    return {"status": status, "remaining": count, "retryAfter": retry_after, "delay": float(delay)}


# --- state ------------------------------------------------------------------------------------
class _Record:
    __slots__ = ("event", "mailbox", "cancelled", "deleted", "update_count", "cancel_count",
                 "cancel_comments")

    def __init__(self, event: dict, mailbox: str):
        self.event = event  # Graph's shape, singleValueExtendedProperties included
        self.mailbox = mailbox
        self.cancelled = False
        self.deleted = False
        self.update_count = 0
        self.cancel_count = 0
        self.cancel_comments: list[str] = []

    def graph_view(self, expand_prop: str | None = None, select: list[str] | None = None,
                   with_extended: bool = False) -> dict:
        ev = copy.deepcopy(self.event)
        ev["isCancelled"] = self.cancelled
        props = ev.pop("singleValueExtendedProperties", [])
        if with_extended:
            ev["singleValueExtendedProperties"] = props
        elif expand_prop is not None:
            match = [p for p in props if p["id"].lower() == expand_prop.lower()]
            if match:
                ev["singleValueExtendedProperties"] = match
        if select:
            keep = {s.lower() for s in select} | {"id", "@odata.etag", "singlevalueextendedproperties"}
            ev = {k: v for k, v in ev.items() if k.lower() in keep}
        return ev

    def inspection_view(self) -> dict:
        ev = self.graph_view(with_extended=True)
        ev.update(mailbox=self.mailbox, cancelled=self.cancelled, deleted=self.deleted,
                  updateCount=self.update_count, cancelCount=self.cancel_count,
                  cancelComments=list(self.cancel_comments))
        return ev


class _State:
    def __init__(self, organizer: str):
        self.organizer = organizer
        self.lock = threading.Lock()
        self.records: dict[str, _Record] = {}  # insertion order = creation order
        self.faults: deque[dict] = deque()
        self.calls: list[dict] = []

    def reset(self) -> None:
        with self.lock:
            self.records.clear()
            self.faults.clear()
            self.calls.clear()

    def take_fault(self) -> dict | None:
        with self.lock:
            if not self.faults:
                return None
            f = self.faults[0]
            f["remaining"] -= 1
            if f["remaining"] <= 0:
                self.faults.popleft()
            return dict(f)

    def events(self) -> list[dict]:
        with self.lock:
            return [r.inspection_view() for r in self.records.values()]


# --- HTTP -------------------------------------------------------------------------------------
class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, handler, state: _State, public_root: str):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.state = state
        self.public_root = public_root
        self.stopping = threading.Event()
        self.open_connections: set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn), which can stall; skip it.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[0], self.server_address[1]

    def handle_error(self, request, client_address) -> None:
        # A client that hangs up (or a stop() that cuts its socket) is not an emulator error.
        if self.stopping.is_set() or isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ttr-graph-emulator"
    sys_version = ""
    server: _Server

    # plumbing --------------------------------------------------------------------------------
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def setup(self) -> None:
        super().setup()
        with self.server.conn_lock:
            self.server.open_connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.conn_lock:
                self.server.open_connections.discard(self.connection)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                total += size
                if total > MAX_BODY_BYTES:
                    raise GraphError(413, "RequestEntityTooLarge", "request body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)  # CRLF after the chunk
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0 or length > MAX_BODY_BYTES:
            raise GraphError(413, "RequestEntityTooLarge", "request body too large")
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, payload: Any = None, headers: dict[str, str] | None = None) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        try:
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            if payload is not None:
                self.send_header("Content-Type", "application/json; charset=utf-8")
            if status != 204:
                self.send_header("Content-Length", str(len(data)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if data:
                self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, OSError):
            # The client gave up (a timeout, usually). What the request did stands.
            self.close_connection = True

    def _send_error(self, err: GraphError, request_id: str) -> None:
        payload = {"error": {"code": err.code, "message": err.message, "innerError": {
            "date": _now()[:19], "request-id": request_id,
            "client-request-id": self.headers.get("client-request-id") or request_id}}}
        self._send(err.status, payload, {**err.headers, "request-id": request_id})

    def _handle(self, method: str) -> None:
        request_id = str(uuid.uuid4())
        split = urlsplit(self.path)
        path = split.path
        emulator_route = path.rstrip("/").startswith("/_emulator")
        status = 500
        try:
            try:
                raw = self._read_body()
            except GraphError:
                self.close_connection = True  # the framing is unknown: do not reuse the socket
                raise
            except ValueError:
                self.close_connection = True
                raise _bad("malformed request body") from None
            if emulator_route:
                status, payload = self._emulator(method, path.rstrip("/"), raw)
                self._send(status, payload)
                return
            status, payload, headers = self._graph(method, path, split.query, raw)
            self._send(status, payload, {**headers, "request-id": request_id})
        except GraphError as err:
            status = err.status
            self._send_error(err, request_id)
        except Exception:  # a bug here should not look like a hung socket
            traceback.print_exc(file=sys.stderr)
            status = 500
            self._send_error(GraphError(500, "InternalServerError", "emulator error"), request_id)
        finally:
            if not emulator_route:
                with self.server.state.lock:
                    self.server.state.calls.append({"method": method, "path": path,
                                                    "query": split.query, "status": status})

    # test endpoints --------------------------------------------------------------------------
    def _emulator(self, method: str, path: str, raw: bytes) -> tuple[int, Any]:
        state = self.server.state
        if path == "/_emulator/events" and method == "GET":
            return 200, state.events()
        if path == "/_emulator/calls" and method == "GET":
            with state.lock:
                return 200, [dict(c) for c in state.calls]
        if path == "/_emulator/reset" and method == "POST":
            state.reset()
            return 200, {"reset": True}
        if path == "/_emulator/faults" and method == "GET":
            with state.lock:
                return 200, [dict(f) for f in state.faults]
        if path == "/_emulator/faults" and method == "POST":
            try:
                fault = _parse_fault(json.loads(raw or b"null"))
            except ValueError as exc:  # json.JSONDecodeError is a ValueError too
                raise _bad(f"bad fault: {exc}") from None
            with state.lock:
                state.faults.append(fault)
                return 201, [dict(f) for f in state.faults]
        if path in ("/_emulator/events", "/_emulator/calls", "/_emulator/reset", "/_emulator/faults"):
            raise GraphError(405, "MethodNotAllowed", f"{method} is not allowed on {path}")
        raise GraphError(404, "ResourceNotFound", f"no emulator route {path}")

    # Graph -----------------------------------------------------------------------------------
    def _graph(self, method: str, path: str, query: str, raw: bytes
               ) -> tuple[int, Any, dict[str, str]]:
        auth = self.headers.get("Authorization") or ""
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise GraphError(401, "InvalidAuthenticationToken",
                             "Access token is empty." if not auth else "Access token is invalid.")

        fault = self.server.state.take_fault()
        if fault is not None:
            if fault["delay"]:
                self.server.stopping.wait(fault["delay"])
            if fault["status"] == 429:
                extra = {} if fault["retryAfter"] is None else {"Retry-After": str(fault["retryAfter"])}
                raise GraphError(429, "TooManyRequests",
                                 "Application is over its MailboxConcurrency limit.", extra)
            if fault["status"] == 503:
                extra = {} if fault["retryAfter"] is None else {"Retry-After": str(fault["retryAfter"])}
                raise GraphError(503, "ServiceUnavailable",
                                 "The service is temporarily unavailable.", extra)

        mailbox, user_segment, rest = self._route(path)
        params = self._query(query)
        if rest == ["events"]:
            if method == "POST":
                return 201, self._create(mailbox, user_segment, self._json(raw)), {}
            if method == "GET":
                return 200, self._list(mailbox, user_segment, path, params), {}
        elif len(rest) == 2:
            eid = rest[1]
            if method == "GET":
                return 200, self._get(mailbox, user_segment, eid, params), {}
            if method == "PATCH":
                return 200, self._patch(mailbox, user_segment, eid, self._json(raw)), {}
            if method == "DELETE":
                self._delete(mailbox, eid)
                return 204, None, {}
        elif len(rest) == 3 and rest[2].lower() == "cancel":
            if method == "POST":
                self._cancel(mailbox, rest[1], self._json(raw, optional=True))
                return 202, None, {}
        else:
            raise GraphError(404, "UnknownError", f"Resource not found for the segment in {path}")
        raise GraphError(405, "MethodNotAllowed", f"{method} is not allowed on {path}")

    def _route(self, path: str) -> tuple[str, str, list[str]]:
        segs = [unquote(s) for s in path.split("/") if s]
        if not segs or segs[0].lower() != "v1.0" or len(segs) < 2:
            raise GraphError(404, "UnknownError", f"Resource not found for the segment in {path}")
        organizer = self.server.state.organizer
        if segs[1].lower() == "me":
            mailbox, user_segment, rest = organizer.lower(), "me", segs[2:]
        elif segs[1].lower() == "users" and len(segs) >= 3 and segs[2]:
            user_segment = segs[2]
            mailbox = organizer.lower() if user_segment.lower() == "me" else user_segment.lower()
            rest = segs[3:]
        else:
            raise GraphError(404, "UnknownError", f"Resource not found for the segment in {path}")
        if rest[:1] and rest[0].lower() == "calendar":
            rest = rest[1:]  # /me/calendar/events is the default calendar's events
        if not rest or rest[0].lower() != "events" or len(rest) > 3:
            raise GraphError(404, "UnknownError", f"Resource not found for the segment in {path}")
        return mailbox, user_segment, ["events"] + rest[1:]

    @staticmethod
    def _query(query: str) -> dict[str, str]:
        params: dict[str, str] = {}
        for key, values in parse_qs(query, keep_blank_values=True).items():
            k = key.lower()
            if k.startswith("$") and k not in _SUPPORTED_QUERY:
                raise _bad(f"the emulator does not support the query option {key}",
                           "ErrorInvalidUrlQuery")
            params[k] = values[-1]
        return params

    @staticmethod
    def _json(raw: bytes, optional: bool = False) -> dict:
        if not raw.strip():
            if optional:
                return {}
            raise _bad("a JSON body is required")
        try:
            body = json.loads(raw)
        except ValueError:
            raise _bad("the request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise _bad("the request body must be a JSON object")
        return body

    def _context(self, user_segment: str, suffix: str) -> str:
        who = "me" if user_segment == "me" else f"users('{quote(user_segment, safe='@.')}')"
        return f"{self.server.public_root}/v1.0/$metadata#{who}/{suffix}"

    @staticmethod
    def _expand_prop(params: dict[str, str]) -> str | None:
        if "$expand" not in params:
            return None
        m = _EXPAND_RE.match(params["$expand"])
        if not m:
            raise _bad("the emulator only supports "
                       "$expand=singleValueExtendedProperties($filter=id eq '...')",
                       "ErrorInvalidUrlQuery")
        return _unescape(m.group(1))

    @staticmethod
    def _select(params: dict[str, str]) -> list[str] | None:
        if "$select" not in params:
            return None
        fields = [f.strip() for f in params["$select"].split(",") if f.strip()]
        if not fields:
            raise _bad("$select is empty", "ErrorInvalidUrlQuery")
        return fields

    @staticmethod
    def _filter(params: dict[str, str]) -> tuple[str, str] | None:
        if "$filter" not in params:
            return None
        m = _FILTER_RE.match(params["$filter"])
        inner = _FILTER_BODY_RE.match(m.group(2)) if m else None
        if not m or not inner:
            raise _bad("the emulator only supports $filter=singleValueExtendedProperties/Any"
                       "(ep: ep/id eq '...' and ep/value eq '...')", "ErrorInvalidUrlQueryFilter")
        var = m.group(1)
        v1, f1, s1, v2, f2, s2 = inner.groups()
        if v1 != var or v2 != var or f1.lower() == f2.lower():
            raise _bad("the lambda must test ep/id and ep/value of its own variable",
                       "ErrorInvalidUrlQueryFilter")
        clauses = {f1.lower(): _unescape(s1), f2.lower(): _unescape(s2)}
        return clauses["id"], clauses["value"]

    @staticmethod
    def _int_param(params: dict[str, str], name: str, default: int, lo: int, hi: int) -> int:
        if name not in params:
            return default
        try:
            value = int(params[name])
        except ValueError:
            raise _bad(f"{name} must be an integer", "ErrorInvalidUrlQuery") from None
        if not lo <= value <= hi:
            raise _bad(f"{name} must be between {lo} and {hi}", "ErrorInvalidUrlQuery")
        return value

    def _live(self, mailbox: str, eid: str) -> _Record:
        rec = self.server.state.records.get(eid)
        if rec is None or rec.deleted or rec.mailbox != mailbox:
            raise _not_found()
        return rec

    # operations ------------------------------------------------------------------------------
    def _create(self, mailbox: str, user_segment: str, body: dict) -> dict:
        _check_fields(body, creating=True)
        state = self.server.state
        with state.lock:
            tx = body.get("transactionId")
            if tx:
                for rec in state.records.values():
                    if rec.mailbox == mailbox and not rec.deleted \
                            and rec.event.get("transactionId") == tx:
                        view = rec.graph_view()
                        view["@odata.context"] = self._context(user_segment, "events/$entity")
                        return view
            eid = "AAMkAGE" + uuid.uuid4().hex + uuid.uuid4().hex[:16]  # opaque and path-safe
            now = _now()
            organizer_name = state.organizer if mailbox == state.organizer.lower() else mailbox
            event: dict[str, Any] = {
                "@odata.etag": "", "id": eid, "createdDateTime": now, "lastModifiedDateTime": now,
                "changeKey": "", "categories": [], "transactionId": None,
                "originalStartTimeZone": body["start"]["timeZone"],
                "originalEndTimeZone": body["end"]["timeZone"],
                "iCalUId": "040000008200E00074C5B7101A82E008" + uuid.uuid4().hex.upper(),
                "reminderMinutesBeforeStart": 15, "isReminderOn": True, "hasAttachments": False,
                "subject": "", "bodyPreview": "", "importance": "normal", "sensitivity": "normal",
                "isAllDay": False, "isCancelled": False, "isOrganizer": True,
                "responseRequested": True, "seriesMasterId": None, "showAs": "busy",
                "type": "singleInstance",
                "webLink": f"https://outlook.example.invalid/owa/?itemid={eid}&path=/calendar/item",
                "onlineMeetingUrl": None, "isOnlineMeeting": False, "onlineMeetingProvider": "unknown",
                "allowNewTimeProposals": True, "isDraft": False, "hideAttendees": False,
                "responseStatus": {"response": "organizer", "time": _NULL_TIME},
                "body": {"contentType": "text", "content": ""},
                "start": None, "end": None,
                "location": {"displayName": "", "locationType": "default",
                             "uniqueIdType": "unknown", "address": {}, "coordinates": {}},
                "locations": [], "recurrence": None, "attendees": [],
                "organizer": {"emailAddress": {"name": organizer_name, "address": mailbox}},
                "onlineMeeting": None, "singleValueExtendedProperties": [],
            }
            for key, value in body.items():
                if key not in _READ_ONLY:
                    event[key] = copy.deepcopy(value)
            self._derive(event)
            rec = _Record(event, mailbox)
            state.records[eid] = rec
            view = rec.graph_view()
        view["@odata.context"] = self._context(user_segment, "events/$entity")
        return view

    @staticmethod
    def _derive(event: dict) -> None:
        """Recompute the fields that follow from others, after a create or an update."""
        event["changeKey"] = uuid.uuid4().hex
        event["@odata.etag"] = f'W/"{event["changeKey"]}"'
        event["attendees"] = _normalise_attendees(event.get("attendees") or [])
        if event.get("body") is None:
            event["body"] = {"contentType": "text", "content": ""}
        event["bodyPreview"] = _body_preview(event["body"])
        if event.get("location") and event["location"].get("displayName"):
            event["locations"] = [copy.deepcopy(event["location"])]
        if event.get("isOnlineMeeting"):
            if event.get("onlineMeetingProvider") in (None, "unknown"):
                event["onlineMeetingProvider"] = "teamsForBusiness"
            if not event.get("onlineMeeting"):
                event["onlineMeeting"] = {
                    "joinUrl": f"https://teams.example.invalid/l/meetup-join/{event['id']}"}

    def _list(self, mailbox: str, user_segment: str, path: str, params: dict[str, str]) -> dict:
        flt = self._filter(params)
        expand = self._expand_prop(params)
        select = self._select(params)
        top = self._int_param(params, "$top", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
        skip = self._int_param(params, "$skip", 0, 0, 10**9)
        with self.server.state.lock:
            matching = []
            for rec in self.server.state.records.values():
                if rec.mailbox != mailbox or rec.deleted:
                    continue
                if flt is not None:
                    pid, pvalue = flt
                    props = rec.event.get("singleValueExtendedProperties") or []
                    if not any(p["id"].lower() == pid.lower() and p["value"] == pvalue
                               for p in props):
                        continue
                matching.append(rec)
            page = [r.graph_view(expand_prop=expand, select=select)
                    for r in matching[skip:skip + top]]
        out: dict[str, Any] = {"@odata.context": self._context(user_segment, "events")}
        if params.get("$count", "").lower() == "true":
            out["@odata.count"] = len(matching)
        out["value"] = page
        if skip + top < len(matching):
            nxt = {k: v for k, v in params.items() if k != "$skip"}
            nxt["$top"] = str(top)
            nxt["$skip"] = str(skip + top)
            out["@odata.nextLink"] = (self.server.public_root + path + "?"
                                      + urlencode(nxt, quote_via=quote, safe="$'(),/:@"))
        return out

    def _get(self, mailbox: str, user_segment: str, eid: str, params: dict[str, str]) -> dict:
        expand = self._expand_prop(params)
        select = self._select(params)
        with self.server.state.lock:
            view = self._live(mailbox, eid).graph_view(expand_prop=expand, select=select)
        view["@odata.context"] = self._context(user_segment, "events/$entity")
        return view

    def _patch(self, mailbox: str, user_segment: str, eid: str, body: dict) -> dict:
        _check_fields(body, creating=False)
        with self.server.state.lock:
            rec = self._live(mailbox, eid)
            ev = rec.event
            for key, value in body.items():
                if key in _READ_ONLY:
                    continue
                if key == "singleValueExtendedProperties":
                    merged = {p["id"].lower(): p for p in ev.get(key) or []}
                    for p in value:
                        merged[p["id"].lower()] = copy.deepcopy(p)
                    ev[key] = list(merged.values())
                else:
                    ev[key] = copy.deepcopy(value)
            if "start" in body:
                ev["originalStartTimeZone"] = body["start"]["timeZone"]
            if "end" in body:
                ev["originalEndTimeZone"] = body["end"]["timeZone"]
            ev["lastModifiedDateTime"] = _now()
            self._derive(ev)
            rec.update_count += 1
            view = rec.graph_view()
        view["@odata.context"] = self._context(user_segment, "events/$entity")
        return view

    def _delete(self, mailbox: str, eid: str) -> None:
        with self.server.state.lock:
            self._live(mailbox, eid).deleted = True

    def _cancel(self, mailbox: str, eid: str, body: dict) -> None:
        comment = body.get("Comment", body.get("comment"))
        if comment is not None and not isinstance(comment, str):
            raise _bad("'Comment' must be a string")
        with self.server.state.lock:
            rec = self._live(mailbox, eid)
            rec.cancelled = True
            rec.cancel_count += 1
            rec.cancel_comments.append(comment or "")
            rec.event["lastModifiedDateTime"] = _now()


# --- the public object ------------------------------------------------------------------------
class GraphEmulator:
    """Our Graph calendar emulator, served on loopback from a background thread."""

    def __init__(self, port: int = 0, host: str = LOOPBACK, organizer: str = "me"):
        if host not in _LOOPBACK_HOSTS:
            raise ValueError("the Graph emulator only binds to loopback")
        if not organizer:
            raise ValueError("organizer must be a non-empty mailbox id")
        self.host = _LOOPBACK_HOSTS[host]
        self.port = port or free_port(self.host)
        self.organizer = organizer
        self._state = _State(organizer)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def root_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.root_url + "/v1.0"

    def start(self) -> "GraphEmulator":
        if self._server is not None:
            return self
        try:
            server = _Server((self.host, self.port), _Handler, self._state, self.root_url)
        except OSError as exc:
            raise OSError(f"cannot start the Graph emulator on {self.host}:{self.port}: {exc} "
                          "(is another `ttr local up` running? change the Graph port)") from None
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"graph-emulator:{self.port}", daemon=True)
        self._thread.start()
        return self  # the socket listens from the bind above: no need to poll for readiness

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.stopping.set()  # cut injected delays short
        server.shutdown()
        server.server_close()
        with server.conn_lock:  # idle keep-alive connections would otherwise linger
            for conn in list(server.open_connections):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "GraphEmulator":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # inspection (in-process; also served at /_emulator/...) ------------------------------------
    def events(self) -> list[dict]:
        """Every event ever created, as GET /_emulator/events returns them."""
        return self._state.events()

    def calls(self) -> list[dict]:
        """The Graph calls received, as GET /_emulator/calls returns them."""
        with self._state.lock:
            return [dict(c) for c in self._state.calls]

    def add_fault(self, status: int | None = None, count: int = 1, retry_after: int | None = None,
                  delay: float = 0) -> None:
        """In-process twin of POST /_emulator/faults."""
        spec: dict[str, Any] = {"count": count, "delay": delay}
        if status is not None:
            spec["status"] = status
        if retry_after is not None:
            spec["retryAfter"] = retry_after
        fault = _parse_fault(spec)
        with self._state.lock:
            self._state.faults.append(fault)

    def reset(self) -> None:
        """In-process twin of POST /_emulator/reset: events, faults and the call log."""
        self._state.reset()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.local.graph_emulator",
                                     description="Run the local Graph calendar emulator.")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument("--host", default=LOOPBACK, choices=sorted(_LOOPBACK_HOSTS))
    parser.add_argument("--organizer", default="me", help="the mailbox /me stands for")
    args = parser.parse_args(argv)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with GraphEmulator(port=args.port, host=args.host, organizer=args.organizer) as emulator:
        print(f"ready {emulator.base_url}", flush=True)
        try:
            while not done.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
