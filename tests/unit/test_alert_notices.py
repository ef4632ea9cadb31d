"""Alert notices (pure): fire once, resolve once, what each sink carries, the sink configuration."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from runtime.domain.alerts import Observation, evaluate, load_alerts
from runtime.domain.config import parse_config
from runtime.domain.errors import ConfigError, PermanentError, RetryableError
from runtime.domain.notices import (
    AlertTracker,
    Dispatcher,
    Notice,
    email_message,
    slack_payload,
    sns_message,
    teams_payload,
)
from runtime.services.status import Status, TenantStatus, observations
from tests.conftest import BASE_CONFIG

CFG = load_alerts()
T0 = datetime(2026, 11, 30, 5, 0, tzinfo=timezone.utc)


def fire(**obs):
    return evaluate(CFG, [Observation(m, v, {"tenant": "hts"}) for m, v in obs.items()])


def test_an_alert_is_announced_once_while_it_fires_and_once_when_it_stops():
    tr = AlertTracker()
    first = tr.step(fire(dlq_depth=2), T0)
    assert [(n.state, n.name, n.severity) for n in first] == [("firing", "dlq-messages", "warning")]
    assert first[0].value == 2 and first[0].labels == {"tenant": "hts"}
    assert tr.step(fire(dlq_depth=3), T0) == []           # still firing: nothing new to say
    assert tr.step(fire(dlq_depth=1), T0) == []
    resolved = tr.step(fire(dlq_depth=0), T0)
    assert [(n.state, n.name) for n in resolved] == [("resolved", "dlq-messages")]
    assert resolved[0].value is None
    assert tr.step(fire(dlq_depth=0), T0) == []           # resolved once


def test_a_severity_change_is_announced_and_names_the_previous_one():
    tr = AlertTracker()
    tr.step(fire(queue_depth=25), T0)                      # warning
    up = tr.step(fire(queue_depth=60), T0)                 # critical now
    assert [(n.state, n.severity, n.previous_severity) for n in up] == [("firing", "critical", "warning")]
    assert "(was warning)" in up[0].text()


def test_alerts_of_different_tenants_are_separate():
    tr = AlertTracker()
    both = [*evaluate(CFG, [Observation("dlq_depth", 1, {"tenant": "a"}), Observation("dlq_depth", 1, {"tenant": "b"})])]
    assert len(tr.step(both, T0)) == 2
    only_b = evaluate(CFG, [Observation("dlq_depth", 0, {"tenant": "a"}), Observation("dlq_depth", 1, {"tenant": "b"})])
    out = tr.step(only_b, T0)
    assert [(n.state, dict(n.labels)) for n in out] == [("resolved", {"tenant": "a"})]


def test_the_shipped_rules_cover_the_dlq_and_stuck_orphans_from_status():
    st = Status(tenants={"hts": TenantStatus("hts", dlq_depth=1, stuck=2), "b": TenantStatus("b", dlq_depth=0, stuck=0)},
                runtime_reachable=True)
    names = {(f.rule.name, f.labels.get("tenant")) for f in evaluate(CFG, observations(st))}
    assert ("dlq-messages", "hts") in names and ("stuck-triggers", "hts") in names
    assert ("dlq-messages", "b") not in names and ("stuck-triggers", "b") not in names


def _notice(state="firing", **kw):
    base = dict(state=state, name="dlq-messages", severity="warning", metric="dlq_depth", op=">", threshold=0,
                value=1 if state == "firing" else None, labels={"tenant": "<hts&co>"},
                summary="messages in <b>the</b> DLQ", at="2026-11-30T05:00:00+00:00")
    return Notice(**{**base, **kw})


def test_the_webhook_payloads_are_what_slack_and_teams_accept_and_escape_the_text():
    s = slack_payload(_notice())
    assert set(s) == {"text"} and "&lt;hts&amp;co&gt;" in s["text"] and "<b>" not in s["text"]
    t = teams_payload(_notice("resolved"))
    att = t["attachments"][0]
    assert att["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = att["content"]
    assert card["type"] == "AdaptiveCard" and card["body"][0]["text"].startswith("[ttr RESOLVED] dlq-messages")
    facts = {f["title"]: f["value"] for f in card["body"][-1]["facts"]}
    assert facts["State"] == "resolved" and "Value" not in facts


def test_sns_subject_is_short_and_printable_and_the_message_is_json():
    subject, message = sns_message(_notice(name="x" * 200, labels={"tenant": "é"}))
    assert len(subject) <= 100 and all(32 <= ord(c) < 127 for c in subject)
    assert json.loads(message)["state"] == "firing"


def test_the_alert_email_escapes_everything():
    subject, text, body = email_message([_notice(), _notice("resolved", name="stuck-triggers")])
    assert subject == "[ttr] alerts: 1 firing, 1 resolved"
    assert "<hts&co>" in text and "<b>the</b>" not in body and "&lt;b&gt;the&lt;/b&gt;" in body


class _Sink:
    def __init__(self, name, fail=None, min_severity="warning", batches=False):
        self.name, self.fail, self.batches, self.got = name, fail, batches, []
        self.min = min_severity

    def wants(self, severity):
        order = ("critical", "warning", "info")
        return order.index(severity) <= order.index(self.min)

    def send(self, notices):
        if self.fail:
            raise self.fail
        self.got.append([n.name for n in notices])


def test_a_sink_that_failed_for_now_gets_the_notice_on_the_next_pass_and_one_that_refused_does_not():
    flaky = _Sink("flaky", RetryableError("down"))
    refusing = _Sink("refusing", PermanentError("HTTP 403"))
    ok = _Sink("ok", batches=True)
    quiet = _Sink("quiet", min_severity="critical")
    d = Dispatcher([flaky, refusing, ok, quiet])
    failed = d.deliver([_notice(), _notice(name="other")])
    assert set(failed) == {"flaky", "refusing"}
    assert ok.got == [["dlq-messages", "other"]] and quiet.got == []
    assert len(d.pending[0]) == 2 and d.pending[1] == []
    flaky.fail = None
    assert d.deliver([]) == {}
    assert flaky.got == [["dlq-messages"], ["other"]] and d.pending[0] == []
    assert d.sent == {"ok": 2, "flaky": 2}


def _cfg(alerting):
    data = json.loads(json.dumps(BASE_CONFIG))
    data["alerting"] = alerting
    return parse_config(data, "test.yaml")


def test_alerting_defaults_and_every_sink_kind_parse():
    cfg = _cfg({"interval_seconds": 30, "sinks": [
        {"type": "sns", "topic_arn": "arn:aws:sns:us-east-1:123456789012:ttr-alerts"},
        {"type": "webhook", "format": "teams", "url_env": "TTR_TEAMS_WEBHOOK", "min_severity": "critical"},
        {"type": "email", "to": ["oncall@example.com"]}]})
    assert [s.type for s in cfg.alerting.sinks] == ["sns", "webhook", "email"]
    assert parse_config(json.loads(json.dumps(BASE_CONFIG)), "x").alerting.interval_seconds == 60


@pytest.mark.parametrize("alerting, field", [
    ({"sinks": [{"type": "pager"}]}, "alerting.sinks[0]"),
    ({"sinks": [{"type": "sns", "topic_arn": "ttr-alerts"}]}, "alerting.sinks[0].sns.topic_arn"),
    ({"sinks": [{"type": "webhook"}]}, "alerting.sinks[0].webhook"),
    ({"sinks": [{"type": "webhook", "url": "http://x", "url_env": "X"}]}, "alerting.sinks[0].webhook"),
    ({"sinks": [{"type": "webhook", "url": "ftp://x"}]}, "alerting.sinks[0].webhook"),
    ({"sinks": [{"type": "email", "to": []}]}, "alerting.sinks[0].email.to"),
    ({"sinks": [{"type": "email", "to": ["not an address"]}]}, "alerting.sinks[0].email.to"),
    ({"interval_seconds": 0}, "alerting.interval_seconds"),
    ({"sinks": [{"type": "email", "to": ["a@b.c"], "cc": ["x@y.z"]}]}, "alerting.sinks[0].email.cc"),
])
def test_a_bad_alerting_section_is_refused_naming_the_field(alerting, field):
    with pytest.raises(ConfigError) as exc:
        _cfg(alerting)
    assert field in str(exc.value)


def test_a_webhook_url_from_the_environment_must_be_there(monkeypatch):
    cfg = _cfg({"sinks": [{"type": "webhook", "url_env": "TTR_TEST_HOOK"}]})
    monkeypatch.delenv("TTR_TEST_HOOK", raising=False)
    with pytest.raises(ConfigError, match=r"\$TTR_TEST_HOOK"):
        cfg.alerting.sinks[0].resolved_url()
    monkeypatch.setenv("TTR_TEST_HOOK", "https://hooks.example.com/x")
    assert cfg.alerting.sinks[0].resolved_url() == "https://hooks.example.com/x"
