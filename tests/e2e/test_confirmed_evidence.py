"""Only what Microsoft confirms is evidence (issue 14, point 3), over HTTP against the sandbox
tenant: an alert id Graph answers "not found" for is journaled ``alert_ignored`` and changes
nothing else; only a read that failed makes the evidence's time unknown; a new episode says
what opened it."""

import asyncio
import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from remediation.adapters.queue_limits import session_id_for
from remediation.bootstrap import Application, bootstrap
from remediation.domain.cases import Case, CaseState
from remediation.sandbox import SandboxTenant
from remediation.sandbox.alert_seed import RESTRICTED, SUSPICIOUS, alert, mailbox_evidence
from remediation.sandbox.clock import utc_now
from remediation.sandbox.faults import Fault
from tests.conftest import sandbox_settings

ADELE = "adele.vance@contoso.com"
SLOW = (timedelta(seconds=30), timedelta(seconds=60), timedelta(seconds=90))


def app_for(url: str, tenant: SandboxTenant, db: Path, **changes: Any) -> Application:
    return bootstrap(sandbox_settings(url, tenant, db, sweep_restricted_users=False,
                                      **changes))


async def send_raw(app: Application, fields: dict[str, Any]) -> None:
    """A hand-written message on the requests queue, as anyone with send rights can write."""
    assert app.queue is not None
    await app.queue.send(app.settings.remediation_queue, json.dumps(fields),
                         message_id=uuid.uuid4().hex, session_id=session_id_for(ADELE))


async def run_for(app: Application, seconds: float) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(seconds, stop.set)
    await app.worker(poll_interval=0.02, retry_backoff=0.05).run(until_idle=False, stop=stop)


async def drain(app: Application) -> list[Case]:
    await app.worker(poll_interval=0.02, retry_backoff=0.05).run(until_idle=True)
    return [case for case in await app.journal.list_cases()
            if case.state is not CaseState.SKIPPED]


def made_up() -> str:
    return f"fa{uuid.uuid4().hex[:30]}"


def ignored(case: Case) -> dict[str, str]:
    return {step.data["alert_id"]: step.detail for step in case.steps
            if step.name == "alert_ignored"}


async def test_a_made_up_alert_id_never_escalates_a_verifying_case(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    """Reproduced: Graph's "not found" counted as new evidence at an unknown time, so a queue
    message naming a made-up id sent the verifying case to a human."""
    app = app_for(sandbox_url, tenant, tmp_path / "state.db", verify_delays=SLOW)
    try:
        await send_raw(app, {"user": ADELE})
        await run_for(app, 1.5)
        [waiting] = await app.journal.list_cases()
        assert waiting.state is CaseState.AWAITING_VERIFICATION

        forged = made_up()
        await send_raw(app, {"user": ADELE, "alert_ids": [forged]})
        await run_for(app, 1.5)

        [case] = [c for c in await app.journal.list_cases() if c.case_id == waiting.case_id]
        assert case.state is CaseState.AWAITING_VERIFICATION, case.reason
        assert "not found" in ignored(case)[forged]
        assert forged not in case.alert_ids
        assert len(tenant.user(ADELE).password_changes) == 1
    finally:
        await app.aclose()


async def test_a_made_up_alert_id_read_while_graph_throttles_does_not_escalate(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    """Reproduced (hostile tester): a queue message naming an id nobody confirmed, worked
    while Graph's alerts API throttles (as a flood of such messages makes it do), counted as
    new evidence at an unknown time and sent the verifying case to a human at once, though
    Microsoft confirmed nothing; the alert update then read the id back as not found. The
    read is retried instead, and once Graph answers "not found" nothing changes."""
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
        assert case.state is CaseState.AWAITING_VERIFICATION, (case.reason, ignored(case))
        assert "not found" in ignored(case)[forged]
        assert len(tenant.user(ADELE).password_changes) == 1
    finally:
        await app.aclose()


async def test_a_made_up_alert_id_never_resets_a_verified_account_again(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    """Reproduced: the made-up id opened the person's next episode and reset the verified
    account a second time, unforced."""
    app = app_for(sandbox_url, tenant, tmp_path / "state.db")
    try:
        await send_raw(app, {"user": ADELE})
        [verified] = await drain(app)
        assert verified.state is CaseState.VERIFIED

        forged = made_up()
        await send_raw(app, {"user": ADELE, "alert_ids": [forged]})
        cases = await drain(app)

        assert [c.case_id for c in cases] == [verified.case_id], [
            (c.case_id, c.state, c.reason) for c in cases]
        [case] = cases
        assert case.state is CaseState.VERIFIED
        assert "not found" in ignored(case)[forged]
        assert len(tenant.user(ADELE).password_changes) == 1
        assert tenant.removals == [(ADELE, None)]
    finally:
        await app.aclose()


async def test_a_confirmed_alert_opens_the_next_episode_and_the_case_says_so(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    app = app_for(sandbox_url, tenant, tmp_path / "state.db")
    try:
        await send_raw(app, {"user": ADELE})
        [verified] = await drain(app)

        later = alert(SUSPICIOUS, [mailbox_evidence(ADELE)], created=utc_now())
        tenant.add_alert(later)
        await send_raw(app, {"user": ADELE, "alert_ids": [later["id"]]})
        cases = await drain(app)

        [new] = [c for c in cases if c.case_id != verified.case_id]
        assert new.state is CaseState.VERIFIED
        [opened] = [step for step in new.steps if step.name == "new_episode"]
        assert opened.data["why"] == "confirmed_evidence"
        assert later["id"] in opened.detail and "read back from Graph" in opened.detail
        assert verified.case_id in opened.detail
        assert len(tenant.user(ADELE).password_changes) == 2
    finally:
        await app.aclose()


async def test_an_alert_graph_never_reads_goes_to_a_person_and_leaves_the_case_alone(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    """A read that failed is not "not found": the time is unknown, so the request is tried
    again; but it is no evidence either (issue 14, point 3): the verifying case is not sent
    to a human on it. When Graph never answers, the last attempt gives the request's own
    case to a person, with a reason that says the alert could not be read."""
    app = app_for(sandbox_url, tenant, tmp_path / "state.db", verify_delays=SLOW,
                  max_delivery_count=3, http_max_retries=0)
    try:
        await send_raw(app, {"user": ADELE})
        await run_for(app, 1.5)
        [waiting] = await app.journal.list_cases()
        assert waiting.state is CaseState.AWAITING_VERIFICATION

        real = alert(RESTRICTED, [mailbox_evidence(ADELE)], created=utc_now())
        tenant.add_alert(real)
        tenant.add_fault(Fault(status=503, method="GET", path=rf"/alerts_v2/{real['id']}$",
                               times=None))
        await send_raw(app, {"user": ADELE, "alert_ids": [real["id"]]})
        await run_for(app, 2.5)

        cases = await app.journal.list_cases()
        [case] = [c for c in cases if c.case_id == waiting.case_id]
        assert case.state is CaseState.AWAITING_VERIFICATION, case.reason
        [given_up] = [c for c in cases if c.case_id != waiting.case_id]
        assert given_up.state is CaseState.ESCALATED, given_up.state
        assert given_up.reason is not None
        assert "could not be read from Graph" in given_up.reason, given_up.reason
        assert real["id"] in given_up.reason and "new evidence after the unblock" not in (
            given_up.reason)
        assert len(tenant.user(ADELE).password_changes) == 1
    finally:
        tenant.clear_faults()
        await app.aclose()


async def test_a_real_alert_about_another_account_is_no_evidence_about_this_one(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    """Graph knows the alert, but it is about somebody else: no new episode, no reset."""
    app = app_for(sandbox_url, tenant, tmp_path / "state.db")
    try:
        await send_raw(app, {"user": ADELE})
        [verified] = await drain(app)

        elsewhere = alert(SUSPICIOUS, [mailbox_evidence("lee.gu@contoso.com")],
                          created=utc_now())
        tenant.add_alert(elsewhere)
        await send_raw(app, {"user": ADELE, "alert_ids": [elsewhere["id"]]})
        cases = await drain(app)

        assert [c.case_id for c in cases] == [verified.case_id]
        assert "not this account" in ignored(cases[0])[elsewhere["id"]]
        assert len(tenant.user(ADELE).password_changes) == 1
        assert tenant.alert(elsewhere["id"])["comments"] == []
    finally:
        await app.aclose()


@pytest.mark.parametrize(("status", "code"), [(503, "ServiceUnavailable"), (403, "Forbidden"),
                                              (400, "BadRequest")])
async def test_an_alert_graph_would_not_read_never_resets_a_verified_account_again(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path, status: int,
        code: str) -> None:
    """Found by a hostile test: a made-up id whose read failed (not "not found") opened the
    next episode, "new evidence at an unknown time", and reset the password again."""

    app = app_for(sandbox_url, tenant, tmp_path / "state.db", http_max_retries=0,
                  max_delivery_count=2, queue_max_delivery_count=2)
    try:
        await send_raw(app, {"user": ADELE})
        [verified] = await drain(app)
        assert verified.state.value == "verified"
        forged = made_up()
        tenant.add_fault(Fault(status=status, code=code, method="GET",
                               path=rf"/alerts_v2/{forged}$", times=None))
        await send_raw(app, {"user": ADELE, "alert_ids": [forged]})
        cases = await drain(app)
    finally:
        tenant.clear_faults()
        await app.aclose()
    assert len(tenant.user(ADELE).password_changes) == 1
    assert not [step for case in cases for step in case.steps if step.name == "new_episode"]
