"""Connections are reused (issue 18): a worker opens a few TCP connections to Graph and
Exchange and sends every call of every case over them, rather than one connection (and, in
Azure, one TLS handshake) per call. The sandbox records the client's end of the connection
each request came on (``RecordedRequest.connection``)."""

from pathlib import Path

import pytest

from bench import harness
from remediation.adapters.graph_caller import GRAPH_CONNECTIONS
from remediation.domain.cases import CaseState
from remediation.sandbox import SandboxTenant
from tests.e2e.test_safety import app_for, remediate

USERS = [harness.address(n) for n in range(6)]


@pytest.fixture
def tenant() -> SandboxTenant:
    return harness.blocked_tenant(len(USERS), latency=0)


async def test_every_call_of_every_case_goes_over_a_few_kept_connections(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    app = app_for(sandbox_url, tenant, tmp_path / "db")
    cases = await remediate(app, *USERS)
    await app.aclose()

    assert {case.state for case in cases.values()} == {CaseState.VERIFIED}
    calls = [r for r in tenant.requests() if not r.path.startswith("/_sandbox")]
    connections = {r.connection for r in calls}
    assert "" not in connections
    # Graph reads, Graph writes (the SDK) and Exchange each keep a pool: a connection per
    # request in flight at the busiest moment, reused for every later call.
    assert len(calls) >= 6 * 30  # an ordinary case makes 37 calls (docs/BENCHMARKS.md)
    # One connection per call would be 180 or more. Reads side by side in six cases at once
    # open a connection per request in flight at the busiest moment, at most GRAPH_CONNECTIONS
    # for Graph (30 of 32 measured on aiohttp's pool, 23 on httpcore's; Exchange ~15), each
    # used again and again after it.
    graph = {r.connection for r in calls if not r.path.startswith("/adminapi/")}
    assert len(graph) <= GRAPH_CONNECTIONS
    assert len(calls) >= 4 * len(connections), (
        f"{len(connections)} connections for {len(calls)} calls")
