#!/usr/bin/env bash
# Grants the Function App's managed identity what Bicep cannot: Microsoft Graph application
# permissions, Exchange.ManageAsApp, and its directory roles. The list is
# remediation/permissions.py; tests/unit/test_permissions.py checks that this script grants
# exactly that, and tests/unit/test_grant_script.py runs it against a fake az.
# Run once per tenant by a Global Administrator (or Privileged Role Administrator):
#   bash infra/grant-permissions.sh [--scope-au AU_ID [--mailbox-scope]] PRINCIPAL_ID
# --scope-au AU_ID: User Administrator at the scope of that administrative unit instead of
#   the whole tenant, with Directory Readers tenant-wide (an AU-scoped role needs a directory
#   read role at tenant scope). Set SCOPE_ADMINISTRATIVE_UNIT_ID to the same id.
# --mailbox-scope: leave out the tenant-wide Graph mailbox permissions; an Exchange
#   administrator then runs infra/grant-exchange-scope.ps1 (Exchange RBAC for Applications,
#   scoped to the same unit). Set MAILBOX_ACCESS=exchange-rbac.
# Safe to run again (an upgrade that adds a permission or role): what the identity holds
# already is looked up first and skipped, so set -e never stops at an existing grant. It
# never removes anything: what is broader than chosen is named, for a person to remove.
set -euo pipefail
usage="usage: grant-permissions.sh [--scope-au AU_ID [--mailbox-scope]] MANAGED_IDENTITY_PRINCIPAL_ID"
unit="" mailbox_scope=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --scope-au) unit="${2:?$usage}"; shift 2 ;;
    --mailbox-scope) mailbox_scope=1; shift ;;
    -*) echo "$usage" >&2; exit 2 ;;
    *) break ;;
  esac
done
principal="${1:?$usage}"
guid='^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$'
if [[ -n "$unit" && ! "$unit" =~ $guid ]]; then
  echo "--scope-au: '$unit' is not an administrative unit's object id (a GUID)" >&2; exit 2
fi
if [[ -n "$mailbox_scope" && -z "$unit" ]]; then
  echo "--mailbox-scope scopes mailboxes to the unit of --scope-au, which is not given" >&2
  exit 2
fi
graph_api=https://graph.microsoft.com/v1.0

granted_roles() {  # granted_roles RESOURCE_SP_ID: the appRoleIds the identity holds on it
  az rest --method GET \
    --uri "$graph_api/servicePrincipals/$principal/appRoleAssignments" \
    --query "value[?resourceId=='$1'].appRoleId" -o tsv
}

grant() {  # grant RESOURCE_APP_ID ROLE_VALUE
  local resource role_id
  resource=$(az ad sp show --id "$1" --query id -o tsv)
  role_id=$(az ad sp show --id "$1" --query "appRoles[?value=='$2'].id" -o tsv)
  if grep -qxF "$role_id" <<<"$(granted_roles "$resource")"; then
    echo "already granted $2"
    return
  fi
  az rest --method POST \
    --uri "$graph_api/servicePrincipals/$principal/appRoleAssignments" \
    --body "{\"principalId\": \"$principal\", \"resourceId\": \"$resource\", \"appRoleId\": \"$role_id\"}" \
    --output none && echo "granted $2"
}

left_out() {  # left_out RESOURCE_APP_ID ROLE_VALUE: chosen not to grant; say if it is held
  local resource role_id
  resource=$(az ad sp show --id "$1" --query id -o tsv)
  role_id=$(az ad sp show --id "$1" --query "appRoles[?value=='$2'].id" -o tsv)
  if grep -qxF "$role_id" <<<"$(granted_roles "$resource")"; then
    echo "broader than chosen: $2 is granted tenant-wide; Entra and Exchange grants add up," \
         "so the mailbox scope holds only once a person removes it"
  else
    echo "not granted $2 (Exchange RBAC for Applications: infra/grant-exchange-scope.ps1)"
  fi
}

assigned() {  # assigned SCOPE: the role definitions assigned to the identity at SCOPE
  az rest --method GET \
    --uri "$graph_api/roleManagement/directory/roleAssignments?\$filter=principalId%20eq%20'$principal'" \
    --query "value[?directoryScopeId=='$1'].roleDefinitionId" -o tsv
}

assign_role() {  # assign_role ROLE_TEMPLATE_ID NAME [SCOPE]: on the managed identity
  local scope="${3:-/}"
  if grep -qxF "$1" <<<"$(assigned "$scope")"; then
    echo "already assigned $2 at $scope"
    return
  fi
  az rest --method POST \
    --uri "$graph_api/roleManagement/directory/roleAssignments" \
    --body "{\"principalId\": \"$principal\", \"roleDefinitionId\": \"$1\", \"directoryScopeId\": \"$scope\"}" \
    --output none && echo "assigned $2 at $scope"
}

graph=00000003-0000-0000-c000-000000000000
for role in User.Read.All User-PasswordProfile.ReadWrite.All User.RevokeSessions.All \
            User.EnableDisableAccount.All \
            GroupMember.Read.All RoleManagement.Read.Directory \
            PrivilegedEligibilitySchedule.Read.AzureADGroup \
            PrivilegedAssignmentSchedule.Read.AzureADGroup Domain.Read.All \
            SecurityAlert.ReadWrite.All \
            DelegatedPermissionGrant.ReadWrite.All Directory.Read.All AuditLog.Read.All \
            UserAuthenticationMethod.ReadWrite.All; do
  grant "$graph" "$role"
done
# Mailboxes: tenant-wide Graph permissions, or (--mailbox-scope) Exchange RBAC for
# Applications roles scoped to the unit, granted in Exchange by grant-exchange-scope.ps1.
for role in MailboxSettings.ReadWrite Mail.ReadBasic.All; do
  if [[ -n "$mailbox_scope" ]]; then left_out "$graph" "$role"; else grant "$graph" "$role"; fi
done
grant 00000002-0000-0ff1-ce00-000000000000 Exchange.ManageAsApp  # Office 365 Exchange Online

# User Administrator: app-only password resets need this role as well as
# User-PasswordProfile.ReadWrite.All (msgraph-sdk models/user.py, password_profile); without
# it every reset answers 403 Authorization_RequestDenied. The role can also reset some
# administrators (Helpdesk, Password, Groups and User Administrators, ...: "Who can reset
# passwords", Working with users in Microsoft Graph): the guardrails keep admins out of reach.
if [[ -z "$unit" ]]; then
  assign_role fe930be7-5e62-47db-91af-98c3a49a38b1 "User Administrator"
else
  # At the unit's scope it reaches only the unit's members, and none holding a role
  # (entra-docs admin-units-assign-roles.md); a service principal can use an AU-scoped role
  # only with a directory read role at tenant scope (same page): Directory Readers.
  assign_role fe930be7-5e62-47db-91af-98c3a49a38b1 "User Administrator" "/administrativeUnits/$unit"
  assign_role 88d8e3e3-8f55-4a1e-953a-9b9898b8876b "Directory Readers"
  if grep -qxF fe930be7-5e62-47db-91af-98c3a49a38b1 <<<"$(assigned /)"; then
    echo "broader than chosen: User Administrator is also assigned tenant-wide; remove that" \
         "assignment (Entra admin center, Roles and administrators) to narrow the app"
  fi
fi

# Exchange Administrator: Exchange.ManageAsApp needs a directory role. The Restricted users
# cmdlets accept Security Administrator too; Get-Mailbox / Set-Mailbox need this one.
assign_role 29232cdf-9323-42fd-ade2-1d097af3e4de "Exchange Administrator"
