"""The app settings that send the app's telemetry to Application Insights (issue 17)."""

from tests.infra.test_bicep import app_settings


def test_the_worker_sends_the_apps_opentelemetry_to_the_apps_insights() -> None:
    """Microsoft Learn, "Use OpenTelemetry with Azure Functions" (Python, Application
    Insights): with host.json's ``telemetryMode`` OpenTelemetry,
    ``PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY=true`` has the Python worker configure
    azure-monitor-opentelemetry and stream the app's telemetry itself; the exporter signs in
    with the identity (the resource refuses local authentication); every trace is kept."""
    settings = app_settings()
    assert settings["PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY"] == "true"
    assert "PYTHON_ENABLE_OPENTELEMETRY" not in settings  # the OTLP exporter's setting
    signed_in = settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"]
    assert signed_in.startswith("ClientId=") and signed_in.endswith(";Authorization=AAD")
    assert "userAssignedIdentities" in signed_in  # the app's identity's client id
    assert settings["APPLICATIONINSIGHTS_CONNECTION_STRING"]
    assert (settings["OTEL_TRACES_SAMPLER"], settings["OTEL_TRACES_SAMPLER_ARG"]) == (
        "microsoft.fixed_percentage", "1.0")


def test_the_worker_exports_the_apps_log_records_only() -> None:
    """The worker passes ``PYTHON_APPLICATIONINSIGHTS_LOGGER_NAME`` to
    ``configure_azure_monitor`` as ``logger_name`` (azure-functions-python-worker,
    ``otel.py``); its default, the root logger, would export every library's lines. The app
    hangs its own exporter's handler on the same logger."""
    from remediation.entrypoints.telemetry import EXPORT_LOGGER

    assert app_settings()["PYTHON_APPLICATIONINSIGHTS_LOGGER_NAME"] == EXPORT_LOGGER
