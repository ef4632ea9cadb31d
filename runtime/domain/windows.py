"""Windowed counters: per-minute buckets kept by the actors, summed over an alert rule's window
(``runtime.domain.alerts``). Pure and without pydantic: every tenant keeps two."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Callable, Mapping


class WindowCounter:
    """Counts per key in per-minute buckets, keeping ``keep_minutes``."""

    def __init__(self, *, bucket_seconds: int = 60, keep_minutes: int = 24 * 60,
                 clock: Callable[[], float] = time.time):
        self.bucket_seconds = bucket_seconds
        self.keep = keep_minutes * 60 // bucket_seconds
        self.clock = clock
        self._buckets: dict[int, Counter] = {}
        self._lock = threading.Lock()

    def add(self, key: str, n: int = 1) -> None:
        b = int(self.clock() // self.bucket_seconds)
        with self._lock:
            self._buckets.setdefault(b, Counter())[key] += n
            for old in [k for k in self._buckets if k <= b - self.keep]:
                del self._buckets[old]

    def snapshot(self) -> dict:
        with self._lock:
            return {"bucket_seconds": self.bucket_seconds,
                    "buckets": [[b * self.bucket_seconds, dict(c)] for b, c in sorted(self._buckets.items())]}


def window_totals(snapshot: Mapping | None, window_minutes: float, now: float | None = None) -> Counter:
    """Sum a ``WindowCounter.snapshot()`` over the last ``window_minutes``."""
    out: Counter = Counter()
    if not snapshot:
        return out
    now = time.time() if now is None else now
    start = now - window_minutes * 60
    width = snapshot.get("bucket_seconds", 60)
    for bucket_start, counts in snapshot.get("buckets", []):
        if bucket_start + width > start:
            out.update(counts)
    return out


def failure_pct(totals: Mapping[str, int], *, fail: str = "failure", ok: str = "success") -> float | None:
    n = totals.get(fail, 0) + totals.get(ok, 0)
    return None if n == 0 else 100.0 * totals.get(fail, 0) / n
