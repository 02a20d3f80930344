"""Which log records leave the process for Application Insights (issue 17, hostile round):
the journal's copy and the preflight's table, redacted, from whatever OpenTelemetry handler
exports them and wherever it hangs; every other line stays in the process's own log."""

import logging

from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

from remediation.entrypoints.telemetry import EXPORT_LOGGER, guard_exporters
from remediation.service import telemetry


def test_only_the_journal_and_the_preflight_are_exported_from_any_exporting_handler() -> None:
    exported = InMemoryLogRecordExporter()
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exported))
    on_root, on_app = LoggingHandler(logger_provider=provider), LoggingHandler(
        logger_provider=provider)
    stderr = logging.StreamHandler()  # not an exporter: left as it is
    root, app = logging.getLogger(), logging.getLogger(EXPORT_LOGGER)
    levels = {name: logging.getLogger(name).level
              for name in ("remediation.service.workflow", "azure.core")}
    for name in levels:
        logging.getLogger(name).setLevel(logging.INFO)
    root.addHandler(on_root)
    app.addHandler(on_app)
    app.addHandler(stderr)
    try:
        guard_exporters()
        assert not stderr.filters
        logging.getLogger(telemetry.JOURNAL_LOGGER).warning("case 1 unblock failed")
        logging.getLogger("remediation.entrypoints.preflight").warning("preflight: FAIL x")
        logging.getLogger("remediation.service.workflow").warning(
            "case 1 escalated: Exchange said RULE-MARKER call +1 425 555 0100")
        logging.getLogger("azure.core").warning("request failed: RULE-MARKER")
        logging.getLogger("remediation.entrypoints.preflight").warning(
            "preflight: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl")
    finally:
        for handler in (on_root, on_app, stderr):
            root.removeHandler(handler)
            app.removeHandler(handler)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        provider.shutdown()
    bodies = [str(record.log_record.body) for record in exported.get_finished_logs()]
    # The journal's record reaches both handlers (root's and the app logger's): a worker
    # configured without PYTHON_APPLICATIONINSIGHTS_LOGGER_NAME would hang its on the root.
    assert sorted(set(bodies)) == ["case 1 unblock failed", "preflight: Bearer <redacted>",
                                   "preflight: FAIL x"], bodies
