"""Throttling backs off as a whole: once Graph or Exchange answers 429 with ``Retry-After``,
no call of the process reaches the tenant before that time, whichever call it is.

Microsoft Graph: "When a throttling threshold is exceeded, Microsoft Graph limits any further
requests from that client app for some time", and "Backing off requests using the
Retry-After delay is the fastest way to recover from throttling because Microsoft Graph
continues to log resource usage while a client is being throttled"
(https://learn.microsoft.com/graph/throttling).
"""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from remediation.adapters.credentials import StaticTokenCredential
from remediation.adapters.exchange_client import ExchangeAdminClient
from remediation.adapters.graph_caller import GraphCaller
from remediation.adapters.graph_directory import GraphDirectory
from remediation.adapters.throttle_gate import ThrottleGate
from remediation.domain.errors import TransientError
from remediation.sandbox import Fault, SandboxTenant
from remediation.sandbox.state import RecordedRequest

ADELE, PATTI = "adele.vance@contoso.com", "patti.fernandez@contoso.com"
RETRY_AFTER = 1.0
CALLERS = 6
CALLS_EACH = 5


@pytest.fixture
async def graph(sandbox_url: str, tenant: SandboxTenant) -> AsyncIterator[GraphCaller]:
    caller = GraphCaller(sandbox_url, StaticTokenCredential(tenant.token), timeout=2.0,
                         max_retries=3, retry_delay=0.01)
    yield caller
    await caller.close()


@pytest.fixture
async def exchange(sandbox_url: str, tenant: SandboxTenant,
                   ) -> AsyncIterator[ExchangeAdminClient]:
    client = ExchangeAdminClient(sandbox_url, tenant.tenant_id,
                                 StaticTokenCredential(tenant.token), timeout=2.0,
                                 max_retries=3)
    yield client
    await client.close()


async def several_at_once(call: Callable[[], Awaitable[object]]) -> None:
    """CALLERS tasks, each making CALLS_EACH calls one after another (as cases do), each
    call one request: when the 429 is read, at most one request per other task is already
    on its way, and nothing can call those back."""
    async def one_after_another() -> None:
        for _ in range(CALLS_EACH):
            await call()

    await asyncio.gather(*(one_after_another() for _ in range(CALLERS)))


def sent_during_the_wait(tenant: SandboxTenant) -> list[RecordedRequest]:
    """Every request that arrived within Retry-After of the one 429's answer."""
    requests = tenant.requests()
    [throttled] = [r for r in requests if r.status == 429]
    return [r for r in requests
            if throttled.answered < r.at < throttled.answered + RETRY_AFTER]


async def test_one_429_from_graph_holds_every_graph_call_for_its_retry_after(
        graph: GraphCaller, tenant: SandboxTenant) -> None:
    tenant.latency = 0.02
    tenant.add_fault(Fault(status=429, retry_after=RETRY_AFTER, method="GET",
                           path=r"^/v1\.0/users/", after=3, code="TooManyRequests"))
    adele = tenant.user(ADELE).id

    await several_at_once(lambda: graph.call(
        "get a user", lambda client: client.users.by_user_id(adele).get()))

    soon = sent_during_the_wait(tenant)
    assert len(soon) < CALLERS, (f"{len(soon)} Graph calls reached the tenant within "
                                 f"Retry-After {RETRY_AFTER:g} s of a 429, not only the "
                                 "ones already on their way")


async def test_one_429_from_exchange_holds_every_cmdlet_for_its_retry_after(
        exchange: ExchangeAdminClient, tenant: SandboxTenant) -> None:
    tenant.latency = 0.02
    tenant.add_fault(Fault(status=429, retry_after=RETRY_AFTER, cmdlet="Get-Mailbox",
                           after=3, code="TooManyRequests"))

    await several_at_once(lambda: exchange.invoke("Get-Mailbox", {"Identity": ADELE}))

    soon = sent_during_the_wait(tenant)
    assert len(soon) < CALLERS, (f"{len(soon)} cmdlets reached Exchange within Retry-After "
                                 f"{RETRY_AFTER:g} s of a 429, not only the ones already "
                                 "on their way")


async def test_a_call_that_cannot_wait_out_the_throttling_fails_without_being_sent(
        sandbox_url: str, tenant: SandboxTenant) -> None:
    # Graph asks for 5 s; a call may wait 2 s in all. The call that met the 429 fails with
    # the delay asked; the next one fails the same way without reaching Graph at all.
    tenant.add_fault(Fault(status=429, retry_after=5, method="GET", path=r"^/v1\.0/users",
                           code="TooManyRequests"))
    caller = GraphCaller(sandbox_url, StaticTokenCredential(tenant.token), timeout=2.0,
                         max_retries=3, retry_delay=0.01, max_wait=2.0)
    directory = GraphDirectory(caller)
    try:
        with pytest.raises(TransientError) as first:
            await directory.find_user(ADELE)
        # The look-ups by key, mail and alias go out side by side, before any answer.
        sent_by_first = len([r for r in tenant.requests() if r.path.startswith("/v1.0/users")])
        with pytest.raises(TransientError) as second:
            await directory.find_user(ADELE)
    finally:
        await caller.close()

    assert first.value.retry_after == 5
    assert second.value.retry_after is not None and 0 < second.value.retry_after <= 5
    assert "throttl" in second.value.reason.lower()
    assert 1 <= sent_by_first <= 3
    assert len([r for r in tenant.requests()
                if r.path.startswith("/v1.0/users")]) == sent_by_first  # none by the second


# -- the processes of one local runtime are one app to Graph ------------------------------


@pytest.fixture
async def two_processes(sandbox_url: str, tenant: SandboxTenant, tmp_path: Path,
                        ) -> AsyncIterator[tuple[GraphDirectory, GraphDirectory]]:
    """Two Graph callers, as two processes of one run build them (bootstrap): one gate,
    shared through a file beside the database (``ThrottleGate.share``)."""
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
    time.sleep(0.06)
    assert not other.throttled and not one.throttled
