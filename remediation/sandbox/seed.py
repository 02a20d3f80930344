"""The demo tenant: blocked users that exercise each path of the workflow."""

from __future__ import annotations

from dataclasses import dataclass, field

from remediation.sandbox.alert_seed import demo_alerts
from remediation.sandbox.state import (
    GLOBAL_ADMINISTRATOR,
    BlockBehaviour,
    SandboxTenant,
    SandboxUser,
)


@dataclass(frozen=True)
class DemoUser:
    """One seeded user: the directory entry, and how (or whether) the sender is blocked."""

    user: SandboxUser
    blocked: bool = True
    behaviour: BlockBehaviour = field(default_factory=BlockBehaviour)


def demo_users() -> list[DemoUser]:
    return [
        DemoUser(SandboxUser("adele.vance@contoso.com", "Adele Vance")),
        # Still listed at the first verification read, gone at the next.
        DemoUser(SandboxUser("lee.gu@contoso.com", "Lee Gu"),
                 behaviour=BlockBehaviour(linger_reads=2)),
        # Blocked again right after the unblock: the account is still abused.
        DemoUser(SandboxUser("megan.bowen@contoso.com", "Megan Bowen"),
                 behaviour=BlockBehaviour(reblock_after_reads=0)),
        # A Global Administrator: an app may not reset her password.
        DemoUser(SandboxUser("patti.fernandez@contoso.com", "Patti Fernandez",
                             reset_forbidden=True, role_template_ids=[GLOBAL_ADMINISTRATOR])),
        # The demo asks for him twice: the second request must change nothing.
        DemoUser(SandboxUser("diego.siciliani@contoso.com", "Diego Siciliani")),
        # Blocked with no alert (the alert policy is off): found by the sweep.
        DemoUser(SandboxUser("johanna.lorenz@contoso.com", "Johanna Lorenz")),
        DemoUser(SandboxUser("alex.wilber@contoso.com", "Alex Wilber"), blocked=False),
        DemoUser(SandboxUser("nestor.wilke@contoso.com", "Nestor Wilke"), blocked=False),
    ]


def demo_tenant(*, with_alerts: bool = True) -> SandboxTenant:
    tenant = SandboxTenant(domains=["contoso.com"])
    for seeded in demo_users():
        user = tenant.add_user(seeded.user)
        if seeded.blocked:
            tenant.block(user.user_principal_name, behaviour=seeded.behaviour)
    if with_alerts:
        for raw in demo_alerts():
            tenant.add_alert(raw)
    return tenant
