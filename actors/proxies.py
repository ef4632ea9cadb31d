"""Port implementations that call other actors; Ray's exceptions stop here.

A dead or restarting actor is a retryable failure: the message stays unacked and comes back.
"""

from __future__ import annotations

from concurrent.futures import TimeoutError as FutureTimeout

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayError

from runtime.errors import InvalidInput, NotFound, PermanentError, RetryableError

CALL_TIMEOUT = 120.0


def wait(ref, timeout: float = CALL_TIMEOUT):
    """Block this (worker) thread on an actor call. ``ref.future()`` instead of ``ray.get``:
    the caller runs in a thread of an async actor, where ray.get would warn about the loop."""
    return ref.future().result(timeout=timeout)


def _actor(name: str, namespace: str):
    try:
        return ray.get_actor(name, namespace=namespace)
    except ValueError:
        raise RetryableError(f"actor {name!r} is not running", operation=f"ray.get_actor:{name}") from None


class ActorArchiveWriter:
    """``ArchiveWriter`` backed by the cluster's ArchiveActor."""

    def __init__(self, namespace: str, name: str = "archive"):
        self.namespace, self.name = namespace, name

    def record(self, change_id: str, records: list[dict], set_fields: dict | None = None) -> int:
        try:
            ref = _actor(self.name, self.namespace).record.remote(change_id, records, set_fields)
            result = wait(ref)
        except (RayActorError, GetTimeoutError, FutureTimeout) as exc:
            raise RetryableError(f"archive actor unavailable: {type(exc).__name__}",
                                 operation="archive.record") from None
        except RayError as exc:
            raise RetryableError(f"archive actor call failed: {exc}", operation="archive.record") from None
        if "error" in result:
            kind, text = result.get("kind"), result["error"]
            if kind == "NotFound":
                raise NotFound(text)
            if kind in ("InvalidInput", "ConfigError"):
                raise InvalidInput(text)
            if result.get("retryable"):
                raise RetryableError(text, operation="archive.record", retry_after=result.get("retry_after"))
            raise PermanentError(text, operation="archive.record")
        return int(result["appended"])
