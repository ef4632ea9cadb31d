"""Pacing SES sends to a tenant's ``max_send_rate`` (a token bucket shared by its threads)."""

from __future__ import annotations

import threading
import time
from typing import Callable


class RateLimiter:
    def __init__(self, rate: float, *, burst: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate, self.burst = float(rate), max(1.0, float(burst))
        self.clock, self.sleep = clock, sleep
        self._tokens = self.burst
        self._last = clock()
        self._lock = threading.Lock()

    def delay_for_next(self) -> float:
        """Reserve one token; return how long the caller must wait before using it."""
        with self._lock:
            now = self.clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def acquire(self) -> None:
        wait = self.delay_for_next()
        if wait > 0:
            self.sleep(wait)
