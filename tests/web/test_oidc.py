"""Single sign-on against a local OpenID provider (oidc-provider-mock): code flow with PKCE,
groups mapped to roles, and ID tokens as API bearer tokens."""

from __future__ import annotations

import base64
import hashlib
import json
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
import yaml

from tests.web.conftest import SECRET

# the mock provider (and Authlib's server side it is built on) warn about their own internals
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CLIENT_ID = "ttr-portal"
ROLE_MAP = {"change-approvers": ["approver"], "change-team": ["submitter"], "everyone": ["viewer"]}


@pytest.fixture(scope="module")
def provider():
    oidc_provider_mock = pytest.importorskip("oidc_provider_mock")
    with oidc_provider_mock.run_server_in_thread(port=0) as server:
        issuer = f"http://localhost:{server.server_port}"
        for sub, claims in {
            "dana": {"email": "dana@example.com", "email_verified": True, "name": "Dana Approver",
                     "groups": ["change-approvers", "everyone"]},
            "sam": {"email": "sam@example.com", "email_verified": True, "name": "Sam", "groups": ["change-team"]},
            "eve": {"email": "eve@example.com", "name": "Eve", "groups": ["contractors"]},
            # a group literally named like a role grants nothing (the role map is explicit)
            "mallory": {"email": "mallory@example.com", "groups": ["admin", "approver"]},
            # claims a local username and someone else's address, unverified
            "admin": {"email": "admin@example.com", "email_verified": False, "preferred_username": "admin",
                      "groups": ["everyone"]},
        }.items():
            assert httpx.put(f"{issuer}/users/{sub}", json=claims).status_code == 204
        yield issuer


@pytest.fixture(scope="module")
def sso(provider, web_stack, tmp_path_factory):
    from runtime.domain.config import load_config
    from runtime.web import start_portal

    data = yaml.safe_load(web_stack.path.read_text())
    data["web"]["oidc"] = {"issuer": provider, "client_id": CLIENT_ID, "client_secret_env": "TTR_TEST_OIDC_SECRET",
                           "roles_claim": "groups", "role_map": ROLE_MAP}
    path = tmp_path_factory.mktemp("sso") / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    mp = pytest.MonkeyPatch()
    mp.setenv("TTR_TEST_OIDC_SECRET", "client-secret")
    try:
        with start_portal(load_config(path), 0, session_secret=SECRET) as handle:
            yield handle.url
    finally:
        mp.undo()


def _session_of(client: httpx.Client) -> dict:
    raw = client.cookies["ttr_session"].split(".")[0]
    return json.loads(base64.b64decode(raw + "=" * (-len(raw) % 4)))


def sign_in(sso: str, sub: str, *, next_: str = "/changes") -> tuple[httpx.Client, httpx.Response, dict]:
    portal = httpx.Client(base_url=sso)
    r = portal.get("/auth/login", params={"next": next_})
    assert r.status_code in (302, 303), r.text
    authorize = r.headers["location"]
    query = parse_qs(urlparse(authorize).query)
    r = httpx.post(authorize, data={"sub": sub})                       # the user signs in at the provider
    assert r.status_code == 302, r.text
    callback = urlparse(r.headers["location"])
    r = portal.get(f"{callback.path}?{callback.query}")
    return portal, r, query


def sso_issuer_host(sso) -> str:
    return urlparse(httpx.get(f"{sso}/auth/login").headers["location"]).netloc


def test_code_flow_with_pkce_maps_groups_to_roles(sso):
    portal = httpx.Client(base_url=sso)
    r = portal.get("/auth/login")
    query = parse_qs(urlparse(r.headers["location"]).query)
    assert query["code_challenge_method"] == ["S256"] and query["response_type"] == ["code"]
    assert query["redirect_uri"] == [f"{sso}/auth/callback"] and query["client_id"] == [CLIENT_ID]
    # the verifier stays with the browser's (signed) session; the provider only sees its hash
    state = _session_of(portal)[f"_state_ttr_{query['state'][0]}"]["data"]
    digest = hashlib.sha256(state["code_verifier"].encode()).digest()
    assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == query["code_challenge"][0]

    client, r, _ = sign_in(sso, "dana")
    assert (r.status_code, r.headers["location"]) == (303, "/changes")
    me = client.get("/api/me").json()
    host = sso_issuer_host(sso)
    assert (me["username"], me["displayName"], me["source"]) == (f"oidc:{host}/dana", "Dana Approver", "oidc")
    assert me["roles"] == ["approver", "viewer"]
    assert client.get("/changes").status_code == 200
    client, r, _ = sign_in(sso, "sam")
    assert client.get("/api/me").json()["roles"] == ["submitter"]


def test_sso_refusals(sso):
    client, r, _ = sign_in(sso, "eve")                                 # no group maps to a role
    assert r.status_code == 403 and "has no role in ttr" in r.text
    assert client.get("/api/me").status_code == 401
    portal = httpx.Client(base_url=sso)
    portal.get("/auth/login")
    r = portal.get("/auth/callback", params={"code": "forged", "state": "not-the-state"})
    assert r.status_code == 401 and "sign-in failed" in r.text
    r = portal.get("/auth/callback", params={"error": "access_denied", "error_description": "user said no"})
    assert r.status_code == 401 and "user said no" in r.text
    assert portal.get("/api/me").status_code == 401


def _id_token(issuer: str, sub: str, client_id: str = CLIENT_ID) -> str:
    r = httpx.get(f"{issuer}/oauth2/authorize", params={
        "response_type": "code", "client_id": client_id, "redirect_uri": "http://127.0.0.1/cb",
        "scope": "openid email profile", "state": "s", "nonce": "n"})
    assert r.status_code == 200
    r = httpx.post(str(r.request.url), data={"sub": sub})
    code = parse_qs(urlparse(r.headers["location"]).query)["code"][0]
    r = httpx.post(f"{issuer}/oauth2/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": "http://127.0.0.1/cb",
        "client_id": client_id, "client_secret": "client-secret"})
    return r.json()["id_token"]


def test_id_tokens_work_as_bearer_tokens(sso, provider):
    api = httpx.Client(base_url=sso)
    token = _id_token(provider, "dana")
    r = api.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json()["authenticatedBy"] == "bearer"
    assert r.json()["roles"] == ["approver", "viewer"]
    head, body, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["groups"] = ["change-approvers", "change-team"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    for bad in (f"{head}.{forged}.{sig}", _id_token(provider, "dana", client_id="another-app"), "a.b.c"):
        r = api.get("/api/me", headers={"Authorization": f"Bearer {bad}"})
        assert r.status_code == 401, bad
    r = api.get("/api/me", headers={"Authorization": f"Bearer {_id_token(provider, 'eve')}"})
    assert r.status_code == 401


def test_identities_are_issuer_and_subject_never_a_local_user(sso, web):
    host = sso_issuer_host(sso)
    client, r, _ = sign_in(sso, "admin")        # preferred_username "admin", an unverified address
    me = client.get("/api/me").json()
    assert me["username"] == f"oidc:{host}/admin" and me["roles"] == ["viewer"]
    assert me["displayName"] == "admin"          # the unverified address is not used
    # the local admin's change is not this person's: ownership and four-eyes compare names
    from runtime.web._auth import Principal, is_owner

    change = web.lifecycle.show(web.submit("admin"))
    assert not is_owner(Principal(name=me["username"], roles=frozenset({"admin"}), source="oidc"), change)
    # and no local user can take an SSO name
    from runtime.domain.config import WebUser

    for name in (me["username"], "dana@example.com"):
        with pytest.raises(Exception, match="single sign-on users are configured under web.oidc"):
            WebUser(username=name, password_hash="x")


def test_a_group_named_like_a_role_grants_nothing(sso):
    client, r, _ = sign_in(sso, "mallory")
    assert r.status_code == 403 and "has no role in ttr" in r.text
    assert client.get("/api/me").status_code == 401


def test_an_empty_role_map_is_refused():
    from runtime.domain.config import OidcConfig

    with pytest.raises(Exception, match="role_map"):
        OidcConfig(issuer="https://idp.example.com", client_id="ttr", role_map={})
    with pytest.raises(Exception, match="role_map"):
        OidcConfig(issuer="https://idp.example.com", client_id="ttr")


def test_bearer_audience_and_authorized_party():
    from runtime.web._auth import Unauthenticated
    from runtime.web._oidc import check_audience

    check_audience({"aud": "ttr"}, "ttr")                                        # an ID token to us
    check_audience({"aud": ["ttr", "other"], "azp": "ttr"}, "ttr")
    check_audience({"aud": "api://ttr", "client_id": "ttr-cli"}, "ttr", "api://ttr", ("ttr-cli",))  # access token
    for claims, why in (({"aud": "other"}, "not for this portal"),
                        ({"aud": ["ttr", "other"]}, "several audiences and no azp"),
                        ({"aud": "ttr", "azp": "evil-app"}, "issued to client 'evil-app'"),
                        ({"aud": "api://ttr", "client_id": "ttr-cli"}, "issued to client 'ttr-cli'"),
                        ({"aud": "api://ttr"}, "must name its client"),
                        ({}, "aud missing")):
        with pytest.raises(Unauthenticated, match=why):
            check_audience(claims, "ttr", "api://ttr")


def test_an_sso_api_token_dies_with_sso_and_can_be_revoked(sso, web):
    from runtime.web import start_portal

    client, _, _ = sign_in(sso, "dana")
    me = client.get("/api/me").json()
    r = client.post("/api/tokens", json={"ttl": 600}, headers={"X-CSRF-Token": me["csrfToken"]})
    assert r.status_code == 201
    token = r.json()["token"]
    assert httpx.get(f"{sso}/api/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    # the same bucket and key, single sign-on switched off (web_stack's config has no web.oidc)
    with start_portal(web.cfg, 0, session_secret=SECRET) as plain:
        r = httpx.get(f"{plain.url}/api/me", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401 and "single sign-on" in r.json()["message"]
        session = httpx.Client(base_url=plain.url)
        session.cookies.set("ttr_session", client.cookies["ttr_session"])
        assert session.get("/api/me").status_code == 401          # its sessions too
    tid = client.get("/api/tokens").json()[0]["id"]
    assert client.delete(f"/api/tokens/{tid}", headers={"X-CSRF-Token": me["csrfToken"]}).status_code == 204
    assert httpx.get(f"{sso}/api/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
