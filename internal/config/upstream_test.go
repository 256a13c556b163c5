package config

import (
	"strings"
	"testing"
	"time"
)

const multiUpstreamYAML = `
identity:
  issuer: https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/v2.0
  audiences: ["aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"]
upstreams:
  - name: foundry-east
    provider: foundry
    base_url: https://contoso-east.services.ai.azure.com/anthropic
    azure:
      managed_identity: {}
      scope: https://ai.azure.com/.default
    first_byte_timeout: 90s
    headers: {X-Team: ml-platform}
    proxy: {url: "http://proxy.corp:3128", no_proxy: ".corp"}
    ca_bundle: /etc/gatehouse/corp-ca.pem
  - name: foundry-west
    provider: foundry
    base_url: https://contoso-west.services.ai.azure.com/anthropic
    azure: {managed_identity: {client_id: 0b0b0b0b-0000-0000-0000-000000000001}}
  - name: foundry-sp
    provider: foundry
    base_url: https://contoso-sp.services.ai.azure.com/anthropic
    azure:
      service_principal:
        tenant_id: 11111111-2222-3333-4444-555555555555
        client_id: 0c0c0c0c-0000-0000-0000-000000000001
        client_secret: ${env:SP_SECRET}
      scope: https://cognitiveservices.azure.com/.default
  - name: foundry-aks
    provider: foundry
    base_url: https://contoso-aks.services.ai.azure.com/anthropic
    azure: {workload_identity: {}}
    proxy: {from_environment: true}
  - name: anthropic
    provider: anthropic
    base_url: https://api.anthropic.com
    auth:
      bearer: ${env:ANTHROPIC_OAUTH}
models:
  - id: claude-sonnet-4-6
    routes:
      - {upstream: foundry-east, upstream_model: sonnet-east}
      - {upstream: foundry-west, upstream_model: sonnet-west}
      - {upstream: anthropic}
  - id: claude-haiku-4-5
    routes:
      - {upstream: foundry-east, weight: 3}
      - {upstream: foundry-west, weight: 1}
  - id: claude-opus-4-6
    upstream: foundry-sp
`

func TestParseUpstreamCredentialsAndRoutes(t *testing.T) {
	cfg, err := Parse([]byte(multiUpstreamYAML), env(map[string]string{"SP_SECRET": "sp-canary", "ANTHROPIC_OAUTH": "oauth-canary"}))
	if err != nil {
		t.Fatal(err)
	}
	east := cfg.UpstreamByName("foundry-east")
	if east.Azure == nil || east.Azure.ManagedIdentity == nil || east.Azure.Scope != DefaultAzureScope {
		t.Fatalf("east azure = %+v", east.Azure)
	}
	if east.FirstByteTimeout != 90*time.Second || east.ResponseHeaderTimeout != 90*time.Second {
		t.Errorf("east timeouts = %v / %v", east.FirstByteTimeout, east.ResponseHeaderTimeout)
	}
	if west := cfg.UpstreamByName("foundry-west"); west.Azure.ManagedIdentity.ClientID != "0b0b0b0b-0000-0000-0000-000000000001" || west.FirstByteTimeout != 10*time.Minute {
		t.Errorf("west = %+v", west)
	}
	if sp := cfg.UpstreamByName("foundry-sp").Azure; sp.ServicePrincipal.ClientSecret.Value() != "sp-canary" || sp.Scope != "https://cognitiveservices.azure.com/.default" {
		t.Errorf("sp = %+v", sp)
	}
	if a := cfg.UpstreamByName("anthropic"); a.Auth.Bearer.Value() != "oauth-canary" || !a.hasOtherCredential() {
		t.Errorf("anthropic auth = %+v", a.Auth)
	}
	r := cfg.Models[0].EffectiveRoutes()
	if len(r) != 3 || r[0] != (Route{"foundry-east", "sonnet-east", 0}) || r[2] != (Route{"anthropic", "claude-sonnet-4-6", 0}) {
		t.Errorf("sonnet routes = %+v", r)
	}
	if cfg.Models[0].Upstream != "" || cfg.Models[0].UpstreamModel != "" {
		t.Errorf("routes model got upstream defaults: %+v", cfg.Models[0])
	}
	if r := cfg.Models[1].EffectiveRoutes(); r[0].Weight != 3 || r[1].UpstreamModel != "claude-haiku-4-5" {
		t.Errorf("haiku routes = %+v", r)
	}
	if r := cfg.Models[2].EffectiveRoutes(); len(r) != 1 || r[0] != (Route{"foundry-sp", "claude-opus-4-6", 0}) {
		t.Errorf("opus routes = %+v", r)
	}
	out, err := cfg.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "canary") || !strings.Contains(string(out), "${env:SP_SECRET}") || !strings.Contains(string(out), "managed_identity: {}") {
		t.Errorf("redacted output:\n%s", out)
	}
	// Defaults are idempotent (validate prints, then re-parses).
	again, err := Parse(out, env(map[string]string{"SP_SECRET": "x", "ANTHROPIC_OAUTH": "y"}))
	if err != nil {
		t.Fatalf("redacted output does not parse back: %v", err)
	}
	if again.UpstreamByName("foundry-east").FirstByteTimeout != 90*time.Second {
		t.Error("first_byte_timeout lost in the round trip")
	}
}

func TestUpstreamValidation(t *testing.T) {
	base := `
identity:
  issuer: https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/v2.0
  audiences: ["aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"]
upstreams:
  - name: up
    provider: PROVIDER
    base_url: https://contoso.services.ai.azure.com/anthropic
CRED
  - name: other
    provider: foundry
    base_url: https://other.services.ai.azure.com/anthropic
    api_key: ${env:K}
models:
  - id: claude-sonnet-4-6
MODEL
`
	cases := []struct {
		name, provider, cred, model string
		want                        []string
	}{
		{"no credential", "foundry", "", "    upstream: up", []string{"upstreams[0].api_key: is required"}},
		{"two credentials", "foundry", "    api_key: ${env:K}\n    azure: {managed_identity: {}}", "    upstream: up", []string{"upstreams[0]: set only one credential"}},
		{"azure on anthropic", "anthropic", "    azure: {managed_identity: {}}", "    upstream: up", []string{"upstreams[0].azure: is for provider foundry"}},
		{"bearer on foundry", "foundry", "    auth: {bearer: \"${env:K}\"}", "    upstream: up", []string{"upstreams[0].auth: is for provider anthropic"}},
		{"azure without a kind", "foundry", "    azure: {scope: https://ai.azure.com/.default}", "    upstream: up", []string{"upstreams[0].azure: choose exactly one"}},
		{"azure with two kinds", "foundry", "    azure: {managed_identity: {}, workload_identity: {}}", "    upstream: up", []string{"upstreams[0].azure: choose exactly one"}},
		{"scope without .default", "foundry", "    azure: {managed_identity: {}, scope: https://ai.azure.com}", "    upstream: up", []string{"upstreams[0].azure.scope:"}},
		{"bad client id", "foundry", "    azure: {managed_identity: {client_id: not-a-guid}}", "    upstream: up", []string{"upstreams[0].azure.managed_identity.client_id: \"not-a-guid\" is not a GUID"}},
		{"imds endpoint over http off host", "foundry", "    azure: {managed_identity: {endpoint: http://imds.example.com}}", "    upstream: up", []string{"managed_identity.endpoint:"}},
		{"sp without secret or cert", "foundry", "    azure: {service_principal: {tenant_id: contoso.onmicrosoft.com, client_id: 0c0c0c0c-0000-0000-0000-000000000001}}", "    upstream: up", []string{"service_principal: set exactly one of client_secret and certificate_file"}},
		{"sp missing ids", "foundry", "    azure: {service_principal: {certificate_file: /x.pem}}", "    upstream: up", []string{"service_principal.tenant_id: is required", "service_principal.client_id: is required"}},
		{"reserved header", "foundry", "    api_key: ${env:K}\n    headers: {Authorization: x, X_Alias: y, anthropic-beta: z}", "    upstream: up", []string{"\"Authorization\" is reserved", "\"X_Alias\": header names", "\"anthropic-beta\" is reserved"}},
		{"proxy both", "foundry", "    api_key: ${env:K}\n    proxy: {from_environment: true, url: http://p:1}", "    upstream: up", []string{"upstreams[0].proxy: set either"}},
		{"proxy with credentials", "foundry", "    api_key: ${env:K}\n    proxy: {url: \"http://user:pw@proxy:3128\"}", "    upstream: up", []string{"upstreams[0].proxy.url: must not carry credentials"}},
		{"mi client and resource id", "foundry", "    azure: {managed_identity: {client_id: 0b0b0b0b-0000-0000-0000-000000000001, resource_id: /subscriptions/x}}", "    upstream: up", []string{"managed_identity: set client_id or resource_id"}},
		{"proxy empty", "foundry", "    api_key: ${env:K}\n    proxy: {no_proxy: x}", "    upstream: up", []string{"upstreams[0].proxy.url: is required"}},
		{"both timeouts differ", "foundry", "    api_key: ${env:K}\n    first_byte_timeout: 1m\n    response_header_timeout: 2m", "    upstream: up", []string{"first_byte_timeout: and response_header_timeout"}},
		{"routes and upstream", "foundry", "    api_key: ${env:K}", "    upstream: up\n    routes: [{upstream: up}]", []string{"models[0].routes: use either routes"}},
		{"route unknown", "foundry", "    api_key: ${env:K}", "    routes: [{upstream: nowhere}]", []string{"models[0].routes[0].upstream: \"nowhere\" is not the name"}},
		{"route twice", "foundry", "    api_key: ${env:K}", "    routes: [{upstream: up}, {upstream: up}]", []string{"routes[1].upstream: \"up\" appears twice"}},
		{"mixed weights", "foundry", "    api_key: ${env:K}", "    routes: [{upstream: up, weight: 2}, {upstream: other}]", []string{"routes[1].weight: give every route"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			y := strings.NewReplacer("PROVIDER", tc.provider, "CRED\n", tc.cred+"\n", "MODEL\n", tc.model+"\n").Replace(base)
			if tc.provider == "anthropic" {
				y = strings.Replace(y, "https://contoso.services.ai.azure.com/anthropic", "https://api.anthropic.com", 1)
			}
			_, err := Parse([]byte(y), env(map[string]string{"K": "k"}))
			if err == nil {
				t.Fatalf("accepted:\n%s", y)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}
