"""Shared fixtures: a sandbox tenant served over real HTTP, and settings pointing at it."""

from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from remediation.config import Settings
from remediation.sandbox import SandboxServer, SandboxTenant, demo_tenant

pytest_plugins = ["tests.azurite"]


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


def sandbox_settings(url: str, tenant: SandboxTenant, db: Path, **changes: object) -> Settings:
    settings = Settings(
        tenant_id=tenant.tenant_id, graph_endpoint=url, exchange_endpoint=url,
        sandbox_token=tenant.token, remediation_db=db,
        verify_delays=(timedelta(seconds=0.5), timedelta(seconds=1), timedelta(seconds=1.5)),
        lock_duration=timedelta(seconds=10), http_timeout=timedelta(seconds=2),
        retry_backoff=timedelta(seconds=0.05))
    return replace(settings, **changes)  # type: ignore[arg-type]


def sandbox_env(url: str, tenant: SandboxTenant, db: Path) -> dict[str, str]:
    """Environment variables for a worker subprocess talking to the sandbox."""
    return {
        "AZURE_TENANT_ID": tenant.tenant_id, "GRAPH_ENDPOINT": url, "EXCHANGE_ENDPOINT": url,
        "SANDBOX_TOKEN": tenant.token, "REMEDIATION_DB": str(db),
        "VERIFY_DELAYS": "1s,2s,3s", "HTTP_TIMEOUT": "20s", "SWEEP_RESTRICTED_USERS": "false",
        "RETRY_BACKOFF": "0.5s",
    }
