"""Claims are checked (issue 10, point 3), end to end against the sandbox tenant: alert ids a
message names are read back before anything is said on them, an approval must name the
case's user and sees the account as it is when approved, and ``force`` is a manual request's
alone and still counts toward the hourly limit."""

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from remediation.adapters.queue_limits import session_id_for
from remediation.bootstrap import Application
from remediation.domain.cases import Case, CaseState, StepStatus
from remediation.domain.requests import RemediationRequest
from remediation.domain.roles import GLOBAL_ADMINISTRATOR
from remediation.sandbox import SandboxTenant
from remediation.sandbox.alert_seed import (
    RESTRICTED,
    SUSPICIOUS,
    alert,
    device_evidence,
    mailbox_evidence,
    user_evidence,
)
from remediation.sandbox.seed import BREAK_GLASS_GROUP_ID
from remediation.service.messages import Approval
from tests.e2e.test_safety import ADELE, LYNNE, app_for, changed, remediate

LIDIA, LIDIA_ALIAS = "lidia.holloway@contoso.com", "sales@contoso.com"


async def send_raw(app: Application, fields: dict[str, Any], user: str) -> None:
    """A hand-written message on the requests queue, as anyone with send rights can write."""
    assert app.queue is not None
    await app.queue.send(app.settings.remediation_queue, json.dumps(fields),
                         message_id=uuid.uuid4().hex, session_id=session_id_for(user))


async def run(app: Application) -> list[Case]:
    await app.worker(poll_interval=0.05, retry_backoff=0.05).run(until_idle=True)
    return await app.journal.list_cases()


def untouched(tenant: SandboxTenant, alert_id: str) -> bool:
    raw = tenant.alert(alert_id)
    return raw["status"] == "new" and raw["comments"] == [] and raw["classification"] is None


def ignored(case: Case) -> dict[str, str]:
    return {step.data["alert_id"]: step.detail for step in case.steps
            if step.name == "alert_ignored"}


# -- alert ids in a request are read back ---------------------------------------------------


@pytest.mark.parametrize("claimed", [{}, {"source": "alert"}])
async def test_alert_ids_a_queue_message_names_are_read_back_and_only_ours_are_touched(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path,
        claimed: dict[str, str]) -> None:
    # Whatever source the message claims: a queue message can say "alert" as easily.
    ours = alert(RESTRICTED, [mailbox_evidence(ADELE)])
    alias = alert(SUSPICIOUS, [mailbox_evidence(LIDIA_ALIAS)])  # another person's alias
    # Endpoint ransomware on Adele's laptop: about her, but not outbound spam.
    ransomware = alert("Ransomware activity detected", [device_evidence(), user_evidence(ADELE)],
                       service_source="microsoftDefenderForEndpoint", severity="high")
    phish = alert("Email messages containing malicious URL removed after delivery",
                  [mailbox_evidence(ADELE)])
    lynne = alert(RESTRICTED, [mailbox_evidence(LYNNE)])  # outbound spam, but Lynne's
    for raw in (ours, alias, ransomware, phish, lynne):
        tenant.add_alert(raw)
    app = app_for(sandbox_url, tenant, tmp_path / "db")
    named = [ransomware["id"], ours["id"], phish["id"], lynne["id"], alias["id"],
             "da000000000000000000_0"]

    await send_raw(app, {"user": ADELE, "alert_ids": named, **claimed}, ADELE)
    [case] = await run(app)
    await app.aclose()

    assert case.state is CaseState.VERIFIED
    assert case.alert_ids == (ours["id"],)
    raw = tenant.alert(ours["id"])
    assert (raw["status"], raw["classification"], raw["determination"]) == (
        "resolved", "truePositive", "compromisedAccount")
    assert len(raw["comments"]) == 2  # "start" and "verified"
    for other in (ransomware, phish, lynne, alias):
        assert untouched(tenant, other["id"]), other["title"]
    reasons = ignored(case)
    assert set(reasons) == set(named) - {ours["id"]}
    assert "microsoftDefenderForEndpoint" in reasons[ransomware["id"]]
    assert "not an outbound-spam alert" in reasons[phish["id"]]
    assert LYNNE in reasons[lynne["id"]]
    assert LIDIA_ALIAS in reasons[alias["id"]]
    assert "not found" in reasons["da000000000000000000_0"]
    assert len(tenant.user(ADELE).password_changes) == 1  # the account itself was secured


async def test_an_alert_naming_an_alias_of_the_user_is_confirmed(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    by_alias = alert(SUSPICIOUS, [mailbox_evidence(LIDIA_ALIAS)])
    by_object_id = alert(RESTRICTED, [user_evidence(None, tenant.user(LIDIA).id)])
    tenant.add_alert(by_alias)
    tenant.add_alert(by_object_id)
    app = app_for(sandbox_url, tenant, tmp_path / "db")

    await send_raw(app, {"user": LIDIA, "alert_ids": [by_alias["id"], by_object_id["id"]],
                         "source": "manual"}, LIDIA)
    [case] = await run(app)
    await app.aclose()

    assert case.state is CaseState.VERIFIED, case.reason
    assert case.alert_ids == (by_alias["id"], by_object_id["id"])
    assert ignored(case) == {}
    assert all(tenant.alert(a["id"])["status"] == "resolved" for a in (by_alias, by_object_id))


async def test_polled_alerts_are_read_back_once_before_any_comment(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    raw = alert(RESTRICTED, [mailbox_evidence(ADELE)])
    tenant.add_alert(raw)
    app = app_for(sandbox_url, tenant, tmp_path / "db")

    await app.intake.poll()
    [case] = await run(app)
    await app.aclose()

    assert case.state is CaseState.VERIFIED
    assert tenant.alert(raw["id"])["status"] == "resolved"
    reads = [r for r in tenant.requests()
             if r.method == "GET" and r.path == f"/v1.0/security/alerts_v2/{raw['id']}"]
    assert len(reads) == 1  # the claim is checked once; comments are read only when unsure


# -- approvals ------------------------------------------------------------------------------


async def waiting_case(app: Application, user: str = LYNNE) -> Case:
    cases = await remediate(app, user, source="alert")
    case = cases[user]
    assert case.state is CaseState.AWAITING_APPROVAL
    return case


async def test_an_approval_naming_another_user_is_rejected_and_nothing_runs(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    app = app_for(sandbox_url, tenant, tmp_path / "db", mode="approve")
    waiting = await waiting_case(app)

    await app.requests.send_approval(Approval(waiting.case_id, ADELE, "security lead"))
    cases = await run(app)
    await app.aclose()

    still = next(c for c in cases if c.case_id == waiting.case_id)
    assert still.state is CaseState.AWAITING_APPROVAL
    assert changed(tenant, LYNNE) == []
    assert not tenant.user(LYNNE).password_changes
    [rejected] = [c for c in cases if c.state is CaseState.REJECTED]
    assert f"names {ADELE}" in (rejected.reason or "")
    assert LYNNE in (rejected.reason or "")
    refused = [s for s in still.steps if s.name == "approval_refused"]
    assert len(refused) == 1
    assert refused[0].detail == rejected.reason


@pytest.mark.parametrize("approved_by", ["lead\x1b[2J\x1b[Hremediation approved", "a\nb",
                                         "x" * 257, "  "])
async def test_an_approval_by_a_name_that_is_not_plain_text_is_rejected(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path, approved_by: str) -> None:
    app = app_for(sandbox_url, tenant, tmp_path / "db", mode="approve")
    waiting = await waiting_case(app)

    await send_raw(app, {"schema": 1, "kind": "approve", "case_id": waiting.case_id,
                         "user": LYNNE, "approved_by": approved_by}, LYNNE)
    cases = await run(app)
    await app.aclose()

    still = next(c for c in cases if c.case_id == waiting.case_id)
    assert still.state is CaseState.AWAITING_APPROVAL
    assert not tenant.user(LYNNE).password_changes
    [rejected] = [c for c in cases if c.state is CaseState.REJECTED]
    assert "'approved_by'" in (rejected.reason or "")
    assert "\x1b" not in json.dumps([c.to_dict() for c in cases])


@pytest.mark.parametrize("change", ["admin role", "protected group"])
async def test_an_account_made_admin_or_protected_while_waiting_escalates_on_approval(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path, change: str) -> None:
    app = app_for(sandbox_url, tenant, tmp_path / "db", mode="approve")
    waiting = await waiting_case(app)
    if change == "admin role":
        tenant.user(LYNNE).role_template_ids.append(GLOBAL_ADMINISTRATOR)
    else:
        tenant.user(LYNNE).group_ids.append(BREAK_GLASS_GROUP_ID)

    await app.requests.send_approval(Approval(waiting.case_id, LYNNE, "security lead"))
    await run(app)
    case = await app.journal.get_case(waiting.case_id)
    await app.aclose()

    assert case is not None
    assert case.state is CaseState.ESCALATED
    assert ("directory role" if change == "admin role" else "protected group") in (
        case.reason or "")
    assert not tenant.user(LYNNE).password_changes
    assert LYNNE in tenant.blocked_addresses()
    assert [r for r in changed(tenant, LYNNE)] == []
    again = case.done("guardrails_on_approval")
    assert again is not None
    assert again.data["verdict"] == "escalate"


async def test_on_approval_the_breaker_counts_the_resets_made_while_the_case_waited(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    app = app_for(sandbox_url, tenant, tmp_path / "db", mode="approve",
                  max_remediations_per_hour=1)
    waiting = await waiting_case(app)
    await remediate(app, ADELE)  # manual: proceeds at once and takes the one place

    await app.requests.send_approval(Approval(waiting.case_id, LYNNE, "security lead"))
    await run(app)
    case = await app.journal.get_case(waiting.case_id)
    await app.aclose()

    assert case is not None
    assert case.state is CaseState.ESCALATED
    assert "circuit breaker open" in (case.reason or "")
    assert not tenant.user(LYNNE).password_changes


# -- force ----------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["alert", "restricted-list"])
async def test_a_queue_message_claiming_force_with_another_source_is_refused(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path, source: str) -> None:
    app = app_for(sandbox_url, tenant, tmp_path / "db", max_remediations_per_hour=0)

    await send_raw(app, {"user": ADELE, "source": source, "force": True}, ADELE)
    [case] = await run(app)
    await app.aclose()

    assert case.state is CaseState.REJECTED
    assert case.reason == (f"'force' is accepted only on manual requests (source 'manual'), "
                           f"not on a request with source {source!r}")
    assert changed(tenant, ADELE) == []
    assert not tenant.user(ADELE).password_changes


async def test_a_forced_reset_takes_a_place_in_the_hourly_count(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    app = app_for(sandbox_url, tenant, tmp_path / "db", max_remediations_per_hour=1)
    await app.requests.send(RemediationRequest(user=ADELE, force=True,
                                               request_id=uuid.uuid4().hex))
    [forced] = await run(app)

    cases = await remediate(app, LYNNE, source="alert")
    await app.aclose()

    assert forced.state is CaseState.VERIFIED
    breaker = forced.done("circuit_breaker")
    assert breaker is not None
    assert "counts toward" in breaker.detail
    assert cases[LYNNE].state is CaseState.ESCALATED
    assert "circuit breaker open" in (cases[LYNNE].reason or "")
    assert not tenant.user(LYNNE).password_changes
    assert [s.status for s in cases[LYNNE].steps if s.name == "circuit_breaker"] == [
        StepStatus.STARTED, StepStatus.FAILED]
