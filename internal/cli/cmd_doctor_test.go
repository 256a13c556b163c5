package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	fakeanthropic "github.com/gatehouse-dev/gatehouse/internal/fake/anthropic"
	fakeazure "github.com/gatehouse-dev/gatehouse/internal/fake/azure"
	"github.com/gatehouse-dev/gatehouse/internal/fake/idp"
)

// runDoctorCmd runs `gatehouse doctor args...` and returns the exit code and
// standard output.
func runDoctorCmd(t *testing.T, getenv func(string) string, args ...string) (int, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), append([]string{"doctor"}, args...), getenv, nil, &out, &errb)
	if errb.Len() > 0 {
		t.Logf("stderr: %s", errb.String())
	}
	return code, out.String()
}

// doctorJSON is the --json report.
type doctorJSON struct {
	OK      bool           `json:"ok"`
	Summary map[string]int `json:"summary"`
	Checks  []struct {
		Name       string `json:"name"`
		Status     string `json:"status"`
		Message    string `json:"message"`
		Fix        string `json:"fix"`
		DurationMS int64  `json:"duration_ms"`
	} `json:"checks"`
}

func parseDoctorJSON(t *testing.T, s string) doctorJSON {
	t.Helper()
	var r doctorJSON
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		t.Fatalf("--json output is not JSON: %v\n%s", err, s)
	}
	return r
}

func (r doctorJSON) status(name string) (string, string, string) {
	for _, c := range r.Checks {
		if c.Name == name {
			return c.Status, c.Message, c.Fix
		}
	}
	return "", "", ""
}

var (
	portRE     = regexp.MustCompile(`127\.0\.0\.1:\d+`)
	durationRE = regexp.MustCompile(`\b\d+(\.\d+)?(ns|µs|ms|s)\b`)
	durJSONRE  = regexp.MustCompile(`"duration_ms": \d+`)
	daysRE     = regexp.MustCompile(`\d+ (more )?days`)
)

// stabilise replaces what changes between runs (temporary directories,
// ports, timings) with placeholders, for the golden files.
// Each pair is (what, placeholder); the host:port of URLs is also replaced.
func stabilise(s string, pairs ...string) string {
	for i := 0; i+1 < len(pairs); i += 2 {
		s = strings.ReplaceAll(s, pairs[i], pairs[i+1])
	}
	s = portRE.ReplaceAllString(s, "127.0.0.1:PORT")
	s = durJSONRE.ReplaceAllString(s, `"duration_ms": 0`)
	s = durationRE.ReplaceAllString(s, "Nms")
	s = daysRE.ReplaceAllString(s, "N days")
	return s
}

// TestDoctorHealthyGateway runs doctor --config on a real gateway (fake
// IdP and upstream) with a profile and a user token: every check passes or
// is skipped for a stated reason, and the report matches the golden files.
func TestDoctorHealthyGateway(t *testing.T) {
	h := startGateway(t, harnessOptions{})
	getenv := func(k string) string {
		if k == "TEST_UPSTREAM_KEY" {
			return h.upstreamKey
		}
		return ""
	}
	prof := filepath.Join(h.dir, "desktop.json")
	if code := Run(context.Background(), []string{"profile", "desktop", "--format", "json", "--gateway-url", h.base,
		"--client-id", testClientID, "--issuer", h.idp.Issuer(testTenant), "--out", prof}, nil, nil, &bytes.Buffer{}, &bytes.Buffer{}); code != 0 {
		t.Fatalf("profile exited %d", code)
	}
	args := []string{"--config", h.cfgPath, "--profile", prof, "--token", h.token(userAda)}

	code, text := runDoctorCmd(t, getenv, args...)
	if code != 0 {
		t.Fatalf("doctor exited %d on a healthy gateway:\n%s", code, text)
	}
	code, js := runDoctorCmd(t, getenv, append(args, "--json")...)
	if code != 0 {
		t.Fatalf("doctor --json exited %d:\n%s", code, js)
	}
	rep := parseDoctorJSON(t, js)
	if !rep.OK || rep.Summary["fail"] != 0 || rep.Summary["warn"] != 0 {
		t.Errorf("summary %v, ok %v", rep.Summary, rep.OK)
	}
	want := map[string]string{
		"config-valid": "ok", "issuer-format": "ok", "oidc-discovery": "ok", "jwks": "ok", "audience": "ok",
		"upstream-primary": "ok", "audit-store": "ok", "clock-skew": "ok", "tls-expiry": "skip", "redis": "skip",
		"gateway-health": "ok", "models-endpoint": "ok", "no-token-refused": "ok", "api-key-refused": "ok",
		"subscription-key-refused": "ok", "token-accepted": "ok",
	}
	for name, st := range want {
		if got, msg, _ := rep.status(name); got != st {
			t.Errorf("%s: status %q (%s), want %q", name, got, msg, st)
		}
	}
	if len(rep.Checks) != len(want) {
		t.Errorf("%d checks, want %d", len(rep.Checks), len(want))
	}
	for _, out := range []string{text, js} {
		if strings.Contains(out, h.upstreamKey) || strings.Contains(out, h.token(userAda)[:40]) {
			t.Fatal("the report contains the upstream key or the user's token")
		}
	}
	// The upstream probe is a count_tokens call with the deployment name
	// and the configured key.
	var probed bool
	for _, r := range h.stub.Requests() {
		if r.Path == "/v1/messages/count_tokens" && strings.Contains(string(r.Body), `"sonnet-deployment"`) && r.Header.Get("x-api-key") == h.upstreamKey {
			probed = true
		}
	}
	if !probed {
		t.Error("the upstream never received the count_tokens probe with the deployment name and key")
	}
	golden(t, "doctor/healthy.txt", stabilise(text, h.dir, "$DIR", h.idp.URL(), "$IDP", h.stub.URL(), "$UPSTREAM", h.base, "$GATEWAY"))
	golden(t, "doctor/healthy.json", stabilise(js, h.dir, "$DIR", h.idp.URL(), "$IDP", h.stub.URL(), "$UPSTREAM", h.base, "$GATEWAY"))
}

// brokenSetup is a configuration pointing at a fake IdP and upstream, with
// no gateway running (the gateway checks are skipped).
type brokenSetup struct {
	idp  *idp.Server
	stub *fakeanthropic.Server
	key  string
	dir  string
}

func newBrokenSetup(t *testing.T, provider string) *brokenSetup {
	t.Helper()
	s := &brokenSetup{dir: t.TempDir(), key: "sk-canary-" + randomHex(12)}
	var err error
	s.idp, err = idp.Start(idp.Options{Tenants: []string{testTenant}, DefaultUser: userAda})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.idp.Close() })
	s.stub, err = fakeanthropic.Start(fakeanthropic.Options{Key: s.key, Provider: provider})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.stub.Close() })
	return s
}

func (s *brokenSetup) config(t *testing.T, issuer, provider, baseURL, listen string) string {
	t.Helper()
	cfg := fmt.Sprintf(`listen: %s
identity:
  type: entra
  issuer: %s
  audiences: [%q]
upstreams:
  - name: primary
    provider: %s
    base_url: %s
    api_key: ${env:TEST_UPSTREAM_KEY}
models:
  - id: claude-sonnet-4-6
    upstream_model: sonnet-deployment
audit:
  sqlite: %s
`, listen, issuer, testClientID, provider, baseURL, filepath.Join(s.dir, "audit", "audit.db"))
	p := filepath.Join(s.dir, "gatehouse.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDoctorBrokenSetups: each deliberately broken setup fails the check
// that should catch it, with the fix, and doctor exits 1.
func TestDoctorBrokenSetups(t *testing.T) {
	unused := freeAddr(t) // nothing listens: the gateway checks are skipped
	type want struct {
		check, status, inMessage, inFix string
	}
	cases := []struct {
		name     string
		provider string
		issuer   func(s *brokenSetup) string
		base     func(s *brokenSetup) string
		key      func(s *brokenSetup) string
		wants    []want
	}{
		{
			name:   "metadata URL as issuer",
			issuer: func(s *brokenSetup) string { return s.idp.Issuer(testTenant) + "/.well-known/openid-configuration" },
			wants: []want{
				{"issuer-format", "fail", "metadata URL", "/v2.0: clients append"},
				{"config-valid", "fail", "not the metadata URL", ""},
			},
		},
		{
			name:   "issuer with a trailing slash",
			issuer: func(s *brokenSetup) string { return s.idp.Issuer(testTenant) + "/" },
			wants: []want{
				{"issuer-format", "fail", "trailing slash", "remove the trailing slash"},
				{"oidc-discovery", "fail", "every token would be refused", "exactly " + "http://127.0.0.1"},
			},
		},
		{
			name:   "issuer of an unknown tenant",
			issuer: func(s *brokenSetup) string { return s.idp.URL() + "/99999999-2222-4333-8444-555555555555/v2.0" },
			wants: []want{
				{"issuer-format", "ok", "", ""},
				{"oidc-discovery", "fail", "answered HTTP 400", "tenant ID"},
				{"jwks", "skip", "see oidc-discovery", ""},
			},
		},
		{
			name: "upstream rejects the key",
			key:  func(*brokenSetup) string { return "sk-canary-wrong" },
			wants: []want{
				{"upstream-primary", "fail", "credential rejected", "set api_key to a valid Anthropic API key"},
				{"config-valid", "ok", "", ""},
				{"oidc-discovery", "ok", "", ""},
				{"jwks", "ok", "", ""},
			},
		},
		{
			name:     "foundry upstream rejects the key",
			provider: "foundry",
			base:     func(s *brokenSetup) string { return s.stub.URL() + "/anthropic" },
			key:      func(*brokenSetup) string { return "0123456789abcdef0123456789abcdee" },
			wants:    []want{{"upstream-primary", "fail", "credential rejected", "Foundry resource"}},
		},
		{
			name:  "upstream path not found",
			base:  func(s *brokenSetup) string { return s.stub.URL() + "/wrong-path" },
			wants: []want{{"upstream-primary", "fail", "deployment/path not found", "base_url"}},
		},
		{
			name:  "upstream unreachable",
			base:  func(*brokenSetup) string { return "http://" + unused },
			wants: []want{{"upstream-primary", "fail", "unreachable", "DNS"}},
		},
		{
			name:  "upstream key unresolved",
			key:   func(*brokenSetup) string { return "" },
			wants: []want{{"config-valid", "fail", "TEST_UPSTREAM_KEY", ""}, {"upstream-primary", "skip", "did not resolve", ""}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			provider := tc.provider
			if provider == "" {
				provider = "anthropic"
			}
			s := newBrokenSetup(t, provider)
			issuer, base, key := s.idp.Issuer(testTenant), s.stub.URL(), s.key
			if tc.issuer != nil {
				issuer = tc.issuer(s)
			}
			if tc.base != nil {
				base = tc.base(s)
			}
			if tc.key != nil {
				key = tc.key(s)
			}
			path := s.config(t, issuer, provider, base, unused)
			getenv := func(k string) string {
				if k == "TEST_UPSTREAM_KEY" {
					return key
				}
				return ""
			}
			code, out := runDoctorCmd(t, getenv, "--config", path, "--json", "--timeout", "5s")
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			rep := parseDoctorJSON(t, out)
			for _, w := range tc.wants {
				st, msg, fix := rep.status(w.check)
				if st != w.status || !strings.Contains(msg, w.inMessage) || !strings.Contains(fix, w.inFix) {
					t.Errorf("%s: got %s %q (fix %q), want %s containing %q (fix containing %q)", w.check, st, msg, fix, w.status, w.inMessage, w.inFix)
				}
			}
			if st, _, _ := rep.status("gateway-health"); st != "skip" {
				t.Errorf("gateway-health %s with no gateway running, want skip", st)
			}
			if strings.Contains(out, s.key) {
				t.Error("the report contains the upstream key")
			}
		})
	}
}

// TestDoctorBrokenGolden pins the text report of a setup with several
// faults at once: every fault is reported, each with its fix.
func TestDoctorBrokenGolden(t *testing.T) {
	s := newBrokenSetup(t, "anthropic")
	unused := freeAddr(t)
	path := s.config(t, s.idp.Issuer(testTenant)+"/", "anthropic", s.stub.URL()+"/wrong-path", unused)
	// a profile naming another client ID
	prof := filepath.Join(s.dir, "code.json")
	if code := Run(context.Background(), []string{"profile", "code", "--format", "json", "--gateway-url", "https://gateway.contoso.example",
		"--client-id", "99999999-bbbb-4ccc-8ddd-eeeeeeeeeeee", "--issuer", s.idp.Issuer(testTenant), "--out", prof}, nil, nil, &bytes.Buffer{}, &bytes.Buffer{}); code != 0 {
		t.Fatalf("profile exited %d", code)
	}
	getenv := func(k string) string {
		if k == "TEST_UPSTREAM_KEY" {
			return s.key
		}
		return ""
	}
	code, out := runDoctorCmd(t, getenv, "--config", path, "--profile", prof)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	for _, w := range []string{"FAIL  audience", "is not in identity.audiences", "FAIL  upstream-primary", "deployment/path not found", "FAIL  issuer-format", "fix: "} {
		if !strings.Contains(out, w) {
			t.Errorf("report lacks %q:\n%s", w, out)
		}
	}
	golden(t, "doctor/broken.txt", stabilise(out, s.dir, "$DIR", s.idp.URL(), "$IDP", s.stub.URL(), "$UPSTREAM", unused, "$GATEWAY_ADDR"))
}

// fakeGateway answers every request with status (a gateway that lets
// requests through without a token when status is 200).
func fakeGateway(t *testing.T, status int) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
			w.WriteHeader(200)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprint(w, `{"data":[{"type":"model","id":"claude-sonnet-4-6"}],"has_more":false}`)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// TestDoctorURLMode: --url against the real gateway passes; against a
// gateway that serves requests without a token, the refusal checks fail
// as bypasses; one that answers 403 gets a warning.
func TestDoctorURLMode(t *testing.T) {
	h := startGateway(t, harnessOptions{})
	code, out := runDoctorCmd(t, nil, "--url", h.base, "--json")
	if code != 0 {
		t.Fatalf("doctor --url on a healthy gateway exited %d:\n%s", code, out)
	}
	rep := parseDoctorJSON(t, out)
	for _, name := range []string{"gateway-health", "models-endpoint", "no-token-refused", "api-key-refused", "subscription-key-refused", "clock-skew"} {
		if st, msg, _ := rep.status(name); st != "ok" {
			t.Errorf("%s: %s %s", name, st, msg)
		}
	}
	if st, _, _ := rep.status("token-accepted"); st != "skip" {
		t.Errorf("token-accepted without --token: %s, want skip", st)
	}
	if st, _, _ := rep.status("config-valid"); st != "" {
		t.Error("--url alone ran the configuration checks")
	}
	// A stale token is refused: token-accepted fails with the fix.
	stale := h.idp.IDToken(testTenant, "99999999-bbbb-4ccc-8ddd-eeeeeeeeeeee", userAda, time.Hour)
	code, out = runDoctorCmd(t, nil, "--url", h.base, "--json", "--token", stale)
	if code != 1 {
		t.Errorf("a token for another client: exit %d, want 1", code)
	}
	if st, msg, fix := parseDoctorJSON(t, out).status("token-accepted"); st != "fail" || !strings.Contains(msg, "401") || !strings.Contains(fix, "identity.audiences") {
		t.Errorf("token-accepted: %s %q %q", st, msg, fix)
	}

	open := fakeGateway(t, 200)
	code, out = runDoctorCmd(t, nil, "--url", open, "--json")
	if code != 1 {
		t.Errorf("a gateway serving requests without a token: exit %d, want 1", code)
	}
	rep = parseDoctorJSON(t, out)
	for _, name := range []string{"no-token-refused", "api-key-refused", "subscription-key-refused"} {
		if st, msg, fix := rep.status(name); st != "fail" || !strings.Contains(msg, "BYPASS") || fix == "" {
			t.Errorf("%s on an open gateway: %s %q fix %q", name, st, msg, fix)
		}
	}

	forbidding := fakeGateway(t, 403)
	_, out = runDoctorCmd(t, nil, "--url", forbidding, "--json")
	if st, msg, _ := parseDoctorJSON(t, out).status("no-token-refused"); st != "warn" || !strings.Contains(msg, "403") {
		t.Errorf("403 for a missing token: %s %q, want warn", st, msg)
	}

	code, out = runDoctorCmd(t, nil, "--url", "http://"+freeAddr(t))
	if code != 1 || !strings.Contains(out, "FAIL  gateway-health") || !strings.Contains(out, "not reachable") {
		t.Errorf("unreachable --url: exit %d:\n%s", code, out)
	}
}

// TestDoctorUsage: flags are checked before anything runs.
func TestDoctorUsage(t *testing.T) {
	for _, args := range [][]string{{}, {"--url", "not a url"}, {"--url", "ftp://x"}, {"stray"}} {
		var out, errb bytes.Buffer
		if code := Run(context.Background(), append([]string{"doctor"}, args...), nil, nil, &out, &errb); code != 2 {
			t.Errorf("doctor %v: exit %d, want 2", args, code)
		}
	}
}

// TestLookupConfigString reads settings by YAML path, whatever their Go
// shape (string, Secret, DSN, pointer to struct).
func TestLookupConfigString(t *testing.T) {
	cfg := &config.Config{}
	cfg.Audit.Postgres = "postgres://a@db/audit"
	cfg.Limits.RedisPassword = config.NewSecret("${env:X}", "pw")
	cfg.Server.TLS = &config.TLS{CertFile: "/tls/cert.pem"}
	cases := []struct {
		path []string
		want string
		ok   bool
	}{
		{[]string{"audit", "postgres"}, "postgres://a@db/audit", true},
		{[]string{"limits", "redis_password"}, "pw", true},
		{[]string{"server", "tls", "cert_file"}, "/tls/cert.pem", true},
		{[]string{"audit", "no_such_key"}, "", false},
		{[]string{"nope", "postgres"}, "", false},
	}
	for _, c := range cases {
		got, ok := lookupConfigString(cfg, c.path...)
		if got != c.want || ok != c.ok {
			t.Errorf("%v = %q, %v; want %q, %v", c.path, got, ok, c.want, c.ok)
		}
	}
}

// TestDoctorManagedIdentityUpstream: a Foundry upstream reached with the
// Container Apps managed identity (fake Azure token endpoint). The token
// is obtained and accepted; without an identity the check says so; an
// identity without the role gets the role-assignment fix.
func TestDoctorManagedIdentityUpstream(t *testing.T) {
	az, err := fakeazure.Start(fakeazure.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer az.Close()
	var forbid atomic.Bool
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	foundry := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		g, ok := az.Lookup(tok)
		switch {
		case !ok || g.Resource != "https://ai.azure.com" || r.URL.Path != "/anthropic/v1/messages/count_tokens":
			w.WriteHeader(401)
		case forbid.Load():
			w.WriteHeader(403)
			fmt.Fprint(w, `{"error":{"code":"PermissionDenied","message":"The principal lacks the required data action Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/completions/action"}}`)
		default:
			fmt.Fprint(w, `{"input_tokens":3}`)
		}
	})}
	go foundry.Serve(ln)
	defer foundry.Close()

	s := newBrokenSetup(t, "foundry")
	path := filepath.Join(s.dir, "gatehouse.yaml")
	cfg := fmt.Sprintf(`listen: %s
identity: {type: entra, issuer: %s, audiences: [%q]}
upstreams:
  - name: foundry
    provider: foundry
    base_url: http://%s/anthropic
    azure: {managed_identity: {}}
models: [{id: claude-sonnet-4-6}]
audit: {sqlite: %s}
`, freeAddr(t), s.idp.Issuer(testTenant), testClientID, ln.Addr(), filepath.Join(s.dir, "audit.db"))
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	getenv := func(k string) string {
		switch k {
		case "IDENTITY_ENDPOINT":
			return az.IdentityEndpoint()
		case "IDENTITY_HEADER":
			return az.IdentityHeader()
		}
		return ""
	}
	check := func(status, msg, fix string) {
		t.Helper()
		_, out := runDoctorCmd(t, getenv, "--config", path, "--json", "--timeout", "5s")
		st, m, f := parseDoctorJSON(t, out).status("upstream-foundry")
		if st != status || !strings.Contains(m, msg) || !strings.Contains(f, fix) {
			t.Errorf("upstream-foundry: %s %q fix %q; want %s ~%q fix ~%q", st, m, f, status, msg, fix)
		}
	}
	check("fail", "could not obtain the managed_identity credential", "managed identity") // no identity assigned yet
	az.SetSystemAssignedIdentity("bbbbbbbb-0000-4000-8000-000000000001")
	check("ok", "credential (managed_identity) accepted", "")
	forbid.Store(true)
	check("fail", "credential rejected", "Cognitive Services User")
}

// TestDoctorStores: with limits.redis and audit.postgres configured, the
// redis and postgres-audit checks connect to the real services; pointed at
// a closed port they fail with the fix, without printing the DSN.
func TestDoctorStores(t *testing.T) {
	redisURL, pgDSN := os.Getenv("GATEHOUSE_TEST_REDIS_URL"), os.Getenv("GATEHOUSE_TEST_POSTGRES_DSN")
	if redisURL == "" || pgDSN == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("CI must set GATEHOUSE_TEST_REDIS_URL and GATEHOUSE_TEST_POSTGRES_DSN")
		}
		t.Skip("GATEHOUSE_TEST_REDIS_URL / GATEHOUSE_TEST_POSTGRES_DSN unset: skipping the Redis and PostgreSQL doctor checks")
	}
	s := newBrokenSetup(t, "anthropic")
	closed := freeAddr(t)
	for _, tc := range []struct {
		name, redis, pg, status string
	}{
		{"reachable", redisURL, pgDSN, "ok"},
		{"down", "redis://" + closed + "/0", "postgres://gatehouse@" + closed + "/audit?sslmode=disable", "fail"},
	} {
		path := filepath.Join(s.dir, tc.name+".yaml")
		cfg := fmt.Sprintf(`listen: %s
identity: {type: entra, issuer: %s, audiences: [%q]}
upstreams: [{name: primary, provider: anthropic, base_url: %s, api_key: "${env:K}"}]
models: [{id: claude-sonnet-4-6}]
audit: {postgres: %q}
limits: {redis: %q}
`, closed, s.idp.Issuer(testTenant), testClientID, s.stub.URL(), tc.pg, tc.redis)
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		_, out := runDoctorCmd(t, func(k string) string {
			if k == "K" {
				return s.key
			}
			return ""
		}, "--config", path, "--json", "--timeout", "5s")
		rep := parseDoctorJSON(t, out)
		for _, name := range []string{"redis", "postgres-audit"} {
			if st, msg, fix := rep.status(name); st != tc.status || (st == "fail" && fix == "") {
				t.Errorf("%s/%s: %s %q fix %q", tc.name, name, st, msg, fix)
			}
		}
		if st, msg, _ := rep.status("config-valid"); st != "ok" {
			t.Errorf("%s: config-valid %s %s", tc.name, st, msg)
		}
		if st, msg, _ := rep.status("audit-store"); st != "skip" || !strings.Contains(msg, "PostgreSQL") {
			t.Errorf("%s: audit-store %s %s, want skip (PostgreSQL)", tc.name, st, msg)
		}
	}
}
