// Grants the gateway's managed identity a role on the Foundry account
// (deployed into the account's resource group by main.bicep).

@description('Name of the Microsoft Foundry (Azure AI services) account.')
param foundryAccountName string

@description('Object ID of the gateway\'s managed identity.')
param principalId string

@description('Role definition GUID. Default: Cognitive Services User.')
param roleDefinitionId string = 'a97b65f3-24c7-4388-baec-2e87135dc908'

resource foundry 'Microsoft.CognitiveServices/accounts@2024-10-01' existing = {
  name: foundryAccountName
}

resource roleAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(foundry.id, principalId, roleDefinitionId)
  scope: foundry
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionId)
  }
}

output roleAssignmentId string = roleAssignment.id
