"""``ttr status``'s model (pure): the actors' health as the cluster reports it, folded into the status."""

from __future__ import annotations

from runtime.domain.alerts import load_alerts
from runtime.services.status import TenantStatus, assemble, fill_health, render, to_json

HEALTHY = {"ok": True, "running": True}


def tenants():
    return {"hts": TenantStatus("hts"), "acme": TenantStatus("acme")}


def test_fill_health_puts_each_tenants_actor_on_it_and_counts_its_stuck_triggers():
    asked = []
    services = {"archive": {"ok": True}, "meetings": {"ok": True}, "alerts": {"ok": True, "passes": 3},
                "feedback": None,
                "reconciler": {"ok": True, "last": [{"customer": "hts", "state": "stuck"},
                                                    {"customer": "hts", "state": "woken"},
                                                    {"customer": "acme", "state": "stuck"},
                                                    {"customer": "hts", "state": "stuck"}]}}
    ts = tenants()
    view = fill_health(ts, lambda code: asked.append(code) or (HEALTHY if code == "hts" else None),
                       services.get, "ttr")
    assert sorted(asked) == ["acme", "hts"]
    assert ts["hts"].healthy and ts["acme"].actor is None and not ts["acme"].healthy
    assert (ts["hts"].stuck, ts["acme"].stuck) == (2, 1)
    assert view.reachable and view.error == ""
    assert view.archive == {"ok": True}
    assert view.loops == {"alerts": {"ok": True, "passes": 3}, "feedback": None, "renderer": None}


def test_no_actor_in_the_namespace_is_an_unreachable_runtime_and_fires_all_processors_down():
    ts = tenants()
    view = fill_health(ts, lambda code: None, lambda role: None, "ttr-elsewhere")
    assert not view.reachable and view.error == "no ttr actors in Ray namespace 'ttr-elsewhere'"
    assert all(t.stuck is None for t in ts.values())          # no reconciler: nothing known, not zero
    st = assemble(ts, view, load_alerts())
    assert not st.runtime_reachable and st.critical
    assert "all-processors-down" in {f.rule.name for f in st.alerts}


def test_a_reachable_cluster_with_healthy_tenants_fires_nothing_critical():
    ts = tenants()
    view = fill_health(ts, lambda code: dict(HEALTHY), lambda role: {"ok": True}, "ttr")
    st = assemble(ts, view, load_alerts())
    assert st.runtime_reachable and not st.critical


def test_a_renderer_that_is_down_is_said_and_one_that_runs_is_in_the_json():
    ts = tenants()
    up = {"ok": True, "calls": 7, "errors": 0, "pid": 1}
    st = assemble(ts, fill_health(ts, lambda code: dict(HEALTHY), lambda role: up if role == "renderer" else {"ok": True},
                                  "ttr"), load_alerts())
    assert "renderer: down" not in render(st) and to_json(st)["runtime"]["renderer"] == up
    st = assemble(ts, fill_health(ts, lambda code: dict(HEALTHY), lambda role: None if role == "renderer" else {"ok": True},
                                  "ttr"), load_alerts())
    assert "renderer: down (the tenants' emails wait for it" in render(st)
    assert to_json(st)["runtime"]["renderer"] is None
