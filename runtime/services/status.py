"""``ttr status``: health, queues, triggers and alerts, in one look (the model and its rendering).

Queues, DLQs, triggers and rejected input are read through the ports (``tenant_statuses``); the
actors' health and counters come from the running cluster (``fill_health``). Both are gathered
by ``actors/observe.py``, for ``ttr status`` and the alert actor. No reachable runtime is itself
a finding: "all processors down".
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from runtime.domain.alerts import AlertConfig, Firing, Observation, evaluate, failure_pct, window_totals
from runtime.domain.config import Config
from runtime.domain.errors import TtrError
from runtime.ports import ObjectStore, Queue
from runtime.services.orphans import DEFAULT_THRESHOLD_S

ORPHAN_AGE_MINUTES = DEFAULT_THRESHOLD_S / 60   # a trigger older than this is reported as an orphan


@dataclass
class TenantStatus:
    code: str
    queue_depth: int | None = None
    in_flight: int | None = None
    dlq_depth: int | None = None
    triggers: int = 0
    oldest_trigger_minutes: float | None = None
    orphans: int = 0
    rejected: int = 0
    stuck: int | None = None   # triggers the orphan reconciler gave up waking (its last pass)
    actor: dict | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return bool(self.actor and self.actor.get("ok") and self.actor.get("running"))


@dataclass
class Status:
    tenants: dict[str, TenantStatus]
    runtime_reachable: bool
    runtime_error: str = ""
    archive: dict | None = None
    meetings: dict | None = None
    alerts: list[Firing] = field(default_factory=list)
    window_minutes: float = 15
    loops: dict = field(default_factory=dict)   # the alert, SES feedback and renderer actors' health

    @property
    def critical(self) -> bool:
        return any(f.rule.severity == "critical" for f in self.alerts)


@dataclass
class ClusterView:
    """What the running cluster said: the actors' health (each tenant's lands on its TenantStatus)."""

    reachable: bool
    error: str = ""
    archive: dict | None = None
    meetings: dict | None = None
    loops: dict = field(default_factory=dict)


def tenant_statuses(cfg: Config, store: ObjectStore, queue: Callable[[str], Queue], now: float) -> dict[str, TenantStatus]:
    """Each tenant's queues, DLQ, triggers and rejected input, read through the ports
    (``queue(name)`` opens one queue); a failing read is the tenant's error, not the command's."""
    out: dict[str, TenantStatus] = {}
    for c in cfg.customers:
        t = TenantStatus(c.code)
        try:
            d = queue(c.queue_name).depth()
            t.queue_depth, t.in_flight = d["visible"], d["in_flight"]
            t.dlq_depth = queue(c.dlq_name).depth()["visible"]
        except TtrError as exc:
            t.errors.append(f"queues: {exc}")
        try:
            ages = [(now - o.last_modified.astimezone(timezone.utc).timestamp()) / 60
                    for o in store.list(f"customers/{c.code}/")]
            t.triggers = len(ages)
            t.oldest_trigger_minutes = max(ages, default=None)
            t.orphans = sum(1 for a in ages if a > ORPHAN_AGE_MINUTES)
            t.rejected = sum(1 for _ in store.list(f"rejected/{c.code}/"))
        except TtrError as exc:
            t.errors.append(f"bucket: {exc}")
        out[c.code] = t
    return out


def fill_health(tenants: dict[str, TenantStatus], customer: Callable[[str], dict | None],
                service: Callable[[str], dict | None], namespace: str) -> ClusterView:
    """The actors' health into the tenants, and what the cluster said besides: ``customer(code)``
    is a tenant's actor's health, ``service(role)`` that of the archive, meetings, alerts, feedback,
    renderer or reconciler actor (None: no such actor)."""
    for code, t in tenants.items():
        t.actor = customer(code)
    archive, meetings = service("archive"), service("meetings")
    loops = {role: service(role) for role in ("alerts", "feedback", "renderer")}
    reconciler = service("reconciler")
    if reconciler and reconciler.get("ok"):
        for t in tenants.values():
            t.stuck = sum(1 for o in reconciler.get("last", []) if o.get("customer") == t.code
                          and o.get("state") == "stuck")
    reachable = any(t.actor is not None for t in tenants.values()) or archive is not None
    err = "" if reachable else f"no ttr actors in Ray namespace {namespace!r}"
    return ClusterView(reachable, err, archive, meetings, loops)


def observations(st: Status) -> list[Observation]:
    obs: list[Observation] = [Observation("healthy_processors",
                                          float(sum(1 for t in st.tenants.values() if t.healthy)))]
    win = st.window_minutes
    for code, t in st.tenants.items():
        lab = {"tenant": code}
        if t.oldest_trigger_minutes is not None:
            obs.append(Observation("oldest_trigger_age_minutes", t.oldest_trigger_minutes, lab))
        if t.queue_depth is not None:
            obs.append(Observation("queue_depth", float(t.queue_depth), lab))
        if t.dlq_depth is not None:
            obs.append(Observation("dlq_depth", float(t.dlq_depth), lab))
        obs.append(Observation("orphaned_triggers", float(t.orphans), lab))
        if t.stuck is not None:
            obs.append(Observation("stuck_triggers", float(t.stuck), lab))
        a = t.actor or {}
        if a.get("ok"):
            pct = failure_pct(window_totals(a.get("deletes"), win))
            if pct is not None:
                obs.append(Observation("trigger_delete_failure_pct", pct, lab))
            cutoff = time.time() - win * 60
            longest = max([a.get("longest_running_s", 0.0)] +
                          [d for at, d in a.get("durations", []) if at >= cutoff])
            obs.append(Observation("processing_max_minutes", longest / 60, lab))
            node = a.get("node") or {}
            if node.get("node_id"):
                nl = {"node": node["node_id"][:12]}
                obs.append(Observation("node_cpu_pct", float(node.get("cpu_pct", 0)), nl))
                obs.append(Observation("node_memory_pct", float(node.get("memory_pct", 0)), nl))
    if st.archive and st.archive.get("ok"):
        pct = failure_pct(window_totals(st.archive.get("window"), win))
        if pct is not None:
            obs.append(Observation("archive_update_failure_pct", pct))
    # one observation per node, not one per tenant on it
    seen, unique = set(), []
    for o in obs:
        key = (o.metric, tuple(sorted(o.labels.items())))
        if o.metric.startswith("node_") and key in seen:
            continue
        seen.add(key)
        unique.append(o)
    return unique


def assemble(tenants: dict[str, TenantStatus], cluster: ClusterView, alerts: AlertConfig) -> Status:
    """The status, with the alerts its observations fire."""
    st = Status(tenants=tenants, runtime_reachable=cluster.reachable, runtime_error=cluster.error,
                archive=cluster.archive, meetings=cluster.meetings, window_minutes=alerts.window_minutes,
                loops=cluster.loops)
    st.alerts = evaluate(alerts, observations(st))
    return st


def nodes(st: Status) -> dict[str, dict]:
    """Each Ray node's CPU and memory as the tenant actors on it observed them (psutil), and
    which tenants run there; a node's figures come from its latest reporting actor."""
    out: dict[str, dict] = {}
    for code, t in st.tenants.items():
        a = t.actor or {}
        node = (a.get("node") or {}) if a.get("ok") else {}
        if not node.get("node_id"):
            continue
        n = out.setdefault(node["node_id"], {"cpu_pct": None, "memory_pct": None, "tenants": []})
        n["cpu_pct"], n["memory_pct"] = float(node.get("cpu_pct", 0)), float(node.get("memory_pct", 0))
        n["tenants"].append(code)
    return out


def to_json(st: Status) -> dict:
    def actor(a):
        if not a:
            return None
        keep = ("ok", "running", "in_flight", "received", "acked", "retried", "rejected", "emails_sent",
                "emails_failed", "last_error", "last_error_at", "restarts", "assume_role_calls", "incarnation",
                "error", "paused_until", "rss")
        return {k: a[k] for k in keep if k in a}

    return {
        "generated_at": datetime.now(timezone.utc).isoformat(),
        "runtime": {"reachable": st.runtime_reachable, "error": st.runtime_error,
                    "archive": actor(st.archive), "meetings": st.meetings and {"ok": st.meetings.get("ok")},
                    "renderer": st.loops.get("renderer")},
        "tenants": {code: {"healthy": t.healthy, "queue_depth": t.queue_depth, "in_flight": t.in_flight,
                           "dlq_depth": t.dlq_depth, "triggers": t.triggers,
                           "oldest_trigger_minutes": t.oldest_trigger_minutes, "orphans": t.orphans,
                           "stuck": t.stuck,
                           "rejected": t.rejected, "actor": actor(t.actor), "errors": t.errors}
                    for code, t in st.tenants.items()},
        "alerts": [{"name": f.rule.name, "severity": f.rule.severity, "metric": f.rule.metric,
                    "value": f.value, "threshold": f.rule.threshold, "op": f.rule.op,
                    "labels": dict(f.labels), "summary": f.rule.summary} for f in st.alerts],
        "nodes": nodes(st),
        # the alert actor (what fires, notices per sink, sinks failing) and the SES feedback actor
        "alerting": st.loops.get("alerts"),
        "feedback": st.loops.get("feedback"),
        "window_minutes": st.window_minutes,
        "healthy": not st.critical,
    }


def render(st: Status) -> str:
    lines = []
    if st.runtime_reachable:
        lines.append("runtime: reachable")
    else:
        lines.append(f"runtime: NOT reachable: {st.runtime_error}")
    head = (f"{'TENANT':<14} {'ACTOR':<9} {'QUEUE':>5} {'INFLT':>5} {'DLQ':>4} {'TRIG':>4} "
            f"{'OLDEST':>8} {'ORPH':>4} {'REJ':>4}  LAST ERROR")
    lines += ["", head]
    for code, t in st.tenants.items():
        state = "healthy" if t.healthy else ("down" if not t.actor else
                                             ("stopped" if t.actor.get("ok") else "failing"))
        oldest = f"{t.oldest_trigger_minutes:.1f}m" if t.oldest_trigger_minutes is not None else "-"
        inflight = (t.actor or {}).get("in_flight", t.in_flight)
        err = ((t.actor or {}).get("last_error") or "; ".join(t.errors) or "")[:60]

        def n(v):
            return "?" if v is None else str(v)

        lines.append(f"{code:<14} {state:<9} {n(t.queue_depth):>5} {n(inflight):>5} {n(t.dlq_depth):>4} "
                     f"{t.triggers:>4} {oldest:>8} {t.orphans:>4} {t.rejected:>4}  {err}")
    lines.append("")
    if st.alerts:
        lines.append(f"alerts (window {st.window_minutes:g} min):")
        lines += [f"  {f.describe()}" for f in st.alerts]
    else:
        lines.append("alerts: none firing")
    renderer = st.loops.get("renderer") or {}
    if st.runtime_reachable and not renderer.get("ok"):
        lines.append("renderer: down (the tenants' emails wait for it: their messages are retried)")
    alerting = st.loops.get("alerts") or {}
    if alerting.get("ok") and alerting.get("last_error"):
        lines.append(f"alert delivery failing: {alerting['last_error']}")
    feedback = st.loops.get("feedback") or {}
    if feedback.get("ok"):
        totals: dict[str, int] = {}
        for counts in (feedback.get("tenants") or {}).values():
            for k, v in counts.items():
                totals[k] = totals.get(k, 0) + v
        if totals:
            lines.append("ses feedback: " + ", ".join(f"{v} {k}" for k, v in sorted(totals.items())))
        for code, why in (feedback.get("errors") or {}).items():
            lines.append(f"ses feedback of {code} not read: {why[:120]}")
    return "\n".join(lines)
