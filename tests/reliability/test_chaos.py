"""Chaos (issue 18, point 3): blocked users, each named by a Defender alert, remediated
through the sandbox over real HTTP (msgraph-sdk and the Exchange client) while 20% of the
calls are answered 429 with Retry-After, 5% 503, and 1% are applied and answered after the
client gave up. Every case ends final, no alert is lost, no block is lifted twice, and no
password is reset more often than the journal shows attempts to reset it.

Time is compressed (no latency, Retry-After 0.1 s, in-call and queue back-offs from 0.05 s,
one verification at +0.2 s); the scenario is not: the issue's 100 users and fault shares,
intake by the alerts poll, the local worker with its queue, on the SQLite journal. On the
Table journal (Azurite) 25 users: every journal write is an HTTP call to Azurite, and 100
users there take over a minute of both cores (70 s measured alone), more than the suite's
budget.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from remediation.bootstrap import bootstrap
from remediation.config import Settings
from remediation.domain.alerts import alert_request_id
from remediation.domain.cases import Case
from remediation.sandbox import BlockBehaviour, Fault, SandboxServer, SandboxTenant
from tests.conftest import sandbox_settings
from tests.reliability.tenants import (
    UNBLOCK_CMDLET,
    Tally,
    add_chaos,
    address,
    applied_unblocks,
    blocked_tenant,
    repeated_done_steps,
    reset_attempts,
    resets,
    story,
    unblock_calls,
)

USERS = {"sqlite": 100, "table": 25}
SEED = 18
# Long enough for a call on a busy machine (both cores taken by the suite), so that only the
# late answers time out; 20 users at a time keep each call's wait for the CPU short. (With
# 100 at a time and 0.4 s, every call timed out on a loaded machine and every case escalated
# after its 10 deliveries.)
HTTP_TIMEOUT = timedelta(seconds=2)
CONCURRENCY = 20
POLLS = 30  # the timer would poll every 2 minutes; each poll's window overlaps the last


@dataclass
class Chaos:
    tenant: SandboxTenant
    alerts: list[dict[str, Any]]
    settings: Settings


@pytest.fixture(params=["sqlite", "table"])
def chaos(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Chaos]:
    tenant, alerts = blocked_tenant(USERS[request.param])
    server = SandboxServer(tenant)
    url = server.start_in_thread()
    add_chaos(tenant, seed=SEED, late_after=HTTP_TIMEOUT * 2, retry_after=0.1)
    table = {} if request.param == "sqlite" else {
        "journal_table_connection_string": request.getfixturevalue(
            "azurite_table_connection_string"),
        "journal_table_name": f"chaos{uuid.uuid4().hex[:12]}"}
    yield Chaos(tenant, alerts, settings_for(url, tenant, tmp_path, len(alerts), **table))
    server.stop_thread()


def settings_for(url: str, tenant: SandboxTenant, folder: Path, users: int,
                 **changes: Any) -> Settings:
    defaults: dict[str, Any] = {"verify_delays": (timedelta(seconds=0.2),)}
    return sandbox_settings(url, tenant, folder / "state.db", sweep_restricted_users=False,
                            http_timeout=HTTP_TIMEOUT, max_remediations_per_hour=10 * users,
                            worker_concurrency=CONCURRENCY, **{**defaults, **changes})


async def remediate_alerted(settings: Settings) -> list[Case]:
    """Poll the alerts until one poll queues them all, work until idle; the cases."""
    app = bootstrap(settings)
    try:
        for _ in range(POLLS):
            report = await app.intake.poll()
            if not report.errors:
                break
        assert not report.errors, report.errors
        await app.worker(poll_interval=0.02, retry_backoff=0.05).run(until_idle=True)
        return await app.journal.list_cases()
    finally:
        await app.aclose()


async def test_users_through_throttling_outages_and_late_answers(
        chaos: Chaos, compressed_call_backoff: None) -> None:
    tenant, alerts, users = chaos.tenant, chaos.alerts, len(chaos.alerts)
    cases = await remediate_alerted(chaos.settings)

    tally = Tally.of(cases, tenant)
    assert tally.faults[429] > 0 and tally.faults[503] > 0 and tally.faults[499] > 0, tally
    # Every case final; nothing lost: each alert's request is on a case, its id too.
    unfinished = [(case.user, case.state.value, story(case)) for case in cases
                  if not case.state.is_final]
    assert unfinished == [], tally
    carried = {request_id for case in cases for request_id in case.request_ids}
    assert {alert_request_id(str(raw["id"])) for raw in alerts} <= carried, tally
    on_cases = {alert_id for case in cases for alert_id in case.alert_ids}
    assert {str(raw["id"]) for raw in alerts} <= on_cases, tally
    # The work got done: every user secured and unblocked, every case verified.
    assert tally.states == {"verified": users}, (tally, [case.reason for case in cases][:3])
    assert tenant.blocked_addresses() == [], tally
    assert min(resets(tenant).values()) >= 1, tally
    # Never two unblocks: Exchange lifted each block once, and carried out at most one
    # request to lift it.
    assert max(applied_unblocks(tenant).values()) == 1, tally
    assert max(unblock_calls(tenant).values()) == 1, tally
    assert [(case.user, repeated_done_steps(case)) for case in cases
            if repeated_done_steps(case)] == [], tally
    # No reset the journal does not show an attempt for: {user: (resets, attempts)}.
    attempts = reset_attempts(cases)
    unexplained = {user: (count, attempts[user]) for user, count in resets(tenant).items()
                   if count > attempts[user]}
    assert unexplained == {}, tally


async def test_a_reset_applied_and_answered_late_is_an_attempt_on_record(
        tmp_path: Path, compressed_call_backoff: None) -> None:
    """The chaos run's 1% of late answers, on the one call where it matters: Graph sets the
    password, and answers after the client gave up. Whatever the product then does, each
    password the tenant set must be an attempt the journal shows (``reset_password``
    started), so an auditor can tell how many times the account was reset."""
    tenant, _ = blocked_tenant(1)
    user = tenant.user(address(0))
    tenant.add_fault(Fault(delay_after=(HTTP_TIMEOUT * 2).total_seconds(), method="PATCH",
                           path=rf"^/v1\.0/users/{user.id}$"))
    server = SandboxServer(tenant)
    url = server.start_in_thread()
    try:
        cases = await remediate_alerted(settings_for(url, tenant, tmp_path, 1))
    finally:
        server.stop_thread()

    [case] = cases
    assert case.state.value == "verified", story(case)
    assert next(r.status for r in tenant.requests() if r.method == "PATCH") == 499
    # (resets the tenant made, reset attempts the journal shows)
    assert (len(user.password_changes), reset_attempts(cases)[case.user]) in ((1, 1), (2, 2))


async def test_an_unblock_applied_and_answered_late_is_not_sent_again(
        tmp_path: Path, compressed_call_backoff: None) -> None:
    """The late answer on the unblock: Exchange removes the block and answers after the
    client gave up, and (as it does, the demo's lee.gu) still lists the removed block for a
    couple of reads. Exchange must hear one Remove-BlockedSenderAddress it carries out."""
    tenant, _ = blocked_tenant(1, BlockBehaviour(linger_reads=2))
    tenant.add_fault(Fault(delay_after=(HTTP_TIMEOUT * 2).total_seconds(),
                           cmdlet=UNBLOCK_CMDLET))
    server = SandboxServer(tenant)
    url = server.start_in_thread()
    try:
        cases = await remediate_alerted(settings_for(
            url, tenant, tmp_path, 1, verify_delays=(timedelta(seconds=0.2),
                                                     timedelta(seconds=0.4),
                                                     timedelta(seconds=0.6))))
    finally:
        server.stop_thread()

    [case] = cases
    assert next(r.status for r in tenant.requests() if r.cmdlet == UNBLOCK_CMDLET) == 499
    assert case.state.value == "verified", story(case)
    # {address: Remove-BlockedSenderAddress calls Exchange carried out}
    assert unblock_calls(tenant) == {address(0): 1}
