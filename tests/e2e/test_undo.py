"""`remediation undo` (issue 16, point 3), end to end: Lynne's case over HTTP against the
sandbox (two planted Graph rules, a hidden rule only Exchange shows, forwarding outside, a
consent to a mail app, an Authenticator the attacker registered), then the command, then the
local worker with the app's identity. What the case changed that can be put back is back as
it was before the case; what cannot be (the password, the sessions, the sign-in method) is
said, never attempted."""

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from remediation.bootstrap import Application
from remediation.domain.cases import Case, CaseState, StepStatus
from remediation.domain.requests import SCHEMA_VERSION
from remediation.sandbox import Fault, SandboxTenant
from remediation.sandbox.seed import BREAK_GLASS_GROUP_ID, HIDDEN_RULE_ID
from remediation.service.progress import changes
from tests.cli_helpers import clean_environment, run_cli
from tests.conftest import sandbox_env
from tests.e2e.test_safety import ADELE, LYNNE, app_for, remediate

__all__ = ["clean_environment"]

BY = "alice@contoso.com"


def mailbox_state(tenant: SandboxTenant) -> dict[str, Any]:
    """What the case changes and undo puts back: rules (Graph's and Exchange's hidden ones),
    mailbox forwarding, the consent grants."""
    lynne = tenant.user(LYNNE)
    return {
        "rules": {rule["displayName"]: rule["isEnabled"] for rule in lynne.inbox_rules},
        "hidden": {str(row["Name"]): row.get("Enabled") for row in lynne.exchange_rules},
        "forwarding": (lynne.forwarding_smtp_address, lynne.forwarding_address,
                       lynne.deliver_to_mailbox_and_forward),
        "grants": {grant["id"]: sorted(grant["scope"].split())
                   for grant in tenant.consents.grants()},
    }


def writes(tenant: SandboxTenant, since: int = 0) -> list[str]:
    """Every change the tenant was asked to make after its ``since`` first requests, in order,
    in a few words."""
    seen = []
    for request in tenant.requests()[since:]:
        if request.cmdlet and not request.cmdlet.startswith(("Get-", "Search-")):
            seen.append(request.cmdlet)
        elif request.method in ("POST", "PATCH", "DELETE") and not request.cmdlet:
            seen.append(f"{request.method} {request.path.rsplit('/', 2)[-2]}")
    return seen


class Lynne:
    """Lynne's tenant and journal, and the commands a person runs on them."""

    def __init__(self, url: str, tenant: SandboxTenant, db: Path,
                 monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
        self.url, self.tenant, self.db = url, tenant, db
        self.monkeypatch, self.capsys = monkeypatch, capsys

    def app(self, **changes: Any) -> Application:
        return app_for(self.url, self.tenant, self.db, **changes)

    async def remediated(self, user: str = LYNNE, source: str = "manual",
                         **changes: Any) -> Case:
        app = self.app(**changes)
        try:
            return (await remediate(app, user, source=source))[user]
        finally:
            await app.aclose()

    async def cli(self, *args: str, **env: str) -> tuple[int, str, str]:
        settings = {**sandbox_env(self.url, self.tenant, self.db),
                    "PROTECTED_GROUP_IDS": BREAK_GLASS_GROUP_ID, **env}
        self.capsys.readouterr()  # what the workers logged before: not the command's
        return await asyncio.to_thread(run_cli, self.monkeypatch, self.capsys, settings,
                                       *args)

    async def work(self, **changes: Any) -> None:
        """The local worker, until nothing is queued."""
        app = self.app(**changes)
        try:
            await app.worker(poll_interval=0.05, retry_backoff=0.05).run(until_idle=True)
        finally:
            await app.aclose()

    async def case(self, case_id: str) -> Case:
        app = self.app()
        try:
            case = await app.journal.get_case(case_id)
        finally:
            await app.aclose()
        assert case is not None
        return case

    async def send(self, body: dict[str, Any]) -> None:
        """A hand-written message on the requests queue (the account's session)."""
        app = self.app()
        try:
            assert app.request_copies is not None
            await app.request_copies.schedule_copy(json.dumps(body).encode(),
                                                   session_id=LYNNE, properties={}, at=None)
        finally:
            await app.aclose()


@pytest.fixture
def lynne(threaded_sandbox_url: str, tenant: SandboxTenant, tmp_path: Path,
          clean_environment: None, monkeypatch: pytest.MonkeyPatch,
          capsys: pytest.CaptureFixture[str]) -> Lynne:
    return Lynne(threaded_sandbox_url, tenant, tmp_path / "state.db", monkeypatch, capsys)


def undo_message(case_id: str, token: str) -> dict[str, Any]:
    """An undo message as `remediation undo` queues it (service/undo.py UndoRequest)."""
    return {"schema": SCHEMA_VERSION, "kind": "undo", "case_id": case_id, "user": LYNNE,
            "token": token}


def names(case: Case, prefix: str) -> list[str]:
    return [step.name for step in case.steps if step.name.startswith(prefix)]


async def test_undo_puts_back_every_rule_the_forwarding_and_the_consent_the_case_changed(
        lynne: Lynne) -> None:
    tenant = lynne.tenant
    before = mailbox_state(tenant)
    case = await lynne.remediated()
    assert case.state is CaseState.VERIFIED, case.reason
    acted = mailbox_state(tenant)
    assert acted != before  # the case disabled, cleared and revoked
    mark = len(tenant.requests())

    code, out, err = await lynne.cli("undo", case.case_id, "--by", BY)

    assert code == 0, err
    assert mailbox_state(tenant) == acted  # the command only queues; the worker acts
    assert "will restore: inbox rule “..” disabled [mailbox_hygiene]" in out
    assert "will restore: mailbox forwarding cleared [mailbox_hygiene]" in out
    assert "drop@evil-mail.example again" in out  # where mail will go again, said first
    assert "will restore: disabled inbox rule '.' (not shown by Graph) [exchange_inbox_rules]" \
        in out
    assert "will restore: inbox rule “Invoices” disabled [mailbox_hygiene]" in out
    assert "[consent_grants] (granted again as it was" in out
    assert "cannot be restored: password reset [reset_password]" in out
    assert "cannot be restored: sign-in sessions revoked [revoke_sessions]" in out
    assert "cannot be restored: removed sign-in method Microsoft Authenticator" in out
    assert "[signin_methods]: re-register the Authenticator app" in out
    assert "cannot be restored: block removed from the Restricted users list [unblock]" in out
    for change in changes(case):  # what status lists is what undo speaks of, line by line
        assert change.what in out, change.what
    assert f"undo of case {case.case_id} ({LYNNE}) queued by {BY}" in out

    await lynne.work()

    assert mailbox_state(tenant) == before
    assert sorted(writes(tenant, mark)) == sorted([
        "PATCH messageRules", "PATCH messageRules", "Set-Mailbox", "POST v1.0",
        "Enable-InboxRule"])
    [enabled] = [call.body["CmdletInput"]["Parameters"] for call in tenant.requests()[mark:]
                 if call.cmdlet == "Enable-InboxRule"]
    assert enabled == {"Identity": str(HIDDEN_RULE_ID), "Mailbox": LYNNE, "Confirm": False}
    done = await lynne.case(case.case_id)
    assert done.state is CaseState.VERIFIED  # an undo leaves the record as it ended
    [finished] = [step for step in done.steps if step.name == "undo_finished"]
    assert finished.detail.startswith(f"undo by {BY}: restored 5")
    assert "not restored" not in finished.detail

    code, out, err = await lynne.cli("status", "--user", LYNNE)
    assert code == 0, err
    assert "undo_queued" in out and "undo_finished" in out
    assert f"inbox rule “..” disabled: restored by undo ({BY}) at" in out
    assert f"mailbox forwarding cleared: restored by undo ({BY}) at" in out
    assert "password reset: cannot be undone" in out

    code, out, err = await lynne.cli("undo", case.case_id, "--by", BY)
    assert code == 0, err
    assert "everything it can restore was restored already; nothing queued" in out
    assert "restored already: inbox rule “..” disabled [mailbox_hygiene]" in out


async def test_step_restores_only_that_steps_changes(lynne: Lynne) -> None:
    tenant = lynne.tenant
    before = mailbox_state(tenant)
    case = await lynne.remediated()
    acted = mailbox_state(tenant)

    code, out, err = await lynne.cli("undo", case.case_id, "--step", "consent_grants",
                                     "--by", BY)
    assert code == 0, err
    assert "[mailbox_hygiene]" not in out and "[consent_grants]" in out
    await lynne.work()

    now = mailbox_state(tenant)
    assert now["grants"] == before["grants"]
    assert {key: now[key] for key in ("rules", "hidden", "forwarding")} == {
        key: acted[key] for key in ("rules", "hidden", "forwarding")}

    code, out, err = await lynne.cli("undo", case.case_id, "--step", "nothing_like_it",
                                     "--by", BY)
    assert code == 2
    assert "its steps with changes: reset_password, revoke_sessions, mailbox_hygiene" in err
    assert len(err.strip().splitlines()) == 1


async def test_a_dry_run_says_what_it_would_restore_and_changes_nothing(lynne: Lynne) -> None:
    tenant = lynne.tenant
    case = await lynne.remediated()
    acted = mailbox_state(tenant)
    mark = len(tenant.requests())

    code, out, err = await lynne.cli("undo", case.case_id, "--by", BY, "--dry-run")
    assert code == 0, err
    assert "would restore: inbox rule “..” disabled [mailbox_hygiene]" in out
    assert "cannot be restored: password reset [reset_password]" in out
    assert "dry run (--dry-run): nothing queued, nothing changed" in out
    code, out, err = await lynne.cli("undo", case.case_id, "--by", BY,
                                     REMEDIATION_MODE="dry-run")
    assert code == 0, err
    assert "dry run (REMEDIATION_MODE=dry-run): nothing queued" in out
    await lynne.work()

    assert mailbox_state(tenant) == acted
    assert writes(tenant, mark) == []
    assert names(await lynne.case(case.case_id), "undo") == []

    # Queued while the worker enforced, taken by a worker now in dry-run: nothing changes.
    code, _, err = await lynne.cli("undo", case.case_id, "--by", BY,
                                   REMEDIATION_MODE="enforce")
    assert code == 0, err
    await lynne.work(mode="dry-run")
    assert mailbox_state(tenant) == acted and writes(tenant, mark) == []
    [refused] = [s for s in (await lynne.case(case.case_id)).steps if s.name == "undo_refused"]
    assert refused.detail.startswith("undo refused: REMEDIATION_MODE=dry-run changes nothing; "
                                     "it would restore: inbox rule “..” disabled")


async def test_a_case_still_working_nothing_to_restore_or_no_case_is_refused_in_one_line(
        lynne: Lynne) -> None:
    waiting = await lynne.remediated(source="restricted-list", mode="approve")
    assert waiting.state is CaseState.AWAITING_APPROVAL
    code, out, err = await lynne.cli("undo", waiting.case_id, "--by", BY)
    assert code == 2 and out == ""
    assert err == (f"remediation: case {waiting.case_id} is awaiting_approval: it is still "
                   "working; undo it once it has ended\n")

    adele = await lynne.remediated(ADELE)  # reset, revoked, unblocked: nothing restorable
    assert adele.state is CaseState.VERIFIED
    code, out, err = await lynne.cli("undo", adele.case_id, "--by", BY)
    assert code == 2
    assert "cannot be restored: password reset [reset_password]" in out
    assert err == (f"remediation: case {adele.case_id} has nothing the robot can restore; "
                   "nothing queued\n")

    code, _, err = await lynne.cli("undo", "20260101-00000000", "--by", BY)
    assert (code, err) == (2, "remediation: no case '20260101-00000000' in the journal\n")
    code, _, err = await lynne.cli("undo", adele.case_id, "--by", "  ")
    assert (code, err) == (2, "remediation: --by is blank: name who undoes the case\n")


async def test_a_protected_account_is_never_touched_by_an_undo(lynne: Lynne) -> None:
    tenant = lynne.tenant
    case = await lynne.remediated()
    acted = mailbox_state(tenant)
    tenant.user(LYNNE).group_ids.append(BREAK_GLASS_GROUP_ID)  # protected since the case
    mark = len(tenant.requests())

    code, _, err = await lynne.cli("undo", case.case_id, "--by", BY)
    assert code == 0, err
    await lynne.work()

    assert mailbox_state(tenant) == acted
    assert writes(tenant, mark) == []
    [refused] = [s for s in (await lynne.case(case.case_id)).steps if s.name == "undo_refused"]
    assert "member of protected group(s)" in refused.detail
    assert "nothing was done" in refused.detail


async def test_a_forged_or_replayed_undo_message_changes_nothing(lynne: Lynne) -> None:
    tenant = lynne.tenant
    case = await lynne.remediated()
    acted = mailbox_state(tenant)
    mark = len(tenant.requests())

    await lynne.send(undo_message(case.case_id, "f" * 32))
    await lynne.work()

    assert mailbox_state(tenant) == acted and writes(tenant, mark) == []
    refused = [s.detail for s in (await lynne.case(case.case_id)).steps
               if s.name == "undo_refused"]
    assert refused == [f"undo refused: case {case.case_id} queued no such undo; nothing was "
                       "done"]

    code, _, err = await lynne.cli("undo", case.case_id, "--step", "mailbox_hygiene",
                                   "--by", BY)
    assert code == 0, err
    await lynne.work()
    undone = await lynne.case(case.case_id)
    [queued] = [s for s in undone.steps if s.name == "undo_queued"]
    restored_rules = mailbox_state(tenant)["rules"]
    assert restored_rules[".."] is True
    # An administrator disables the rule again; the undo message, replayed, must not undo
    # that.
    next(r for r in tenant.user(LYNNE).inbox_rules if r["displayName"] == "..")[
        "isEnabled"] = False
    mark = len(tenant.requests())
    await lynne.send(undo_message(case.case_id, queued.data["token"]))
    await lynne.work()

    assert writes(tenant, mark) == []
    assert mailbox_state(tenant)["rules"][".."] is False
    last = [s for s in (await lynne.case(case.case_id)).steps if s.name == "undo_refused"][-1]
    assert "ended already" in last.detail


async def test_a_failing_call_is_retried_and_nothing_is_granted_twice(lynne: Lynne) -> None:
    tenant = lynne.tenant
    before = mailbox_state(tenant)
    case = await lynne.remediated()
    mark = len(tenant.requests())
    # Exchange fails five times in a row (more than one delivery retries in process): the
    # undo is retried later, and what its first attempt restored (the Graph rules, the
    # forwarding, the consent: Exchange's rule comes last) is not done again.
    tenant.add_fault(Fault(status=503, cmdlet="Enable-InboxRule", times=5,
                           code="ServerBusy", exception_type="ServerBusyException"))

    code, _, err = await lynne.cli("undo", case.case_id, "--by", BY)
    assert code == 0, err
    await lynne.work()

    assert mailbox_state(tenant) == before
    posts = [r for r in tenant.requests()[mark:] if r.method == "POST"
             and r.path.endswith("/oauth2PermissionGrants")]
    assert len(posts) == 1
    assert [r.cmdlet for r in tenant.requests()[mark:]].count("Set-Mailbox") == 1
    undone = await lynne.case(case.case_id)
    assert any(s.name == "retry" for s in undone.steps)
    assert [s.status for s in undone.steps if s.name.startswith("undo:")].count(
        StepStatus.DONE) == 5


async def test_a_consent_the_owner_gave_again_is_not_granted_a_second_time(
        lynne: Lynne) -> None:
    tenant = lynne.tenant
    before = mailbox_state(tenant)
    case = await lynne.remediated()
    revoked = next(g for g in tenant.consents.revoked)
    # The owner consents to the app again before the undo runs.
    tenant.consents.grant(tenant.consents.app(revoked["clientId"]), revoked["scope"],
                          principal_id=revoked["principalId"])
    mark = len(tenant.requests())

    code, _, err = await lynne.cli("undo", case.case_id, "--step", "consent_grants",
                                   "--by", BY)
    assert code == 0, err
    await lynne.work()

    assert mailbox_state(tenant)["grants"] == before["grants"]
    assert not [r for r in tenant.requests()[mark:] if r.method == "POST"]
    [item] = [s for s in (await lynne.case(case.case_id)).steps
              if s.name.startswith("undo:consent_grants") and s.status is StepStatus.DONE]
    assert item.data["result"] == "already"
    assert "already as it was" in item.detail


async def test_an_undo_that_keeps_failing_ends_with_the_reason_and_keeps_what_it_restored(
        lynne: Lynne) -> None:
    tenant = lynne.tenant
    before = mailbox_state(tenant)
    case = await lynne.remediated()
    tenant.add_fault(Fault(status=503, cmdlet="Enable-InboxRule", times=None,
                           code="ServerBusy", exception_type="ServerBusyException"))

    code, _, err = await lynne.cli("undo", case.case_id, "--by", BY)
    assert code == 0, err
    await lynne.work(max_delivery_count=2, http_max_retries=0)

    now = mailbox_state(tenant)
    assert now["rules"] == before["rules"] and now["grants"] == before["grants"]
    assert now["hidden"]["."] is False  # Exchange never answered: still disabled
    ended = await lynne.case(case.case_id)
    assert ended.state is CaseState.VERIFIED
    [finished] = [s for s in ended.steps if s.name == "undo_finished"]
    assert finished.detail.startswith(f"undo by {BY}: undo gave up after 2 "
                                      "deliveries: Exchange: Enable-InboxRule")
    assert "restored 4" in finished.detail
    code, out, err = await lynne.cli("status", "--user", LYNNE)
    assert "disabled inbox rule '.' (not shown by Graph): Enable-InboxRule -Identity" in out
    code, out, err = await lynne.cli("undo", case.case_id, "--by", BY, "--dry-run")
    assert code == 0, err
    assert out.count("would restore:") == 1  # what is left: the hidden rule
    assert "would restore: disabled inbox rule '.' (not shown by Graph)" in out
