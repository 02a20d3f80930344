"""What the reliability scenarios share: a tenant of blocked users with one Defender alert
each, the tenant-side counts (resets, unblocks) and the journal-side ones they are held to."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from remediation.domain.cases import Case, StepStatus
from remediation.sandbox import BlockBehaviour, Fault, SandboxTenant, SandboxUser
from remediation.sandbox.alert_seed import RESTRICTED, alert, mailbox_evidence

RESET, UNBLOCK_CMDLET = "reset_password", "Remove-BlockedSenderAddress"
# Graph and Exchange only: the managed identity and control endpoints stay clear of faults.
TENANT_CALLS = r"^/(v1\.0|beta|adminapi)/"


def address(index: int) -> str:
    return f"user{index:03d}@contoso.com"


def blocked_tenant(users: int, behaviour: BlockBehaviour | None = None,
                   ) -> tuple[SandboxTenant, list[dict[str, Any]]]:
    """``users`` ordinary accounts, each on the Restricted users list (its block behaving as
    ``behaviour`` says) with one "User restricted from sending email" alert naming its
    mailbox."""
    tenant = SandboxTenant()
    alerts = []
    for index in range(users):
        user = tenant.add_user(SandboxUser(address(index), f"User {index:03d}"))
        tenant.block(user.user_principal_name, behaviour=behaviour)
        raw = alert(RESTRICTED, [mailbox_evidence(user.user_principal_name)])
        tenant.add_alert(raw)
        alerts.append(raw)
    return tenant, alerts


def add_chaos(tenant: SandboxTenant, *, seed: int, late_after: timedelta,
              throttled: float = 0.20, unavailable: float = 0.05, late: float = 0.01,
              retry_after: float = 1.0) -> None:
    """Of all Graph and Exchange calls: ``throttled`` answered 429 with ``Retry-After``,
    ``unavailable`` answered 503, ``late`` applied and answered ``late_after`` later (after
    the client gave up). One draw per fault in turn, so each is given the share of the calls
    the faults before it spared."""
    tenant.seed_faults(seed)
    tenant.add_fault(Fault(status=429, code="TooManyRequests", retry_after=retry_after,
                           message="Too many requests", times=None, path=TENANT_CALLS,
                           chance=throttled))
    spared = 1 - throttled
    tenant.add_fault(Fault(status=503, times=None, path=TENANT_CALLS,
                           chance=unavailable / spared))
    spared -= unavailable
    tenant.add_fault(Fault(delay_after=late_after.total_seconds(), times=None,
                           path=TENANT_CALLS, chance=late / spared))


def applied_unblocks(tenant: SandboxTenant) -> Counter[str]:
    """Blocks Exchange really lifted, per address (the tenant's own record)."""
    return Counter(sender for sender, _ in tenant.removals)


def unblock_calls(tenant: SandboxTenant) -> Counter[str]:
    """Remove-BlockedSenderAddress calls per address that reached Exchange's handler: answered
    200, or applied and answered too late (499); a 429 or 503 fault never reached it, and a
    400 "couldn't be found" lifted nothing."""
    return Counter((r.target or "").lower() for r in tenant.requests()
                   if r.cmdlet == UNBLOCK_CMDLET and r.status in (200, 499))


def resets(tenant: SandboxTenant) -> dict[str, int]:
    return {user.user_principal_name: len(user.password_changes) for user in tenant.users()}


def reset_attempts(cases: Iterable[Case]) -> Counter[str]:
    """Reset attempts the journal shows per user: each ``reset_password`` started."""
    return Counter(case.user for case in cases for step in case.steps
                   if step.name == RESET and step.status is StepStatus.STARTED)


def repeated_done_steps(case: Case) -> list[str]:
    """Steps journaled ``done`` more than once in one case."""
    done = Counter(step.name for step in case.steps if step.status is StepStatus.DONE)
    return sorted(name for name, count in done.items() if count > 1)


def story(case: Case) -> list[tuple[str, str, str]]:
    return [(step.name, step.status.value, step.detail[:120]) for step in case.steps]


@dataclass(frozen=True)
class Tally:
    """What a run left, for the failure messages and the report."""

    states: Counter[str]
    calls: int
    faults: Counter[int]

    @classmethod
    def of(cls, cases: Iterable[Case], tenant: SandboxTenant) -> Tally:
        requests = tenant.requests()
        return cls(Counter(case.state.value for case in cases), len(requests),
                   Counter(r.status for r in requests if r.status in (429, 499, 503)))
