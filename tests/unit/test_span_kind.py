"""``runtime.telemetry.span`` takes the span's role in our words: callers never import OpenTelemetry."""

from __future__ import annotations

import pytest
from opentelemetry.trace import SpanKind

from runtime.telemetry import span
from tests.conftest import SPANS


@pytest.mark.parametrize("kind, expected", [("consumer", SpanKind.CONSUMER), ("internal", SpanKind.INTERNAL),
                                            ("client", SpanKind.CLIENT), ("server", SpanKind.SERVER),
                                            ("producer", SpanKind.PRODUCER)])
def test_the_kind_word_becomes_the_opentelemetry_span_kind(kind, expected):
    SPANS.clear()
    with span("ttr.unit.kind", {"ttr.kind": kind}, kind=kind):
        pass
    [finished] = [s for s in SPANS.get_finished_spans() if s.name == "ttr.unit.kind"]
    assert finished.kind == expected


def test_without_a_kind_a_span_is_internal():
    SPANS.clear()
    with span("ttr.unit.default"):
        pass
    [finished] = [s for s in SPANS.get_finished_spans() if s.name == "ttr.unit.default"]
    assert finished.kind == SpanKind.INTERNAL
