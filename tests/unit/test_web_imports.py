"""The portal's modules import each other one way: no cycle, composition on top, leaves below.

    _app (composition: the app, its routers, middleware)
      -> routers: _api, _pages, _announce, _audience (never _app, never each other)
        -> leaves: _http (imports no web module but _auth), _page, _schemas, _portal, ...

Read from the source with ``ast`` (every import, also those inside functions), like
tests/unit/test_layers.py.
"""

from __future__ import annotations

import ast

from tests.unit.test_layers import MODULES, imports

WEB = "runtime.web"
ROUTERS = {f"{WEB}._api", f"{WEB}._pages", f"{WEB}._announce", f"{WEB}._audience"}
APP = f"{WEB}._app"


def web_graph() -> dict[str, set[str]]:
    """runtime.web module -> the runtime.web modules it imports (``from runtime.web import _x`` too)."""
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        if not name.startswith(WEB + ".") and name != WEB:
            continue
        targets = set()
        for _, target in imports(name, path):
            if target == WEB:
                # ``from runtime.web import _views``: the names imported are the modules
                for node in ast.walk(ast.parse(path.read_text())):
                    if isinstance(node, ast.ImportFrom) and node.module == WEB and not node.level:
                        targets |= {f"{WEB}.{a.name}" for a in node.names if f"{WEB}.{a.name}" in MODULES}
            elif target.startswith(WEB + "."):
                targets.add(".".join(target.split(".")[:3]))
        graph[name] = targets - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_the_web_package_has_no_import_cycle():
    found = cycles(web_graph())
    assert not found, "import cycles among runtime.web modules: " + "; ".join(" <-> ".join(c) for c in found)


def test_routers_import_only_leaves():
    graph = web_graph()
    wrong = sorted(f"{r} imports {t}" for r in ROUTERS for t in graph[r] if t in ROUTERS or t == APP)
    assert not wrong, "a router imports the app or another router:\n" + "\n".join(wrong)


def test_http_helpers_are_a_leaf():
    assert web_graph()[f"{WEB}._http"] <= {f"{WEB}._auth"}


def test_nothing_below_the_app_imports_it():
    importers = sorted(m for m, targets in web_graph().items() if APP in targets)
    # the package's lazy export and the server that starts it are above the app, not below
    assert set(importers) <= {WEB, f"{WEB}._server"}, importers


def test_the_check_itself_finds_a_cycle():
    # the graph of the web package before it was split: _api <-> _app <-> _pages, and _announce
    before = {"_app": {"_api", "_pages", "_announce", "_audience", "_views"}, "_api": {"_app", "_views"},
              "_pages": {"_app", "_announce", "_audience"}, "_announce": {"_api", "_app", "_pages", "_audience"},
              "_audience": {"_pages"}, "_views": set()}
    assert cycles(before) == [["_announce", "_api", "_app", "_audience", "_pages"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    # and the graph it reads sees the imports that matter (a cut edge would hide a cycle)
    graph = web_graph()
    assert {f"{WEB}._api", f"{WEB}._pages"} <= graph[APP]
    assert f"{WEB}._http" in graph[f"{WEB}._pages"]
