// The escalation webhook's URL (its path or query carries the webhook's key) as a Key Vault
// secret, which the app reads through a Key Vault reference with its user-assigned identity.
// Azure RBAC authorization (no access policies), soft delete and purge protection. The secret
// is written only when a URL is given: without one, the app setting stays empty and nothing
// in the vault is overwritten.
param name string
param location string
param tags object
@description('Principal id of the app\'s identity, which reads the secret.')
param principalId string
@secure()
@description('The webhook URL; empty: no secret is written.')
param webhookUrl string

var secretsUser = '4633458b-17de-408a-b874-0445c86b69e6' // Key Vault Secrets User: read secrets

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109:App Service resolves the reference over the vault's public endpoint (the Flex Consumption app has no virtual network integration), so a Deny default would leave the setting unresolved; every read is Entra-authenticated and authorized by Azure RBAC
  // checkov:skip=CKV_AZURE_189:public network access stays on for the same reason: no virtual network or private endpoint in this design; Azure RBAC decides who reads the one secret
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    // The one secret is a webhook URL its owner can issue again: a week keeps a deleted vault
    // recoverable and frees its name sooner for a redeploy (purge protection forbids purging).
    softDeleteRetentionInDays: 7
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
  }
}

resource webhook 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(webhookUrl)) {
  // checkov:skip=CKV_AZURE_41:an incoming webhook URL has no expiry of its own; an expiry date would silently switch escalation posts off when it passes (the reference stops resolving and the app refuses to start)
  // checkov:skip=CKV_AZURE_114:contentType is set below (text/uri-list), but checkov reads no property of a resource deployed under if (...); tests/infra/test_bicep.py checks it instead
  parent: vault
  name: 'escalation-webhook-url'
  properties: {
    value: webhookUrl
    contentType: 'text/uri-list'
  }
}

resource secretsUserRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, secretsUser)
  scope: vault
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', secretsUser)
  }
}

// Versioned: a new URL is a new version, so the reference in the app setting changes with it.
output webhookSecretUri string = empty(webhookUrl) ? '' : webhook.properties.secretUriWithVersion
output name string = vault.name
