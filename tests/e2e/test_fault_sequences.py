"""The invariant of issue 14, point 1, after every fault sequence: a transient failure at each
step (lookup, guardrails reads, reset, revoke, rules, forwarding, unblock, alert comment,
verification read), in each mode, retried by scheduled copies, or left with no message at
all by a worker that died (then a new process on the same database takes over): every case
ends final, or waits for a person's approval. Against the sandbox over HTTP, with delays
compressed to fractions of a second.
"""

import contextlib
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from remediation.bootstrap import Application, bootstrap
from remediation.config import Settings
from remediation.domain.cases import CaseState
from remediation.domain.errors import RemediationError
from remediation.domain.requests import RemediationRequest
from remediation.entrypoints.runner import run_worker
from remediation.sandbox import SandboxTenant
from remediation.sandbox.alert_seed import RESTRICTED, alert, mailbox_evidence
from remediation.sandbox.faults import Fault
from remediation.service.messages import Approval
from tests.conftest import sandbox_settings

LYNNE = "lynne.robbins@contoso.com"
USER = r"^/v1\.0/users/[^/]+"
STEPS: dict[str, dict[str, Any]] = {
    "lookup": {"method": "GET", "path": USER + "$"},
    "guardrails: memberships": {"path": r"/transitiveMemberOf$"},
    "guardrails: domains": {"path": r"^/v1\.0/domains"},
    "reset": {"method": "PATCH", "path": USER + "$"},
    "revoke": {"path": r"/revokeSignInSessions$"},
    "inbox rules": {"method": "GET", "path": r"/messageRules$"},
    "forwarding": {"cmdlet": "Get-Mailbox"},
    "unblock": {"cmdlet": "Remove-BlockedSenderAddress"},
    "alert comment": {"method": "POST", "path": r"/comments$"},
    # The plan and the unblock read the list first; the third read is the first check's.
    "verification read": {"cmdlet": "Get-BlockedSenderAddress", "after": 2},
}
MODES = ("enforce", "approve", "dry-run")


def settings_for(url: str, tenant: SandboxTenant, db: Path, mode: str) -> Settings:
    return sandbox_settings(url, tenant, db, mode=mode, sweep_restricted_users=False,
                            http_max_retries=0,
                            verify_delays=(timedelta(seconds=0.1), timedelta(seconds=0.2)))


async def work(app: Application) -> None:
    await app.worker(poll_interval=0.02, retry_backoff=0.02).run(until_idle=True)


async def approve_waiting(app: Application) -> None:
    for case in await app.journal.list_cases(states={CaseState.AWAITING_APPROVAL}):
        await app.requests.send_approval(Approval(case.case_id, case.user, "security lead"))


async def assert_every_case_moves(settings: Settings, *, approved: bool) -> None:
    """Every case is final; before approval, a case may also wait for a person."""
    app = bootstrap(settings)
    try:
        cases = await app.journal.list_cases()
    finally:
        await app.aclose()
    allowed = {CaseState.AWAITING_APPROVAL} if not approved else set()
    assert cases
    for case in cases:
        assert case.state.is_final or case.state in allowed, (
            case.state, [(s.name, s.status.value, s.detail) for s in case.steps])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("step", sorted(STEPS))
async def test_a_transient_failure_at_any_step_never_leaves_a_case_stuck(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path, step: str,
        mode: str) -> None:
    raw = alert(RESTRICTED, [mailbox_evidence(LYNNE)])
    tenant.add_alert(raw)
    settings = settings_for(sandbox_url, tenant, tmp_path / "db", mode)
    # Twice: the first delivery fails, and so does its first retry copy (a redelivery).
    fault = Fault(status=503, times=2, **STEPS[step])
    tenant.add_fault(fault)
    app = bootstrap(settings)
    try:
        await app.requests.send(RemediationRequest(
            user=LYNNE, source="alert", alert_ids=(raw["id"],), request_id=uuid.uuid4().hex))
        await work(app)
        await assert_every_case_moves(settings, approved=False)
        await approve_waiting(app)
        await work(app)
    finally:
        await app.aclose()
    await assert_every_case_moves(settings, approved=True)
    assert len(tenant.user(LYNNE).password_changes) == (0 if mode == "dry-run" else 1)
    assert fault.exhausted() or mode == "dry-run", "the step never failed"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("step", ["lookup", "reset", "unblock", "verification read"])
async def test_a_worker_that_died_mid_case_is_replaced_by_a_new_process(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path, step: str,
        mode: str) -> None:
    """The failure ends the first worker (no retry is scheduled: it died); ``run
    --until-idle`` on the same database, a new application, takes every case on."""
    settings = settings_for(sandbox_url, tenant, tmp_path / "db", mode)
    fault = Fault(status=503, times=1, **STEPS[step])
    tenant.add_fault(fault)
    app = bootstrap(settings)
    try:
        request = RemediationRequest(user=LYNNE, request_id=uuid.uuid4().hex)
        with contextlib.suppress(RemediationError):  # the worker died: nothing queued
            await app.workflow.remediate(request)
        await approve_waiting(app)
    finally:
        await app.aclose()

    status = await run_worker(settings, until_idle=True)

    await assert_every_case_moves(settings, approved=True)
    assert status == 0
    assert len(tenant.user(LYNNE).password_changes) == (0 if mode == "dry-run" else 1)
    assert fault.exhausted() or mode == "dry-run", "the step never failed"
