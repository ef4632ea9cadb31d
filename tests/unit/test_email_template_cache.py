"""Compiled email templates on disk (issue 11): the driver compiles them once per runtime start and
every tenant loads the code instead of compiling the same six files again. The emails must not
change by a byte, a warm cache must not compile, and a cache that cannot be used must never fail
an email. The cache directory comes from $TTR_CACHE_DIR; each test has its own."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import jinja2
import pytest

from runtime.emails.templating import (
    TEMPLATES,
    TemplateCache,
    template_cache_path,
    template_environment,
    warm_template_cache,
)

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_NAMES = sorted(p.name for p in TEMPLATES.iterdir() if p.is_file())

# Every email a tenant sends, rendered through the module's own environment (runtime.emails._env(),
# whose cache directory is read from $TTR_CACHE_DIR at its first template), printed as JSON with
# what the cache did.
RENDER_ALL = r"""
import json, sys
from runtime.emails import ANNOUNCEMENT_KINDS, KINDS, _env, render_email
from tests.unit.test_announcements import submitted
from tests.unit.test_emails import change, transition

def one(kind, obj, trans, **kw):
    mail = render_email(kind, obj, customer_code="hts", customer_name="HTS <Production>",
                        portal_base_url="http://127.0.0.1:8080", transition=trans, **kw)
    return [mail.subject, mail.html, mail.text]

chg = change(title="Patch <the> fleet & more", implementationPlan="1. Drain\n2. <b>Patch</b>")
out = {}
for kind in sorted(KINDS):
    trans = transition("submitted" if kind == "approval_request" else kind,
                       previousSchedule=chg["schedule"], fields=["title", "schedule"])
    out[kind] = one(kind, chg, trans, zone="Asia/Tokyo", meeting={"joinUrl": "https://teams.example.com/j?a=1&b=2"})
    out[kind + "/plain"] = one(kind, chg, trans, show_customers=True, meeting={"pending": True})
out["approval_request/updated"] = one("approval_request", chg, transition("updated", fields=["title"]),
                                      first_request=False)
ann = submitted(title="Cost <review>", content="line 1\n<i>line 2</i>",
                links=[{"title": "Report", "url": "https://r.example.com/?a=1&b=2"}])
for kind in ANNOUNCEMENT_KINDS:
    out[kind] = one(kind, ann, {"type": "approved", "actor": "bob"}, meeting={"pending": True})
cache = _env().bytecode_cache
print(json.dumps({"emails": out, "hits": cache.hits, "stored": cache.stored}))
"""


def render_all(cache_dir: Path) -> tuple[dict, str]:
    env = {**os.environ, "TTR_CACHE_DIR": str(cache_dir)}
    proc = subprocess.run([sys.executable, "-c", RENDER_ALL], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60, check=True)
    return json.loads(proc.stdout), proc.stderr


def files_of(directory: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in directory.iterdir()}


def test_emails_are_byte_identical_cold_warm_and_without_a_cache(tmp_path):
    cold, _ = render_all(tmp_path / "cache")
    [compiled] = (tmp_path / "cache").iterdir()
    assert compiled.name.startswith(f"jinja2-{jinja2.__version__}-{sys.implementation.cache_tag}-")
    written = files_of(compiled)
    assert cold["hits"] == 0 and cold["stored"] == len(written) == len(TEMPLATE_NAMES)

    warm, _ = render_all(tmp_path / "cache")
    assert warm["hits"] == len(TEMPLATE_NAMES) and warm["stored"] == 0  # loaded, not compiled
    assert files_of(compiled) == written  # not one file rewritten

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    uncached, stderr = render_all(blocker)
    assert uncached["hits"] == uncached["stored"] == 0
    assert "without the cache" in stderr

    assert len(cold["emails"]) == 2 * 6 + 1 + 3  # every kind, both variants, the re-request, announcements
    assert warm["emails"] == cold["emails"] == uncached["emails"]
    # what the comparison compares: escaped HTML, plain text, the subject
    subject, html, text = cold["emails"]["approval_request"]
    assert "Patch &lt;the&gt; fleet &amp; more" in html and "Patch <the> fleet & more" in text
    assert subject.startswith("Approval required: Patch <the> fleet & more")


def test_a_fresh_environment_loads_every_template_without_compiling(tmp_path, monkeypatch):
    monkeypatch.setenv("TTR_CACHE_DIR", str(tmp_path))
    assert warm_template_cache() == len(TEMPLATE_NAMES)  # cold: every template compiled and stored
    directory = template_cache_path()
    assert directory.parent == tmp_path and len(list(directory.iterdir())) == len(TEMPLATE_NAMES)
    assert warm_template_cache() == 0  # warm: a runtime's second start compiles nothing

    class Counting(TemplateCache):  # what reaches the disk, seen from outside the production class
        def __init__(self):
            super().__init__()
            self.loaded, self.dumped = [], []

        def load_bytecode(self, bucket):
            super().load_bytecode(bucket)
            self.loaded.append(bucket.code is not None)

        def dump_bytecode(self, bucket):  # Jinja's loader stores every template it had to compile
            self.dumped.append(bucket.key)
            super().dump_bytecode(bucket)

    cache = Counting()
    env = template_environment(cache)
    for name in TEMPLATE_NAMES:
        env.get_template(name)
    assert cache.loaded == [True] * len(TEMPLATE_NAMES) and cache.dumped == []
    # the same counting sees a compile where there is one: another cache directory is cold
    monkeypatch.setenv("TTR_CACHE_DIR", str(tmp_path / "other"))
    cold = Counting()
    template_environment(cold).get_template("change.txt")
    assert cold.loaded == [False] and len(cold.dumped) == 1


def test_a_changed_template_is_compiled_again(tmp_path):
    """Jinja keys a file by template name and path and checks the source's checksum at each load."""
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "t.txt").write_text("one {{ x }}")
    cache_dir = tmp_path / "cache"

    def env_with(cache: TemplateCache) -> jinja2.Environment:
        return jinja2.Environment(loader=jinja2.FileSystemLoader(templates), bytecode_cache=cache)

    assert env_with(TemplateCache(cache_dir)).get_template("t.txt").render(x=1) == "one 1"
    (templates / "t.txt").write_text("two {{ x }}")
    cache = TemplateCache(cache_dir)
    assert env_with(cache).get_template("t.txt").render(x=1) == "two 1"
    assert (cache.hits, cache.stored) == (0, 1)
    again = TemplateCache(cache_dir)
    assert env_with(again).get_template("t.txt").render(x=1) == "two 1" and again.hits == 1


def test_a_file_that_is_not_valid_code_is_compiled_and_rewritten(tmp_path):
    assert warm_template_cache(TemplateCache(tmp_path)) == len(TEMPLATE_NAMES)
    victim = sorted(tmp_path.iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:40])  # cut short (e.g. a full disk, by hand)
    cache = TemplateCache(tmp_path)
    assert warm_template_cache(cache) == 1 and cache.stored == 1
    assert warm_template_cache(TemplateCache(tmp_path)) == 0


@pytest.mark.parametrize("how", ["a file", "writable by others"])
def test_an_unusable_cache_warns_once_and_renders_without_it(tmp_path, monkeypatch, caplog, how):
    if how == "a file":
        base = tmp_path / "not-a-directory"
        base.write_text("")
        monkeypatch.setenv("TTR_CACHE_DIR", str(base))
    else:  # its files are code this process would run: another user must not be able to write them
        monkeypatch.setenv("TTR_CACHE_DIR", str(tmp_path))
        template_cache_path().mkdir()
        template_cache_path().chmod(0o777)
    cache = TemplateCache()
    with caplog.at_level(logging.WARNING, logger="ttr.emails"):
        assert warm_template_cache(cache) == len(TEMPLATE_NAMES)  # compiled in memory, no error
        assert warm_template_cache(cache) == len(TEMPLATE_NAMES)
    warnings = [r for r in caplog.records if r.name == "ttr.emails"]
    assert len(warnings) == 1 and "without the cache" in warnings[0].getMessage()
    assert cache.hits == cache.stored == 0
    if how != "a file":
        assert list(template_cache_path().iterdir()) == []  # nothing written into it, nothing read
