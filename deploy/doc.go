// Package deploy holds what runs Gatehouse outside a developer's machine:
// the container image (Dockerfile), Kubernetes manifests (kubernetes/base
// and the workload-identity overlay) and the Azure Container Apps template
// (azure/main.bicep). It has no Go code; its tests check the artifacts:
// the manifests parse and hold the essentials, the binary builds static,
// and the Bicep template is structurally sound. See docs/deployment.md.
package deploy
