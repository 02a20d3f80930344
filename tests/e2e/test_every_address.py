"""Every address of the account, every time (issue 14, point 2), over HTTP against the
sandbox tenant: verification and episode placement read the account's addresses as the
directory has them at that moment, so a block under an alias the case never listed is a
re-block, never a merged duplicate or a ``verified``."""

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from remediation.bootstrap import Application, bootstrap
from remediation.domain.cases import Case, CaseState
from remediation.sandbox import SandboxTenant
from tests.conftest import sandbox_settings

ADELE = "adele.vance@contoso.com"
ADELE_ALIAS = "adele.sales@contoso.com"


def only_adele_blocked(tenant: SandboxTenant) -> None:
    """The demo tenant lists many accounts: the sweep sees only Adele's block here."""
    for address in tenant.blocked_addresses():
        if address != ADELE:
            tenant.remove_block(address, None)
    tenant.removals.clear()


def app_sweeping(url: str, tenant: SandboxTenant, db: Path) -> Application:
    # The first check comes late enough for the alias to be blocked before it.
    delays = (timedelta(seconds=2), timedelta(seconds=3), timedelta(seconds=4))
    return bootstrap(sandbox_settings(url, tenant, db, sweep_restricted_users=True,
                                      verify_delays=delays))


async def run_for(app: Application, seconds: float) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(seconds, stop.set)
    await app.worker(poll_interval=0.02, retry_backoff=0.05).run(until_idle=False, stop=stop)


def acting(cases: list[Case]) -> list[Case]:
    return [case for case in cases if case.state is not CaseState.SKIPPED]


@pytest.mark.parametrize("sweep_again", [True, False], ids=["swept", "verified-only"])
async def test_a_reblock_under_an_alias_added_after_planning_is_never_verified(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path, sweep_again: bool) -> None:
    """Reproduced: verification read only the address listed when the case planned, and the
    sweep's request for the alias merged into the verifying case as a duplicate: the case
    said ``verified`` while the attacker's mailbox was blocked again under the alias."""
    only_adele_blocked(tenant)
    app = app_sweeping(sandbox_url, tenant, tmp_path / "state.db")
    adele = tenant.user(ADELE)
    try:
        await app.intake.poll()
        await run_for(app, 1.0)
        cases = await app.journal.list_cases()
        [waiting] = [c for c in acting(cases) if c.user == ADELE]
        assert waiting.state is CaseState.AWAITING_VERIFICATION
        assert waiting.listed_addresses == (ADELE,)

        # After the unblock the account gains an alias and spams from it: blocked again.
        adele.proxy_addresses.append(f"smtp:{ADELE_ALIAS}")
        tenant.block(ADELE_ALIAS)
        if sweep_again:
            report = await app.intake.poll()
            assert ADELE_ALIAS in report.swept
        await app.worker(poll_interval=0.02, retry_backoff=0.05).run(until_idle=True)

        cases = await app.journal.list_cases()
        [case] = [c for c in acting(cases) if c.case_id == waiting.case_id]
        assert case.state is CaseState.ESCALATED, (case.state, case.reason)
        assert case.reason is not None and "re-blocked" in case.reason
        assert ADELE_ALIAS in case.reason
        # Never a second reset or unblock without a person.
        assert len(adele.password_changes) == 1
        assert tenant.removals == [(ADELE, None)]
        assert ADELE_ALIAS in tenant.blocked_addresses()
        for other in cases:  # the sweep's request never reads as a duplicate
            assert not any(step.name == "merged" and "duplicate" in step.detail
                           for step in other.steps), [s.detail for s in other.steps]
    finally:
        await app.aclose()
