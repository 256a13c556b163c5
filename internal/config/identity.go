package config

import (
	"net/url"
	"strings"
	"time"
)

// Identity configures who may call the gateway (docs/identity.md).
//
// The single-issuer form (issuer, audiences, allowed_tenants,
// required_roles, clock_skew and the other provider keys directly under
// identity) is the common case. Several identity providers at once (an MSP
// serving client tenants, Entra plus Okta, ID-token and access-token modes
// side by side) are listed under identity.providers instead; the two forms
// are exclusive.
type Identity struct {
	// IdentityProvider holds the single-issuer form's keys (inline).
	IdentityProvider `yaml:",inline"`
	// Providers is the multi-provider form.
	Providers []IdentityProvider `yaml:"providers,omitempty"`

	// KeyRefreshCooldown: minimum time between key refreshes caused by an
	// unknown kid, per issuer (the first after start is immediate).
	// Default 5m; between 30s and 1h.
	KeyRefreshCooldown time.Duration `yaml:"key_refresh_cooldown,omitempty"`
	// MaxTokenAge rejects tokens issued (iat) longer ago than this, however
	// long they claim to be valid. 0 (default): off. At least 1m.
	MaxTokenAge time.Duration `yaml:"max_token_age,omitempty"`
	// CacheSize bounds the verified-token cache. Default 10000; -1: off.
	CacheSize int `yaml:"cache_size,omitempty"`
}

// IdentityProvider is one trusted identity provider.
type IdentityProvider struct {
	// Name identifies the provider in logs and audit records. Required in
	// identity.providers; the single-issuer form is named "default".
	Name string `yaml:"name,omitempty"`
	// Issuer is the OIDC issuer, exactly as it appears in tokens' iss claim,
	// e.g. https://login.microsoftonline.com/<tenant-id>/v2.0. An Entra
	// provider serving several tenants writes
	// https://login.microsoftonline.com/{tenantid}/v2.0 and lists them in
	// allowed_tenants.
	Issuer string `yaml:"issuer"`
	// Type is entra or oidc. Default: entra when the issuer is on
	// login.microsoftonline.com, else oidc. Entra users are keyed on
	// (tid, oid); others on (iss, sub).
	Type string `yaml:"type,omitempty"`
	// Audiences are the accepted aud values: the desktop app's client ID in
	// ID-token mode, the API's app ID in access-token mode.
	Audiences []string `yaml:"audiences"`
	// AllowedTenants restricts Entra tid; default: the tenant in the issuer.
	AllowedTenants []string `yaml:"allowed_tenants,omitempty"`
	// RequiredRoles: the roles claim must contain at least one (any-of).
	RequiredRoles []string `yaml:"required_roles,omitempty"`
	// ClockSkew tolerated on exp/nbf/iat. Default 60s, at most 5m.
	ClockSkew time.Duration `yaml:"clock_skew,omitempty"`

	// TokenMode is id_token (default: Claude Desktop's gateway SSO sends
	// the ID token) or access_token (aud = the gateway API's app ID; scp
	// checked). A token of the other kind is refused.
	TokenMode string `yaml:"token_mode,omitempty"`
	// TokenVersions (Entra) accepted: "2.0" (default) and/or "1.0". v1
	// tokens (iss https://sts.windows.net/<tid>/) are refused unless listed.
	TokenVersions []string `yaml:"token_versions,omitempty"`
	// V1Issuer (Entra) overrides the v1 issuer template
	// https://sts.windows.net/{tenantid}/.
	V1Issuer string `yaml:"v1_issuer,omitempty"`
	// DiscoveryURL overrides <issuer>/.well-known/openid-configuration.
	DiscoveryURL string `yaml:"discovery_url,omitempty"`
	// JWKSURL skips discovery and fetches the signing keys here.
	JWKSURL string `yaml:"jwks_url,omitempty"`
	// Algorithms accepted for signatures. Default [RS256] (Entra signs
	// RS256 only). Allowed: RS256/384/512, PS256/384/512, ES256/384/512.
	Algorithms []string `yaml:"algorithms,omitempty"`
	// MaxLifetime caps exp - iat. Default 12h.
	MaxLifetime time.Duration `yaml:"max_lifetime,omitempty"`

	// AllowedClients (access_token mode): the client application (azp,
	// appid or Okta's cid) must be one of these. Empty: any client.
	AllowedClients []string `yaml:"allowed_clients,omitempty"`
	// RequiredScopes (access_token mode): scp must contain one (any-of).
	RequiredScopes []string `yaml:"required_scopes,omitempty"`

	// Claims names the claims for the user key, display name, groups and
	// roles.
	Claims IdentityClaims `yaml:"claims,omitempty"`
	// RequiredGroups: the user must be in one (any-of, group object IDs).
	RequiredGroups []string `yaml:"required_groups,omitempty"`
	// ClaimRules carry Conditional Access decisions: each must hold.
	ClaimRules []ClaimRule `yaml:"claim_rules,omitempty"`
	// GroupOverage (Entra): what to do when the user's groups did not fit
	// in the token: deny (default) or graph (look them up in Microsoft
	// Graph with the gateway's own credentials; see graph).
	GroupOverage string `yaml:"group_overage,omitempty"`
	// Graph configures the group lookup for group_overage: graph.
	Graph *IdentityGraph `yaml:"graph,omitempty"`
	// BlockGuests (Entra) refuses guest accounts (B2B users of other
	// tenants and personal Microsoft accounts invited into the tenant).
	BlockGuests bool `yaml:"block_guests,omitempty"`
}

// IdentityClaims names claims. Empty fields take the documented defaults.
type IdentityClaims struct {
	// User is the user key claim. Default oid (Entra) or sub (oidc).
	User string `yaml:"user,omitempty"`
	// Display is the display user name. Default preferred_username (then
	// upn, unique_name).
	Display string `yaml:"display,omitempty"`
	// Groups default "groups"; Roles default "roles".
	Groups string `yaml:"groups,omitempty"`
	Roles  string `yaml:"roles,omitempty"`
}

// ClaimRule requires a claim's values to contain any_of one value, and/or
// all_of the values. E.g. {claim: amr, any_of: [mfa]}, {claim: acrs,
// any_of: [c1]}.
type ClaimRule struct {
	Claim string   `yaml:"claim"`
	AnyOf []string `yaml:"any_of,omitempty"`
	AllOf []string `yaml:"all_of,omitempty"`
}

// IdentityGraph is the app-only access to Microsoft Graph used to resolve
// group overage. The URL inside a token (_claim_sources) is never used.
type IdentityGraph struct {
	// BaseURL default https://graph.microsoft.com/v1.0.
	BaseURL string `yaml:"base_url,omitempty"`
	// TokenURL default
	// https://login.microsoftonline.com/{tenantid}/oauth2/v2.0/token.
	TokenURL     string `yaml:"token_url,omitempty"`
	ClientID     string `yaml:"client_id"`
	ClientSecret Secret `yaml:"client_secret"`
	// Scope default https://graph.microsoft.com/.default.
	Scope string `yaml:"scope,omitempty"`
}

// ConsumerTenant is the Microsoft personal-account tenant, always refused.
const ConsumerTenant = "9188040d-6c67-4c5b-b112-36a304b66dad"

// EffectiveProviders returns the providers the gateway trusts: the
// identity.providers list, or the single-issuer form as one provider named
// "default".
func (c *Identity) EffectiveProviders() []IdentityProvider {
	if len(c.Providers) > 0 {
		return c.Providers
	}
	p := c.IdentityProvider
	if p.Name == "" {
		p.Name = "default"
	}
	return []IdentityProvider{p}
}

func (c *Identity) applyDefaults() {
	if c.KeyRefreshCooldown == 0 {
		c.KeyRefreshCooldown = 5 * time.Minute
	}
	if c.CacheSize == 0 {
		c.CacheSize = 10000
	}
	if c.Issuer != "" || len(c.Providers) == 0 {
		c.IdentityProvider.applyDefaults()
	}
	for i := range c.Providers {
		c.Providers[i].applyDefaults()
	}
}

func (p *IdentityProvider) applyDefaults() {
	if p.ClockSkew == 0 {
		p.ClockSkew = 60 * time.Second
	}
	if len(p.AllowedTenants) == 0 && !strings.Contains(p.Issuer, "{tenantid}") {
		if tid := EntraTenantFromIssuer(p.Issuer); tid != "" {
			p.AllowedTenants = []string{tid}
		}
	}
	if p.TokenMode == "" {
		p.TokenMode = "id_token"
	}
	if p.GroupOverage == "" {
		p.GroupOverage = "deny"
	}
	if p.MaxLifetime == 0 {
		p.MaxLifetime = 12 * time.Hour
	}
}

func (c *Identity) validate(v *validator) {
	single := !c.IdentityProvider.isZero()
	switch {
	case len(c.Providers) > 0 && single:
		v.add("providers", "use either the single-issuer keys (issuer, audiences, ...) or providers, not both")
	case len(c.Providers) == 0:
		c.IdentityProvider.validate(v, false)
	}
	names := map[string]bool{}
	for i := range c.Providers {
		p := &c.Providers[i]
		pv := v.index("providers", i)
		p.validate(pv, true)
		if p.Name != "" && names[p.Name] {
			pv.add("name", "%q is used by another provider", p.Name)
		}
		names[p.Name] = true
	}
	if c.KeyRefreshCooldown < 30*time.Second || c.KeyRefreshCooldown > time.Hour {
		v.add("key_refresh_cooldown", "must be between 30s and 1h")
	}
	if c.MaxTokenAge != 0 && c.MaxTokenAge < time.Minute {
		v.add("max_token_age", "must be 0 (off) or at least 1m")
	}
	if c.CacheSize < -1 {
		v.add("cache_size", "must be -1 (off), 0 (default 10000) or a positive number of entries")
	}
}

// isZero reports whether no single-issuer key was set (defaults aside).
func (p *IdentityProvider) isZero() bool {
	return p.Issuer == "" && p.Name == "" && p.Type == "" && len(p.Audiences) == 0 && len(p.RequiredRoles) == 0 &&
		p.TokenMode == "" && len(p.TokenVersions) == 0 && p.DiscoveryURL == "" && p.JWKSURL == "" && len(p.Algorithms) == 0 &&
		len(p.AllowedClients) == 0 && len(p.RequiredScopes) == 0 && p.Claims == (IdentityClaims{}) && len(p.RequiredGroups) == 0 &&
		len(p.ClaimRules) == 0 && p.GroupOverage == "" && p.Graph == nil && !p.BlockGuests && p.V1Issuer == ""
}

var supportedAlgorithms = map[string]bool{
	"RS256": true, "RS384": true, "RS512": true, "PS256": true, "PS384": true, "PS512": true,
	"ES256": true, "ES384": true, "ES512": true,
}

func (p *IdentityProvider) validate(v *validator, listed bool) {
	if listed && p.Name == "" {
		v.add("name", "is required in identity.providers")
	}
	entraHost := false
	if p.Issuer == "" {
		v.add("issuer", "is required (for Entra ID: https://login.microsoftonline.com/<tenant-id>/v2.0)")
	} else if u, err := parseURL(strings.ReplaceAll(p.Issuer, "{tenantid}", "tenant"), false); err != nil {
		v.add("issuer", "%v", err)
	} else {
		entraHost = strings.EqualFold(u.Hostname(), "login.microsoftonline.com")
		if strings.Contains(u.Path, "/.well-known") {
			v.add("issuer", "must be the issuer itself, not the metadata URL: remove %q", u.Path[strings.Index(u.Path, "/.well-known"):])
		}
		if entraHost && !strings.HasSuffix(u.Path, "/v2.0") {
			v.add("issuer", "an Entra ID issuer must end at /v2.0 (https://login.microsoftonline.com/<tenant-id>/v2.0)")
		}
		for _, t := range []string{"common", "organizations", "consumers"} {
			if entraHost && strings.HasPrefix(u.Path, "/"+t+"/") {
				v.add("issuer", "%q is not an issuer tokens carry: use the tenant ID, or {tenantid} with allowed_tenants", t)
			}
		}
	}
	switch p.Type {
	case "", "entra", "oidc":
	default:
		v.add("type", "must be entra or oidc")
	}
	entra := p.Type == "entra" || (p.Type == "" && entraHost)
	if len(p.Audiences) == 0 {
		v.add("audiences", "at least one audience is required (the client ID in ID-token mode, the API app ID in access-token mode)")
	}
	for i, a := range p.Audiences {
		if strings.TrimSpace(a) == "" {
			v.add("audiences", "entry %d is empty", i)
		}
	}
	if p.ClockSkew < 0 || p.ClockSkew > 5*time.Minute {
		v.add("clock_skew", "must be between 0s and 5m")
	}
	switch p.TokenMode {
	case "", "id_token", "access_token":
	default:
		v.add("token_mode", "must be id_token or access_token")
	}
	if p.TokenMode != "access_token" {
		if len(p.AllowedClients) > 0 {
			v.add("allowed_clients", "applies to token_mode access_token only")
		}
		if len(p.RequiredScopes) > 0 {
			v.add("required_scopes", "applies to token_mode access_token only")
		}
	}
	for i, t := range p.AllowedTenants {
		switch {
		case !isGUID(t):
			v.add("allowed_tenants", "entry %d (%q) is not a tenant ID (GUID)", i, t)
		case strings.EqualFold(t, ConsumerTenant):
			v.add("allowed_tenants", "%s is the Microsoft consumer (personal account) tenant, which is always refused", t)
		}
	}
	if strings.Contains(p.Issuer, "{tenantid}") {
		if !entra {
			v.add("issuer", "only Entra issuers may contain {tenantid} (set type: entra)")
		}
		if len(p.AllowedTenants) == 0 {
			v.add("allowed_tenants", "is required with a {tenantid} issuer")
		}
	} else if entra && p.Issuer != "" {
		tid := EntraTenantFromIssuer(p.Issuer)
		if tid == "" {
			tid = tenantOfTemplate(p.Issuer)
		}
		switch {
		case tid == "":
			v.add("issuer", "an Entra issuer must be <base>/<tenant-id>/v2.0")
		case strings.EqualFold(tid, ConsumerTenant):
			v.add("issuer", "names the Microsoft consumer tenant, which is always refused")
		case len(p.AllowedTenants) > 0 && !containsFold(p.AllowedTenants, tid):
			v.add("allowed_tenants", "must include the issuer's tenant %s (for several tenants use the issuer .../{tenantid}/v2.0)", tid)
		}
	}
	if !entra {
		if len(p.AllowedTenants) > 0 {
			v.add("allowed_tenants", "applies to Entra providers only")
		}
		if len(p.TokenVersions) > 0 {
			v.add("token_versions", "applies to Entra providers only")
		}
		if p.BlockGuests {
			v.add("block_guests", "applies to Entra providers only")
		}
		if p.GroupOverage == "graph" {
			v.add("group_overage", "graph applies to Entra providers only")
		}
	}
	for i, ver := range p.TokenVersions {
		if ver != "1.0" && ver != "2.0" {
			v.add("token_versions", "entry %d (%q) must be \"2.0\" or \"1.0\"", i, ver)
		}
	}
	if p.V1Issuer != "" && !strings.Contains(p.V1Issuer, "{tenantid}") {
		v.add("v1_issuer", "must contain {tenantid}, e.g. https://sts.windows.net/{tenantid}/")
	}
	for _, f := range []struct{ name, val string }{{"discovery_url", p.DiscoveryURL}, {"jwks_url", p.JWKSURL}} {
		if f.val != "" {
			if _, err := parseURL(strings.ReplaceAll(f.val, "{tenantid}", "tenant"), false); err != nil {
				v.add(f.name, "%v", err)
			}
		}
	}
	if p.DiscoveryURL != "" && p.JWKSURL != "" {
		v.add("jwks_url", "set either discovery_url or jwks_url, not both")
	}
	for i, a := range p.Algorithms {
		if !supportedAlgorithms[a] {
			v.add("algorithms", "entry %d (%q) is not accepted (RS256/384/512, PS256/384/512, ES256/384/512; never HS* or none)", i, a)
		}
	}
	if p.MaxLifetime < 0 {
		v.add("max_lifetime", "must not be negative")
	}
	for i, r := range p.ClaimRules {
		rv := v.index("claim_rules", i)
		if r.Claim == "" {
			rv.add("claim", "is required")
		}
		if len(r.AnyOf)+len(r.AllOf) == 0 {
			rv.add("", "needs any_of or all_of values")
		}
	}
	switch p.GroupOverage {
	case "", "deny":
		if p.Graph != nil {
			v.add("graph", "is used only with group_overage: graph")
		}
	case "graph":
		if p.Graph == nil {
			v.add("graph", "is required with group_overage: graph (client_id and client_secret of the gateway's app registration)")
			break
		}
		gv := v.at("graph")
		if p.Graph.ClientID == "" {
			gv.add("client_id", "is required")
		}
		if !p.Graph.ClientSecret.IsSet() {
			gv.add("client_secret", "is required (${env:NAME} or ${file:/path})")
		}
		for _, f := range []struct{ name, val string }{{"base_url", p.Graph.BaseURL}, {"token_url", p.Graph.TokenURL}} {
			if f.val != "" {
				if _, err := parseURL(strings.ReplaceAll(f.val, "{tenantid}", "tenant"), false); err != nil {
					gv.add(f.name, "%v", err)
				}
			}
		}
	default:
		v.add("group_overage", "must be deny or graph")
	}
}

func tenantOfTemplate(iss string) string {
	rest, ok := strings.CutSuffix(iss, "/v2.0")
	if !ok {
		return ""
	}
	u, err := url.Parse(rest)
	if err != nil {
		return ""
	}
	seg := u.Path[strings.LastIndex(u.Path, "/")+1:]
	if isGUID(seg) {
		return seg
	}
	return ""
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
				return false
			}
		}
	}
	return true
}

// EntraTenantFromIssuer returns the tenant ID in an Entra v2 issuer
// (https://login.microsoftonline.com/<tid>/v2.0), or "".
func EntraTenantFromIssuer(issuer string) string {
	const p = "https://login.microsoftonline.com/"
	if !strings.HasPrefix(strings.ToLower(issuer), p) {
		return ""
	}
	rest := issuer[len(p):]
	tid, tail, ok := strings.Cut(rest, "/")
	if !ok || tail != "v2.0" || tid == "" {
		return ""
	}
	return tid
}
