"""Hostile round on issue 17 (telemetry, journal chain, reports, workbook): each test names a
promise of the README's Telemetry, Reports or Journal integrity sections that was broken."""

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

from opentelemetry.trace import SpanKind

from remediation.bootstrap import bootstrap
from remediation.domain.cases import CaseState
from remediation.domain.requests import RemediationRequest
from remediation.sandbox import SandboxTenant
from remediation.sandbox.alert_seed import RESTRICTED
from remediation.service.case_report import first_signal
from remediation.service.messages import Approval
from remediation.service.period_report import summarise
from tests.conftest import sandbox_settings
from tests.e2e.test_forged_messages import delivery
from tests.fuzz.test_hostile_text import LYNNE, _tenant, play
from tests.telemetry_capture import captured_telemetry

RULE = "Invoices RULE-MARKER-7Q"
ROOT = Path(__file__).resolve().parents[2]
ADELE = "adele.vance@contoso.com"
EXCHANGE = "Blocked sender not found EXCHANGE-MARKER-3Z call +1 425 555 0100"


async def test_no_reason_or_detail_text_from_outside_reaches_an_exported_log_record(
        tmp_path: Path) -> None:
    # README, Telemetry: "Never sent: a password, a token, a phone number, a reason or detail
    # text". A rule name and an Exchange message (text from outside) end up in the case's
    # escalation reason; the exporter must not carry them.
    tenant = _tenant(RULE, EXCHANGE)
    with captured_telemetry() as captured:
        outcome = await play(tenant, tmp_path / "db", user=LYNNE, title=RESTRICTED)
        [case] = outcome.cases
        assert case.state.value == "escalated"
        assert "EXCHANGE-MARKER-3Z" in (case.reason or "")
        text = captured.text()
    leaked = [marker for marker in ("EXCHANGE-MARKER-3Z", "RULE-MARKER-7Q", "555 0100")
              if marker in text]
    assert leaked == [], [line for line in text.splitlines() if "MARKER" in line][:5]


async def test_a_request_refused_at_the_door_sends_no_outside_text_as_its_account(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    # Contract: remediation.account is "the case's user address". A hand-sent message whose
    # "user" is no address (here a phone number and a pasted password) is rejected; its
    # journal record keeps what the message claimed, and the exported record must not.
    claimed = "call +1 425 555 0100 pw Summer2024 now"
    app = bootstrap(sandbox_settings(sandbox_url, tenant, tmp_path / "db",
                                     sweep_restricted_users=False))
    with captured_telemetry() as captured:
        case = await app.handler.on_request(delivery({"user": claimed}))
        await app.aclose()
        assert case is not None and case.state is CaseState.REJECTED
        accounts = [str((r.log_record.attributes or {}).get("remediation.account"))
                    for r in captured.records()
                    if (r.log_record.attributes or {}).get("remediation.case_id") == case.case_id]
    assert accounts, "the rejected case's step has a log record"
    assert not [a for a in accounts if "555" in a or "summer2024" in a.lower()], accounts


async def test_a_time_a_message_claims_is_no_first_signal_in_the_period_report(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    # README, Reports: the period report times each case "from its first signal: the
    # block's listing time or the first alert's, else when it opened". A hand-sent request
    # naming no alert but claiming evidence_at years ago is neither; the workflow itself
    # never believes a claimed time ("never as the message claims"), the report does.
    app = bootstrap(sandbox_settings(sandbox_url, tenant, tmp_path / "db",
                                     sweep_restricted_users=False))
    case = await app.handler.on_request(delivery(
        {"user": ADELE, "evidence_at": "2001-01-01T00:00:00+00:00"}))
    assert case is not None
    cases = await app.journal.list_cases()
    await app.aclose()
    [case] = cases
    assert case.done("reset_password") is not None
    signal, what = first_signal(case)
    period = summarise(cases, since=None, states=None, now=case.updated_at)
    assert signal.year > 2001, (signal, what)
    assert (period.to_reset.longest or 0) < 86400, period.to_reset


async def test_a_case_the_sweeper_escalates_is_not_left_waiting_in_the_workbook(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    # README, The workbook: "cases by their latest state", read (docs/queries.kql,
    # cases_by_state) from the remediation.state of each case's latest `requests` row, the
    # delivery spans. An approval that expires is escalated by the poll's sweep (an INTERNAL
    # span, no state): with no alert and no webhook, no delivery follows, and the workbook
    # shows the case awaiting approval for ever.
    app = bootstrap(sandbox_settings(sandbox_url, tenant, tmp_path / "db",
                                     sweep_restricted_users=False, mode="approve",
                                     approval_timeout=timedelta(seconds=1)))
    with captured_telemetry(mode="approve") as captured:
        await app.requests.send(RemediationRequest(user=ADELE, source="restricted-list",
                                                 request_id=uuid.uuid4().hex))
        await app.worker(poll_interval=0.05).run(until_idle=True)
        [case] = await app.journal.list_cases(ADELE)
        assert case.state is CaseState.AWAITING_APPROVAL
        sweeper = app.intake.sweeper
        assert sweeper is not None
        for _ in range(40):  # until the second of APPROVAL_TIMEOUT has passed
            await sweeper.sweep()
            [case] = await app.journal.list_cases(ADELE)
            if case.state is not CaseState.AWAITING_APPROVAL:
                break
            await asyncio.sleep(0.1)
        await app.worker(poll_interval=0.05).run(until_idle=True)
        await app.aclose()
        assert case.escalation_kind == "approval_expired", case.reason
        rows = sorted((span.end_time or 0, dict(span.attributes or {}))
                      for span in captured.finished() if span.kind is SpanKind.CONSUMER
                      and (span.attributes or {}).get("remediation.case_id") == case.case_id)
    latest = rows[-1][1].get("remediation.state")
    assert latest == "escalated", f"the workbook shows case {case.case_id} as {latest}"


async def test_a_case_a_person_rejects_is_counted_as_reaching_a_final_state(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    # Contract: counter remediation.cases.final, +1 when a case reaches a final state
    # (the workbook's "Cases reaching a final state, per day"). `remediation reject` stores
    # the final state in its own process, which sets up no telemetry (REMEDIATION_TELEMETRY
    # is honoured by run and demo only); the worker that delivers its notice finds the case
    # final already and counts nothing. Rejected cases are never counted.
    db = tmp_path / "db"
    app = bootstrap(sandbox_settings(sandbox_url, tenant, db, sweep_restricted_users=False,
                                     mode="approve"))
    await app.requests.send(RemediationRequest(user=ADELE, source="restricted-list",
                                               request_id=uuid.uuid4().hex))
    await app.worker(poll_interval=0.05).run(until_idle=True)
    [case] = await app.journal.list_cases(ADELE)
    assert case.state is CaseState.AWAITING_APPROVAL
    env = {**os.environ, "REMEDIATION_DB": str(db), "REMEDIATION_TELEMETRY": "console",
           "PYTHONPATH": str(ROOT)}
    done = await asyncio.to_thread(subprocess.run, [
        sys.executable, "-m", "remediation", "reject", case.case_id, "--by",
        "alice@contoso.com", "--reason", "the owner sent it"], env=env, cwd=tmp_path,
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with captured_telemetry(mode="approve") as captured:
        await app.worker(poll_interval=0.05).run(until_idle=True)  # the decision's notice
        await app.aclose()
        counted = [found for found, point in captured.points("remediation.cases.final")
                   for _ in range(int(point.value))]
    [case] = await bootstrap(sandbox_settings(sandbox_url, tenant, db)).journal.list_cases(ADELE)
    assert case.state is CaseState.REJECTED
    in_the_command = "remediation.cases.final" in done.stderr
    assert counted or in_the_command, "a rejected case counted nowhere"


async def test_an_approved_case_is_one_trace_from_its_request_to_its_verification(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    # README, Telemetry: "The trace context travels on every queue message ..., so a
    # verification check hours later and every retry copy join their case's trace." In
    # approve mode the approval comes from `remediation approve` (a process with no span):
    # its message carries no trace context, and everything the case then does (the reset,
    # the unblock, the checks) is a trace of its own, apart from the request's.
    app = bootstrap(sandbox_settings(sandbox_url, tenant, tmp_path / "db",
                                     sweep_restricted_users=False, mode="approve"))
    with captured_telemetry(mode="approve") as captured:
        await app.requests.send(RemediationRequest(user=ADELE, source="restricted-list",
                                                   request_id=uuid.uuid4().hex))
        await app.worker(poll_interval=0.05).run(until_idle=True)
        [case] = await app.journal.list_cases(ADELE)
        assert case.state is CaseState.AWAITING_APPROVAL
        await app.requests.send_approval(Approval(case.case_id, ADELE, "bob@contoso.com"))
        await app.worker(poll_interval=0.05).run(until_idle=True)
        await app.aclose()
        [request] = captured.named("remediation request")
        [approval] = captured.named("remediation approval")
        [reset] = captured.named("step reset_password")
    assert approval.context.trace_id == request.context.trace_id
    assert reset.context.trace_id == request.context.trace_id
