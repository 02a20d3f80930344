"""Internal messages are checked against the journal (issue 14, point 4): a verification,
alert-update or approval message acts only when it matches what the case journaled; anything
else is journaled as refused and changes nothing. Each message here is one a person could
put on the queue by hand; the sandbox tenant answers over HTTP."""

import asyncio
import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from remediation.bootstrap import Application, bootstrap
from remediation.domain.cases import Case, CaseState
from remediation.domain.requests import RemediationRequest
from remediation.sandbox import SandboxTenant
from remediation.sandbox.alert_seed import RESTRICTED, alert, mailbox_evidence
from remediation.sandbox.faults import Fault
from remediation.service.handler import Delivery
from tests.conftest import sandbox_settings
from tests.e2e.test_confirmed_evidence import send_raw

LYNNE, ADELE, PATTI = ("lynne.robbins@contoso.com", "adele.vance@contoso.com",
                       "patti.fernandez@contoso.com")
HOURS = (timedelta(hours=1), timedelta(hours=4), timedelta(hours=24))


def app_for(url: str, tenant: SandboxTenant, db: Path, **changes: Any) -> Application:
    return bootstrap(sandbox_settings(url, tenant, db, sweep_restricted_users=False,
                                      **changes))


def delivery(body: dict[str, Any] | str) -> Delivery:
    text = body if isinstance(body, str) else json.dumps(body)
    return Delivery(body=text.encode(), message_id=uuid.uuid4().hex, delivery_count=1,
                    max_delivery_count=10)


async def remediated(app: Application, user: str, **fields: Any) -> Case:
    """The request handled at once (its verification checks stay scheduled)."""
    request = RemediationRequest(user=user, request_id=uuid.uuid4().hex, **fields)
    case = await app.handler.on_request(delivery(request.to_json()))
    assert case is not None
    return case


def refusals(case: Case) -> list[str]:
    return [step.detail for step in case.steps if step.name.endswith("_refused")]


async def test_a_hand_sent_check_does_not_verify_a_case_before_its_time(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    app = app_for(sandbox_url, tenant, tmp_path / "db", verify_delays=HOURS)
    case = await remediated(app, LYNNE)
    assert case.state is CaseState.AWAITING_VERIFICATION

    after = await app.handler.on_verification(delivery(
        {"kind": "verify", "case_id": case.case_id, "user": LYNNE, "attempt": 2}))
    stored = await app.journal.get_case(case.case_id)
    await app.aclose()

    assert after is not None and stored is not None
    assert stored.state is CaseState.AWAITING_VERIFICATION
    assert not any(step.name.startswith("verify_") for step in stored.steps)
    assert any("before its time" in detail for detail in refusals(stored)), refusals(stored)


async def test_a_check_naming_another_account_changes_nothing(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    app = app_for(sandbox_url, tenant, tmp_path / "db")
    case = await remediated(app, LYNNE)
    await asyncio.sleep(1.6)  # every check of the case is due

    await app.handler.on_verification(delivery(
        {"kind": "verify", "case_id": case.case_id, "user": ADELE, "attempt": 0}))
    stored = await app.journal.get_case(case.case_id)
    await app.aclose()

    assert stored is not None
    assert stored.state is CaseState.AWAITING_VERIFICATION
    assert any(ADELE in detail for detail in refusals(stored)), refusals(stored)


async def test_a_check_of_an_attempt_never_scheduled_changes_nothing(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    app = app_for(sandbox_url, tenant, tmp_path / "db")
    case = await remediated(app, LYNNE)
    await asyncio.sleep(1.6)

    await app.handler.on_verification(delivery(
        {"kind": "verify", "case_id": case.case_id, "user": LYNNE, "attempt": 7}))
    stored = await app.journal.get_case(case.case_id)
    await app.aclose()

    assert stored is not None
    assert stored.state is CaseState.AWAITING_VERIFICATION
    assert any("attempt 7" in detail for detail in refusals(stored)), refusals(stored)


async def test_a_hand_sent_start_update_never_reaches_an_escalated_admins_alert(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    raw = alert(RESTRICTED, [mailbox_evidence(PATTI)])
    tenant.add_alert(raw)
    app = app_for(sandbox_url, tenant, tmp_path / "db")
    case = await remediated(app, PATTI, source="alert", alert_ids=(raw["id"],))
    assert case.state is CaseState.ESCALATED  # a directory role: nobody touched it

    await app.handler.on_verification(delivery(
        {"kind": "alerts", "case_id": case.case_id, "user": PATTI, "phase": "start",
         "alert_count": 1}))
    stored = await app.journal.get_case(case.case_id)
    await app.aclose()

    comments = [c["comment"] for c in tenant.alert(raw["id"])["comments"]]
    assert not any("resetting the password" in text for text in comments), comments
    assert stored is not None and stored.state is CaseState.ESCALATED
    assert refusals(stored), [s.name for s in stored.steps]


async def test_an_update_naming_another_account_changes_nothing(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    raw = alert(RESTRICTED, [mailbox_evidence(LYNNE)])
    tenant.add_alert(raw)
    app = app_for(sandbox_url, tenant, tmp_path / "db", verify_delays=HOURS)
    case = await remediated(app, LYNNE, source="alert", alert_ids=(raw["id"],))

    await app.handler.on_verification(delivery(
        {"kind": "alerts", "case_id": case.case_id, "user": ADELE, "phase": "start",
         "alert_count": 1}))
    stored = await app.journal.get_case(case.case_id)
    await app.aclose()

    assert tenant.alert(raw["id"])["comments"] == []
    assert stored is not None
    assert any(ADELE in detail for detail in refusals(stored)), refusals(stored)


async def test_a_start_notice_delayed_past_the_end_never_reopens_the_alert(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    """Found by a hostile test: the first "start" comment throttled past the verification,
    its retry posted "resetting the password..." after "done" and set the resolved alert back
    to inProgress for ever."""
    raw = alert(RESTRICTED, [mailbox_evidence(ADELE)])
    tenant.add_alert(raw)
    app = app_for(sandbox_url, tenant, tmp_path / "state.db", http_max_retries=0)
    try:
        # Graph throttles the first comment (the 'start' one) for 4 s.
        tenant.add_fault(Fault(status=429, code="TooManyRequests", method="POST",
                               path=r"/alerts_v2/[^/]+/comments$", times=1, retry_after=4))
        await send_raw(app, {"user": ADELE, "source": "alert", "alert_ids": [raw["id"]]})
        await app.worker(poll_interval=0.02, retry_backoff=0.05).run(until_idle=True)
        [case] = [c for c in await app.journal.list_cases()]
        comments = [c["comment"][:70] for c in tenant.alert(raw["id"])["comments"]]
        assert case.state.value == "verified"
        assert tenant.alert(raw["id"])["status"] == "resolved"
        assert "resetting the password" not in comments[-1]
    finally:
        await app.aclose()


async def test_an_approved_case_no_longer_says_it_waits_for_approval(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    """Found by a hostile test: verifying for hours with the reason "waiting for approval"."""
    app = app_for(sandbox_url, tenant, tmp_path / "db", mode="approve", verify_delays=HOURS)
    try:
        waiting = await remediated(app, LYNNE, source="restricted-list")
        assert waiting.state is CaseState.AWAITING_APPROVAL
        await app.handler.on_request(delivery(
            {"kind": "approve", "case_id": waiting.case_id, "user": LYNNE,
             "approved_by": "secops"}))
        case = await app.journal.get_case(waiting.case_id)
    finally:
        await app.aclose()
    assert case is not None and case.state is CaseState.AWAITING_VERIFICATION
    assert not (case.reason or "").startswith("waiting for approval"), case.reason


async def test_an_approval_replayed_while_the_first_works_changes_nothing(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    """Found by a hostile test: a second copy of the approval (another session) worked the
    case alongside the first: sessions revoked twice, the journal interleaved."""
    app = app_for(sandbox_url, tenant, tmp_path / "db", mode="approve")
    try:
        req = RemediationRequest(user=LYNNE, source="alert", request_id=uuid.uuid4().hex)
        case = await app.handler.on_request(delivery(req.to_json()))
        assert case is not None and case.state.value == "awaiting_approval"
        tenant.add_fault(Fault(status=None, method="POST", path=r"revokeSignInSessions",
                               delay=0.5, times=None))
        body = {"kind": "approve", "case_id": case.case_id, "user": LYNNE, "approved_by": "x"}
        first = asyncio.create_task(app.handler.on_request(delivery(body)))
        await asyncio.sleep(0.2)
        second = asyncio.create_task(app.handler.on_request(delivery(body)))
        results = await asyncio.gather(first, second, return_exceptions=True)
        stored = await app.journal.get_case(case.case_id)
        assert not [r for r in results if isinstance(r, BaseException)]
        assert stored is not None
        assert len(tenant.user(LYNNE).password_changes) == 1
        assert tenant.user(LYNNE).sessions_revoked == 1
    finally:
        tenant.clear_faults()
        await app.aclose()
