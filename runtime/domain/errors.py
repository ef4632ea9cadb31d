"""The one error tree of ttr.

Callers catch at the level they care about:

    TtrError                      anything ttr raises on purpose
    ├── InvalidInput              the caller's input is wrong (CLI exit 2)
    │   └── ConfigError           the configuration file is wrong
    ├── ConflictError             the request clashes with the stored state (CLI exit 3)
    │   ├── IllegalTransition     the lifecycle does not allow this step from this status
    │   ├── StaleVersion          the caller held an older version than the archive's
    │   └── AlreadyExists         a create-only write found the object there
    ├── NotFound                  the object does not exist
    ├── RejectedInput             processing refuses a trigger for good (non-retryable bad input)
    └── ExternalError             a dependency (S3, SQS, SES, STS, Graph) failed
        ├── RetryableError        ... in a way worth retrying (throttling, 5xx, timeouts)
        │   └── TenantPaused      ... the tenant's SES sending is paused/suspended
        └── PermanentError        ... and retrying will not help
            └── RecipientRejected SES refused one recipient (recorded as failed, not retried)

Retryability is data on the error (``retryable`` and ``retry_after``), so call sites never
inspect vendor error codes; vendor exceptions are translated in ``runtime.adapters``. So is the
field bad input is about: ``InvalidInput(..., field="schedule.timezone")`` (and ``RejectedInput``),
which the web maps to its form field and the API's 422 ``field``; the message keeps its
``field: `` prefix for the CLI and logs, and nobody parses it back out.
"""

from __future__ import annotations


class TtrError(Exception):
    """Base of every error ttr raises on purpose."""

    retryable: bool = False
    exit_code: int = 1

    def __init__(self, message: str, *, retry_after: float | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.code = code

    def __str__(self) -> str:  # keep the message clean for CLI output
        return self.message


class _FieldError(TtrError):
    """An error about one field of the input: ``field`` names it (a dotted path, or None)."""

    def __init__(self, message: str, *, field: str | None = None, retry_after: float | None = None,
                 code: str | None = None):
        super().__init__(message, retry_after=retry_after, code=code)
        self.field = field

    def detail(self) -> str:
        """The message without its leading ``field: `` (and an action's ``update: ``), for a form."""
        text = self.message
        if self.field:
            for action in ("reschedule: ", "update: "):
                if text.startswith(f"{action}{self.field}: "):
                    text = text.removeprefix(action)
            text = text.removeprefix(f"{self.field}: ")
        return text


class InvalidInput(_FieldError):
    exit_code = 2


class ConfigError(InvalidInput):
    pass


class ConflictError(TtrError):
    exit_code = 3


class IllegalTransition(ConflictError):
    pass


class StaleVersion(ConflictError):
    pass


class AlreadyExists(ConflictError):
    pass


class NotFound(TtrError):
    exit_code = 2


class RejectedInput(_FieldError):
    """Processing refuses this input for good: record it, keep the bytes, ack the message."""


class ExternalError(TtrError):
    """A dependency failed. ``operation`` names the call (e.g. ``s3.PutObject``)."""

    def __init__(self, message: str, *, operation: str = "", retry_after: float | None = None,
                 code: str | None = None):
        super().__init__(message, retry_after=retry_after, code=code)
        self.operation = operation


class RetryableError(ExternalError):
    retryable = True


class TenantPaused(RetryableError):
    """SES says the tenant may not send now (SendingPaused, AccountSuspended)."""


class PermanentError(ExternalError):
    pass


class PreconditionFailed(RetryableError):
    """A conditional write lost a race (S3 412 or 409). Re-read and try again."""


class RecipientRejected(PermanentError):
    """SES MessageRejected for one address: that recipient fails; the others go on."""
