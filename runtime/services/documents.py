"""Reading change documents (user files): JSON or YAML, with errors that name the file."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from runtime.domain.errors import InvalidInput

MAX_FILE_BYTES = 1024 * 1024


class _TextLoader(yaml.SafeLoader):
    """SafeLoader that keeps timestamps as the strings the user wrote (we validate them ourselves;
    PyYAML would silently turn an offset-less time into a naive datetime)."""


_TextLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def parse_document(text: str, source: str) -> object:
    stripped = text.lstrip()
    if source.endswith(".json") or stripped.startswith("{"):
        try:
            return json.loads(text)
        except ValueError as exc:
            raise InvalidInput(f"{source}: malformed JSON: {exc}") from None
    try:
        return yaml.load(text, Loader=_TextLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InvalidInput(f"{source}: malformed YAML{where}: {getattr(exc, 'problem', None) or exc}") from None


def load_document(path: str | Path) -> dict:
    """A JSON or YAML mapping from a file; '-' reads standard input."""
    import sys

    source = str(path)
    if source == "-":
        text = sys.stdin.read(MAX_FILE_BYTES + 1)
        source = "<stdin>"
    else:
        p = Path(path)
        try:
            if p.stat().st_size > MAX_FILE_BYTES:
                raise InvalidInput(f"{source}: file is larger than {MAX_FILE_BYTES // 1024} KiB")
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InvalidInput(f"{source}: file not found") from None
        except IsADirectoryError:
            raise InvalidInput(f"{source}: is a directory, not a file") from None
        except UnicodeDecodeError:
            raise InvalidInput(f"{source}: not UTF-8 text") from None
        except OSError as exc:
            raise InvalidInput(f"{source}: cannot read: {exc.strerror or exc}") from None
    if len(text.encode("utf-8")) > MAX_FILE_BYTES:
        raise InvalidInput(f"{source}: input is larger than {MAX_FILE_BYTES // 1024} KiB")
    data = parse_document(text, source)
    if not isinstance(data, dict):
        raise InvalidInput(f"{source}: expected a mapping of change fields, got {type(data).__name__}")
    return data


EXAMPLE_CHANGE = Path(__file__).resolve().parents[2] / "configs" / "examples" / "change.yaml"


def example_change(days: int = 7) -> dict:
    """configs/examples/change.yaml with a window ``days`` from today (02:00-04:00 in its zone)."""
    from runtime.domain.rules import window_from_today

    if days < 0:
        raise InvalidInput(f"--days: {days} is in the past; give 0 or more days from today")
    content = load_document(EXAMPLE_CHANGE)
    out: dict = {}
    for k, v in content.items():  # the window right after the customers, as a person writes it
        out[k] = v
        if k == "customers":
            out["schedule"] = window_from_today(days)
    out.setdefault("schedule", window_from_today(days))
    return out


def dump_yaml(data: object) -> str:
    """YAML as a person writes it: keys in order, multi-line text as literal blocks."""
    class _Dumper(yaml.SafeDumper):
        pass

    def _str(dumper, value: str):
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    _Dumper.add_representer(str, _str)
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True)
