package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/profile"
)

// rkRun runs the program with an environment map and standard input.
func rkRun(t *testing.T, envm map[string]string, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, func(k string) string { return envm[k] }, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

const (
	rkTenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	rkClient = "0c4e5a2d-1b3f-4c6e-9a8d-7e6f5a4b3c2d"
	rkIssuer = "https://login.microsoftonline.com/" + rkTenant + "/v2.0"
)

func TestProfileCommandMatchesLibrary(t *testing.T) {
	for _, c := range []string{"desktop", "code"} {
		for _, f := range []string{"mobileconfig", "reg", "json"} {
			code, out, stderr := rkRun(t, nil, "", "profile", c, "--format", f, "--gateway-url", "https://llm-gw.corp.example",
				"--client-id", rkClient, "--issuer", rkIssuer, "--model", "claude-sonnet-4-6", "--model", "claude-opus-4-8")
			if code != 0 {
				t.Fatalf("%s/%s: exit %d: %s", c, f, code, stderr)
			}
			want, err := profile.Generate(profile.Client(c), profile.Format(f), profile.Options{
				GatewayURL: "https://llm-gw.corp.example", ClientID: rkClient, Issuer: rkIssuer,
				Models: []string{"claude-sonnet-4-6", "claude-opus-4-8"},
			})
			if err != nil {
				t.Fatal(err)
			}
			if out != string(want) {
				t.Errorf("%s/%s: CLI output differs from profile.Generate", c, f)
			}
		}
	}
}

func TestProfileFromConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "gatehouse.yaml")
	os.WriteFile(cfg, []byte(`listen: 127.0.0.1:8080
public_url: https://claude-gw.contoso.example
identity:
  issuer: `+rkIssuer+`
  audiences: ["`+rkClient+`"]
upstreams:
  - name: foundry
    provider: anthropic
    base_url: https://contoso.services.ai.azure.com/anthropic
    api_key: ${env:UNSET_ON_THIS_MACHINE}
models:
  - id: claude-sonnet-4-6
  - id: claude-haiku-4-5
audit:
  sqlite: /var/lib/gatehouse/audit.db
`), 0o600)
	out := filepath.Join(dir, "claude-code.json")
	code, _, stderr := rkRun(t, nil, "", "profile", "code", "--format", "json", "--config", cfg, "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	got, _ := os.ReadFile(out)
	for _, want := range []string{`"ANTHROPIC_BASE_URL": "https://claude-gw.contoso.example"`, `"claude-haiku-4-5"`, "--client-id " + rkClient} {
		if !strings.Contains(string(got), want) {
			t.Errorf("profile lacks %s:\n%s", want, got)
		}
	}
	if !strings.Contains(stderr, "push a Claude Desktop profile too") {
		t.Errorf("no reminder about the other client: %q", stderr)
	}
	// Flags override the config.
	code, stdout, _ := rkRun(t, nil, "", "profile", "desktop", "--format", "json", "--config", cfg, "--model", "claude-opus-4-8")
	if code != 0 || !strings.Contains(stdout, `[\"claude-opus-4-8\"]`) || strings.Contains(stdout, "haiku") {
		t.Errorf("override: %d %s", code, stdout)
	}
}

func TestProfileCommandRefuses(t *testing.T) {
	base := []string{"--format", "json", "--gateway-url", "https://gw.example", "--client-id", rkClient}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{append([]string{"profile", "desktop"}, append(base, "--issuer", rkIssuer+"/.well-known/openid-configuration")...), 1, "/.well-known"},
		{append([]string{"profile", "code"}, append(base, "--issuer", "https://login.microsoftonline.com/"+rkTenant)...), 1, "/v2.0"},
		{append([]string{"profile", "desktop"}, append(base, "--issuer", rkIssuer, "--header", "x-api-key: sk-ant-api03-xyz")...), 1, "no secrets"},
		{[]string{"profile", "desktop", "--format", "json"}, 2, "--gateway-url"},
		{[]string{"profile", "cowork", "--format", "json"}, 2, "desktop|code"},
		{append([]string{"profile", "desktop"}, "--gateway-url", "https://gw.example", "--client-id", rkClient, "--issuer", rkIssuer), 2, "--format"},
	} {
		code, _, stderr := rkRun(t, nil, "", tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q (want %d, %q)", tc.args, code, stderr, tc.code, tc.want)
		}
		if strings.Contains(stderr, "sk-ant-api03-xyz") {
			t.Error("refusal repeats the secret")
		}
	}
}

func TestProfileFromMultiProviderConfig(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "gatehouse.yaml")
	api := "9e9e9e9e-1111-4222-8333-444444444444"
	os.WriteFile(cfg, []byte(`listen: 127.0.0.1:8080
public_url: https://claude-gw.contoso.example
identity:
  providers:
    - name: desktop
      issuer: https://login.microsoftonline.com/{tenantid}/v2.0
      allowed_tenants: ["`+rkTenant+`"]
      audiences: ["`+rkClient+`"]
    - name: helpers
      issuer: `+rkIssuer+`
      token_mode: access_token
      audiences: ["`+api+`"]
      allowed_clients: ["`+rkClient+`"]
`), 0o600)
	code, _, stderr := rkRun(t, nil, "", "profile", "desktop", "--format", "json", "--config", cfg)
	if code != 2 || !strings.Contains(stderr, "--provider") || !strings.Contains(stderr, "desktop, helpers") {
		t.Fatalf("ambiguous: exit %d %q", code, stderr)
	}
	code, out, stderr := rkRun(t, nil, "", "profile", "desktop", "--format", "json", "--config", cfg, "--provider", "desktop")
	if code != 0 || !strings.Contains(out, rkIssuer) || !strings.Contains(out, rkClient) {
		t.Fatalf("desktop provider: exit %d %s %s", code, out, stderr)
	}
	code, out, stderr = rkRun(t, nil, "", "profile", "code", "--format", "json", "--config", cfg, "--provider", "helpers", "--scopes", "api://"+api+"/access_as_user")
	if code != 0 || !strings.Contains(out, "--client-id "+rkClient+" --token-type access_token --scopes 'api://"+api+"/access_as_user'") {
		t.Fatalf("access-token provider: exit %d %s %s", code, out, stderr)
	}
}

func TestProfileAll(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "profiles")
	code, out, stderr := rkRun(t, nil, "", "profile", "all", "--out-dir", dir, "--gateway-url", "https://gw.example", "--client-id", rkClient, "--issuer", rkIssuer)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want := []string{"claude-code.mobileconfig", "claude-code.reg", "claude-desktop.json", "claude-desktop.mobileconfig", "claude-desktop.reg", "managed-settings.json"}
	entries, _ := os.ReadDir(dir)
	var got []string
	for _, en := range entries {
		got = append(got, en.Name())
		data, _ := os.ReadFile(filepath.Join(dir, en.Name()))
		s, err := profile.Inspect(data)
		if err != nil || s.ClientID != rkClient || s.GatewayURL != "https://gw.example" {
			t.Errorf("%s: %+v %v", en.Name(), s, err)
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("files = %v\n%s", got, out)
	}
	if code, _, _ := rkRun(t, nil, "", "profile", "all", "--format", "json", "--gateway-url", "https://gw.example", "--client-id", rkClient, "--issuer", rkIssuer); code != 2 {
		t.Errorf("all without --out-dir: exit %d", code)
	}
}
