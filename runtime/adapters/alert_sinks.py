"""Where alert notices go: an SNS topic, a Teams or Slack incoming webhook, email through the
management account's SES. Each sink's ``send`` raises only our errors (``RetryableError`` for
what is worth another try on the next pass)."""

from __future__ import annotations

from typing import Protocol

import httpx

from runtime.adapters.aws import AwsClients, aws_errors
from runtime.domain.config import Config
from runtime.domain.errors import PermanentError, RetryableError
from runtime.domain.notices import (
    EmailSink,
    Notice,
    SnsSink,
    WebhookSink,
    email_message,
    slack_payload,
    sns_message,
    teams_payload,
)

WEBHOOK_TIMEOUT = 10.0


class AlertSink(Protocol):
    name: str

    def wants(self, severity: str) -> bool: ...

    def send(self, notices: list[Notice]) -> None: ...


class SnsAlertSink:
    def __init__(self, spec: SnsSink, clients: AwsClients):
        self.spec, self.clients = spec, clients
        self.name = f"sns:{spec.topic_arn.rsplit(':', 1)[-1]}"
        self.wants = spec.wants

    def send(self, notices: list[Notice]) -> None:
        sns = self.clients.client("sns", self.spec.topic_arn.split(":")[3] or None)
        for n in notices:
            subject, message = sns_message(n)
            with aws_errors("sns.Publish"):
                sns.publish(TopicArn=self.spec.topic_arn, Subject=subject, Message=message,
                            MessageAttributes={"state": {"DataType": "String", "StringValue": n.state},
                                               "severity": {"DataType": "String", "StringValue": n.severity},
                                               "alert": {"DataType": "String", "StringValue": n.name}})


class WebhookAlertSink:
    def __init__(self, spec: WebhookSink, client: httpx.Client | None = None):
        self.spec = spec
        self.name = f"webhook:{spec.format}"
        self.wants = spec.wants
        self.client = client or httpx.Client(timeout=WEBHOOK_TIMEOUT, follow_redirects=False)

    def send(self, notices: list[Notice]) -> None:
        url = self.spec.resolved_url()
        render = teams_payload if self.spec.format == "teams" else slack_payload
        for n in notices:
            try:
                resp = self.client.post(url, json=render(n))
            except httpx.HTTPError as exc:
                # never echo the URL: an incoming-webhook URL is a credential
                raise RetryableError(f"webhook ({self.spec.format}): {type(exc).__name__}",
                                     operation="webhook.post") from None
            if resp.status_code == 429 or resp.status_code >= 500:
                raise RetryableError(f"webhook ({self.spec.format}): HTTP {resp.status_code}",
                                     operation="webhook.post")
            if resp.status_code >= 400:
                raise PermanentError(f"webhook ({self.spec.format}): HTTP {resp.status_code}",
                                     operation="webhook.post", code=str(resp.status_code))


class SesAlertSink:
    """One email per pass to the configured addresses, from the management account's SES."""

    def __init__(self, spec: EmailSink, clients: AwsClients, default_sender: str):
        self.spec, self.clients = spec, clients
        self.sender = spec.sender or default_sender
        self.name = "email"
        self.batches = True   # one email per pass, not one per notice
        self.wants = spec.wants

    def send(self, notices: list[Notice]) -> None:
        subject, text, body = email_message(notices)
        with aws_errors("sesv2.SendEmail"):
            self.clients.client("sesv2").send_email(
                FromEmailAddress=self.sender, Destination={"ToAddresses": list(self.spec.to)},
                Content={"Simple": {"Subject": {"Data": subject, "Charset": "UTF-8"},
                                    "Body": {"Text": {"Data": text, "Charset": "UTF-8"},
                                             "Html": {"Data": body, "Charset": "UTF-8"}}}})


def build_sinks(cfg: Config, clients: AwsClients) -> list[AlertSink]:
    out: list[AlertSink] = []
    for spec in cfg.alerting.sinks:
        if isinstance(spec, SnsSink):
            out.append(SnsAlertSink(spec, clients))
        elif isinstance(spec, WebhookSink):
            out.append(WebhookAlertSink(spec))
        elif isinstance(spec, EmailSink):
            out.append(SesAlertSink(spec, clients, cfg.email.sender))
    return out
