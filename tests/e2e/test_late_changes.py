"""A change the tenant carries out and answers after the client gave up, at each step that
cleans the mailbox: the change is not sent again in the call, and the journal still records
it (the next attempt no longer finds what it changed, and takes it from the journal)."""

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from remediation.bootstrap import bootstrap
from remediation.domain.cases import StepStatus
from remediation.domain.requests import RemediationRequest
from remediation.sandbox import Fault, SandboxTenant
from remediation.service.journaling import HYGIENE
from tests.conftest import sandbox_settings

LYNNE = "lynne.robbins@contoso.com"
TIMEOUT = timedelta(seconds=0.5)
# {change: (where the fault strikes, the step, what its done entry must name)}
CHANGES: dict[str, tuple[dict[str, Any], str, str]] = {
    # Lynne's rule ".." forwards all her mail out (the demo tenant's seed).
    "inbox rule": ({"method": "PATCH", "path": r"/messageRules/"}, HYGIENE, ".."),
    "forwarding": ({"cmdlet": "Set-Mailbox"}, HYGIENE, "mailbox forwarding"),
    "sign-in method": ({"method": "DELETE", "path": r"/authentication/"}, "signin_methods",
                       "removed"),
    "consent grant": ({"method": "DELETE", "path": r"/oauth2PermissionGrants/"},
                      "consent_grants", "removed"),
    "hidden inbox rule": ({"cmdlet": "Disable-InboxRule"}, "exchange_inbox_rules",
                          "removed"),
}


def named(data: dict[str, Any], step: str) -> list[str]:
    """What a done entry names: the hygiene's findings, or the keys a cleanup removed
    (as "removed" when there are any)."""
    if step == HYGIENE:
        return [finding["name"] for finding in data["findings"]]
    return ["removed"] if data["removed"] else []


@pytest.mark.parametrize("change", sorted(CHANGES))
async def test_a_mailbox_change_applied_and_answered_late_stays_on_record(
        sandbox_url: str, tenant: SandboxTenant, tmp_path: Path, change: str) -> None:
    where, step, name = CHANGES[change]
    tenant.add_fault(Fault(delay_after=(TIMEOUT * 3).total_seconds(), **where))
    settings = sandbox_settings(sandbox_url, tenant, tmp_path / "db",
                                sweep_restricted_users=False, http_timeout=TIMEOUT,
                                verify_delays=(timedelta(seconds=0.1),))
    app = bootstrap(settings)
    try:
        await app.requests.send(RemediationRequest(user=LYNNE, request_id=uuid.uuid4().hex))
        await app.worker(poll_interval=0.02, retry_backoff=0.02).run(until_idle=True)
        [case] = await app.journal.list_cases()
    finally:
        await app.aclose()

    story = [(s.name, s.status.value, s.detail[:100]) for s in case.steps]
    assert case.state.value == "verified", story
    [done] = [s for s in case.steps if s.name == step and s.status is StepStatus.DONE]
    assert name in named(done.data, step), story
