"""Every permission and directory role the worker needs, why, and which code uses it.

The one source of truth: ``infra/grant-permissions.sh`` grants exactly these application
permissions and assigns exactly these directory roles, and the README's "Permissions (least
privilege)" table lists each of them (``tests/unit/test_permissions.py`` checks both). An
adapter that starts calling something new adds it here first.

Sources: the Graph v1.0 reference page of each call (named in the adapters' docstrings, and
the "Permissions" section of each page); "App-only authentication in Exchange Online
PowerShell" (https://learn.microsoft.com/powershell/exchange/app-only-auth-powershell-v2) for
``Exchange.ManageAsApp`` and the directory role it needs;
msgraph-sdk ``msgraph/generated/models/user.py`` (``password_profile``) and Graph's "Update
user" (https://learn.microsoft.com/graph/api/user-update) for the role a password reset needs.
"""

from dataclasses import dataclass

MICROSOFT_GRAPH = "Microsoft Graph"
EXCHANGE_ONLINE = "Office 365 Exchange Online"
# The resource applications' appIds, the same in every tenant.
RESOURCE_APP_IDS = {
    MICROSOFT_GRAPH: "00000003-0000-0000-c000-000000000000",
    EXCHANGE_ONLINE: "00000002-0000-0ff1-ce00-000000000000",
}


@dataclass(frozen=True)
class Permission:
    """An application permission (app role) on ``resource``, admin-consented."""

    name: str
    resource: str
    reason: str
    used_by: str


TENANT_WIDE = "/"  # a role assignment's directoryScopeId for the whole tenant
ADMINISTRATIVE_UNIT = "/administrativeUnits/{unit}"  # ... for one administrative unit


@dataclass(frozen=True)
class DirectoryRole:
    """A Microsoft Entra built-in role assigned to the app's service principal, at
    ``scope`` (a unifiedRoleAssignment's directoryScopeId: TENANT_WIDE, or
    ADMINISTRATIVE_UNIT with the unit's id in it)."""

    name: str
    template_id: str
    reason: str
    used_by: str
    scope: str = TENANT_WIDE


PERMISSIONS: tuple[Permission, ...] = (
    Permission("User.Read.All", MICROSOFT_GRAPH,
               "look accounts up by object id, UPN, mail or SMTP alias (proxyAddresses), "
               "with creationType for the external-account guardrail",
               "remediation/adapters/graph_directory.py: GraphDirectory.find_user"),
    Permission("User-PasswordProfile.ReadWrite.All", MICROSOFT_GRAPH,
               "reset the password (change forced at next sign-in); app-only it also needs "
               "the User Administrator directory role",
               "remediation/adapters/graph_directory.py: GraphDirectory.reset_password"),
    Permission("User.RevokeSessions.All", MICROSOFT_GRAPH,
               "revoke sign-in sessions and refresh tokens",
               "remediation/adapters/graph_directory.py: GraphDirectory.revoke_sessions"),
    Permission("User.EnableDisableAccount.All", MICROSOFT_GRAPH,
               "block sign-in (accountEnabled false) when verification finds the attacker "
               "back and RETURN_ACTION=disable; app-only it also needs the User "
               "Administrator directory role",
               "remediation/adapters/graph_directory.py: GraphDirectory.disable_sign_in"),
    Permission("GroupMember.Read.All", MICROSOFT_GRAPH,
               "guardrails: transitive group memberships (protected groups, role-assignable "
               "groups) and active tenant-wide roles (transitiveMemberOf); the owners of each "
               "protected group (GET /groups/{id}/owners) and the groups a PIM for Groups "
               "group is nested in (GET /groups/{id}/transitiveMemberOf): the least "
               "privileged application permission of each (Graph v1.0, List group owners, "
               "List group transitive memberOf). /users/{id}/ownedObjects would say the same "
               "but takes no application permission at all (Graph v1.0, List ownedObjects)",
               "remediation/adapters/graph_roles.py: GraphRoles.memberships"),
    Permission("RoleManagement.Read.Directory", MICROSOFT_GRAPH,
               "guardrails: role assignments at any scope (administrative units), custom "
               "roles, roles held through groups, and PIM eligibility; one permission covers "
               "roleAssignments and roleEligibilityScheduleInstances",
               "remediation/adapters/graph_roles.py: GraphRoles.memberships"),
    Permission("PrivilegedEligibilitySchedule.Read.AzureADGroup", MICROSOFT_GRAPH,
               "guardrails: PIM for Groups eligibility (eligibilityScheduleInstances): an "
               "account eligible to join or own a group that holds a directory role; the "
               "least privileged application permission of that list (Graph v1.0 "
               "privilegedAccessGroup, List eligibilityScheduleInstances)",
               "remediation/adapters/graph_roles.py: GraphRoles.memberships"),
    Permission("PrivilegedAssignmentSchedule.Read.AzureADGroup", MICROSOFT_GRAPH,
               "guardrails: PIM for Groups assignments (assignmentScheduleInstances): an "
               "account that is a member or owner of such a group through PIM (ownership is "
               "not in transitiveMemberOf); the least privileged application permission of "
               "that list (Graph v1.0 privilegedAccessGroup, List assignmentScheduleInstances)",
               "remediation/adapters/graph_roles.py: GraphRoles.memberships"),
    Permission("Domain.Read.All", MICROSOFT_GRAPH,
               "the tenant's domains: which are federated (guardrail) and which are ours "
               "(forwarding outside the organisation)",
               "remediation/adapters/graph_directory.py: GraphDirectory.tenant_domains"),
    Permission("SecurityAlert.ReadWrite.All", MICROSOFT_GRAPH,
               "read Defender alerts (alerts_v2), comment on them and resolve them",
               "remediation/adapters/graph_alerts.py: GraphAlerts"),
    Permission("MailboxSettings.ReadWrite", MICROSOFT_GRAPH,
               "read inbox rules and disable a suspicious one; remediation undo enables it "
               "again (the same PATCH of the messageRule, isEnabled true)",
               "remediation/adapters/mailbox.py: GraphExchangeMailbox.inbox_rules, "
               "disable_rule; remediation/adapters/tenant_restorer.py: "
               "TenantRestorer.enable_graph_rule"),
    Permission("Mail.ReadBasic.All", MICROSOFT_GRAPH,
               "mail folders: list their names (to show where a rule moves mail) and read "
               "the well-known ones by name (/mailFolders/archive, ...: which folder it is, "
               "whatever the mailbox's language); least privileged for both (Graph v1.0, "
               "List mailFolders, Get mailFolder)",
               "remediation/adapters/mailbox.py: GraphExchangeMailbox.folder_names, "
               "well_known_folders"),
    Permission("UserAuthenticationMethod.ReadWrite.All", MICROSOFT_GRAPH,
               "sign-in methods: list the account's methods and delete those registered in "
               "the compromise window (SIGNIN_CLEANUP=remove). The least privileged "
               "application permission that both lists them (Graph v1.0 List methods: "
               "UserAuthenticationMethod.Read.All, then this) and deletes every type (each "
               "Delete ...AuthenticationMethod page names this; the per-type "
               "UserAuthMethod-*.ReadWrite.All cover one type each)",
               "remediation/adapters/graph_signin_methods.py: GraphSignInMethods.survey, "
               "remove"),
    Permission("DelegatedPermissionGrant.ReadWrite.All", MICROSOFT_GRAPH,
               "app consents: revoke a consent the account gave inside the compromise window "
               "(DELETE /oauth2PermissionGrants/{id}), and give it back on remediation undo "
               "(POST /oauth2PermissionGrants); the least privileged application permission "
               "of Graph v1.0 Delete oAuth2PermissionGrant and of Create "
               "oAuth2PermissionGrant (microsoft-graph-docs-contrib "
               "api-reference/v1.0/api/oauth2permissiongrant-post.md)",
               "remediation/adapters/graph_consents.py: GraphConsentGrants.remove; "
               "remediation/adapters/tenant_restorer.py: TenantRestorer.create_grant"),
    Permission("Directory.Read.All", MICROSOFT_GRAPH,
               "app consents: the account's and the organisation's delegated permission "
               "grants (least privileged for Graph v1.0 List oAuth2PermissionGrants) and each "
               "app's publisher (Get servicePrincipal: Application.Read.All would do alone, "
               "this covers it); the directory audit log needs it too (List directoryAudits: "
               "AuditLog.Read.All and Directory.Read.All; microsoft-graph-docs #13632)",
               "remediation/adapters/graph_consents.py: GraphConsentGrants.survey; "
               "remediation/adapters/graph_signin_methods.py: GraphSignInMethods.survey; "
               "remediation/adapters/tenant_restorer.py: TenantRestorer.grant (undo reads a "
               "grant before giving it back: Get oAuth2PermissionGrant)"),
    Permission("AuditLog.Read.All", MICROSOFT_GRAPH,
               "the directory audit log: when the account consented to an app (\"Consent to "
               "application\" records it initiated) and when a sign-in method Graph gives no "
               "createdDateTime for (phone, email, software OATH) was registered ('User "
               "registered security info', 'Admin registered security info'); with "
               "Directory.Read.All, the least privileged pair of Graph v1.0 List "
               "directoryAudits",
               "remediation/adapters/graph_audit_log.py: directory_audits; "
               "remediation/adapters/graph_signin_methods.py: GraphSignInMethods.survey"),
    Permission("Exchange.ManageAsApp", EXCHANGE_ONLINE,
               "call Exchange admin REST (InvokeCommand) as the app: Restricted users "
               "cmdlets, Get-/Set-Mailbox, Get-MailboxPermission / Get-RecipientPermission (a "
               "shared mailbox's delegates), inbox rules Graph never shows (Get-InboxRule "
               "-IncludeHidden, Disable-InboxRule, Get-MailboxFolderStatistics) and their "
               "history (Get-AdminAuditLogConfig, Search-UnifiedAuditLog); remediation undo's "
               "Enable-InboxRule and Set-Mailbox (forwarding set back); also needs the "
               "Exchange Administrator role",
               "remediation/adapters/exchange_client.py: ExchangeAdminClient (used by "
               "exchange_restricted.py, mailbox.py, mailbox_delegation.py, "
               "exchange_rules.py and tenant_restorer.py)"),
)

DIRECTORY_ROLES: tuple[DirectoryRole, ...] = (
    DirectoryRole("User Administrator", "fe930be7-5e62-47db-91af-98c3a49a38b1",
                  "app-only password resets: User-PasswordProfile.ReadWrite.All alone is not "
                  "enough, the app must hold at least User Administrator (msgraph-sdk "
                  "models/user.py, password_profile); without it every reset answers 403 "
                  "Authorization_RequestDenied. It can also reset some administrators "
                  "(Helpdesk, Password, Groups and User Administrators, ...: Microsoft Graph, "
                  "Working with users, Who can reset passwords): the guardrails, not the role, "
                  "keep administrators out of the robot's reach",
                  "remediation/adapters/graph_directory.py: GraphDirectory.reset_password"),
    DirectoryRole("Exchange Administrator", "29232cdf-9323-42fd-ade2-1d097af3e4de",
                  "Exchange.ManageAsApp needs a directory role: Get-/Remove-BlockedSenderAddress "
                  "(Security Administrator would also do for these), Get-/Set-Mailbox and "
                  "Get-MailboxPermission / Get-RecipientPermission (these need Exchange "
                  "Administrator, which 'provide[s] the required permissions for any task in "
                  "Exchange Online PowerShell. For example: Recipient management': "
                  "office-docs-powershell exchange/docs-conceptual/"
                  "app-only-auth-powershell-v2.md), the inbox rule cmdlets, and "
                  "Search-UnifiedAuditLog (the Audit Logs roles, which Exchange's Organization "
                  "Management role group, the Exchange Administrator's, holds)",
                  "remediation/adapters/exchange_restricted.py: ExchangeRestrictedSenders; "
                  "remediation/adapters/mailbox.py: GraphExchangeMailbox.forwarding, "
                  "clear_forwarding; remediation/adapters/mailbox_delegation.py; "
                  "remediation/adapters/exchange_rules.py: ExchangeRuleReader"),
)


def permissions_on(resource: str) -> tuple[str, ...]:
    """The names of the application permissions needed on ``resource``."""
    return tuple(p.name for p in PERMISSIONS if p.resource == resource)


# -- Narrower options the operator may choose (README, "Permissions (least privilege)") -----
# Each replaces entries above; the grant script takes them with --scope-au and
# --mailbox-scope, and `remediation doctor` checks what SCOPE_ADMINISTRATIVE_UNIT_ID and
# MAILBOX_ACCESS say was chosen.

USER_ADMINISTRATOR_ID = "fe930be7-5e62-47db-91af-98c3a49a38b1"

# SCOPE_ADMINISTRATIVE_UNIT_ID / --scope-au: User Administrator at one unit's scope instead of
# the tenant's (entra-docs docs/identity/role-based-access-control/admin-units-assign-roles.md:
# User Administrator is among the roles that "can be assigned with administrative unit scope",
# service principals among the principals; "role permissions apply only when managing members
# of the administrative unit", and resets reach only members without administrator roles).
ADMINISTRATIVE_UNIT_ROLES: tuple[DirectoryRole, ...] = (
    DirectoryRole("User Administrator", USER_ADMINISTRATOR_ID,
                  "app-only password resets and sign-in blocks, for the administrative unit's "
                  "members only (and none holding a directory role); an account outside is "
                  "escalated out_of_scope before any change",
                  "remediation/adapters/graph_directory.py: GraphDirectory.reset_password, "
                  "disable_sign_in", scope=ADMINISTRATIVE_UNIT),
    DirectoryRole("Directory Readers", "88d8e3e3-8f55-4a1e-953a-9b9898b8876b",
                  "a service principal can use a role assigned at an administrative unit's "
                  "scope only when it also holds \"the Directory Readers role (or another role "
                  "that includes read permissions) at a tenant scope\" (entra-docs "
                  "admin-units-assign-roles.md, Service principals and guest users); it reads "
                  "nothing Directory.Read.All does not already",
                  "remediation/adapters/graph_directory.py: GraphDirectory.reset_password"),
)


@dataclass(frozen=True)
class ExchangeApplicationRole:
    """An Exchange Online RBAC for Applications role (``New-ManagementRoleAssignment -App``)
    granted to the app's service principal in Exchange, scoped to the administrative unit,
    in place of the tenant-wide Graph permission ``replaces``."""

    name: str
    replaces: str
    reason: str
    used_by: str


# MAILBOX_ACCESS=exchange-rbac / --mailbox-scope (Microsoft Learn, "Role Based Access Control
# for Applications in Exchange Online", exchange/permissions-exo/application-rbac: each
# "Application ..." role grants the Graph permission of its name, limited to the mailboxes of
# the assignment's scope; Test-ServicePrincipalAuthorization's reference, office-docs-
# powershell, shows an "AdministrativeUnit" ScopeType). "These permission grants are
# independent of the unscoped grants in Microsoft Entra ID" (Graph, auth-limit-mailbox-access):
# the Entra grant of the same permission must go, or it still reaches every mailbox.
EXCHANGE_APPLICATION_ROLES: tuple[ExchangeApplicationRole, ...] = (
    ExchangeApplicationRole(
        "Application MailboxSettings.ReadWrite", "MailboxSettings.ReadWrite",
        "read inbox rules and disable a suspicious one, in the unit's mailboxes only",
        "remediation/adapters/mailbox.py: GraphExchangeMailbox.inbox_rules, disable_rule"),
    ExchangeApplicationRole(
        "Application Mail.ReadBasic", "Mail.ReadBasic.All",
        "mail folder names and the well-known folders, in the unit's mailboxes only (Exchange "
        "has no role named Mail.ReadBasic.All: this one grants Mail.ReadBasic, which the scoped "
        "read of `remediation doctor` proves enough, or not, in the tenant)",
        "remediation/adapters/mailbox.py: GraphExchangeMailbox.folder_names, "
        "well_known_folders"),
)


def directory_roles(administrative_unit: str | None = None) -> tuple[DirectoryRole, ...]:
    """The directory roles of the chosen option, scopes filled in: tenant-wide, or (with a
    unit) User Administrator at the unit, Directory Readers and Exchange Administrator
    tenant-wide."""
    if administrative_unit is None:
        return DIRECTORY_ROLES
    scoped = tuple(DirectoryRole(r.name, r.template_id, r.reason, r.used_by,
                                 r.scope.format(unit=administrative_unit))
                   for r in ADMINISTRATIVE_UNIT_ROLES)
    return scoped + tuple(r for r in DIRECTORY_ROLES if r.template_id != USER_ADMINISTRATOR_ID)


def graph_permissions(mailbox_access: str = "tenant-wide") -> tuple[str, ...]:
    """The Graph application permissions of the chosen option: with ``exchange-rbac`` the
    ones Exchange RBAC for Applications replaces are not needed (and should not be held)."""
    replaced = ({role.replaces for role in EXCHANGE_APPLICATION_ROLES}
                if mailbox_access == "exchange-rbac" else set())
    return tuple(name for name in permissions_on(MICROSOFT_GRAPH) if name not in replaced)
