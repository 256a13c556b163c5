package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/credential"
	"github.com/gatehouse-dev/gatehouse/internal/upstream"
)

// buildDispatcher builds the upstream router (targets, credentials, routes,
// failover, circuit breakers, keep-alive pings) as the proxy's Dispatcher.
func buildDispatcher(cfg *config.Config, getenv func(string) string, log *slog.Logger) (*upstream.Dispatcher, error) {
	rt, err := buildRouter(cfg, getenv, log)
	if err != nil {
		return nil, err
	}
	return &upstream.Dispatcher{Router: rt}, nil
}

// buildRouter maps the configuration onto credential and upstream options.
func buildRouter(cfg *config.Config, getenv func(string) string, logger *slog.Logger) (*upstream.Router, error) {
	var targets []*upstream.Target
	for i := range cfg.Upstreams {
		u := &cfg.Upstreams[i]
		o := upstream.TargetOptions{
			Name: u.Name, Provider: u.Provider, BaseURL: u.BaseURL, Headers: u.Headers,
			ConnectTimeout: u.ConnectTimeout, FirstByteTimeout: u.FirstByteTimeout,
		}
		if u.CABundle != "" {
			pool, err := upstream.LoadCABundle(u.CABundle, true)
			if err != nil {
				return nil, fmt.Errorf("upstreams %s: %w", u.Name, err)
			}
			o.RootCAs = pool
		}
		if p := u.Proxy; p != nil {
			if p.FromEnvironment {
				o.Proxy = upstream.ProxyFromEnv(getenv)
			} else {
				o.Proxy = upstream.ProxyOptions{URL: p.URL, NoProxy: p.NoProxy}
			}
		}
		// Entra (service principal, workload identity) leaves through the
		// upstream's proxy and CA bundle; managed identity never uses a proxy.
		proxy, err := o.Proxy.ProxyFunc()
		if err != nil {
			return nil, fmt.Errorf("upstreams %s: %w", u.Name, err)
		}
		entra := credential.NewHTTPClient(proxy, o.RootCAs)
		cred, err := buildCredential(u, getenv, logger, entra)
		if err != nil {
			return nil, fmt.Errorf("upstreams %s: %w", u.Name, err)
		}
		o.Credential = cred
		t, err := upstream.NewTarget(o)
		if err != nil {
			return nil, err
		}
		targets = append(targets, t)
	}
	models := map[string][]upstream.Route{}
	for i := range cfg.Models {
		m := &cfg.Models[i]
		for _, r := range m.EffectiveRoutes() {
			models[m.ID] = append(models[m.ID], upstream.Route{Upstream: r.Upstream, UpstreamModel: r.UpstreamModel, Weight: r.Weight})
		}
	}
	return upstream.NewRouter(upstream.RouterOptions{Targets: targets, Models: models, Logger: logger})
}

func buildCredential(u *config.Upstream, getenv func(string) string, logger *slog.Logger, entra *http.Client) (upstream.Credential, error) {
	switch {
	case u.APIKey.IsSet():
		return credential.NewStaticKey(u.Provider, u.APIKey.Value())
	case u.Auth != nil:
		return credential.NewStaticBearer(u.Auth.Bearer.Value())
	case u.Azure != nil:
		az := u.Azure
		switch {
		case az.ManagedIdentity != nil:
			return credential.NewManagedIdentity(credential.ManagedIdentityOptions{
				TokenOptions: credential.TokenOptions{Logger: logger},
				Scope:        az.Scope, ClientID: az.ManagedIdentity.ClientID, ResourceID: az.ManagedIdentity.ResourceID,
				Getenv: getenv, IMDSEndpoint: az.ManagedIdentity.Endpoint,
			})
		case az.WorkloadIdentity != nil:
			w := az.WorkloadIdentity
			return credential.NewWorkloadIdentity(credential.WorkloadIdentityOptions{
				TokenOptions: credential.TokenOptions{Logger: logger, HTTPClient: entra},
				Scope:        az.Scope, ClientID: w.ClientID, TenantID: w.TenantID,
				TokenFile: w.TokenFile, AuthorityHost: w.AuthorityHost, Getenv: getenv,
			})
		case az.ServicePrincipal != nil:
			sp := az.ServicePrincipal
			return credential.NewServicePrincipal(credential.ServicePrincipalOptions{
				TokenOptions: credential.TokenOptions{Logger: logger, HTTPClient: entra},
				Scope:        az.Scope, TenantID: sp.TenantID, ClientID: sp.ClientID,
				ClientSecret: sp.ClientSecret.Value(), CertificateFile: sp.CertificateFile,
				AuthorityHost: sp.AuthorityHost,
			})
		}
	}
	return nil, errors.New("no credential configured")
}
