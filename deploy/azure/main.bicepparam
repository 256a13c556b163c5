// Example parameters: az deployment group create -g <rg> -f deploy/azure/main.bicep -p deploy/azure/main.bicepparam
using 'main.bicep'

param image = 'ghcr.io/gatehouse-dev/gatehouse:latest'
param clientId = '00000000-0000-4000-8000-000000000002'
param foundryAccountName = 'contoso-ai'
param models = [
  {
    id: 'claude-sonnet-4-6'
    deployment: 'claude-sonnet-4-6'
  }
]
