"""Single sign-on: OpenID Connect, authorization-code flow with PKCE (S256), through Authlib.

Works with any provider that publishes ``/.well-known/openid-configuration`` (IAM Identity
Center through an OIDC bridge, Cognito, Entra ID, Okta, Keycloak, ...). The ID token is
verified by Authlib (signature against the provider's JWKS, issuer, audience, expiry, nonce).
Roles come from a claim (``web.oidc.roles_claim``, default ``groups``) through
``web.oidc.role_map`` (required: a group named like a role grants nothing by its name). A user
with no role gets no session.

Identities are keyed on (issuer, subject): the principal's name is ``oidc:{issuer host}/{sub}``,
which no local username can be (they have no ``:`` or ``/``). An email is used (shown) only when
the provider says ``email_verified``.

API clients may present a JWT the provider issued (an ID token to this portal, or an access token
for ``web.oidc.audience``): signature (JWKS), issuer, expiry, audience and authorized party
(``azp``/``client_id`` must be this portal or one of ``web.oidc.api_clients``) are checked.
"""

from __future__ import annotations

import os
import time
from typing import Any, Mapping
from urllib.parse import urlsplit

from runtime.web._auth import ROLES, Forbidden, Principal, Unauthenticated

JWKS_TTL = 600.0
BEARER_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384"]


def roles_from_claims(claims: Mapping[str, Any], roles_claim: str,
                      role_map: Mapping[str, tuple[str, ...]]) -> frozenset[str]:
    raw = claims.get(roles_claim)
    if isinstance(raw, str):
        groups = [g for g in raw.replace(",", " ").split() if g]
    elif isinstance(raw, (list, tuple)):
        groups = [str(g) for g in raw]
    else:
        groups = []
    roles: set[str] = set()
    for g in groups:
        roles.update(role_map.get(g, ()))     # only what the map says: never a group's own name
    return frozenset(r for r in roles if r in ROLES)


def verified_email(claims: Mapping[str, Any]) -> str | None:
    email = claims.get("email")
    ok = claims.get("email_verified")
    if isinstance(email, str) and "@" in email and (ok is True or (isinstance(ok, str) and ok.lower() == "true")):
        return email
    return None


def oidc_name(issuer: str, subject: str) -> str:
    """The principal's name (what the archive records): keyed on the issuer and the subject."""
    return f"oidc:{urlsplit(issuer).netloc or issuer}/{subject}"


def principal_from_claims(claims: Mapping[str, Any], cfg, via: str = "session") -> Principal:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub.strip():
        raise Unauthenticated("the identity provider sent no subject")
    name = oidc_name(str(claims.get("iss") or cfg.issuer), sub)
    display = str(claims.get("name") or verified_email(claims) or claims.get("preferred_username") or sub)
    roles = roles_from_claims(claims, cfg.roles_claim, cfg.role_map)
    if not roles:
        raise Forbidden(f"{display} has no role in ttr (no group in the {cfg.roles_claim!r} claim maps to one); "
                        "ask an administrator")
    return Principal(name=name, roles=roles, source="oidc", display=display, via=via)


def check_audience(claims: Mapping[str, Any], client_id: str, audience: str | None = None,
                   api_clients: tuple[str, ...] = ()) -> None:
    """The token is for us (``aud``) and was issued to a client we accept (``azp``/``client_id``).

    An ID token to another app, or one with several audiences but no ``azp`` (OIDC Core 3.1.3.7),
    or issued to a client not in ``api_clients``, is refused."""
    aud = claims.get("aud")
    auds = [aud] if isinstance(aud, str) else [str(a) for a in aud] if isinstance(aud, (list, tuple)) else []
    wanted = {client_id} | ({audience} if audience else set())
    if not wanted & set(auds):
        raise Unauthenticated(f"the bearer token is not for this portal (aud {auds or 'missing'})")
    party = claims.get("azp") or claims.get("client_id")
    if len(auds) > 1 and not party:
        raise Unauthenticated("the bearer token has several audiences and no azp")
    allowed = {client_id, *api_clients}
    if party is not None and party not in allowed:
        raise Unauthenticated(f"the bearer token was issued to client {party!r}, which this portal does not accept")
    if party is None and client_id not in auds:
        raise Unauthenticated("an access token must name its client (azp or client_id)")


class Oidc:
    def __init__(self, cfg, environ: Mapping[str, str] | None = None):
        from authlib.integrations.starlette_client import OAuth

        environ = os.environ if environ is None else environ
        self.cfg = cfg
        self.issuer = cfg.issuer.rstrip("/")
        secret = environ.get(cfg.client_secret_env) or None
        kwargs: dict[str, Any] = {"scope": "openid email profile", "code_challenge_method": "S256"}
        if secret is None:
            kwargs["token_endpoint_auth_method"] = "none"  # a public client: PKCE alone
        self.oauth = OAuth()
        self.client = self.oauth.register(
            name="ttr", client_id=cfg.client_id, client_secret=secret,
            server_metadata_url=f"{self.issuer}/.well-known/openid-configuration", client_kwargs=kwargs)
        self._jwks: tuple[float, Any] | None = None

    async def login_redirect(self, request, redirect_uri: str):
        return await self.client.authorize_redirect(request, redirect_uri)

    async def complete(self, request) -> Principal:
        """The callback: exchange the code (with the PKCE verifier), verify the ID token."""
        from authlib.integrations.base_client.errors import OAuthError

        try:
            token = await self.client.authorize_access_token(request)
        except OAuthError as exc:
            raise Unauthenticated(f"sign-in failed: {exc.description or exc.error}") from None
        claims = dict(token.get("userinfo") or {})
        if not claims:
            raise Unauthenticated("sign-in failed: the identity provider sent no ID token")
        if self.cfg.roles_claim not in claims:
            try:
                info = dict(await self.client.userinfo(token=token))
            except Exception:  # noqa: BLE001 - no userinfo: the ID token's claims are all we have
                info = {}
            if info.get("sub") == claims.get("sub"):   # the same person (OIDC Core 5.3.2); never overrides
                for k, v in info.items():
                    claims.setdefault(k, v)
        return principal_from_claims(claims, self.cfg)

    async def _keys(self, force: bool = False):
        from joserfc.jwk import KeySet

        if force or self._jwks is None or self._jwks[0] < time.monotonic():
            await self.client.load_server_metadata()
            jwks = await self.client.fetch_jwk_set(force=True)
            self._jwks = (time.monotonic() + JWKS_TTL, KeySet.import_key_set(jwks))
        return self._jwks[1]

    async def verify_bearer(self, token: str) -> Principal:
        """An ID token issued to this portal: signature (JWKS), issuer, audience, expiry."""
        from joserfc import jwt
        from joserfc.errors import JoseError

        claims_rules = jwt.JWTClaimsRegistry(
            leeway=60, iss={"essential": True, "value": self.issuer}, exp={"essential": True},
            sub={"essential": True})
        last: Exception | None = None
        for force in (False, True):  # a key rotation: fetch the JWKS again once
            try:
                decoded = jwt.decode(token, await self._keys(force), algorithms=BEARER_ALGORITHMS)
                claims_rules.validate(decoded.claims)
                check_audience(decoded.claims, self.cfg.client_id, self.cfg.audience, self.cfg.api_clients)
                return principal_from_claims(decoded.claims, self.cfg, via="bearer")
            except JoseError as exc:
                last = exc
            except (ValueError, KeyError, TypeError) as exc:
                last = exc
                break
        raise Unauthenticated(f"the bearer token is not valid: {last or 'malformed'}")
