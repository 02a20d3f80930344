"""Hostile tester 14b: what the second attack on issue 14 found (each test fails on the code
it was written against)."""

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from remediation.bootstrap import Application, bootstrap
from remediation.domain.cases import Case, CaseState
from remediation.domain.requests import RemediationRequest
from remediation.sandbox import SandboxTenant
from remediation.sandbox.clock import utc_now
from remediation.sandbox.faults import Fault
from remediation.sandbox.signin_methods import phone, software_oath
from tests.conftest import sandbox_settings

ADELE = "adele.vance@contoso.com"


def app_for(url: str, tenant: SandboxTenant, db: Path, **changes: Any) -> Application:
    return bootstrap(sandbox_settings(url, tenant, db, sweep_restricted_users=False, **changes))


async def remediate(app: Application, user: str) -> Case:
    await app.requests.send(RemediationRequest(user=user, request_id=uuid.uuid4().hex))
    await app.worker(poll_interval=0.05, retry_backoff=0.05).run(until_idle=True)
    [case] = [case for case in await app.journal.list_cases() if case.user == user]
    return case


async def test_a_method_removed_before_a_503_stays_in_the_journal_with_its_undo(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    """Two attacker methods; the first DELETE succeeds, the second meets a 503. The retry
    surveys again, no longer sees the first one, and journals only the second: the tenant
    lost a method the journal never says was removed, nor how to restore it."""
    now = utc_now()
    user_id = tenant.user(ADELE).id
    tenant.signin.register(user_id, ADELE, phone("+44 7700 900123",
                                                 registered=now - timedelta(hours=3)))
    tenant.signin.register(user_id, ADELE, software_oath("JBSWY3DPEHPK3PXP",
                                                         registered=now - timedelta(hours=2)))
    tenant.add_fault(Fault(status=503, method="DELETE", path="/authentication/", after=1,
                          times=4))
    app = app_for(sandbox_url, tenant, tmp_path / "db")
    case = await remediate(app, ADELE)
    await app.aclose()

    deleted = [r.path for r in tenant.requests()
               if r.method == "DELETE" and "/authentication/" in r.path and r.status == 204]
    assert len(deleted) == 2 and tenant.signin.held(user_id) == []
    assert case.state is CaseState.VERIFIED
    changes = [change for step in case.steps if step.name == "signin_methods"
               for change in step.data.get("changes", [])]
    assert len(changes) == 2, f"the tenant lost two methods, the journal says: {changes}"


LYNNE = "lynne.robbins@contoso.com"


async def test_an_inbox_rule_disabled_before_a_503_stays_in_the_journal(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path) -> None:
    """Lynne's two planted rules; the first PATCH succeeds, the second meets a 503. The retry
    reads the rules again, no longer finds the first (now disabled) suspicious, and the
    hygiene step journals only the second: a rule the robot disabled is on no record, in
    no card, with nothing to say it was the robot (nor to re-enable it)."""
    tenant.add_fault(Fault(status=503, method="PATCH", path="messageRules", after=1, times=4))
    app = app_for(sandbox_url, tenant, tmp_path / "db")
    case = await remediate(app, LYNNE)
    await app.aclose()

    patched = [r.path for r in tenant.requests()
               if r.method == "PATCH" and "messageRules" in r.path and r.status < 300]
    assert len(patched) == 2
    assert case.state is CaseState.VERIFIED
    step = case.done("mailbox_hygiene")
    assert step is not None
    rules = [finding["rule_id"] for finding in step.data["findings"] if finding["rule_id"]]
    assert len(rules) == 2, f"two rules were disabled, the journal names {rules}: {step.detail}"
