// Both queues are session-enabled (one user is never worked on by two instances at once)
// with duplicate detection (one message per alert id or block entry). Standard tier: Basic
// has neither sessions nor duplicate detection.
param name string
param location string
param tags object
param maxDeliveryCount int

resource namespace 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' = {
  name: name
  location: location
  tags: tags
  sku: { name: 'Standard', tier: 'Standard' }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
  }
}

var queueProperties = {
  requiresSession: true
  requiresDuplicateDetection: true
  // Longer than ALERT_LOOKBACK; the local twin uses the same window
  // (queue_limits.DUPLICATE_DETECTION_WINDOW, compared by tests/infra).
  duplicateDetectionHistoryTimeWindow: 'P1D'
  maxDeliveryCount: maxDeliveryCount // the same number as the MAX_DELIVERY_COUNT setting
  lockDuration: 'PT5M'
  deadLetteringOnMessageExpiration: true
  defaultMessageTimeToLive: 'P14D'
}

resource requests 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' = {
  parent: namespace
  name: 'remediation-requests'
  properties: queueProperties
}

resource verifications 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' = {
  parent: namespace
  name: 'remediation-verifications'
  properties: queueProperties
}

output name string = namespace.name
output id string = namespace.id
output fullyQualifiedNamespace string = '${namespace.name}.servicebus.windows.net'
output requestsQueue string = requests.name
output verificationsQueue string = verifications.name
