package config

import (
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Upstream providers.
const (
	ProviderFoundry   = "foundry"
	ProviderAnthropic = "anthropic"
)

// DefaultAzureScope is the Entra scope for Microsoft Foundry.
const DefaultAzureScope = "https://ai.azure.com/.default"

// Upstream is one Anthropic-compatible endpoint the gateway forwards to.
type Upstream struct {
	Name     string `yaml:"name"`
	Provider string `yaml:"provider"` // foundry | anthropic
	// BaseURL, e.g. https://<resource>.services.ai.azure.com/anthropic or
	// https://api.anthropic.com. Requests go to BaseURL + /v1/messages.
	BaseURL string `yaml:"base_url"`
	// APIKey is injected as api-key (foundry) or x-api-key (anthropic).
	// Exactly one of api_key, azure (foundry) and auth (anthropic) is set.
	APIKey Secret `yaml:"api_key,omitempty"`
	// Azure authenticates to Foundry with an Entra token instead of a key.
	Azure *Azure `yaml:"azure,omitempty"`
	// Auth authenticates to the Anthropic API with an OAuth bearer token
	// instead of a key.
	Auth *UpstreamAuth `yaml:"auth,omitempty"`
	// Headers are static headers added to every request to this upstream.
	// Credential, framing, forwarding and anthropic-* headers are refused.
	Headers map[string]string `yaml:"headers,omitempty"`
	// ConnectTimeout bounds dialing and TLS. Default 10s.
	ConnectTimeout time.Duration `yaml:"connect_timeout,omitempty"`
	// ResponseHeaderTimeout bounds the wait for response headers (time to
	// first byte). Default 10m: long non-streaming generations are slow.
	// FirstByteTimeout is the same setting under its newer name; set one.
	ResponseHeaderTimeout time.Duration `yaml:"response_header_timeout,omitempty"`
	FirstByteTimeout      time.Duration `yaml:"first_byte_timeout,omitempty"`
	// Proxy sends this upstream's traffic through an HTTP proxy. Default:
	// direct; HTTPS_PROXY is ignored unless proxy.from_environment is true.
	Proxy *Proxy `yaml:"proxy,omitempty"`
	// CABundle is a PEM file of extra CA certificates trusted for this
	// upstream (and its proxy), in addition to the system roots.
	CABundle string `yaml:"ca_bundle,omitempty"`
}

// Azure selects the Entra credential for a foundry upstream: exactly one of
// managed_identity, workload_identity and service_principal.
type Azure struct {
	ManagedIdentity  *ManagedIdentity  `yaml:"managed_identity,omitempty"`
	WorkloadIdentity *WorkloadIdentity `yaml:"workload_identity,omitempty"`
	ServicePrincipal *ServicePrincipal `yaml:"service_principal,omitempty"`
	// Scope of the token. Default https://ai.azure.com/.default; older
	// resources use https://cognitiveservices.azure.com/.default.
	Scope string `yaml:"scope,omitempty"`
}

// ManagedIdentity uses the identity of the VM (IMDS) or of the App Service,
// Container Apps or Functions app (IDENTITY_ENDPOINT/IDENTITY_HEADER).
type ManagedIdentity struct {
	// ClientID selects a user-assigned identity. Default: system-assigned.
	ClientID string `yaml:"client_id,omitempty"`
	// ResourceID selects a user-assigned identity by its ARM resource id
	// instead (/subscriptions/…/userAssignedIdentities/NAME).
	ResourceID string `yaml:"resource_id,omitempty"`
	// Endpoint overrides the IMDS base URL (tests and the demo). Default
	// http://169.254.169.254.
	Endpoint string `yaml:"endpoint,omitempty"`
}

// WorkloadIdentity exchanges the AKS projected service account token.
// Empty fields come from AZURE_CLIENT_ID, AZURE_TENANT_ID,
// AZURE_FEDERATED_TOKEN_FILE and AZURE_AUTHORITY_HOST.
type WorkloadIdentity struct {
	ClientID      string `yaml:"client_id,omitempty"`
	TenantID      string `yaml:"tenant_id,omitempty"`
	TokenFile     string `yaml:"token_file,omitempty"`
	AuthorityHost string `yaml:"authority_host,omitempty"`
}

// ServicePrincipal is an app registration with a client secret or a
// certificate (PEM file holding the certificate and its RSA key).
type ServicePrincipal struct {
	TenantID        string `yaml:"tenant_id"`
	ClientID        string `yaml:"client_id"`
	ClientSecret    Secret `yaml:"client_secret,omitempty"`
	CertificateFile string `yaml:"certificate_file,omitempty"`
	// AuthorityHost overrides https://login.microsoftonline.com/
	// (sovereign clouds, tests).
	AuthorityHost string `yaml:"authority_host,omitempty"`
}

// UpstreamAuth holds a bearer credential for the anthropic provider.
type UpstreamAuth struct {
	Bearer Secret `yaml:"bearer"`
}

// Proxy routes an upstream's traffic through an HTTP(S) proxy.
type Proxy struct {
	// URL of the proxy, e.g. http://proxy.corp:3128.
	URL string `yaml:"url,omitempty"`
	// NoProxy lists hosts reached directly (NO_PROXY format).
	NoProxy string `yaml:"no_proxy,omitempty"`
	// FromEnvironment takes HTTPS_PROXY and NO_PROXY from the environment
	// instead of url/no_proxy.
	FromEnvironment bool `yaml:"from_environment,omitempty"`
}

func (u *Upstream) applyDefaults() {
	u.Provider = strings.ToLower(u.Provider)
	u.BaseURL = strings.TrimRight(u.BaseURL, "/")
	if u.ConnectTimeout == 0 {
		u.ConnectTimeout = 10 * time.Second
	}
	switch {
	case u.FirstByteTimeout == 0 && u.ResponseHeaderTimeout == 0:
		u.ResponseHeaderTimeout = 10 * time.Minute
		u.FirstByteTimeout = u.ResponseHeaderTimeout
	case u.FirstByteTimeout == 0:
		u.FirstByteTimeout = u.ResponseHeaderTimeout
	case u.ResponseHeaderTimeout == 0:
		u.ResponseHeaderTimeout = u.FirstByteTimeout
	}
	if u.Azure != nil && u.Azure.Scope == "" {
		u.Azure.Scope = DefaultAzureScope
	}
}

// Route sends a model to one upstream.
type Route struct {
	Upstream string `yaml:"upstream"`
	// UpstreamModel is the name sent upstream (Foundry deployment name).
	// Default: the model's id.
	UpstreamModel string `yaml:"upstream_model,omitempty"`
	// Weight makes the model's routes weighted (all routes carry one) with
	// session affinity; without weights routes are tried in order.
	Weight int `yaml:"weight,omitempty"`
}

// Model is one model the gateway offers.
type Model struct {
	ID          string `yaml:"id"`
	DisplayName string `yaml:"display_name,omitempty"`
	Description string `yaml:"description,omitempty"`
	// UpstreamModel is the name sent upstream (the Foundry deployment name).
	// Default: ID.
	UpstreamModel string `yaml:"upstream_model,omitempty"`
	// Upstream names the upstream serving this model; required when there
	// is more than one upstream (unless routes is set).
	Upstream string `yaml:"upstream,omitempty"`
	// Routes lists several upstreams for the model, tried in order or by
	// weight; exclusive with upstream/upstream_model.
	Routes []Route `yaml:"routes,omitempty"`
	// CreatedAt is reported by /v1/models (RFC 3339). Default: the Unix epoch.
	CreatedAt time.Time `yaml:"created_at,omitempty"`
	// FamilyDefault marks the model as its family's default in /v1/models.
	FamilyDefault bool `yaml:"family_default,omitempty"`
}

func (m *Model) applyDefaults(ups []Upstream) {
	if m.DisplayName == "" {
		m.DisplayName = m.ID
	}
	if len(m.Routes) > 0 {
		for i := range m.Routes {
			if m.Routes[i].UpstreamModel == "" {
				m.Routes[i].UpstreamModel = m.ID
			}
		}
		return
	}
	if m.UpstreamModel == "" {
		m.UpstreamModel = m.ID
	}
	if m.Upstream == "" && len(ups) == 1 {
		m.Upstream = ups[0].Name
	}
}

// EffectiveRoutes returns the model's routes: routes when set, otherwise
// the single route {upstream, upstream_model}. Call after defaults.
func (m *Model) EffectiveRoutes() []Route {
	if len(m.Routes) > 0 {
		return m.Routes
	}
	return []Route{{Upstream: m.Upstream, UpstreamModel: m.UpstreamModel}}
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)
var modelRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,127}$`)
var guidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
var tenantRE = regexp.MustCompile(`^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[A-Za-z0-9][A-Za-z0-9-]*(\.[A-Za-z0-9-]+)+)$`)
var headerNameRE = regexp.MustCompile(`^[A-Za-z0-9-]+$`)

// reservedHeaders mirrors internal/upstream's list (config imports none of
// the runtime packages; internal/upstream refuses them again at build).
var reservedHeaders = map[string]bool{
	"authorization": true, "x-api-key": true, "api-key": true, "ocp-apim-subscription-key": true,
	"cookie": true, "set-cookie": true, "host": true,
	"content-length": true, "content-type": true, "content-encoding": true, "transfer-encoding": true,
	"connection": true, "keep-alive": true, "te": true, "trailer": true, "upgrade": true,
	"forwarded": true, "x-real-ip": true, "via": true, "expect": true,
	"anthropic-version": true, "anthropic-beta": true,
}

func reservedHeader(name string) bool {
	n := strings.ToLower(name)
	return reservedHeaders[n] || strings.HasPrefix(n, "proxy-") || strings.HasPrefix(n, "x-forwarded-")
}

func (c *Config) validateUpstreams(v *validator) {
	if len(c.Upstreams) == 0 {
		v.add("upstreams", "at least one upstream is required")
	}
	seen := map[string]bool{}
	for i := range c.Upstreams {
		u := &c.Upstreams[i]
		uv := v.index("upstreams", i)
		switch {
		case u.Name == "":
			uv.add("name", "is required")
		case !nameRE.MatchString(u.Name):
			uv.add("name", "%q must be lower-case letters, digits, '-', '_' or '.'", u.Name)
		case seen[u.Name]:
			uv.add("name", "%q is used by another upstream", u.Name)
		}
		seen[u.Name] = true
		switch u.Provider {
		case ProviderFoundry, ProviderAnthropic:
		case "":
			uv.add("provider", "is required: foundry or anthropic")
		default:
			uv.add("provider", "%q is not foundry or anthropic", u.Provider)
		}
		if u.BaseURL == "" {
			uv.add("base_url", "is required")
		} else if pu, err := parseURL(u.BaseURL, false); err != nil {
			uv.add("base_url", "%v", err)
		} else if u.Provider == ProviderFoundry && strings.HasSuffix(pu.Hostname(), ".services.ai.azure.com") && !strings.HasSuffix(pu.Path, "/anthropic") {
			uv.add("base_url", "a Foundry base URL ends in /anthropic (https://<resource>.services.ai.azure.com/anthropic)")
		}
		if !u.APIKey.IsSet() && !u.hasOtherCredential() {
			uv.add("api_key", "is required (write it as ${env:NAME} or ${file:/path})")
		}
		u.validateCredentials(uv)
		if u.ConnectTimeout < 0 {
			uv.add("connect_timeout", "must not be negative")
		}
		if u.ResponseHeaderTimeout < 0 {
			uv.add("response_header_timeout", "must not be negative")
		}
		if u.FirstByteTimeout < 0 {
			uv.add("first_byte_timeout", "must not be negative")
		}
		if u.FirstByteTimeout != u.ResponseHeaderTimeout {
			uv.add("first_byte_timeout", "and response_header_timeout are the same setting; set only one")
		}
		for name, val := range u.Headers {
			switch {
			case !headerNameRE.MatchString(name):
				uv.add("headers", "%q: header names may hold only letters, digits and '-'", name)
			case reservedHeader(name):
				uv.add("headers", "%q is reserved: credential, framing, forwarding and anthropic-* headers are set by the gateway or the client", name)
			case strings.ContainsAny(val, "\r\n\x00"):
				uv.add("headers", "%q: the value must not contain line breaks or NUL", name)
			}
		}
		if p := u.Proxy; p != nil {
			switch {
			case p.FromEnvironment && (p.URL != "" || p.NoProxy != ""):
				uv.add("proxy", "set either from_environment or url/no_proxy, not both")
			case !p.FromEnvironment && p.URL == "":
				uv.add("proxy.url", "is required (or set from_environment: true)")
			case p.URL != "":
				raw := p.URL
				if !strings.Contains(raw, "://") {
					raw = "http://" + raw
				}
				if pu, err := url.Parse(raw); err != nil || pu.Host == "" || (pu.Scheme != "http" && pu.Scheme != "https") {
					uv.add("proxy.url", "is not http(s)://host:port")
				} else if pu.User != nil {
					uv.add("proxy.url", "must not carry credentials (they would be printed with the configuration); use from_environment: true with HTTPS_PROXY")
				}
			}
		}
	}
}

// validateCredentials checks azure and auth.
func (u *Upstream) validateCredentials(uv *validator) {
	n := 0
	for _, set := range []bool{u.APIKey.IsSet(), u.Azure != nil, u.Auth != nil} {
		if set {
			n++
		}
	}
	if n > 1 {
		uv.add("", "set only one credential: api_key, azure (foundry) or auth (anthropic)")
	}
	if a := u.Auth; a != nil {
		if u.Provider != ProviderAnthropic {
			uv.add("auth", "is for provider anthropic; a foundry upstream uses api_key or azure")
		}
		if !a.Bearer.IsSet() {
			uv.add("auth.bearer", "is required (write it as ${env:NAME} or ${file:/path})")
		}
	}
	az := u.Azure
	if az == nil {
		return
	}
	av := uv.at("azure")
	if u.Provider != ProviderFoundry {
		uv.add("azure", "is for provider foundry; an anthropic upstream uses api_key or auth")
	}
	kinds := 0
	for _, set := range []bool{az.ManagedIdentity != nil, az.WorkloadIdentity != nil, az.ServicePrincipal != nil} {
		if set {
			kinds++
		}
	}
	if kinds != 1 {
		av.add("", "choose exactly one of managed_identity, workload_identity and service_principal")
	}
	if su, err := url.Parse(az.Scope); err != nil || su.Scheme != "https" || su.Host == "" || !strings.HasSuffix(az.Scope, "/.default") {
		av.add("scope", "%q must be an https resource followed by /.default (e.g. %s)", az.Scope, DefaultAzureScope)
	}
	checkGUID := func(vv *validator, field, val string) {
		if val != "" && !guidRE.MatchString(val) {
			vv.add(field, "%q is not a GUID (the application (client) id)", val)
		}
	}
	checkTenant := func(vv *validator, val string) {
		if val != "" && !tenantRE.MatchString(val) {
			vv.add("tenant_id", "%q is not a tenant GUID or verified domain", val)
		}
	}
	checkAuthority := func(vv *validator, val string) {
		if val != "" {
			if _, err := parseURL(strings.TrimRight(val, "/"), false); err != nil {
				vv.add("authority_host", "%v", err)
			}
		}
	}
	if mi := az.ManagedIdentity; mi != nil {
		mv := av.at("managed_identity")
		checkGUID(mv, "client_id", mi.ClientID)
		if mi.ClientID != "" && mi.ResourceID != "" {
			mv.add("", "set client_id or resource_id, not both")
		}
		if mi.ResourceID != "" && !strings.HasPrefix(strings.ToLower(mi.ResourceID), "/subscriptions/") {
			mv.add("resource_id", "must be an ARM resource id starting with /subscriptions/")
		}
		if mi.Endpoint != "" {
			eu, err := url.Parse(mi.Endpoint)
			switch {
			case err != nil || eu.Host == "" || (eu.Scheme != "http" && eu.Scheme != "https"):
				mv.add("endpoint", "%q is not an absolute URL", mi.Endpoint)
			case eu.Scheme == "http" && eu.Hostname() != "169.254.169.254" && !IsLoopbackHost(eu.Hostname()):
				mv.add("endpoint", "%q: http is allowed only for IMDS (169.254.169.254) and loopback hosts", mi.Endpoint)
			}
		}
	}
	if wi := az.WorkloadIdentity; wi != nil {
		wv := av.at("workload_identity")
		checkGUID(wv, "client_id", wi.ClientID)
		checkTenant(wv, wi.TenantID)
		checkAuthority(wv, wi.AuthorityHost)
	}
	if sp := az.ServicePrincipal; sp != nil {
		sv := av.at("service_principal")
		if sp.TenantID == "" {
			sv.add("tenant_id", "is required")
		}
		checkTenant(sv, sp.TenantID)
		if sp.ClientID == "" {
			sv.add("client_id", "is required")
		}
		checkGUID(sv, "client_id", sp.ClientID)
		if sp.ClientSecret.IsSet() == (sp.CertificateFile != "") {
			sv.add("", "set exactly one of client_secret and certificate_file")
		}
		checkAuthority(sv, sp.AuthorityHost)
	}
}

// hasOtherCredential reports whether the upstream authenticates by a means
// other than a static key: an Azure credential or a bearer token.
func (u *Upstream) hasOtherCredential() bool {
	return u.Azure != nil || (u.Auth != nil && u.Auth.Bearer.IsSet())
}

func (c *Config) validateModels(v *validator) {
	if len(c.Models) == 0 {
		v.add("models", "at least one model is required")
	}
	seen := map[string]bool{}
	for i := range c.Models {
		m := &c.Models[i]
		mv := v.index("models", i)
		switch {
		case m.ID == "":
			mv.add("id", "is required")
		case !modelRE.MatchString(m.ID):
			mv.add("id", "%q is not a valid model id", m.ID)
		case seen[m.ID]:
			mv.add("id", "%q is listed twice", m.ID)
		}
		seen[m.ID] = true
		if len(m.Routes) > 0 {
			if m.Upstream != "" || m.UpstreamModel != "" {
				mv.add("routes", "use either routes or upstream/upstream_model, not both")
			}
			weighted := m.Routes[0].Weight > 0
			used := map[string]bool{}
			for j, r := range m.Routes {
				rv := mv.index("routes", j)
				switch {
				case r.Upstream == "":
					rv.add("upstream", "is required")
				case c.UpstreamByName(r.Upstream) == nil:
					rv.add("upstream", "%q is not the name of a configured upstream", r.Upstream)
				case used[r.Upstream]:
					rv.add("upstream", "%q appears twice in this model's routes", r.Upstream)
				}
				used[r.Upstream] = true
				if !modelRE.MatchString(r.UpstreamModel) {
					rv.add("upstream_model", "%q is not a valid model or deployment name", r.UpstreamModel)
				}
				if r.Weight < 0 {
					rv.add("weight", "must not be negative")
				} else if (r.Weight > 0) != weighted {
					rv.add("weight", "give every route of a model a weight, or none (ordered)")
				}
			}
			continue
		}
		if m.UpstreamModel != "" && !modelRE.MatchString(m.UpstreamModel) {
			mv.add("upstream_model", "%q is not a valid model or deployment name", m.UpstreamModel)
		}
		switch {
		case m.Upstream == "" && len(c.Upstreams) > 1:
			mv.add("upstream", "is required when several upstreams are configured")
		case m.Upstream != "" && c.UpstreamByName(m.Upstream) == nil:
			mv.add("upstream", "%q is not the name of a configured upstream", m.Upstream)
		}
	}
}
