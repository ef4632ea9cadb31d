"""A runtime's start compiles the email templates into the cache before its tenants start
(actors/supervisor.py Runtime.start, issue 11), on a real local Ray."""

from __future__ import annotations

import pytest

from runtime.emails.templating import TEMPLATES, template_cache_path
from tests.conftest import running_runtime

pytestmark = pytest.mark.ray


def test_a_runtime_start_warms_the_template_cache(ray_session, stack, tmp_path, monkeypatch):
    monkeypatch.setenv("TTR_CACHE_DIR", str(tmp_path / "cache"))  # the driver's: where it warms
    assert not template_cache_path().exists()
    with running_runtime(stack.cfg, "template-cache"):
        compiled = sorted(p.name for p in template_cache_path().iterdir())
    assert len(compiled) == len([p for p in TEMPLATES.iterdir() if p.is_file()])
    assert all(name.endswith(".jinja") for name in compiled)
