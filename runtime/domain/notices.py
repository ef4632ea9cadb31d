"""Alerts that reach people: which notices a pass produces, and what they say. Pure, no I/O.

The ``AlertActor`` (``actors/alerter.py``) asks ``actors.observe`` for the same observations and
firings ``ttr status`` shows, every ``alerting.interval_seconds``, and hands each pass's firings
to an ``AlertTracker``. The tracker remembers what fires, so an alert is announced once when it
starts firing (again if its severity changes) and once when it stops: a pass that finds the
same firings as the last one produces no notice at all. The sinks (``runtime/adapters/
alert_sinks.py``) deliver the notices: an SNS topic, a Teams or Slack incoming webhook, email
through the management account's SES.
"""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Annotated, Iterable, Literal, Mapping, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from runtime.domain.alerts import SEVERITIES, Firing

Severity = Literal["critical", "warning", "info"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Sink(_Strict):
    # The least severe alert this sink hears about (info hears everything).
    min_severity: Severity = "warning"

    def wants(self, severity: str) -> bool:
        return SEVERITIES.index(severity) <= SEVERITIES.index(self.min_severity)


class SnsSink(_Sink):
    type: Literal["sns"]
    topic_arn: str

    @field_validator("topic_arn")
    @classmethod
    def _arn(cls, v: str) -> str:
        if not v.startswith("arn:aws") or v.count(":") != 5 or ":sns:" not in v:
            raise ValueError(f"{v!r} is not an SNS topic ARN (arn:aws:sns:<region>:<account>:<name>)")
        return v


class WebhookSink(_Sink):
    type: Literal["webhook"]
    format: Literal["slack", "teams"] = "slack"
    # An incoming-webhook URL is a credential: name the variable that holds it (url_env), or
    # give the URL itself only where it is not secret (a local receiver).
    url: str | None = None
    url_env: str | None = None

    @model_validator(mode="after")
    def _one_url(self) -> "WebhookSink":
        if bool(self.url) == bool(self.url_env):
            raise ValueError("give exactly one of url or url_env")
        if self.url and not self.url.startswith(("https://", "http://")):
            raise ValueError(f"url: {self.url!r} is not an http(s) URL")
        return self

    def resolved_url(self) -> str:
        from runtime.domain.errors import ConfigError

        if self.url:
            return self.url
        value = os.environ.get(self.url_env or "", "")
        if not value.startswith(("https://", "http://")):
            raise ConfigError(f"alerting.sinks: ${self.url_env} does not hold an http(s) webhook URL")
        return value


class EmailSink(_Sink):
    type: Literal["email"]
    to: tuple[str, ...] = Field(min_length=1)
    sender: str | None = None   # default: email.sender (verified in the management account's SES)

    @field_validator("to")
    @classmethod
    def _to(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from runtime.domain.recipients import valid_address

        bad = [a for a in v if not valid_address(a)]
        if bad:
            raise ValueError(f"not an email address: {bad[0]!r}")
        return v


Sink = Annotated[Union[SnsSink, WebhookSink, EmailSink], Field(discriminator="type")]


class AlertingConfig(_Strict):
    """``alerting:`` in the configuration: how often the runtime evaluates the rules, and where
    firing and resolved alerts go. Without sinks the runtime still evaluates and logs them."""

    interval_seconds: float = Field(default=60, ge=0.5, le=3600)
    rules: str | None = None   # the alert rules file; default configs/alerts.yaml
    sinks: tuple[Sink, ...] = ()


# ---------------------------------------------------------------------------------------------
# What fires, what changed


@dataclass(frozen=True)
class Notice:
    """One announcement: ``state`` is ``firing`` (new, or its severity changed) or ``resolved``."""

    state: Literal["firing", "resolved"]
    name: str
    severity: str
    metric: str
    op: str
    threshold: float
    value: float | None
    labels: Mapping[str, str]
    summary: str
    at: str
    previous_severity: str | None = None

    @property
    def where(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in sorted(self.labels.items()))

    @property
    def title(self) -> str:
        head = "RESOLVED" if self.state == "resolved" else self.severity.upper()
        return f"[ttr {head}] {self.name}" + (f" ({self.where})" if self.where else "")

    def detail(self) -> str:
        if self.state == "resolved":
            line = f"{self.metric} no longer {self.op} {self.threshold:g}"
        else:
            line = f"{self.metric} = {self.value:g} {self.op} {self.threshold:g}"
            if self.previous_severity:
                line += f" (was {self.previous_severity})"
        return line + (f" — {self.summary}" if self.summary else "") + f" at {self.at}"

    def text(self) -> str:
        return f"{self.title}: {self.detail()}"

    def to_json(self) -> dict:
        return {"state": self.state, "alert": self.name, "severity": self.severity, "metric": self.metric,
                "op": self.op, "threshold": self.threshold, "value": self.value, "labels": dict(self.labels),
                "summary": self.summary, "at": self.at, "previousSeverity": self.previous_severity,
                "text": self.text()}


def _key(f: Firing) -> tuple:
    return (f.rule.name, tuple(sorted(f.labels.items())))


@dataclass
class AlertTracker:
    """What fires now; ``step`` turns one pass's firings into the notices that pass owes."""

    active: dict[tuple, Firing] = field(default_factory=dict)

    def step(self, firings: Iterable[Firing], now: datetime | None = None) -> list[Notice]:
        at = (now or datetime.now(timezone.utc)).isoformat(timespec="seconds")
        current = {_key(f): f for f in firings}
        out: list[Notice] = []
        for key, f in current.items():
            before = self.active.get(key)
            if before is None or before.rule.severity != f.rule.severity:
                out.append(_notice("firing", f, at, before.rule.severity if before else None))
        for key, f in self.active.items():
            if key not in current:
                out.append(_notice("resolved", f, at))
        self.active = current
        return out

    def firing(self) -> list[dict]:
        return [{"alert": f.rule.name, "severity": f.rule.severity, "labels": dict(f.labels), "value": f.value}
                for f in self.active.values()]


def _notice(state: str, f: Firing, at: str, previous: str | None = None) -> Notice:
    r = f.rule
    return Notice(state=state, name=r.name, severity=r.severity, metric=r.metric, op=r.op,  # type: ignore[arg-type]
                  threshold=r.threshold, value=f.value if state == "firing" else None,
                  labels=dict(f.labels), summary=r.summary, at=at, previous_severity=previous)


# ---------------------------------------------------------------------------------------------
# What the sinks carry

_SLACK_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_COLOURS = {"critical": "Attention", "warning": "Warning", "info": "Accent", "resolved": "Good"}


def slack_payload(notice: Notice) -> dict:
    """A Slack incoming-webhook message (``text`` is mrkdwn: &, < and > must be escaped)."""
    return {"text": notice.text().translate(_SLACK_ESCAPES)}


def teams_payload(notice: Notice) -> dict:
    """A Teams incoming webhook (Workflows) message: one Adaptive Card. Its TextBlocks render a
    Markdown subset, so the text goes in as plain facts, never as markup we built from input."""
    facts = [{"title": "State", "value": notice.state}, {"title": "Severity", "value": notice.severity},
             {"title": "Metric", "value": notice.metric},
             {"title": "Condition", "value": f"{notice.op} {notice.threshold:g}"}]
    if notice.value is not None:
        facts.append({"title": "Value", "value": f"{notice.value:g}"})
    if notice.where:
        facts.append({"title": "Where", "value": notice.where})
    facts.append({"title": "At", "value": notice.at})
    body = [{"type": "TextBlock", "text": notice.title, "weight": "Bolder", "size": "Medium", "wrap": True,
             "color": _COLOURS["resolved" if notice.state == "resolved" else notice.severity]}]
    if notice.summary:
        body.append({"type": "TextBlock", "text": notice.summary, "wrap": True})
    body.append({"type": "FactSet", "facts": facts})
    card = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard",
            "version": "1.4", "body": body}
    return {"type": "message", "summary": notice.title,
            "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None,
                             "content": card}]}


def sns_message(notice: Notice) -> tuple[str, str]:
    """(Subject, Message) for SNS: a subject of at most 100 printable characters, JSON body."""
    subject = "".join(c if 32 <= ord(c) < 127 else "?" for c in notice.title)[:100]
    return subject, json.dumps(notice.to_json(), ensure_ascii=False)


def email_message(notices: list[Notice]) -> tuple[str, str, str]:
    """(subject, text, html) of one email for a pass's notices; everything escaped in the HTML."""
    firing = sum(1 for n in notices if n.state == "firing")
    resolved = len(notices) - firing
    if len(notices) == 1:
        subject = notices[0].title
    else:
        parts = [f"{firing} firing" if firing else "", f"{resolved} resolved" if resolved else ""]
        subject = "[ttr] alerts: " + ", ".join(p for p in parts if p)
    text = "\n".join(n.text() for n in notices) + "\n"
    rows = "".join(
        f"<li><strong>{html.escape(n.title)}</strong><br>{html.escape(n.detail())}</li>"
        for n in notices)
    body = (f"<!doctype html><html><body style=\"font-family:sans-serif\"><h2>{html.escape(subject)}</h2>"
            f"<ul>{rows}</ul></body></html>")
    return subject, text, body


# ---------------------------------------------------------------------------------------------
# Delivery: every sink gets what it wants; what failed is tried again on the next pass


class Dispatcher:
    """Hands notices to the sinks (``runtime.adapters.alert_sinks``). A notice a sink could not
    take, for a reason worth retrying, waits for the next pass (at most ``max_pending`` per
    sink, the oldest dropped first); a sink that says no for good drops it, loudly."""

    def __init__(self, sinks: list, *, max_pending: int = 200):
        self.sinks = list(sinks)
        self.max_pending = max_pending
        self.pending: dict[int, list[Notice]] = {i: [] for i in range(len(self.sinks))}
        self.sent: dict[str, int] = {}
        self.errors: dict[str, str] = {}

    def deliver(self, notices: list[Notice]) -> dict[str, str]:
        """Send; returns the sinks that failed this pass and why."""
        from runtime.domain.errors import TtrError

        failed: dict[str, str] = {}
        for i, sink in enumerate(self.sinks):
            queue = self.pending[i] + [n for n in notices if sink.wants(n.severity)]
            batches = [queue] if getattr(sink, "batches", False) else [[n] for n in queue]
            left: list[Notice] = []
            for b, batch in enumerate(batches):
                if not batch:
                    continue
                try:
                    sink.send(batch)
                except TtrError as exc:
                    failed[sink.name] = str(exc)
                    if exc.retryable:
                        left = [n for rest in batches[b:] for n in rest]
                    break
                self.sent[sink.name] = self.sent.get(sink.name, 0) + len(batch)
            self.pending[i] = left[-self.max_pending:]
        self.errors = failed
        return failed
