"""The portal over real HTTP (uvicorn on a free loopback port) against the moto server.

One portal and one bucket for the web tests of a session; each test makes its own changes
(unique titles), so tests never depend on each other's data.
"""

from __future__ import annotations

import copy
import re
import uuid
from pathlib import Path

import httpx
import pytest

from runtime.web._auth import Principal
from tests.conftest import ROOT, SAMPLE_CHANGE, make_stack


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: drives Debian's chromium through Playwright")


SECRET = "test-session-secret-" + "x" * 32
PASSWORDS = {"alice": "alice-demo", "bob": "bob-demo", "victor": "victor-demo", "admin": "admin-demo",
             "carol": "carol-demo", "norole": "norole-demo", "erin": "erin-demo"}
SCREENSHOTS = ROOT / ".ttr" / "screenshots"


def _add_users(data: dict) -> None:
    from runtime.web import hash_password

    # carol both submits and approves: the four-eyes rule is what stops her approving her own
    users = data.setdefault("web", {}).setdefault("users", [])
    users.append({"username": "carol", "password_hash": hash_password("carol-demo"), "roles": ["submitter", "approver"]})
    # configured without any role: may not sign in at all
    users.append({"username": "norole", "password_hash": hash_password("norole-demo"), "roles": []})
    # signs in and out through the form (sign-out ends every session of a user: nobody else's tests use her)
    users.append({"username": "erin", "password_hash": hash_password("erin-demo"), "roles": ["viewer"]})


class Web:
    def __init__(self, stack, handle):
        from runtime.adapters.s3 import S3ObjectStore
        from runtime.services.lifecycle import Lifecycle

        self.stack, self.handle, self.cfg = stack, handle, stack.cfg
        self.url = handle.url
        self.store = S3ObjectStore(stack.clients, stack.cfg.bucket)
        self.lifecycle = Lifecycle(self.store, stack.cfg.customer_codes)

    # clients ---------------------------------------------------------------------------------
    def anonymous(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, follow_redirects=False, timeout=15)

    def login(self, user: str, password: str | None = None, *, form: bool = False) -> httpx.Client:
        """A signed-in client; ``client.csrf`` (also sent as X-CSRF-Token) for unsafe calls.

        ``form``: through the login form (argon2 takes ~0.5 s here); otherwise the session cookie
        the login form would have set, signed with the portal's key (the form has its own tests).
        """
        c = self.anonymous()
        if form:
            csrf = csrf_of(c.get("/login").text)
            r = c.post("/login", data={"username": user, "password": password or PASSWORDS[user],
                                       "csrf_token": csrf, "next": "/"})
            assert r.status_code == 303, r.text
        else:
            c.cookies.set("ttr_session", session_cookie(self.cfg, user))
        c.csrf = c.get("/api/me").json()["csrfToken"]  # type: ignore[attr-defined]
        c.headers["X-CSRF-Token"] = c.csrf  # type: ignore[attr-defined]
        return c

    def token(self, user: str, roles: tuple[str, ...] | None = None, ttl: int = 3600, source: str = "local") -> str:
        """An API token as the portal issues it (signed with its key, recorded in the bucket)."""
        if roles is None:
            roles = next(tuple(u.roles) for u in self.cfg.web.users if u.username == user)
        return api_tokens(self.store, self.cfg).issue(Principal(name=user, roles=frozenset(roles), source=source), ttl)[0]

    def bearer(self, user: str) -> httpx.Client:
        c = self.anonymous()
        c.headers["Authorization"] = f"Bearer {self.token(user)}"
        return c

    # data ------------------------------------------------------------------------------------
    def content(self, **over) -> dict:
        data = copy.deepcopy(SAMPLE_CHANGE)
        data["title"] = f"{over.pop('title', 'Web test')} {uuid.uuid4().hex[:8]}"
        data.update(over)
        return data

    def submit(self, actor: str = "alice", **over) -> str:
        return self.lifecycle.submit(self.content(**over), actor=actor).change_id

    def simulate_delivery(self, change_id: str, *, emails: int = 2, meeting: bool = True) -> None:
        """What the runtime records after processing: processed records, ledgers, the meeting."""
        import json

        from runtime.domain.model import ledger_key, now_iso
        from runtime.domain.processing import plan
        from runtime.services.archive import ArchiveRecorder

        change = self.lifecycle.show(change_id)
        records = []
        for code in change["customers"]:
            for step in plan(change, code).steps:
                records.append(step.processed_record(code, sent=emails, failed=0, skipped=0, now=now_iso()))
                recipients = {f"person{i}@{code}.example.com": {"status": "sent", "at": now_iso()}
                              for i in range(emails)}
                skipped = {f"away@{code}.example.com": "unsubscribed_all", f"quiet@{code}.example.com": "opted_out"}
                self.store.put(ledger_key(change_id, code, step.seq), json.dumps(
                    {"changeId": change_id, "customer": code, "seq": step.seq, "recipients": recipients,
                     "skipped": skipped}).encode())
        fields = None
        if meeting and change.get("status") == "approved":
            md = {"meetingId": f"evt-{change_id[-8:]}", "joinUrl": "https://teams.example.com/l/meetup-join/abc",
                  "subject": f"Change: {change['title']}", "startTime": change["schedule"]["implementationStart"],
                  "endTime": change["schedule"]["implementationEnd"], "organizer": "change-calendar@example.com",
                  "attendeeCount": 3}
            records.append({"type": "meeting_scheduled", "key": "meeting_scheduled", "timestamp": now_iso(),
                            "actor": "ttr-runtime", "meetingId": md["meetingId"], "meetingMetadata": md})
            fields = {"meetingMetadata": md}
        ArchiveRecorder(self.store).record(change_id, records, fields)


def api_tokens(store, cfg, clock=None):
    """The portal's token issuer for ``cfg`` (its key, its records in the bucket, its users' passwords)."""
    import time

    from runtime.web._auth import ApiTokens, LocalUsers
    from runtime.web._principals import PrincipalRecords

    users = LocalUsers(cfg.web.users)
    return ApiTokens(SECRET, PrincipalRecords(store, ttl=0), clock=clock or time.time,
                     credential_of=lambda u: users.credential(u.name) if u.source == "local" else "")


def session_cookie(cfg, user: str, *, secret: str = SECRET, at: float | None = None, age: float = 0.0,
                   roles: tuple[str, ...] | None = None, seen_age: float = 0.0) -> str:
    """A ``ttr_session`` cookie as Starlette's SessionMiddleware signs it (``age``: seconds old), with the
    user's current session generation and password fingerprint, as a sign-in now would set them."""
    import base64
    import json
    import time

    import itsdangerous

    from runtime.adapters.aws import AwsClients
    from runtime.adapters.s3 import S3ObjectStore
    from runtime.web._auth import LocalUsers
    from runtime.web._principals import PrincipalRecords

    if roles is None:
        roles = next((tuple(u.roles) for u in cfg.web.users if u.username == user), ())
    store = S3ObjectStore(AwsClients(cfg.region, cfg.aws_endpoint_url), cfg.bucket)
    gen = PrincipalRecords(store, ttl=0).generation("local", user)

    class Signer(itsdangerous.TimestampSigner):
        def get_timestamp(self):
            return int(time.time() - age)

    now = time.time()
    payload = {"user": {"name": user, "roles": list(roles), "source": "local", "display": "",
                        "at": now if at is None else at, "gen": gen,
                        "cred": LocalUsers(cfg.web.users).credential(user)},
               "csrf": "t" * 8 + uuid.uuid4().hex, "seen": int(now - seen_age)}
    return Signer(secret).sign(base64.b64encode(json.dumps(payload).encode())).decode()


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF token in the page"
    return m.group(1)


def relaxed_throttle():
    from runtime.web._auth import AttemptWindow, Backoff, LoginThrottle

    return LoginThrottle(per_client=AttemptWindow(limit=10_000, window=60), backoff=Backoff(free=1000))


@pytest.fixture(scope="session")
def web_stack(aws_emulator, tmp_path_factory):
    return make_stack(aws_emulator.endpoint_url, tmp_path_factory.mktemp("web"), mutate=_add_users)


@pytest.fixture(scope="session")
def web(web_stack):
    from runtime.web import start_portal

    handle = start_portal(web_stack.cfg, 0, session_secret=SECRET, throttle=relaxed_throttle())
    try:
        yield Web(web_stack, handle)
    finally:
        handle.stop()


# ---------------------------------------------------------------------------------------------
# The browser: Debian's chromium through Playwright (never a browser downloaded by Playwright)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("browser tests need Debian's chromium at /usr/bin/chromium: `make test` installs it when "
                    "run as root; otherwise run `apt-get install -y chromium`")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - the dev extra installs it
        pytest.skip("browser tests need playwright (pip install -e '.[dev]')")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture()
def new_page(browser, web):
    """Pages in fresh browser contexts (no shared cookies); closed after the test."""
    contexts = []

    def make(user: str | None = None):
        ctx = browser.new_context(base_url=web.url, viewport={"width": 1280, "height": 900})
        ctx.set_default_timeout(10_000)
        contexts.append(ctx)
        page = ctx.new_page()
        page.on("dialog", lambda d: d.accept())
        if user:
            sign_in(page, user)
        return page

    yield make
    for ctx in contexts:
        ctx.close()


def sign_in(page, user: str, password: str | None = None) -> None:
    page.goto("/login")
    page.fill("#username", user)
    page.fill("#password", password or PASSWORDS[user])
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)


def shot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
