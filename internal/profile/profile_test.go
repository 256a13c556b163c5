package profile

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"howett.net/plist"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

const (
	tenant   = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	clientID = "0c4e5a2d-1b3f-4c6e-9a8d-7e6f5a4b3c2d"
	issuer   = "https://login.microsoftonline.com/" + tenant + "/v2.0"
	gateway  = "https://llm-gw.corp.example"
)

func baseOptions() Options {
	return Options{
		GatewayURL: gateway,
		ClientID:   clientID,
		Issuer:     issuer,
		Models:     []string{"claude-sonnet-4-6", "claude-opus-4-8"},
	}
}

func goldenCases() []struct {
	name string
	c    Client
	f    Format
	o    Options
} {
	withExtras := baseOptions()
	withExtras.CustomHeaders = map[string]string{"X-Org-Id": "team-1 & <ops>"}
	withExtras.Organization = "Contoso & Partners"
	withExtras.Broker = true
	helper := baseOptions()
	helper.DesktopHelper = "/usr/local/bin/gatehouse-token"
	mcx := baseOptions()
	mcx.MCX = true
	access := baseOptions()
	access.BearerTokenType = "access_token"
	access.Scopes = "api://" + clientID + "/access_as_user"
	access.Models = nil
	return []struct {
		name string
		c    Client
		f    Format
		o    Options
	}{
		{"desktop.mobileconfig", Desktop, MobileConfig, baseOptions()},
		{"desktop.reg", Desktop, Reg, baseOptions()},
		{"desktop.json", Desktop, JSON, baseOptions()},
		{"code.mobileconfig", Code, MobileConfig, baseOptions()},
		{"code.reg", Code, Reg, baseOptions()},
		{"code.json", Code, JSON, baseOptions()},
		{"desktop-extras.mobileconfig", Desktop, MobileConfig, withExtras},
		{"desktop-extras.reg", Desktop, Reg, withExtras},
		{"code-extras.json", Code, JSON, withExtras},
		{"desktop-access-token.json", Desktop, JSON, access},
		{"code-access-token.reg", Code, Reg, access},
		{"desktop-helper.json", Desktop, JSON, helper},
		{"desktop-helper.reg", Desktop, Reg, helper},
		{"desktop-mcx.mobileconfig", Desktop, MobileConfig, mcx},
		{"code-mcx.mobileconfig", Code, MobileConfig, mcx},
	}
}

func TestGolden(t *testing.T) {
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Generate(tc.c, tc.f, tc.o)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tc.name+".golden")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/profile -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from golden file (run with -update after checking the diff)\ngot:\n%s", path, got)
			}
			again, _ := Generate(tc.c, tc.f, tc.o)
			if !bytes.Equal(got, again) {
				t.Error("Generate is not deterministic")
			}
		})
	}
}

// TestDesktopMobileconfigParses reads the profile back with a real plist
// library and checks the contract's encoding rules: one payload of type
// com.anthropic.claudefordesktop, every setting a string, JSON in a string.
func TestDesktopMobileconfigParses(t *testing.T) {
	out, err := Generate(Desktop, MobileConfig, baseOptions())
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		PayloadType    string
		PayloadVersion int
		PayloadUUID    string
		PayloadScope   string
		PayloadContent []map[string]any
	}
	if _, err := plist.Unmarshal(out, &p); err != nil {
		t.Fatal(err)
	}
	if p.PayloadType != "Configuration" || p.PayloadVersion != 1 || p.PayloadScope != "System" || len(p.PayloadContent) != 1 {
		t.Fatalf("outer payload: %+v", p)
	}
	inner := p.PayloadContent[0]
	if inner["PayloadType"] != "com.anthropic.claudefordesktop" {
		t.Fatalf("inner PayloadType = %v", inner["PayloadType"])
	}
	if inner["PayloadUUID"] == p.PayloadUUID || !guidRE.MatchString(p.PayloadUUID) {
		t.Errorf("UUIDs: outer %s inner %v", p.PayloadUUID, inner["PayloadUUID"])
	}
	for k, v := range inner {
		if strings.HasPrefix(k, "Payload") {
			continue
		}
		if _, ok := v.(string); !ok {
			t.Errorf("%s is %T; Desktop values must all be strings", k, v)
		}
	}
	want := map[string]string{
		"inferenceProvider":            "gateway",
		"inferenceGatewayBaseUrl":      gateway,
		"inferenceCredentialKind":      "interactive",
		"disableDeploymentModeChooser": "true",
	}
	for k, v := range want {
		if inner[k] != v {
			t.Errorf("%s = %v, want %q", k, inner[k], v)
		}
	}
	var oidc map[string]string
	if err := json.Unmarshal([]byte(inner["inferenceGatewayOidc"].(string)), &oidc); err != nil {
		t.Fatalf("inferenceGatewayOidc is not JSON in a string: %v", err)
	}
	if oidc["issuer"] != issuer || oidc["clientId"] != clientID || len(oidc) != 2 {
		t.Errorf("inferenceGatewayOidc = %v", oidc)
	}
	var models []string
	if err := json.Unmarshal([]byte(inner["inferenceModels"].(string)), &models); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(models, baseOptions().Models) {
		t.Errorf("inferenceModels = %v", models)
	}
	for k := range inner {
		if strings.Contains(k, ".") {
			t.Errorf("dotted key %q: nested values must be one JSON string", k)
		}
	}
}

// TestCodeMobileconfigParses checks that Claude Code keeps nested types:
// env is a dict and availableModels an array.
func TestCodeMobileconfigParses(t *testing.T) {
	out, err := Generate(Code, MobileConfig, baseOptions())
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		PayloadContent []struct {
			PayloadType     string
			APIKeyHelper    string            `plist:"apiKeyHelper"`
			Env             map[string]string `plist:"env"`
			AvailableModels []string          `plist:"availableModels"`
			Model           string            `plist:"model"`
		}
	}
	if _, err := plist.Unmarshal(out, &p); err != nil {
		t.Fatal(err)
	}
	in := p.PayloadContent[0]
	if in.PayloadType != "com.anthropic.claudecode" {
		t.Fatalf("PayloadType = %q", in.PayloadType)
	}
	if in.Env["ANTHROPIC_BASE_URL"] != gateway || in.Env["CLAUDE_CODE_API_KEY_HELPER_TTL_MS"] != "300000" {
		t.Errorf("env = %v", in.Env)
	}
	if !reflect.DeepEqual(in.AvailableModels, baseOptions().Models) || in.Model != "claude-sonnet-4-6" {
		t.Errorf("models = %v / %q", in.AvailableModels, in.Model)
	}
	wantHelper := "/usr/local/bin/gatehouse token --issuer " + issuer + " --client-id " + clientID
	if in.APIKeyHelper != wantHelper {
		t.Errorf("apiKeyHelper = %q, want %q", in.APIKeyHelper, wantHelper)
	}
}

// TestMCXForm checks the Jamf Custom Settings layout: the settings sit at
// PayloadContent[0].PayloadContent.<domain>.Forced[0].mcx_preference_settings.
func TestMCXForm(t *testing.T) {
	o := baseOptions()
	o.MCX = true
	for _, tc := range []struct {
		c      Client
		domain string
	}{{Desktop, "com.anthropic.claudefordesktop"}, {Code, "com.anthropic.claudecode"}} {
		out, err := Generate(tc.c, MobileConfig, o)
		if err != nil {
			t.Fatal(err)
		}
		var p struct {
			PayloadContent []struct {
				PayloadType    string
				PayloadContent map[string]struct {
					Forced []struct {
						Settings map[string]any `plist:"mcx_preference_settings"`
					}
				}
			}
		}
		if _, err := plist.Unmarshal(out, &p); err != nil {
			t.Fatal(err)
		}
		in := p.PayloadContent[0]
		if in.PayloadType != "com.apple.ManagedClient.preferences" {
			t.Fatalf("PayloadType %q", in.PayloadType)
		}
		forced := in.PayloadContent[tc.domain].Forced
		if len(forced) != 1 {
			t.Fatalf("%s: Forced = %v", tc.domain, in.PayloadContent)
		}
		s := forced[0].Settings
		switch tc.c {
		case Desktop:
			if s["inferenceProvider"] != "gateway" || s["inferenceGatewayBaseUrl"] != gateway {
				t.Errorf("desktop settings %v", s)
			}
		case Code:
			if env, ok := s["env"].(map[string]any); !ok || env["ANTHROPIC_BASE_URL"] != gateway {
				t.Errorf("code settings %v", s)
			}
		}
	}
}

func TestDesktopHelperMode(t *testing.T) {
	o := baseOptions()
	o.DesktopHelper = "/usr/local/bin/gatehouse-token"
	out, err := Generate(Desktop, JSON, o)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	if m["inferenceCredentialKind"] != "helper-script" || m["inferenceCredentialHelper"] != o.DesktopHelper {
		t.Errorf("helper keys: %v", m)
	}
	if _, ok := m["inferenceGatewayOidc"]; ok {
		t.Error("helper mode still carries inferenceGatewayOidc")
	}
}

func TestRegFormat(t *testing.T) {
	out, err := Generate(Desktop, Reg, baseOptions())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(out, []byte{0xFF, 0xFE, 'W', 0}) {
		t.Fatalf("not UTF-16LE with BOM: % x", out[:4])
	}
	text, _ := decodeRegText(out)
	if strings.Contains(strings.ReplaceAll(text, "\r\n", ""), "\n") {
		t.Error("bare LF in .reg (regedit wants CRLF)")
	}
	key, vals, err := DecodeReg(out)
	if err != nil {
		t.Fatal(err)
	}
	if key != `HKEY_LOCAL_MACHINE\SOFTWARE\Policies\Claude` {
		t.Errorf("key = %q; values must sit directly under Policies\\Claude", key)
	}
	var oidc map[string]string
	if err := json.Unmarshal([]byte(vals["inferenceGatewayOidc"]), &oidc); err != nil || oidc["clientId"] != clientID {
		t.Errorf("inferenceGatewayOidc = %q (%v)", vals["inferenceGatewayOidc"], err)
	}
	if !strings.Contains(text, "[-HKEY_LOCAL_MACHINE\\SOFTWARE\\Policies\\Claude]\r\n\r\n[HKEY_LOCAL_MACHINE\\SOFTWARE\\Policies\\Claude]\r\n") {
		t.Errorf("the .reg does not replace the key:\n%s", text)
	}
	keep := baseOptions()
	keep.RegKeepExisting = true
	kept, _ := Generate(Desktop, Reg, keep)
	if kt, _ := decodeRegText(kept); strings.Contains(kt, "[-") {
		t.Error("RegKeepExisting still deletes the key")
	}
	// The contract's example line, byte for byte.
	if !strings.Contains(text, `"inferenceModels"="[\"claude-sonnet-4-6\",\"claude-opus-4-8\"]"`+"\r\n") {
		t.Errorf("inferenceModels line not in the contract's escaping style:\n%s", text)
	}

	code, err := Generate(Code, Reg, baseOptions())
	if err != nil {
		t.Fatal(err)
	}
	key, vals, err = DecodeReg(code)
	if err != nil {
		t.Fatal(err)
	}
	if key != `HKEY_LOCAL_MACHINE\SOFTWARE\Policies\ClaudeCode` || len(vals) != 1 {
		t.Fatalf("key %q values %v", key, vals)
	}
	var settings struct {
		APIKeyHelper string            `json:"apiKeyHelper"`
		Env          map[string]string `json:"env"`
	}
	if err := json.Unmarshal([]byte(vals["Settings"]), &settings); err != nil {
		t.Fatalf("Settings is not one JSON document: %v", err)
	}
	if !strings.HasPrefix(settings.APIKeyHelper, `"C:\Program Files\Gatehouse\gatehouse.exe" token`) {
		t.Errorf("apiKeyHelper = %q", settings.APIKeyHelper)
	}
	if settings.Env["ANTHROPIC_BASE_URL"] != gateway {
		t.Errorf("env = %v", settings.Env)
	}
}

func TestDesktopJSONAllStrings(t *testing.T) {
	out, err := Generate(Desktop, JSON, baseOptions())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	for k, v := range m {
		if _, ok := v.(string); !ok {
			t.Errorf("%s is %T, want string", k, v)
		}
	}
	if m["inferenceProvider"] != "gateway" {
		t.Errorf("inferenceProvider = %v", m["inferenceProvider"])
	}
}

func TestRefusals(t *testing.T) {
	mod := func(f func(*Options)) Options { o := baseOptions(); f(&o); return o }
	tests := []struct {
		name    string
		o       Options
		wantSub string
	}{
		{"metadata url", mod(func(o *Options) { o.Issuer = issuer + "/.well-known/openid-configuration" }), "/.well-known"},
		{"entra v1 issuer", mod(func(o *Options) { o.Issuer = "https://login.microsoftonline.com/" + tenant }), "/v2.0"},
		{"entra trailing slash", mod(func(o *Options) { o.Issuer = issuer + "/" }), "/v2.0"},
		{"entra common", mod(func(o *Options) { o.Issuer = "https://login.microsoftonline.com/common/v2.0" }), "tenant ID"},
		{"okta metadata", mod(func(o *Options) { o.Issuer = "https://corp.okta.com/.well-known/openid-configuration" }), "/.well-known"},
		{"http issuer", mod(func(o *Options) { o.Issuer = "http://idp.corp.example" }), "https"},
		{"missing issuer", mod(func(o *Options) { o.Issuer = "" }), "issuer: is required"},
		{"gateway password", mod(func(o *Options) { o.GatewayURL = "https://u:p@gw.example" }), "no secrets"},
		{"gateway key query", mod(func(o *Options) { o.GatewayURL = "https://gw.example/?subscription-key=abc" }), "query"},
		{"gateway not ascii", mod(func(o *Options) { o.GatewayURL = "https://\x9b" }), "plain ASCII"},
		{"gateway unicode host", mod(func(o *Options) { o.GatewayURL = "https://gätehouse.example" }), "punycode"},
		{"non-guid client", mod(func(o *Options) { o.ClientID = "claude" }), "GUID"},
		{"client secret as id", mod(func(o *Options) { o.ClientID = "abC8Q~abcdefghijklmnopqrstuvwxyz0123456789" }), "secret"},
		{"api key header", mod(func(o *Options) { o.CustomHeaders = map[string]string{"x-api-key": "k"} }), "credential"},
		{"apim key header", mod(func(o *Options) { o.CustomHeaders = map[string]string{"Ocp-Apim-Subscription-Key": "k"} }), "credential"},
		{"jwt in header", mod(func(o *Options) {
			o.CustomHeaders = map[string]string{"X-Org": "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln"}
		}), "secret"},
		{"anthropic key in helper", mod(func(o *Options) { o.HelperCommand = "echo sk-ant-api03-abcdef" }), "secret"},
		{"hex key in header", mod(func(o *Options) {
			o.CustomHeaders = map[string]string{"X-Team": "0123456789abcdef0123456789abcdef"}
		}), "secret"},
		{"access token without scopes", mod(func(o *Options) { o.BearerTokenType = "access_token" }), "scope"},
		{"bad token type", mod(func(o *Options) { o.BearerTokenType = "both" }), "bearer-token-type"},
		{"broker non-entra", mod(func(o *Options) { o.Issuer = "https://corp.okta.com"; o.ClientID = "0oa1"; o.Broker = true }), "broker"},
		{"duplicate model", mod(func(o *Options) { o.Models = []string{"a", "a"} }), "twice"},
		{"model with quote", mod(func(o *Options) { o.Models = []string{`a"b`} }), "model[0]"},
		{"relative desktop helper", mod(func(o *Options) { o.DesktopHelper = "gatehouse token" }), "absolute path"},
		{"quoted desktop helper", mod(func(o *Options) { o.DesktopHelper = `C:\Program Files\"x".exe` }), "absolute path"},
		{"newline helper", mod(func(o *Options) { o.HelperCommand = "a\nb" }), "control"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, c := range []Client{Desktop, Code} {
				for _, f := range []Format{MobileConfig, Reg, JSON} {
					out, err := Generate(c, f, tc.o)
					if err == nil {
						t.Fatalf("%s/%s: generated a profile:\n%s", c, f, out)
					}
					var pe *Error
					if !errors.As(err, &pe) {
						t.Errorf("error is not a *profile.Error: %T", err)
					}
					if !strings.Contains(err.Error(), tc.wantSub) {
						t.Errorf("%s/%s: error %q does not mention %q", c, f, err, tc.wantSub)
					}
					if strings.Contains(err.Error(), "sk-ant-api03") || strings.Contains(err.Error(), "8Q~abc") {
						t.Errorf("error repeats the secret: %q", err)
					}
				}
			}
		})
	}
}

func TestAcceptsNonEntraAndLoopback(t *testing.T) {
	o := Options{GatewayURL: "http://127.0.0.1:8080", ClientID: "gatehouse-desktop", Issuer: "https://corp.okta.com/oauth2/aus1"}
	for _, c := range []Client{Desktop, Code} {
		if _, err := Generate(c, JSON, o); err != nil {
			t.Errorf("%s: %v", c, err)
		}
	}
}

func TestUnknownClientAndFormat(t *testing.T) {
	if _, err := Generate("cowork", JSON, baseOptions()); err == nil {
		t.Error("unknown client accepted")
	}
	if _, err := Generate(Desktop, "admx", baseOptions()); err == nil {
		t.Error("unknown format accepted")
	}
}

func TestDecodeRegRejects(t *testing.T) {
	for _, in := range []string{
		"",
		"REGEDIT4\r\n\r\n[HKEY_LOCAL_MACHINE\\X]\r\n",
		"Windows Registry Editor Version 5.00\r\n\r\n",
		"Windows Registry Editor Version 5.00\r\n\r\n[K]\r\n\"a\"=dword:00000001\r\n",
		"Windows Registry Editor Version 5.00\r\n\r\n[K]\r\n\"a\"=\"b\r\n",
		"Windows Registry Editor Version 5.00\r\n\r\n[K]\r\n\"a\"=\"b\"\r\n\"a\"=\"c\"\r\n",
		"Windows Registry Editor Version 5.00\r\n\r\n[-J]\r\n\r\n[K]\r\n",
		"Windows Registry Editor Version 5.00\r\n\r\n[K]\r\n[-K]\r\n",
	} {
		if _, _, err := DecodeReg([]byte(in)); err == nil {
			t.Errorf("DecodeReg(%q) accepted", in)
		}
	}
}

// FuzzGenerate: whatever the inputs, Generate either refuses or writes a
// profile that parses back (plist, JSON, .reg) with the gateway URL intact.
func FuzzGenerate(f *testing.F) {
	f.Add(gateway, clientID, issuer, "claude-sonnet-4-6", "X-Org", "team")
	f.Add("http://127.0.0.1:1", "client", "https://idp.example", "m<&>", "X-A", `v"\`)
	f.Add(gateway, clientID, issuer+"/.well-known/openid-configuration", "", "", "")
	f.Fuzz(func(t *testing.T, gw, cid, iss, model, hname, hval string) {
		o := Options{GatewayURL: gw, ClientID: cid, Issuer: iss}
		if model != "" {
			o.Models = []string{model}
		}
		if hname != "" {
			o.CustomHeaders = map[string]string{hname: hval}
		}
		for _, c := range []Client{Desktop, Code} {
			for _, fm := range []Format{MobileConfig, Reg, JSON} {
				out, err := Generate(c, fm, o)
				if err != nil {
					continue
				}
				switch fm {
				case MobileConfig:
					var v map[string]any
					if _, err := plist.Unmarshal(out, &v); err != nil {
						t.Fatalf("%s mobileconfig does not parse: %v\n%s", c, err, out)
					}
				case JSON:
					if !json.Valid(out) {
						t.Fatalf("%s json invalid:\n%s", c, out)
					}
				case Reg:
					_, vals, err := DecodeReg(out)
					if err != nil {
						t.Fatalf("%s reg does not decode: %v", c, err)
					}
					if c == Desktop && vals["inferenceGatewayBaseUrl"] != gw {
						t.Fatalf("base URL %q round-tripped as %q", gw, vals["inferenceGatewayBaseUrl"])
					}
				}
			}
		}
	})
}

// FuzzDecodeReg: the .reg reader never panics and whatever it accepts
// re-encodes to the same values.
func FuzzDecodeReg(f *testing.F) {
	for _, tc := range goldenCases() {
		if tc.f == Reg {
			b, _ := Generate(tc.c, tc.f, tc.o)
			f.Add(b)
		}
	}
	f.Add([]byte("Windows Registry Editor Version 5.00\r\n\r\n[K]\r\n\"a\\\\\"=\"\\\"\"\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		key, vals, err := DecodeReg(data)
		if err != nil {
			return
		}
		d := &dict{}
		for _, k := range sortedKeys(vals) {
			d.set(k, vals[k])
		}
		if strings.ContainsAny(key, "\r\n") {
			return
		}
		k2, v2, err := DecodeReg(reg(key, d, true))
		if err != nil || k2 != key || !reflect.DeepEqual(v2, vals) {
			t.Fatalf("round trip: %v %q %v", err, k2, v2)
		}
	})
}

// TestInspectRoundTrip: every golden profile reads back to the options it
// was generated from.
func TestInspectRoundTrip(t *testing.T) {
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			out, err := Generate(tc.c, tc.f, tc.o)
			if err != nil {
				t.Fatal(err)
			}
			s, err := Inspect(out)
			if err != nil {
				t.Fatal(err)
			}
			if s.Client != tc.c || s.GatewayURL != tc.o.GatewayURL {
				t.Errorf("summary %+v", s)
			}
			helperMode := tc.c == Desktop && tc.o.DesktopHelper != ""
			if !helperMode && (s.ClientID != tc.o.ClientID || s.Issuer != tc.o.Issuer) {
				t.Errorf("client %q issuer %q", s.ClientID, s.Issuer)
			}
			wantType := "id_token"
			if tc.o.BearerTokenType == "access_token" {
				wantType = "access_token"
			}
			if s.TokenType != wantType {
				t.Errorf("token type %q, want %q", s.TokenType, wantType)
			}
		})
	}
}

func TestInspectRejectsMisencodedDesktop(t *testing.T) {
	// The most common MDM mistake: inferenceGatewayOidc as a dict.
	bad := []byte(`<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>PayloadContent</key><array><dict>
<key>PayloadType</key><string>com.anthropic.claudefordesktop</string>
<key>inferenceProvider</key><string>gateway</string>
<key>inferenceGatewayOidc</key><dict><key>clientId</key><string>x</string></dict>
</dict></array></dict></plist>`)
	if _, err := Inspect(bad); err == nil || !strings.Contains(err.Error(), "one string holding JSON") {
		t.Errorf("err = %v", err)
	}
	for _, in := range []string{"", "{}", "[1]", "<plist>", `{"inferenceProvider":"anthropic"}`} {
		if _, err := Inspect([]byte(in)); err == nil {
			t.Errorf("Inspect(%q) accepted", in)
		}
	}
}

func FuzzInspect(f *testing.F) {
	for _, tc := range goldenCases() {
		b, _ := Generate(tc.c, tc.f, tc.o)
		f.Add(b)
	}
	f.Add([]byte(`{"env":{"ANTHROPIC_BASE_URL":"x"},"apiKeyHelper":"--issuer"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Inspect(data)
		if err == nil && s == nil {
			t.Fatal("nil summary without error")
		}
	})
}

func BenchmarkGenerateDesktopMobileconfig(b *testing.B) {
	o := baseOptions()
	for i := 0; i < b.N; i++ {
		if _, err := Generate(Desktop, MobileConfig, o); err != nil {
			b.Fatal(err)
		}
	}
}
