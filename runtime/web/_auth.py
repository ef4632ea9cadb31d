"""Who is asking, and what they may do: principals, roles, passwords, API tokens, rate limits.

Nothing here is hand-rolled cryptography: passwords are argon2id (argon2-cffi), API tokens and
the session cookie are signed by itsdangerous, and OIDC lives in ``_oidc`` (Authlib).

Roles (a user may hold several; ``admin`` may do everything):

    viewer     read everything (an identity without any role reads nothing)
    submitter  drafts, submit; update, reschedule, complete or cancel the changes they submitted
    approver   approve (never a change they wrote, submitted, edited or rescheduled: four-eyes,
               ``shaped_by``); update, reschedule, complete or cancel any change; retrigger
    admin      all of the above, on any change, and any draft; four-eyes still applies

Sign-in throttling is an exponential backoff per (username, client) (``Backoff``), never a lock;
the client address comes through trusted proxies only (``client_address``).
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping

from runtime.domain.config import ROLES  # noqa: F401 - the roles, for the web's modules
from runtime.domain.errors import InvalidInput, TtrError

# the portal's names for the sign-in facts that live in services/logins (doctor reads them too)
from runtime.services.logins import (  # noqa: F401
    DEMO_PASSWORD_SUFFIX,
    demo_exposed,
    demo_logins,
    hash_password,
    verify_password,
)

API_TOKEN_PREFIX = "ttr1."
API_TOKEN_MAX_TTL = 7 * 24 * 3600
API_TOKEN_DEFAULT_TTL = 24 * 3600
SESSION_SECRET_ENV = "TTR_SESSION_SECRET"
SESSION_SECRET_FILE = "session-secret"
MIN_SECRET_LENGTH = 32


class Forbidden(TtrError):
    """Authenticated, but not allowed to do this (HTTP 403)."""


class Unauthenticated(TtrError):
    """No valid identity (HTTP 401)."""


class TooManyAttempts(TtrError):
    """Login attempts rate-limited (HTTP 429)."""


@dataclass(frozen=True)
class Principal:
    """An authenticated user. ``name`` is what the archive records as the actor."""

    name: str
    roles: frozenset[str]
    source: str = "local"          # local | oidc
    display: str = ""
    via: str = "session"           # session | bearer
    token_id: str = ""             # the API token's id, when it came with one

    @property
    def label(self) -> str:
        return self.display or self.name

    def has(self, *roles: str) -> bool:
        return "admin" in self.roles or any(r in self.roles for r in roles)

    def to_session(self, *, at: float, generation: int = 0, credential: str = "") -> dict:
        return {"name": self.name, "roles": sorted(self.roles), "source": self.source,
                "display": self.display, "at": at, "gen": generation, "cred": credential}

    def to_json(self) -> dict:
        return {"username": self.name, "displayName": self.label, "roles": sorted(self.roles),
                "source": self.source, "authenticatedBy": self.via}


# ---------------------------------------------------------------------------------------------
# Permissions (pure)

ACTION_ROLES: dict[str, tuple[str, ...]] = {
    "draft": ("submitter",),
    "submit": ("submitter",),
    "update": ("submitter", "approver"),
    "reschedule": ("submitter", "approver"),
    "complete": ("submitter", "approver"),
    "cancel": ("submitter", "approver"),
    "approve": ("approver",),
    "retrigger": ("approver",),
    "request_changes": ("approver",),
    "comment": ("submitter", "approver"),
}


ACTION_PHRASES = {
    "draft": "writing changes", "submit": "submitting changes", "update": "editing changes",
    "reschedule": "rescheduling changes", "complete": "completing changes", "cancel": "cancelling changes",
    "approve": "approving changes", "retrigger": "sending notifications again",
    "request_changes": "requesting changes", "comment": "commenting on changes",
}


def _same(a: object, b: object) -> bool:
    return isinstance(a, str) and isinstance(b, str) and a.strip().lower() == b.strip().lower()


def submitted_by(change: Mapping) -> str | None:
    for m in change.get("modifications", []) or []:
        if isinstance(m, Mapping) and m.get("type") == "submitted":
            return m.get("actor")
    return change.get("createdBy")


def is_owner(user: Principal, change: Mapping) -> bool:
    return _same(user.name, submitted_by(change)) or _same(user.name, change.get("createdBy"))


# The user transitions that shape what an approver approves: its content and its window.
SHAPING_TYPES = ("submitted", "updated", "rescheduled")


def shaped_by(change: Mapping) -> list[str]:
    """Everyone who shaped the change's content or window: its author (``createdBy``), who
    submitted it, everyone who wrote its draft (``draftAuthors``), who updated or rescheduled it.
    Any of them approving it would break four-eyes."""
    names = [change.get("createdBy")]
    for m in change.get("modifications", []) or []:
        if isinstance(m, Mapping) and m.get("type") in SHAPING_TYPES:
            names.append(m.get("actor"))
            names.extend(m.get("draftAuthors") or ())
    out: dict[str, str] = {}
    for n in names:
        if isinstance(n, str) and n.strip():
            out.setdefault(n.strip().lower(), n.strip())
    return sorted(out.values())


def authored(user: Principal, change: Mapping) -> bool:
    """Wrote, submitted, edited or moved the change: any rules out approving it (four-eyes)."""
    return any(_same(user.name, n) for n in shaped_by(change))


def why_not(user: Principal, action: str, change: Mapping | None = None) -> str | None:
    """None when ``user`` may do ``action`` (on ``change``); else the reason, fit to show."""
    if action == "read":
        return None if user.roles else "your account has no role in ttr"
    wanted = ACTION_ROLES.get(action)
    if wanted is None:
        return f"unknown action {action!r}"
    if not user.has(*wanted):
        need = " or ".join(wanted + ("admin",))
        return (f"{ACTION_PHRASES[action]} needs the {need} role "
                f"(you have: {', '.join(sorted(user.roles)) or 'none'})")
    if change is None:
        return None
    noun = "announcement" if change.get("kind") == "announcement" else "change"
    if action == "approve" and authored(user, change):
        what = "submitted" if _same(user.name, submitted_by(change)) else "edited"
        return f"you {what} this {noun}; another approver must approve it (four-eyes)"
    if action == "request_changes" and is_owner(user, change):
        return "you submitted this change; edit it yourself, or ask another approver to review it"
    if action in ("update", "reschedule", "complete", "cancel") and not user.has("approver"):
        if not is_owner(user, change):
            return f"only the submitter ({submitted_by(change)}), an approver or an admin may {action} this {noun}"
    return None


def require(user: Principal, action: str, change: Mapping | None = None) -> None:
    reason = why_not(user, action, change)
    if reason:
        raise Forbidden(reason)


def may_edit_draft(user: Principal, draft: Mapping) -> str | None:
    reason = why_not(user, "draft")
    if reason:
        return reason
    if "admin" in user.roles or _same(user.name, draft.get("createdBy")):
        return None
    return f"this draft belongs to {draft.get('createdBy')}; only they or an admin may change it"


class LocalUsers:
    """``web.users`` from the configuration."""

    def __init__(self, users: Iterable) -> None:
        self._users = {u.username.lower(): u for u in users}

    def __bool__(self) -> bool:
        return bool(self._users)

    def get(self, username: str):
        return self._users.get((username or "").strip().lower())

    def authenticate(self, username: str, password: str) -> Principal | None:
        user = self.get(username)
        ok = verify_password(user.password_hash if user else None, password or "")
        if not ok or user is None:
            return None
        return self.principal(user)

    def credential(self, name: str) -> str:
        """A fingerprint of the user's password hash: a session issued before the password was
        changed (a new hash in the configuration) carries another one, and ends."""
        user = self.get(name)
        if user is None:
            return ""
        import hashlib

        return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]

    @staticmethod
    def principal(user, via: str = "session") -> Principal:
        return Principal(name=user.username, roles=frozenset(user.roles), source="local", via=via)

    def current(self, name: str, via: str = "session") -> Principal | None:
        """The user as configured now (roles changed or user removed take effect at once)."""
        user = self.get(name)
        return self.principal(user, via) if user else None


# ---------------------------------------------------------------------------------------------
# Secrets and API tokens


def load_session_secret(explicit: str | None = None, *, directory: str | os.PathLike = ".ttr",
                        environ: Mapping[str, str] | None = None,
                        log: Callable[[str], None] | None = None) -> str:
    """``explicit``, else ``$TTR_SESSION_SECRET``, else ``.ttr/session-secret`` (created 0600)."""
    environ = os.environ if environ is None else environ
    value = explicit or environ.get(SESSION_SECRET_ENV)
    if value:
        if len(value) < MIN_SECRET_LENGTH:
            raise InvalidInput(f"{SESSION_SECRET_ENV}: at least {MIN_SECRET_LENGTH} characters are needed "
                               f"(for example: python -c 'import secrets; print(secrets.token_hex(32))')",
                               field=SESSION_SECRET_ENV)
        return value
    path = Path(directory) / SESSION_SECRET_FILE
    try:
        text = path.read_text(encoding="utf-8").strip()
        if len(text) >= MIN_SECRET_LENGTH:
            return text
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(value + "\n")
    if log:
        log(f"generated a session key in {path} (set ${SESSION_SECRET_ENV} to share one between instances)")
    return value


class ApiTokens:
    """Bearer tokens minted by the portal for a signed-in user: ``ttr1.<itsdangerous payload>``.

    Signed with a key derived from the session secret (a different salt, so a session cookie is
    never a token and a token never a cookie), and recorded on the server (``_principals``): a
    token is good only while its id is in its principal's record, so each can be revoked on its
    own. Short-lived (a day by default, a week at most); changing the session secret revokes them
    all; a local user removed from the config loses access at once, and a single sign-on token
    stops working when single sign-on is switched off (``Portal.verify_bearer``).
    """

    SALT = "ttr-api-token"

    def __init__(self, secret: str, records, clock: Callable[[], float] = time.time,
                 credential_of: Callable[[Principal], str] | None = None):
        from itsdangerous import URLSafeTimedSerializer

        self._s = URLSafeTimedSerializer(secret, salt=self.SALT)
        self.records = records
        self.clock = clock
        # a fingerprint of the user's password (local users): a new password ends older tokens
        self.credential_of = credential_of or (lambda user: "")

    def issue(self, user: Principal, ttl: int = API_TOKEN_DEFAULT_TTL, label: str = "") -> tuple[str, float]:
        if not 60 <= ttl <= API_TOKEN_MAX_TTL:
            raise InvalidInput(f"ttl: from 60 to {API_TOKEN_MAX_TTL} seconds", field="ttl")
        exp = self.clock() + ttl
        tid = secrets.token_urlsafe(12)
        self.records.add_token(user.source, user.name, tid, exp=int(exp), roles=sorted(user.roles),
                               label=label[:100])
        body = self._s.dumps({"sub": user.name, "roles": sorted(user.roles), "src": user.source,
                              "dsp": user.display, "exp": int(exp), "tid": tid, "crd": self.credential_of(user)})
        return API_TOKEN_PREFIX + body, exp

    def id_of(self, token: str) -> str:
        """The id of a token this portal signed ('' for anything else)."""
        ok, data = self._s.loads_unsafe(token.removeprefix(API_TOKEN_PREFIX))
        return str(data.get("tid") or "") if ok and isinstance(data, dict) else ""

    def verify(self, token: str) -> Principal:
        from itsdangerous import BadSignature, SignatureExpired

        if not token.startswith(API_TOKEN_PREFIX):
            raise Unauthenticated("not a ttr API token")
        try:
            data = self._s.loads(token[len(API_TOKEN_PREFIX):], max_age=API_TOKEN_MAX_TTL)
        except SignatureExpired:
            raise Unauthenticated("the API token has expired") from None
        except BadSignature:
            raise Unauthenticated("the API token is not valid") from None
        if not isinstance(data, dict) or float(data.get("exp", 0)) < self.clock():
            raise Unauthenticated("the API token has expired")
        source, name = str(data.get("src", "local")), str(data["sub"])
        if not data.get("tid") or self.records.token(source, name, str(data["tid"])) is None:
            raise Unauthenticated("the API token was revoked")
        user = Principal(name=name, roles=frozenset(data.get("roles", ())), source=source,
                         display=str(data.get("dsp", "")), via="bearer", token_id=str(data["tid"]))
        if str(data.get("crd") or "") != self.credential_of(user):
            raise Unauthenticated("the API token was made before the password changed")
        return user


# ---------------------------------------------------------------------------------------------
# Rate limiting (in memory, per process)


@dataclass
class AttemptWindow:
    """At most ``limit`` hits per ``window`` seconds per key (a sliding window); bounded memory
    (oldest keys go). Not ``services.pacing.RateLimiter``, a token bucket that paces sends: the
    sign-in promise (SECURITY.md: 30 attempts per 5 minutes per client) needs a hard window,
    which a bucket's burst would loosen."""

    limit: int
    window: float
    clock: Callable[[], float] = time.monotonic
    max_keys: int = 10_000
    _hits: OrderedDict = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _prune(self, key: str, now: float) -> deque:
        q = self._hits.get(key)
        if q is None:
            q = self._hits[key] = deque()
            while len(self._hits) > self.max_keys:
                self._hits.popitem(last=False)
        while q and q[0] <= now - self.window:
            q.popleft()
        return q

    def retry_after(self, key: str) -> float | None:
        """Seconds until the next hit is allowed, or None when one is allowed now."""
        with self._lock:
            now = self.clock()
            q = self._prune(key, now)
            if len(q) < self.limit:
                return None
            return max(1.0, q[0] + self.window - now)

    def hit(self, key: str) -> None:
        with self._lock:
            now = self.clock()
            self._prune(key, now).append(now)
            self._hits.move_to_end(key)

    def reset(self, key: str) -> None:
        with self._lock:
            self._hits.pop(key, None)


@dataclass
class Backoff:
    """Exponential backoff per key: ``free`` failures cost nothing, then each failure doubles the
    wait before the next attempt (``base`` seconds, at most ``cap``). Never a lock: the wait always
    ends, and a success or ``forget`` seconds without a failure clears the key."""

    free: int = 3
    base: float = 1.0
    cap: float = 900.0
    forget: float = 3600.0
    clock: Callable[[], float] = time.monotonic
    max_keys: int = 10_000
    _state: OrderedDict = field(default_factory=OrderedDict)   # key -> (failures, last failure)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def delay(self, failures: int) -> float:
        if failures < self.free:
            return 0.0
        return min(self.cap, self.base * 2 ** (failures - self.free))

    def retry_after(self, key) -> float | None:
        with self._lock:
            got = self._state.get(key)
            if got is None:
                return None
            failures, last = got
            now = self.clock()
            if now - last >= self.forget:
                self._state.pop(key, None)
                return None
            wait = last + self.delay(failures) - now
            return wait if wait > 0 else None

    def failed(self, key) -> None:
        with self._lock:
            failures, _ = self._state.pop(key, (0, 0.0))
            self._state[key] = (failures + 1, self.clock())
            while len(self._state) > self.max_keys:
                self._state.popitem(last=False)

    def reset(self, key) -> None:
        with self._lock:
            self._state.pop(key, None)


@dataclass
class LoginThrottle:
    """Sign-in attempts: exponential backoff per (username, client) after failures, and a cap on
    attempts per client address. A username is never locked: another client signs in as usual.
    ``client`` is the real client's address (``client_address``: through trusted proxies only)."""

    per_client: AttemptWindow = field(default_factory=lambda: AttemptWindow(limit=30, window=300))
    backoff: Backoff = field(default_factory=Backoff)

    @staticmethod
    def _key(username: str, client: str) -> tuple[str, str]:
        return ((username or "").strip().lower(), client)

    def check(self, client: str, username: str) -> None:
        waits = [w for w in (self.per_client.retry_after(client),
                             self.backoff.retry_after(self._key(username, client))) if w]
        if waits:
            wait = int(max(waits)) + 1
            raise TooManyAttempts(f"too many sign-in attempts; try again in {wait} seconds", retry_after=wait)

    def attempt(self, client: str) -> None:
        self.per_client.hit(client)

    def failed(self, username: str, client: str) -> None:
        self.backoff.failed(self._key(username, client))

    def succeeded(self, username: str, client: str) -> None:
        self.backoff.reset(self._key(username, client))


def client_address(peer: str | None, forwarded_for: str | None, trusted: Iterable) -> str:
    """The address of whoever is signing in. ``X-Forwarded-For`` counts only when the peer is a
    trusted proxy (``web.trusted_proxies``); then the rightmost address that is not a trusted proxy
    (what the first proxy saw: the entries to its left are the client's to write)."""
    import ipaddress

    nets = [ipaddress.ip_network(t, strict=False) for t in trusted]

    def is_trusted(addr: str) -> bool:
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return False
        return any(ip in n for n in nets)

    peer = peer or "?"
    if not nets or not forwarded_for or not is_trusted(peer):
        return peer
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        if not is_trusted(hop):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # garbage in the header: the proxy itself is all we know
    return peer
