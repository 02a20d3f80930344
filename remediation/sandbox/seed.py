"""The demo tenant: blocked users that exercise each path of the workflow."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from remediation.sandbox.alert_seed import demo_alerts
from remediation.sandbox.clock import utc_now
from remediation.sandbox.consents import ServicePrincipal, give_consent
from remediation.sandbox.delegation import FULL_ACCESS, SEND_AS, SEND_ON_BEHALF, grant_recorded
from remediation.sandbox.inbox_rules import hidden_rule, system_rules
from remediation.sandbox.signin_methods import authenticator, phone
from remediation.sandbox.state import (
    DEFAULT_BLOCK_REASON,
    GLOBAL_ADMINISTRATOR,
    BlockBehaviour,
    SandboxTenant,
    SandboxUser,
)
from remediation.sandbox.unified_audit_log import hours_ago

BREAK_GLASS_GROUP_ID = "3f0c6a8e-2d5b-4c71-9e4a-b8d2f1a7c905"
BREAK_GLASS_GROUP = "Break-glass accounts"
EVIL_DOMAIN = "evil-mail.example"
LEGACY_MAILBOX = "$scanner@contoso.com"
ALIAS = "sales@contoso.com"
STORM_SIZE = 8
LYNNE = "lynne.robbins@contoso.com"
PLANTED_APP = "Mail Organizer Pro"  # no verified publisher
OWNERS_APP = "Contoso Travel"
LYNNE_PHONE = "+1 425 555 0142"
ATTACKER_DEVICE = "SM-G991B"
SHARED_MAILBOX = "info@contoso.com"
SHARED_GROUP = "Front Desk"  # a group holding FullAccess on the shared mailbox
NEWSLETTER = "newsletter@contoso.com"
# The recipient rate limit's Reason (domain/rate_limits.py): the token, then key=value pairs.
RATE_LIMIT_REASON = ("EmailSendingLimitExceeded;InternalRecipientCountToday=12;"
                     "ExternalRecipientCountToday=10412;ExceedingLimitType=External;"
                     "LastMessagetraceId=5f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f;"
                     "LastMessageRcptCount=250")
# Who else may use Lynne's mailbox: her assistant for months (no record in the window), and
# the account an administrator's stolen session gave FullAccess three hours before the block.
LYNNE_ASSISTANT = "alex.wilber@contoso.com"
LYNNE_INTRUDER = "megan.bowen@contoso.com"
STOLEN_ADMIN = "it.helpdesk@contoso.com"
HIDDEN_RULE_ID = 16752869479666417665  # Lynne's hidden forwarding rule (RuleIdentity)
DELETED_RULE_ID = 17639250888751054849  # the rule the attacker created and deleted


@dataclass(frozen=True)
class DemoUser:
    """One seeded user: the directory entry, and how (or whether) the sender is blocked."""

    user: SandboxUser
    blocked: bool = True
    behaviour: BlockBehaviour = field(default_factory=BlockBehaviour)
    block_as: str | None = None  # the address on the list, when it is not the primary one
    reason: str | None = None  # the block's Reason, when not the default policy block
    temporary: bool = False  # the block's TemporaryBlock


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
        # A shared mailbox: nobody signs in as it (its account is disabled); alex.wilber and
        # the Front Desk group hold FullAccess, nestor.wilke SendAs, alex SendOnBehalf
        # (delegation_grants).
        DemoUser(SandboxUser(SHARED_MAILBOX, "Info (shared mailbox)", account_enabled=False,
                             recipient_type_details="SharedMailbox")),
        # A bulk sender over the recipient rate limit: it releases itself within 24 hours.
        DemoUser(SandboxUser(NEWSLETTER, "Contoso Newsletter"), reason=RATE_LIMIT_REASON,
                 temporary=True),
        # A storm: more blocked accounts at once than the reset breaker lets through.
        *(DemoUser(SandboxUser(address, f"Storm {address[5:7]}"))
          for address in storm_addresses()),
    ]


def _lynne() -> SandboxUser:
    """Two planted rules (forward outside and mark read; hide invoices in RSS Feeds), one
    ordinary rule, and mailbox forwarding outside the organisation."""
    lynne = SandboxUser(LYNNE, "Lynne Robbins",
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
    tenant.unified_audit_log.rule_change(lynne, "New-InboxRule", {
        "Name": "Payroll", "SubjectContainsWords": "salary;payslip",
        "ForwardTo": f"payroll-copy@{EVIL_DOMAIN}", "StopProcessingRules": "True"},
        at=hours_ago(30))
    tenant.unified_audit_log.rule_change(lynne, "Remove-InboxRule", {"Identity": "Payroll"},
                                 at=hours_ago(26),
                                 object_id=f"{lynne.id}\\{DELETED_RULE_ID}")


def _rule(rule_id: str, name: str, sequence: int, conditions: dict[str, Any],
          actions: dict[str, Any]) -> dict[str, Any]:
    """An inbox rule in Graph's messageRule shape."""
    return {"id": rule_id, "displayName": name, "sequence": sequence, "isEnabled": True,
            "hasError": False, "isReadOnly": False, "conditions": conditions,
            "actions": actions, "exceptions": None}


def _lynne_consents(tenant: SandboxTenant) -> None:
    """A consent to a mail-reading app without a verified publisher, given two hours before
    the block (inside the compromise window, in the audit log), and the owner's own older
    consent to a verified app (three months ago: past the audit log's retention)."""
    lynne = tenant.user(LYNNE)
    planted = tenant.consents.add_app(ServicePrincipal(PLANTED_APP, publisher_name="MOP Apps"))
    travel = tenant.consents.add_app(ServicePrincipal(
        OWNERS_APP, publisher_name="Contoso Ltd", verified_publisher="Contoso Ltd",
        verified_at=utc_now() - timedelta(days=400)))
    for app, scope, ago, logged in (
            (planted, " Mail.ReadWrite Mail.Send offline_access User.Read",
             timedelta(hours=2), True),
            (travel, " User.Read Calendars.Read openid profile", timedelta(days=90), False)):
        give_consent(tenant.consents, tenant.audit_log, user_id=lynne.id,
                     upn=lynne.user_principal_name, app=app, scope=scope,
                     at=utc_now() - ago, logged=logged)


def _lynne_sign_in(tenant: SandboxTenant, lynne: SandboxUser) -> None:
    """Her own phone, registered three weeks ago and her default (Graph gives phones no
    createdDateTime: the audit log dates it), and the Authenticator the attacker registered
    on their own phone two hours before the block."""
    now = utc_now()
    upn = lynne.user_principal_name
    tenant.signin.register(lynne.id, upn, phone(LYNNE_PHONE, registered=now - timedelta(days=21)),
                           default=True)
    tenant.signin.register(lynne.id, upn, authenticator(ATTACKER_DEVICE,
                                                        registered=now - timedelta(hours=2)))


def delegation_grants(tenant: SandboxTenant) -> None:
    """Who may use the shared mailbox besides itself."""
    shared = tenant.user(SHARED_MAILBOX)
    alex, nestor = tenant.user("alex.wilber@contoso.com"), tenant.user("nestor.wilke@contoso.com")
    tenant.mailbox_grants.grant(shared, alex, FULL_ACCESS)
    tenant.mailbox_grants.grant(shared, SHARED_GROUP, FULL_ACCESS)
    tenant.mailbox_grants.grant(shared, nestor, SEND_AS)
    tenant.mailbox_grants.grant(shared, alex, SEND_ON_BEHALF)


def _lynne_delegates(tenant: SandboxTenant) -> None:
    lynne = tenant.user(LYNNE)
    tenant.mailbox_grants.grant(lynne, tenant.user(LYNNE_ASSISTANT), SEND_ON_BEHALF)
    grant_recorded(tenant, lynne, tenant.user(LYNNE_INTRUDER), FULL_ACCESS, actor=STOLEN_ADMIN,
                   at=hours_ago(3), by_id=True)


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
            tenant.block(seeded.block_as or user.address, behaviour=seeded.behaviour,
                         temporary=seeded.temporary, reason=seeded.reason or DEFAULT_BLOCK_REASON)
    delegation_grants(tenant)
    _lynne_consents(tenant)
    _lynne_sign_in(tenant, tenant.user("lynne.robbins@contoso.com"))
    _lynne_history(tenant)
    _lynne_delegates(tenant)
    if with_alerts:
        for raw in demo_alerts():
            tenant.add_alert(raw)
    return tenant
