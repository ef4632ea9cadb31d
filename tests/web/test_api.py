"""The JSON API and the authentication gate, over real HTTP against the moto server."""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest

from runtime.domain.errors import InvalidInput
from runtime.web._app import OPEN_PATHS, OPEN_PREFIXES
from runtime.web._auth import Unauthenticated
from tests.conftest import day, window
from tests.web.conftest import SECRET, api_tokens, csrf_of, session_cookie

START = window(8)["implementationStart"]


def etag(client: httpx.Client, cid: str) -> str:
    r = client.get(f"/api/changes/{cid}")
    assert r.status_code == 200, r.text
    return r.headers["etag"]


# ---------------------------------------------------------------------------------------------
# The gate: open routes, default deny, cookies


def test_open_routes_answer_without_a_session(web):
    c = web.anonymous()
    assert c.get("/healthz").json() == {"status": "ok"}
    assert c.get("/login").status_code == 200
    assert c.get("/docs").status_code == 200
    spec = c.get("/openapi.json").json()
    assert "/api/changes/{change_id}/approve" in spec["paths"]
    assert c.get("/static/portal.css").status_code == 200
    assert c.get("/logout").headers["location"] == "/login"
    assert c.get("/auth/login").headers["location"] == "/login?e=sso"   # no SSO configured here
    assert c.get("/auth/callback?code=x&state=y").headers["location"] == "/login?e=sso"


def _concrete(path: str) -> str:
    return path.replace("{change_id}", "CHG-none").replace("{action}", "approve").replace("{path:path}", "x")


def _routes(routes):
    for r in routes:
        inner = getattr(r, "original_router", None)   # FastAPI >= 0.16x nests included routers
        if inner is not None:
            yield from _routes(inner.routes)
        else:
            yield r


def test_no_route_but_the_open_ones_answers_without_a_session(web):
    app = web.handle.server.config.app
    checked = 0
    c = web.anonymous()
    for route in _routes(app.routes):
        path = getattr(route, "path", "")
        if path in OPEN_PATHS or path.startswith(tuple(p.rstrip("/") for p in OPEN_PREFIXES)):
            continue
        for method in sorted(getattr(route, "methods", None) or {"GET"}):
            r = c.request(method, _concrete(path), json={} if method in ("POST", "PUT") else None)
            if path.startswith("/api"):
                assert r.status_code == 401, (method, path, r.status_code)
                assert r.headers["www-authenticate"].startswith("Bearer")
                assert r.json()["error"] == "unauthorized"
            else:
                assert r.status_code == 303, (method, path, r.status_code)
                assert r.headers["location"].startswith("/login")
            checked += 1
    assert checked >= 30
    # paths no route knows are denied the same way (no 404 that tells what exists)
    assert c.get("/api/nope").status_code == 401
    assert c.delete("/api/changes").status_code == 401
    r = c.get("/admin/secret?x=1")
    assert (r.status_code, r.headers["location"]) == (303, "/login?next=/admin/secret%3Fx%3D1")


def test_forged_tampered_expired_and_stale_cookies_are_refused(web):
    def me(cookie):
        c = web.anonymous()
        c.cookies.set("ttr_session", cookie)
        return c.get("/api/me").status_code, c.get("/").status_code

    cfg = web.cfg
    assert me(session_cookie(cfg, "admin")) == (200, 200)                 # the control: a good cookie
    assert me(session_cookie(cfg, "admin", secret="another-secret-" + "y" * 32)) == (401, 303)   # forged
    good = session_cookie(cfg, "victor")
    body, ts, sig = good.split(".")
    claims = json.loads(base64.b64decode(body))
    claims["user"]["name"] = "admin"
    evil = base64.b64encode(json.dumps(claims).encode()).decode()
    assert me(f"{evil}.{ts}.{sig}") == (401, 303)                        # tampered
    assert me(session_cookie(cfg, "admin", age=3 * 3600)) == (401, 303)  # idle past the cookie's age
    assert me(session_cookie(cfg, "admin", at=time.time() - 13 * 3600)) == (401, 303)   # past the absolute limit
    assert me(session_cookie(cfg, "ghost", roles=("admin",))) == (401, 303)   # a user no longer configured
    assert me(session_cookie(cfg, "admin", at=time.time() + 3600)) == (401, 303)   # signed in "in the future"
    assert me("not-a-cookie") == (401, 303)
    # a live session slides: its cookie is signed again now and then, never past the absolute limit
    c = web.anonymous()
    c.cookies.set("ttr_session", session_cookie(cfg, "victor"))
    assert "set-cookie" not in c.get("/api/me").headers                    # fresh: nothing to re-sign
    c.cookies.set("ttr_session", session_cookie(cfg, "victor", age=1800, seen_age=1800))
    renewed = c.get("/api/me").headers["set-cookie"]
    assert "Max-Age=7200" in renewed
    _, ts, _ = renewed.split(";")[0].split("=", 1)[1].split(".")
    import itsdangerous

    assert abs(itsdangerous.encoding.bytes_to_int(itsdangerous.encoding.base64_decode(ts)) - time.time()) < 60


def test_session_cookie_flags_and_security_headers(web):
    c = web.anonymous()
    r = c.get("/login")
    cookie = r.headers["set-cookie"]
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower() and "Max-Age=7200" in cookie
    assert "secure" not in cookie.lower()                                 # plain http on loopback
    for name in ("content-security-policy", "x-frame-options", "x-content-type-options", "referrer-policy"):
        assert name in r.headers, name
    assert "script-src 'self'" in r.headers["content-security-policy"]
    r = web.anonymous().get("/api/me")
    assert r.headers["x-frame-options"] == "DENY"                         # on refusals too


def test_login_rejections_and_safe_redirects(web):
    c = web.anonymous()
    csrf = csrf_of(c.get("/login").text)
    r = c.post("/login", data={"username": "alice", "password": "wrong", "csrf_token": csrf})
    assert r.status_code == 401 and "do not match" in r.text
    r = c.post("/login", data={"username": "nobody", "password": "x", "csrf_token": csrf})
    assert r.status_code == 401 and "do not match" in r.text
    r = c.post("/login", data={"username": "alice", "password": "alice-demo"})            # no CSRF token
    assert (r.status_code, r.headers["location"]) == (303, "/login?e=expired")
    r = web.anonymous().post("/login", data={"username": "alice", "password": "alice-demo", "csrf_token": "x"})
    assert r.headers["location"] == "/login?e=expired"                   # no session, no token to match
    r = c.post("/login", data={"username": "norole", "password": "norole-demo", "csrf_token": csrf})
    assert r.status_code == 403 and "no role in ttr" in r.text
    for target in ("//evil.example.com/x", "https://evil.example.com", "/\\evil", "/ok?x=1"):
        c = web.anonymous()
        csrf = csrf_of(c.get("/login").text)
        r = c.post("/login", data={"username": "alice", "password": "alice-demo", "csrf_token": csrf,
                                   "next": target})
        assert r.headers["location"] == ("/ok?x=1" if target == "/ok?x=1" else "/"), target


def _portal_with(web_stack, **web_fields):
    cfg = web_stack.cfg
    return cfg.model_copy(update={"web": cfg.web.model_copy(update=web_fields)})


def _attempt(url, user, password, forwarded_for=None):
    c = httpx.Client(base_url=url, headers={"X-Forwarded-For": forwarded_for} if forwarded_for else {})
    csrf = csrf_of(c.get("/login").text)
    return c.post("/login", data={"username": user, "password": password, "csrf_token": csrf})


def test_sign_in_backoff_never_locks_a_known_username_out_for_another_client(web_stack):
    # reproduced before the fix: five wrong passwords locked "admin" out for everyone
    from runtime.web import start_portal
    from runtime.web._auth import AttemptWindow, Backoff, LoginThrottle

    throttle = LoginThrottle(per_client=AttemptWindow(limit=100, window=60), backoff=Backoff(free=3, base=30))
    cfg = _portal_with(web_stack, trusted_proxies=("127.0.0.1",))
    with start_portal(cfg, 0, session_secret=SECRET, throttle=throttle) as portal:
        attacker, colleague = "198.51.100.7", "203.0.113.20"
        assert [_attempt(portal.url, "admin", "guess", attacker).status_code for _ in range(3)] == [401] * 3
        r = _attempt(portal.url, "admin", "admin-demo", attacker)       # the attacker waits, even when right
        assert r.status_code == 429 and "Too many sign-in attempts" in r.text
        assert 0 < int(r.headers["retry-after"]) <= 31
        assert _attempt(portal.url, "admin", "admin-demo", colleague).status_code == 303   # admin is not locked


def test_a_proxys_shared_address_does_not_block_everyone(web_stack):
    # reproduced before the fix: behind a proxy every client shared one address and 20 attempts blocked all
    from runtime.web import start_portal
    from runtime.web._auth import AttemptWindow, Backoff, LoginThrottle

    throttle = LoginThrottle(per_client=AttemptWindow(limit=5, window=60), backoff=Backoff(free=1000))
    with start_portal(_portal_with(web_stack, trusted_proxies=("127.0.0.0/8",)), 0, session_secret=SECRET,
                      throttle=throttle) as portal:
        assert [_attempt(portal.url, "bob", "bad", "198.51.100.8").status_code for _ in range(5)] == [401] * 5
        assert _attempt(portal.url, "bob", "bob-demo", "198.51.100.8").status_code == 429  # that client waits
        assert _attempt(portal.url, "bob", "bob-demo", "203.0.113.21").status_code == 303  # the others do not
    # without trusted proxies the header is the client's to invent: it buys nothing
    with start_portal(web_stack.cfg, 0, session_secret=SECRET,
                      throttle=LoginThrottle(per_client=AttemptWindow(limit=3, window=60),
                                             backoff=Backoff(free=1000))) as portal:
        assert [_attempt(portal.url, "bob", "bad", f"192.0.2.{i}").status_code for i in range(3)] == [401] * 3
        assert _attempt(portal.url, "bob", "bob-demo", "192.0.2.99").status_code == 429


def test_a_browser_session_needs_the_csrf_token_to_change_anything(web):
    c = web.login("alice")
    token = c.headers.pop("X-CSRF-Token")
    body = web.content()
    r = c.post("/api/changes", json=body)
    assert r.status_code == 403 and "X-CSRF-Token" in r.json()["message"]
    assert c.post("/api/changes", json=body, headers={"X-CSRF-Token": "wrong"}).status_code == 403
    r = c.post("/changes/new", data={"title": "x"})                    # a page form without its token
    assert r.status_code == 403 and "This form has expired" in r.text
    assert c.post("/logout").headers["location"] == "/login?e=expired"
    assert c.post("/api/changes", json=body, headers={"X-CSRF-Token": token}).status_code == 201
    r = c.post("/changes/new", data={"csrf_token": token, "title": "x" * (1024 * 1024 + 1)})
    assert r.status_code == 413                                          # bodies are bounded
    r = web.bearer("alice").post("/api/changes", json={**body, "reason": "x" * (1024 * 1024)})
    assert r.status_code == 413
    # a bearer token needs no CSRF token: browsers never send it on their own
    assert web.bearer("alice").post("/api/changes", json=web.content()).status_code == 201


def test_bearer_tokens(web):
    r = web.bearer("alice").get("/api/me")
    assert r.json() == {"username": "alice", "displayName": "alice", "roles": ["submitter"], "source": "local",
                        "authenticatedBy": "bearer", "csrfToken": None}
    c = web.anonymous()
    for header in ("Bearer nonsense", "Bearer ttr1.abc.def", "Basic YWxpY2U6YWxpY2UtZGVtbw==", "Bearer"):
        r = c.get("/api/me", headers={"Authorization": header})
        assert r.status_code == 401, header
        assert 'error="invalid_token"' in r.headers["www-authenticate"]
    # a token never grants more than the user has now, and dies with the user
    inflated = web.token("alice", roles=("submitter", "admin"))
    assert c.get("/api/me", headers={"Authorization": f"Bearer {inflated}"}).json()["roles"] == ["submitter"]
    ghost = web.token("ghost", roles=("admin",))
    assert c.get("/api/me", headers={"Authorization": f"Bearer {ghost}"}).status_code == 401
    # tokens are minted from a browser session only
    assert web.bearer("alice").post("/api/tokens", json={}).status_code == 403
    s = web.login("bob")
    r = s.post("/api/tokens", json={"ttl": 120})
    assert r.status_code == 201 and r.json()["tokenType"] == "Bearer"
    assert c.get("/api/me", headers={"Authorization": f"Bearer {r.json()['token']}"}).json()["username"] == "bob"
    assert s.post("/api/tokens", json={"ttl": 10}).status_code == 422


def test_an_expired_token_is_refused(web):
    from runtime.web._auth import Principal

    token, _ = api_tokens(web.store, web.cfg, clock=lambda: time.time() - 7200).issue(
        Principal(name="alice", roles=frozenset({"submitter"})), ttl=3600)
    r = web.anonymous().get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and "expired" in r.json()["message"]


def test_api_tokens_expire_and_cannot_be_forged(web):
    from runtime.web._auth import ApiTokens, Principal

    clock = [time.time()]
    tokens = api_tokens(web.store, web.cfg, clock=lambda: clock[0])
    token, exp = tokens.issue(Principal(name="alice", roles=frozenset({"submitter"})), ttl=600)
    assert token.startswith("ttr1.") and exp == clock[0] + 600
    got = tokens.verify(token)
    assert (got.name, got.roles, got.via) == ("alice", frozenset({"submitter"}), "bearer")
    with pytest.raises(Unauthenticated, match="not valid"):
        ApiTokens("t" * 40, tokens.records).verify(token)                      # another key
    with pytest.raises(Unauthenticated, match="not valid"):
        tokens.verify(token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB"))
    with pytest.raises(Unauthenticated, match="not a ttr API token"):
        tokens.verify("eyJhbGciOi.x.y")
    clock[0] += 601
    with pytest.raises(Unauthenticated, match="expired"):
        tokens.verify(token)
    with pytest.raises(InvalidInput):
        tokens.issue(Principal(name="a", roles=frozenset({"viewer"})), ttl=8 * 24 * 3600)   # a week at most


def test_api_tokens_are_revoked_one_by_one(web):
    s = web.login("bob")
    one = s.post("/api/tokens", json={"ttl": 600, "label": "ci"}).json()
    two = s.post("/api/tokens", json={"ttl": 600, "label": "laptop"}).json()
    c = web.anonymous()
    for t in (one, two):
        assert c.get("/api/me", headers={"Authorization": f"Bearer {t['token']}"}).status_code == 200
    listed = {t["id"]: t["label"] for t in s.get("/api/tokens").json()}
    assert listed[one["id"]] == "ci" and listed[two["id"]] == "laptop"
    assert s.delete(f"/api/tokens/{one['id']}").status_code == 204
    r = c.get("/api/me", headers={"Authorization": f"Bearer {one['token']}"})
    assert r.status_code == 401 and "revoked" in r.json()["message"]
    assert c.get("/api/me", headers={"Authorization": f"Bearer {two['token']}"}).status_code == 200
    assert s.delete(f"/api/tokens/{one['id']}").status_code == 404
    assert web.login("alice").delete(f"/api/tokens/{two['id']}").status_code == 404   # not alice's to revoke
    assert one["id"] not in {t["id"] for t in s.get("/api/tokens").json()}


def test_a_single_sign_on_token_dies_when_single_sign_on_is_switched_off(web):
    # reproduced before the fix: a token minted for an OIDC user kept working with OIDC off (200 on /api/me)
    token = web.token("sso-user@example.com", roles=("admin",), source="oidc")
    r = web.anonymous().get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and "single sign-on" in r.json()["message"]


def test_a_user_without_a_role_reads_nothing(web):
    # reproduced before the fix: a role-less identity read every change
    cid = web.submit("alice")
    # a user configured without roles (cookie, token); a token that kept none of the user's roles
    for c in (_with_cookie(web, "norole"), _with_token(web, "norole", ()), _with_token(web, "alice", ())):
        for path in ("/api/changes", f"/api/changes/{cid}", "/api/stats"):
            r = c.get(path)
            assert r.status_code == 403 and "no role" in r.json()["message"], path
        page = c.get(f"/changes/{cid}")
        assert page.status_code == 403 and "no role" in page.text and "Web test" not in page.text


def _with_token(web, user, roles):
    c = web.anonymous()
    c.headers["Authorization"] = f"Bearer {web.token(user, roles=roles)}"
    return c


def _with_cookie(web, user):
    c = web.anonymous()
    c.cookies.set("ttr_session", session_cookie(web.cfg, user))
    return c


def test_signing_out_ends_the_session_everywhere(web):
    c = web.login("erin", form=True)
    cookie = c.cookies["ttr_session"]
    assert c.get("/api/me").status_code == 200
    r = c.post("/logout", data={"csrf_token": c.csrf})
    assert r.status_code == 303
    replay = web.anonymous()                          # the cookie as it was before signing out
    replay.cookies.set("ttr_session", cookie)
    assert replay.get("/api/me").status_code == 401
    assert replay.get("/changes").headers["location"].startswith("/login")
    assert web.login("erin", form=True).get("/api/me").status_code == 200   # signing in again works


def test_two_portal_instances_agree_on_sign_outs_and_tokens(web, web_stack):
    from runtime.web import start_portal
    from tests.conftest import wait_for

    with start_portal(web_stack.cfg, 0, session_secret=SECRET) as other:
        c = web.login("erin", form=True)
        elsewhere = httpx.Client(base_url=other.url)
        elsewhere.cookies.set("ttr_session", c.cookies["ttr_session"])
        assert elsewhere.get("/api/me").status_code == 200                # the same session on both
        token = c.post("/api/tokens", json={"ttl": 600}).json()["token"]
        bearer = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{other.url}/api/me", headers=bearer).status_code == 200   # minted here, good there
        assert c.post("/logout", data={"csrf_token": c.csrf}).status_code == 303
        wait_for(lambda: elsewhere.get("/api/me").status_code == 401, timeout=15,
                 what="the sign-out to reach the other instance")
        tid = web.anonymous().get("/api/tokens", headers=bearer).json()[0]["id"]
        assert web.anonymous().delete(f"/api/tokens/{tid}", headers=bearer).status_code == 204
        wait_for(lambda: httpx.get(f"{other.url}/api/me", headers=bearer).status_code == 401, timeout=15,
                 what="the revocation to reach the other instance")


def test_a_password_change_ends_the_sessions_made_with_the_old_one(web, web_stack):
    from runtime.web import hash_password, start_portal

    c = web.login("erin", form=True)
    token = c.post("/api/tokens", json={"ttl": 600}).json()["token"]
    users = [u.model_copy(update={"password_hash": hash_password("a-new-password")}) if u.username == "erin" else u
             for u in web_stack.cfg.web.users]
    cfg = web_stack.cfg.model_copy(update={"web": web_stack.cfg.web.model_copy(update={"users": users})})
    with start_portal(cfg, 0, session_secret=SECRET) as other:
        replay = httpx.Client(base_url=other.url)
        replay.cookies.set("ttr_session", c.cookies["ttr_session"])
        assert replay.get("/api/me").status_code == 401
        r = httpx.get(f"{other.url}/api/me", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401 and "password changed" in r.json()["message"]      # and its tokens
    assert c.get("/api/me").status_code == 200        # the portal still configured with the old one


# ---------------------------------------------------------------------------------------------
# Changes: submit, read, transitions


def test_submit_read_etag_and_not_modified(web):
    alice = web.bearer("alice")
    r = alice.post("/api/changes", json=web.content())
    assert r.status_code == 201
    out = r.json()
    cid = out["changeId"]
    assert (out["action"], out["version"], out["status"], out["complete"]) == ("submit", 1, "submitted", True)
    assert sorted(out["triggers"]["written"]) == ["hts", "htsnonprod"]
    assert r.headers["location"] == f"/api/changes/{cid}"
    assert {f"customers/hts/{cid}.json", f"customers/htsnonprod/{cid}.json"} <= set(web.stack.keys("customers/"))
    viewer = web.bearer("victor")
    r = viewer.get(f"/api/changes/{cid}")
    tag = r.headers["etag"]
    assert tag.startswith('"v1.') and r.headers["cache-control"] == "no-cache"
    assert r.json()["createdBy"] == "alice" and r.json()["modifications"][0]["actor"] == "alice"
    assert viewer.get(f"/api/changes/{cid}", headers={"If-None-Match": tag}).status_code == 304
    assert viewer.get(f"/api/changes/{cid}", headers={"If-None-Match": f'W/{tag}, "v9.x"'}).status_code == 304
    # the runtime appends a processed record: the digest changes, the version does not
    web.simulate_delivery(cid)
    r = viewer.get(f"/api/changes/{cid}", headers={"If-None-Match": tag})
    assert r.status_code == 200 and r.headers["etag"] != tag and r.headers["etag"].startswith('"v1.')
    # ...so an approver holding the older ETag is not stale
    r = web.bearer("bob").post(f"/api/changes/{cid}/approve", headers={"If-Match": tag})
    assert r.status_code == 200 and r.json()["version"] == 2 and r.headers["etag"].startswith('"v2.')


def test_transition_preconditions_428_400_412_409_404(web):
    cid = web.submit("alice")
    bob = web.bearer("bob")
    tag = etag(bob, cid)
    r = bob.post(f"/api/changes/{cid}/approve")
    assert r.status_code == 428 and r.json()["error"] == "precondition_required"
    r = bob.post(f"/api/changes/{cid}/approve", headers={"If-Match": "yesterday"})
    assert r.status_code == 400 and r.json()["error"] == "bad_request"
    web.lifecycle.transition(cid, "update", actor="alice", params={"testPlan": "ping"})      # now version 2
    before = web.stack.snapshot()
    r = bob.post(f"/api/changes/{cid}/approve", headers={"If-Match": tag})
    assert r.status_code == 412 and r.json()["error"] == "stale_version"
    assert "version 2, not 1" in r.json()["message"]
    assert web.stack.snapshot() == before                                   # nothing written
    r = bob.post(f"/api/changes/{cid}/complete", headers={"If-Match": etag(bob, cid)})
    assert r.status_code == 409 and r.json()["error"] == "illegal_transition"
    assert "cannot complete a change that is submitted" in r.json()["message"]
    assert web.stack.snapshot() == before
    assert bob.post("/api/changes/CHG-missing/approve", headers={"If-Match": '"v1"'}).status_code == 404
    assert bob.get("/api/changes/CHG-missing").json()["error"] == "not_found"
    assert bob.get("/api/changes/bad%20id").status_code == 422
    r = bob.post(f"/api/changes/{cid}/approve", headers={"If-Match": "*"})   # "whatever is current"
    assert r.status_code == 200 and r.json()["status"] == "approved"


def test_roles_and_four_eyes_on_the_api(web):
    cid = web.submit("carol")
    tag = etag(web.bearer("victor"), cid)
    for who in ("victor", "alice"):                           # a viewer; a submitter (no approver role)
        r = web.bearer(who).post(f"/api/changes/{cid}/approve")          # 403 before 428
        assert r.status_code == 403 and "needs the approver or admin role" in r.json()["message"], who
    r = web.bearer("carol").post(f"/api/changes/{cid}/approve", headers={"If-Match": tag})
    assert r.status_code == 403 and "you submitted this change" in r.json()["message"]
    r = web.bearer("alice").post(f"/api/changes/{cid}/cancel", headers={"If-Match": tag})
    assert r.status_code == 403 and "only the submitter (carol)" in r.json()["message"]
    r = web.bearer("victor").post("/api/changes", json=web.content())
    assert r.status_code == 403
    # an approver who edits the content may not approve it either
    r = web.bearer("bob").post(f"/api/changes/{cid}/update", json={"testPlan": "bob's plan"},
                               headers={"If-Match": tag})
    assert r.status_code == 200
    r = web.bearer("bob").post(f"/api/changes/{cid}/approve", headers={"If-Match": r.headers["etag"]})
    assert r.status_code == 403 and "you edited this change" in r.json()["message"]
    r = web.bearer("admin").post(f"/api/changes/{cid}/approve", headers={"If-Match": "*"})
    assert r.status_code == 200
    assert web.bearer("alice").post(f"/api/changes/{cid}/retrigger").status_code == 403


def test_four_eyes_after_a_reschedule_by_the_same_approver(web):
    cid = web.submit("alice")
    bob = web.bearer("bob")
    r = bob.post(f"/api/changes/{cid}/reschedule", headers={"If-Match": etag(bob, cid)},
                 json={"start": window(9)["implementationStart"], "end": window(9)["implementationEnd"]})
    assert r.status_code == 200
    r = bob.post(f"/api/changes/{cid}/approve", headers={"If-Match": r.headers["etag"]})
    assert r.status_code == 403 and "four-eyes" in r.json()["message"]
    assert web.lifecycle.show(cid)["status"] == "submitted"
    row = web.login("bob").get("/approvals").text.split(cid, 1)[1].split("</tr>", 1)[0]
    assert "another approver must approve it" in row          # the queue says so too
    r = web.bearer("admin").post(f"/api/changes/{cid}/approve", headers={"If-Match": "*"})
    assert r.status_code == 200


def test_four_eyes_when_an_admin_submits_someone_elses_draft(web):
    carol, admin = web.bearer("carol"), web.bearer("admin")
    cid = carol.post("/api/drafts", json=web.content()).json()["changeId"]
    r = admin.post(f"/api/drafts/{cid}/submit")
    assert r.status_code == 201, r.text
    change = admin.get(f"/api/changes/{cid}").json()
    assert change["createdBy"] == "carol"
    assert change["modifications"][0]["actor"] == "admin"
    assert change["modifications"][0]["draftAuthors"] == ["carol"]
    assert "editors" not in change and "modifiedBy" not in change
    r = carol.post(f"/api/changes/{cid}/approve", headers={"If-Match": "*"})
    assert r.status_code == 403 and "four-eyes" in r.json()["message"]
    r = web.bearer("bob").post(f"/api/changes/{cid}/approve", headers={"If-Match": "*"})
    assert r.status_code == 200


def test_a_change_through_its_whole_lifecycle_keeps_its_history(web):
    alice, bob = web.bearer("alice"), web.bearer("bob")
    cid = alice.post("/api/changes", json=web.content(customers=["hts"])).json()["changeId"]
    r = alice.post(f"/api/changes/{cid}/update", headers={"If-Match": etag(alice, cid)},
                   json={"customers": ["hts", "htsnonprod"], "rollbackPlan": "revert"})
    assert r.status_code == 200 and sorted(r.json()["triggers"]["written"]) == ["hts", "htsnonprod"]
    r = alice.post(f"/api/changes/{cid}/reschedule", headers={"If-Match": r.headers["etag"]},
                   json={"start": f"{day(9)}T02:00:00-05:00", "end": f"{day(9)}T03:00:00-05:00",
                         "note": "change freeze"})
    assert r.status_code == 200 and r.json()["status"] == "submitted"
    r = bob.post(f"/api/changes/{cid}/approve", headers={"If-Match": r.headers["etag"]}, json={"note": "ok"})
    assert r.status_code == 200
    r = alice.post(f"/api/changes/{cid}/complete?beforeStart=true", headers={"If-Match": r.headers["etag"]})
    assert r.status_code == 200 and r.json()["status"] == "completed"
    r = bob.post(f"/api/changes/{cid}/cancel", headers={"If-Match": r.headers["etag"]})
    assert r.status_code == 409 and "completed is final" in r.json()["message"]
    change = bob.get(f"/api/changes/{cid}").json()
    assert [(m["type"], m["seq"], m["actor"]) for m in change["modifications"]] == [
        ("submitted", 1, "alice"), ("updated", 2, "alice"), ("rescheduled", 3, "alice"),
        ("approved", 4, "bob"), ("completed", 5, "alice")]
    assert change["modifications"][1]["addedCustomers"] == ["htsnonprod"]
    assert change["modifications"][2]["note"] == "change freeze"
    assert change["rollbackPlan"] == "revert" and change["version"] == 5


def test_invalid_content_names_the_field(web):
    alice = web.bearer("alice")
    cases = [({**web.content(), "title": ""}, "title"),
             ({**web.content(), "customers": ["nope"]}, "customers"),
             ({**web.content(), "customers": "hts"}, "customers"),
             ({**web.content(), "schedule": {**web.content()["schedule"], "timezone": "Mars/Base"}},
              "schedule.timezone"),
             ({**web.content(), "status": "approved"}, "status"),
             ({**web.content(), "changeId": "../etc/passwd"}, "changeId")]
    for body, field in cases:
        r = alice.post("/api/changes", json=body)
        assert r.status_code == 422, (field, r.text)
        assert r.json()["field"] == field, r.json()
    r = alice.post("/api/changes", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    cid = web.submit("alice")
    r = alice.post("/api/changes", json={**web.content(), "changeId": cid})
    assert r.status_code == 409 and r.json()["error"] == "already_exists"
    r = alice.post(f"/api/changes/{cid}/update", json={"title": "x\ny"}, headers={"If-Match": "*"})
    assert r.status_code == 422 and r.json()["field"] == "title"
    r = alice.post(f"/api/changes/{cid}/update", json={"version": 9}, headers={"If-Match": "*"})
    assert r.status_code == 422 and r.json()["field"] == "version"
    r = alice.post(f"/api/changes/{cid}/update", json={"changeId": "CHG-other", "title": "t"}, headers={"If-Match": "*"})
    assert r.status_code == 422 and r.json()["field"] == "changeId"
    r = alice.post(f"/api/changes/{cid}/update", json={"title": web.lifecycle.show(cid)["title"]},
                   headers={"If-Match": "*"})
    assert r.status_code == 422 and "identical" in r.json()["message"]
    r = web.bearer("bob").post(f"/api/changes/{cid}/retrigger", json={"customers": ["nope"]})
    assert r.status_code == 422 and "not on change" in r.json()["message"]
    r = alice.post(f"/api/changes/{cid}/reschedule", json={"start": START, "end": START}, headers={"If-Match": "*"})
    assert r.status_code == 422 and "must be after" in r.json()["message"]


def test_a_trigger_that_cannot_be_written_is_reported_not_hidden(web_stack):
    from runtime.adapters.s3 import S3ObjectStore
    from runtime.domain.errors import RetryableError
    from runtime.web import start_portal

    class Flaky(S3ObjectStore):
        def get(self, key):
            if key == "archive/CHG-s3-is-down.json":
                raise RetryableError("S3 answered 503 SlowDown", operation="s3.GetObject", retry_after=2)
            return super().get(key)

        def put(self, key, body, **kw):
            if key.startswith("customers/htsnonprod/"):
                raise RetryableError("S3 is throttling", operation="s3.PutObject")
            return super().put(key, body, **kw)

    store = Flaky(web_stack.clients, web_stack.cfg.bucket)
    with start_portal(web_stack.cfg, 0, session_secret=SECRET, store=store) as portal:
        from tests.web.conftest import Web

        w = Web(web_stack, portal)
        r = w.bearer("alice").post("/api/changes", json=w.content())
        assert r.status_code == 201
        out = r.json()
        assert out["complete"] is False and out["triggers"]["written"] == ["hts"]
        assert "throttling" in out["triggers"]["failed"]["htsnonprod"]
        r = w.bearer("bob").post(f"/api/changes/{out['changeId']}/retrigger", json={"customers": ["hts"]})
        assert r.status_code == 200 and r.json()["triggers"]["written"] == ["hts"]
        r = w.bearer("bob").get("/api/changes/CHG-s3-is-down")              # a dependency failing: 503, retry
        assert (r.status_code, r.json()["error"], r.headers["retry-after"]) == (503, "unavailable", "2")
        r = w.login("bob").get("/changes/CHG-s3-is-down")
        assert r.status_code == 503 and "SlowDown" in r.text


# ---------------------------------------------------------------------------------------------
# Drafts


def test_drafts_create_read_update_delete_submit(web):
    alice = web.bearer("alice")
    r = alice.post("/api/drafts", json={"title": "Half a change", "customers": ["hts"], "x-future": {"x": 1}})
    assert r.status_code == 201
    did = r.json()["changeId"]
    assert r.headers["location"] == f"/api/drafts/{did}"
    draft = alice.get(f"/api/drafts/{did}").json()
    assert (draft["status"], draft["createdBy"], draft["x-future"]) == ("draft", "alice", {"x": 1})
    r = alice.put(f"/api/drafts/{did}", json={**web.content(), "x-future": {"x": 1}})
    assert r.status_code == 200 and r.json()["createdBy"] == "alice" and r.json()["createdAt"] == draft["createdAt"]
    assert did in [d["changeId"] for d in alice.get("/api/drafts").json()["items"]]
    assert did not in [d["changeId"] for d in web.bearer("carol").get("/api/drafts").json()["items"]]
    assert did in [d["changeId"] for d in web.bearer("carol").get("/api/drafts?mine=false").json()["items"]]
    # other people may read it, not change it
    assert web.bearer("carol").put(f"/api/drafts/{did}", json={"title": "mine now"}).status_code == 403
    assert web.bearer("carol").delete(f"/api/drafts/{did}").status_code == 403
    assert web.bearer("carol").post(f"/api/drafts/{did}/submit").status_code == 403
    assert web.bearer("bob").post("/api/drafts", json={"title": "x"}).status_code == 403
    r = alice.post(f"/api/drafts/{did}/submit")
    assert r.status_code == 201 and r.json()["changeId"] == did and r.json()["version"] == 1
    assert alice.get(f"/api/drafts/{did}").status_code == 404
    change = alice.get(f"/api/changes/{did}").json()
    assert change["x-future"] == {"x": 1} and change["status"] == "submitted"
    # an admin may delete anyone's draft
    other = alice.post("/api/drafts", json={"title": "scrap"}).json()["changeId"]
    assert web.bearer("admin").delete(f"/api/drafts/{other}").status_code == 204
    assert alice.delete(f"/api/drafts/{other}").status_code == 404


def test_draft_rejections(web):
    alice = web.bearer("alice")
    r = alice.post("/api/drafts", json={"schedule": {"timezone": "Nowhere/Land"}})
    assert r.status_code == 422 and r.json()["field"] == "schedule.timezone"
    r = alice.post("/api/drafts", json={"title": "t", "createdBy": "someone-else"})
    assert r.status_code == 422 and r.json()["field"] == "createdBy"
    did = alice.post("/api/drafts", json={"title": "dup", "changeId": "CHG-draft-dup-test"}).json()["changeId"]
    assert alice.post("/api/drafts", json={"title": "dup", "changeId": did}).status_code == 409
    assert alice.put(f"/api/drafts/{did}", json={"changeId": "CHG-other"}).status_code == 422
    r = alice.post(f"/api/drafts/{did}/submit")                   # incomplete: no customers, no schedule
    assert r.status_code == 422 and r.json()["field"] == "customers"
    cid = web.submit("alice")
    assert alice.post("/api/drafts", json={"title": "again", "changeId": cid}).status_code == 409
    assert alice.get("/api/drafts/CHG-no-such-draft").status_code == 404


# ---------------------------------------------------------------------------------------------
# Lists, search, delivery


def test_list_filters_and_cursor_pagination(web):
    tag = f"tag{time.time_ns()}"
    alice = web.bearer("alice")
    ids = [web.submit("alice", title=f"{tag} one", customers=["hts"]),
           web.submit("carol", title=f"{tag} two"),
           web.submit("alice", title=f"{tag} three", schedule=window(120, tz="UTC"))]
    web.lifecycle.transition(ids[1], "approve", actor="bob")

    def q(**params):
        r = alice.get("/api/changes", params={"q": tag, **params})
        assert r.status_code == 200, r.text
        return r.json()

    assert q()["total"] == 3
    assert [c["changeId"] for c in q()["items"]] == ids[::-1]                 # newest first
    first = q(limit=2)
    assert len(first["items"]) == 2 and first["nextCursor"]
    second = q(limit=2, cursor=first["nextCursor"])
    assert [c["changeId"] for c in second["items"]] == [ids[0]] and second["nextCursor"] is None
    assert [c["changeId"] for c in q(status="approved")["items"]] == [ids[1]]
    assert {c["changeId"] for c in q(customer="htsnonprod")["items"]} == {ids[1], ids[2]}
    assert [c["changeId"] for c in q(**{"from": day(60)})["items"]] == [ids[2]]
    assert [c["changeId"] for c in q(to=day(30))["items"]] == [ids[1], ids[0]]
    assert [c["changeId"] for c in q(createdBy="carol")["items"]] == [ids[1]]
    assert q(q=f"{tag} nothing-like-this")["total"] == 0
    assert alice.get("/api/changes", params={"q": tag.upper()}).json()["total"] == 3
    for bad, field in (({"from": "soon"}, "from"), ({"cursor": "!!"}, "cursor"), ({"customer": "zz"}, "customer"),
                       ({"status": "draft"}, "status"), ({"limit": 0}, "limit"), ({"limit": 500}, "limit")):
        r = alice.get("/api/changes", params=bad)
        assert r.status_code == 422 and r.json()["field"] == field, (bad, r.json())
    stats = alice.get("/api/stats").json()
    assert stats["total"] >= 3 and stats["approved"] >= 1
    assert alice.get("/api/customers").json() == [{"code": "hts", "name": "HTS Production"},
                                                  {"code": "htsnonprod", "name": "HTS Non-Production"}]


def test_delivery_endpoint(web):
    cid = web.submit("alice")
    web.lifecycle.transition(cid, "approve", actor="bob")
    viewer = web.bearer("victor")
    d = viewer.get(f"/api/changes/{cid}/delivery").json()
    assert d["done"] is False and {c["state"] for c in d["customers"]} == {"pending"}
    assert d["meeting"]["state"] == "waiting"
    web.simulate_delivery(cid, emails=2)
    d = viewer.get(f"/api/changes/{cid}/delivery").json()
    assert d["done"] is True and [c["emailsSent"] for c in d["customers"]] == [4, 4]
    assert d["customers"][0]["steps"][0]["recipients"] == [["person0@hts.example.com", "sent"],
                                                           ["person1@hts.example.com", "sent"]]
    assert [(c["email"], c["outcome"], c["why"]) for c in d["customers"][0]["steps"][0]["contacts"]] == [
        ("person0@hts.example.com", "sent", ""), ("person1@hts.example.com", "sent", ""),
        ("away@hts.example.com", "skipped", "unsubscribed from everything"),
        ("quiet@hts.example.com", "skipped", "opted out of this topic")]
    assert d["meeting"]["joinUrl"] == "https://teams.example.com/l/meetup-join/abc"
    assert viewer.get("/api/changes/CHG-nope/delivery").status_code == 404


def test_markup_in_content_is_escaped_on_every_page(web):
    cid = web.submit("alice", title="<script>alert(1)</script> & co", reason="<img src=x onerror=alert(2)>")
    c = web.login("victor")
    for path in (f"/changes/{cid}", "/changes", "/", "/approvals"):
        html = c.get(path).text
        assert "<script>alert(1)</script>" not in html and "<img src=x" not in html, path
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in c.get(f"/changes/{cid}").text
