// The remediation worker in Azure: a Flex Consumption Function App with a user-assigned
// identity, its storage account (host storage and the case journal's table), a Service Bus
// namespace with the two session-enabled queues, and monitoring. Identity-based connections
// only: no connection string or key is created or stored.
//
// Deploy: `azd up` (azure.yaml; environmentName is the azd environment's name, through
// main.parameters.json), or
//   az deployment group create -g RG -f infra/main.bicep -p environmentName=<3 to 12 characters>
// then grant the identity its Microsoft Graph and Exchange permissions (README, Deployment).
targetScope = 'resourceGroup'

@description('Short name used to derive resource names (azd: the environment\'s name).')
@minLength(3)
@maxLength(12)
param environmentName string

param location string = resourceGroup().location

@description('The Microsoft 365 (Entra ID) tenant whose accounts are remediated. Keep the default, the subscription\'s tenant: the managed identity gets tokens from no other tenant.')
param tenantId string = subscription().tenantId

@allowed(['enforce', 'approve', 'dry-run'])
@description('Start in dry-run or approve mode and move to enforce once trusted.')
param remediationMode string = 'dry-run'

@description('Comma-separated group object ids whose members are never touched.')
param protectedGroupIds string = ''

param maxRemediationsPerHour int = 20

@secure()
@description('Optional Teams or Slack incoming webhook for escalations.')
param escalationWebhookUrl string = ''

@allowed(['teams', 'slack'])
@description('Escalation posts: teams (Adaptive Card 1.4 in a Workflows message) or slack (text).')
param escalationWebhookFormat string = 'teams'

var suffix = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var tags = { 'azd-env-name': environmentName, workload: 'spam-block-remediation' }
var maxDeliveryCount = 10

module identity 'modules/identity.bicep' = {
  name: 'identity'
  params: { name: 'id-${environmentName}-${suffix}', location: location, tags: tags }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: { name: 'st${suffix}', location: location, tags: tags }
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
      ALERT_POLL_SCHEDULE: '0 */2 * * * *'
      ALERT_LOOKBACK: '1h'
      VERIFY_DELAYS: '1h,4h,24h'
      SWEEP_RESTRICTED_USERS: 'true'
      REMEDIATION_MODE: remediationMode
      MAILBOX_HYGIENE: 'disable'
      COMPROMISE_WINDOW: '7d'
      SIGNIN_CLEANUP: 'remove'
      RETURN_ACTION: 'escalate'
      RATE_LIMIT_BLOCKS: 'escalate' // a rate-limit block no compromise alert names: escalate, approve or remediate
      APPROVAL_TIMEOUT: '24h' // a case waiting for approval longer escalates (approval_expired)
      PROTECTED_GROUP_IDS: protectedGroupIds
      MAX_REMEDIATIONS_PER_HOUR: string(maxRemediationsPerHour)
      ESCALATION_WEBHOOK_URL: escalationWebhookUrl
      ESCALATION_WEBHOOK_FORMAT: escalationWebhookFormat
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
