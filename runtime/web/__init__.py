"""The web portal and its JSON API (FastAPI, server-rendered Jinja2 pages, no front-end build).

The public surface is small and imported lazily, so ``ttr --help`` (which imports
``runtime.cli.web``) never pays for FastAPI:

- ``create_app(cfg, *, store=None, session_secret=None)``: the ASGI application.
- ``start_portal(cfg, port)``: uvicorn on 127.0.0.1 in a background thread; returns a handle with
  ``.url`` and ``.stop()`` (``ttr local up`` and ``ttr demo --keep-running`` use it).
- ``demo_logins(cfg)``: the configured users, with the documented demo password where it applies.
- ``hash_password(password)``: the argon2 hash that ``web.users[].password_hash`` holds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from runtime.web._app import create_app
    from runtime.web._auth import demo_logins, hash_password
    from runtime.web._server import PortalHandle, start_portal

_EXPORTS = {
    "create_app": "._app",
    "start_portal": "._server",
    "PortalHandle": "._server",
    "demo_logins": "._auth",
    "hash_password": "._auth",
}

__all__ = ["PortalHandle", "create_app", "demo_logins", "hash_password", "start_portal"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
