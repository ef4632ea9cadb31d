"""deploy/cloudwatch/dashboard.json and deploy/otel/collector.yaml against what the runtime emits:
every metric the dashboard reads is an instrument the code creates, exported by the collector
with exactly the dimensions the dashboard searches for."""

from __future__ import annotations

import ast
import json
import re

import yaml

from tests.conftest import ROOT

DASHBOARD = ROOT / "deploy" / "cloudwatch" / "dashboard.json"
COLLECTOR = ROOT / "deploy" / "otel" / "collector.yaml"
CREATORS = {"create_counter", "create_histogram", "create_observable_gauge", "create_up_down_counter", "observe"}
SEARCH = re.compile(r"SEARCH\('\{([^}]*)\}\s+MetricName=\"([^\"]+)\"")


def instruments() -> set[str]:
    """Every metric name the runtime's code creates (the first argument of a meter call)."""
    names = set()
    for path in [*(ROOT / "runtime").rglob("*.py"), *(ROOT / "actors").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
                fn = node.func
                name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
                if name in CREATORS and isinstance(node.args[0].value, str) and node.args[0].value.startswith("ttr."):
                    names.add(node.args[0].value)
    return names


def dashboard_metrics() -> list[tuple[str, str, frozenset[str]]]:
    """(namespace, metric name, dimension set) of every series the dashboard reads."""
    out = []
    for w in json.loads(DASHBOARD.read_text())["widgets"]:
        if w["type"] != "metric":
            continue
        for row in w["properties"]["metrics"]:
            for item in row:
                if isinstance(item, dict) and "expression" in item:
                    for schema, name in SEARCH.findall(item["expression"]):
                        ns, *dims = [s.strip() for s in schema.split(",")]
                        out.append((ns, name, frozenset(dims)))
            if row and isinstance(row[0], str):   # ["Namespace", "MetricName", dim, value, ...]
                out.append((row[0], row[1], frozenset(row[2:-1:2])))
    return out


def test_the_runtime_has_the_seed_instruments():
    have = instruments()
    assert {"ttr.triggers.created", "ttr.emails.feedback", "ttr.node.cpu", "ttr.node.memory", "ttr.dlq.depth"} <= have


def test_every_dashboard_metric_is_a_runtime_instrument():
    used = dashboard_metrics()
    assert len({n for _, n, _ in used}) >= 16       # the seed's dashboard: 16 panels' worth
    missing = sorted({n for _, n, _ in used} - instruments())
    assert not missing, f"the dashboard reads metrics the runtime does not emit: {missing}"


def test_the_collector_exports_every_dashboard_series_with_its_dimensions():
    cfg = yaml.safe_load(COLLECTOR.read_text())
    emf = cfg["exporters"]["awsemf"]
    pipeline = cfg["service"]["pipelines"]["metrics"]
    assert pipeline["receivers"] == ["otlp"] and pipeline["exporters"] == ["awsemf"]
    assert cfg["receivers"]["otlp"]["protocols"]["http"]["endpoint"].startswith("127.0.0.1:")
    declared: dict[str, set[frozenset[str]]] = {}
    for decl in emf["metric_declarations"]:
        for sel in decl["metric_name_selectors"]:
            for name in instruments():
                if re.search(sel, name):
                    declared.setdefault(name, set()).update(frozenset(d) for d in decl["dimensions"])
    for ns, name, dims in dashboard_metrics():
        assert ns == emf["namespace"], f"{name}: namespace {ns}, the collector writes {emf['namespace']}"
        assert dims in declared.get(name, set()), f"{name}{sorted(dims)} is not exported by the collector"
    include = cfg["processors"]["filter/ttr"]["metrics"]["include"]["metric_names"]
    assert all(any(re.search(p, n) for p in include) for n in instruments())


def test_the_node_environment_points_the_runtime_at_the_collector():
    env = (ROOT / "deploy" / "ray" / "ttr.env.example").read_text()
    assert "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318" in env
