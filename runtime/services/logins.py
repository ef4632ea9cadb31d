"""Sign-in facts both the portal and the operator tools need: password hashes (argon2id) and
the README's demo passwords, with where serving them would hand them to others."""

from __future__ import annotations

import secrets

from runtime.domain.errors import InvalidInput

# The documented demo password of a configured user is f"{username}{DEMO_PASSWORD_SUFFIX}".
DEMO_PASSWORD_SUFFIX = "-demo"


def _hasher():
    from argon2 import PasswordHasher

    return PasswordHasher()


def hash_password(password: str) -> str:
    if not isinstance(password, str) or not password:
        raise InvalidInput("the password must not be empty")
    return _hasher().hash(password)


_DUMMY_HASH: str | None = None


def verify_password(password_hash: str | None, password: str) -> bool:
    """Constant work whether or not the user exists (an unknown user checks a dummy hash)."""
    from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

    global _DUMMY_HASH
    if password_hash is None:
        if _DUMMY_HASH is None:
            _DUMMY_HASH = _hasher().hash(secrets.token_hex(16))
        password_hash, password = _DUMMY_HASH, password + "\0never"
    try:
        return _hasher().verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def demo_logins(cfg) -> list[dict]:
    """The configured users; ``password`` is the documented demo password where it verifies.

    For ``ttr local up`` to print: only a password anyone could guess from the README is shown.
    """
    out = []
    for u in cfg.web.users:
        guess = f"{u.username}{DEMO_PASSWORD_SUFFIX}"
        out.append({"username": u.username, "roles": list(u.roles),
                    "password": guess if verify_password(u.password_hash, guess) else None})
    return out


def exposure(host: str | None, portal_url: str | None) -> str | None:
    """Why a portal on ``host``, announced as ``portal_url``, is reachable by others (None: only
    from this machine, over plain http to loopback: where demo sign-ins are fine)."""
    import ipaddress
    from urllib.parse import urlsplit

    def loopback(h: str | None) -> bool:
        if not h:
            return False
        if h.lower() == "localhost":
            return True
        try:
            return ipaddress.ip_address(h.strip("[]")).is_loopback
        except ValueError:
            return False

    if host is not None and not loopback(host):
        return f"it listens on {host}, not on loopback"
    url = urlsplit(portal_url or "")
    if url.scheme == "https":
        return f"email.portal_base_url is {portal_url} (https: a real deployment)"
    if url.hostname and not loopback(url.hostname):
        return f"email.portal_base_url is {portal_url}, not on loopback"
    return None


def demo_exposed(cfg, host: str | None) -> str | None:
    """None, or why serving ``cfg`` on ``host`` would hand the README's demo sign-ins to others."""
    reason = exposure(host, cfg.email.portal_base_url)
    if reason is None:
        return None
    names = [d["username"] for d in demo_logins(cfg) if d["password"]]
    if not names:
        return None
    return (f"the documented demo password ({DEMO_PASSWORD_SUFFIX!r} after the username) verifies for "
            f"{', '.join(names)}, and {reason}; give them real passwords (`ttr web hash-password`) "
            "or remove them from web.users")
