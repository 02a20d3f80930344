"""The kill switch end to end, two workers sharing one journal (the SQLite file, as two local
runtimes or two Functions instances share the Table journal): `remediation pause` on one side,
and from the next message neither worker changes anything in the sandbox tenant; the work is
journaled and kept, however many re-checks it takes, and completes after `remediation resume`.
"""

import asyncio
import io
import uuid
from datetime import timedelta
from pathlib import Path

from remediation.bootstrap import Application
from remediation.domain.cases import Case, CaseState
from remediation.domain.requests import RemediationRequest
from remediation.entrypoints.kill_switch import pause, resume
from remediation.sandbox import SandboxTenant
from remediation.service.handler import Delivery
from remediation.service.pausing import PAUSED
from tests.e2e.test_safety import ADELE, app_for, writes

RECHECK = timedelta(seconds=0.05)  # PAUSE_RECHECK, compressed
MAX = 3  # MAX_DELIVERY_COUNT: a pause outlasts it many times over


def worker_app(url: str, tenant: SandboxTenant, db: Path) -> Application:
    app = app_for(url, tenant, db, max_delivery_count=MAX)
    app.handler = app.handler.with_pause_recheck(RECHECK)
    return app


async def until_idle(app: Application) -> None:
    await app.worker(poll_interval=0.02, retry_backoff=0.05).run(until_idle=True)


async def only_case(app: Application) -> Case:
    [case] = await app.journal.list_cases()
    return case


def pause_notes(case: Case) -> list[str]:
    return [step.detail for step in case.steps if step.name == PAUSED]


async def test_a_request_while_paused_changes_nothing_and_completes_after_resume(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    first, second = (worker_app(sandbox_url, tenant, tmp_path / "db") for _ in range(2))
    out = io.StringIO()
    assert await pause(first.settings, "alice@contoso.com", "phishing wave under review",
                       out) == 0
    assert out.getvalue().startswith("PAUSED since ")
    asked_before = len(tenant.requests())
    await first.requests.send(RemediationRequest(user=ADELE, request_id=uuid.uuid4().hex))

    # Each worker in turn takes the kept message as it comes due, many times over.
    for turn in range(4 * MAX):
        await until_idle((first, second)[turn % 2])
        await asyncio.sleep(RECHECK.total_seconds())

    assert len(tenant.requests()) == asked_before  # not a lookup, not a single read
    assert ADELE in tenant.blocked_addresses()
    assert tenant.user(ADELE).password_changes == []
    case = await only_case(second)
    assert case.state is CaseState.RECEIVED
    [note] = pause_notes(case)
    assert "alice@contoso.com" in note and "phishing wave under review" in note
    assert second.queue is not None and await second.queue.dead_letters() == []
    assert [step.name for step in case.steps if step.name == "retry"] == []

    assert await resume(second.settings, "bob@contoso.com", io.StringIO()) == 0
    await until_idle(second)

    done = await only_case(first)
    assert done.state is CaseState.VERIFIED
    assert len(tenant.user(ADELE).password_changes) == 1
    assert ADELE not in tenant.blocked_addresses()
    assert len(pause_notes(done)) == 1
    for app in (first, second):
        await app.aclose()


async def test_a_check_due_while_paused_waits_and_completes_after_resume(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    first, second = (worker_app(sandbox_url, tenant, tmp_path / "db") for _ in range(2))
    request = RemediationRequest(user=ADELE, request_id=uuid.uuid4().hex)
    lifted = await first.handler.on_request(Delivery(request.to_json().encode(), "m-1", 1, MAX))
    assert lifted is not None and lifted.state is CaseState.AWAITING_VERIFICATION
    # The block is lifted, its checks scheduled; now someone pulls the switch.
    await pause(second.settings, "alice@contoso.com", "unblocks look wrong", io.StringIO())
    writes_before = len(writes(tenant))
    for turn in range(4 * MAX):  # past every check's time, many re-checks over
        await asyncio.sleep(first.settings.verify_delays[-1].total_seconds() / (2 * MAX))
        await until_idle((first, second)[turn % 2])

    waiting = await only_case(second)
    assert waiting.state is CaseState.AWAITING_VERIFICATION
    assert [s.name for s in waiting.steps if s.name.startswith("verify_")] == []
    assert len(pause_notes(waiting)) == 1
    assert len(writes(tenant)) == writes_before
    assert second.queue is not None and await second.queue.dead_letters() == []

    await resume(first.settings, "bob@contoso.com", io.StringIO())
    await until_idle(first)

    assert (await only_case(second)).state is CaseState.VERIFIED
    for app in (first, second):
        await app.aclose()
