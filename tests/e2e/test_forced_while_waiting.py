"""A manual request with ``--force`` for an account whose case waits for approval (approve
mode): it is that case's approval, journaled as forced by its requester; never a second case
that resets the account again when the older one is approved later, never a case left
waiting that nothing will move (issue 14, point 1). Against the sandbox over HTTP."""

import uuid
from pathlib import Path
from typing import Any

import pytest

from remediation.bootstrap import Application, bootstrap
from remediation.config import Settings
from remediation.domain.cases import Case, CaseState
from remediation.domain.requests import RemediationRequest
from remediation.entrypoints.cli import _send_approval
from remediation.sandbox import SandboxTenant
from tests.conftest import sandbox_settings

LYNNE = "lynne.robbins@contoso.com"
ALIAS = "l.robbins@contoso.com"


def settings_for(url: str, tenant: SandboxTenant, db: Path, **changes: Any) -> Settings:
    return sandbox_settings(url, tenant, db, sweep_restricted_users=False, mode="approve",
                            **changes)


async def run(app: Application) -> list[Case]:
    await app.worker(poll_interval=0.05, retry_backoff=0.05).run(until_idle=True)
    return await app.journal.list_cases()


async def waiting_case(app: Application) -> Case:
    await app.requests.send(RemediationRequest(user=LYNNE, source="alert",
                                               request_id=uuid.uuid4().hex))
    [case] = await run(app)
    assert case.state is CaseState.AWAITING_APPROVAL
    return case


def show(cases: list[Case]) -> list[tuple[str, str, str | None]]:
    return [(case.case_id, case.state.value, case.reason) for case in cases]


@pytest.mark.parametrize(("breaker", "named"), [(20, LYNNE), (0, LYNNE), (20, ALIAS)])
async def test_a_forced_request_while_the_case_waits_is_its_approval_and_resets_once(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], breaker: int, named: str) -> None:
    """Named by the address the case took, or by an alias only the directory knows (then the
    request's own case finds the waiting one through the account's episode)."""
    tenant.user(LYNNE).proxy_addresses.append(f"smtp:{ALIAS}")
    settings = settings_for(sandbox_url, tenant, tmp_path / "db",
                            max_remediations_per_hour=breaker)
    app = bootstrap(settings)
    waiting = await waiting_case(app)

    await app.requests.send(RemediationRequest(user=named, force=True, requested_by="helpdesk",
                                               request_id=uuid.uuid4().hex))
    cases = await run(app)
    await app.aclose()

    # The forced request went into the waiting case as its approval: one acting case,
    # verified; the request's own record (if any) points at it.
    acting = [case for case in cases if case.state is not CaseState.SKIPPED]
    assert [case.case_id for case in acting] == [waiting.case_id], show(cases)
    [case] = acting
    merged = [c.reason for c in cases if c.state is CaseState.SKIPPED]
    assert merged == ([f"merged into case {waiting.case_id}"] if named == ALIAS else []), merged
    assert case.state is CaseState.VERIFIED, [(s.name, s.detail) for s in case.steps]
    approved = next(step for step in case.steps if step.name == "approved")
    assert "forced" in approved.detail and "helpdesk" in approved.detail
    # A forced request passes the breaker, as anywhere else (and says so).
    breaker_step = case.done("circuit_breaker")
    assert breaker_step is not None
    assert "bypassed" in breaker_step.detail, breaker_step.detail
    assert len(tenant.user(LYNNE).password_changes) == 1

    # Approving the older case afterwards is refused with the reason: no second reset.
    capsys.readouterr()
    assert await _send_approval(settings, waiting.case_id, "security lead") == 0
    said = capsys.readouterr().out
    assert "already approved" in said and "nothing queued" in said, said
    app = bootstrap(settings)
    cases = await run(app)
    await app.aclose()
    assert len(tenant.user(LYNNE).password_changes) == 1
    assert not [c for c in cases if c.state is CaseState.AWAITING_APPROVAL], show(cases)
