package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/revoke"
	revokesqlite "github.com/gatehouse-dev/gatehouse/internal/revoke/sqlite"
)

const revokeConfig = `
listen: 127.0.0.1:0
identity:
  issuer: https://login.microsoftonline.com/11111111-2222-4333-8444-555555555555/v2.0
  audiences: ["aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"]
upstreams:
  - name: anthropic
    provider: anthropic
    base_url: https://api.anthropic.com
    api_key: ${env:UPSTREAM_KEY}
models:
  - id: claude-sonnet-4-6
audit:
  sqlite: %s
`

type cliResult struct {
	code           int
	stdout, stderr string
}

func runRevokeCLI(t *testing.T, args ...string) cliResult {
	t.Helper()
	var out, errb bytes.Buffer
	env := map[string]string{"UPSTREAM_KEY": "sk-test", "USER": "opsperson"}
	code := Run(context.Background(), args, func(k string) string { return env[k] }, strings.NewReader(""), &out, &errb)
	return cliResult{code, out.String(), errb.String()}
}

func TestRevokeCommands(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "gatehouse.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(revokeConfig, filepath.Join(dir, "audit.db"))), 0o600); err != nil {
		t.Fatal(err)
	}
	const oid = "0b9e4a38-2f67-4c1e-9d7b-2a4b6c8d0e1f"
	hash := strings.Repeat("ab", 32)

	// Usage errors: exit 2, nothing written.
	for _, args := range [][]string{
		{"revoke", "user", oid, "--config", cfg},                                                       // no reason
		{"revoke", "user", "--config", cfg, "--reason", "x"},                                           // no subject
		{"revoke", "user", "a", "b", "--config", cfg, "--reason", "x"},                                 // two subjects
		{"revoke", "user", oid, "--reason", "x"},                                                       // no config
		{"revoke", "all", "--config", cfg, "--reason", "x", "--until", "-1h"},                          // until in the past
		{"revoke", "all", "--config", cfg, "--reason", "x", "--until", "someday"},                      // bad time
		{"revoke", "before", "yesterday", "--config", cfg, "--reason", "x"},                            // bad time
		{"revoke", "before", "now", "--user", "ada@contoso.example", "--config", cfg, "--reason", "x"}, // UPN for --user
		{"revoke", "remove", "abc", "--config", cfg, "--reason", "x"},
	} {
		if r := runRevokeCLI(t, args...); r.code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s", args, r.code, r.stderr)
		}
	}

	type step struct {
		args []string
		want string // in stdout
	}
	for _, s := range []step{
		{[]string{"revoke", "user", oid, "--config", cfg, "--reason", "left the company"}, "revocation 1: user " + oid},
		{[]string{"revoke", "user", "Ada@Contoso.Example", "--config", cfg, "--reason", "laptop stolen", "--until", "24h"}, "revocation 2: user ada@contoso.example"},
		{[]string{"revoke", "before", "2026-11-24T10:00:00Z", "--config", cfg, "--reason", "key rollover"}, "revocation 3: tokens issued before 2026-11-24T10:00:00Z for everyone"},
		{[]string{"revoke", "before", "--config", cfg, "--reason", "sessions reset", "--user", oid, "--", "-1h"}, "revocation 4: tokens issued before"},
		{[]string{"revoke", "token", strings.ToUpper(hash), "--config", cfg, "--reason", "leaked"}, "revocation 5: token " + hash},
		{[]string{"revoke", "all", "--config", cfg, "--reason", "incident 42", "--until", "2099-01-01T00:00:00Z"}, "revocation 6: everything (kill switch), until 2099-01-01T00:00:00Z"},
		{[]string{"revoke", "remove", "6", "--config", cfg, "--reason", "incident over"}, "revocation 6 removed"},
	} {
		r := runRevokeCLI(t, s.args...)
		if r.code != 0 || !strings.Contains(r.stdout, s.want) {
			t.Fatalf("%v: exit %d\nstdout: %s\nstderr: %s\nwant %q", s.args, r.code, r.stdout, r.stderr, s.want)
		}
		// Every change is logged with who and why.
		if !strings.Contains(r.stderr, "opsperson@") || !strings.Contains(r.stderr, "reason") {
			t.Errorf("%v: change not logged with actor and reason:\n%s", s.args, r.stderr)
		}
	}
	if r := runRevokeCLI(t, "revoke", "remove", "6", "--config", cfg, "--reason", "again"); r.code != 1 || !strings.Contains(r.stderr, "no revocation 6") {
		t.Errorf("second remove: exit %d %s", r.code, r.stderr)
	}

	r := runRevokeCLI(t, "revoke", "list", "--config", cfg, "--json")
	if r.code != 0 {
		t.Fatalf("list: %d %s", r.code, r.stderr)
	}
	var got []struct {
		revoke.Revocation
		Active bool `json:"active"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("list --json: %v\n%s", err, r.stdout)
	}
	if len(got) != 5 {
		t.Fatalf("list: %d revocations, want 5 (the removed one hidden)", len(got))
	}
	for i, rv := range got {
		if rv.ID != int64(i+1) || !rv.Active || !strings.HasPrefix(rv.Actor, "opsperson@") || rv.Source != revoke.SourceCLI {
			t.Errorf("entry %d: %+v", i, rv)
		}
	}
	if got[1].Until.Before(time.Now().Add(23*time.Hour)) || got[3].Subject != oid || got[3].Before.After(time.Now().Add(-59*time.Minute)) {
		t.Errorf("until/before not recorded: %+v / %+v", got[1], got[3])
	}
	r = runRevokeCLI(t, "revoke", "list", "--config", cfg, "--all")
	if r.code != 0 || !strings.Contains(r.stdout, "removed") || !strings.Contains(r.stdout, "incident over") || !strings.Contains(r.stdout, "ID") {
		t.Errorf("list --all:\n%s\n%s", r.stdout, r.stderr)
	}

	// The gateway's state store is the same file: a snapshot over it refuses
	// the user by oid and by UPN, and the removed kill switch is gone.
	st, err := revokesqlite.Open(context.Background(), revokesqlite.Options{Path: filepath.Join(dir, "gatehouse-state.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	snap, err := revoke.Start(context.Background(), revoke.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	fresh := identity.Principal{Key: "t/" + "5a5a5a5a-5a5a-4a5a-8a5a-5a5a5a5a5a5a", ObjectID: "5a5a5a5a-5a5a-4a5a-8a5a-5a5a5a5a5a5a", IssuedAt: time.Now()}
	if err := snap.Check(context.Background(), fresh); err != nil {
		t.Errorf("an unrelated user with a fresh token is refused: %v", err)
	}
	for _, p := range []identity.Principal{
		{ObjectID: oid, IssuedAt: time.Now()},
		{ObjectID: "6b6b6b6b-5a5a-4a5a-8a5a-5a5a5a5a5a5a", Username: "ADA@contoso.example", IssuedAt: time.Now()},
		{ObjectID: "6b6b6b6b-5a5a-4a5a-8a5a-5a5a5a5a5a5a", TokenHash: hash, IssuedAt: time.Now()},
	} {
		var re *revoke.RevokedError
		if err := snap.Check(context.Background(), p); !errors.As(err, &re) {
			t.Errorf("%+v not refused: %v", p, err)
		}
	}
}

func TestRevokeTokenHashesRawToken(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "gatehouse.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(revokeConfig, filepath.Join(dir, "audit.db"))), 0o600)
	raw := "eyJhbGciOiJSUzI1NiJ9." + strings.Repeat("x", 80) + ".sig"
	r := runRevokeCLI(t, "revoke", "token", raw, "--config", cfg, "--reason", "pasted")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	l := runRevokeCLI(t, "revoke", "list", "--config", cfg)
	if strings.Contains(l.stdout+r.stdout+r.stderr, raw) {
		t.Fatal("the raw token was stored or printed")
	}
	if !strings.Contains(l.stdout, "token") || !strings.Contains(r.stderr, "SHA-256") {
		t.Errorf("list:\n%s\nstderr:\n%s", l.stdout, r.stderr)
	}
}
