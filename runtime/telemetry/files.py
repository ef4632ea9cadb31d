"""The JSON-lines span and metric exporters (``TTR_TRACES_FILE``, ``TTR_METRICS_FILE``).

Apart from runtime.telemetry so that a process without a configured exporter never imports the
OpenTelemetry SDK these subclass.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Sequence

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult


class _JsonLines:
    """Append whole lines to a file shared by many processes (one write() per batch, O_APPEND)."""

    def __init__(self, path: str):
        self.path = path
        self._lock = threading.Lock()
        d = os.path.dirname(os.path.abspath(path))
        os.makedirs(d, exist_ok=True)

    def write(self, lines: Sequence[str]) -> bool:
        if not lines:
            return True
        data = ("\n".join(lines) + "\n").encode("utf-8")
        try:
            with self._lock:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    os.write(fd, data)
                finally:
                    os.close(fd)
            return True
        except OSError:
            return False


class JsonLinesSpanExporter(SpanExporter):
    def __init__(self, path: str):
        self.out = _JsonLines(path)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = [json.dumps(json.loads(s.to_json(indent=None)), separators=(",", ":")) for s in spans]
        return SpanExportResult.SUCCESS if self.out.write(lines) else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        pass


class JsonLinesMetricExporter(MetricExporter):
    def __init__(self, path: str):
        super().__init__()
        self.out = _JsonLines(path)

    def export(self, metrics_data, timeout_millis: float = 10_000, **kwargs) -> MetricExportResult:
        line = json.dumps(json.loads(metrics_data.to_json(indent=None)), separators=(",", ":"))
        return MetricExportResult.SUCCESS if self.out.write([line]) else MetricExportResult.FAILURE

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs) -> None:
        pass
