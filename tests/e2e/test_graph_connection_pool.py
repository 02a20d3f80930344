"""Graph's connection pool keeps what it opened (issue 18: connections reused): a burst of
more Graph calls in flight than the pool holds, then another, goes over the same few TCP
connections, never closing a connection to open another one (in Azure each new one is a TCP
and a TLS handshake). The sandbox records the client's end of each request's connection."""

import asyncio
from pathlib import Path

import pytest

from bench import harness
from remediation.adapters.credentials import TokenGuard, build_credential
from remediation.adapters.graph_caller import GRAPH_CONNECTIONS, GraphCaller
from remediation.adapters.graph_directory import GraphDirectory
from remediation.sandbox import SandboxTenant
from tests.conftest import sandbox_settings

USERS = [harness.address(n) for n in range(GRAPH_CONNECTIONS + 8)]


@pytest.fixture
def tenant() -> SandboxTenant:
    return harness.blocked_tenant(len(USERS), latency=0.05)


async def test_bursts_of_graph_calls_reuse_the_connections_they_opened(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    settings = sandbox_settings(sandbox_url, tenant, tmp_path / "db")
    credential = TokenGuard(build_credential(settings))
    graph = GraphCaller(settings.graph_endpoint, credential, timeout=10, max_retries=0)
    directory = GraphDirectory(graph)
    try:
        for _ in range(2):  # each burst: more calls at once than the pool holds
            found = await asyncio.gather(*(directory.find_user(user) for user in USERS))
            assert len(found) == len(USERS)
    finally:
        await graph.close()
        await credential.close()

    calls = [r for r in tenant.requests() if r.path.startswith("/v1.0/users")]
    connections = {r.connection for r in calls}
    assert "" not in connections
    assert len(calls) >= 2 * len(USERS)
    assert len(connections) <= GRAPH_CONNECTIONS, (
        f"{len(connections)} connections opened for {len(calls)} calls")
