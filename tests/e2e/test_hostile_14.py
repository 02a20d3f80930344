"""Hostile tester, issue 14: forged messages and odd timing against the sandbox over HTTP."""

from pathlib import Path

from remediation.domain.cases import CaseState
from remediation.sandbox import SandboxTenant
from remediation.sandbox.faults import Fault
from tests.e2e.test_confirmed_evidence import (
    ADELE,
    SLOW,
    app_for,
    made_up,
    run_for,
    send_raw,
)


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
