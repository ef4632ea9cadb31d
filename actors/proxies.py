"""Port implementations that call other actors; Ray's exceptions stop here.

Actors return our errors as data (``error_data``), and callers raise them again
(``raise_error_data``), so retryability survives the trip. A dead or restarting actor is a
retryable failure: the message stays unacked and comes back.
"""

from __future__ import annotations

from concurrent.futures import TimeoutError as FutureTimeout

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayError

from runtime.errors import InvalidInput, NotFound, PermanentError, RetryableError, TtrError
from runtime.telemetry import inject

CALL_TIMEOUT = 120.0
MEETING_TIMEOUT = 300.0


def error_data(exc: TtrError) -> dict:
    return {"error": str(exc), "kind": type(exc).__name__, "retryable": exc.retryable,
            "retry_after": exc.retry_after}


def raise_error_data(result: dict, operation: str) -> None:
    if "error" not in result:
        return
    kind, text = result.get("kind"), result["error"]
    if kind == "NotFound":
        raise NotFound(text)
    if kind in ("InvalidInput", "ConfigError"):
        raise InvalidInput(text)
    if result.get("retryable"):
        raise RetryableError(text, operation=operation, retry_after=result.get("retry_after"))
    raise PermanentError(text, operation=operation)


def actor(name: str, namespace: str):
    try:
        return ray.get_actor(name, namespace=namespace)
    except ValueError:
        raise RetryableError(f"actor {name!r} is not running", operation=f"ray.get_actor:{name}") from None


def call(name: str, namespace: str, method: str, *args, timeout: float = CALL_TIMEOUT) -> dict:
    """Call ``method`` of actor ``name`` from a worker thread and wait for its result dict.

    ``ref.future()`` instead of ``ray.get``: callers run in threads of async actors, where
    ray.get would warn about blocking the event loop."""
    operation = f"{name}.{method}"
    try:
        ref = getattr(actor(name, namespace), method).remote(*args)
        result = ref.future().result(timeout=timeout)
    except (RayActorError, GetTimeoutError, FutureTimeout) as exc:
        raise RetryableError(f"{name} unavailable: {type(exc).__name__}", operation=operation) from None
    except RayError as exc:
        raise RetryableError(f"{operation} failed: {exc}", operation=operation) from None
    raise_error_data(result, operation)
    return result


class ActorArchiveWriter:
    """``ArchiveWriter`` backed by the cluster's ArchiveActor."""

    def __init__(self, namespace: str, name: str = "archive"):
        self.namespace, self.name = namespace, name

    def record(self, change_id: str, records: list[dict], set_fields: dict | None = None) -> int:
        return int(call(self.name, self.namespace, "record", change_id, records, set_fields, inject())["appended"])


class ActorMeetings:
    """The handler's ``Meetings`` port backed by the MeetingCoordinator actor."""

    def __init__(self, namespace: str, name: str = "meetings"):
        self.namespace, self.name = namespace, name

    def handle(self, change_id: str, step) -> str:
        return call(self.name, self.namespace, "handle", change_id, step.meeting, step.seq, inject(),
                    timeout=MEETING_TIMEOUT)["result"]
