"""Every call from one actor (or the supervisor) to another, as a port: Ray's exceptions stop here.

Requests and results are the frozen dataclasses of ``actors.messages``. An actor answers our own
errors as ``ErrorData``; ``unwrap`` raises them again as the very same error (type, retryable,
retry_after, code), so callers decide on data, not on Ray's wrappers. A dead, restarting or
missing actor is a retryable failure: the message stays unacked and comes back.
"""

from __future__ import annotations

import threading
from concurrent.futures import TimeoutError as FutureTimeout

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayError

from actors.messages import (
    AttendeesRequest,
    AttendeesResult,
    MeetingCall,
    MeetingResult,
    RecordRequest,
    RecordResult,
    RenderCall,
    SuppressionChanged,
    unwrap,
)
from runtime.domain.errors import RetryableError
from runtime.telemetry import inject

CALL_TIMEOUT = 120.0
MEETING_TIMEOUT = 300.0
HEALTH_TIMEOUT = 10.0
# Every named actor's name, in one place (``ttr status`` and the alert actor find them by it).
ARCHIVE_ACTOR_NAME = "archive"
MEETINGS_ACTOR_NAME = "meetings"
ALERT_ACTOR_NAME = "alerts"
FEEDBACK_ACTOR_NAME = "feedback"
RECONCILER_ACTOR_NAME = "reconciler"
RENDERER_ACTOR_NAME = "renderer"


def customer_actor_name(code: str) -> str:
    return f"customer:{code}"


# Handles by (name, namespace): ray.get_actor is a round trip to the GCS, and a tenant calls the
# archive and meeting actors for every message. A handle stays valid while Ray restarts its actor;
# one whose actor is gone for good (killed, recreated by the supervisor under the same name) is
# dropped at its first RayActorError and looked up again.
_handles: dict[tuple[str, str], object] = {}
_handles_lock = threading.Lock()


def actor(name: str, namespace: str):
    key = (name, namespace)
    with _handles_lock:
        handle = _handles.get(key)
    if handle is not None:
        return handle
    try:
        handle = ray.get_actor(name, namespace=namespace)
    except ValueError:
        raise RetryableError(f"actor {name!r} is not running", operation=f"ray.get_actor:{name}") from None
    with _handles_lock:
        _handles[key] = handle
    return handle


def _replaced(name: str, namespace: str, stale) -> bool:
    """Drop the cached handle ``stale`` after a RayActorError; True when the name now belongs to
    another actor (the supervisor recreated it), so the call may go to that one at once."""
    with _handles_lock:
        if _handles.get((name, namespace)) is stale:
            del _handles[(name, namespace)]
    try:
        fresh = actor(name, namespace)
    except RetryableError:
        return False
    return fresh._actor_id != stale._actor_id


def _unavailable(operation: str, exc: BaseException) -> RetryableError:
    if isinstance(exc, (RayActorError, GetTimeoutError, FutureTimeout)):
        return RetryableError(f"{operation.split('.')[0]} unavailable: {type(exc).__name__}", operation=operation)
    return RetryableError(f"{operation} failed: {exc}", operation=operation)


def call(name: str, namespace: str, method: str, request, *, timeout: float = CALL_TIMEOUT):
    """Call ``method`` of actor ``name`` from a worker thread; the result, or our error raised.

    ``ref.future()`` instead of ``ray.get``: callers run in threads of async actors, where
    ray.get would warn about blocking the event loop."""
    operation = f"{name}.{method}"
    for attempt in (1, 2):
        handle = actor(name, namespace)
        try:
            result = getattr(handle, method).remote(request).future().result(timeout=timeout)
        except RayActorError as exc:
            if attempt == 1 and _replaced(name, namespace, handle):
                continue
            raise _unavailable(operation, exc) from None
        except (RayError, FutureTimeout) as exc:
            raise _unavailable(operation, exc) from None
        return unwrap(result)


async def acall(name: str, namespace: str, method: str, request):
    """The same from inside an async actor."""
    operation = f"{name}.{method}"
    for attempt in (1, 2):
        handle = actor(name, namespace)
        try:
            result = await getattr(handle, method).remote(request)
        except RayActorError as exc:
            if attempt == 1 and _replaced(name, namespace, handle):
                continue
            raise _unavailable(operation, exc) from None
        except RayError as exc:
            raise _unavailable(operation, exc) from None
        return unwrap(result)


async def tell_suppression_changed(code: str, namespace: str, addresses: tuple[str, ...]) -> None:
    """Tell tenant ``code``'s actor that its suppression list changed (from the FeedbackActor)."""
    await acall(customer_actor_name(code), namespace, "suppression_changed", SuppressionChanged(addresses))


class ActorArchiveWriter:
    """The handler's ``ArchiveWriter`` port, backed by the ArchiveActor (from a worker thread)."""

    def __init__(self, namespace: str, name: str = ARCHIVE_ACTOR_NAME):
        self.namespace, self.name = namespace, name

    def record(self, change_id: str, records: list[dict], set_fields: dict | None = None) -> int:
        result: RecordResult = call(self.name, self.namespace, "record",
                                    RecordRequest(change_id, tuple(records), set_fields, inject()))
        return result.appended


class ActorRenderer:
    """The handler's ``Renderer`` port, backed by the renderer actor (from a worker thread): the
    tenant's process never loads jinja2 and the templates."""

    def __init__(self, namespace: str, name: str = RENDERER_ACTOR_NAME):
        self.namespace, self.name = namespace, name

    def render(self, request):
        return call(self.name, self.namespace, "render", RenderCall(request, inject()))


class AsyncArchiveWriter:
    """The same port for the MeetingCoordinator (async)."""

    def __init__(self, namespace: str, name: str = ARCHIVE_ACTOR_NAME):
        self.namespace, self.name = namespace, name

    async def __call__(self, change_id: str, records: list, set_fields: dict | None) -> int:
        result: RecordResult = await acall(self.name, self.namespace, "record",
                                           RecordRequest(change_id, tuple(records), set_fields, inject()))
        return result.appended


class ActorMeetings:
    """The handler's ``Meetings`` port, backed by the MeetingCoordinator actor."""

    def __init__(self, namespace: str, name: str = MEETINGS_ACTOR_NAME):
        self.namespace, self.name = namespace, name

    def handle(self, change_id: str, step) -> str:
        result: MeetingResult = call(self.name, self.namespace, "handle",
                                     MeetingCall(change_id, step.meeting, step.seq, inject()),
                                     timeout=MEETING_TIMEOUT)
        return result.result


class ActorAttendees:
    """The MeetingCoordinator's attendee source: each tenant's own actor (credentials stay there).
    ``MeetingService`` asks every customer at once (``asyncio.gather``)."""

    def __init__(self, namespace: str):
        self.namespace = namespace

    async def calendar_recipients(self, customer: str) -> list[str]:
        result: AttendeesResult = await acall(customer_actor_name(customer), self.namespace, "calendar_recipients",
                                              AttendeesRequest(inject()))
        return list(result.addresses)


def health_of(handle, timeout: float = HEALTH_TIMEOUT) -> dict:
    """An actor's health as the dict ``ttr status`` and the supervisor report: ``ok`` and the typed
    health's fields, or ``ok: False`` and the Ray error's name."""
    try:
        return {"ok": True, **ray.get(handle.health.remote(), timeout=timeout).to_json()}
    except RayError as exc:
        return {"ok": False, "error": type(exc).__name__}


def health_by_name(name: str, namespace: str, timeout: float = HEALTH_TIMEOUT) -> dict | None:
    """``health_of`` the named actor; None when there is no such actor."""
    try:
        handle = ray.get_actor(name, namespace=namespace)
    except ValueError:
        return None
    return health_of(handle, timeout)
