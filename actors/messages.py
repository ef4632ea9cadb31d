"""What crosses the actor boundary: one frozen dataclass per request and per result, and the one
error codec.

Every actor method that can fail on purpose returns its result *or* an ``ErrorData``; never a
raised ``TtrError`` (Ray would wrap it and the caller would lose its type). The proxies in
``actors.proxies`` turn an ``ErrorData`` back into the very error that was raised, with its
``retryable``, ``retry_after``, ``code`` and ``operation`` (``encode_error`` / ``decode_error``
are a symmetric pair; a round-trip test covers every error type).

No Ray import here: ``ttr status`` and tests read these types without starting anything.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from runtime.domain.errors import ExternalError, PermanentError, RetryableError, TtrError

if TYPE_CHECKING:
    from runtime.emails import DeliveryRequest


def config_of(cfg_or_data):
    """The parsed ``Config`` an actor was given: the supervisor ships its own parsed copy (no
    re-validation in each actor); a dict (an older caller) is parsed."""
    from runtime.domain.config import Config, parse_config

    if isinstance(cfg_or_data, Config):
        return cfg_or_data
    return parse_config(cfg_or_data, cfg_or_data.get("source") or "<runtime>")


def tenant_config_of(view_or_cfg, code: str):
    """The ``TenantConfig`` a CustomerActor was given: the supervisor ships ``Config.tenant_view(code)``
    (frozen dataclasses: the tenant's process imports no pydantic); a ``Config`` or a dict (an older
    caller) is parsed here and viewed."""
    from runtime.domain.tenant import TenantConfig

    if isinstance(view_or_cfg, TenantConfig):
        return view_or_cfg
    return config_of(view_or_cfg).tenant_view(code)


# -- errors ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ErrorData:
    type: str                    # the class name in runtime.domain.errors (or a subclass elsewhere)
    message: str
    retryable: bool
    retry_after: float | None = None
    code: str | None = None
    operation: str = ""


def encode_error(exc: TtrError) -> ErrorData:
    return ErrorData(type(exc).__name__, exc.message, exc.retryable, exc.retry_after, exc.code,
                     getattr(exc, "operation", ""))


def _error_types() -> dict[str, type[TtrError]]:
    out: dict[str, type[TtrError]] = {}
    todo = [TtrError]
    while todo:
        cls = todo.pop()
        out.setdefault(cls.__name__, cls)
        todo += cls.__subclasses__()
    return out


def decode_error(data: ErrorData) -> TtrError:
    """The error ``encode_error`` saw, rebuilt: same class, message and data. A type this process
    does not know (another version on the other side) becomes a Retryable/PermanentError that
    keeps everything else."""
    cls = _error_types().get(data.type)
    if cls is None:
        cls = RetryableError if data.retryable else PermanentError
    exc = cls.__new__(cls)        # not __init__: subclasses have their own signatures
    Exception.__init__(exc, data.message)
    exc.message, exc.retry_after, exc.code = data.message, data.retry_after, data.code
    if issubclass(cls, ExternalError):
        exc.operation = data.operation
    if exc.retryable != data.retryable:
        exc.retryable = data.retryable
    return exc


def unwrap(result):
    """The result, or raise the error it carries."""
    if isinstance(result, ErrorData):
        raise decode_error(result)
    return result


# -- Renderer --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RenderCall:
    """Render what one transition sends to one customer (``runtime.emails.render_delivery``); the
    answer is a ``runtime.emails.RenderedDelivery``."""

    request: DeliveryRequest
    trace: dict | None = None     # the caller's W3C trace context


@dataclass(frozen=True)
class RendererHealth:
    calls: int
    errors: int
    pid: int = 0
    ok: bool = True

    def to_json(self) -> dict:
        return asdict(self)


# -- ArchiveActor ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RecordRequest:
    """Append ``records`` (idempotent by their ``key``) and set top-level ``set_fields``."""

    change_id: str
    records: tuple[dict, ...]
    set_fields: dict | None = None
    trace: dict | None = None     # the caller's W3C trace context


@dataclass(frozen=True)
class RecordResult:
    appended: int
    batched_with: int = 1         # requests applied in the same write (group commit)


@dataclass(frozen=True)
class ArchiveHealth:
    writes: int                   # compare-and-swap writes that succeeded
    requests: int                 # record requests answered
    failures: int
    aws_calls: dict
    window: dict
    pid: int = 0
    batches: tuple[int, ...] = ()  # requests per write, the last 100 writes (group commit)
    ok: bool = True

    def to_json(self) -> dict:
        return asdict(self)


# -- MeetingCoordinator ----------------------------------------------------------------------------
@dataclass(frozen=True)
class MeetingCall:
    change_id: str
    action: str                   # ensure / update / cancel (processing.Step.meeting)
    seq: int
    trace: dict | None = None


@dataclass(frozen=True)
class MeetingResult:
    result: str


@dataclass(frozen=True)
class MeetingsHealth:
    calls: int
    errors: int
    pid: int = 0
    ok: bool = True
    aws_calls: dict = field(default_factory=dict)   # by "service.Operation" (its archive reads)

    def to_json(self) -> dict:
        return asdict(self)


# -- CustomerActor ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class AttendeesRequest:
    trace: dict | None = None


@dataclass(frozen=True)
class AttendeesResult:
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class SuppressionChanged:
    """The FeedbackActor recorded a suppression for this tenant: read the list again."""
    addresses: tuple[str, ...] = ()


@dataclass(frozen=True)
class Probe:
    """What supervision needs each pass: cheap to build and to ship."""

    incarnation: str
    running: bool


@dataclass(frozen=True)
class DrainResult:
    released: int
    unfinished: int


@dataclass(frozen=True)
class TenantHealth:
    code: str
    pid: int
    incarnation: str
    running: bool
    started_at: float
    in_flight: int
    paused_until: float
    received: int
    acked: int
    retried: int
    rejected: int
    emails_sent: int
    emails_failed: int
    steps: int
    errors: int
    delete_failures: int
    last_error: str
    last_error_at: float
    longest_running_s: float
    max_duration_s: float
    assume_role_calls: int
    rss: int
    uss: int
    depths: dict = field(default_factory=dict)
    window: dict = field(default_factory=dict)
    deletes: dict = field(default_factory=dict)
    durations: tuple = ()
    aws_calls: dict = field(default_factory=dict)
    node: dict = field(default_factory=dict)
    spawned_at: float = 0.0       # the process's start (where start-up time goes: bench.py)
    init_started_at: float = 0.0  # the constructor's start; started_at is its end
    # the process's CPU seconds at the constructor's start and at its end (bench.py)
    cpu_at_init: float = 0.0
    cpu_at_constructed: float = 0.0

    def to_json(self) -> dict:
        """The dict ``ttr status``, the portal and the alert rules read."""
        return asdict(self)


@dataclass(frozen=True)
class AlertsHealth:
    """The alert actor: its passes, what fires, notices per sink and what waits to be resent."""

    passes: int
    notices: int
    firing: list
    sent: dict
    pending: dict
    interval_s: float
    last_error: str
    pid: int = 0
    ok: bool = True

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class FeedbackHealth:
    """The SES feedback actor: counts per tenant and each tenant's last queue error."""

    tenants: dict
    errors: dict
    ok: bool = True

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ReconcilerHealth:
    passes: int
    totals: dict
    last: tuple
    last_error: str
    pid: int = 0
    ok: bool = True

    def to_json(self) -> dict:
        return asdict(self)
