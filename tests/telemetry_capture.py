"""Telemetry captured in memory: the OpenTelemetry SDK's own in-memory exporters behind the
product's adapter, as entrypoints/telemetry.py sets it up for a process (global providers,
azure-core's tracing plugin, the httpx instrumentation, kiota muted), for one test at a time.

Log records are captured by a handler on the root logger, where a Functions worker configured
without ``PYTHON_APPLICATIONINSIGHTS_LOGGER_NAME`` hangs its exporter's (the widest the
product meets), guarded as the product guards every exporting handler
(``entrypoints.telemetry.guard_exporters``): what it captures is what would be exported.

OpenTelemetry's global tracer provider can be set once per process: it is set the first time a
test asks, with a processor that hands spans to the running test's exporter only (none
between tests), and kiota's tracers muted as in production. The HTTP instrumentation and the
core's telemetry are put back as they were when the test ends.
"""

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from remediation.adapters.telemetry import OpenTelemetry
from remediation.entrypoints.telemetry import _mute_kiota, guard_exporters
from remediation.service import telemetry


class _Switch(SpanProcessor):
    """Hands spans to the running test's processor, if any."""

    target: SpanProcessor | None = None

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        if self.target is not None:
            self.target.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        if self.target is not None:
            self.target.on_end(span)

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


_SWITCH = _Switch()


def _global_provider() -> TracerProvider:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider(shutdown_on_exit=False)
        trace.set_tracer_provider(provider)
        provider = trace.get_tracer_provider()
        assert isinstance(provider, TracerProvider), "another tracer provider was set"
        _mute_kiota(provider)
    if _SWITCH not in provider._active_span_processor._span_processors:
        provider.add_span_processor(_SWITCH)
    return provider


@dataclass
class Captured:
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    logs: InMemoryLogRecordExporter

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.finished() if span.name == name]

    def points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        """Every data point of metric ``name``: (attributes, point)."""
        data = self.metrics.get_metrics_data()
        return [(dict(point.attributes or {}), point)
                for resource in (data.resource_metrics if data else [])
                for scope in resource.scope_metrics for metric in scope.metrics
                if metric.name == name for point in metric.data.data_points]

    def records(self) -> list[ReadableLogRecord]:
        return list(self.logs.get_finished_logs())

    def text(self) -> str:
        """Everything captured as text, for a search: span names, attributes, events and
        statuses; metric names and attributes; log bodies and attributes."""
        parts: list[str] = []
        for span in self.finished():
            parts += [span.name, json.dumps(dict(span.attributes or {}), default=str),
                      str(span.status.description)]
            parts += [f"{event.name} {dict(event.attributes or {})}" for event in span.events]
        data = self.metrics.get_metrics_data()
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    parts.append(metric.name)
                    parts += [json.dumps(dict(point.attributes or {}), default=str)
                              for point in metric.data.data_points]
        for record in self.records():
            parts += [str(record.log_record.body),
                      json.dumps(dict(record.log_record.attributes or {}), default=str)]
        return "\n".join(parts)


@contextmanager
def captured_telemetry(mode: str = "enforce") -> Iterator[Captured]:
    """The product's telemetry in memory for the block, the HTTP calls underneath included
    (httpx for Graph, azure-core for Exchange and tokens)."""
    from azure.core.settings import settings
    from azure.core.tracing.ext.opentelemetry_span import OpenTelemetrySpan
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    provider = _global_provider()
    spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
    logs = InMemoryLogRecordExporter()
    log_provider = LoggerProvider(shutdown_on_exit=False)
    log_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    handler = LoggingHandler(logger_provider=log_provider)
    root, journal = logging.getLogger(), logging.getLogger(telemetry.JOURNAL_LOGGER)
    level = journal.level
    meter_provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    previous = telemetry.install(OpenTelemetry(mode=mode, tracer_provider=provider,
                                               meter_provider=meter_provider))
    _SWITCH.target = SimpleSpanProcessor(spans)
    settings.tracing_implementation = OpenTelemetrySpan
    instrumentor = HTTPXClientInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    root.addHandler(handler)
    guard_exporters()
    journal.setLevel(logging.INFO)
    try:
        yield Captured(spans, reader, logs)
    finally:
        journal.setLevel(level)
        root.removeHandler(handler)
        instrumentor.uninstrument()
        type(settings).tracing_implementation.unset_value()
        _SWITCH.target = None
        telemetry.install(previous)
        meter_provider.shutdown()
        log_provider.shutdown()
