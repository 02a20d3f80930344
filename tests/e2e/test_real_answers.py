"""Whole cases against a sandbox that answers the way Microsoft 365 really does (Graph's
reference pages, the Exchange cmdlet references, and what public tools see from the real
endpoints): the workflow's record stays true whatever Exchange and Graph say."""

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from remediation.bootstrap import bootstrap
from remediation.domain.cases import CaseState, StepStatus
from remediation.sandbox import Fault, SandboxTenant, SandboxUser
from remediation.sandbox.alert_seed import RESTRICTED, alert, mailbox_evidence
from remediation.sandbox.seed import ALIAS, LEGACY_MAILBOX
from tests.conftest import sandbox_env, sandbox_settings
from tests.e2e.test_scenarios import run_requests, tenant_calls

ADELE = "adele.vance@contoso.com"
ALEX = "alex.wilber@contoso.com"  # in the directory, never blocked
LEE = "lee.gu@contoso.com"  # the block lingers for two reads after the unblock
LIDIA = "lidia.holloway@contoso.com"  # blocked as her alias sales@contoso.com
NOT_FOUND = "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException"


async def test_a_sender_exchange_does_not_know_is_not_listed_everywhere(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    assert tenant.exchange.unlisted_sender == "not_found"  # Exchange's strict answer
    app, cases = await run_requests(sandbox_url, tenant, tmp_path / "db", ALEX)
    await app.aclose()
    case = cases[ALEX]
    assert case.state is CaseState.VERIFIED, case.reason
    plan, unblock, first_check = (case.done(name) for name in ("plan", "unblock", "verify_0"))
    assert plan is not None and plan.data["listed"] is False
    assert unblock is not None and unblock.data["listed"] is False
    assert first_check is not None and first_check.data["listed"] is False
    assert "Remove-BlockedSenderAddress" not in tenant_calls(tenant, ALEX)


async def test_an_unblock_exchange_refused_is_never_journaled_done(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    tenant.add_fault(Fault(status=400, code="BadRequest", cmdlet="Remove-BlockedSenderAddress",
                           exception_type=NOT_FOUND, times=None,
                           message=f"The operation couldn't be performed because object "
                                   f"'{ADELE}' couldn't be found."))
    app, cases = await run_requests(sandbox_url, tenant, tmp_path / "db", ADELE)
    await app.aclose()
    case = cases[ADELE]
    assert case.state is CaseState.ESCALATED
    assert "still lists it" in (case.reason or "")
    assert case.done("unblock") is None
    assert any(s.name == "unblock" and s.status is StepStatus.FAILED for s in case.steps)
    assert case.unblocked_at is None
    assert ADELE in tenant.blocked_addresses()


async def test_block_times_exchange_wrote_unreadably_never_read_as_a_reblock(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    tenant.exchange.time_format = "unreadable"
    app, cases = await run_requests(sandbox_url, tenant, tmp_path / "db", LEE)
    await app.aclose()
    case = cases[LEE]
    assert case.state is CaseState.VERIFIED, case.reason
    assert case.block_created is None
    lingering = case.done("verify_0")
    assert lingering is not None and lingering.data == {"listed": True, "addresses": [LEE]}


@pytest.mark.parametrize("access", ["no_app_role", "no_directory_role", "role_not_supported",
                                    "not_allowed_to_call"])
async def test_exchange_without_its_rights_escalates_naming_them_before_any_change(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path, access: str) -> None:
    tenant.exchange.app_access = access  # type: ignore[assignment]
    tenant.exchange.app_access_status = 500  # Exchange's own words decide, not the status
    app, cases = await run_requests(sandbox_url, tenant, tmp_path / "db", ADELE)
    await app.aclose()
    case = cases[ADELE]
    assert case.state is CaseState.ESCALATED
    assert "Exchange.ManageAsApp" in (case.reason or "")
    assert "Exchange Administrator" in (case.reason or "")
    assert tenant.user(ADELE).password_changes == []


async def test_an_app_without_user_administrator_escalates_naming_the_role(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    tenant.app_has_user_administrator = False
    app, cases = await run_requests(sandbox_url, tenant, tmp_path / "db", ADELE)
    await app.aclose()
    case = cases[ADELE]
    assert case.state is CaseState.ESCALATED
    assert "User Administrator" in (case.reason or "")
    assert "Remove-BlockedSenderAddress" not in tenant_calls(tenant, ADELE)
    assert ADELE in tenant.blocked_addresses()


async def test_a_block_on_an_alias_is_lifted_by_the_listed_address(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    app, cases = await run_requests(sandbox_url, tenant, tmp_path / "db", ALIAS)
    await app.aclose()
    case = cases[LIDIA]  # one case for the person, keyed by the primary address
    assert case.state is CaseState.VERIFIED, case.reason
    assert (case.sender, case.listed_addresses) == (LIDIA, (ALIAS,))
    assert tenant.removals == [(ALIAS, None)]
    assert ALIAS not in tenant.blocked_addresses()
    assert len(tenant.user(LIDIA).password_changes) == 1


async def test_a_block_on_an_alias_is_found_when_the_signal_names_the_primary_address(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    app, cases = await run_requests(sandbox_url, tenant, tmp_path / "db", LIDIA)
    await app.aclose()
    case = cases[LIDIA]
    assert case.state is CaseState.VERIFIED, case.reason
    assert case.listed_addresses == (ALIAS,)  # the primary was named, the alias is listed
    assert tenant.removals == [(ALIAS, None)]


async def test_every_listed_address_of_the_account_is_unblocked_and_verified(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    tenant.block(LIDIA)  # the primary address too, besides the alias
    app, cases = await run_requests(sandbox_url, tenant, tmp_path / "db", ALIAS)
    await app.aclose()
    case = cases[LIDIA]
    assert case.state is CaseState.VERIFIED, case.reason
    assert case.listed_addresses == (ALIAS, LIDIA)
    assert sorted(tenant.removals) == sorted([(ALIAS, None), (LIDIA, None)])
    assert not {ALIAS, LIDIA} & set(tenant.blocked_addresses())


async def test_the_primary_address_is_unblocked_when_a_person_names_another(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    # A person names Adele by object id: no address named, the primary one is listed.
    adele_id = tenant.user(ADELE).id
    app, cases = await run_requests(sandbox_url, tenant, tmp_path / "db", adele_id)
    await app.aclose()
    case = cases[ADELE]
    assert case.state is CaseState.VERIFIED, case.reason
    assert case.listed_address == ADELE
    assert tenant.removals == [(ADELE, None)]


async def test_a_legacy_mailbox_whose_upn_starts_with_a_dollar_is_remediated(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    app, cases = await run_requests(sandbox_url, tenant, tmp_path / "db", LEGACY_MAILBOX)
    await app.aclose()
    case = cases[LEGACY_MAILBOX]
    assert case.state is CaseState.VERIFIED, case.reason
    assert tenant.removals == [(LEGACY_MAILBOX, None)]
    lookups = [r for r in tenant.requests() if r.method == "GET" and "users(" in r.path]
    assert lookups and all(r.status == 200 for r in lookups)


async def test_a_sender_whose_address_graph_refuses_as_a_key_is_remediated(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    obrien = "o'brien@contoso.com"
    tenant.add_user(SandboxUser(obrien, "Pat O'Brien"))
    tenant.block(obrien)

    app, cases = await run_requests(sandbox_url, tenant, tmp_path / "db", obrien)
    await app.aclose()

    case = cases[obrien]
    assert case.state is CaseState.VERIFIED, case.reason
    assert tenant.removals == [(obrien, None)]
    assert len(tenant.user(obrien).password_changes) == 1
    refused = [r for r in tenant.requests() if r.path == f"/v1.0/users/{obrien}"]
    assert refused and {r.status for r in refused} == {400}  # Graph refused it as a key


HOSTILE = {
    "exchange answers HTML with 200": [Fault(status=200, raw_body="<html>maintenance</html>",
                                             path=r"^/adminapi/", times=None)],
    "exchange answers 401 with no body": [Fault(status=401, raw_body="", path=r"^/adminapi/",
                                                authenticate='Bearer error="invalid_token"',
                                                times=None)],
    "graph answers 500 that is not JSON and 429 for ten minutes": [
        Fault(status=500, raw_body="<html>gateway</html>", method="PATCH", times=None),
        Fault(status=429, retry_after=600, method="GET", path=r"^/v1\.0/users", times=None)],
    "exchange answers empty 503": [Fault(status=503, raw_body="", path=r"^/adminapi/",
                                         times=None)],
}


@pytest.mark.slow
@pytest.mark.parametrize("story", sorted(HOSTILE))
def test_run_until_idle_never_ends_in_a_traceback(
        threaded_sandbox_url: str, tenant: SandboxTenant, tmp_path: Path, story: str) -> None:
    for fault in HOSTILE[story]:
        tenant.add_fault(fault)
    db = tmp_path / "state.db"
    env = {**os.environ, **sandbox_env(threaded_sandbox_url, tenant, db),
           "MAX_DELIVERY_COUNT": "1", "HTTP_MAX_RETRIES": "0"}
    run = [sys.executable, "-m", "remediation"]
    for user in (ADELE, LEE):
        enqueued = subprocess.run([*run, "enqueue", "--user", user], env=env,
                                  capture_output=True, text=True, timeout=60, check=False)
        assert enqueued.returncode == 0, enqueued.stderr
    result = subprocess.run([*run, "run", "--until-idle"], env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.returncode in (0, 1), result.stderr[-3000:]


async def test_a_comment_whose_answer_was_lost_is_not_posted_twice(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    raw = alert(RESTRICTED, [mailbox_evidence(ADELE)])
    tenant.add_alert(raw)
    # Graph stores the comment, but its answer comes after the client stopped waiting.
    tenant.add_fault(Fault(delay_after=1.5, method="POST", path=r"/comments$"))
    app = bootstrap(sandbox_settings(sandbox_url, tenant, tmp_path / "db",
                                     http_timeout=timedelta(seconds=1), http_max_retries=0,
                                     sweep_restricted_users=False))
    try:
        await app.intake.poll()
        await app.worker(poll_interval=0.05).run(until_idle=True)
        [case] = await app.journal.list_cases()
    finally:
        await app.aclose()
    comments = [c["comment"] for c in tenant.alert(raw["id"])["comments"]]
    assert len([c for c in comments if "resetting the password" in c]) == 1, comments
    # The retry found its comment on the alert, or came after the end notice began and was
    # refused (never "resetting the password" after "done").
    assert any("already on alert" in step.detail or (
        step.name == "alert_update_refused" and "'start'" in step.detail)
        for step in case.steps), [step.detail for step in case.steps]
    assert tenant.alert(raw["id"])["status"] == "resolved"
