package config

import (
	"strings"
	"testing"
	"time"
)

const identityRest = `
upstreams:
  - name: foundry
    provider: foundry
    base_url: https://contoso.services.ai.azure.com/anthropic
    api_key: ${env:FOUNDRY_API_KEY}
models:
  - id: claude-sonnet-4-6
audit:
  sqlite: ./gatehouse-audit.db
`

func parseIdentity(t *testing.T, identity string) (*Config, error) {
	t.Helper()
	return Parse([]byte("listen: 127.0.0.1:8080\n"+identity+identityRest), env(map[string]string{"FOUNDRY_API_KEY": "k", "GRAPH_SECRET": "s"}))
}

func TestIdentityProvidersList(t *testing.T) {
	cfg, err := parseIdentity(t, `
identity:
  key_refresh_cooldown: 2m
  max_token_age: 90m
  providers:
    - name: contoso
      issuer: https://login.microsoftonline.com/{tenantid}/v2.0
      audiences: ["aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"]
      allowed_tenants: ["11111111-2222-3333-4444-555555555555", "22222222-2222-3333-4444-555555555555"]
      required_roles: ["Claude.User"]
      block_guests: true
      claim_rules:
        - {claim: acrs, any_of: [c1]}
      group_overage: graph
      required_groups: ["33333333-2222-3333-4444-555555555555"]
      graph:
        client_id: 44444444-2222-3333-4444-555555555555
        client_secret: ${env:GRAPH_SECRET}
    - name: code
      issuer: https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/v2.0
      audiences: ["api://gatehouse"]
      token_mode: access_token
      token_versions: ["1.0", "2.0"]
      required_scopes: [Claude.Use]
      allowed_clients: ["55555555-2222-3333-4444-555555555555"]
    - name: okta
      issuer: https://example.okta.com/oauth2/default
      audiences: ["0oa1b2c3d4"]
      algorithms: [RS256]
      claims: {user: uid, display: email}
      claim_rules:
        - {claim: amr, any_of: [mfa]}
`)
	if err != nil {
		t.Fatal(err)
	}
	id := cfg.Identity
	ps := id.EffectiveProviders()
	if len(ps) != 3 || ps[0].Name != "contoso" || ps[2].Claims.User != "uid" {
		t.Fatalf("providers %+v", ps)
	}
	if ps[0].Graph.ClientSecret.Value() != "s" || ps[0].ClockSkew != time.Minute || ps[1].TokenMode != "access_token" || ps[0].TokenMode != "id_token" {
		t.Errorf("defaults/secrets: %+v", ps[0])
	}
	if len(ps[1].AllowedTenants) != 1 || ps[1].AllowedTenants[0] != "11111111-2222-3333-4444-555555555555" {
		t.Errorf("allowed_tenants default %v", ps[1].AllowedTenants)
	}
	if id.KeyRefreshCooldown != 2*time.Minute || id.MaxTokenAge != 90*time.Minute || id.CacheSize != 10000 {
		t.Errorf("identity globals %+v", id)
	}
}

func TestIdentitySingleFormStillWorks(t *testing.T) {
	cfg, err := parseIdentity(t, `
identity:
  issuer: https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/v2.0
  audiences: ["aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"]
  required_roles: ["Claude.User"]
  clock_skew: 30s
`)
	if err != nil {
		t.Fatal(err)
	}
	ps := cfg.Identity.EffectiveProviders()
	if len(ps) != 1 || ps[0].Name != "default" || ps[0].ClockSkew != 30*time.Second || cfg.Identity.Issuer == "" || cfg.Identity.KeyRefreshCooldown != 5*time.Minute {
		t.Fatalf("%+v", ps)
	}
}

func TestIdentityValidation(t *testing.T) {
	cases := map[string]struct {
		yaml string
		want []string
	}{
		"both forms": {`
identity:
  issuer: https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/v2.0
  audiences: [x]
  providers:
    - {name: a, issuer: "https://idp.example.com", audiences: [x]}
`, []string{"identity.providers: use either"}},
		"list problems with paths": {`
identity:
  key_refresh_cooldown: 1s
  max_token_age: 10s
  providers:
    - issuer: https://login.microsoftonline.com/{tenantid}/v2.0
      audiences: [x]
      token_mode: both
      algorithms: [HS256, none]
      allowed_tenants: ["9188040d-6c67-4c5b-b112-36a304b66dad", "contoso"]
      required_scopes: [x]
      claim_rules: [{claim: "", any_of: []}]
      group_overage: graph
    - name: b
      issuer: http://idp.example.com
      audiences: []
      allowed_tenants: ["11111111-2222-3333-4444-555555555555"]
      token_versions: ["3.0"]
      group_overage: ask
    - name: b
      issuer: https://login.microsoftonline.com/common/v2.0
      audiences: [x]
      v1_issuer: https://sts.windows.net/x/
    - name: c
      issuer: https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/v2.0
      audiences: [x]
      allowed_tenants: ["22222222-2222-3333-4444-555555555555"]
      group_overage: graph
      graph: {client_id: ""}
`, []string{
			"identity.key_refresh_cooldown:", "identity.max_token_age:",
			"identity.providers[0].name: is required",
			"identity.providers[0].token_mode:", "identity.providers[0].algorithms: entry 0", "identity.providers[0].algorithms: entry 1",
			"identity.providers[0].allowed_tenants: 9188040d", "identity.providers[0].allowed_tenants: entry 1",
			"identity.providers[0].required_scopes:", "identity.providers[0].claim_rules[0].claim:", "identity.providers[0].claim_rules[0]: needs",
			"identity.providers[0].graph: is required",
			"identity.providers[1].issuer:", "identity.providers[1].audiences:", "identity.providers[1].allowed_tenants: applies to Entra",
			"identity.providers[1].token_versions:", "identity.providers[1].group_overage:",
			"identity.providers[2].name:", "identity.providers[2].issuer: \"common\"", "identity.providers[2].v1_issuer:",
			"identity.providers[3].allowed_tenants: must include", "identity.providers[3].graph.client_id:", "identity.providers[3].graph.client_secret:",
		}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := parseIdentity(t, c.yaml)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("missing %q in:\n%v", w, err)
				}
			}
		})
	}
}

func TestIdentityUnknownKeyRefused(t *testing.T) {
	_, err := parseIdentity(t, `
identity:
  providers:
    - name: a
      issuer: https://idp.example.com
      audiences: [x]
      audience: [y]
`)
	if err == nil || !strings.Contains(err.Error(), "audience") {
		t.Fatalf("unknown key: %v", err)
	}
}
