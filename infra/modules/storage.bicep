// Host storage, the deployment package container, and the case journal's table.
// Shared-key access is off: everything authenticates with the managed identity (and the
// operators' group, which may read the journal table: `remediation status` and `report`).
param name string
param location string
param tags object

@description('Object id of the Entra group whose members may read the journal table; empty: nobody but the app.')
param operatorsGroupId string = ''

// Storage Table Data Reader: tables/read and tables/entities/read, nothing else (Microsoft
// Learn, "Azure built-in roles for Storage"; MicrosoftDocs/azure-docs, articles/
// role-based-access-control/built-in-roles/storage.md).
var storageTableDataReader = '76199698-9eea-4c19-bc75-cec21354c6b6'

var deploymentContainerName = 'app-package'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35:the Flex Consumption app has no virtual network integration, so it reaches host storage, its package and the journal over the public endpoint; Deny would cut it off. Every request is Entra-authenticated (shared keys are off)
  // checkov:skip=CKV_AZURE_206:locally redundant on purpose (cheapest, and offered in every region); choose Standard_GRS or Standard_GZRS per deployment where the journal must survive a regional outage
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
  }
}

resource blobs 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource deployment 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobs
  name: deploymentContainerName
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource journal 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tables
  name: 'remediationjournal'
}

// The operators read the journal table alone, not the account's other data (a role assignment
// may be scoped to one table: Microsoft Learn, "Assign an Azure role for access to table data").
resource operatorsRead 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorsGroupId)) {
  name: guid(journal.id, operatorsGroupId, storageTableDataReader)
  scope: journal
  properties: {
    principalId: operatorsGroupId
    principalType: 'Group'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataReader)
  }
}

output name string = storage.name
output deploymentContainerName string = deploymentContainerName
