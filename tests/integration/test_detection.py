"""Detection over real HTTP: alerts_v2 polling, the Restricted users sweep, alert lifecycle."""

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from remediation.adapters.credentials import StaticTokenCredential
from remediation.adapters.graph_alerts import GraphAlerts
from remediation.adapters.graph_caller import GraphCaller
from remediation.bootstrap import Application, bootstrap
from remediation.domain.alerts import alert_request_id
from remediation.domain.cases import CaseState
from remediation.domain.errors import PermanentError
from remediation.domain.requests import RemediationRequest
from remediation.sandbox import Fault, SandboxTenant, SandboxUser
from remediation.sandbox.alert_seed import (
    LIMIT,
    RESTRICTED,
    SUSPICIOUS,
    alert,
    device_evidence,
    mailbox_evidence,
    user_evidence,
)
from tests.conftest import sandbox_settings

ADELE, LEE, MEGAN = "adele.vance@contoso.com", "lee.gu@contoso.com", "megan.bowen@contoso.com"


@pytest.fixture
async def app(sandbox_url: str, tenant: SandboxTenant,
              tmp_path: Path) -> AsyncIterator[Application]:
    """The application with the sweep off, so each test sees only the alerts it adds."""
    application = bootstrap(sandbox_settings(sandbox_url, tenant, tmp_path / "state.db",
                                             http_max_retries=1, sweep_restricted_users=False))
    yield application
    await application.aclose()


async def poll_and_drain(app: Application) -> None:
    await app.intake.poll()
    await app.worker(poll_interval=0.05, retry_backoff=0.05).run(until_idle=True)


def writes(tenant: SandboxTenant) -> list[Any]:
    """Every request that changed the tenant: resets, revocations, unblocks, alert updates."""
    return [r for r in tenant.requests()
            if r.method in ("PATCH", "POST") and r.cmdlet != "Get-BlockedSenderAddress"]


def alert_writes(tenant: SandboxTenant, alert_id: str) -> list[Any]:
    return [r for r in tenant.requests()
            if alert_id in r.path and r.method in ("PATCH", "POST")]


async def test_each_title_in_any_case_opens_a_case_and_unrelated_alerts_are_untouched(
        app: Application, tenant: SandboxTenant) -> None:
    ours = [alert(RESTRICTED.upper(), [mailbox_evidence(ADELE)]),
            alert(SUSPICIOUS.lower(), [mailbox_evidence(LEE)]),
            alert(f"  {LIMIT.title()} ", [mailbox_evidence(MEGAN)])]
    unrelated = [
        alert(RESTRICTED, [mailbox_evidence("diego.siciliani@contoso.com")],
              service_source="microsoftDefenderForEndpoint"),
        alert("Email messages containing malicious URL removed after delivery",
              [mailbox_evidence("patti.fernandez@contoso.com")]),
        alert("Suspicious inbox forwarding", [device_evidence()]),
    ]
    for raw in ours + unrelated:
        tenant.add_alert(raw)

    await poll_and_drain(app)

    cases = {c.user: c for c in await app.journal.list_cases()}
    assert set(cases) == {ADELE, LEE, MEGAN}
    assert {cases[ADELE].source, cases[LEE].source} == {"alert"}
    for raw in unrelated:
        assert alert_writes(tenant, raw["id"]) == []
        assert tenant.alert(raw["id"])["status"] == "new"
    assert "diego.siciliani@contoso.com" in tenant.blocked_addresses()


async def test_verified_alerts_end_resolved_true_positive_with_comments(
        app: Application, tenant: SandboxTenant) -> None:
    raw = alert(RESTRICTED, [mailbox_evidence(ADELE, upn=""), user_evidence("", None)])
    tenant.add_alert(raw)

    await poll_and_drain(app)

    [case] = await app.journal.list_cases()
    assert case.state is CaseState.VERIFIED
    final = tenant.alert(raw["id"])
    assert (final["status"], final["classification"], final["determination"]) == (
        "resolved", "truePositive", "compromisedAccount")
    comments = [c["comment"] for c in final["comments"]]
    assert len(comments) == 2
    assert "resetting the password" in comments[0]
    assert case.case_id in comments[1]
    assert "no longer on the Restricted users list" in comments[1]


async def test_escalated_alert_stays_in_progress_with_the_reason(
        app: Application, tenant: SandboxTenant) -> None:
    raw = alert(LIMIT, [mailbox_evidence(MEGAN)])  # megan is re-blocked after the unblock
    tenant.add_alert(raw)

    await poll_and_drain(app)

    final = tenant.alert(raw["id"])
    assert final["status"] == "inProgress"
    assert final["classification"] is None
    assert "re-blocked" in final["comments"][-1]["comment"]


async def test_two_alerts_for_one_user_make_one_case_one_reset_one_unblock(
        app: Application, tenant: SandboxTenant) -> None:
    first = alert(SUSPICIOUS, [mailbox_evidence(ADELE)])
    second = alert(RESTRICTED, [user_evidence(ADELE)])
    tenant.add_alert(first)
    tenant.add_alert(second)

    await poll_and_drain(app)

    [case] = await app.journal.list_cases(ADELE)
    assert set(case.alert_ids) == {first["id"], second["id"]}
    assert len(tenant.user(ADELE).password_changes) == 1
    assert [r for r in tenant.requests()
            if r.cmdlet == "Remove-BlockedSenderAddress" and r.target == ADELE] != []
    assert len([r for r in tenant.requests()
                if r.cmdlet == "Remove-BlockedSenderAddress" and r.target == ADELE]) == 1
    for raw in (first, second):
        assert tenant.alert(raw["id"])["status"] == "resolved"


async def test_alert_paging_reads_every_page(app: Application, tenant: SandboxTenant) -> None:
    tenant.alert_page_size = 2
    for index in range(7):
        address = f"paged{index}@contoso.com"
        tenant.add_user(SandboxUser(address, f"Paged {index}"))
        tenant.add_alert(alert(RESTRICTED, [mailbox_evidence(address)]))

    report = await app.intake.poll()

    assert report.alerts_seen == 7
    assert len(report.enqueued) == 7
    pages = [r for r in tenant.requests() if r.path == "/v1.0/security/alerts_v2"]
    assert len(pages) == 4


async def test_the_sweep_finds_blocked_users_no_alert_named(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    app = bootstrap(sandbox_settings(sandbox_url, tenant, tmp_path / "db"))
    blocked = set(tenant.blocked_addresses())
    tenant.add_alert(alert(RESTRICTED, [mailbox_evidence(ADELE)]))

    await poll_and_drain(app)

    cases = {c.user: c for c in await app.journal.list_cases()}
    await app.aclose()
    # One case per blocked entry; an alias-listed block is the person's case (primary address).
    assert {c.listed_address for c in cases.values()} == blocked
    assert cases[ADELE].source == "alert"  # the alert's request, not a second sweep one
    assert [s.name for s in cases[ADELE].steps].count("merged") == 0
    johanna = cases["johanna.lorenz@contoso.com"]
    assert johanna.source == "restricted-list"
    assert johanna.state is CaseState.VERIFIED


async def test_sweep_off_leaves_unalerted_blocks_alone(
        app: Application, tenant: SandboxTenant) -> None:
    report = await app.intake.poll()
    assert report.swept == []
    assert not [r for r in tenant.requests() if r.cmdlet]


async def test_a_second_poll_and_run_remediates_nobody_again(
        app: Application, tenant: SandboxTenant) -> None:
    tenant.add_alert(alert(RESTRICTED, [mailbox_evidence(ADELE)]))
    tenant.add_alert(alert(SUSPICIOUS, [user_evidence("", None)]))  # no usable sender
    await poll_and_drain(app)
    cases_before = await app.journal.list_cases()
    writes_before = len(writes(tenant))

    await poll_and_drain(app)

    assert len(await app.journal.list_cases()) == len(cases_before)
    assert len(writes(tenant)) == writes_before
    rejected = [c for c in cases_before if c.state is CaseState.REJECTED]
    assert len(rejected) == 1
    assert "names no usable sender" in (rejected[0].reason or "")


async def test_a_manual_case_and_a_later_alert_share_one_case(
        app: Application, tenant: SandboxTenant) -> None:
    await app.requests.send(RemediationRequest(user=ADELE, request_id=uuid.uuid4().hex))
    await app.worker(poll_interval=0.05).run(until_idle=True)
    raw = alert(RESTRICTED, [mailbox_evidence(ADELE)])
    tenant.add_alert(raw)

    await poll_and_drain(app)

    [case] = await app.journal.list_cases(ADELE)
    assert case.alert_ids == (raw["id"],)
    assert len(tenant.user(ADELE).password_changes) == 1
    assert tenant.alert(raw["id"])["status"] == "resolved"


async def test_the_project_never_filters_on_title_nor_posts_comment_arrays(
        app: Application, tenant: SandboxTenant) -> None:
    tenant.add_alert(alert(RESTRICTED, [mailbox_evidence(ADELE)]))
    await poll_and_drain(app)

    listings = [r for r in tenant.requests() if r.path == "/v1.0/security/alerts_v2"]
    assert listings
    for listing in listings:
        assert listing.status == 200
        assert "title" not in listing.query.get("$filter", "").lower()
        assert "serviceSource eq" in listing.query["$filter"]
    comments = [r for r in tenant.requests() if r.path.endswith("/comments")]
    assert comments
    for comment in comments:
        assert comment.status == 200
        assert isinstance(comment.body, dict)
        assert comment.body["@odata.type"] == "microsoft.graph.security.alertComment"
        json.dumps(comment.body)


# -- a poll that cannot be blinded ------------------------------------------------------------

OTHER_OFFICE_ALERT = "Email messages containing malicious URL removed after delivery"


def flood(tenant: SandboxTenant, count: int, spam_at: dict[int, str]) -> dict[str, str]:
    """``count`` unrelated Office 365 alerts, oldest first, with an outbound-spam alert for
    ``spam_at[i]`` just before the i-th; the spam alerts' ids by address."""
    start = datetime.now(UTC) - timedelta(minutes=50)
    spam: dict[str, str] = {}
    for index in range(count):
        created = start + timedelta(milliseconds=50 * index)
        if index in spam_at:
            raw = alert(RESTRICTED, [mailbox_evidence(spam_at[index])],
                        created=created - timedelta(milliseconds=1))
            tenant.add_alert(raw)
            spam[spam_at[index]] = raw["id"]
        tenant.add_alert(alert(OTHER_OFFICE_ALERT,
                               [mailbox_evidence(f"someone{index}@contoso.com")],
                               created=created, alert_id=f"fa{index:030x}"))
    return spam


def alert_pages(tenant: SandboxTenant) -> list[Any]:
    return [r for r in tenant.requests() if r.path == "/v1.0/security/alerts_v2"]


async def test_thirty_thousand_unrelated_alerts_never_hide_an_outbound_spam_alert(
        app: Application, tenant: SandboxTenant) -> None:
    tenant.alert_page_size = 1000
    spam = flood(tenant, 30_000, {27_500: ADELE})

    report = await app.intake.poll()

    assert report.errors == []
    assert report.alerts_seen == 30_001
    assert report.enqueued == [alert_request_id(spam[ADELE])]
    assert [r.status for r in alert_pages(tenant)] == [200] * 31
    await app.worker(poll_interval=0.05, retry_backoff=0.05).run(until_idle=True)
    [case] = await app.journal.list_cases()
    assert (case.user, case.alert_ids) == (ADELE, (spam[ADELE],))


async def test_a_graph_failure_on_a_late_page_keeps_what_earlier_pages_found(
        app: Application, tenant: SandboxTenant) -> None:
    tenant.alert_page_size = 1000
    spam = flood(tenant, 6_000, {1_500: ADELE, 5_500: LEE})
    # Pages 1-3 answer; from the fourth on Graph fails, retries included.
    tenant.add_fault(Fault(status=503, path=r"^/v1\.0/security/alerts_v2$", after=3,
                           times=None))

    first = await app.intake.poll()

    assert first.enqueued == [alert_request_id(spam[ADELE])]
    assert first.alerts_seen == 3_000
    [error] = first.errors
    assert error.startswith("alerts: ") and "503" in error
    assert "after 3 page(s)" in error

    tenant.clear_faults()
    second = await app.intake.poll()  # the overlapping window reads the rest

    assert second.errors == []
    assert second.alerts_seen == 6_002
    assert set(second.enqueued) == {alert_request_id(spam[ADELE]),
                                    alert_request_id(spam[LEE])}


async def test_an_id_that_is_not_a_plain_alert_id_never_reaches_a_graph_url(
        sandbox_url: str, tenant: SandboxTenant) -> None:
    # ".." would be resolved to GET /v1.0/security, "a/b" reach a path of its own.
    graph = GraphCaller(sandbox_url, StaticTokenCredential(tenant.token), timeout=2.0,
                        max_retries=0)
    alerts = GraphAlerts(graph)
    try:
        for bad in ("..", "../../users", "fa/comments", "fa 1", "fa%2F..", "."):
            assert await alerts.get_alert(bad) is None
            with pytest.raises(PermanentError, match="not an alert id"):
                await alerts.comment(bad, "text")
            with pytest.raises(PermanentError, match="not an alert id"):
                await alerts.update(bad, {"status": "resolved"})
    finally:
        await graph.close()
    assert tenant.requests() == []


# -- evidence naming several accounts ---------------------------------------------------------


async def test_an_alert_naming_two_accounts_is_escalated_in_defender_and_touches_nobody(
        app: Application, tenant: SandboxTenant) -> None:
    raw = alert(RESTRICTED, [mailbox_evidence(ADELE), mailbox_evidence(LEE),
                             user_evidence("", None)])
    tenant.add_alert(raw)

    await poll_and_drain(app)

    [case] = await app.journal.list_cases()
    assert case.state is CaseState.ESCALATED
    assert f"{ADELE!r}, {LEE!r}" in (case.reason or "")
    assert tenant.user(ADELE).password_changes == tenant.user(LEE).password_changes == []
    assert [r for r in tenant.requests() if r.cmdlet == "Remove-BlockedSenderAddress"] == []
    final = tenant.alert(raw["id"])
    assert final["status"] == "inProgress"
    [comment] = final["comments"]
    assert ADELE in comment["comment"] and LEE in comment["comment"]


async def test_the_one_account_marked_compromised_is_remediated(
        app: Application, tenant: SandboxTenant) -> None:
    raw = alert(RESTRICTED, [mailbox_evidence(LEE), mailbox_evidence(ADELE),
                             user_evidence(ADELE)])  # the user evidence says "compromised"
    tenant.add_alert(raw)

    await poll_and_drain(app)

    [case] = await app.journal.list_cases()
    assert (case.user, case.state) == (ADELE, CaseState.VERIFIED)
    assert len(tenant.user(ADELE).password_changes) == 1
    assert tenant.user(LEE).password_changes == []
