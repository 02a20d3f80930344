"""Hostile tester, issue 14: forged messages and odd timing against the sandbox over HTTP."""

import uuid
from pathlib import Path

import pytest

from remediation.bootstrap import Application, bootstrap
from remediation.domain.cases import CaseState
from remediation.domain.requests import RemediationRequest
from remediation.sandbox import SandboxTenant
from remediation.sandbox.faults import Fault
from tests.conftest import sandbox_settings
from tests.e2e.test_confirmed_evidence import (
    ADELE,
    SLOW,
    app_for,
    made_up,
    run_for,
    send_raw,
)

LYNNE, LYNNE_ALIAS = "lynne.robbins@contoso.com", "l.robbins@contoso.com"


async def drain(app: Application) -> None:
    await app.worker(poll_interval=0.02, retry_backoff=0.05).run(until_idle=True)


async def test_a_made_up_alert_id_read_while_graph_throttles_does_not_escalate(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    """A queue message naming an id nobody confirmed, worked while Graph's alerts API
    throttles (as a flood of such messages makes it do): the unread id counts as new
    evidence at an unknown time, and the verifying case goes to a human at once. Microsoft
    confirmed nothing; the read is not retried; the case ends on a made-up id."""
    app = app_for(sandbox_url, tenant, tmp_path / "state.db", verify_delays=SLOW,
                  http_max_retries=0)
    try:
        await send_raw(app, {"user": ADELE})
        await run_for(app, 1.5)
        [waiting] = await app.journal.list_cases()
        assert waiting.state is CaseState.AWAITING_VERIFICATION

        tenant.add_fault(Fault(status=429, method="GET", retry_after=1,
                               path=r"^/v1\.0/security/alerts_v2/.+", times=None,
                               code="TooManyRequests"))
        forged = made_up()
        await send_raw(app, {"user": ADELE, "alert_ids": [forged]})
        await run_for(app, 1.5)
        tenant.clear_faults()  # Graph answers again: the alert update reads the id back
        await run_for(app, 2.5)

        case = await app.journal.get_case(waiting.case_id)
        assert case is not None
        ignored = [step.detail for step in case.steps if step.name == "alert_ignored"]
        assert case.state is CaseState.AWAITING_VERIFICATION, (case.reason, ignored)
    finally:
        await app.aclose()


@pytest.mark.parametrize(("named", "force"), [(LYNNE_ALIAS, False), (LYNNE, False),
                                               (LYNNE_ALIAS, True), (LYNNE, True)])
async def test_the_retry_of_a_manual_request_by_alias_that_approved_a_case_finishes_it(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path, named: str,
        force: bool) -> None:
    """Approve mode: a manual request naming an alias merges into the account's waiting case
    (its own case ends ``skipped``, merged) and is that case's approval; the reset then meets
    a transient failure, and the handler schedules a retry of the *request*. The retry finds
    the request's own case merged and runs nothing: the approved case stays in progress with
    the attacker's password, with no message that will move it (only the sweeper, 24 minutes
    on; the README says a retry resumes the case whatever message carried it). The same
    holds for a request naming the address the case took (merged with no case of its own),
    and for a ``--force`` request, which is the waiting case's approval too."""
    tenant.user(LYNNE).proxy_addresses.append(f"smtp:{LYNNE_ALIAS}")
    app = bootstrap(sandbox_settings(sandbox_url, tenant, tmp_path / "db", mode="approve",
                                     sweep_restricted_users=False, http_max_retries=0))
    try:
        await app.requests.send(RemediationRequest(user=LYNNE, source="alert",
                                                   request_id=uuid.uuid4().hex))
        await drain(app)
        [waiting] = await app.journal.list_cases()
        assert waiting.state is CaseState.AWAITING_APPROVAL

        tenant.add_fault(Fault(status=503, method="PATCH", path=r"^/v1\.0/users/[^/]+$",
                               times=1))
        await app.requests.send(RemediationRequest(user=named, requested_by="helpdesk",
                                                   force=force, request_id=uuid.uuid4().hex))
        await drain(app)  # the worker alone, every retry delivered; no sweep

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
        await drain(app)
        [waiting] = await app.journal.list_cases()

        tenant.add_fault(Fault(status=503, method="PATCH", path=r"^/v1\.0/users/[^/]+$",
                               times=None))
        await app.requests.send(RemediationRequest(user=LYNNE_ALIAS, requested_by="helpdesk",
                                                   request_id=uuid.uuid4().hex))
        await drain(app)

        case = await app.journal.get_case(waiting.case_id)
        assert case is not None
        assert case.state is CaseState.ESCALATED, (
            case.state, [(step.name, step.detail) for step in case.steps][-4:])
        assert case.reason is not None and case.reason.startswith(
            "remediation gave up after 2 deliveries"), case.reason
    finally:
        tenant.clear_faults()
        await app.aclose()
