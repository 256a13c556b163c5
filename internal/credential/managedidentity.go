package credential

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// DefaultIMDSEndpoint is the Azure Instance Metadata Service.
const DefaultIMDSEndpoint = "http://169.254.169.254"

// IMDSTokenPath is the IMDS token path.
const IMDSTokenPath = "/metadata/identity/oauth2/token"

// ManagedIdentityOptions configures NewManagedIdentity.
type ManagedIdentityOptions struct {
	TokenOptions
	// Scope is the OAuth scope; the managed identity endpoints receive it
	// as a resource (without /.default). Empty: DefaultScope.
	Scope string
	// ClientID selects a user-assigned identity. Empty: the system-assigned
	// identity (or the only user-assigned one).
	ClientID string
	// ResourceID selects a user-assigned identity by ARM resource id
	// (msi_res_id for IMDS, mi_res_id for App Service). Exclusive with
	// ClientID.
	ResourceID string
	// Getenv reads IDENTITY_ENDPOINT and IDENTITY_HEADER (set by App
	// Service, Functions and Container Apps). When both are set they are
	// used; otherwise IMDS. Nil: IMDS.
	Getenv func(string) string
	// IMDSEndpoint overrides the IMDS base URL. Empty: DefaultIMDSEndpoint.
	IMDSEndpoint string
}

// NewManagedIdentity returns a credential for the Azure managed identity of
// the machine or app the gateway runs on: App Service / Container Apps /
// Functions when IDENTITY_ENDPOINT and IDENTITY_HEADER are set (api-version
// 2019-08-01, header X-IDENTITY-HEADER), else the VM's IMDS (api-version
// 2018-02-01, header Metadata: true). IMDS is never reached through a proxy.
func NewManagedIdentity(o ManagedIdentityOptions) (*TokenCredential, error) {
	o.normalize(5)
	if o.ClientID != "" && o.ResourceID != "" {
		return nil, errors.New("credential: managed identity: set a client id or a resource id, not both")
	}
	if o.Scope == "" {
		o.Scope = DefaultScope
	}
	resource := ResourceFromScope(o.Scope)
	if _, err := url.Parse(resource); err != nil || resource == "" {
		return nil, fmt.Errorf("credential: managed identity: invalid scope %q", o.Scope)
	}
	getenv := o.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	if ep := getenv("IDENTITY_ENDPOINT"); ep != "" && getenv("IDENTITY_HEADER") != "" {
		u, err := url.Parse(ep)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, errors.New("credential: managed identity: IDENTITY_ENDPOINT is not an absolute http(s) URL")
		}
		source := "App Service identity endpoint"
		fetch := func(ctx context.Context) (Token, error) {
			build := func(ctx context.Context) (*http.Request, error) {
				q := u.Query()
				q.Set("api-version", "2019-08-01")
				q.Set("resource", resource)
				if o.ClientID != "" {
					q.Set("client_id", o.ClientID)
				}
				if o.ResourceID != "" {
					q.Set("mi_res_id", o.ResourceID)
				}
				ru := *u
				ru.RawQuery = q.Encode()
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, ru.String(), nil)
				if err != nil {
					return nil, err
				}
				// Read per request: the platform rotates the value.
				req.Header.Set("X-IDENTITY-HEADER", getenv("IDENTITY_HEADER"))
				return req, nil
			}
			return exchange(ctx, &o.TokenOptions, KindManagedIdentity, source, build, retryManagedIdentity)
		}
		return newTokenCredential(KindManagedIdentity, source, o.TokenOptions, fetch), nil
	}

	base := o.IMDSEndpoint
	if base == "" {
		base = DefaultIMDSEndpoint
	}
	bu, err := url.Parse(strings.TrimRight(base, "/") + IMDSTokenPath)
	if err != nil || bu.Host == "" {
		return nil, fmt.Errorf("credential: managed identity: invalid IMDS endpoint %q", base)
	}
	source := "IMDS"
	fetch := func(ctx context.Context) (Token, error) {
		build := func(ctx context.Context) (*http.Request, error) {
			q := url.Values{}
			q.Set("api-version", "2018-02-01")
			q.Set("resource", resource)
			if o.ClientID != "" {
				q.Set("client_id", o.ClientID)
			}
			if o.ResourceID != "" {
				q.Set("msi_res_id", o.ResourceID)
			}
			ru := *bu
			ru.RawQuery = q.Encode()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, ru.String(), nil)
			if err != nil {
				return nil, err
			}
			req.Header.Set("Metadata", "true")
			return req, nil
		}
		return exchange(ctx, &o.TokenOptions, KindManagedIdentity, source, build, retryManagedIdentity)
	}
	return newTokenCredential(KindManagedIdentity, source, o.TokenOptions, fetch), nil
}
