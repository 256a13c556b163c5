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
