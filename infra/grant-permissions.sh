#!/usr/bin/env bash
# Grants the Function App's managed identity what Bicep cannot: Microsoft Graph application
# permissions, Exchange.ManageAsApp, and the Exchange Administrator directory role.
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

graph=00000003-0000-0000-c000-000000000000
for role in User.Read.All User-PasswordProfile.ReadWrite.All User.RevokeSessions.All \
            SecurityAlert.ReadWrite.All GroupMember.Read.All Domain.Read.All \
            MailboxSettings.ReadWrite Mail.ReadBasic.All; do
  grant "$graph" "$role"
done
grant 00000002-0000-0ff1-ce00-000000000000 Exchange.ManageAsApp  # Office 365 Exchange Online

# Exchange Administrator (29232cdf-9323-42fd-ade2-1d097af3e4de), needed by the
# Restricted users cmdlets; Security Administrator also works.
az rest --method POST \
  --uri "https://graph.microsoft.com/v1.0/roleManagement/directory/roleAssignments" \
  --body "{\"principalId\": \"$principal\", \"roleDefinitionId\": \"29232cdf-9323-42fd-ade2-1d097af3e4de\", \"directoryScopeId\": \"/\"}" \
  --output none && echo "assigned Exchange Administrator"
