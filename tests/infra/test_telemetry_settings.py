"""The app settings that send the app's telemetry to Application Insights (issue 17)."""

from tests.infra.test_bicep import app_settings


def test_the_worker_streams_the_apps_opentelemetry_to_the_apps_insights() -> None:
    """Microsoft Learn, "Use OpenTelemetry with Azure Functions": with host.json's
    ``telemetryMode`` OpenTelemetry, ``PYTHON_ENABLE_OPENTELEMETRY`` lets the Python worker
    stream the app's own telemetry (the app configures azure-monitor-opentelemetry on its
    first invocation); the exporter signs in with the identity, local auth being off."""
    settings = app_settings()
    assert settings["PYTHON_ENABLE_OPENTELEMETRY"] == "true"
    # Not both: the worker would configure Azure Monitor itself, before the app could.
    assert "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY" not in settings
    signed_in = settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"]
    assert signed_in.startswith("ClientId=") and signed_in.endswith(";Authorization=AAD")
    assert "userAssignedIdentities" in signed_in  # the app's identity's client id
    assert settings["APPLICATIONINSIGHTS_CONNECTION_STRING"]
