"""Alert rules (``configs/alerts.yaml``) and their evaluation: pure, no I/O.

``ttr status`` gathers observations (from AWS and from the actors' counters) and asks which
rules fire. Rates come from ``WindowCounter``s kept by the actors: per-minute buckets, so a
rate is over the configured window, not since the process started.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Literal, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from runtime.domain.errors import ConfigError

# the windowed counters moved to a module without pydantic (a tenant imports them); their old home
from runtime.domain.windows import WindowCounter, failure_pct, window_totals  # noqa: F401

DEFAULT_ALERTS_PATH = Path(__file__).resolve().parents[2] / "configs" / "alerts.yaml"
METRICS = ("oldest_trigger_age_minutes", "archive_update_failure_pct", "queue_depth", "healthy_processors",
           "node_cpu_pct", "node_memory_pct", "trigger_delete_failure_pct", "processing_max_minutes",
           "dlq_depth", "orphaned_triggers", "stuck_triggers")
SEVERITIES = ("critical", "warning", "info")
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq}


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1)
    severity: Literal["critical", "warning", "info"]
    metric: Literal[METRICS]  # type: ignore[valid-type]
    op: Literal[">", ">=", "<", "<=", "=="]
    threshold: float
    summary: str = ""


class AlertConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    window_minutes: float = Field(default=15, gt=0, le=24 * 60)
    rules: tuple[Rule, ...] = Field(min_length=1)


def parse_alerts(data: object, source: str = "<alerts>") -> AlertConfig:
    from runtime.domain.config import _field_path

    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the alert configuration must be a YAML mapping")
    try:
        return AlertConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(f"{source}: {_field_path(tuple(err.get('loc', ())))}: "
                          f"{err.get('msg', 'invalid').removeprefix('Value error, ')}") from None


def load_alerts(path: str | Path | None = None) -> AlertConfig:
    p = Path(path) if path else DEFAULT_ALERTS_PATH
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{p}: alert configuration not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: malformed YAML: {exc}") from None
    return parse_alerts(data, str(p))


@dataclass(frozen=True)
class Observation:
    metric: str
    value: float
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Firing:
    rule: Rule
    value: float
    labels: Mapping[str, str]

    def describe(self) -> str:
        where = ", ".join(f"{k}={v}" for k, v in sorted(self.labels.items()))
        return (f"{self.rule.severity.upper():<8} {self.rule.name}: {self.rule.metric} = {self.value:g} "
                f"{self.rule.op} {self.rule.threshold:g}" + (f" ({where})" if where else "")
                + (f" — {self.rule.summary}" if self.rule.summary else ""))


def evaluate(cfg: AlertConfig, observations: Iterable[Observation]) -> list[Firing]:
    """Every (rule, observation) pair that holds; only the most severe firing per (name, labels)."""
    obs = list(observations)
    firing: list[Firing] = []
    for rule in cfg.rules:
        for o in obs:
            if o.metric == rule.metric and _OPS[rule.op](o.value, rule.threshold):
                firing.append(Firing(rule, o.value, dict(o.labels)))
    best: dict[tuple, Firing] = {}
    for f in firing:
        key = (f.rule.name, tuple(sorted(f.labels.items())))
        if key not in best or SEVERITIES.index(f.rule.severity) < SEVERITIES.index(best[key].rule.severity):
            best[key] = f
    return sorted(best.values(), key=lambda f: (SEVERITIES.index(f.rule.severity), f.rule.name))
