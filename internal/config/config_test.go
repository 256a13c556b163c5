package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const validYAML = `
listen: 127.0.0.1:8080
identity:
  issuer: https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/v2.0
  audiences: ["aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"]
  required_roles: ["Claude.User"]
upstreams:
  - name: foundry
    provider: foundry
    base_url: https://contoso.services.ai.azure.com/anthropic
    api_key: ${env:FOUNDRY_API_KEY}
models:
  - id: claude-sonnet-4-6
    display_name: Claude Sonnet 4.6
    upstream_model: sonnet-deployment
audit:
  sqlite: ./gatehouse-audit.db
`

func env(m map[string]string) Getenv { return func(k string) string { return m[k] } }

func TestParseValid(t *testing.T) {
	cfg, err := Parse([]byte(validYAML), env(map[string]string{"FOUNDRY_API_KEY": "sk-secret-value"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Upstreams[0].APIKey.Value(); got != "sk-secret-value" {
		t.Fatalf("secret = %q", got)
	}
	if got := cfg.Identity.AllowedTenants; len(got) != 1 || got[0] != "11111111-2222-3333-4444-555555555555" {
		t.Fatalf("allowed_tenants default = %v, want the issuer's tenant", got)
	}
	if m := cfg.Models[0]; m.Upstream != "foundry" || m.UpstreamModel != "sonnet-deployment" {
		t.Fatalf("model defaults: %+v", m)
	}
	if cfg.Server.MaxBodyBytes != 32<<20 || cfg.Audit.Sync != "crash" || cfg.Audit.FailMode != "closed" {
		t.Fatalf("defaults not applied: %+v %+v", cfg.Server, cfg.Audit)
	}
}

func TestRedactedNeverShowsSecrets(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	os.WriteFile(keyFile, []byte("sk-from-file-123\n"), 0o600)
	y := strings.Replace(validYAML, "${env:FOUNDRY_API_KEY}", "${file:"+keyFile+"}", 1)
	cfg, err := Parse([]byte(y), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Upstreams[0].APIKey.Value() != "sk-from-file-123" {
		t.Fatalf("file secret = %q", cfg.Upstreams[0].APIKey.Value())
	}
	out, err := cfg.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "sk-from-file") {
		t.Fatalf("redacted output leaks the secret:\n%s", out)
	}
	if !strings.Contains(string(out), "${file:"+keyFile+"}") {
		t.Fatalf("redacted output lacks the reference:\n%s", out)
	}
	for _, s := range []string{cfg.Upstreams[0].APIKey.String(), cfg.Upstreams[0].APIKey.GoString()} {
		if strings.Contains(s, "sk-from-file") {
			t.Fatalf("formatting leaks the secret: %s", s)
		}
	}
}

// TestInvalid: each case must report every listed problem, with its path.
func TestInvalid(t *testing.T) {
	tests := []struct {
		name string
		edit func(string) string
		env  map[string]string
		want []string
	}{
		{"unknown key", func(s string) string { return s + "\nlisten_addr: x\n" }, nil,
			[]string{"field listen_addr not found"}},
		{"metadata URL as issuer and missing secret",
			func(s string) string {
				return strings.Replace(s, "555555555555/v2.0", "555555555555/v2.0/.well-known/openid-configuration", 1)
			}, nil,
			[]string{"identity.issuer: must be the issuer itself", "upstreams[0].api_key: environment variable FOUNDRY_API_KEY is not set"}},
		{"entra issuer without v2.0",
			func(s string) string { return strings.Replace(s, "555555555555/v2.0", "555555555555/", 1) },
			map[string]string{"FOUNDRY_API_KEY": "k"},
			[]string{"identity.issuer: an Entra ID issuer must end at /v2.0"}},
		{"http issuer and upstream off loopback",
			func(s string) string {
				s = strings.Replace(s, "https://login.microsoftonline.com", "http://login.microsoftonline.com", 1)
				return strings.Replace(s, "https://contoso", "http://contoso", 1)
			}, map[string]string{"FOUNDRY_API_KEY": "k"},
			[]string{"identity.issuer: \"http://login", "allowed only for loopback", "upstreams[0].base_url: \"http://contoso"}},
		{"literal secret", func(s string) string { return strings.Replace(s, "${env:FOUNDRY_API_KEY}", "sk-literal", 1) }, nil,
			[]string{"upstreams[0].api_key: write secrets as ${env:NAME} or ${file:/path}"}},
		{"foundry URL without /anthropic", func(s string) string {
			return strings.Replace(s, "azure.com/anthropic", "azure.com/", 1)
		}, map[string]string{"FOUNDRY_API_KEY": "k"}, []string{"upstreams[0].base_url: a Foundry base URL ends in /anthropic"}},
		{"model names unknown upstream", func(s string) string {
			return strings.Replace(s, "upstream_model: sonnet-deployment", "upstream_model: sonnet-deployment\n    upstream: nowhere", 1)
		}, map[string]string{"FOUNDRY_API_KEY": "k"}, []string{"models[0].upstream: \"nowhere\" is not the name of a configured upstream"}},
		{"debug profiles off loopback", func(s string) string { return s + "\ndebug_listen: 0.0.0.0:6060\n" },
			map[string]string{"FOUNDRY_API_KEY": "k"}, []string{"debug_listen: must be a loopback address"}},
		{"metrics and debug on the main listener", func(s string) string {
			return s + "\nmetrics_listen: 127.0.0.1:8080\ndebug_listen: 127.0.0.1:8080\n"
		}, map[string]string{"FOUNDRY_API_KEY": "k"}, []string{"metrics_listen: must differ from listen", "debug_listen: must differ from listen and metrics_listen"}},
		{"no audiences, bad provider, bad sync", func(s string) string {
			s = strings.Replace(s, `  audiences: ["aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"]`+"\n", "", 1)
			s = strings.Replace(s, "provider: foundry", "provider: openai", 1)
			return s + "  sync: sometimes\n"
		}, map[string]string{"FOUNDRY_API_KEY": "k"},
			[]string{"identity.audiences: at least one audience", "upstreams[0].provider: \"openai\" is not foundry or anthropic", "audit.sync: \"sometimes\""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.edit(validYAML)), env(tt.env))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestEntraTenantFromIssuer(t *testing.T) {
	for in, want := range map[string]string{
		"https://login.microsoftonline.com/abc/v2.0":  "abc",
		"https://login.microsoftonline.com/abc/v2.0/": "",
		"https://sts.windows.net/abc/":                "",
		"https://example.okta.com/oauth2/default":     "",
	} {
		if got := EntraTenantFromIssuer(in); got != want {
			t.Errorf("%s: %q, want %q", in, got, want)
		}
	}
}
