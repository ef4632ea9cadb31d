"""Faults at the ``ObjectStore`` port: wrappers around any store (the S3 adapter or the memory
store) that fail or race in scripted ways, for the lifecycle's and the archive's tests."""

from __future__ import annotations

import json

from runtime.domain.errors import RetryableError


class FailingTriggers:
    """A store whose writes of one customer's triggers fail (503 SlowDown) while ``failing``."""

    def __init__(self, inner, customer):
        self.inner, self.customer, self.failing = inner, customer, True

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def put(self, key, body, **kw):
        if self.failing and key.startswith(f"customers/{self.customer}/"):
            raise RetryableError("s3.PutObject: 503: SlowDown", operation="s3.PutObject")
        return self.inner.put(key, body, **kw)


class RacingStore:
    """Lets another writer slip in between our read and our conditional write, ``times`` times:
    before each of our ``if_match`` writes it appends ``times`` left to ``otherWriter``."""

    def __init__(self, inner, times):
        self.inner, self.times = inner, times

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def put(self, key, body, *, if_match=None, if_none_match=False):
        if if_match is not None and self.times > 0:
            self.times -= 1
            other = json.loads(self.inner.get(key).body)
            other.setdefault("otherWriter", []).append(self.times)
            self.inner.put(key, json.dumps(other).encode())
        return self.inner.put(key, body, if_match=if_match, if_none_match=if_none_match)
