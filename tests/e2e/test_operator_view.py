"""What people read, against the sandbox tenant over HTTP: text from outside (rule names,
Exchange and Graph messages, approvers) shown escaped; secrets quoted by a service never
stored, commented or posted; ``status`` newest first with open and escalated cases on top,
and ``run --until-idle`` looking at every open case (issue 10, points 5 to 7)."""

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from remediation.adapters.sqlite_db import SqliteDatabase
from remediation.adapters.sqlite_journal import SqliteJournal
from remediation.bootstrap import Application, bootstrap
from remediation.domain.cases import Case, CaseState, Step, StepStatus
from remediation.sandbox import Fault, SandboxTenant
from remediation.sandbox.alert_seed import RESTRICTED, alert, mailbox_evidence
from remediation.service.messages import Approval
from tests.cli_helpers import clean_environment, run_cli
from tests.conftest import sandbox_env, sandbox_settings
from tests.journal_cases import seed as seed_case
from tests.telemetry_capture import captured_telemetry

__all__ = ["clean_environment"]  # a fixture, used by name

ADELE, LYNNE = "adele.vance@contoso.com", "lynne.robbins@contoso.com"
FORGED_ROW = "20260101-deadbeef  mallory@contoso.com  verified  manual  password reset"
# A new line with a forged case row, a screen clear, a window title (OSC), a carriage
# return, a bell, colours and a Unicode line separator.
HOSTILE = (f"Invoices\n{FORGED_ROW}\x1b[2J\x1b]0;owned\x07\r\x1b[31mred\x1b[0m\x07"
           f"\u2028{FORGED_ROW}\x9b1mX")
UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
CASE_ROW = re.compile(r"^\d{8}-[0-9a-f]{8}\b")


def assert_clean(output: str, real_case_ids: set[str]) -> None:
    """No escape or control character, and no line that starts like a case row but the real
    ones (the table's continuation lines start with spaces)."""
    assert UNPRINTABLE.search(output) is None, repr(output)
    assert "\x1b" not in output and "\r" not in output and "\x07" not in output
    for line in output.splitlines():
        found = CASE_ROW.match(line)
        assert found is None or found.group(0) in real_case_ids, f"forged line: {line!r}"
        assert not line.startswith("  20260101-deadbeef"), f"forged line: {line!r}"


def status(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], db: Path,
           *args: str) -> str:
    code, out, err = run_cli(monkeypatch, capsys, {"REMEDIATION_DB": str(db)}, "status", *args)
    assert code == 0, err
    return out


async def status_of(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                    db: Path, *args: str) -> str:
    """``status`` from an async test (the command runs its own event loop)."""
    return await asyncio.to_thread(status, monkeypatch, capsys, db, *args)


@pytest.fixture
async def webhook() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    async def receive(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(text="1")

    server = web.Application()
    server.router.add_post("/workflows/0f3c1d2e9a8b7c6d/invoke", receive)
    runner = web.AppRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield (f"http://127.0.0.1:{port}/workflows/0f3c1d2e9a8b7c6d/invoke?sp=%2Ftriggers"
           "&sv=1.0&sig=Zm9vYmFyc2VjcmV0a2V5MTIzNDU2Nzg5"), received
    await runner.cleanup()


def app_for(url: str, tenant: SandboxTenant, db: Path, **changes: Any) -> Application:
    return bootstrap(sandbox_settings(url, tenant, db, sweep_restricted_users=False,
                                      **changes))


async def run_alert(app: Application, tenant: SandboxTenant, user: str) -> str:
    raw = alert(RESTRICTED, [mailbox_evidence(user)])
    tenant.add_alert(raw)
    await app.intake.poll()
    await app.worker(poll_interval=0.05, retry_backoff=0.05).run(until_idle=True)
    return str(raw["id"])


def card_text(payload: dict[str, Any]) -> str:
    return json.dumps(payload, ensure_ascii=False)


# -- point 5: text from outside is data -------------------------------------------------------


async def test_a_hostile_rule_name_and_exchange_message_are_stored_as_they_came_and_shown_escaped(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path,
        webhook: tuple[str, list[dict[str, Any]]], clean_environment: None,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    url, received = webhook
    lynne = tenant.user(LYNNE)
    lynne.inbox_rules[0]["displayName"] = HOSTILE  # forwards all mail outside
    tenant.add_fault(Fault(status=400, cmdlet="Remove-BlockedSenderAddress", times=None,
                           code="BadRequest", message=f"refused: {HOSTILE}"))
    db = tmp_path / "state.db"
    app = app_for(sandbox_url, tenant, db, escalation_webhook_url=url)
    alert_id = await run_alert(app, tenant, LYNNE)
    [case] = await app.journal.list_cases(LYNNE)
    await app.aclose()

    assert case.state is CaseState.ESCALATED
    # Stored as it came (the journal is the record; Exchange's client joins its lines) ...
    assert "\x1b]0;owned\x07" in (case.reason or "")
    hygiene = case.done("mailbox_hygiene")
    assert hygiene is not None and HOSTILE in hygiene.detail
    # ... and shown escaped wherever a person reads it.
    table = await status_of(monkeypatch, capsys, db)
    details = await status_of(monkeypatch, capsys, db, "--user", LYNNE)
    for output in (table, details):
        assert_clean(output, {case.case_id})
        assert "owned" in output or "Invoices" in output  # the text is there, made harmless
    as_json = json.loads(await status_of(monkeypatch, capsys, db, "--json"))
    assert as_json[0]["reason"] == case.reason  # JSON stays exact
    comments = [c["comment"] for c in tenant.alert(alert_id)["comments"]]
    assert comments and all(UNPRINTABLE.search(c) is None for c in comments), comments
    assert "\n" not in "".join(comments)
    [post] = received
    assert UNPRINTABLE.search(card_text(post)) is None


async def test_a_hostile_approver_is_shown_escaped(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path, clean_environment: None,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "state.db"
    app = app_for(sandbox_url, tenant, db, mode="approve")
    await run_alert(app, tenant, ADELE)
    [case] = await app.journal.list_cases(ADELE)
    assert case.state is CaseState.AWAITING_APPROVAL
    await app.requests.send_approval(Approval(case.case_id, ADELE, HOSTILE))
    await app.worker(poll_interval=0.05).run(until_idle=True)
    # Refused at intake or journaled as it came: either way, shown escaped.
    real = {c.case_id for c in await app.journal.list_cases()}
    await app.aclose()

    for output in (await status_of(monkeypatch, capsys, db),
                   await status_of(monkeypatch, capsys, db, "--user", ADELE)):
        assert_clean(output, real)


async def test_hostile_text_already_in_the_journal_is_shown_escaped(
        tmp_path: Path, clean_environment: None, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Whatever intake lets through today or let through before: approvers, rule names,
    # Exchange messages, addresses and alert ids as a journal may hold them.
    db = tmp_path / "state.db"
    at = T0
    case = Case(case_id="20260105-0000abcd", user="rob@contoso.com",
                state=CaseState.ESCALATED, created_at=at, updated_at=at, source=HOSTILE,
                reason=f"Exchange: {HOSTILE}", alert_ids=(f"da1{HOSTILE}",),
                listed_addresses=(f"alias{HOSTILE}@contoso.com",),
                steps=(Step("approved", StepStatus.INFO, at, f"approved by {HOSTILE}",
                            {"approved_by": HOSTILE}),
                       Step(f"alert_comment:start:{HOSTILE}", StepStatus.DONE, at, HOSTILE),
                       Step("mailbox_hygiene", StepStatus.DONE, at,
                            f"disabled or cleared (kept for review): {HOSTILE}: forwards",
                            {"findings": [{"rule_id": "r1", "name": HOSTILE}],
                             "mode": "disable"})))
    named = Case(case_id="20260105-0000abce", user=f"eve@contoso.com{HOSTILE}",
                 state=CaseState.REJECTED, created_at=at, updated_at=at, reason=HOSTILE)
    await seed(db, [case, named])

    for args in ((), ("--user", case.user), ("--state", "escalated")):
        assert_clean(await status_of(monkeypatch, capsys, db, *args),
                     {case.case_id, named.case_id})
    [_, listed] = json.loads(await status_of(monkeypatch, capsys, db, "--json"))
    assert listed["user"] == case.user and listed["reason"] == case.reason
    assert listed["steps"][0]["data"]["approved_by"] == HOSTILE


# -- point 6: secrets never stored ------------------------------------------------------------

JWT = ("eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL2dyYXBoLm1pY3Jvc29mdC5jb20i"
       "fQ.c2lnbmF0dXJlLW9mLXRoZS10b2tlbi1xdWl0ZS1sb25n")
OPAQUE = "0.AXoAq3cD-secret-opaque-token-value-1234567890abcdef"
PASSWORD = "Tr0ub4dor&3-horse-battery"


async def test_a_graph_error_quoting_secrets_is_stored_commented_and_posted_masked(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path,
        webhook: tuple[str, list[dict[str, Any]]], clean_environment: None,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    url, received = webhook
    quoted = (f"request rejected: Authorization: Bearer {OPAQUE}; token {JWT}; "
              f'body {{"passwordProfile": {{"password": "{PASSWORD}"}}}}; callback {url}')
    tenant.add_fault(Fault(status=400, path=r"/revokeSignInSessions$", times=None,
                           code="Request_BadRequest", message=quoted))
    db = tmp_path / "state.db"
    with captured_telemetry() as captured:  # spans, metrics and log records, HTTP calls too
        app = app_for(sandbox_url, tenant, db, escalation_webhook_url=url)
        alert_id = await run_alert(app, tenant, ADELE)
        [case] = await app.journal.list_cases(ADELE)
        await app.aclose()
        telemetry = captured.text()

    assert case.state is CaseState.ESCALATED
    assert "Request_BadRequest" in (case.reason or "")
    # The search covers telemetry: the failed step with its code, the HTTP calls, the journal.
    for evidence in ('"remediation.error_code": "Request_BadRequest"', "/revokeSignInSessions",
                     f"case {case.case_id} escalated info", "remediation.cases.final"):
        assert evidence in telemetry
    [reset] = tenant.user(ADELE).password_changes
    secrets = (OPAQUE, JWT, PASSWORD, url, "Zm9vYmFyc2VjcmV0a2V5MTIzNDU2Nzg5",
               reset["password"])
    stored = await asyncio.to_thread(
        lambda: b"".join(path.read_bytes() for path in tmp_path.glob("state.db*")))
    comments = json.dumps(tenant.alert(alert_id)["comments"])
    [post] = received
    table = await status_of(monkeypatch, capsys, db, "--json")
    for where, text in (("reason", case.reason or ""), ("steps", repr(case.steps)),
                        ("comment", comments), ("webhook", json.dumps(post)),
                        ("status", table), ("telemetry", telemetry)):
        for secret in secrets:
            assert secret not in text, f"{secret[:12]}… in the {where}"
    for secret in secrets:
        assert secret.encode() not in stored, f"{secret[:12]}… in the journal file"
    assert "<redacted" in (case.reason or "")


# -- point 7: status for an operator ----------------------------------------------------------

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def journal_case(n: int, state: CaseState, at: datetime, user: str | None = None) -> Case:
    return Case(case_id=f"{at:%Y%m%d}-{n:08x}", user=user or f"junk{n}@contoso.com",
                state=state, created_at=at, updated_at=at, source="alert",
                reason="nothing to do" if state.is_final else None,
                steps=(Step("received", StepStatus.INFO, at, "alert request"),))


async def seed(db: Path, cases: list[Case]) -> None:
    database = SqliteDatabase(db)
    try:
        journal = SqliteJournal(database)
        for case in cases:
            await seed_case(journal, case)
    finally:
        database.close()


@dataclass
class Flood:
    db: Path
    junk: int
    escalation: Case
    waiting: Case


@pytest.fixture
async def flood(tmp_path: Path) -> Flood:
    """600 skipped cases of junk, an old case still waiting for approval, then a new admin
    escalation."""
    db = tmp_path / "state.db"
    waiting = journal_case(1, CaseState.AWAITING_APPROVAL, T0 - timedelta(days=3),
                           "waiting@contoso.com")
    junk = [journal_case(100 + n, CaseState.SKIPPED, T0 + timedelta(seconds=n))
            for n in range(600)]
    escalation = journal_case(2, CaseState.ESCALATED, T0 + timedelta(hours=2),
                              "admin@contoso.com")
    await seed(db, [waiting, *junk, escalation])
    return Flood(db, len(junk), escalation, waiting)


def test_status_shows_a_new_escalation_and_an_old_open_case_above_a_flood_of_junk(
        flood: Flood, clean_environment: None, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    table = status(monkeypatch, capsys, flood.db)
    lines = table.splitlines()
    rows = [line for line in lines if CASE_ROW.match(line)]
    assert rows[0].startswith(flood.escalation.case_id)
    assert rows[1].startswith(flood.waiting.case_id)
    assert "1 open, 1 escalated" in table
    assert len(rows) == 50  # the table's default
    assert f"{flood.junk + 2 - 50} more not shown" in table
    # The junk that is shown is the newest.
    assert rows[2].startswith(f"{T0:%Y%m%d}-{100 + flood.junk - 1:08x}")


def test_status_narrows_by_state_since_and_limit(
        flood: Flood, clean_environment: None, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    escalated = status(monkeypatch, capsys, flood.db, "--state", "escalated")
    assert [line.split()[0] for line in escalated.splitlines() if CASE_ROW.match(line)] == [
        flood.escalation.case_id]
    several = status(monkeypatch, capsys, flood.db, "--state", "escalated,awaiting_approval",
                     "--json")
    assert [c["case_id"] for c in json.loads(several)] == [flood.escalation.case_id,
                                                           flood.waiting.case_id]
    since = status(monkeypatch, capsys, flood.db, "--since", "2026-01-05T11:00:00Z", "--json")
    assert [c["case_id"] for c in json.loads(since)] == [flood.escalation.case_id]
    limited = json.loads(status(monkeypatch, capsys, flood.db, "--json", "--limit", "3"))
    assert [c["case_id"] for c in limited][:1] == [flood.escalation.case_id]
    assert len(limited) == 3
    everything = json.loads(status(monkeypatch, capsys, flood.db, "--json"))
    assert len(everything) == flood.junk + 2  # JSON: every matching case unless --limit
    created = [c["created_at"] for c in everything]
    assert created == sorted(created, reverse=True)
    envelope = json.loads(status(monkeypatch, capsys, flood.db, "--json", "--with-total",
                                 "--limit", "2"))
    assert envelope["total"] == flood.junk + 2
    assert [c["case_id"] for c in envelope["cases"]][:1] == [flood.escalation.case_id]
    assert envelope["counts"] == {"awaiting_approval": 1, "escalated": 1,
                                  "skipped": flood.junk}


async def test_run_until_idle_sees_an_open_case_behind_five_hundred_final_ones(
        threaded_sandbox_url: str, tenant: SandboxTenant, tmp_path: Path,
        clean_environment: None, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "state.db"
    # Waiting since now: a case waiting longer than APPROVAL_TIMEOUT would be escalated.
    waiting = journal_case(1, CaseState.AWAITING_APPROVAL, datetime.now(UTC),
                           "waiting@contoso.com")
    await seed(db, [*(journal_case(100 + n, CaseState.VERIFIED, T0 + timedelta(seconds=n))
                      for n in range(500)), waiting])
    env = sandbox_env(threaded_sandbox_url, tenant, db)

    code, _, err = await asyncio.to_thread(run_cli, monkeypatch, capsys, env, "run",
                                           "--until-idle")

    assert code == 1
    assert waiting.case_id in err
