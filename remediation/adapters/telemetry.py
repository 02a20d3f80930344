"""OpenTelemetry behind the core's ``Telemetry`` port: spans of the tracer ``remediation``,
counters and histograms of the meter ``remediation`` (``service.telemetry`` names them all),
and the W3C trace context (``traceparent``, ``tracestate``) that queue messages carry.

It uses the process's providers (entrypoints/telemetry.py sets them: Azure Monitor, or a
console or OTLP exporter) unless others are given (tests give in-memory ones). Spans never
record an exception (its message may quote text from outside): a failure sets the span's
status with a code or a class name only.
"""

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Literal

from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from remediation.service.ports import TraceSpan
from remediation.service.telemetry import COUNTERS, HISTOGRAMS, MODE, NAME

TRACE_PROPERTIES = ("traceparent", "tracestate")  # W3C Trace Context, as Service Bus names them
# Seconds, from a minute to two days: the times the histograms measure (an hour's default
# boundaries would put every case in the last bucket).
_TIME_BOUNDARIES = [60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0,
                    172800.0]
_KINDS = {"consumer": SpanKind.CONSUMER, "internal": SpanKind.INTERNAL}
_W3C = TraceContextTextMapPropagator()


class _Span:
    def __init__(self, span: trace.Span) -> None:
        self._span = span

    def set_attributes(self, attributes: Mapping[str, str]) -> None:
        self._span.set_attributes(dict(attributes))

    def failed(self, description: str) -> None:
        self._span.set_status(Status(StatusCode.ERROR, description))


class OpenTelemetry:
    """The ``Telemetry`` port on OpenTelemetry. ``mode`` (REMEDIATION_MODE) goes on every
    span as ``remediation.mode``."""

    enabled = True

    def __init__(self, *, mode: str | None = None,
                 tracer_provider: trace.TracerProvider | None = None,
                 meter_provider: metrics.MeterProvider | None = None) -> None:
        self._tracer = trace.get_tracer(NAME, tracer_provider=tracer_provider)
        meter = metrics.get_meter(NAME, meter_provider=meter_provider)
        self._counters = {name: meter.create_counter(name, unit=unit, description=what)
                          for name, (unit, what) in COUNTERS.items()}
        self._histograms = {
            name: meter.create_histogram(name, unit=unit, description=what,
                                         explicit_bucket_boundaries_advisory=_TIME_BOUNDARIES)
            for name, (unit, what) in HISTOGRAMS.items()}
        self._common = {MODE: mode} if mode else {}

    def span(self, name: str, kind: Literal["consumer", "internal"],
             attributes: Mapping[str, str], carrier: Mapping[str, Any] | None = None,
             ) -> AbstractContextManager[TraceSpan]:
        return self._span(name, kind, attributes, carrier)

    @contextmanager
    def _span(self, name: str, kind: Literal["consumer", "internal"],
              attributes: Mapping[str, str], carrier: Mapping[str, Any] | None,
              ) -> Iterator[TraceSpan]:
        with self._tracer.start_as_current_span(
                name, context=parent_context(carrier), kind=_KINDS[kind],
                attributes={**self._common, **attributes}, record_exception=False,
                set_status_on_exception=False) as span:
            yield _Span(span)

    def add(self, counter: str, attributes: Mapping[str, str]) -> None:
        self._counters[counter].add(1, dict(attributes))

    def record(self, histogram: str, value: float, attributes: Mapping[str, str]) -> None:
        self._histograms[histogram].record(value, dict(attributes))

    def carrier(self) -> dict[str, str]:
        carrier: dict[str, str] = {}
        _W3C.inject(carrier)
        return {key: value for key, value in carrier.items()
                if key in TRACE_PROPERTIES and value}


def parent_context(carrier: Mapping[str, Any] | None) -> Context | None:
    """The context a message's application properties carry; None (the current context)
    when they carry no valid ``traceparent``."""
    if not carrier:
        return None
    fields = {key: value for key in TRACE_PROPERTIES
              if isinstance(value := carrier.get(key), str) and value}
    if "traceparent" not in fields:
        return None
    context = _W3C.extract(fields)
    return context if trace.get_current_span(context).get_span_context().is_valid else None
