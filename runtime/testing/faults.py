"""Seeded fault injection through botocore's event system (``AwsClients.add_hook``).

``before-call`` handlers answer in AWS's place with an error (throttling, 5xx, a conditional
write conflict); an ``after-call`` handler turns a *successful* SendEmail into a read timeout, so
the caller cannot know the email went out (the case that bounds duplicates).
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass, field

import botocore.exceptions

# operation -> (HTTP status, error code) injected before the call
ERRORS = {
    "s3.GetObject": (503, "SlowDown"),
    "s3.PutObject": (503, "SlowDown"),
    "s3.DeleteObject": (500, "InternalError"),
    "s3.PutObject.conflict": (412, "PreconditionFailed"),
    "sqs.ReceiveMessage": (500, "InternalError"),
    "sqs.DeleteMessageBatch": (500, "InternalError"),
    "sqs.ChangeMessageVisibility": (500, "InternalError"),
    "sesv2.SendEmail": (429, "TooManyRequestsException"),
    "sesv2.ListContacts": (500, "InternalFailure"),
    "sts.AssumeRole": (500, "InternalFailure"),
}
DEFAULT_RATES = {
    "s3.GetObject": 0.05, "s3.PutObject": 0.05, "s3.DeleteObject": 0.08, "s3.PutObject.conflict": 0.08,
    "sqs.ReceiveMessage": 0.03, "sqs.DeleteMessageBatch": 0.08, "sqs.ChangeMessageVisibility": 0.05,
    "sesv2.SendEmail": 0.05, "sesv2.SendEmail.timeout": 0.03, "sesv2.ListContacts": 0.05,
    "sts.AssumeRole": 0.2,
}


@dataclass
class Injector:
    seed: int
    rates: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_RATES))
    enabled: bool = True
    counts: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.lock = threading.Lock()

    def roll(self, what: str) -> bool:
        rate = self.rates.get(what, 0.0)
        if not self.enabled or rate <= 0:
            return False
        with self.lock:
            hit = self.rng.random() < rate
            if hit:
                self.counts[what] += 1
        return hit

    def before_call(self, model=None, params=None, **_):
        op = f"{model.service_model.service_name}.{model.name}"
        headers = (params or {}).get("headers") or {}  # before-call sees the serialised request
        if op == "s3.PutObject" and ("If-Match" in headers or "If-None-Match" in headers) \
                and self.roll("s3.PutObject.conflict"):
            return _error(*ERRORS["s3.PutObject.conflict"])
        if op in ERRORS and self.roll(op):
            return _error(*ERRORS[op])
        return None

    def after_call(self, model=None, **_):
        op = f"{model.service_model.service_name}.{model.name}"
        if op == "sesv2.SendEmail" and self.roll("sesv2.SendEmail.timeout"):
            raise botocore.exceptions.ReadTimeoutError(endpoint_url="(injected: sent, answer lost)")

    def install(self, clients) -> "Injector":
        clients.add_hook("before-call.*.*", self.before_call)
        clients.add_hook("after-call.sesv2.SendEmail", self.after_call)
        return self


class _Response:
    def __init__(self, status: int):
        self.status_code = status
        self.headers: dict = {}
        self.content = b""
        self.text = ""


def _error(status: int, code: str):
    return _Response(status), {"Error": {"Code": code, "Message": f"injected {code}"},
                               "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}}}
