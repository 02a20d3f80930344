"""The processes of one local runtime are one app to Graph: a 429 one of them is answered
holds the calls of every other (``ThrottleGate.share``, a file beside the database), as it
holds the calls of its own process (https://learn.microsoft.com/graph/throttling)."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from remediation.adapters.credentials import StaticTokenCredential
from remediation.adapters.graph_caller import GraphCaller
from remediation.adapters.graph_directory import GraphDirectory
from remediation.adapters.throttle_gate import ThrottleGate
from remediation.domain.errors import TransientError
from remediation.sandbox import Fault, SandboxTenant

ADELE, PATTI = "adele.vance@contoso.com", "patti.fernandez@contoso.com"


@pytest.fixture
async def two_processes(sandbox_url: str, tenant: SandboxTenant, tmp_path: Path,
                        ) -> AsyncIterator[tuple[GraphDirectory, GraphDirectory]]:
    """Two Graph callers, as two processes of one run build them (bootstrap)."""
    callers = [GraphCaller(sandbox_url, StaticTokenCredential(tenant.token), timeout=5,
                           max_retries=3, retry_delay=0.1) for _ in range(2)]
    for caller in callers:
        caller.gate.share(str(tmp_path / "state.db-throttled-graph"))
    yield GraphDirectory(callers[0]), GraphDirectory(callers[1])
    for caller in callers:
        await caller.close()


async def test_a_429_one_process_is_answered_holds_the_calls_of_the_other(
        two_processes: tuple[GraphDirectory, GraphDirectory], tenant: SandboxTenant) -> None:
    first, second = two_processes
    tenant.add_fault(Fault(status=429, retry_after=1, method="GET", target=ADELE,
                           code="TooManyRequests"))
    assert (await first.find_user(ADELE)).user_principal_name == ADELE  # waited, then read
    [throttled] = [r for r in tenant.requests() if r.status == 429]

    # The other process's next call waits for the same Retry-After, not for its own 429.
    await second.find_user(PATTI)
    [patti] = [r for r in tenant.requests() if PATTI in r.path]
    assert patti.at >= throttled.answered + 1.0
    assert [r.status for r in tenant.requests()].count(429) == 1


def test_a_shared_gate_opens_when_its_moment_has_passed(tmp_path: Path) -> None:
    path = str(tmp_path / "gate")
    one, other = ThrottleGate("Graph"), ThrottleGate("Graph")
    one.share(path)
    other.share(path)
    assert not other.throttled  # no file yet: nobody was told to wait
    one.saw(TransientError("throttled", retry_after=0.05))
    assert 0 < other.remaining() <= 0.05
    assert (tmp_path / "gate").stat().st_mode & 0o777 == 0o600
    one.saw(TransientError("throttled", retry_after=-1))  # no wait asked: nothing changes
    import time
    time.sleep(0.06)
    assert not other.throttled and not one.throttled
