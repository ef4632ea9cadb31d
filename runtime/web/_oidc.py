"""Single sign-on: OpenID Connect, authorization-code flow with PKCE (S256), through Authlib.

Works with any provider that publishes ``/.well-known/openid-configuration`` (IAM Identity
Center through an OIDC bridge, Cognito, Entra ID, Okta, Keycloak, ...). The ID token is
verified by Authlib (signature against the provider's JWKS, issuer, audience, expiry, nonce).
Roles come from a claim (``web.oidc.roles_claim``, default ``groups``) through
``web.oidc.role_map``; with an empty map, group names equal to a role name grant that role.
A user with no role gets no session.

API clients may also present an ID token the provider issued to this portal's client id as a
bearer token; it is verified the same way (JWKS, issuer, audience, expiry).
"""

from __future__ import annotations

import os
import time
from typing import Any, Mapping

from ._auth import ROLES, Forbidden, Principal, Unauthenticated

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
        if role_map:
            roles.update(role_map.get(g, ()))
        elif g in ROLES:
            roles.add(g)
    return frozenset(r for r in roles if r in ROLES)


def principal_from_claims(claims: Mapping[str, Any], cfg, via: str = "session") -> Principal:
    roles = roles_from_claims(claims, cfg.roles_claim, cfg.role_map)
    name = claims.get("email") or claims.get("preferred_username") or claims.get("sub")
    if not name:
        raise Unauthenticated("the identity provider sent no subject")
    if not roles:
        raise Forbidden(f"{name} has no role in ttr (no group in the {cfg.roles_claim!r} claim maps to one); "
                        "ask an administrator")
    return Principal(name=str(name), roles=roles, source="oidc",
                     display=str(claims.get("name") or claims.get("preferred_username") or name), via=via)


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
                claims.update(dict(await self.client.userinfo(token=token)))
            except Exception:  # noqa: BLE001 - no userinfo: the ID token's claims are all we have
                pass
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
            leeway=60, iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.cfg.client_id}, exp={"essential": True})
        last: Exception | None = None
        for force in (False, True):  # a key rotation: fetch the JWKS again once
            try:
                decoded = jwt.decode(token, await self._keys(force), algorithms=BEARER_ALGORITHMS)
                claims_rules.validate(decoded.claims)
                return principal_from_claims(decoded.claims, self.cfg, via="bearer")
            except JoseError as exc:
                last = exc
            except (ValueError, KeyError, TypeError) as exc:
                last = exc
                break
        raise Unauthenticated(f"the bearer token is not valid: {last or 'malformed'}")
