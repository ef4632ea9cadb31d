"""The Calendar port on msgraph-sdk, and the one place Graph errors are translated.

- ``GraphCalendar`` talks to ``{base_url}/users/{organizer}/events`` through a
  ``GraphServiceClient`` whose adapter and httpx client we build ourselves, so that the base URL
  (the local emulator's ``http://127.0.0.1:...``), the timeouts and the SDK's retry policy are
  ours rather than the SDK defaults (100 s timeouts, retry delays of several seconds).
- Auth: ``ClientSecretCredential`` from ``AZURE_TENANT_ID``/``AZURE_CLIENT_ID``/
  ``AZURE_CLIENT_SECRET`` in production (azure-identity caches the token), a static bearer token
  for the emulator. Either way the token is only ever sent to the base URL's host.
- Errors: kiota's ``APIError``, httpx transport errors and azure-identity failures are
  translated by ``graph_errors`` into ``runtime.domain.errors`` (retryability and Retry-After as data).

Retries: the SDK's RetryHandler re-sends on 429/503/504, honouring Retry-After. That is safe for
GET and PATCH (same body, same result) and for the create (it carries a ``transactionId``, so
Graph drops a repeat). It is not safe for cancel, which emails every attendee: cancel is sent
with retries disabled, and a failure is handed to the caller, who checks before trying again.

An instance is bound to the event loop it is first used on (httpx pools connections per loop):
create it, use it and ``aclose()`` it inside one loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Iterator, Mapping
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from azure.core.exceptions import AzureError, ClientAuthenticationError
from kiota_abstractions.api_error import APIError
from kiota_abstractions.authentication import (
    AccessTokenProvider,
    AllowedHostsValidator,
    BaseBearerTokenAuthenticationProvider,
)
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_authentication_azure.azure_identity_authentication_provider import AzureIdentityAuthenticationProvider
from kiota_http._exceptions import KiotaHTTPXError
from kiota_http.kiota_client_factory import KiotaClientFactory
from kiota_http.middleware import RetryHandler
from kiota_http.middleware.options import RetryHandlerOption
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph._version import VERSION as MSGRAPH_VERSION
from msgraph.generated.models.attendee import Attendee
from msgraph.generated.models.attendee_type import AttendeeType
from msgraph.generated.models.body_type import BodyType
from msgraph.generated.models.date_time_time_zone import DateTimeTimeZone
from msgraph.generated.models.email_address import EmailAddress
from msgraph.generated.models.event import Event
from msgraph.generated.models.item_body import ItemBody
from msgraph.generated.models.location import Location
from msgraph.generated.models.online_meeting_provider_type import OnlineMeetingProviderType
from msgraph.generated.models.single_value_legacy_extended_property import SingleValueLegacyExtendedProperty
from msgraph.generated.users.item.events.events_request_builder import EventsRequestBuilder
from msgraph.generated.users.item.events.item.cancel.cancel_post_request_body import CancelPostRequestBody
from msgraph_core import APIVersion, GraphClientFactory
from msgraph_core.middleware import GraphTelemetryHandler
from msgraph_core.middleware.options import GraphTelemetryHandlerOption

from runtime.domain.config import GraphConfig
from runtime.domain.errors import ConfigError, NotFound, PermanentError, RetryableError, TtrError
from runtime.domain.meetings import EXTENDED_PROPERTY_ID, CalendarEvent, MeetingRequest

GRAPH_HOST = "graph.microsoft.com"
AZURE_ENV = ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET")
EMULATOR_TOKEN = "local-emulator-token"
DEFAULT_TIMEOUT = 30.0
# Longest Retry-After the SDK may sleep on inside a call. A longer one is handed to the caller
# (RetryableError.retry_after), whose queue backoff waits without holding a worker.
DEFAULT_MAX_INLINE_WAIT = 20.0
# Graph returns event times in UTC when asked, whatever zone the event was created in; without
# the header it may answer in the organizer's Windows zone name, which ZoneInfo cannot read.
_PREFER_UTC = 'outlook.timezone="UTC"'
_SELECT = ["id", "subject", "start", "end", "onlineMeeting", "organizer", "attendees", "isCancelled",
           "hideAttendees"]
_PAGE_SIZE = 50
_MAX_PAGES = 20  # a change has one event; many pages means something else is wrong

_VENDOR_ERRORS = (APIError, httpx.HTTPError, httpx.InvalidURL, KiotaHTTPXError, AzureError, TimeoutError)


# --- error translation ------------------------------------------------------------------------
def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not headers:
        return None
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(when.tzinfo or timezone.utc)).total_seconds())


def _graph_code(exc: APIError) -> tuple[str, str]:
    """(code, message) from Graph's ``{"error": {"code", "message"}}`` when it was parsed."""
    err = getattr(exc, "error", None)  # msgraph's ODataError carries the parsed payload here
    code = getattr(err, "code", None) or ""
    message = getattr(err, "message", None) or exc.message or ""
    return code, message


def translate(exc: BaseException, operation: str) -> TtrError:
    """Map what the SDK stack raises to our tree. Never returns a vendor type."""
    if isinstance(exc, APIError):
        status = exc.response_status_code or 0
        code, message = _graph_code(exc)
        text = f"{operation}: HTTP {status} {code or '(no code)'}" + (f": {message}" if message else "")
        if status == 404:
            return NotFound(text, code=code or "NotFound")
        # 409: Graph's ErrorIrresolvableConflict / concurrent item change; worth a fresh try.
        if status in (408, 409, 429) or status >= 500:
            return RetryableError(text, operation=operation, code=code or str(status),
                                  retry_after=_retry_after(exc.response_headers))
        return PermanentError(text, operation=operation, code=code or str(status))
    if isinstance(exc, (httpx.TimeoutException, TimeoutError)):
        return RetryableError(f"{operation}: Graph did not answer in time ({type(exc).__name__})",
                              operation=operation, code="Timeout")
    if isinstance(exc, httpx.TransportError):
        return RetryableError(f"{operation}: connection problem: {type(exc).__name__}: {exc}",
                              operation=operation, code=type(exc).__name__)
    if isinstance(exc, ClientAuthenticationError):
        # Entra ID answered and said no (bad secret, unknown client): retrying will not help,
        # unless it did not really answer (no status, throttled, 5xx).
        status = exc.status_code or 0
        cls = RetryableError if status in (0, 429) or status >= 500 else PermanentError
        return cls(f"{operation}: Graph authentication failed: {exc.message}", operation=operation,
                   code="AuthenticationFailed")
    if isinstance(exc, AzureError):  # token endpoint unreachable and the like
        return RetryableError(f"{operation}: Graph authentication: {type(exc).__name__}: {exc}",
                              operation=operation, code=type(exc).__name__)
    if isinstance(exc, (httpx.HTTPError, httpx.InvalidURL, KiotaHTTPXError)):
        return PermanentError(f"{operation}: {type(exc).__name__}: {exc}", operation=operation,
                              code=type(exc).__name__)
    raise exc


@contextlib.contextmanager
def graph_errors(operation: str) -> Iterator[None]:
    """``with graph_errors("graph.events.create"): await ...`` translates what the SDK raises."""
    try:
        yield
    except _VENDOR_ERRORS as exc:
        raise translate(exc, operation) from exc


def request_token(host: str, tenant: str, client: str, secret: str) -> None:
    """Ask Entra ID for an app-only token for ``host`` (the doctor's graph/token check); any
    failure comes out as our error (``graph_errors``), the token itself is dropped."""
    from azure.identity import ClientSecretCredential

    with graph_errors("graph.token"):
        ClientSecretCredential(tenant, client, secret).get_token(f"https://{host}/.default")


# --- SDK plumbing -----------------------------------------------------------------------------
class _StaticToken(AccessTokenProvider):
    """A fixed bearer token (the emulator accepts any non-empty one), for allowed hosts only."""

    def __init__(self, token: str, allowed_hosts: list[str]):
        self._token = token
        self._hosts = AllowedHostsValidator(allowed_hosts)

    async def get_authorization_token(
            self, uri: str, additional_authentication_context: dict[str, Any] | None = None) -> str:
        return self._token if self._hosts.is_url_host_valid(uri) else ""

    def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
        return self._hosts


class _BoundedRetryHandler(RetryHandler):
    """The SDK's RetryHandler, except that a Retry-After longer than ``max_inline_wait`` ends the
    retries: the response (and its Retry-After) goes back to the caller instead of blocking it
    for up to three minutes (the SDK's own limit)."""

    def __init__(self, options: RetryHandlerOption, max_inline_wait: float):
        super().__init__(options)
        self.max_inline_wait = max_inline_wait

    def get_delay_time(self, retry_count: int, response: httpx.Response | None = None,
                       delay: float = RetryHandlerOption.DEFAULT_DELAY) -> float:
        wait = super().get_delay_time(retry_count, response, delay)
        # The handler does not retry once the delay reaches MAX_DELAY: that is our "stop".
        return RetryHandlerOption.MAX_DELAY if wait > self.max_inline_wait else wait


def _http_client(base_url: str, retry: RetryHandlerOption, timeout: float,
                 max_inline_wait: float) -> httpx.AsyncClient:
    # The SDK's default middleware, with our RetryHandler instance in the RetryHandler's place.
    middleware = [_BoundedRetryHandler(retry, max_inline_wait) if isinstance(m, RetryHandler) else m
                  for m in KiotaClientFactory.get_default_middleware(None)]
    middleware.append(GraphTelemetryHandler(GraphTelemetryHandlerOption(
        api_version=APIVersion.v1, sdk_version=MSGRAPH_VERSION)))
    # HTTP/1.1: the SDK's default client asks for HTTP/2, which needs h2 (not our dependency).
    client = httpx.AsyncClient(base_url=base_url,
                               timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)))
    return GraphClientFactory.create_with_custom_middleware(middleware, client=client)


def _aware(value: DateTimeTimeZone | None) -> str:
    """Graph's ``{dateTime, timeZone}`` -> ISO 8601 with an offset."""
    if value is None or not value.date_time:
        return ""
    name = value.time_zone or "UTC"
    try:
        # Graph writes seven fractional digits; datetime reads at most six.
        naive = datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", value.date_time.rstrip("Z")))
        tz = timezone.utc if name.upper() in ("UTC", "Z") else ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        # We ask for UTC (Prefer: outlook.timezone), so this is a Graph answer we cannot read.
        raise PermanentError(f"graph: unreadable event time {value.date_time!r} in {name!r}",
                             operation="graph.events.read", code="UnreadableTime") from None
    return naive.replace(tzinfo=tz).isoformat()


def _odata_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# --- the adapter ------------------------------------------------------------------------------
class GraphCalendar:
    """The Calendar port (``runtime.ports.Calendar``) over Microsoft Graph.

    ``max_retries``/``retry_delay`` configure the SDK RetryHandler (``retry_delay`` is the base
    delay it adds to each exponential backoff when Graph sends no Retry-After); ``timeout`` bounds
    each HTTP attempt and ``deadline`` (default: enough for every attempt) each whole operation.
    """

    def __init__(self, base_url: str, organizer: str, *, credential: Any = None,
                 static_token: str | None = None, max_retries: int = 3,
                 retry_delay: float = 1.0, timeout: float = DEFAULT_TIMEOUT,
                 max_inline_wait: float = DEFAULT_MAX_INLINE_WAIT, deadline: float | None = None):
        if (credential is None) == (static_token is None):
            raise ValueError("GraphCalendar needs exactly one of credential or static_token")
        self.base_url = base_url.rstrip("/")
        self.organizer = organizer
        host = urlsplit(self.base_url).hostname
        if not host:
            raise ConfigError(f"graph.base_url: {base_url!r} is not an absolute URL")
        if static_token is not None:
            auth = BaseBearerTokenAuthenticationProvider(_StaticToken(static_token, [host]))
        else:
            auth = AzureIdentityAuthenticationProvider(credential, allowed_hosts=[host])
        retry = RetryHandlerOption(delay=retry_delay, max_retries=max_retries)
        self._deadline = deadline or (max_retries + 1) * (timeout + max_inline_wait)
        self._http = _http_client(self.base_url, retry, timeout, max_inline_wait)
        adapter = GraphRequestAdapter(auth, client=self._http)
        adapter.base_url = self.base_url  # what {+baseurl} expands to in every request
        self._events = GraphServiceClient(request_adapter=adapter).users.by_user_id(organizer).events

    @classmethod
    def from_config(cls, graph_cfg: GraphConfig, *, emulator: bool, **kwargs: Any) -> "GraphCalendar":
        """Production: ClientSecretCredential from the AZURE_* variables. The emulator (or any
        non-Graph base URL without AZURE_* variables): a static token."""
        have_azure = all(os.environ.get(k) for k in AZURE_ENV)
        host = (urlsplit(graph_cfg.base_url).hostname or "").lower()
        is_graph = host == GRAPH_HOST or host.endswith("." + GRAPH_HOST)
        if emulator or (not is_graph and not have_azure):
            return cls(graph_cfg.base_url, graph_cfg.organizer, static_token=EMULATOR_TOKEN, **kwargs)
        if not have_azure:
            raise ConfigError("graph: Microsoft Graph needs AZURE_TENANT_ID, AZURE_CLIENT_ID and "
                              "AZURE_CLIENT_SECRET in the environment")
        from azure.identity import ClientSecretCredential

        # The synchronous credential: azure-identity caches the token, so get_token only reaches
        # Entra ID about once an hour (its async twin would need aiohttp, not a dependency).
        credential = ClientSecretCredential(*(os.environ[k] for k in AZURE_ENV))
        return cls(graph_cfg.base_url, graph_cfg.organizer, credential=credential, **kwargs)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> "GraphCalendar":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    # --- plumbing -----------------------------------------------------------------------------
    async def _run(self, operation: str, awaitable: Any) -> Any:
        # The deadline bounds the whole call, SDK retries included, so a Graph that trickles
        # bytes (never tripping httpx's per-read timeout) still cannot hang the caller.
        from runtime.telemetry import span

        with span(operation, {"ttr.graph.base_url": self.base_url}), graph_errors(operation):
            async with asyncio.timeout(self._deadline):
                return await awaitable

    @staticmethod
    def _config(query: Any = None, *, retry: RetryHandlerOption | None = None) -> RequestConfiguration:
        cfg = RequestConfiguration(query_parameters=query, options=[retry] if retry else None)
        cfg.headers.add("Prefer", _PREFER_UTC)
        return cfg

    def _to_event(self, ev: Event | None, operation: str) -> CalendarEvent:
        if ev is None or not ev.id:
            raise PermanentError(f"{operation}: Graph answered without an event",
                                 operation=operation, code="EmptyResponse")
        join_url = (ev.online_meeting.join_url if ev.online_meeting else None) or ev.online_meeting_url
        organizer = (ev.organizer.email_address.address
                     if ev.organizer and ev.organizer.email_address else None) or self.organizer
        return CalendarEvent(id=ev.id, subject=ev.subject or "", start=_aware(ev.start),
                             end=_aware(ev.end), join_url=join_url, organizer=organizer,
                             attendee_count=len(ev.attendees or []), cancelled=bool(ev.is_cancelled))

    @staticmethod
    def _event_fields(req: MeetingRequest) -> dict[str, Any]:
        """What create and update both send: the request is the whole truth for these fields."""
        return dict(
            subject=req.subject,
            body=ItemBody(content_type=BodyType.Html, content=req.body_html),
            start=DateTimeTimeZone(date_time=req.start, time_zone=req.time_zone),
            end=DateTimeTimeZone(date_time=req.end, time_zone=req.time_zone),
            attendees=[Attendee(email_address=EmailAddress(address=a), type=AttendeeType.Required)
                       for a in req.attendees],
            hide_attendees=req.hide_attendees,
        )

    # --- the port -----------------------------------------------------------------------------
    async def create(self, req: MeetingRequest) -> CalendarEvent:
        op = "graph.events.create"
        body = Event(
            **self._event_fields(req),
            transaction_id=req.transaction_id,  # lets Graph drop the SDK's re-POST after a 429/5xx
            is_online_meeting=True,
            online_meeting_provider=OnlineMeetingProviderType.TeamsForBusiness,
            single_value_extended_properties=[
                SingleValueLegacyExtendedProperty(id=EXTENDED_PROPERTY_ID, value=req.change_id)],
        )
        if req.location:
            body.location = Location(display_name=req.location)
        return self._to_event(await self._run(op, self._events.post(body, self._config())), op)

    async def update(self, event_id: str, req: MeetingRequest) -> CalendarEvent:
        op = "graph.events.update"
        # An empty location clears one the change no longer names (None would leave it as is).
        body = Event(**self._event_fields(req), location=Location(display_name=req.location or ""))
        return self._to_event(await self._run(op, self._events.by_event_id(event_id).patch(
            body, self._config())), op)

    async def get(self, event_id: str) -> CalendarEvent:
        op = "graph.events.get"
        query = EventsRequestBuilder.EventsRequestBuilderGetQueryParameters(select=_SELECT)
        return self._to_event(await self._run(op, self._events.by_event_id(event_id).get(
            self._config(query))), op)

    async def cancel(self, event_id: str, comment: str) -> None:
        # Never retried here: Graph may have cancelled (and emailed everyone) before a 5xx or a
        # timeout reached us. The caller reads the event (``get``) before trying again.
        no_retry = RetryHandlerOption(delay=0, max_retries=0, should_retry=False)
        await self._run("graph.events.cancel", self._events.by_event_id(event_id).cancel.post(
            CancelPostRequestBody(comment=comment), self._config(retry=no_retry)))

    async def find_by_change(self, change_id: str) -> CalendarEvent | None:
        op = "graph.events.find"
        query = EventsRequestBuilder.EventsRequestBuilderGetQueryParameters(
            filter=(f"singleValueExtendedProperties/Any(ep: ep/id eq {_odata_literal(EXTENDED_PROPERTY_ID)}"
                    f" and ep/value eq {_odata_literal(change_id)})"),
            select=_SELECT, top=_PAGE_SIZE)
        page = await self._run(op, self._events.get(self._config(query)))
        found: list[CalendarEvent] = []
        for _ in range(_MAX_PAGES):
            found += [self._to_event(ev, op) for ev in (page.value or [])] if page else []
            if not page or not page.odata_next_link:
                break
            # The next link carries the query; the base URL's host check still guards the token.
            page = await self._run(op, self._events.with_url(page.odata_next_link).get(self._config()))
        # A live event wins; a cancelled one still answers "this change had a meeting".
        return next((e for e in found if not e.cancelled), found[0] if found else None)
