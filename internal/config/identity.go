package config

import (
	"strings"
	"time"
)

// Identity configures who may call the gateway. The single-issuer form
// (issuer, audiences, ...) is the common case; see docs/configuration.md.
type Identity struct {
	// Issuer is the OIDC issuer, exactly as it appears in tokens' iss claim,
	// e.g. https://login.microsoftonline.com/<tenant-id>/v2.0.
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
}

func (c *Identity) applyDefaults() {
	if c.ClockSkew == 0 {
		c.ClockSkew = 60 * time.Second
	}
	if len(c.AllowedTenants) == 0 {
		if tid := EntraTenantFromIssuer(c.Issuer); tid != "" {
			c.AllowedTenants = []string{tid}
		}
	}
}

func (c *Identity) validate(v *validator) {
	if c.Issuer == "" {
		v.add("issuer", "is required (for Entra ID: https://login.microsoftonline.com/<tenant-id>/v2.0)")
	} else if u, err := parseURL(c.Issuer, false); err != nil {
		v.add("issuer", "%v", err)
	} else {
		if strings.Contains(u.Path, "/.well-known") {
			v.add("issuer", "must be the issuer itself, not the metadata URL: remove %q", u.Path[strings.Index(u.Path, "/.well-known"):])
		}
		if strings.EqualFold(u.Hostname(), "login.microsoftonline.com") && !strings.HasSuffix(u.Path, "/v2.0") {
			v.add("issuer", "an Entra ID issuer must end at /v2.0 (https://login.microsoftonline.com/<tenant-id>/v2.0)")
		}
	}
	if len(c.Audiences) == 0 {
		v.add("audiences", "at least one audience is required (the client ID in ID-token mode, the API app ID in access-token mode)")
	}
	for i, a := range c.Audiences {
		if strings.TrimSpace(a) == "" {
			v.add("audiences", "entry %d is empty", i)
		}
	}
	switch c.Type {
	case "", "entra", "oidc":
	default:
		v.add("type", "%q is not entra or oidc", c.Type)
	}
	if c.ClockSkew < 0 || c.ClockSkew > 5*time.Minute {
		v.add("clock_skew", "must be between 0s and 5m")
	}
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
