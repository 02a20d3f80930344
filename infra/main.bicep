// The remediation worker in Azure: a Flex Consumption Function App with a user-assigned
// identity, its storage account (host storage and the case journal's table), a Service Bus
// namespace with the two session-enabled queues, a Key Vault holding the escalation webhook's
// URL, and monitoring (Log Analytics, Application Insights and the operators' workbook over
// it). Identity-based connections only: no connection string or key is created or stored.
//
// Deploy: `azd up` (azure.yaml), or
//   az deployment group create -g RG -f infra/main.bicep -p environmentName=<3 to 12 characters>
// then grant the identity its Microsoft Graph and Exchange permissions (README, Deployment).
//
// Settings: each setting an operator may change is a parameter below, which azd takes from
// the azd environment under the app setting's name with AZURE_ in front (main.parameters.json:
// `azd env set AZURE_PROTECTED_GROUP_IDS <id>,<id>`, then `azd up`; the prefix keeps a shell
// variable of a local run out of a deployment), with the default written here.
// The template writes the app settings whole: a value set with `azd env set` survives every
// `azd up`; one set in the portal is overwritten by the next. The other app settings are
// wiring to the resources created here, not parameters.
targetScope = 'resourceGroup'

@description('Short name used to derive resource names (azd: the environment\'s name).')
@minLength(3)
@maxLength(12)
param environmentName string

param location string = resourceGroup().location

@description('The Microsoft 365 (Entra ID) tenant whose accounts are remediated. Keep the default, the subscription\'s tenant: the managed identity gets tokens from no other tenant.')
param tenantId string = subscription().tenantId

// --- operator settings (azd environment names in main.parameters.json) ---------------------

@allowed(['enforce', 'approve', 'dry-run'])
@description('REMEDIATION_MODE. Start in dry-run or approve mode and move to enforce once trusted.')
param remediationMode string = 'dry-run'

@description('PROTECTED_GROUP_IDS: comma-separated group object ids whose members are never touched.')
param protectedGroupIds string = ''

@minValue(1)
@maxValue(100000)
@description('MAX_REMEDIATIONS_PER_HOUR: password resets in any rolling hour, tenant-wide.')
param maxRemediationsPerHour int = 20

@description('APPROVAL_TIMEOUT: how long a case waits for approval before it escalates (approval_expired), at most 7d.')
param approvalTimeout string = '24h'

@description('Optional administrative unit object id: only its members are ever changed (README, Permissions). Run infra/grant-permissions.sh --scope-au with the same id.')
param scopeAdministrativeUnitId string = ''

@allowed(['tenant-wide', 'exchange-rbac'])
@description('How the app reaches mailboxes: tenant-wide Graph permissions, or Exchange RBAC for Applications scoped to the administrative unit (infra/grant-exchange-scope.ps1).')
param mailboxAccess string = 'tenant-wide'

@secure()
@description('ESCALATION_WEBHOOK_URL: optional Teams or Slack incoming webhook for escalations, kept in Key Vault.')
param escalationWebhookUrl string = ''

@allowed(['teams', 'slack'])
@description('ESCALATION_WEBHOOK_FORMAT: teams (Adaptive Card 1.4 in a Workflows message) or slack (text).')
param escalationWebhookFormat string = 'teams'

@description('VERIFY_DELAYS: checks after the unblock, increasing (s, m, h, d).')
param verifyDelays string = '1h,4h,24h'

@allowed(['disable', 'report'])
@description('MAILBOX_HYGIENE: suspicious inbox rules and forwarding disabled, or only reported.')
param mailboxHygiene string = 'disable'

@description('COMPROMISE_WINDOW: additions to the account this long before the trouble count as the attacker\'s.')
param compromiseWindow string = '7d'

@allowed(['remove', 'report'])
@description('SIGNIN_CLEANUP: sign-in methods and consents added in the window removed, or only reported.')
param signinCleanup string = 'remove'

@allowed(['escalate', 'disable'])
@description('RETURN_ACTION: when verification finds the attacker back.')
param returnAction string = 'escalate'

@allowed(['escalate', 'approve', 'remediate'])
@description('RATE_LIMIT_BLOCKS: a rate-limit block no compromise alert names.')
param rateLimitBlocks string = 'escalate'

@description('ALERT_POLL_SCHEDULE: the alert poll\'s NCRONTAB schedule (six fields).')
param alertPollSchedule string = '0 */2 * * * *'

@description('ALERT_LOOKBACK: overlapping window of each alert poll; longer than the longest gap between polls.')
param alertLookback string = '1h'

@description('SWEEP_RESTRICTED_USERS: also open cases for blocked senders no alert named.')
param sweepRestrictedUsers bool = true

@description('TENANT_DOMAINS: comma-separated domain names; empty: read from the directory.')
param tenantDomains string = ''

@description('CASE_LINK_TEMPLATE: the link escalations show, with {case_id} and {user}; empty: `remediation status --user {user}`.')
param caseLinkTemplate string = ''

@description('ALERT_TITLES: semicolon-separated alert titles to act on; empty: the three default policy titles.')
param alertTitles string = ''

// --- who else may read the journal (not an app setting) -------------------------------------

@description('Object id of an Entra group whose members may read the journal table (Storage Table Data Reader, on that table only) to run `remediation status` and `report` against Azure; empty: nobody but the app.')
param operatorsGroupId string = ''

var suffix = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var tags = { 'azd-env-name': environmentName, workload: 'spam-block-remediation' }
var maxDeliveryCount = 10

module identity 'modules/identity.bicep' = {
  name: 'identity'
  params: { name: 'id-${environmentName}-${suffix}', location: location, tags: tags }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: { name: 'st${suffix}', location: location, tags: tags, operatorsGroupId: operatorsGroupId }
}

module serviceBus 'modules/servicebus.bicep' = {
  name: 'servicebus'
  params: {
    name: 'sb-${environmentName}-${suffix}'
    location: location
    tags: tags
    maxDeliveryCount: maxDeliveryCount
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: { name: '${environmentName}-${suffix}', location: location, tags: tags }
}

module workbook 'modules/workbook.bicep' = {
  name: 'workbook'
  params: {
    name: environmentName // its display name, and with the resource group its GUID
    location: location
    tags: tags
    applicationInsightsId: monitoring.outputs.applicationInsightsId
    serviceBusNamespaceId: serviceBus.outputs.id
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    name: 'kv${suffix}'
    location: location
    tags: tags
    principalId: identity.outputs.principalId
    webhookUrl: escalationWebhookUrl
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  params: {
    name: 'func-${environmentName}-${suffix}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: storage.outputs.deploymentContainerName
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    appSettings: {
      AZURE_TENANT_ID: tenantId
      AZURE_CLIENT_ID: identity.outputs.clientId
      ServiceBusConnection__fullyQualifiedNamespace: serviceBus.outputs.fullyQualifiedNamespace
      ServiceBusConnection__credential: 'managedidentity'
      ServiceBusConnection__clientId: identity.outputs.clientId
      REMEDIATION_QUEUE: serviceBus.outputs.requestsQueue
      VERIFICATION_QUEUE: serviceBus.outputs.verificationsQueue
      MAX_DELIVERY_COUNT: string(maxDeliveryCount)
      QUEUE_MAX_DELIVERY_COUNT: string(maxDeliveryCount) // the queues' own: MAX_DELIVERY_COUNT may not exceed it
      RETRY_BACKOFF: '30s' // first delay of a scheduled retry; doubles, at most 15 minutes
      JOURNAL_TABLE_NAME: 'remediationjournal'
      // The operator's settings, from the parameters above.
      REMEDIATION_MODE: remediationMode
      APPROVAL_TIMEOUT: approvalTimeout // a case waiting for approval longer escalates (approval_expired)
      PROTECTED_GROUP_IDS: protectedGroupIds
      SCOPE_ADMINISTRATIVE_UNIT_ID: scopeAdministrativeUnitId
      MAILBOX_ACCESS: mailboxAccess
      MAX_REMEDIATIONS_PER_HOUR: string(maxRemediationsPerHour)
      // A Key Vault reference, resolved by App Service with the app's identity; empty: none.
      ESCALATION_WEBHOOK_URL: empty(escalationWebhookUrl) ? '' : '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.webhookSecretUri})'
      ESCALATION_WEBHOOK_FORMAT: escalationWebhookFormat
      VERIFY_DELAYS: verifyDelays
      MAILBOX_HYGIENE: mailboxHygiene
      COMPROMISE_WINDOW: compromiseWindow
      SIGNIN_CLEANUP: signinCleanup
      RETURN_ACTION: returnAction
      RATE_LIMIT_BLOCKS: rateLimitBlocks // a rate-limit block no compromise alert names
      ALERT_POLL_SCHEDULE: alertPollSchedule
      ALERT_LOOKBACK: alertLookback
      SWEEP_RESTRICTED_USERS: string(sweepRestrictedUsers)
      TENANT_DOMAINS: tenantDomains
      CASE_LINK_TEMPLATE: caseLinkTemplate
      ALERT_TITLES: alertTitles
      DEFENDER_STREAM_HUB: 'defender-stream'
      'AzureWebJobs.receive_defender_stream.Disabled': 'true'
    }
  }
}

module rbac 'modules/rbac.bicep' = {
  name: 'rbac'
  params: {
    principalId: identity.outputs.principalId
    storageAccountName: storage.outputs.name
    serviceBusNamespaceName: serviceBus.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
  }
}

output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_MANAGED_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output AZURE_MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output SERVICE_BUS_NAMESPACE string = serviceBus.outputs.fullyQualifiedNamespace
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name // the journal's account
