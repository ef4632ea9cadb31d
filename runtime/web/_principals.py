"""What the portal keeps on the server about each signed-in principal, in the bucket.

``web/principals/{sha256(source, name)}.json`` holds:

- ``generation``: every session cookie carries the generation it was issued under; signing out
  adds one, which ends every session of that principal on every portal instance (a stolen or
  replayed cookie included);
- ``tokens``: the principal's API tokens by id (expiry, roles, label). A bearer token is only
  good while its id is here: each can be revoked on its own, and expired ones are pruned.

The records live in the bucket (not in a process) so that several portal instances agree; each
instance caches a record for ``CACHE_TTL`` seconds, so a sign-out or a revocation made on one
instance takes effect on the others within that time (at once on the instance that made it).
Writes are compare-and-swap on the object's ETag, retried a few times.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from typing import Callable

from runtime.domain.errors import AlreadyExists, NotFound, PreconditionFailed, RetryableError

PREFIX = "web/principals/"
CACHE_TTL = 5.0
ATTEMPTS = 5


def record_key(source: str, name: str) -> str:
    digest = hashlib.sha256(f"{source}\0{name.strip().lower()}".encode()).hexdigest()
    return f"{PREFIX}{digest}.json"


def _empty(source: str, name: str) -> dict:
    return {"source": source, "name": name, "generation": 0, "tokens": {}}


class PrincipalRecords:
    def __init__(self, store, *, clock: Callable[[], float] = time.time, ttl: float = CACHE_TTL,
                 monotonic: Callable[[], float] = time.monotonic):
        self.store = store
        self.clock = clock
        self.ttl = ttl
        self.monotonic = monotonic
        self._cache: dict[str, tuple[float, dict]] = {}
        self._lock = threading.Lock()

    # reads ---------------------------------------------------------------------------------------
    def load(self, source: str, name: str, *, fresh: bool = False) -> dict:
        key = record_key(source, name)
        with self._lock:
            hit = self._cache.get(key)
        if not fresh and hit is not None and hit[0] > self.monotonic():
            return hit[1]
        data, _ = self._fetch(source, name)
        self._remember(key, data)
        return data

    def generation(self, source: str, name: str) -> int:
        return int(self.load(source, name).get("generation") or 0)

    def session_valid(self, source: str, name: str, generation: object) -> bool:
        """A session of this generation is still current (a newer one than the cached record, made
        on another instance a moment ago, is checked against the bucket)."""
        cached = self.generation(source, name)
        if generation == cached:
            return True
        if not isinstance(generation, int) or isinstance(generation, bool) or generation < cached:
            return False  # signed out since: no need to ask the bucket (a replayed cookie costs nothing)
        return generation == int(self.load(source, name, fresh=True).get("generation") or 0)

    def token(self, source: str, name: str, token_id: str) -> dict | None:
        entry = (self.load(source, name).get("tokens") or {}).get(token_id)
        if entry is None:  # maybe minted on another instance since the record was cached
            entry = (self.load(source, name, fresh=True).get("tokens") or {}).get(token_id)
        if entry is None or float(entry.get("exp") or 0) < self.clock():
            return None
        return entry

    def tokens(self, source: str, name: str) -> list[dict]:
        now = self.clock()
        out = [{"id": tid, **t} for tid, t in (self.load(source, name).get("tokens") or {}).items()
               if float(t.get("exp") or 0) >= now]
        return sorted(out, key=lambda t: t.get("created", 0))

    # writes --------------------------------------------------------------------------------------
    def end_sessions(self, source: str, name: str) -> int:
        """Sign the principal out everywhere: the next generation."""
        def bump(data: dict) -> None:
            data["generation"] = int(data.get("generation") or 0) + 1
        return int(self._update(source, name, bump)["generation"])

    def add_token(self, source: str, name: str, token_id: str, *, exp: float, roles: list[str],
                  label: str = "") -> None:
        def add(data: dict) -> None:
            data["tokens"][token_id] = {"exp": exp, "created": self.clock(), "roles": roles, "label": label}
        self._update(source, name, add)

    def revoke_token(self, source: str, name: str, token_id: str) -> bool:
        found = []

        def drop(data: dict) -> None:
            found.append(data["tokens"].pop(token_id, None) is not None)
        self._update(source, name, drop)
        return found[0]

    # --------------------------------------------------------------------------------------------
    def _fetch(self, source: str, name: str) -> tuple[dict, str | None]:
        try:
            obj = self.store.get(record_key(source, name))
        except NotFound:
            return _empty(source, name), None
        try:
            data = json.loads(obj.body)
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        data = {**_empty(source, name), **data}
        if not isinstance(data.get("tokens"), dict):
            data["tokens"] = {}
        return data, obj.etag

    def _remember(self, key: str, data: dict) -> None:
        with self._lock:
            self._cache[key] = (self.monotonic() + self.ttl, data)
            if len(self._cache) > 10_000:
                self._cache.pop(next(iter(self._cache)))

    def _update(self, source: str, name: str, mutate: Callable[[dict], None]) -> dict:
        key = record_key(source, name)
        for _ in range(ATTEMPTS):
            data, etag = self._fetch(source, name)
            mutate(data)
            now = self.clock()
            data["tokens"] = {t: v for t, v in data["tokens"].items() if float(v.get("exp") or 0) >= now}
            body = json.dumps(data, sort_keys=True).encode()
            try:
                if etag is None:
                    self.store.put(key, body, if_none_match=True)
                else:
                    self.store.put(key, body, if_match=etag)
            except (AlreadyExists, PreconditionFailed):
                continue  # another instance wrote meanwhile: read it again
            self._remember(key, data)
            return data
        raise RetryableError(f"{key}: changed by others {ATTEMPTS} times in a row; try again",
                             operation="s3.PutObject")
