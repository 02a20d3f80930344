// The operators' workbook: what the worker did, from its OpenTelemetry export to Application
// Insights (cases by state, times to reset / unblock / verified, escalations by reason,
// failures by step and error code, the breaker, the dead-letter queues). It is listed under
// the Application Insights resource's Workbooks. The queries are docs/queries.kql's;
// infra/workbook.py writes them into ../workbook.json, loaded here at build time.
//
// Resource: Microsoft.Insights/workbooks@2023-06-01 (Microsoft Learn, "Microsoft.Insights
// workbooks", Bicep resource definition: kind 'shared' is the only valid value; the name is
// the workbook's GUID; version 'Notebook/1.0' matches serializedData's).
param name string
param location string
param tags object
param applicationInsightsId string
param serviceBusNamespaceId string

// The JSON holds a placeholder for each id known only once Azure deploys (infra/workbook.py).
var definition = loadTextContent('../workbook.json')
var withInsights = replace(definition, '__APPLICATION_INSIGHTS_ID__', applicationInsightsId)

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, name, 'remediation-workbook') // the same GUID at every deployment
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'Spam-block remediation (${name})'
    category: 'workbook'
    sourceId: applicationInsightsId
    version: 'Notebook/1.0'
    serializedData: replace(withInsights, '__SERVICE_BUS_NAMESPACE_ID__', serviceBusNamespaceId)
  }
}

output id string = workbook.id
