"""Translation of botocore errors into our tree: retryability is data (no I/O)."""

import botocore.exceptions
import pytest
from botocore.exceptions import ClientError

from runtime.adapters.aws import aws_errors, translate
from runtime.domain.errors import (
    AlreadyExists,
    NotFound,
    PermanentError,
    PreconditionFailed,
    RetryableError,
    TenantPaused,
)


def client_error(code, status=400, message="m"):
    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")


@pytest.mark.parametrize("code, status, kind, retryable", [
    ("Throttling", 400, RetryableError, True),
    ("TooManyRequestsException", 429, RetryableError, True),
    ("SlowDown", 503, RetryableError, True),
    ("InternalError", 500, RetryableError, True),
    ("Whatever", 502, RetryableError, True),
    ("ConditionalRequestConflict", 409, RetryableError, True),
    ("PreconditionFailed", 412, PreconditionFailed, True),
    ("SendingPausedException", 400, TenantPaused, True),
    ("AccountSuspendedException", 400, TenantPaused, True),
    ("NoSuchKey", 404, NotFound, False),
    ("NotFoundException", 404, NotFound, False),
    ("AlreadyExistsException", 400, AlreadyExists, False),
    ("AccessDenied", 403, PermanentError, False),
    ("MessageRejected", 400, PermanentError, False),
])
def test_client_errors(code, status, kind, retryable):
    err = translate(client_error(code, status), "svc.Op")
    assert type(err) is kind and err.retryable is retryable
    assert "svc.Op" in str(err)


def test_paused_tenant_retries_later():
    assert translate(client_error("SendingPausedException"), "ses").retry_after == 300


@pytest.mark.parametrize("exc", [
    botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
    botocore.exceptions.ReadTimeoutError(endpoint_url="http://127.0.0.1:1"),
    botocore.exceptions.ConnectTimeoutError(endpoint_url="http://127.0.0.1:1"),
])
def test_network_trouble_is_retryable(exc):
    assert translate(exc, "s3.GetObject").retryable


def test_no_credentials_is_permanent_and_vendor_errors_never_leak():
    assert isinstance(translate(botocore.exceptions.NoCredentialsError(), "sts"), PermanentError)
    with pytest.raises(RetryableError) as info:
        with aws_errors("s3.PutObject"):
            raise client_error("SlowDown", 503)
    assert not isinstance(info.value, ClientError) and isinstance(info.value.__cause__, ClientError)
