"""Telemetry for the whole process, from its environment (issue 17), set up once by the entry
point that runs the work: the Functions app on its first invocation, ``remediation run`` and
``remediation demo`` (which flush it before they exit). Nothing is imported until then:
``import function_app`` loads no exporter.

- ``APPLICATIONINSIGHTS_CONNECTION_STRING``: traces, metrics and logs to Application Insights
  through azure-monitor-opentelemetry's ``configure_azure_monitor()``, the Azure Functions
  Python convention (Microsoft Learn, "Use OpenTelemetry with Azure Functions":
  azure-docs ``articles/azure-functions/opentelemetry-howto.md``). With
  ``APPLICATIONINSIGHTS_AUTHENTICATION_STRING`` (``Authorization=AAD;ClientId=...``, as the
  Bicep sets it: the resource refuses local authentication) the exporter signs in with the
  managed identity (azure-monitor-opentelemetry-exporter, ``_get_authentication_credential``).
- ``REMEDIATION_TELEMETRY=console``: the same spans, metrics and log records on stderr.
- ``OTEL_EXPORTER_OTLP_ENDPOINT`` (and the other ``OTEL_EXPORTER_OTLP_*``): to a collector,
  when ``opentelemetry-exporter-otlp-proto-http`` is installed (not a dependency).

A tracer provider set already is used as it is: the Functions Python worker configures Azure
Monitor itself when it starts if ``PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY`` is true, as the
Bicep sets it (azure-functions-python-worker, ``otel.py``: ``configure_azure_monitor`` with the
connection string, the root logger), and configuring twice would export everything twice.

The HTTP calls underneath are traced by the SDKs' own instrumentation: azure-core (Exchange's
admin API, Service Bus, Table Storage, token requests; every query value in a URL but
``api-version`` is redacted) and httpx (Graph, through msgraph-sdk). aiohttp is not
instrumented: the escalation webhook's URL is a secret.

Log records: only those of ``EXPORTED_LOGGERS`` are exported, the journal's copy (logger
``remediation.journal``: ids, the account's address and the product's own words) and the
preflight's table; every other log line, which may quote a reason, a rule name or a service's
error text, stays in the process's own log. The exporter's handler hangs on the logger
``remediation`` (``configure_azure_monitor(logger_name=...)``; in Azure the app setting
``PYTHON_APPLICATIONINSIGHTS_LOGGER_NAME`` tells the worker the same), and ``guard_exporters``
puts ``ExportedOnly`` and logsafety's ``RedactingFilter`` on every OpenTelemetry handler in
the process, wherever it hangs (a worker configured without that setting hangs it on the root
logger).
"""

import importlib
import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from remediation.logsafety import RedactingFilter
from remediation.service import telemetry

log = logging.getLogger(__name__)

CONNECTION_STRING = "APPLICATIONINSIGHTS_CONNECTION_STRING"
LOCAL_EXPORTER = "REMEDIATION_TELEMETRY"  # "console"
OTLP_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
RESOURCE_DETECTORS = "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS"
SERVICE_NAME = "remediation"
#: The logger the exporter's handler hangs on (``PYTHON_APPLICATIONINSIGHTS_LOGGER_NAME`` in
#: the Bicep), and the loggers whose records it exports: the journal's copy and the
#: preflight's table (README, Telemetry; "Before you switch it on").
EXPORT_LOGGER = "remediation"
EXPORTED_LOGGERS = (telemetry.JOURNAL_LOGGER, "remediation.entrypoints.preflight")

Shutdown = Callable[[], None]


def wanted(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment asks for telemetry at all."""
    return bool(environ.get(CONNECTION_STRING, "").strip()
                or environ.get(LOCAL_EXPORTER, "").strip().lower() == "console"
                or environ.get(OTLP_ENDPOINT, "").strip())


def configure(mode: str | None, *, functions: bool = False) -> Shutdown | None:
    """Set up the process's telemetry from ``os.environ`` and install it for the core
    (``service.telemetry.install``); returns what flushes and shuts it down (None when the
    environment asks for none). ``functions``: in the Functions host (its resource detector,
    the Azure SDKs' INFO logs left out as host.json left them out)."""
    if not wanted():
        return None
    from opentelemetry import trace

    from remediation.adapters.telemetry import OpenTelemetry

    if _has_provider(trace.get_tracer_provider()):
        shutdown = _providers_shutdown()  # the worker's own: used as it is
    elif os.environ.get(CONNECTION_STRING, "").strip():
        shutdown = _azure_monitor(functions)
    else:
        shutdown = _local()
    _mute_kiota(trace.get_tracer_provider())
    guard_exporters()
    root = logging.getLogger()
    for handler in root.handlers:
        if not any(isinstance(found, RedactingFilter) for found in handler.filters):
            handler.addFilter(RedactingFilter())
    # The journal's records go out whatever the root logger's level (the Functions worker's
    # or the CLI's WARNING); stderr leaves them out (logsafety.configure_logging).
    logging.getLogger(telemetry.JOURNAL_LOGGER).setLevel(logging.INFO)
    if functions:
        logging.getLogger("azure").setLevel(logging.WARNING)
    telemetry.install(OpenTelemetry(mode=mode))
    return shutdown


class ExportedOnly(logging.Filter):
    """Passes the records of ``EXPORTED_LOGGERS`` (and their children) only."""

    def filter(self, record: logging.LogRecord) -> bool:
        return any(record.name == name or record.name.startswith(f"{name}.")
                   for name in EXPORTED_LOGGERS)


def guard_exporters() -> None:
    """Every OpenTelemetry logging handler in the process, on any logger, exports the
    records of ``EXPORTED_LOGGERS`` only, redacted (``ExportedOnly``, ``RedactingFilter``).
    Cheap and imports nothing: a handler is known by its class's module."""
    loggers = [logging.getLogger(), *(found for found in
                                      logging.Logger.manager.loggerDict.values()
                                      if isinstance(found, logging.Logger))]
    for logger in loggers:
        for handler in logger.handlers:
            if not type(handler).__module__.startswith("opentelemetry."):
                continue
            for kind in (ExportedOnly, RedactingFilter):
                if not any(isinstance(found, kind) for found in handler.filters):
                    handler.addFilter(kind())


@contextmanager
def configured(mode: str | None) -> Iterator[None]:
    """Telemetry for a command's run, flushed and shut down when it ends (the exporters'
    batches would otherwise be lost with the process)."""
    shutdown = configure(mode)
    try:
        yield
    finally:
        if shutdown is not None:
            telemetry.install(telemetry.NoTelemetry())
            shutdown()


def _mute_kiota(provider: Any) -> None:
    """No spans from msgraph-sdk's HTTP layer (kiota: a dozen per Graph call, one per
    middleware handler, around the one httpx client span that says what was called). Their
    tracers are disabled through the SDK's tracer configurator (experimental in
    opentelemetry-sdk 1.45: ``TracerProvider._set_tracer_configurator``); a disabled tracer's
    span carries its parent's context, so the httpx spans stay children of the step. Without
    that API the kiota spans are exported as they are."""
    try:
        from opentelemetry.sdk.trace import _TracerConfig
    except ImportError:
        return
    set_configurator = getattr(provider, "_set_tracer_configurator", None)
    if not callable(set_configurator):
        return

    def configurator(scope: Any) -> Any:
        return _TracerConfig(is_enabled="kiota" not in str(getattr(scope, "name", "")))

    set_configurator(tracer_configurator=configurator)


def _has_provider(provider: Any) -> bool:
    """Whether a real (SDK) tracer provider is set, rather than the API's proxy."""
    from opentelemetry.trace import NoOpTracerProvider, ProxyTracerProvider

    return not isinstance(provider, ProxyTracerProvider | NoOpTracerProvider)


def _azure_monitor(functions: bool) -> Shutdown:
    from azure.monitor.opentelemetry import configure_azure_monitor

    options: dict[str, Any] = {}
    if not os.environ.get("OTEL_TRACES_SAMPLER"):
        # Every trace kept: a case is a few dozen spans and cases come by the dozen a day,
        # while the distro's default (5 traces a second) would drop most of a storm's.
        options["sampling_ratio"] = 1.0
    if functions:  # as the Python worker does before it configures Azure Monitor itself
        os.environ.setdefault(RESOURCE_DETECTORS, "azure_functions")
    else:  # no probe of the VM metadata endpoint from a workstation
        os.environ.setdefault(RESOURCE_DETECTORS, "otel")
        options["resource"] = _local_resource()
    configure_azure_monitor(
        connection_string=os.environ[CONNECTION_STRING].strip(),
        logger_name=EXPORT_LOGGER,  # the journal's records and the preflight's (ExportedOnly)
        # HTTP client spans: azure-core (Exchange, Service Bus, Tables) and httpx (Graph).
        instrumentation_options={"azure_sdk": {"enabled": True}, "httpx": {"enabled": True},
                                 "requests": {"enabled": False}, "urllib": {"enabled": False},
                                 "urllib3": {"enabled": False}},
        **options)
    return _providers_shutdown()


def _local() -> Shutdown:
    """The SDK's own providers, exporting to the console or to an OTLP collector."""
    from opentelemetry import _logs, metrics, trace
    from opentelemetry.instrumentation.logging.handler import LoggingHandler
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    exporters = _exporters()
    resource = _local_resource()
    tracer_provider = TracerProvider(resource=resource)
    meter_provider = MeterProvider(resource=resource, metric_readers=[
        PeriodicExportingMetricReader(exporter) for exporter in exporters["metrics"]])
    logger_provider = LoggerProvider(resource=resource)
    for span_exporter in exporters["spans"]:
        tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
    for log_exporter in exporters["logs"]:
        logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter))
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    _logs.set_logger_provider(logger_provider)
    logging.getLogger(EXPORT_LOGGER).addHandler(LoggingHandler(logger_provider=logger_provider))
    _instrument_http()
    return _providers_shutdown()


def _exporters() -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {"spans": [], "metrics": [], "logs": []}
    if os.environ.get(LOCAL_EXPORTER, "").strip().lower() == "console":
        from opentelemetry.sdk._logs.export import ConsoleLogRecordExporter
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        # stderr: stdout is the commands' output (the demo's story, run's report).
        found["spans"].append(ConsoleSpanExporter(out=sys.stderr))
        found["metrics"].append(ConsoleMetricExporter(out=sys.stderr))
        found["logs"].append(ConsoleLogRecordExporter(out=sys.stderr))
    if os.environ.get(OTLP_ENDPOINT, "").strip():
        # An optional package (not in requirements.txt): found by name when installed.
        package = "opentelemetry.exporter.otlp.proto.http"
        try:
            spans = importlib.import_module(f"{package}.trace_exporter").OTLPSpanExporter
            measures = importlib.import_module(f"{package}.metric_exporter").OTLPMetricExporter
            records = importlib.import_module(f"{package}._log_exporter").OTLPLogExporter
        except ImportError:
            log.warning("%s is set, but the OTLP exporter is not installed: "
                        "pip install opentelemetry-exporter-otlp-proto-http", OTLP_ENDPOINT)
        else:
            found["spans"].append(spans())
            found["metrics"].append(measures())
            found["logs"].append(records())
    return found


def _local_resource() -> Any:
    from opentelemetry.sdk.resources import Resource

    named = os.environ.get("OTEL_SERVICE_NAME", "").strip()
    return Resource.create({} if named else {"service.name": SERVICE_NAME})


def _instrument_http() -> None:
    """What ``configure_azure_monitor`` turns on, for the local exporters: azure-core's
    tracing plugin and the httpx instrumentation, each when installed."""
    try:
        from azure.core.settings import settings
        from azure.core.tracing.ext.opentelemetry_span import OpenTelemetrySpan
    except ImportError:
        log.info("azure-core-tracing-opentelemetry is not installed: no Azure SDK spans")
    else:
        settings.tracing_implementation = OpenTelemetrySpan
    try:
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    except ImportError:
        log.info("opentelemetry-instrumentation-httpx is not installed: no Graph call spans")
    else:
        HTTPXClientInstrumentor().instrument()


def _providers_shutdown() -> Shutdown:
    """Flush and shut down the process's providers (each once)."""
    from opentelemetry import _logs, metrics, trace

    providers = (trace.get_tracer_provider(), metrics.get_meter_provider(),
                 _logs.get_logger_provider())

    def shutdown() -> None:
        for provider in providers:
            for name in ("force_flush", "shutdown"):
                method = getattr(provider, name, None)
                if callable(method):
                    try:
                        method()
                    except Exception:  # one exporter's failure must not keep the others
                        log.warning("telemetry: %s failed", name, exc_info=True)

    return shutdown
