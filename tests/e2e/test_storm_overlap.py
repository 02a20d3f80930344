"""An alert storm (issue 18, the storm): `run --until-idle` secures the accounts the first
pages name while it is still paging through the rest, and a poll that dies part-way loses
nothing it read and does nothing twice.

The order is read from the tenant's own request log (which request arrived first), not from
any clock: with 40 pages read one after another and 8 calls one after another to a reset,
the first reset comes before the last page once cases start as their alerts are read."""

import io
import uuid
from pathlib import Path

from remediation.bootstrap import bootstrap
from remediation.domain.cases import CaseState
from remediation.entrypoints.runner import LocalRun
from remediation.sandbox import Fault, SandboxTenant
from remediation.sandbox.alert_seed import RESTRICTED, alert, mailbox_evidence
from tests.conftest import sandbox_settings

ADELE = "adele.vance@contoso.com"  # an ordinary account: verified
ALERTS_PATH = "/v1.0/security/alerts_v2"
PAGES = 40


def _storm(tenant: SandboxTenant) -> None:
    """Adele's outbound-spam alert on the first page, then PAGES - 1 pages of others."""
    tenant.alert_page_size = 2
    tenant.latency = 0.02
    tenant.add_alert(alert(RESTRICTED, [mailbox_evidence(ADELE)], alert_id=f"fa{uuid.uuid4()}"))
    for n in range(PAGES * 2 - 1):
        tenant.add_alert(alert("Email messages containing malicious URL removed after delivery",
                               [mailbox_evidence(f"reader{n}@contoso.com")]))


async def _run(url: str, tenant: SandboxTenant, db: Path) -> int:
    app = bootstrap(sandbox_settings(url, tenant, db, sweep_restricted_users=False))
    try:
        return await LocalRun(app, out=io.StringIO(), worker_poll=0.05).run(until_idle=True)
    finally:
        await app.aclose()


async def test_the_first_account_is_reset_while_later_pages_are_still_read(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    _storm(tenant)

    status = await _run(sandbox_url, tenant, tmp_path / "state.db")

    calls = tenant.requests()
    pages = [n for n, call in enumerate(calls) if call.path == ALERTS_PATH]
    resets = [n for n, call in enumerate(calls)
              if call.method == "PATCH" and call.path.startswith("/v1.0/users/")]
    assert len(pages) == PAGES
    assert len(resets) == 1
    assert resets[0] < pages[-1]  # secured before the storm was read to its end
    assert status == 0
    assert len(tenant.user(ADELE).password_changes) == 1


async def test_a_poll_that_dies_part_way_keeps_what_it_read_and_does_it_once(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    _storm(tenant)
    tenant.add_fault(Fault(status=500, method="GET", path=ALERTS_PATH + "$", after=PAGES // 2,
                           times=None))
    db = tmp_path / "state.db"

    first = await _run(sandbox_url, tenant, db)
    tenant.clear_faults()
    second = await _run(sandbox_url, tenant, db)  # the next poll's window reads it all again

    app = bootstrap(sandbox_settings(sandbox_url, tenant, db))
    try:
        cases = await app.journal.list_cases(ADELE)
    finally:
        await app.aclose()
    assert (first, second) == (1, 0)  # the failed source said so; then all read, all final
    assert [case.state for case in cases] == [CaseState.VERIFIED]
    assert len(tenant.user(ADELE).password_changes) == 1
    assert ADELE not in tenant.blocked_addresses()
