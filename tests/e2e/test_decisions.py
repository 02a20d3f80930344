"""A person's decisions through the command line, against the sandbox tenant over HTTP and
the local worker (issue 16, point 1): `remediation reject` ends a waiting case `rejected`
and changes nothing in the tenant; `remediation close` ends an escalated case a person has
handled `closed`. Each says who and why in the journal, in `status`, on the Defender
alerts (a comment, never a classification) and in the escalation channel; the channel is
told once when a case starts waiting, with the exact commands."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from remediation.bootstrap import Application, bootstrap
from remediation.domain.cases import Case, CaseState
from remediation.domain.requests import RemediationRequest
from remediation.sandbox import SandboxTenant
from remediation.sandbox.alert_seed import RESTRICTED, alert, mailbox_evidence
from remediation.sandbox.seed import BREAK_GLASS_GROUP_ID
from remediation.service.workflow import APPROVAL_REFUSED
from tests.cli_helpers import clean_environment, run_cli
from tests.conftest import sandbox_settings

__all__ = ["clean_environment"]  # a fixture, used by name

ADELE, GRACE, LYNNE = ("adele.vance@contoso.com", "grace.taylor@contoso.com",
                       "lynne.robbins@contoso.com")
WHY = "the owner confirmed the mailing; handled with the sales team"


@pytest.fixture
async def webhook() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A Teams Workflows trigger: every post it took, in order."""
    received: list[dict[str, Any]] = []

    async def receive(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(status=202)

    server = web.Application()
    server.router.add_post("/workflows/5e1d/invoke", receive)
    runner = web.AppRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/workflows/5e1d/invoke?sig=c2VjcmV0LWtleQ", received
    await runner.cleanup()


class Operator:
    """The worker (in-process, on the sandbox) and a person at the command line, sharing
    one local database."""

    def __init__(self, url: str, tenant: SandboxTenant, db: Path, hook: str,
                 monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                 **settings: Any) -> None:
        self.sandbox, self.db = tenant, db
        self.monkeypatch, self.capsys = monkeypatch, capsys
        self.app: Application = bootstrap(sandbox_settings(
            url, tenant, db, sweep_restricted_users=False, escalation_webhook_url=hook,
            protected_group_ids=frozenset({BREAK_GLASS_GROUP_ID}), **settings))

    async def alert(self, user: str) -> str:
        raised = alert(RESTRICTED, [mailbox_evidence(user)])
        self.sandbox.add_alert(raised)
        await self.app.intake.poll()
        await self.run()
        return str(raised["id"])

    async def run(self) -> None:
        await self.app.worker(poll_interval=0.02, retry_backoff=0.05).run(until_idle=True)

    async def case(self, user: str) -> Case:
        [case] = await self.app.journal.list_cases(user)
        return case

    async def cli(self, *args: str) -> tuple[int, str, str]:
        """`remediation ARGS` as a person runs it (its own event loop, in a thread); what
        the in-process worker logged before is not its output."""
        self.capsys.readouterr()
        return await asyncio.to_thread(run_cli, self.monkeypatch, self.capsys,
                                       {"REMEDIATION_DB": str(self.db)}, *args)

    def resets(self, user: str) -> int:
        return len(self.sandbox.user(user).password_changes)


@pytest.fixture
async def approving(sandbox_url: str, tenant: SandboxTenant, tmp_path: Path,
                    webhook: tuple[str, list[dict[str, Any]]], clean_environment: None,
                    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                    ) -> AsyncIterator[Operator]:
    operator = Operator(sandbox_url, tenant, tmp_path / "state.db", webhook[0], monkeypatch,
                        capsys, mode="approve")
    yield operator
    await operator.app.aclose()


def text_of(post: dict[str, Any]) -> str:
    return json.dumps(post, ensure_ascii=False)


async def test_a_rejected_case_changes_nothing_and_says_who_and_why_everywhere(
        approving: Operator, webhook: tuple[str, list[dict[str, Any]]]) -> None:
    _, received = webhook
    alert_id = await approving.alert(ADELE)
    waiting = await approving.case(ADELE)
    assert waiting.state is CaseState.AWAITING_APPROVAL

    # The channel was told once, with the exact commands.
    [needed] = received
    assert f"remediation approve {waiting.case_id} --by" in text_of(needed)
    assert f"remediation reject {waiting.case_id} --by" in text_of(needed)

    code, out, err = await approving.cli("reject", waiting.case_id, "--by",
                                         "alice@contoso.com", "--reason", WHY)
    assert (code, err) == (0, ""), err
    assert out.strip() == (f"case {waiting.case_id} ({ADELE}) rejected by alice@contoso.com: "
                           "nothing was changed in the tenant")
    await approving.run()

    case = await approving.case(ADELE)
    assert case.state is CaseState.REJECTED and case.decided_by == "alice@contoso.com"
    assert approving.resets(ADELE) == 0 and ADELE in approving.sandbox.blocked_addresses()
    # Defender: a comment saying who and why; the status is a person's to set.
    raised = approving.sandbox.alert(alert_id)
    [comment] = [c["comment"] for c in raised["comments"]]
    assert "rejected by alice@contoso.com" in comment and WHY in comment
    assert raised["status"] == "new"
    assert len(received) == 2 and "rejected by alice@contoso.com" in text_of(received[1])

    # status: the table, one account's details (who, when, why), a state, the JSON.
    code, table, _ = await approving.cli("status")
    assert code == 0
    [row] = [line for line in table.splitlines() if line.startswith(case.case_id)]
    assert "rejected" in row and "rejected by alice@contoso.com" in table
    code, details, _ = await approving.cli("status", "--user", ADELE)
    [line] = [line for line in details.splitlines() if line.split()[2:3] == ["rejected"]]
    # The line is the journal's "rejected" entry, at its own time (journaled just after the
    # case's ended_at: the two may fall on either side of a second).
    [rejected] = [step for step in case.steps if step.name == "rejected"]
    assert f"{rejected.at:%Y-%m-%d %H:%M:%S}" in line
    assert abs((rejected.at - case.ended_at).total_seconds()) < 5  # type: ignore[operator]
    assert "by alice@contoso.com" in line and "the owner confirmed" in line
    code, listed, _ = await approving.cli("status", "--state", "rejected", "--json")
    [shown] = json.loads(listed)
    assert (shown["case_id"], shown["decided_by"]) == (case.case_id, "alice@contoso.com")

    # Approving it now is refused with the reason; rejecting again says it was.
    code, _, err = await approving.cli("approve", case.case_id)
    assert code == 2
    assert err.strip() == (f"remediation: case {case.case_id} is rejected (by "
                           "alice@contoso.com), not awaiting approval")
    code, out, _ = await approving.cli("reject", case.case_id, "--by", "bob", "--reason", "x")
    assert code == 0 and "already rejected by alice@contoso.com" in out

    # Another signal about the same block goes to the rejected case: no second wait.
    await approving.app.requests.send(RemediationRequest(
        user=ADELE, source="restricted-list", request_id=uuid.uuid4().hex))
    await approving.run()
    assert [c.case_id for c in await approving.app.journal.list_cases()
            if c.state is not CaseState.SKIPPED] == [case.case_id]
    assert len(received) == 2 and approving.resets(ADELE) == 0


async def test_an_approval_queued_before_the_reject_is_refused_when_it_arrives(
        approving: Operator) -> None:
    await approving.alert(LYNNE)
    waiting = await approving.case(LYNNE)

    code, _, err = await approving.cli("approve", waiting.case_id, "--by", "bob")
    assert code == 0, err
    code, _, err = await approving.cli("reject", waiting.case_id, "--by", "alice",
                                       "--reason", WHY)
    assert code == 0, err
    await approving.run()

    case = await approving.case(LYNNE)
    assert case.state is CaseState.REJECTED and case.decided_by == "alice"
    [refused] = [step for step in case.steps if step.name == APPROVAL_REFUSED]
    assert refused.detail.startswith(f"approval by bob refused: case {case.case_id} was "
                                     "rejected by alice at ")
    assert approving.resets(LYNNE) == 0
    assert not any(step.name == "approved" for step in case.steps)


async def test_a_case_approved_first_cannot_be_rejected(approving: Operator) -> None:
    await approving.alert(LYNNE)
    waiting = await approving.case(LYNNE)
    await approving.cli("approve", waiting.case_id, "--by", "bob")
    await approving.run()

    code, out, err = await approving.cli("reject", waiting.case_id, "--by", "alice",
                                         "--reason", WHY)

    case = await approving.case(LYNNE)
    assert case.state is CaseState.VERIFIED and approving.resets(LYNNE) == 1
    assert (code, out) == (2, "")
    assert err.strip() == (f"remediation: case {case.case_id} is verified, not awaiting "
                           "approval")


@pytest.mark.parametrize(("args", "said"), [
    (("reject", "20990101-deadbeef", "--by", "alice", "--reason", WHY),
     "remediation: no case '20990101-deadbeef' in the journal"),
    (("close", "20990101-deadbeef", "--by", "alice", "--reason", WHY),
     "remediation: no case '20990101-deadbeef' in the journal"),
    (("reject", "CASE", "--by", "", "--reason", WHY),
     "remediation: --by is blank: name who decides"),
    (("reject", "CASE", "--by", "alice", "--reason", "line one\nline two"),
     "remediation: --reason contains control characters"),
    (("close", "CASE", "--by", "alice", "--reason", WHY),
     "remediation: case CASE is awaiting_approval, not escalated: only an escalated case "
     "is closed"),
])
async def test_a_decision_the_case_does_not_allow_is_one_line_and_exit_2(
        approving: Operator, args: tuple[str, ...], said: str) -> None:
    await approving.alert(ADELE)
    waiting = await approving.case(ADELE)
    args = tuple(waiting.case_id if arg == "CASE" else arg for arg in args)

    code, out, err = await approving.cli(*args)

    assert (code, out) == (2, "")
    assert err.strip() == said.replace("CASE", waiting.case_id)
    assert (await approving.case(ADELE)).state is CaseState.AWAITING_APPROVAL


def test_a_reason_is_required(clean_environment: None, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    for args in (("reject", "20260105-0badcafe", "--by", "alice"),
                 ("close", "20260105-0badcafe")):
        with pytest.raises(SystemExit) as exited:
            run_cli(monkeypatch, capsys, {}, *args)
        assert exited.value.code == 2
        assert "the following arguments are required: --reason" in capsys.readouterr().err


async def test_an_escalated_case_a_person_handled_ends_closed(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path,
        webhook: tuple[str, list[dict[str, Any]]], clean_environment: None,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    url, received = webhook
    operator = Operator(sandbox_url, tenant, tmp_path / "state.db", url, monkeypatch, capsys)
    try:
        alert_id = await operator.alert(GRACE)  # a member of the break-glass group
        case = await operator.case(GRACE)
        assert case.state is CaseState.ESCALATED and len(received) == 1

        code, out, err = await operator.cli("close", case.case_id, "--by", "bob@contoso.com",
                                            "--reason", "password reset by phone with the "
                                            "user; block removed by hand")
        assert (code, err) == (0, ""), err
        assert out.strip() == f"case {case.case_id} ({GRACE}) closed by bob@contoso.com"
        await operator.run()

        closed = await operator.case(GRACE)
        assert closed.state is CaseState.CLOSED and closed.decided_by == "bob@contoso.com"
        assert closed.escalation_kind == case.escalation_kind == "guardrail"
        raised = operator.sandbox.alert(alert_id)
        comments = [c["comment"] for c in raised["comments"]]
        assert "closed by bob@contoso.com" in comments[-1]
        assert raised["status"] == "inProgress"  # as the escalation left it: never resolved
        assert raised.get("classification") in (None, "unknown")
        assert len(received) == 2 and "closed by bob@contoso.com" in text_of(received[1])

        code, listed, _ = await operator.cli("status", "--state", "closed")
        assert code == 0 and case.case_id in listed
        code, table, _ = await operator.cli("status")
        assert "0 open, 0 escalated; 1 case" in table.splitlines()
        code, out, _ = await operator.cli("close", case.case_id, "--by", "carol",
                                          "--reason", "again")
        assert code == 0 and "already closed by bob@contoso.com" in out
        code, _, err = await operator.cli("reject", case.case_id, "--by", "carol",
                                          "--reason", "no")
        assert code == 2 and "is closed (by bob@contoso.com), not awaiting approval" in err
    finally:
        await operator.app.aclose()


def test_the_help_shows_how_to_decide(clean_environment: None,
                                      monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("reject", "close"):
        with pytest.raises(SystemExit):
            run_cli(monkeypatch, capsys, {}, command, "--help")
        shown = capsys.readouterr().out
        assert f"remediation {command} 20260105-0badcafe --by alice@contoso.com --reason" in (
            shown), shown
