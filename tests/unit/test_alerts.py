"""Alert rules: the shipped thresholds, validation, windows (pure)."""

import pytest

from runtime.domain.alerts import (
    Observation,
    WindowCounter,
    evaluate,
    failure_pct,
    load_alerts,
    parse_alerts,
    window_totals,
)
from runtime.domain.errors import ConfigError

CFG = load_alerts()

# (metric, threshold, severity) of every shipped rule, from the seed
SEED = [
    ("oldest_trigger_age_minutes", 15, "critical"), ("archive_update_failure_pct", 5, "critical"),
    ("queue_depth", 50, "critical"), ("oldest_trigger_age_minutes", 10, "warning"),
    ("archive_update_failure_pct", 2, "warning"), ("queue_depth", 20, "warning"), ("node_cpu_pct", 80, "warning"),
    ("trigger_delete_failure_pct", 10, "info"), ("processing_max_minutes", 5, "info"), ("queue_depth", 10, "info"),
    ("node_memory_pct", 70, "info"),
]


def test_the_seed_thresholds_are_shipped():
    shipped = {(r.metric, r.threshold, r.severity) for r in CFG.rules}
    assert set(SEED) <= shipped
    assert ("healthy_processors", 0, "critical") in shipped
    assert CFG.window_minutes == 15


@pytest.mark.parametrize("metric, threshold, severity", SEED)
def test_each_rule_fires_above_its_threshold_and_not_at_or_below(metric, threshold, severity):
    def fired(value):
        return {f.rule.severity for f in evaluate(CFG, [Observation(metric, value, {"tenant": "a"})])
                if f.rule.metric == metric}

    # the most severe rule that holds is the one reported for a (name, labels) pair
    above = fired(threshold + 0.01)
    assert severity in above or any(s in above for s in ("critical", "warning")[: ("critical", "warning",
                                                                                    "info").index(severity)])
    at = fired(threshold)
    below = fired(threshold - 0.01)
    assert severity not in at and severity not in below


def test_all_processors_down_fires_only_at_zero():
    assert [f.rule.name for f in evaluate(CFG, [Observation("healthy_processors", 0)])] == ["all-processors-down"]
    assert evaluate(CFG, [Observation("healthy_processors", 1)]) == []


def test_only_the_most_severe_firing_per_rule_and_labels():
    firing = evaluate(CFG, [Observation("queue_depth", 51, {"tenant": "a"}), Observation("queue_depth", 21,
                                                                                        {"tenant": "b"})])
    assert [(f.rule.severity, dict(f.labels)) for f in firing] == [("critical", {"tenant": "a"}),
                                                                   ("warning", {"tenant": "b"})]


@pytest.mark.parametrize("data, fragment", [
    ({"rules": []}, "rules"),
    ({"rules": [{"name": "x", "severity": "loud", "metric": "queue_depth", "op": ">", "threshold": 1}]},
     "rules[0].severity"),
    ({"rules": [{"name": "x", "severity": "info", "metric": "bogus", "op": ">", "threshold": 1}]}, "rules[0].metric"),
    ({"rules": [{"name": "x", "severity": "info", "metric": "queue_depth", "op": "~", "threshold": 1}]},
     "rules[0].op"),
    ({"window_minutes": 0, "rules": [{"name": "x", "severity": "info", "metric": "queue_depth", "op": ">",
                                      "threshold": 1}]}, "window_minutes"),
    ([1, 2], "mapping"),
])
def test_bad_alert_config_names_the_field(data, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        parse_alerts(data, "alerts.yaml")


def test_window_counter_rates_cover_only_the_window():
    now = [1_000_000.0]
    w = WindowCounter(clock=lambda: now[0])
    w.add("failure", 1)
    now[0] += 20 * 60          # 20 minutes later
    w.add("success", 9)
    w.add("failure", 1)
    snap = w.snapshot()
    assert window_totals(snap, 15, now=now[0]) == {"success": 9, "failure": 1}
    assert window_totals(snap, 30, now=now[0]) == {"success": 9, "failure": 2}
    assert failure_pct(window_totals(snap, 15, now=now[0])) == pytest.approx(10.0)
    assert failure_pct({}) is None
