package cli

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/credhelper"
	"github.com/gatehouse-dev/gatehouse/internal/fake/idp"
)

func TestTokenCommand(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("uses the Linux cache location (XDG_CACHE_HOME)")
	}
	s, err := idp.Start(idp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tid := s.Tenants()[0]
	client := idp.NewGUID()
	cache := t.TempDir()
	envm := map[string]string{"XDG_CACHE_HOME": cache, "GATEHOUSE_NO_BROWSER": "1", "HOME": t.TempDir()}

	// No cached sign-in and no browser: one line, non-zero exit, nothing on stdout.
	code, stdout, stderr := rkRun(t, envm, "", "token", "--issuer", s.Issuer(tid), "--client-id", client)
	if code != 1 || stdout != "" || !strings.Contains(stderr, "gatehouse login") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Fatalf("exit %d stdout %q stderr %q", code, stdout, stderr)
	}

	// Sign in through the library with a scripted browser, into the same
	// cache the CLI uses.
	h, err := credhelper.New(credhelper.Options{
		Issuer: s.Issuer(tid), ClientID: client,
		Store: credhelper.FileStore{Dir: filepath.Join(cache, "gatehouse")},
		OpenBrowser: func(_ context.Context, u string) error {
			go func() {
				resp, err := http.Get(u)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}()
			return nil
		},
		LoginTimeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	want, err := h.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}

	code, stdout, stderr = rkRun(t, envm, "", "token", "--issuer", s.Issuer(tid), "--client-id", client)
	if code != 0 || stdout != want {
		t.Fatalf("bare: exit %d stderr %q; got token=%v", code, stderr, stdout == want)
	}
	code, stdout, _ = rkRun(t, envm, "", "token", "--issuer", s.Issuer(tid), "--client-id", client, "--json")
	var js map[string]string
	if code != 0 || json.Unmarshal([]byte(stdout), &js) != nil || js["token"] != want || len(js) != 1 {
		t.Fatalf("json: exit %d %q", code, stdout)
	}

	// Desktop runs the helper without arguments: settings come from a file.
	settings := filepath.Join(t.TempDir(), "client.json")
	os.WriteFile(settings, []byte(`{"issuer":"`+s.Issuer(tid)+`","client_id":"`+client+`"}`), 0o644)
	envm["GATEHOUSE_CLIENT_SETTINGS"] = settings
	code, stdout, stderr = rkRun(t, envm, "", "token")
	if code != 0 || stdout != want {
		t.Fatalf("settings file: exit %d stderr %q", code, stderr)
	}

	code, _, _ = rkRun(t, envm, "", "logout")
	if code != 0 {
		t.Fatal("logout failed")
	}
	if code, _, _ = rkRun(t, envm, "", "token"); code != 1 {
		t.Errorf("token after logout: exit %d", code)
	}
}

func TestTokenCommandNeedsIssuer(t *testing.T) {
	code, _, stderr := rkRun(t, map[string]string{"HOME": t.TempDir(), "GATEHOUSE_CLIENT_SETTINGS": filepath.Join(t.TempDir(), "missing.json")}, "", "token")
	if code == 0 || !strings.Contains(stderr, "settings file") {
		t.Errorf("exit %d stderr %q", code, stderr)
	}
	code, _, stderr = rkRun(t, map[string]string{"HOME": t.TempDir()}, "", "token", "--client-id", "x")
	if code != 2 || !strings.Contains(stderr, "--issuer") {
		t.Errorf("exit %d stderr %q", code, stderr)
	}
}

// TestRolloutEndToEnd follows docs/rollout.md against a real gateway: the
// Claude Code profile is generated from the gateway's own configuration, the
// user signs in (an HTTP client plays the browser), the profile's
// apiKeyHelper command prints the token, and the gateway accepts it the way
// Claude Code sends it (both Authorization and x-api-key).
func TestRolloutEndToEnd(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("uses the Linux cache location (XDG_CACHE_HOME)")
	}
	h := startGateway(t, harnessOptions{})
	code, out, stderr := rkRun(t, nil, "", "profile", "code", "--format", "json", "--config", h.cfgPath, "--gateway-url", h.base)
	if code != 0 {
		t.Fatalf("profile: exit %d: %s", code, stderr)
	}
	var settings struct {
		APIKeyHelper string            `json:"apiKeyHelper"`
		Env          map[string]string `json:"env"`
	}
	if err := json.Unmarshal([]byte(out), &settings); err != nil {
		t.Fatal(err)
	}
	if settings.Env["ANTHROPIC_BASE_URL"] != h.base {
		t.Fatalf("base URL %q", settings.Env["ANTHROPIC_BASE_URL"])
	}
	argv := strings.Fields(settings.APIKeyHelper)
	if len(argv) < 2 || argv[1] != "token" {
		t.Fatalf("apiKeyHelper %q", settings.APIKeyHelper)
	}

	cache := t.TempDir()
	hh, err := credhelper.New(credhelper.Options{
		Issuer: h.idp.Issuer(testTenant), ClientID: testClientID,
		Store: credhelper.FileStore{Dir: filepath.Join(cache, "gatehouse")},
		OpenBrowser: func(_ context.Context, u string) error {
			go func() {
				if resp, err := http.Get(u); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}()
			return nil
		},
		LoginTimeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hh.Login(context.Background()); err != nil {
		t.Fatal(err)
	}

	code, tok, stderr := rkRun(t, map[string]string{"XDG_CACHE_HOME": cache, "GATEHOUSE_NO_BROWSER": "1"}, "", argv[1:]...)
	if code != 0 || tok == "" {
		t.Fatalf("helper: exit %d: %s", code, stderr)
	}
	resp := h.post("/v1/messages", "", `{"model":"claude-sonnet-4-6","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`,
		map[string]string{"Authorization": "Bearer " + tok, "x-api-key": tok})
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("gateway answered %d: %s", resp.StatusCode, body)
	}

	// The Desktop profile from the same config names the same client ID the
	// gateway accepts as audience.
	code, out, _ = rkRun(t, nil, "", "profile", "desktop", "--format", "json", "--config", h.cfgPath, "--gateway-url", h.base)
	if code != 0 || !strings.Contains(out, `\"clientId\":\"`+testClientID+`\"`) {
		t.Fatalf("desktop profile: exit %d\n%s", code, out)
	}
}
