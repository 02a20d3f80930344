"""One person in one alert (issue 14, point 7), over HTTP against the sandbox tenant: the
names an alert's evidence gives are resolved through the directory before the alert is
called ambiguous, so one account under two names is one account, and every alert we claim
ends resolved or explicitly handed to a person."""

from pathlib import Path
from typing import Any

import pytest

from remediation.bootstrap import Application, bootstrap
from remediation.domain.cases import Case, CaseState
from remediation.sandbox import SandboxTenant, SandboxUser
from remediation.sandbox.alert_seed import RESTRICTED, alert, mailbox_evidence, user_evidence
from remediation.sandbox.faults import Fault
from remediation.service.intake import AMBIGUOUS_SENDER
from tests.conftest import sandbox_settings

PAT_UPN, PAT_MAIL = "pat.ortiz@contoso.onmicrosoft.com", "pat.ortiz@contoso.com"
ADELE = "adele.vance@contoso.com"


@pytest.fixture
def pat(tenant: SandboxTenant) -> SandboxUser:
    """An account whose UPN is not its mail address (a common tenant), blocked alone."""
    for address in tenant.blocked_addresses():
        tenant.remove_block(address, None)
    tenant.removals.clear()
    user = tenant.add_user(SandboxUser(PAT_UPN, "Pat Ortiz", mail=PAT_MAIL))
    tenant.block(PAT_MAIL)
    return user


def unmarked_user_evidence(upn: str) -> dict[str, Any]:
    """User evidence with no role: nothing marks it as the compromised account."""
    return {**user_evidence(upn), "roles": []}


def app_for(url: str, tenant: SandboxTenant, db: Path) -> Application:
    return bootstrap(sandbox_settings(url, tenant, db, sweep_restricted_users=True))


async def poll_and_drain(app: Application) -> list[Case]:
    await app.intake.poll()
    await app.worker(poll_interval=0.02, retry_backoff=0.05).run(until_idle=True)
    return [case for case in await app.journal.list_cases()
            if case.state is not CaseState.SKIPPED]


def show(cases: list[Case]) -> list[tuple[str, str, str | None]]:
    return [(c.user, c.state.value, c.reason) for c in cases]


async def test_one_account_named_by_mailbox_address_and_upn_is_one_case(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path, pat: SandboxUser) -> None:
    """Reproduced: the alert was escalated as "several accounts, nobody was touched" while
    the sweep reset and verified the same account; the alert stayed inProgress for ever."""
    raised = alert(RESTRICTED, [mailbox_evidence(PAT_MAIL), unmarked_user_evidence(PAT_UPN)])
    tenant.add_alert(raised)
    app = app_for(sandbox_url, tenant, tmp_path / "state.db")
    try:
        cases = [c for c in await poll_and_drain(app) if c.user in (PAT_MAIL, AMBIGUOUS_SENDER)]

        assert [c.state for c in cases] == [CaseState.VERIFIED], show(cases)
        [case] = cases
        assert case.user_id == pat.id
        assert case.alert_ids == (raised["id"],)
        assert len(pat.password_changes) == 1
        assert tenant.alert(raised["id"])["status"] == "resolved"
        assert not [c for c in await app.journal.list_cases() if c.user == AMBIGUOUS_SENDER]
    finally:
        await app.aclose()


async def test_two_accounts_in_one_alert_are_still_handed_to_a_person(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path, pat: SandboxUser) -> None:
    raised = alert(RESTRICTED, [mailbox_evidence(PAT_MAIL), unmarked_user_evidence(ADELE)])
    tenant.add_alert(raised)
    app = app_for(sandbox_url, tenant, tmp_path / "state.db")
    try:
        await poll_and_drain(app)
        [held] = [c for c in await app.journal.list_cases() if c.user == AMBIGUOUS_SENDER]
        assert held.state is CaseState.ESCALATED
        assert held.reason is not None and "names 2 different accounts" in held.reason
        assert not tenant.user(ADELE).password_changes
        comments = [c["comment"] for c in tenant.alert(raised["id"])["comments"]]
        assert any("needs a human" in comment for comment in comments), comments
    finally:
        await app.aclose()


async def test_a_directory_that_cannot_answer_never_loses_the_alert(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path, pat: SandboxUser) -> None:
    """Graph's users endpoint down while the names are resolved: the alert is handed to a
    person as before, never dropped."""
    raised = alert(RESTRICTED, [mailbox_evidence(PAT_MAIL), unmarked_user_evidence(PAT_UPN)])
    tenant.add_alert(raised)
    app = bootstrap(sandbox_settings(sandbox_url, tenant, tmp_path / "state.db",
                                     sweep_restricted_users=False))
    tenant.add_fault(Fault(status=503, method="GET", path=r"/users", times=None))
    try:
        await app.intake.poll()
        tenant.clear_faults()
        [held] = [c for c in await app.journal.list_cases() if c.user == AMBIGUOUS_SENDER]
        assert held.state is CaseState.ESCALATED
        assert raised["id"] in held.alert_ids
        assert held.reason is not None and "could not tell whether" in held.reason
        assert not pat.password_changes
    finally:
        tenant.clear_faults()
        await app.aclose()
