"""Starting the Ray runtime from the embedded stack (the only place runtime/ reaches for actors/)."""

from __future__ import annotations

from ..config import Config


def start_runtime(cfg: Config, **kw):
    from actors.supervisor import start_runtime as _start

    return _start(cfg, **kw)
