"""The archive store: ``archive/{changeId}.json``, the single source of truth.

- Creates are create-only (``If-None-Match: *``).
- Updates are read-modify-write with ``If-Match`` on the ETag and a bounded retry when another
  writer won the race (412, or 409 for a concurrent conditional write). The mutation is
  re-applied to the fresh copy, so nobody's write is overwritten.
- Everything is kept as a dict: fields this code does not know survive every write.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from typing import Callable

from runtime.domain.errors import (
    AlreadyExists,
    ConflictError,
    InvalidInput,
    NotFound,
    PreconditionFailed,
    RetryableError,
    TtrError,
)
from runtime.domain.model import archive_key, check_change_id
from runtime.ports import ObjectStore

DEFAULT_ATTEMPTS = 8


class ArchiveStore:
    def __init__(self, store: ObjectStore, *, attempts: int = DEFAULT_ATTEMPTS,
                 sleep: Callable[[float], None] = time.sleep):
        self.store = store
        self.attempts = attempts
        self.sleep = sleep

    def exists(self, change_id: str) -> bool:
        try:
            self.store.get(archive_key(change_id))
            return True
        except NotFound:
            return False

    def load(self, change_id: str) -> tuple[dict, str]:
        """(archive, etag). NotFound names the change."""
        check_change_id(change_id)
        try:
            obj = self.store.get(archive_key(change_id))
        except NotFound:
            raise NotFound(f"change {change_id} not found (no archive/{change_id}.json)") from None
        return decode_archive(obj.body, change_id), obj.etag

    def create(self, change: dict) -> str:
        change_id = change["changeId"]
        try:
            return self.store.put(archive_key(change_id), encode(change), if_none_match=True)
        except (AlreadyExists, PreconditionFailed):
            raise AlreadyExists(f"change {change_id} already exists") from None

    def update(self, change_id: str, mutate: Callable[[dict], dict | None]) -> dict:
        """Apply ``mutate`` to the current archive and write it with If-Match.

        ``mutate`` returns the new archive, or None for "nothing to write" (then the current one
        is returned). It may raise (e.g. IllegalTransition): nothing is written then. On a lost
        race it runs again on the fresh copy, at most ``attempts`` times.
        """
        return self.update_from(change_id, mutate)[0]

    def update_from(self, change_id: str, mutate: Callable[[dict], dict | None],
                    known: tuple[dict, str] | None = None) -> tuple[dict, str]:
        """``update``, returning (archive, etag). ``known`` is a copy this writer saw last (with its
        ETag): the first attempt starts from it instead of reading, which costs nothing when
        nobody wrote since (the compare-and-swap proves it) and one lost race when someone did.
        Deciding that there is nothing to write is only done on a fresh read."""
        last: Exception | None = None
        for attempt in range(self.attempts):
            from_known = known is not None and attempt == 0
            current, etag = known if from_known else self.load(change_id)
            new = mutate(json.loads(json.dumps(current)))
            if new is None:
                if from_known:
                    known = None
                    current, etag = self.load(change_id)
                    new = mutate(json.loads(json.dumps(current)))
                if new is None:
                    return current, etag
            if new.get("changeId") != change_id:
                raise InvalidInput("an archive write may not change the changeId")
            try:
                return new, self.store.put(archive_key(change_id), encode(new), if_match=etag)
            except PreconditionFailed as exc:
                last = exc
                if not from_known:
                    # Another writer won; back off a little (jittered) and re-read.
                    self.sleep(min(0.05 * (2 ** attempt), 1.0) * random.uniform(0.5, 1.0))
        raise RetryableError(
            f"archive/{change_id}.json: gave up after {self.attempts} conflicting concurrent writes",
            operation="archive.update") from last


def encode(change: dict) -> bytes:
    return json.dumps(change, indent=2, ensure_ascii=False).encode("utf-8")


def decode_archive(body: bytes, change_id: str) -> dict:
    try:
        data = json.loads(body)
    except ValueError:
        raise InvalidInput(f"archive/{change_id}.json is not valid JSON") from None
    if not isinstance(data, dict) or data.get("changeId") != change_id:
        raise InvalidInput(f"archive/{change_id}.json is not a change archive for {change_id}")
    return data


__all__ = ["ArchiveStore", "ConflictError", "encode", "decode_archive"]


class ArchiveRecorder:
    """The backend's archive writes: idempotent appends (and top-level fields such as
    ``meetingMetadata``), by If-Match read-modify-write. The ArchiveActor wraps exactly this."""

    KNOWN = 256   # changes whose last written copy is kept (the ones being processed now)

    def __init__(self, store: ObjectStore, **kw):
        self.archive = ArchiveStore(store, **kw)
        # change -> (archive, ETag) as last written here: the next write for the change starts
        # from it (see ArchiveStore.update_from), so the records of a change that come in a few
        # batches cost one read, not one per batch.
        self.known: dict[str, tuple[dict, str]] = {}
        self._known_lock = threading.Lock()   # commits of different changes run in threads

    def record(self, change_id: str, records: list[dict], set_fields: dict | None = None) -> int:
        """Append the records not there yet (by their ``key``); returns how many were appended."""
        return self.record_many(change_id, [(records, set_fields)])[0]

    def record_many(self, change_id: str, batch: list[tuple[list[dict], dict | None]]) -> list[int]:
        """Group commit: every (records, set_fields) of ``batch``, in order, in one read and one
        compare-and-swap (re-applied to the fresh copy when another writer won). Returns how many
        records each item appended."""
        from runtime.domain.model import append_modifications

        appended = [0] * len(batch)

        def mutate(current: dict) -> dict | None:
            changed = False
            for i, (records, set_fields) in enumerate(batch):
                appended[i] = len(append_modifications(current, records))
                changed = changed or bool(appended[i])
                for k, v in (set_fields or {}).items():
                    if current.get(k) != v:
                        current[k] = v
                        changed = True
            return current if changed else None

        with self._known_lock:
            known = self.known.pop(change_id, None)
        new, etag = self.archive.update_from(change_id, mutate, known)
        with self._known_lock:
            self.known[change_id] = (new, etag)
            while len(self.known) > self.KNOWN:
                self.known.pop(next(iter(self.known)))
        return appended


class GroupCommit:
    """Records for the same change that arrive together go in one write (asyncio side).

    ``submit`` queues an item for its change; one commit per change runs at a time, and every
    item that arrived while the previous commit was writing goes into the next one. A batch
    that fails for good (bad input in one item) is retried item by item, so one item never
    fails the others; a retryable failure fails the batch (each caller retries)."""

    def __init__(self, commit: Callable[[str, list], list[int]], *, linger: float = 0.0):
        self.commit = commit          # e.g. ArchiveRecorder.record_many, run in a thread
        # The tenants of one change finish within moments of each other: the first record waits
        # this long for theirs, so a change for N customers costs a few writes, not N.
        self.linger = linger
        self.pending: dict[str, list] = {}
        self.running: set[str] = set()
        self.writes = 0
        self.batches: list[int] = []  # sizes of the last commits

    async def submit(self, change_id: str, item) -> tuple[int, int]:
        """(appended, batch size) once the item is written; raises the commit's error."""
        fut = asyncio.get_running_loop().create_future()
        self.pending.setdefault(change_id, []).append((item, fut))
        if change_id not in self.running:
            self.running.add(change_id)
            asyncio.get_running_loop().create_task(self._run(change_id))
        return await fut

    async def _run(self, change_id: str) -> None:
        try:
            if self.linger:
                await asyncio.sleep(self.linger)
            while self.pending.get(change_id):
                await self._write(change_id, self.pending.pop(change_id))
        finally:
            self.running.discard(change_id)
            if self.pending.get(change_id):   # arrived after the loop's last look
                self.running.add(change_id)
                asyncio.get_running_loop().create_task(self._run(change_id))

    async def _write(self, change_id: str, batch: list) -> None:
        try:
            counts = await asyncio.to_thread(self.commit, change_id, [item for item, _ in batch])
        except TtrError as exc:
            if len(batch) > 1 and not exc.retryable:
                for one in batch:
                    await self._write(change_id, [one])
                return
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        except BaseException as exc:  # a bug: every caller hears of it
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            raise
        self.writes += 1
        self.batches = [*self.batches[-99:], len(batch)]
        for (_, fut), n in zip(batch, counts):
            if not fut.done():
                fut.set_result((n, len(batch)))
