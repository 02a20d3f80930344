"""Dry-run, then enforce (README, Before you switch it on): a block the dry-run sweep planned
is acted on by the first poll after the switch. Before, its request id (one per block) was on
record already, so the sweep never queued it again and the account stayed blocked until a
person queued it by hand."""

from pathlib import Path

from remediation.bootstrap import Application, bootstrap
from remediation.domain.cases import CaseState
from remediation.sandbox import SandboxTenant
from remediation.sandbox.seed import BREAK_GLASS_GROUP_ID
from tests.conftest import sandbox_settings
from tests.e2e.test_safety import ADELE


def app_for(url: str, tenant: SandboxTenant, db: Path, mode: str) -> Application:
    """The worker and its poll: the Restricted users sweep on, no alert matching."""
    return bootstrap(sandbox_settings(
        url, tenant, db, mode=mode, sweep_restricted_users=True,
        alert_titles=("no alert has this title",),
        protected_group_ids=frozenset({BREAK_GLASS_GROUP_ID})))


async def test_a_block_planned_in_dry_run_is_secured_after_the_switch_to_enforce(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    planning = app_for(sandbox_url, tenant, db, "dry-run")
    await planning.intake.poll()
    await planning.worker(poll_interval=0.02, retry_backoff=0.05).run(until_idle=True)
    planned = [c for c in await planning.journal.list_cases() if c.user == ADELE]
    assert [c.state for c in planned] == [CaseState.PLANNED]
    await planning.intake.poll()  # dry-run still: nothing new
    await planning.aclose()
    assert tenant.user(ADELE).password_changes == []

    acting = app_for(sandbox_url, tenant, db, "enforce")
    await acting.intake.poll()
    await acting.worker(poll_interval=0.02, retry_backoff=0.05).run(until_idle=True)
    await acting.intake.poll()  # and once secured, no second case
    await acting.worker(poll_interval=0.02, retry_backoff=0.05).run(until_idle=True)

    cases = [c for c in await acting.journal.list_cases() if c.user == ADELE]
    assert sorted(c.state.value for c in cases) == ["planned", "verified"], [
        (c.state.value, c.reason) for c in cases]
    assert len(tenant.user(ADELE).password_changes) == 1
    assert ADELE not in tenant.blocked_addresses()
    await acting.aclose()
