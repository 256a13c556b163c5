package credential

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
)

// WorkloadIdentityOptions configures NewWorkloadIdentity. Empty fields are
// read through Getenv from the variables the AKS workload identity webhook
// injects: AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE and
// AZURE_AUTHORITY_HOST.
type WorkloadIdentityOptions struct {
	TokenOptions
	// Scope is the OAuth scope. Empty: DefaultScope.
	Scope         string
	ClientID      string
	TenantID      string
	TokenFile     string
	AuthorityHost string
	// Getenv reads the AZURE_* variables. Nil: none are read.
	Getenv func(string) string
}

// NewWorkloadIdentity returns a credential that exchanges the projected
// Kubernetes service account token (re-read from TokenFile on every
// exchange, since the kubelet rotates it) as a client assertion at
// {authority}/{tenant}/oauth2/v2.0/token.
func NewWorkloadIdentity(o WorkloadIdentityOptions) (*TokenCredential, error) {
	o.normalize(3)
	if o.Scope == "" {
		o.Scope = DefaultScope
	}
	getenv := o.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	pick := func(v, env string) string {
		if v != "" {
			return v
		}
		return getenv(env)
	}
	clientID := pick(o.ClientID, "AZURE_CLIENT_ID")
	tenantID := pick(o.TenantID, "AZURE_TENANT_ID")
	file := pick(o.TokenFile, "AZURE_FEDERATED_TOKEN_FILE")
	authority := pick(o.AuthorityHost, "AZURE_AUTHORITY_HOST")
	var missing []string
	if clientID == "" {
		missing = append(missing, "client id (AZURE_CLIENT_ID)")
	}
	if tenantID == "" {
		missing = append(missing, "tenant id (AZURE_TENANT_ID)")
	}
	if file == "" {
		missing = append(missing, "token file (AZURE_FEDERATED_TOKEN_FILE)")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("credential: workload identity: missing %s; is the pod labelled azure.workload.identity/use=true?", strings.Join(missing, ", "))
	}
	endpoint, err := TokenEndpoint(authority, tenantID)
	if err != nil {
		return nil, fmt.Errorf("credential: workload identity: %v", err)
	}
	auth := func(f url.Values) error {
		b, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("cannot read the federated token file: %w", err)
		}
		a := strings.TrimSpace(string(b))
		if a == "" {
			return errors.New("the federated token file is empty")
		}
		f.Set("client_assertion_type", clientAssertionType)
		f.Set("client_assertion", a)
		return nil
	}
	fetch := entraClientCredentials(&o.TokenOptions, KindWorkloadIdentity, endpoint, clientID, o.Scope, auth)
	return newTokenCredential(KindWorkloadIdentity, "Entra token endpoint", o.TokenOptions, fetch), nil
}
