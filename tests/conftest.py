"""Shared fixtures: a sandbox tenant served over real HTTP, and settings pointing at it.

Tokens: unit-level and adapter tests may use the sandbox's static token; the end-to-end and
Functions tests (``managed_identity``) get theirs the way the app does in Azure, from the
sandbox's managed identity endpoint through azure-identity's DefaultAzureCredential."""

import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from remediation.config import Settings
from remediation.entrypoints.demo import OTHER_CREDENTIALS
from remediation.sandbox import SandboxServer, SandboxTenant, demo_tenant
from remediation.sandbox.identity_routes import IDENTITY_PATH

pytest_plugins = ["tests.azurite"]


# Where the machine's telemetry would go (entrypoints/telemetry.py): never from a test, unless
# the test sets it (commands run in-process would configure the process's exporters).
TELEMETRY_SETTINGS = ("APPLICATIONINSIGHTS_CONNECTION_STRING", "REMEDIATION_TELEMETRY",
                      "OTEL_EXPORTER_OTLP_ENDPOINT", "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY")


@pytest.fixture(autouse=True)
def _no_telemetry_from_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in TELEMETRY_SETTINGS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def tenant() -> SandboxTenant:
    """The demo tenant without its Defender alerts (detection tests add their own)."""
    return demo_tenant(with_alerts=False)


@pytest.fixture
async def sandbox_url(tenant: SandboxTenant) -> AsyncIterator[str]:
    """The sandbox in the test's own event loop."""
    server = SandboxServer(tenant)
    url = await server.start()
    yield url
    await server.stop()


@pytest.fixture
def threaded_sandbox_url(tenant: SandboxTenant) -> Iterator[str]:
    """The sandbox in a thread of its own, for worker subprocesses and blocking tests."""
    server = SandboxServer(tenant)
    url = server.start_in_thread()
    yield url
    server.stop_thread()


def identity_env(url: str, tenant: SandboxTenant) -> dict[str, str]:
    """What App Service gives a Functions app with a user-assigned identity, pointing at the
    sandbox's managed identity endpoint (AZURE_CLIENT_ID as the Bicep sets it)."""
    return {"IDENTITY_ENDPOINT": f"{url}{IDENTITY_PATH}",
            "IDENTITY_HEADER": tenant.identity_header,
            "AZURE_CLIENT_ID": tenant.managed_identity_client_id}


@pytest.fixture
def managed_identity(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
                     tenant: SandboxTenant) -> None:
    """Tokens from the sandbox's managed identity endpoint, for the sandbox the test serves."""
    names = set(request.fixturenames)
    if not names & {"sandbox_url", "threaded_sandbox_url"}:
        return
    fixture = "sandbox_url" if "sandbox_url" in names else "threaded_sandbox_url"
    url = request.getfixturevalue(fixture)
    for name in OTHER_CREDENTIALS:
        monkeypatch.delenv(name, raising=False)
    for name, value in identity_env(url, tenant).items():
        monkeypatch.setenv(name, value)


def sandbox_settings(url: str, tenant: SandboxTenant, db: Path, **changes: object) -> Settings:
    """Settings for the sandbox at ``url``: tokens from its managed identity endpoint when the
    environment points there (``managed_identity``), else its static token."""
    from_identity = os.environ.get("IDENTITY_ENDPOINT", "").startswith(url)
    settings = Settings(
        tenant_id=tenant.tenant_id, graph_endpoint=url, exchange_endpoint=url,
        sandbox_token=None if from_identity else tenant.token, remediation_db=db,
        verify_delays=(timedelta(seconds=0.1), timedelta(seconds=0.2), timedelta(seconds=0.3)),
        lock_duration=timedelta(seconds=10), http_timeout=timedelta(seconds=2),
        retry_backoff=timedelta(seconds=0.05))
    return replace(settings, **changes)  # type: ignore[arg-type]


def sandbox_env(url: str, tenant: SandboxTenant, db: Path) -> dict[str, str]:
    """Environment variables for a worker talking to the sandbox: its tokens come from the
    sandbox's managed identity endpoint, as in Azure."""
    return {
        "AZURE_TENANT_ID": tenant.tenant_id, "GRAPH_ENDPOINT": url, "EXCHANGE_ENDPOINT": url,
        **identity_env(url, tenant), "REMEDIATION_DB": str(db),
        "VERIFY_DELAYS": "0.1s,0.2s,0.3s", "HTTP_TIMEOUT": "20s",
        "SWEEP_RESTRICTED_USERS": "false", "RETRY_BACKOFF": "0.5s",
    }
