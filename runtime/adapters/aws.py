"""AWS plumbing: one place that builds (botocore) clients and translates botocore errors.

Clients come from botocore directly, not through boto3: boto3 adds resources and S3 transfer
methods that ttr does not use, and importing it costs every tenant process 2 MB and ~8 ms."""

from __future__ import annotations

import contextlib
import os
import threading
from collections import Counter
from typing import Iterator

import botocore.config
import botocore.exceptions
import botocore.session
from botocore.exceptions import ClientError

from runtime.domain.errors import (
    AlreadyExists,
    NotFound,
    PermanentError,
    PreconditionFailed,
    RetryableError,
    TenantPaused,
    TtrError,
)

# Codes that mean "try again later" whatever the service.
RETRYABLE_CODES = {
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled",
    "TooManyRequestsException", "SlowDown", "RequestLimitExceeded", "ProvisionedThroughputExceededException",
    "ServiceUnavailable", "ServiceUnavailableException", "InternalError", "InternalFailure",
    "InternalServerError", "RequestTimeout", "RequestTimeoutException", "LimitExceededException",
    "ConditionalRequestConflict", "OperationAborted", "IDPCommunicationError",
    "KMS.ThrottlingException", "RequestExpired",
}
PAUSED_CODES = {"SendingPausedException", "AccountSuspendedException", "SendingPaused", "AccountSuspended"}
NOT_FOUND_CODES = {"NoSuchKey", "NotFoundException", "NotFound", "404", "NoSuchBucket", "ResourceNotFoundException",
                   "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}
ALREADY_EXISTS_CODES = {"AlreadyExistsException", "BucketAlreadyOwnedByYou", "QueueAlreadyExists"}


def client_config(*, connect_timeout: float = 5, read_timeout: float = 30,
                  max_attempts: int = 3) -> botocore.config.Config:
    return botocore.config.Config(
        connect_timeout=connect_timeout, read_timeout=read_timeout,
        retries={"max_attempts": max_attempts, "mode": "standard"},
        max_pool_connections=32)


# Every AWS call this process made, by "service.Operation" (read by health(), metrics, the bench).
CALL_COUNTS: Counter[str] = Counter()
_counts_lock = threading.Lock()


def _count_call(event_name: str = "", **_kw) -> None:
    # event_name: "after-call.<service>.<Operation>"
    parts = event_name.split(".")
    if len(parts) >= 3:
        with _counts_lock:
            CALL_COUNTS[f"{parts[1]}.{parts[2]}"] += 1


def call_counts() -> dict[str, int]:
    with _counts_lock:
        return dict(CALL_COUNTS)


class AwsClients:
    """Builds botocore clients for the runtime's own account (bucket, queues) and for a tenant.

    ``endpoint_url`` points every client at an emulator; None means real AWS. With an emulator
    and no credentials in the environment, dummy ones are used (the emulator accepts any).
    """

    def __init__(self, region: str, endpoint_url: str | None = None, *,
                 config: botocore.config.Config | None = None, data_path: str | None = None):
        self.region = region
        self.endpoint_url = endpoint_url
        self.config = config or client_config()
        core = botocore.session.get_session()
        if data_path:  # a tenant's trimmed, compact data (aws_models), searched before botocore's own
            from runtime.adapters.aws_models import compact_loader

            core.register_component("data_loader", compact_loader(data_path))
        default = self._default_credentials()
        if default:
            core.set_credentials(*default)
        core.register("after-call.*.*", _count_call)
        self._session = core
        self._clients: dict[tuple, object] = {}
        self._hooks: list[tuple[str, object]] = []

    def _default_credentials(self) -> tuple[str, str] | None:
        if self.endpoint_url and not (os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE")):
            return ("testing", "testing")
        return None

    @property
    def session(self) -> botocore.session.Session:
        return self._session

    def add_hook(self, event: str, handler) -> None:
        """Register a botocore event handler on every client of this factory, present and future
        (the seam for fault injection: botocore's own event system, no flag in our code paths)."""
        self._hooks.append((event, handler))
        for c in self._clients.values():
            c.meta.events.register(event, handler)

    def _hooked(self, client):
        for event, handler in self._hooks:
            client.meta.events.register(event, handler)
        return client

    def client(self, service: str, region: str | None = None):
        key = (service, region or self.region)
        if key not in self._clients:
            self._clients[key] = self._hooked(self._session.create_client(
                service, region_name=region or self.region, endpoint_url=self.endpoint_url,
                config=self.config))
        return self._clients[key]

    def client_with(self, service: str, credentials: dict, region: str | None = None):
        """A client with explicit (assumed-role) credentials, e.g. a tenant's SES client. The
        credentials belong to the client alone; it shares this factory's session only for what
        botocore parsed once (service models, endpoints), not to hold them twice per tenant."""
        return self._hooked(self._session.create_client(
            service, region_name=region or self.region, endpoint_url=self.endpoint_url, config=self.config,
            aws_access_key_id=credentials["AccessKeyId"], aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials.get("SessionToken")))


def assume_customer_role(clients: "AwsClients", customer, session_name: str, seconds: int = 3600) -> dict:
    """Credentials in a customer's account: its SES role, with the customer's ``ExternalId`` (the
    role's trust policy requires it, so the runtime cannot be tricked into acting for another
    tenant with a role ARN that tenant supplied). The only place ttr assumes a customer's role."""
    kwargs = {"RoleArn": customer.ses_role_arn, "RoleSessionName": session_name[:64], "DurationSeconds": seconds}
    if customer.external_id:
        kwargs["ExternalId"] = customer.external_id
    with aws_errors("sts.AssumeRole"):
        return clients.client("sts").assume_role(**kwargs)["Credentials"]


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def http_status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def translate(exc: Exception, operation: str) -> TtrError:
    """Map a botocore/boto3 exception to our tree. Never returns a vendor type."""
    if isinstance(exc, ClientError):
        code, status = error_code(exc), http_status(exc)
        msg = exc.response.get("Error", {}).get("Message") or code or str(exc)
        text = f"{operation}: {code or status}: {msg}"
        if code == "PreconditionFailed" or status == 412:
            return PreconditionFailed(text, operation=operation, code=code or "PreconditionFailed")
        if code in PAUSED_CODES:
            return TenantPaused(text, operation=operation, code=code, retry_after=300)
        if code in NOT_FOUND_CODES or status == 404:
            return NotFound(text, code=code or "NotFound")
        if code in ALREADY_EXISTS_CODES:
            return AlreadyExists(text, code=code)
        if code in RETRYABLE_CODES or status in (409, 429) or status >= 500:
            return RetryableError(text, operation=operation, code=code or str(status))
        return PermanentError(text, operation=operation, code=code or str(status))
    if isinstance(exc, (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError,
                        botocore.exceptions.ReadTimeoutError, botocore.exceptions.ConnectTimeoutError)):
        return RetryableError(f"{operation}: connection problem: {exc}", operation=operation,
                              code=type(exc).__name__)
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return PermanentError(f"{operation}: no AWS credentials found", operation=operation,
                              code="NoCredentials")
    if isinstance(exc, botocore.exceptions.ParamValidationError):
        return PermanentError(f"{operation}: {exc}", operation=operation, code="ParamValidation")
    if isinstance(exc, botocore.exceptions.BotoCoreError):
        return RetryableError(f"{operation}: {exc}", operation=operation, code=type(exc).__name__)
    raise exc


@contextlib.contextmanager
def aws_errors(operation: str) -> Iterator[None]:
    """``with aws_errors("s3.PutObject"): ...`` translates whatever botocore raises."""
    try:
        yield
    except (ClientError, botocore.exceptions.BotoCoreError) as exc:
        raise translate(exc, operation) from exc
