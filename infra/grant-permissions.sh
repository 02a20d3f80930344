#!/usr/bin/env bash
# Grants the Function App's managed identity what Bicep cannot: Microsoft Graph application
# permissions, Exchange.ManageAsApp, and two directory roles (User Administrator, Exchange
# Administrator). The list is remediation/permissions.py; tests/unit/test_permissions.py
# checks that this script grants exactly that.
# Run once per tenant by a Global Administrator (or Privileged Role Administrator):
#   bash infra/grant-permissions.sh <AZURE_MANAGED_IDENTITY_PRINCIPAL_ID>
set -euo pipefail
principal="${1:?usage: grant-permissions.sh MANAGED_IDENTITY_PRINCIPAL_ID}"

grant() {  # grant RESOURCE_APP_ID ROLE_VALUE
  local resource role_id
  resource=$(az ad sp show --id "$1" --query id -o tsv)
  role_id=$(az ad sp show --id "$1" --query "appRoles[?value=='$2'].id" -o tsv)
  az rest --method POST \
    --uri "https://graph.microsoft.com/v1.0/servicePrincipals/$principal/appRoleAssignments" \
    --body "{\"principalId\": \"$principal\", \"resourceId\": \"$resource\", \"appRoleId\": \"$role_id\"}" \
    --output none && echo "granted $2"
}

assign_role() {  # assign_role ROLE_TEMPLATE_ID NAME: tenant-wide, on the managed identity
  az rest --method POST \
    --uri "https://graph.microsoft.com/v1.0/roleManagement/directory/roleAssignments" \
    --body "{\"principalId\": \"$principal\", \"roleDefinitionId\": \"$1\", \"directoryScopeId\": \"/\"}" \
    --output none && echo "assigned $2"
}

graph=00000003-0000-0000-c000-000000000000
for role in User.Read.All User-PasswordProfile.ReadWrite.All User.RevokeSessions.All \
            GroupMember.Read.All RoleManagement.Read.Directory Domain.Read.All \
            SecurityAlert.ReadWrite.All MailboxSettings.ReadWrite Mail.ReadBasic.All; do
  grant "$graph" "$role"
done
grant 00000002-0000-0ff1-ce00-000000000000 Exchange.ManageAsApp  # Office 365 Exchange Online

# User Administrator: app-only password resets need this role as well as
# User-PasswordProfile.ReadWrite.All (msgraph-sdk models/user.py, password_profile); without
# it every reset answers 403 Authorization_RequestDenied. Admins stay out of reach: the
# guardrails escalate them, and Graph refuses them to this role anyway.
assign_role fe930be7-5e62-47db-91af-98c3a49a38b1 "User Administrator"

# Exchange Administrator: Exchange.ManageAsApp needs a directory role. The Restricted users
# cmdlets accept Security Administrator too; Get-Mailbox / Set-Mailbox need this one.
assign_role 29232cdf-9323-42fd-ade2-1d097af3e4de "Exchange Administrator"
