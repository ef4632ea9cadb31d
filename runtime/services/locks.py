"""Per-key locks (one per changeId) that do not outlive their users.

A long-lived actor sees an unbounded stream of changeIds; a plain ``defaultdict(Lock)`` would
keep one lock per change forever. These keep a lock only while someone holds or waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import Counter
from typing import AsyncIterator, Iterator


class KeyedLock:
    """Threads: ``with locks.hold(key): ...`` serialises work per key."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._users: Counter = Counter()

    @contextlib.contextmanager
    def hold(self, key: str) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
            self._users[key] += 1
        try:
            with lock:
                yield
        finally:
            with self._guard:
                self._users[key] -= 1
                if not self._users[key]:
                    del self._users[key], self._locks[key]

    def __len__(self) -> int:
        return len(self._locks)


class KeyedAsyncLock:
    """One event loop: ``async with locks.hold(key): ...`` serialises coroutines per key."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: Counter = Counter()

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] += 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key], self._locks[key]

    def __len__(self) -> int:
        return len(self._locks)
