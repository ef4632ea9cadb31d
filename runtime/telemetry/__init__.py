"""Logging, traces and metrics for every ttr process (the CLI, the supervisor, each Ray worker).

Traces: one tracer provider per process. Exporters, by environment:
- ``TTR_TRACES_FILE``: JSON lines, one span per line (the SDK's own ``ReadableSpan.to_json()``
  flattened), appended by every process; the resource carries ``process.pid``.
- ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``: OTLP over HTTP.
Metrics go alongside: ``TTR_METRICS_FILE`` (JSON lines) and OTLP by the same variables.

The W3C trace context crosses actor calls explicitly: the caller ``inject()``s a dict carrier
into the call's arguments and the callee opens its span under ``extract(carrier)``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from typing import TYPE_CHECKING, Any, Iterator, Literal, Mapping

from opentelemetry import context as otel_context
from opentelemetry import metrics as otel_metrics
from opentelemetry import trace
from opentelemetry.propagate import extract as _extract
from opentelemetry.propagate import inject as _inject
from opentelemetry.trace import Status, StatusCode

if TYPE_CHECKING:  # the SDK loads only where an exporter is configured (see setup_telemetry)
    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.trace.export import SpanExporter

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(process)d] %(message)s"
TRACES_FILE_ENV = "TTR_TRACES_FILE"
METRICS_FILE_ENV = "TTR_METRICS_FILE"
OTLP_ENVS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
             "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
# What a Ray worker needs from the driver's environment to export like it.
FORWARDED_ENVS = (TRACES_FILE_ENV, METRICS_FILE_ENV, "OTEL_EXPORTER_OTLP_ENDPOINT",
                  "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                  "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_SERVICE_NAME",
                  "OTEL_RESOURCE_ATTRIBUTES", "TTR_LOG_LEVEL")

# A span's role, in our words (mapped onto OpenTelemetry's SpanKind by ``span``).
SpanRole = Literal["internal", "server", "client", "producer", "consumer"]

_lock = threading.Lock()
_configured = False
TRACER_NAME = "ttr"


def setup_logging(level: str | None = None) -> None:
    root = logging.getLogger()
    if getattr(root, "_ttr_configured", False):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_FORMAT))
    root.addHandler(handler)
    root.setLevel(level or os.environ.get("TTR_LOG_LEVEL", "INFO"))
    for noisy in ("botocore", "boto3", "urllib3", "werkzeug", "httpx", "azure"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    root._ttr_configured = True  # type: ignore[attr-defined]


def __getattr__(name: str):
    # the JSON-lines exporters subclass the SDK's: they live in runtime.telemetry.files
    if name in ("JsonLinesSpanExporter", "JsonLinesMetricExporter"):
        from runtime.telemetry import files as telemetry_files

        return getattr(telemetry_files, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _otlp_wanted(kind: str) -> bool:
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or
                os.environ.get(f"OTEL_EXPORTER_OTLP_{kind}_ENDPOINT"))


def setup_telemetry(role: str, *, span_exporter: SpanExporter | None = None,
                    metric_reader: MetricReader | None = None) -> None:
    """Install this process's tracer and meter providers (once). ``role`` names the process
    (cli, supervisor, customer, archive, meetings); tests may pass in-memory exporters. With no
    exporter configured or given, the SDK is not even imported: spans and instruments stay the
    API's no-ops (a hundred tenant processes do not each hold an SDK that exports nothing), and
    trace context still crosses actor calls."""
    global _configured
    setup_logging()
    if span_exporter is None and metric_reader is None and not exporters_configured():
        return
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from runtime.telemetry.files import JsonLinesMetricExporter, JsonLinesSpanExporter

    with _lock:
        if _configured:
            return
        resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "ttr"),
                                    "process.pid": os.getpid(), "ttr.role": role})
        provider = TracerProvider(resource=resource)
        if span_exporter is not None:
            from opentelemetry.sdk.trace.export import SimpleSpanProcessor

            provider.add_span_processor(SimpleSpanProcessor(span_exporter))
        if os.environ.get(TRACES_FILE_ENV):
            provider.add_span_processor(BatchSpanProcessor(
                JsonLinesSpanExporter(os.environ[TRACES_FILE_ENV]), schedule_delay_millis=1000))
        if _otlp_wanted("TRACES"):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)

        readers: list[MetricReader] = []
        if metric_reader is not None:
            readers.append(metric_reader)
        if os.environ.get(METRICS_FILE_ENV):
            readers.append(PeriodicExportingMetricReader(
                JsonLinesMetricExporter(os.environ[METRICS_FILE_ENV]), export_interval_millis=10_000))
        if _otlp_wanted("METRICS"):
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

            readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
        otel_metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers))
        _configured = True


def exporters_configured() -> bool:
    """Whether any exporter is asked for (files or OTLP); without one, telemetry stays off."""
    return any(os.environ.get(k) for k in (TRACES_FILE_ENV, METRICS_FILE_ENV, *OTLP_ENVS))


@contextlib.contextmanager
def command_telemetry(role: str) -> Iterator[None]:
    """Telemetry for one CLI command (``ttr change ...``, a standalone ``ttr web``): set up only
    when an exporter is configured (else the instruments stay the API's no-ops: nothing to pay),
    and flushed when the command ends, so a short-lived process still exports what it counted."""
    if not exporters_configured():
        yield
        return
    setup_telemetry(role)
    try:
        yield
    finally:
        flush_telemetry()


def shutdown_telemetry() -> None:
    """Flush what is buffered (a process about to exit)."""
    with contextlib.suppress(Exception):
        trace.get_tracer_provider().shutdown()  # type: ignore[attr-defined]
    with contextlib.suppress(Exception):
        otel_metrics.get_meter_provider().shutdown()  # type: ignore[attr-defined]


def flush_telemetry(timeout_millis: int = 5000) -> None:
    """Export what is buffered now (before an actor is stopped)."""
    with contextlib.suppress(Exception):
        trace.get_tracer_provider().force_flush(timeout_millis)  # type: ignore[attr-defined]
    with contextlib.suppress(Exception):
        otel_metrics.get_meter_provider().force_flush(timeout_millis)  # type: ignore[attr-defined]


def forwarded_env() -> dict[str, str]:
    """The telemetry variables a Ray worker must share with the driver."""
    return {k: os.environ[k] for k in FORWARDED_ENVS if os.environ.get(k)}


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


def meter() -> otel_metrics.Meter:
    return otel_metrics.get_meter(TRACER_NAME)


def inject() -> dict[str, str]:
    carrier: dict[str, str] = {}
    _inject(carrier)
    return carrier


def extract(carrier: Mapping[str, str] | None) -> otel_context.Context:
    return _extract(dict(carrier or {}))


@contextlib.contextmanager
def span(name: str, attributes: Mapping[str, Any] | None = None, *, carrier: Mapping[str, str] | None = None,
         context: otel_context.Context | None = None, kind: SpanRole = "internal",
         **kw) -> Iterator[trace.Span]:
    """A span that records any exception and marks the span as an error.

    ``kind`` is the span's role in our words ("internal", "server", "client", "producer",
    "consumer"), so callers outside this package need not import the OpenTelemetry API."""
    ctx = extract(carrier) if carrier is not None else context
    with tracer().start_as_current_span(name, context=ctx, kind=trace.SpanKind[kind.upper()], record_exception=False,
                                        set_status_on_exception=False, **kw) as sp:
        if attributes:
            sp.set_attributes({k: v for k, v in attributes.items() if v is not None})
        try:
            yield sp
        except BaseException as exc:
            sp.record_exception(exc)
            sp.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:300]))
            sp.set_attribute("ttr.error.type", type(exc).__name__)
            raise


def add_event(name: str, attributes: Mapping[str, Any] | None = None) -> None:
    trace.get_current_span().add_event(name, dict(attributes or {}))


# ---------------------------------------------------------------------------------------------
# Metrics: the seed's list. Instruments are created once per process, on first use.


class Metrics:
    def __init__(self) -> None:
        m = meter()
        self.triggers_created = m.create_counter("ttr.triggers.created", description="triggers written")
        self.trigger_writes_failed = m.create_counter("ttr.triggers.write_failures")
        self.triggers_deleted = m.create_counter("ttr.triggers.deleted", description="triggers removed")
        self.trigger_delete_failures = m.create_counter("ttr.triggers.delete_failures")
        self.trigger_age = m.create_histogram("ttr.trigger.age", unit="s",
                                              description="trigger creation (S3 event) to deletion")
        self.orphans = m.create_counter("ttr.orphans.actions", description="orphan reconciler actions")
        self.processing_duration = m.create_histogram("ttr.processing.duration", unit="s")
        self.processing_outcomes = m.create_counter("ttr.processing.outcomes",
                                                    description="messages by outcome (success/retry/rejected)")
        self.archive_updates = m.create_counter("ttr.archive.updates", description="archive writes by outcome")
        self.emails_sent = m.create_counter("ttr.emails.sent")
        self.emails_failed = m.create_counter("ttr.emails.failed")
        # SES feedback by kind (delivery, bounce, complaint): delivery rate = delivery / ttr.emails.sent
        self.email_feedback = m.create_counter("ttr.emails.feedback", description="SES feedback events by kind")
        self.message_age = m.create_histogram("ttr.message.age", unit="s", description="SQS message age at receive")
        self.errors = m.create_counter("ttr.errors", description="errors by type")
        self.actor_restarts = m.create_counter("ttr.actors.restarts")
        self.alert_notices = m.create_counter("ttr.alerts.notices", description="alert notices by state")


_metrics: Metrics | None = None


def metrics() -> Metrics:
    global _metrics
    if _metrics is None:
        _metrics = Metrics()
    return _metrics


def observe(name: str, callback, *, unit: str = "", description: str = "") -> None:
    """An observable gauge whose ``callback()`` returns [(value, attributes), ...]."""
    from opentelemetry.metrics import Observation

    def cb(_options):
        return [Observation(v, a) for v, a in callback()]

    meter().create_observable_gauge(name, callbacks=[cb], unit=unit, description=description)
