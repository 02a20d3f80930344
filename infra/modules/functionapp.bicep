// A Flex Consumption (FC1) Function App on Python 3.11, identity-based host storage. Its app
// settings are written whole on every deployment: one added in the portal is removed.
param name string
param location string
param tags object
param identityId string
param identityClientId string
param storageAccountName string
param deploymentContainerName string
param applicationInsightsConnectionString string
@description('App settings as an object: name -> value.')
param appSettings object

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225:Flex Consumption zone redundancy is offered only in some regions, and the work is queue-backed: a zone outage delays cases, it loses none
  name: 'plan-${name}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: { name: 'FC1', tier: 'FlexConsumption' }
  properties: { reserved: true }
}

// With host.json's telemetryMode OpenTelemetry, the Python worker configures Azure Monitor
// (azure-monitor-opentelemetry) when it starts, before it indexes the app, and streams the
// app's telemetry itself: no host-level duplicates, and the log lines of indexing are kept
// (Microsoft Learn, "Use OpenTelemetry with Azure Functions"). Every trace is kept (the
// distro's default sampler would keep at most 5 a second): PYTHON_APPLICATIONINSIGHTS_*,
// OTEL_TRACES_SAMPLER below.
var hostSettings = {
  AzureWebJobsStorage__accountName: storage.name
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY: 'true'
  // The worker hangs the exporter's log handler on this logger (configure_azure_monitor's
  // logger_name; its default is the root logger, every library's lines): the app exports
  // the journal's records and the preflight's only (remediation/entrypoints/telemetry.py).
  PYTHON_APPLICATIONINSIGHTS_LOGGER_NAME: 'remediation'
  OTEL_TRACES_SAMPLER: 'microsoft.fixed_percentage'
  OTEL_TRACES_SAMPLER_ARG: '1.0'
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_78:Flex Consumption rejects siteConfig.ftpsState (ARM error 51021 in newer regions); the code is deployed only from the blob container below, with the managed identity
  // checkov:skip=CKV_AZURE_222:receive_alert takes HTTP pushes from outside and this design has no virtual network or private endpoint; callers need a function key, over HTTPS only
  // checkov:skip=CKV_AZURE_17:alert pushers present no client certificate; the HTTP trigger is guarded by a function key, over HTTPS only
  // checkov:skip=CKV_AZURE_212:numberOfWorkers sizes dedicated plans; Flex Consumption scales out per event up to maximumInstanceCount, and always-ready instances would bill around the clock
  // checkov:skip=CKV_AZURE_213:no HTTP health endpoint (queue and timer triggers do the work), and a health-check path answering 404 would mark every instance unhealthy; Application Insights records failures
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'remediation' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identityId}': {} }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // The identity App Service resolves Key Vault references with (the webhook URL's): the
    // user-assigned one, as the app has no system-assigned identity.
    keyVaultReferenceIdentity: identityId
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: 2048
        maximumInstanceCount: 40
      }
      runtime: { name: 'python', version: '3.11' }
    }
    siteConfig: {
      minTlsVersion: '1.2'
      http20Enabled: true
      appSettings: [for setting in items(union(appSettings, hostSettings)): {
        name: setting.key
        value: setting.value
      }]
    }
  }
}

output name string = app.name
