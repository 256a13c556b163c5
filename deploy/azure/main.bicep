// Gatehouse on Azure Container Apps, in front of Microsoft Foundry.
//
// The Microsoft pattern (Entra ID -> API Management -> Foundry) with
// Gatehouse in place of API Management: Claude Desktop and Claude Code send
// an Entra token to Gatehouse; Gatehouse validates it, applies policy and
// audit, and calls Foundry with its own system-assigned managed identity,
// which this template grants "Cognitive Services User" on the Foundry
// account. No key exists anywhere.
//
//   az deployment group create -g <rg> -f deploy/azure/main.bicep \
//     -p tenantId=<tenant> clientId=<desktop app client id> \
//        foundryAccountName=<foundry resource> image=<registry>/gatehouse:<tag>
//
// See docs/deployment.md. There is no Bicep compiler on the build machine:
// deploy/deploy_test.go checks this file's structure only; run
// `az bicep build -f deploy/azure/main.bicep` before deploying.

targetScope = 'resourceGroup'

@description('Azure region for every resource.')
param location string = resourceGroup().location

@description('Prefix of resource names.')
@minLength(3)
@maxLength(20)
param namePrefix string = 'gatehouse'

@description('Container image, e.g. ghcr.io/gatehouse-dev/gatehouse:v1.0.0 (built from deploy/Dockerfile).')
param image string

@description('Entra tenant ID (GUID) of the users.')
param tenantId string = subscription().tenantId

@description('Client ID of the Claude Desktop / Claude Code app registration (gatehouse entra register prints it).')
param clientId string

@description('App role users must hold; empty to admit every user of the tenant.')
param requiredRole string = 'Claude.User'

@description('Name of the Microsoft Foundry (Azure AI services) account serving Claude.')
param foundryAccountName string

@description('Resource group of the Foundry account. Default: this one.')
param foundryResourceGroup string = resourceGroup().name

@description('Models offered: id (what clients send) and deployment (the Foundry deployment name).')
param models array = [
  {
    id: 'claude-sonnet-4-6'
    deployment: 'claude-sonnet-4-6'
  }
  {
    id: 'claude-haiku-4-5'
    deployment: 'claude-haiku-4-5'
  }
]

@description('Role granted to the gateway on the Foundry account. Default: Cognitive Services User (inference only). Foundry User / Azure AI User also work.')
param foundryRoleDefinitionId string = 'a97b65f3-24c7-4388-baec-2e87135dc908'

@description('Optional PostgreSQL URL for the audit trail (postgres://user@host:5432/db?sslmode=require, no password). Empty: SQLite on the replica\'s ephemeral storage.')
param auditPostgresUrl string = ''

@description('Password of the audit PostgreSQL user (passed as PGPASSWORD).')
@secure()
param auditPostgresPassword string = ''

@description('Minimum replicas. Keep 1 or more: the gateway must answer at once.')
@minValue(1)
param minReplicas int = 1

@description('Maximum replicas. Above 1, use auditPostgresUrl so every replica writes one audit trail.')
@minValue(1)
param maxReplicas int = 3

@description('Log Analytics retention in days.')
param logRetentionDays int = 90

var usePostgres = !empty(auditPostgresUrl)
var issuer = '${environment().authentication.loginEndpoint}${tenantId}/v2.0'
var foundryBaseUrl = 'https://${foundryAccountName}.services.ai.azure.com/anthropic'

// The gateway's configuration (docs/configuration.md), mounted as a file.
// It holds no secret; the managed identity replaces the Foundry key.
var modelLines = [for m in models: '  - id: ${m.id}\n    upstream_model: ${m.deployment}']
var roleLines = empty(requiredRole) ? [] : ['  required_roles: ["${requiredRole}"]']
var auditLines = usePostgres ? ['audit:', '  postgres: ${auditPostgresUrl}'] : ['audit:', '  sqlite: /var/lib/gatehouse/audit.db']
var configLines = concat([
  'version: 1'
  'listen: 0.0.0.0:8080'
  'public_url: https://${namePrefix}-app.${containerEnv.properties.defaultDomain}'
  'identity:'
  '  type: entra'
  '  issuer: ${issuer}'
  '  audiences: ["${clientId}"]'
], roleLines, [
  'upstreams:'
  '  - name: foundry'
  '    provider: foundry'
  '    base_url: ${foundryBaseUrl}'
  '    azure:'
  '      managed_identity: {}'
  'models:'
], modelLines, auditLines, [
  'log:'
  '  level: info'
  '  format: json'
])
var configYaml = '${join(configLines, '\n')}\n'

var secrets = concat([
  {
    name: 'gatehouse-config'
    value: configYaml
  }
], usePostgres ? [
  {
    name: 'audit-postgres-password'
    value: auditPostgresPassword
  }
] : [])

var env = usePostgres ? [
  {
    name: 'PGPASSWORD'
    secretRef: 'audit-postgres-password'
  }
] : []

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: '${namePrefix}-logs'
  location: location
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: logRetentionDays
  }
}

resource containerEnv 'Microsoft.App/managedEnvironments@2024-03-01' = {
  name: '${namePrefix}-env'
  location: location
  properties: {
    appLogsConfiguration: {
      destination: 'log-analytics'
      logAnalyticsConfiguration: {
        customerId: logs.properties.customerId
        sharedKey: logs.listKeys().primarySharedKey
      }
    }
  }
}

resource app 'Microsoft.App/containerApps@2024-03-01' = {
  name: '${namePrefix}-app'
  location: location
  identity: {
    // IDENTITY_ENDPOINT / IDENTITY_HEADER: the gateway's Foundry token.
    type: 'SystemAssigned'
  }
  properties: {
    managedEnvironmentId: containerEnv.id
    configuration: {
      activeRevisionsMode: 'Single'
      ingress: {
        external: true
        targetPort: 8080
        transport: 'auto'
        // HTTPS only: http requests are refused, not redirected (a
        // redirect can drop the body or the credential).
        allowInsecure: false
        traffic: [
          {
            latestRevision: true
            weight: 100
          }
        ]
      }
      secrets: secrets
    }
    template: {
      containers: [
        {
          name: 'gatehouse'
          image: image
          args: [
            'serve'
            '--config'
            '/etc/gatehouse/gatehouse.yaml'
          ]
          env: env
          resources: {
            cpu: json('0.5')
            memory: '1Gi'
          }
          probes: [
            {
              type: 'Liveness'
              httpGet: {
                path: '/healthz'
                port: 8080
              }
              periodSeconds: 10
              failureThreshold: 6
            }
            {
              type: 'Readiness'
              httpGet: {
                path: '/readyz'
                port: 8080
              }
              periodSeconds: 5
              failureThreshold: 3
            }
            {
              type: 'Startup'
              httpGet: {
                path: '/healthz'
                port: 8080
              }
              periodSeconds: 2
              failureThreshold: 30
            }
          ]
          volumeMounts: [
            {
              volumeName: 'config'
              mountPath: '/etc/gatehouse'
            }
            {
              volumeName: 'data'
              mountPath: '/var/lib/gatehouse'
            }
          ]
        }
      ]
      scale: {
        minReplicas: minReplicas
        maxReplicas: maxReplicas
        rules: [
          {
            name: 'concurrent-requests'
            http: {
              metadata: {
                concurrentRequests: '200'
              }
            }
          }
        ]
      }
      volumes: [
        {
          name: 'config'
          storageType: 'Secret'
          secrets: [
            {
              secretRef: 'gatehouse-config'
              path: 'gatehouse.yaml'
            }
          ]
        }
        {
          name: 'data'
          storageType: 'EmptyDir'
        }
      ]
    }
  }
}

// The role assignment lives with the Foundry account (possibly another
// resource group), hence a module.
module foundryRole 'foundry-role.bicep' = {
  name: '${namePrefix}-foundry-role'
  scope: resourceGroup(foundryResourceGroup)
  params: {
    foundryAccountName: foundryAccountName
    principalId: app.identity.principalId
    roleDefinitionId: foundryRoleDefinitionId
  }
}

@description('The gateway URL to put in the client profiles (gatehouse profile --gateway-url).')
output gatewayUrl string = 'https://${app.properties.configuration.ingress.fqdn}'

@description('Issuer for the profiles.')
output issuer string = issuer

@description('Object ID of the gateway\'s managed identity.')
output principalId string = app.identity.principalId
