"""The layout is the architecture: each folder is one layer, and imports point one way.

    domain  <-  emails, ports, telemetry  <-  adapters, services  <-  actors, web, provisioning
            <-  cli, local (the composition roots)              (testing may use everything)

Read from the source (every import, also those inside functions), so a lazy import cannot
hide a wrong arrow. Vendor libraries are held to their layers too: AWS, Graph and HTTP clients
only in adapters (and the emulators of the local stack), Ray only where actors are built or run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# layer -> the layers it may import (itself included)
BASE = {"domain"}
ALLOWED: dict[str, set[str]] = {
    "domain": BASE,
    "emails": BASE | {"emails"},
    "ports": BASE | {"ports"},
    "telemetry": BASE | {"telemetry"},
    "adapters": BASE | {"emails", "ports", "telemetry", "adapters"},
    "services": BASE | {"emails", "ports", "telemetry", "services"},
    "actors": BASE | {"emails", "ports", "telemetry", "adapters", "services", "actors"},
    "web": BASE | {"emails", "ports", "telemetry", "adapters", "services", "web"},
    "provisioning": BASE | {"ports", "telemetry", "adapters", "services", "provisioning"},
    "local": BASE | {"emails", "ports", "telemetry", "adapters", "services", "actors", "web", "provisioning", "local"},
    "cli": BASE
    | {"emails", "ports", "telemetry", "adapters", "services", "actors", "web", "provisioning", "local", "cli"},
    "testing": set(),  # anything: the chaos harness and the doubles
}

# vendor packages -> the layers that may import them
VENDORS: dict[str, set[str]] = {
    "boto3": {"adapters", "local", "testing"},
    "botocore": {"adapters", "local", "testing"},
    "moto": {"local", "testing"},
    "msgraph": {"adapters"},
    "msgraph_core": {"adapters"},
    "kiota_abstractions": {"adapters"},
    "kiota_http": {"adapters"},
    "kiota_authentication_azure": {"adapters"},
    "azure": {"adapters"},
    "httpx": {"adapters", "local", "testing"},
    "ray": {"actors", "local", "cli", "testing"},
    "fastapi": {"web"},
    "starlette": {"web"},
    "uvicorn": {"web"},
    "opentelemetry": {"telemetry"},
}


def layer_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "actors":
        return "actors"
    assert parts[0] == "runtime", module
    if len(parts) == 1:
        return "domain"  # runtime/__init__: the version only
    return parts[1]


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted([*ROOT.glob("runtime/**/*.py"), *ROOT.glob("actors/**/*.py")]):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def imports(name: str, path: Path) -> list[tuple[int, str]]:
    """Every module imported by ``path`` (absolute and relative, anywhere in the file)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.append((node.lineno, target))
    return out


MODULES = modules()


def test_every_module_sits_in_a_known_layer():
    unknown = sorted({layer_of(m) for m in MODULES} - set(ALLOWED))
    assert not unknown, f"folders that are not a layer: {unknown}; add them to ALLOWED with their arrows"


def wrong_arrows() -> list[str]:
    wrong = []
    for name, path in MODULES.items():
        mine = layer_of(name)
        allowed = ALLOWED[mine]
        for line, target in imports(name, path):
            top = target.split(".")[0]
            where = f"{path.relative_to(ROOT)}:{line}"
            if top in ("runtime", "actors"):
                theirs = layer_of(target)
                if allowed and theirs not in allowed:
                    wrong.append(f"{where}: {mine} imports {target} ({theirs})")
            elif top in VENDORS and mine != "testing" and mine not in VENDORS[top]:
                wrong.append(f"{where}: {mine} imports {top}")
    return wrong


def test_imports_point_one_way():
    wrong = wrong_arrows()
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def test_the_domain_does_no_io_through_vendors():
    # the strongest promise: the domain and the rendering are pure Python plus pydantic/yaml/jinja2
    for name, path in MODULES.items():
        if layer_of(name) not in ("domain", "emails", "ports"):
            continue
        for line, target in imports(name, path):
            assert target.split(".")[0] not in VENDORS, f"{path.relative_to(ROOT)}:{line} imports {target}"


@pytest.mark.parametrize(
    ("module", "target", "expected"),
    [
        ("runtime.domain.model", "runtime.services.archive", True),
        ("runtime.services.handler", "runtime.adapters.ses", True),
        ("runtime.adapters.ses", "runtime.domain.errors", False),
        ("actors.customer", "runtime.web._app", True),
        ("runtime.cli.main", "actors.supervisor", False),
    ],
)
def test_the_check_itself_sees_a_wrong_arrow(module, target, expected):
    # the rule table must be able to fail: a known wrong arrow is caught, a right one is not
    mine, theirs = layer_of(module), layer_of(target)
    assert (theirs not in ALLOWED[mine]) is expected
