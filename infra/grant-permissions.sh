#!/usr/bin/env bash
# Grants the Function App's managed identity what Bicep cannot: Microsoft Graph application
# permissions, Exchange.ManageAsApp, and two directory roles (User Administrator, Exchange
# Administrator). The list is remediation/permissions.py; tests/unit/test_permissions.py
# checks that this script grants exactly that.
# Run once per tenant by a Global Administrator (or Privileged Role Administrator):
#   bash infra/grant-permissions.sh <AZURE_MANAGED_IDENTITY_PRINCIPAL_ID>
# Safe to run again (an upgrade that adds a permission or role): what the identity holds
# already is looked up first and skipped, so set -e never stops at an existing grant.
set -euo pipefail
principal="${1:?usage: grant-permissions.sh MANAGED_IDENTITY_PRINCIPAL_ID}"
graph_api=https://graph.microsoft.com/v1.0

grant() {  # grant RESOURCE_APP_ID ROLE_VALUE
  local resource role_id granted
  resource=$(az ad sp show --id "$1" --query id -o tsv)
  role_id=$(az ad sp show --id "$1" --query "appRoles[?value=='$2'].id" -o tsv)
  granted=$(az rest --method GET \
    --uri "$graph_api/servicePrincipals/$principal/appRoleAssignments" \
    --query "value[?resourceId=='$resource'].appRoleId" -o tsv)
  if grep -qxF "$role_id" <<<"$granted"; then
    echo "already granted $2"
    return
  fi
  az rest --method POST \
    --uri "$graph_api/servicePrincipals/$principal/appRoleAssignments" \
    --body "{\"principalId\": \"$principal\", \"resourceId\": \"$resource\", \"appRoleId\": \"$role_id\"}" \
    --output none && echo "granted $2"
}

assign_role() {  # assign_role ROLE_TEMPLATE_ID NAME: tenant-wide, on the managed identity
  local assigned
  assigned=$(az rest --method GET \
    --uri "$graph_api/roleManagement/directory/roleAssignments?\$filter=principalId%20eq%20'$principal'" \
    --query "value[?directoryScopeId=='/'].roleDefinitionId" -o tsv)
  if grep -qxF "$1" <<<"$assigned"; then
    echo "already assigned $2"
    return
  fi
  az rest --method POST \
    --uri "$graph_api/roleManagement/directory/roleAssignments" \
    --body "{\"principalId\": \"$principal\", \"roleDefinitionId\": \"$1\", \"directoryScopeId\": \"/\"}" \
    --output none && echo "assigned $2"
}

graph=00000003-0000-0000-c000-000000000000
for role in User.Read.All User-PasswordProfile.ReadWrite.All User.RevokeSessions.All \
            User.EnableDisableAccount.All \
            GroupMember.Read.All RoleManagement.Read.Directory \
            PrivilegedEligibilitySchedule.Read.AzureADGroup \
            PrivilegedAssignmentSchedule.Read.AzureADGroup Domain.Read.All \
            SecurityAlert.ReadWrite.All MailboxSettings.ReadWrite Mail.ReadBasic.All \
            DelegatedPermissionGrant.ReadWrite.All Directory.Read.All AuditLog.Read.All \
            UserAuthenticationMethod.ReadWrite.All; do
  grant "$graph" "$role"
done
grant 00000002-0000-0ff1-ce00-000000000000 Exchange.ManageAsApp  # Office 365 Exchange Online

# User Administrator: app-only password resets need this role as well as
# User-PasswordProfile.ReadWrite.All (msgraph-sdk models/user.py, password_profile); without
# it every reset answers 403 Authorization_RequestDenied. The role can also reset some
# administrators (Helpdesk, Password, Groups and User Administrators, ...: "Who can reset
# passwords", Working with users in Microsoft Graph): the guardrails keep admins out of reach.
assign_role fe930be7-5e62-47db-91af-98c3a49a38b1 "User Administrator"

# Exchange Administrator: Exchange.ManageAsApp needs a directory role. The Restricted users
# cmdlets accept Security Administrator too; Get-Mailbox / Set-Mailbox need this one.
assign_role 29232cdf-9323-42fd-ade2-1d097af3e4de "Exchange Administrator"
