"""Every case reaches a final state (issue 14, point 1): against the sandbox over HTTP, a
transient failure at any point leaves a case that a message, a retry or the sweeper moves on.
"""

import uuid
from pathlib import Path
from typing import Any

import pytest

from remediation.bootstrap import Application, bootstrap
from remediation.domain.cases import Case, CaseState
from remediation.domain.errors import TransientError
from remediation.domain.requests import RemediationRequest
from remediation.entrypoints.runner import run_worker
from remediation.sandbox import SandboxTenant
from remediation.sandbox.faults import Fault
from remediation.service.messages import Approval
from tests.conftest import sandbox_settings

LYNNE, LYNNE_ALIAS = "lynne.robbins@contoso.com", "l.robbins@contoso.com"
# Graph's password reset: PATCH /users/{id} with a passwordProfile.
def reset_fails_once() -> Fault:
    return Fault(status=503, method="PATCH", path=r"^/v1\.0/users/[^/]+$", times=1)


def app_for(url: str, tenant: SandboxTenant, db: Path, **changes: Any) -> Application:
    return bootstrap(sandbox_settings(url, tenant, db, sweep_restricted_users=False,
                                      http_max_retries=0, **changes))


async def run(app: Application) -> None:
    await app.worker(poll_interval=0.05, retry_backoff=0.05).run(until_idle=True)


async def only_case(app: Application) -> Case:
    [case] = await app.journal.list_cases()
    return case


async def test_a_reset_failing_after_the_approval_is_retried_to_the_end(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    """Stuck for ever: the retry of the approval found the case no longer waiting."""
    app = app_for(sandbox_url, tenant, tmp_path / "db", mode="approve")
    await app.requests.send(RemediationRequest(user=LYNNE, source="alert",
                                               request_id=uuid.uuid4().hex))
    await run(app)
    waiting = await only_case(app)
    assert waiting.state is CaseState.AWAITING_APPROVAL

    tenant.add_fault(reset_fails_once())
    await app.requests.send_approval(Approval(waiting.case_id, LYNNE, "security lead"))
    await run(app)
    case = await only_case(app)
    await app.aclose()

    assert [s.name for s in case.steps if s.name == "retry"] == ["retry"]
    assert case.state is CaseState.VERIFIED, (case.state, [(s.name, s.detail)
                                                           for s in case.steps])
    assert len(tenant.user(LYNNE).password_changes) == 1


async def test_run_until_idle_resumes_a_case_whose_retry_was_lost(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    """A worker died after the reset failed and before any retry was scheduled: nothing on
    the queue will move the case. A new process on the same database (``run --until-idle``)
    finds it through the sweeper and takes it to the end, resetting once."""
    settings = sandbox_settings(sandbox_url, tenant, tmp_path / "db",
                                sweep_restricted_users=False, http_max_retries=0)
    app = bootstrap(settings)
    tenant.add_fault(reset_fails_once())
    with pytest.raises(TransientError):
        await app.workflow.remediate(RemediationRequest(user=LYNNE,
                                                        request_id=uuid.uuid4().hex))
    assert (await only_case(app)).state is CaseState.IN_PROGRESS
    await app.aclose()

    status = await run_worker(settings, until_idle=True)

    app = bootstrap(settings)
    case = await only_case(app)
    await app.aclose()
    assert status == 0
    assert case.state is CaseState.VERIFIED, [(s.name, s.detail) for s in case.steps]
    assert [s.name for s in case.steps].count("resume_queued") == 1
    assert len(tenant.user(LYNNE).password_changes) == 1


@pytest.mark.parametrize(("named", "force"), [(LYNNE_ALIAS, False), (LYNNE, False),
                                               (LYNNE_ALIAS, True), (LYNNE, True)])
async def test_the_retry_of_a_manual_request_that_approved_a_case_finishes_it(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path, named: str,
        force: bool) -> None:
    """Reproduced (hostile tester). Approve mode: a manual request naming an alias merges
    into the account's waiting case (its own case ends ``skipped``, merged) and is that
    case's approval; the reset then meets a transient failure, and the handler schedules a
    retry of the *request*. The retry found the request's own case merged and ran nothing:
    the approved case stayed in progress with the attacker's password, with no message that
    would move it (only the sweeper, 24 minutes on). A retry resumes the case the request
    works, whatever message carried it; the same for a request naming the address the case
    took (merged with no case of its own), and for a ``--force`` request, which is the
    waiting case's approval too."""
    tenant.user(LYNNE).proxy_addresses.append(f"smtp:{LYNNE_ALIAS}")
    app = bootstrap(sandbox_settings(sandbox_url, tenant, tmp_path / "db", mode="approve",
                                     sweep_restricted_users=False, http_max_retries=0))
    try:
        await app.requests.send(RemediationRequest(user=LYNNE, source="alert",
                                                   request_id=uuid.uuid4().hex))
        await run(app)
        [waiting] = await app.journal.list_cases()
        assert waiting.state is CaseState.AWAITING_APPROVAL

        tenant.add_fault(Fault(status=503, method="PATCH", path=r"^/v1\.0/users/[^/]+$",
                               times=1))
        await app.requests.send(RemediationRequest(user=named, requested_by="helpdesk",
                                                   force=force, request_id=uuid.uuid4().hex))
        await run(app)  # the worker alone, every retry delivered; no sweep

        case = await app.journal.get_case(waiting.case_id)
        assert case is not None
        assert case.state is CaseState.AWAITING_VERIFICATION or case.state.is_final, (
            case.state, [(step.name, step.detail) for step in case.steps][-6:])
        assert len(tenant.user(LYNNE).password_changes) == 1
        # The retry is journaled on the case it resumed, not on the request's merged record.
        assert any(step.name == "retry" for step in case.steps), [s.name for s in case.steps]
    finally:
        await app.aclose()


async def test_a_manual_request_by_alias_that_approved_a_case_gives_that_case_up(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    """The same when the reset fails until the last attempt: the request's last attempt
    escalates the case it approved (``gave_up``), never only its own merged record."""
    tenant.user(LYNNE).proxy_addresses.append(f"smtp:{LYNNE_ALIAS}")
    app = bootstrap(sandbox_settings(sandbox_url, tenant, tmp_path / "db", mode="approve",
                                     sweep_restricted_users=False, http_max_retries=0,
                                     max_delivery_count=2))
    try:
        await app.requests.send(RemediationRequest(user=LYNNE, source="alert",
                                                   request_id=uuid.uuid4().hex))
        await run(app)
        [waiting] = await app.journal.list_cases()

        tenant.add_fault(Fault(status=503, method="PATCH", path=r"^/v1\.0/users/[^/]+$",
                               times=None))
        await app.requests.send(RemediationRequest(user=LYNNE_ALIAS, requested_by="helpdesk",
                                                   request_id=uuid.uuid4().hex))
        await run(app)

        case = await app.journal.get_case(waiting.case_id)
        assert case is not None
        assert case.state is CaseState.ESCALATED, (
            case.state, [(step.name, step.detail) for step in case.steps][-4:])
        assert case.reason is not None and case.reason.startswith(
            "remediation gave up after 2 deliveries"), case.reason
    finally:
        tenant.clear_faults()
        await app.aclose()
