package config

import (
	"regexp"
	"strings"
	"time"
)

// Upstream providers.
const (
	ProviderFoundry   = "foundry"
	ProviderAnthropic = "anthropic"
)

// Upstream is one Anthropic-compatible endpoint the gateway forwards to.
type Upstream struct {
	Name     string `yaml:"name"`
	Provider string `yaml:"provider"` // foundry | anthropic
	// BaseURL, e.g. https://<resource>.services.ai.azure.com/anthropic or
	// https://api.anthropic.com. Requests go to BaseURL + /v1/messages.
	BaseURL string `yaml:"base_url"`
	// APIKey is injected as api-key (foundry) or x-api-key (anthropic).
	APIKey Secret `yaml:"api_key,omitempty"`
	// ConnectTimeout bounds dialing and TLS. Default 10s.
	ConnectTimeout time.Duration `yaml:"connect_timeout,omitempty"`
	// ResponseHeaderTimeout bounds the wait for response headers (time to
	// first byte). Default 10m: long non-streaming generations are slow.
	ResponseHeaderTimeout time.Duration `yaml:"response_header_timeout,omitempty"`
}

func (u *Upstream) applyDefaults() {
	u.Provider = strings.ToLower(u.Provider)
	u.BaseURL = strings.TrimRight(u.BaseURL, "/")
	if u.ConnectTimeout == 0 {
		u.ConnectTimeout = 10 * time.Second
	}
	if u.ResponseHeaderTimeout == 0 {
		u.ResponseHeaderTimeout = 10 * time.Minute
	}
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
	// is more than one upstream.
	Upstream string `yaml:"upstream,omitempty"`
	// CreatedAt is reported by /v1/models (RFC 3339). Default: the Unix epoch.
	CreatedAt time.Time `yaml:"created_at,omitempty"`
	// FamilyDefault marks the model as its family's default in /v1/models.
	FamilyDefault bool `yaml:"family_default,omitempty"`
}

func (m *Model) applyDefaults(ups []Upstream) {
	if m.UpstreamModel == "" {
		m.UpstreamModel = m.ID
	}
	if m.DisplayName == "" {
		m.DisplayName = m.ID
	}
	if m.Upstream == "" && len(ups) == 1 {
		m.Upstream = ups[0].Name
	}
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)
var modelRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,127}$`)

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
		if u.ConnectTimeout < 0 {
			uv.add("connect_timeout", "must not be negative")
		}
		if u.ResponseHeaderTimeout < 0 {
			uv.add("response_header_timeout", "must not be negative")
		}
	}
}

// hasOtherCredential reports whether the upstream authenticates by a means
// other than a static key (extended by the managed-identity work).
func (u *Upstream) hasOtherCredential() bool { return false }

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
