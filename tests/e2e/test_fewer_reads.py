"""Issue 18, point 2: in one pass of a case (plan -> secure -> unblock) nothing is read twice,
and every guardrail read is answered before the first change; a request merged into an open
case costs no tenant call. From the sandbox's request log (``tenant.requests()``)."""

import asyncio
import json
import uuid
from datetime import timedelta
from pathlib import Path

from remediation.bootstrap import Application, bootstrap
from remediation.domain.cases import Case, CaseState
from remediation.domain.requests import RemediationRequest
from remediation.sandbox import Fault, SandboxTenant
from remediation.sandbox.seed import BREAK_GLASS_GROUP_ID
from remediation.sandbox.state import RecordedRequest
from tests.conftest import sandbox_settings

ADELE = "adele.vance@contoso.com"
# Guardrail reads (graph_roles.py): memberships, role assignments and eligibility, PIM for
# Groups, the protected groups' nested groups and owners.
GUARDRAIL_PATHS = ("/transitiveMemberOf", "/roleManagement/directory/",
                   "/privilegedAccess/group/", "/transitiveMembers/", "/owners")
# The unblock reads the list again just before it removes a block (securing._unblock): the
# list changes without us, and the step says what it removed.
READ_AGAIN_BEFORE_THE_CHANGE = "Get-BlockedSenderAddress"


def is_read(request: RecordedRequest) -> bool:
    if request.cmdlet is not None:
        return request.cmdlet.split("-", 1)[0].lower() in ("get", "search", "test")
    return request.method == "GET"


def signature(request: RecordedRequest) -> str:
    """A read's question: what it asks, with its parameters (two equal ones ask the same)."""
    if request.cmdlet is not None:
        return f"{request.cmdlet} {json.dumps(request.body, sort_keys=True, default=str)}"
    return f"{request.method} {request.path} {sorted(request.query.items())}"


async def one_case(url: str, tenant: SandboxTenant, db: Path,
                   ) -> tuple[Application, Case, list[RecordedRequest]]:
    """Adele's case up to its unblock (its first check an hour away), with the break-glass
    group protected: every tenant call."""
    app = bootstrap(sandbox_settings(url, tenant, db, verify_delays=(timedelta(hours=1),),
                                     protected_group_ids=frozenset({BREAK_GLASS_GROUP_ID})))
    before = len(tenant.requests())
    await app.requests.send(RemediationRequest(user=ADELE, request_id=uuid.uuid4().hex))
    case = await work_until_settled(app, 1)
    return app, case, tenant.requests()[before:]


async def work_until_settled(app: Application, requests: int) -> Case:
    """Run the worker until Adele's case holds ``requests`` requests and waits for its check
    (an hour away) or ended, and no message is due now."""
    stop = asyncio.Event()
    worker = asyncio.create_task(app.worker(poll_interval=0.02).run(stop=stop))
    try:
        async with asyncio.timeout(60):
            while True:
                await asyncio.sleep(0.05)
                cases = [c for c in await app.journal.list_cases() if c.user == ADELE
                         and c.state is not CaseState.SKIPPED]
                if (len(cases) == 1 and len(cases[0].request_ids) >= requests
                        and (cases[0].state is CaseState.AWAITING_VERIFICATION
                             or cases[0].state.is_final)):
                    return cases[0]
    finally:
        stop.set()
        await worker


async def test_an_ordinary_case_reads_nothing_twice_before_the_unblock(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    app, case, calls = await one_case(sandbox_url, tenant, tmp_path / "db")
    await app.aclose()
    assert case.state is CaseState.AWAITING_VERIFICATION, case.reason
    asked: dict[str, int] = {}
    for request in calls:
        if is_read(request):
            asked[signature(request)] = asked.get(signature(request), 0) + 1
    twice = {question: count for question, count in asked.items() if count > 1
             and not question.startswith(READ_AGAIN_BEFORE_THE_CHANGE)}
    assert twice == {}
    # Each kind the issue named once (the consent grants' two lists are two questions).
    by_kind = [r.cmdlet or r.path for r in calls if is_read(r)]
    for once in ("Get-InboxRule", "Search-UnifiedAuditLog", "Get-MailboxPermission",
                 "Get-RecipientPermission"):
        assert by_kind.count(once) == 1, (once, by_kind)
    assert sum(path.endswith("/authentication/methods") for path in by_kind) == 1
    assert sum(path.endswith("/auditLogs/directoryAudits") for path in by_kind) == 1
    assert sum(path.endswith("/messageRules") for path in by_kind) == 1
    # The block list: the plan's read and the unblock's own, just before the removal.
    assert by_kind.count(READ_AGAIN_BEFORE_THE_CHANGE) == 2
    assert [r.cmdlet for r in calls][-2:] == [READ_AGAIN_BEFORE_THE_CHANGE,
                                               "Remove-BlockedSenderAddress"]


async def test_every_guardrail_read_is_answered_before_the_first_change(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    app, case, calls = await one_case(sandbox_url, tenant, tmp_path / "db")
    await app.aclose()
    assert case.state is CaseState.AWAITING_VERIFICATION, case.reason
    first_change = next(index for index, request in enumerate(calls) if not is_read(request))
    guardrails = [index for index, request in enumerate(calls)
                  if any(part in request.path for part in GUARDRAIL_PATHS)]
    # transitiveMemberOf, 2 role lists, 2 PIM for Groups lists, nested groups, owners.
    assert len(guardrails) >= 7
    assert max(guardrails) < first_change
    assert calls[first_change].method == "PATCH"  # the reset is the first change


async def test_a_failing_guardrail_read_among_concurrent_ones_changes_nothing(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    # Refused (403) while the other guardrail reads are on their way: the case escalates as
    # it always did, and nothing in the tenant is changed.
    tenant.add_fault(Fault(status=403, code="Authorization_RequestDenied", method="GET",
                           path=r"/privilegedAccess/group/assignmentScheduleInstances",
                           times=None))
    app, case, calls = await one_case(sandbox_url, tenant, tmp_path / "db")
    await app.aclose()
    assert case.state is CaseState.ESCALATED
    assert [r for r in calls if not is_read(r)] == []
    assert tenant.user(ADELE).password_changes == []


async def test_a_transient_guardrail_read_is_retried_and_secures_once(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    tenant.add_fault(Fault(status=503, method="GET",
                           path=r"/roleManagement/directory/roleAssignments", times=1))
    app, case, calls = await one_case(sandbox_url, tenant, tmp_path / "db")
    await app.aclose()
    assert case.state is CaseState.AWAITING_VERIFICATION, case.reason
    assert len(tenant.user(ADELE).password_changes) == 1
    first_change = next(index for index, request in enumerate(calls) if not is_read(request))
    assert all(index < first_change for index, request in enumerate(calls)
               if any(part in request.path for part in GUARDRAIL_PATHS))


async def test_a_request_merged_into_an_open_case_costs_no_tenant_call(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    app, case, _ = await one_case(sandbox_url, tenant, tmp_path / "db")
    try:
        before = len(tenant.requests())
        await app.requests.send(RemediationRequest(user=ADELE, request_id=uuid.uuid4().hex))
        await work_until_settled(app, 2)
        merged = await app.journal.get_case(case.case_id)
    finally:
        await app.aclose()
    assert merged is not None and len(merged.request_ids) == 2
    assert tenant.requests()[before:] == []
