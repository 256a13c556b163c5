package config

import (
	"strings"
	"testing"
	"time"
)

const governanceYAML = `
policies:
  - name: engineering
    match: {groups: ["0b3c6f1e-1111-2222-3333-444444444444"]}
    models: [claude-sonnet-4-6, "claude-sonnet-*"]
    max_output_tokens: 32000
    limits:
      requests_per_minute: 60
      tokens_per_minute: 400000
      tokens_per_day: 5000000
      usd_per_month: 500
      concurrent_streams: 8
    mode: enforce
  - name: everyone
    match: {}
    models: [claude-sonnet-4-6]
    limits: {usd_per_month: 50}
    mode: shadow
    fail_mode: open
group_limits:
  - group: 0b3c6f1e-1111-2222-3333-444444444444
    name: engineering-team
    limits: {usd_per_month: 20000}
limits:
  redis: redis://127.0.0.1:6379/0
  redis_password: ${env:REDIS_PASSWORD}
pricing:
  - model: claude-sonnet-4-6
    upstream: foundry
    input: 3.3
    output: 16.5
    cache_write_5m: 4.125
    cache_write_1h: 6.6
    cache_read: 0.33
    long_context: {threshold: 200000, input: 6.6, output: 24.75, cache_write_5m: 8.25, cache_write_1h: 13.2, cache_read: 0.66}
`

func TestGovernanceValid(t *testing.T) {
	cfg, err := Parse([]byte(validYAML+governanceYAML), env(map[string]string{"FOUNDRY_API_KEY": "k", "REDIS_PASSWORD": "pw"}))
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Policies[0]
	if p.Limits.TokensPerMinute != 400000 || p.Limits.USDPerMonth != 500 || p.MaxOutputTokens != 32000 || p.FailMode != FailClosed || p.Mode != PolicyModeEnforce {
		t.Fatalf("policy: %+v", p)
	}
	if q := cfg.Policies[1]; !q.Match.IsCatchAll() || q.Mode != PolicyModeShadow || q.FailMode != FailOpen {
		t.Fatalf("catch-all: %+v", q)
	}
	if g := cfg.GroupLimits[0]; g.Name != "engineering-team" || g.Limits.USDPerMonth != 20000 || g.Mode != PolicyModeEnforce {
		t.Fatalf("group limit: %+v", g)
	}
	if l := cfg.Limits; l.RedisPassword.Value() != "pw" || l.KeyPrefix != "gatehouse" || l.Timeout != 500*time.Millisecond || l.StreamLease != 61*time.Minute {
		t.Fatalf("limits: %+v", l)
	}
	if pr := cfg.Pricing[0]; pr.LongContext == nil || pr.LongContext.Threshold != 200000 || pr.CacheWrite1h != 6.6 {
		t.Fatalf("pricing: %+v", pr)
	}
	out, err := cfg.Redacted()
	if err != nil || strings.Contains(string(out), "pw") && !strings.Contains(string(out), "${env:REDIS_PASSWORD}") {
		t.Fatalf("redacted: %v\n%s", err, out)
	}
}

func TestGovernanceInvalid(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"unknown key", "policies:\n  - name: a\n    limit: {}\n", "field limit not found"},
		{"missing name", "policies:\n  - match: {roles: [x]}\n", "policies[0].name: is required"},
		{"bad name", "policies:\n  - name: Eng Team\n", `policies[0].name: "Eng Team" must be lower-case`},
		{"duplicate name", "policies:\n  - name: a\n    match: {roles: [x]}\n  - name: a\n    match: {roles: [y]}\n", `policies[1].name: "a" is used by another policy`},
		{"two catch-alls", "policies:\n  - name: a\n  - name: b\n    match: {}\n", "policies[1].match: policies[0] is already the catch-all"},
		{"unlisted model", "policies:\n  - name: a\n    models: [claude-opus-4-6]\n", `policies[0].models: entry 0: "claude-opus-4-6" is not listed under models`},
		{"bad glob", "policies:\n  - name: a\n    models: [\"claude-[\"]\n", "is not a valid glob"},
		{"negative limit", "policies:\n  - name: a\n    limits: {tokens_per_day: -1}\n", "policies[0].limits.tokens_per_day: must not be negative"},
		{"bad usd", "policies:\n  - name: a\n    limits: {usd_per_month: -3}\n", "policies[0].limits.usd_per_month: must be between 0 and 1e9"},
		{"bad mode", "policies:\n  - name: a\n    mode: audit\n", `policies[0].mode: "audit" is not enforce or shadow`},
		{"bad fail mode", "policies:\n  - name: a\n    fail_mode: maybe\n", `policies[0].fail_mode: "maybe" is not open or closed`},
		{"empty match entry", "policies:\n  - name: a\n    match: {groups: [\"\"]}\n", "policies[0].match.groups: entry 0 is empty"},
		{"group limit without limits", "group_limits:\n  - group: g\n", "group_limits[0].limits: set at least one limit"},
		{"group limit without group", "group_limits:\n  - limits: {tokens_per_day: 5}\n", "group_limits[0].group: is required"},
		{"duplicate group", "group_limits:\n  - group: g\n    limits: {tokens_per_day: 5}\n  - group: g\n    limits: {tokens_per_day: 6}\n", `group_limits[1].group: "g" has another group_limits entry`},
		{"redis scheme", "limits:\n  redis: http://127.0.0.1:6379\n", "limits.redis: must be a redis:// or rediss:// URL"},
		{"redis password in url", "limits:\n  redis: redis://:hunter2@127.0.0.1:6379\n", "limits.redis: must not carry a password"},
		{"password without redis", "limits:\n  redis_password: ${env:FOUNDRY_API_KEY}\n", "limits.redis_password: is set but limits.redis is empty"},
		{"short lease", "limits:\n  stream_lease: 30m\n", "limits.stream_lease: must be at least server.max_request_duration"},
		{"bad timeout", "limits:\n  timeout: 1m\n", "limits.timeout: must be between 0 and 10s"},
		{"pricing without model", "pricing:\n  - input: 3\n", "pricing[0].model: is required"},
		{"negative price", "pricing:\n  - model: m\n    output: -1\n", "pricing[0].output: must be a USD price"},
		{"unknown upstream", "pricing:\n  - model: m\n    upstream: nope\n", `pricing[0].upstream: "nope" is not the name of a configured upstream`},
		{"duplicate price", "pricing:\n  - model: m\n  - model: M\n", `pricing[1].model: "M" has another pricing entry`},
		{"long context threshold", "pricing:\n  - model: m\n    long_context: {input: 1}\n", "pricing[0].long_context.threshold: must be a positive number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(validYAML+tt.yaml), env(map[string]string{"FOUNDRY_API_KEY": "k"}))
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q\nwant it to contain %q", err, tt.want)
			}
		})
	}
}
