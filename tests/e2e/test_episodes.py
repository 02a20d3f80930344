"""One person, one case; new alerts are new evidence (issue 10, points 1 and 2).

Whole cases over HTTP against the sandbox tenant: two workers (separate application objects
sharing one journal) racing for one person named two ways, and Defender alerts arriving after
a case acted.
"""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from remediation.adapters.table_journal import build_table_journal
from remediation.bootstrap import Application, bootstrap
from remediation.domain.cases import Case, CaseState
from remediation.domain.directory import DirectoryUser
from remediation.domain.requests import RemediationRequest
from remediation.sandbox import SandboxTenant
from remediation.sandbox.alert_seed import RESTRICTED, SUSPICIOUS, alert, mailbox_evidence
from remediation.sandbox.clock import utc_now
from remediation.service.ports import Journal
from tests.conftest import sandbox_settings

ADELE = "adele.vance@contoso.com"
RESOLVED = ("resolved", "truePositive")

OpenJournal = Callable[[], Journal | None]


@pytest.fixture(params=["sqlite", "table"])
async def shared_journal(request: pytest.FixtureRequest) -> AsyncIterator[OpenJournal]:
    """How each worker opens the journal they share: the SQLite file of the settings (None),
    or one table on Azurite."""
    if request.param == "sqlite":
        yield lambda: None
        return
    connection_string = request.getfixturevalue("azurite_table_connection_string")
    table_name = f"journal{uuid.uuid4().hex}"
    opened: list[Any] = []

    def opener() -> Journal:
        journal = build_table_journal(endpoint=None, connection_string=connection_string,
                                      table_name=table_name)
        opened.append(journal)
        return journal

    yield opener
    for journal in opened:
        await journal.close()


def two_workers(url: str, tenant: SandboxTenant, db: Path,
                open_journal: OpenJournal) -> list[Application]:
    return [bootstrap(sandbox_settings(url, tenant, db, sweep_restricted_users=False),
                      journal=open_journal()) for _ in range(2)]


async def drain(*apps: Application) -> None:
    await asyncio.gather(*(app.worker(poll_interval=0.02, retry_backoff=0.05)
                           .run(until_idle=True) for app in apps))


@pytest.fixture
def lookups_meet(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first two directory lookups answer together: the two workers then reach the
    journal at the same moment, every run (by chance it happens now and then)."""
    from remediation.adapters.graph_directory import GraphDirectory

    find_user = GraphDirectory.find_user
    arrived: list[str] = []
    both = asyncio.Event()

    async def meet(self: GraphDirectory, user: str) -> DirectoryUser:
        found = await find_user(self, user)
        if len(arrived) < 2:
            arrived.append(user)
            if len(arrived) == 2:
                both.set()
            with contextlib.suppress(TimeoutError):  # a lone lookup goes on after a while
                async with asyncio.timeout(2.0):
                    await both.wait()
        return found

    monkeypatch.setattr(GraphDirectory, "find_user", meet)


@pytest.mark.parametrize("run", range(3))  # each run: the two lookups meet (lookups_meet)
async def test_one_person_named_two_ways_at_once_gets_one_case_and_one_reset(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path,
        shared_journal: OpenJournal, lookups_meet: None, run: int) -> None:
    """The object id and the address arrive in different sessions, so nothing but the journal
    keeps two workers from securing the same account at the same moment."""
    tenant.latency = 0.05
    adele = tenant.user(ADELE)
    apps = two_workers(sandbox_url, tenant, tmp_path / "state.db", shared_journal)
    try:
        first, second = (RemediationRequest(user=name, request_id=uuid.uuid4().hex)
                         for name in (ADELE, adele.id))
        await apps[0].requests.send(first)
        await apps[1].requests.send(second)
        # Each worker takes one message (two sessions), at the same time.
        await drain(*apps)

        cases = await apps[0].journal.list_cases()
        acting = [case for case in cases if case.state is not CaseState.SKIPPED]
        assert [case.state for case in acting] == [CaseState.VERIFIED], _show(cases)
        [case] = acting
        assert case.user == ADELE
        assert case.user_id == adele.id
        assert {first.request_id, second.request_id} <= set(case.request_ids)
        for other in cases:
            if other is not case:  # the loser of the race, pointing at the winner
                assert other.reason == f"merged into case {case.case_id}", _show(cases)
        assert len(adele.password_changes) == 1
        assert tenant.removals == [(ADELE, None)]
        assert adele.sessions_revoked == 1
    finally:
        for app in apps:
            await app.aclose()


async def test_an_alert_created_after_the_case_was_verified_is_new_evidence(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    """Reproduced: the second alert merged into the verified case, and Defender got "done.
    Password reset..." and resolved / truePositive although nothing was done for it."""
    app = bootstrap(sandbox_settings(sandbox_url, tenant, tmp_path / "state.db",
                                     sweep_restricted_users=False))
    adele = tenant.user(ADELE)
    try:
        first = alert(RESTRICTED, [mailbox_evidence(ADELE)])
        tenant.add_alert(first)
        await app.intake.poll()
        await drain(app)
        [verified] = await app.journal.list_cases()
        assert verified.state is CaseState.VERIFIED
        assert _resolution(tenant, first["id"]) == RESOLVED

        # The attacker still holds a way in: a new alert, created after the case ended.
        later = alert(SUSPICIOUS, [mailbox_evidence(ADELE)], created=utc_now())
        tenant.add_alert(later)
        await app.intake.poll()
        await drain(app)

        old = await _case(app, verified.case_id)
        assert old.alert_ids == (first["id"],), "new evidence never joins a finished case"
        assert not [c for c in tenant.alert(later["id"])["comments"]
                    if verified.case_id in c["comment"]]
        [new] = [case for case in await app.journal.list_cases()
                 if case.case_id != verified.case_id]
        assert new.alert_ids == (later["id"],)
        assert new.state is CaseState.VERIFIED
        assert len(adele.password_changes) == 2, "secured again"
        assert adele.sessions_revoked == 2
        # What Defender was told about the new alert is the new case's own work.
        [done] = [c["comment"] for c in tenant.alert(later["id"])["comments"]
                  if "done." in c["comment"]]
        assert new.case_id in done
    finally:
        await app.aclose()


async def test_an_alert_created_after_the_unblock_escalates_the_open_case(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    """The block was lifted and the case waits for its checks; a new alert says the account
    is still sending. It is not merged as if the earlier work had answered it: the case goes
    to a human with the reason, and the alert is never resolved."""
    slow = (timedelta(seconds=30), timedelta(seconds=60), timedelta(seconds=90))
    app = bootstrap(sandbox_settings(sandbox_url, tenant, tmp_path / "state.db",
                                     sweep_restricted_users=False, verify_delays=slow))
    try:
        first = alert(RESTRICTED, [mailbox_evidence(ADELE)])
        tenant.add_alert(first)
        await app.intake.poll()
        await app.worker(poll_interval=0.02).run(until_idle=False, stop=_after(2.0))
        [waiting] = await app.journal.list_cases()
        assert waiting.state is CaseState.AWAITING_VERIFICATION
        assert waiting.unblocked_at is not None

        later = alert(SUSPICIOUS, [mailbox_evidence(ADELE)], created=utc_now())
        tenant.add_alert(later)
        await app.intake.poll()
        await app.worker(poll_interval=0.02).run(until_idle=False, stop=_after(2.0))

        [case] = await app.journal.list_cases()
        assert case.state is CaseState.ESCALATED
        assert case.reason is not None
        assert "after the unblock" in case.reason
        assert later["id"] in case.reason
        assert len(tenant.user(ADELE).password_changes) == 1
        for alert_id in (first["id"], later["id"]):
            assert _resolution(tenant, alert_id)[0] != "resolved"
    finally:
        await app.aclose()


def _after(seconds: float) -> asyncio.Event:
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(seconds, stop.set)
    return stop


def _resolution(tenant: SandboxTenant, alert_id: str) -> tuple[Any, Any]:
    raw = tenant.alert(alert_id)
    return raw["status"], raw["classification"]


async def _case(app: Application, case_id: str) -> Case:
    case = await app.journal.get_case(case_id)
    assert case is not None
    return case


def _show(cases: list[Case]) -> str:
    return "; ".join(f"{c.case_id} {c.user} {c.state.value} {c.reason}" for c in cases)

