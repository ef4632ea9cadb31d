"""The email templates' Jinja environment, with the compiled templates kept on disk.

Compiling the six templates (lexer, parser, code generator) is most of the CPU of a first
rendering. So the environment uses Jinja's own bytecode cache (``FileSystemBytecodeCache``): the
driver compiles every template once per runtime start (``warm_template_cache``) and the process
that renders (the renderer actor, ``actors/renderer.py``; before it, every tenant) loads the code.

What invalidates a compiled template, and what keys it:

- the template's name, path and source: Jinja's own key (name and path) and the source's checksum
  stored in the file, checked at every load (a changed template is compiled again and rewritten);
- the Python version: in Jinja's file header (and ``sys.implementation.cache_tag`` in the
  directory name, so two Pythons do not rewrite each other's files);
- the jinja2 version and the environment's options (autoescape, whitespace handling, the filters
  and how they are called are compiled into the code): in the directory name, by the jinja2
  version and a digest of this file. Every option of the environment is therefore set here.

The directory is ``$TTR_CACHE_DIR/jinja2-<version>-<python>-<digest>`` (``runtime.domain.cache_dir``).
Jinja writes each file to a temporary name and renames it into place (jinja2 3.1 ``bccache``), so
tenants starting together never read half a file. The cache can only make an email cheaper: a
directory that cannot be created or used, or is writable by other users (its files are code that
runs here), is reported by one warning and the templates are compiled in memory as without it.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from pathlib import Path

import jinja2
from jinja2 import Environment, FileSystemBytecodeCache, FileSystemLoader, StrictUndefined, select_autoescape
from jinja2.bccache import Bucket
from markupsafe import Markup, escape

from runtime.domain.cache_dir import cache_dir, check_private

TEMPLATES = Path(__file__).parent / "templates"
log = logging.getLogger("ttr.emails")


def _nl2br(value: str) -> Markup:
    """Escape, then keep the author's line breaks (pre-wrap is ignored by some mail clients)."""
    return Markup("<br>\n").join(escape(line) for line in str(value).splitlines())


def template_cache_path() -> Path:
    """The directory of compiled templates for this jinja2, this Python and this environment."""
    digest = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]
    return cache_dir() / f"jinja2-{jinja2.__version__}-{sys.implementation.cache_tag}-{digest}"


class TemplateCache(FileSystemBytecodeCache):
    """Jinja's file cache of compiled templates that never fails a render.

    The directory (``template_cache_path()`` unless given) is resolved and created at the first
    template loaded, not at import. Any error of the cache (the directory cannot be made, is not
    ours, a file cannot be read or written) logs one warning and turns the cache off for this
    process; a file that does not hold valid code is a miss (the template is compiled and the
    file rewritten)."""

    def __init__(self, directory: Path | None = None) -> None:
        super().__init__(str(directory or ""), pattern="%s.jinja")
        self._fixed = directory
        self._state: bool | None = None  # None: not checked yet; then whether the cache is used
        self.hits = 0    # templates loaded from a file
        self.stored = 0  # templates compiled and written

    def _usable(self) -> bool:
        if self._state is None:
            path = self._fixed or template_cache_path()
            self.directory = str(path)
            try:
                path.mkdir(mode=0o700, parents=True, exist_ok=True)
                check_private(path)
                self._state = True
            except OSError as exc:
                self._off(exc)
        return bool(self._state)

    def _off(self, exc: BaseException) -> None:
        self._state = False
        log.warning("email templates are compiled in memory, without the cache in %s (%s): each process "
                    "compiles them again", self.directory, exc)

    def load_bytecode(self, bucket: Bucket) -> None:
        if not self._usable():
            return
        try:
            super().load_bytecode(bucket)
        except OSError as exc:
            bucket.reset()
            self._off(exc)
        except Exception:  # noqa: BLE001 - not valid code (e.g. a file cut short): a miss, compiled and rewritten
            bucket.reset()
        self.hits += bucket.code is not None

    def dump_bytecode(self, bucket: Bucket) -> None:
        if not self._usable():
            return
        try:
            super().dump_bytecode(bucket)
            self.stored += 1
        except OSError as exc:
            self._off(exc)


def template_environment(bytecode_cache: FileSystemBytecodeCache | None = None) -> Environment:
    """The environment every email is rendered with (``bytecode_cache=None``: compiled in memory)."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        # Only the .html template is escaped; the text part must show "<" as "<", not "&lt;".
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False, default=False),
        undefined=StrictUndefined,  # a typo in a template fails the tests instead of rendering blank
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
        bytecode_cache=bytecode_cache,
    )
    env.filters["nl2br"] = _nl2br
    return env


def warm_template_cache(bytecode_cache: TemplateCache | None = None) -> int:
    """Load every template through the cache (with a fresh environment, so the files on disk are
    what is checked): the missing or outdated ones are compiled and stored. Run by the driver
    before the tenants start; cheap when the cache is warm. Returns how many were compiled."""
    cache = bytecode_cache or TemplateCache()
    env = template_environment(cache)
    names = env.list_templates()
    before = cache.hits
    for name in names:
        env.get_template(name)
    return len(names) - (cache.hits - before)
