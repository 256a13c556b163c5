package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/audit/audittest"
	"github.com/gatehouse-dev/gatehouse/internal/audit/export"
	auditsqlite "github.com/gatehouse-dev/gatehouse/internal/audit/sqlite"
	"github.com/jackc/pgx/v5"
)

const auditCmdConfig = `
listen: 127.0.0.1:0
identity:
  issuer: https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/v2.0
  audiences: ["aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"]
upstreams:
  - name: anthropic
    provider: anthropic
    base_url: https://api.anthropic.com
    api_key: ${env:UPSTREAM_KEY}
models:
  - id: claude-sonnet-4-6
audit:
  sqlite: %s
  signing_key: ${env:AUDIT_KEY}
`

// auditFixture writes 6 records (r0..r5, 1 minute apart; r1 and r4
// denied; users alice for even, bob for odd) through the real store with a
// signing key, and returns a config path and Run's getenv.
func auditFixture(t *testing.T) (cfgPath, dbPath string, getenv func(string) string) {
	t.Helper()
	dir := t.TempDir()
	dbPath = filepath.Join(dir, "audit.db")
	seed := bytes.Repeat([]byte{7}, ed25519.SeedSize)
	priv := ed25519.NewKeyFromSeed(seed)
	st, err := auditsqlite.Open(context.Background(), auditsqlite.Options{Path: dbPath, SigningKey: priv})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		r := audittest.Sample(fmt.Sprint("r", i), time.Duration(i)*time.Minute)
		if i%2 == 0 {
			r.UserKey, r.ObjectID, r.UserName = "tid-1/alice", "alice", "alice@contoso.example"
		} else {
			r.UserKey, r.ObjectID, r.UserName = "tid-1/bob", "bob", "bob@contoso.example"
		}
		if i == 1 || i == 4 {
			r.State, r.Status, r.ErrorType = audit.StateDenied, 403, "permission_error"
		}
		if err := st.Begin(context.Background(), []*audit.Record{r}); err != nil {
			t.Fatal(err)
		}
		if r.State == audit.StateBegun {
			if err := st.Finish(context.Background(), []*audit.Record{audittest.Finished(r)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	cfgPath = filepath.Join(dir, "gatehouse.yaml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(auditCmdConfig, dbPath)), 0o600); err != nil {
		t.Fatal(err)
	}
	key := base64.StdEncoding.EncodeToString(seed)
	return cfgPath, dbPath, func(k string) string {
		switch k {
		case "UPSTREAM_KEY":
			return "sk-test"
		case "AUDIT_KEY":
			return key
		}
		return ""
	}
}

func runCLI(t *testing.T, getenv func(string) string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, getenv, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestAuditListJSONFilters(t *testing.T) {
	cfg, _, getenv := auditFixture(t)
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"all", nil, []string{"r0", "r1", "r2", "r3", "r4", "r5"}},
		{"user by object id", []string{"--user", "alice"}, []string{"r0", "r2", "r4"}},
		{"user by name", []string{"--user", "bob@contoso.example"}, []string{"r1", "r3", "r5"}},
		{"since", []string{"--since", "2026-11-24T09:03:00Z"}, []string{"r3", "r4", "r5"}},
		{"since and until", []string{"--since", "2026-11-24T09:01:00Z", "--until", "2026-11-24T09:03:00Z"}, []string{"r1", "r2"}},
		{"user and since", []string{"--user", "tid-1/bob", "--since", "2026-11-24T09:02:00Z"}, []string{"r3", "r5"}},
		{"denied", []string{"--denied"}, []string{"r1", "r4"}},
		{"status", []string{"--status", "200"}, []string{"r0", "r2", "r3", "r5"}},
		{"since duration (future window: nothing)", []string{"--since", "1h", "--until", "2026-01-01"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, stderr := runCLI(t, getenv, append([]string{"audit", "list", "--config", cfg, "--json"}, tc.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			var got []string
			sc := bufio.NewScanner(strings.NewReader(out))
			for sc.Scan() {
				var m map[string]any
				if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
					t.Fatalf("not a JSON line: %q", sc.Text())
				}
				for _, k := range []string{"request_id", "time", "state", "user_key", "model", "status", "usage", "latency_ms"} {
					if _, ok := m[k]; !ok {
						t.Errorf("line lacks %s: %s", k, sc.Text())
					}
				}
				got = append(got, m["request_id"].(string))
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestAuditListCSVAndTable(t *testing.T) {
	cfg, _, getenv := auditFixture(t)
	code, out, stderr := runCLI(t, getenv, "audit", "list", "--config", cfg, "--csv", "--user", "alice")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(rows) != 4 || rows[0][1] != "request_id" || rows[3][1] != "r4" {
		t.Fatalf("csv %v %v", rows, err)
	}
	code, out, _ = runCLI(t, getenv, "audit", "list", "--config", cfg)
	if code != 0 || !strings.Contains(out, "REQUEST ID") || !strings.Contains(out, "bob@contoso.example") || strings.Count(out, "\n") != 7 {
		t.Fatalf("table (exit %d):\n%s", code, out)
	}
	if code, _, _ := runCLI(t, getenv, "audit", "list", "--config", cfg, "--since", "yesterday-ish"); code != 2 {
		t.Errorf("bad --since: exit %d, want 2", code)
	}
}

func TestAuditShow(t *testing.T) {
	cfg, _, getenv := auditFixture(t)
	code, out, stderr := runCLI(t, getenv, "audit", "show", "r2", "--config", cfg)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r audit.Record
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.RequestID != "r2" || r.State != audit.StateCompleted || r.Usage.OutputTokens != 22 {
		t.Fatalf("show: %v %+v", err, r)
	}
	if code, _, stderr := runCLI(t, getenv, "audit", "show", "--config", cfg, "nope"); code != 1 || !strings.Contains(stderr, "no record") {
		t.Errorf("missing id: exit %d, %s", code, stderr)
	}
}

func TestAuditVerifyCommand(t *testing.T) {
	cfg, db, getenv := auditFixture(t)
	code, out, stderr := runCLI(t, getenv, "audit", "verify", "--config", cfg)
	if code != 0 || !strings.Contains(out, "OK: the audit trail is intact") || !strings.Contains(out, "signed coverage: 10 entries") {
		t.Fatalf("clean verify: exit %d\n%s%s", code, out, stderr)
	}
	raw, err := sql.Open("sqlite", db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec("UPDATE audit_records SET output_tokens = 1 WHERE request_id = 'r3'"); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	code, out, _ = runCLI(t, getenv, "audit", "verify", "--config", cfg)
	if code != 1 || !strings.Contains(out, "edited") || !strings.Contains(out, "request r3") || !strings.Contains(out, "FAILED: 1 problem") {
		t.Fatalf("tampered verify: exit %d\n%s", code, out)
	}
}

func TestAuditKeygen(t *testing.T) {
	code, out, stderr := runCLI(t, nil, "audit", "keygen")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	priv, err := audit.ParseSigningKey(out)
	if err != nil {
		t.Fatal(err)
	}
	pubB64 := base64.StdEncoding.EncodeToString(priv.Public().(ed25519.PublicKey))
	if !strings.Contains(stderr, "verify_key: "+pubB64) {
		t.Errorf("stderr lacks the matching verify_key: %s", stderr)
	}
}

func TestAuditContentShowAndPurgeAreAudited(t *testing.T) {
	cfgPath, dbPath, getenv := auditFixture(t)
	// Enable full capture with a key, then capture one request's content
	// through the same builder the gateway uses.
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32))
	cfgText, _ := os.ReadFile(cfgPath)
	cfgText = append(cfgText, []byte("  content:\n    capture: full\n    keys:\n      - id: k1\n        key: ${env:CONTENT_KEY}\n")...)
	if err := os.WriteFile(cfgPath, cfgText, 0o600); err != nil {
		t.Fatal(err)
	}
	env2 := func(k string) string {
		switch k {
		case "CONTENT_KEY":
			return key
		case "USER":
			return "auditor-anna"
		}
		return getenv(k)
	}
	cfg, err := loadConfig(&env{getenv: env2}, cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	st, err := auditsqlite.Open(context.Background(), auditsqlite.Options{Path: dbPath})
	if err != nil {
		t.Fatal(err)
	}
	capt, err := buildCapturer(st, cfg.Audit.Content)
	if err != nil {
		t.Fatal(err)
	}
	if err := capt.Capture(context.Background(), "r2", time.Now(), "tid-1/alice", []byte(`{"messages":"the secret plan"}`), []byte("ok, the plan")); err != nil {
		t.Fatal(err)
	}
	st.Close()
	raw, _ := os.ReadFile(dbPath)
	wal, _ := os.ReadFile(dbPath + "-wal")
	if bytes.Contains(append(raw, wal...), []byte("secret plan")) {
		t.Fatal("captured content stored in clear")
	}

	code, out, stderr := runCLI(t, env2, "audit", "show", "--config", cfgPath, "--content", "r2")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var shown struct {
		RequestID string       `json:"request_id"`
		Content   shownContent `json:"content"`
	}
	if err := json.Unmarshal([]byte(out), &shown); err != nil || shown.Content.Request == nil || *shown.Content.Request != `{"messages":"the secret plan"}` {
		t.Fatalf("show --content: %v\n%s", err, out)
	}
	code, out, _ = runCLI(t, env2, "audit", "list", "--config", cfgPath, "--json", "--user", "auditor-anna")
	if code != 0 || !strings.Contains(out, `"path":"/audit/content/r2"`) || !strings.Contains(out, `"reason":"content_read"`) {
		t.Fatalf("the content read was not audited:\n%s", out)
	}

	code, out, stderr = runCLI(t, env2, "audit", "purge", "--config", cfgPath, "--user", "tid-1/alice")
	if code != 0 || !strings.Contains(out, "erased the captured content of 1 request") {
		t.Fatalf("purge: exit %d %s %s", code, out, stderr)
	}
	code, _, stderr = runCLI(t, env2, "audit", "show", "--config", cfgPath, "--content", "r2")
	if code != 0 || !strings.Contains(stderr, "no content was captured") {
		t.Fatalf("after purge: exit %d %s", code, stderr)
	}
	code, out, _ = runCLI(t, env2, "audit", "list", "--config", cfgPath, "--json", "--user", "auditor-anna")
	if code != 0 || !strings.Contains(out, `"reason":"content_purge"`) {
		t.Fatalf("the purge was not audited:\n%s", out)
	}
	// The operator records are chained: the trail still verifies.
	if code, out, _ := runCLI(t, env2, "audit", "verify", "--config", cfgPath); code != 0 {
		t.Fatalf("verify after operator actions: %s", out)
	}
}

func TestAuditExportConfig(t *testing.T) {
	cfgPath, dbPath, getenv := auditFixture(t)
	base, _ := os.ReadFile(cfgPath)
	bad := append(append([]byte{}, base...), []byte("  export:\n    - type: kafka\n    - type: splunk_hec\n      url: http://example.com/services/collector/event\n    - type: jsonl\n")...)
	if err := os.WriteFile(cfgPath, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := loadConfig(&env{getenv: getenv}, cfgPath)
	for _, want := range []string{`audit.export[0].type: "kafka" is not`, "audit.export[1].token: is required", "audit.export[1].url:", "audit.export[2].path: is required"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("config error lacks %q: %v", want, err)
		}
	}
	good := append(append([]byte{}, base...), []byte("  export:\n    - type: jsonl\n      path: \"-\"\n")...)
	if err := os.WriteFile(cfgPath, good, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(&env{getenv: getenv}, cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	st, err := auditsqlite.Open(context.Background(), auditsqlite.Options{Path: dbPath, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var out syncBuffer
	xs, err := buildExporters(st, cfg.Audit, &out, nil)
	if err != nil || len(xs) != 1 {
		t.Fatalf("buildExporters: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { xs[0].Run(ctx); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(out.String(), "\n") < 11 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if n := strings.Count(out.String(), "\n"); n != 11 { // 6 begins + 4 finishes + the signed checkpoint
		t.Fatalf("exported %d lines, want 11:\n%s", n, out.String())
	}
	if _, err := os.Stat(filepath.Join(dbPath+".export", "jsonl-0", "cursor")); err != nil {
		t.Errorf("spool cursor not next to the database: %v", err)
	}
}

func TestOpenAuditInnerSignsCheckpoints(t *testing.T) {
	cfgPath, _, getenv := auditFixture(t)
	cfg, err := loadConfig(&env{getenv: getenv}, cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	st, err := openAuditInner(context.Background(), cfg.Audit, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := audittest.Sample("inner-1", time.Hour)
	r.Instance = auditInstance(cfg.Audit)
	if err := st.Begin(context.Background(), []*audit.Record{r}); err != nil {
		t.Fatal(err)
	}
	if n, err := st.Recover(context.Background(), r.Instance); err != nil || n != 1 {
		t.Fatalf("Recover = %d, %v", n, err)
	}
	if err := st.Close(); err != nil { // writes the final signed checkpoint
		t.Fatal(err)
	}
	code, out, _ := runCLI(t, getenv, "audit", "verify", "--config", cfgPath)
	if code != 0 || !strings.Contains(out, "signed coverage: 12 entries") {
		t.Fatalf("verify: exit %d\n%s", code, out)
	}
}

// An attacker with write access rewrites the whole database: edits a
// record, re-computes the chain and deletes the stored checkpoints. Only
// the checkpoints exported earlier (kept by the SIEM) expose it.
func TestAuditVerifyAnchorsCatchFullRewrite(t *testing.T) {
	cfgPath, dbPath, getenv := auditFixture(t)
	// Export everything (checkpoint included) to a JSON-lines file.
	st, err := auditsqlite.Open(context.Background(), auditsqlite.Options{Path: dbPath, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	anchors := filepath.Join(t.TempDir(), "siem.jsonl")
	x, err := export.New(export.Options{Source: st, Sink: export.NewJSONLinesFile(anchors), Dir: filepath.Join(t.TempDir(), "spool"), PollInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { x.Run(ctx); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(anchors)
		if strings.Contains(string(b), `"kind":"checkpoint"`) || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	st.Close()

	if code, out, _ := runCLI(t, getenv, "audit", "verify", "--config", cfgPath, "--anchors", anchors); code != 0 || !strings.Contains(out, "1 exported checkpoints checked") {
		t.Fatalf("clean anchored verify: exit %d\n%s", code, out)
	}
	// The rewrite.
	raw, err := sql.Open("sqlite", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec("UPDATE audit_records SET status = 200, state = 'completed' WHERE request_id = 'r1'"); err != nil {
		t.Fatal(err)
	}
	rows, err := raw.Query("SELECT seq, kind, request_id, payload FROM audit_chain ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	type ent struct {
		seq      int64
		kind, id string
		payload  []byte
	}
	var ents []ent
	for rows.Next() {
		var e ent
		if err := rows.Scan(&e.seq, &e.kind, &e.id, &e.payload); err != nil {
			t.Fatal(err)
		}
		ents = append(ents, e)
	}
	rows.Close()
	prev := audit.GenesisHash()
	for _, e := range ents {
		if e.id == "r1" {
			e.payload = []byte(strings.NewReplacer(`"state":"denied"`, `"state":"completed"`, `"status":403`, `"status":200`).Replace(string(e.payload)))
		}
		h := audit.HashEntry(prev, e.seq, e.kind, e.id, e.payload)
		if _, err := raw.Exec("UPDATE audit_chain SET payload = ?, prev_hash = ?, hash = ? WHERE seq = ?", e.payload, prev, h, e.seq); err != nil {
			t.Fatal(err)
		}
		prev = h
	}
	if _, err := raw.Exec("DELETE FROM audit_checkpoints"); err != nil {
		t.Fatal(err)
	}
	raw.Close()

	code, out, _ := runCLI(t, getenv, "audit", "verify", "--config", cfgPath)
	if code != 0 || !strings.Contains(out, "WARNING: chain main has no checkpoint") {
		t.Fatalf("without anchors the rewrite is only a warning: exit %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, getenv, "audit", "verify", "--config", cfgPath, "--anchors", anchors)
	if code != 1 || !strings.Contains(out, "rewritten") || !strings.Contains(out, "exported checkpoint") {
		t.Fatalf("anchored verify missed the rewrite: exit %d\n%s", code, out)
	}
}

// The audit commands against PostgreSQL: the gateway's store (through
// openAuditInner) writes, the CLI lists and verifies.
func TestAuditCommandsOnPostgres(t *testing.T) {
	dsn := os.Getenv("GATEHOUSE_TEST_POSTGRES_DSN")
	if dsn == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("GATEHOUSE_TEST_POSTGRES_DSN is not set")
		}
		t.Skip("set GATEHOUSE_TEST_POSTGRES_DSN to run the PostgreSQL audit CLI test")
	}
	schema := fmt.Sprintf("clitest_%d", time.Now().UnixNano())
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	dsn += sep + "search_path=" + schema
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			t.Logf("cleanup: %v", err)
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
	})
	cfgPath, _, getenv := auditFixture(t)
	cfgText, _ := os.ReadFile(cfgPath)
	cfgText = []byte(strings.Replace(string(cfgText), "  sqlite: ", "  postgres: "+dsn+"\n  instance: gw-pg\n  # sqlite: ", 1))
	if err := os.WriteFile(cfgPath, cfgText, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(&env{getenv: getenv}, cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	st, err := openAuditInner(context.Background(), cfg.Audit, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		r := audittest.Sample(fmt.Sprint("pg", i), time.Duration(i)*time.Second)
		r.Instance = auditInstance(cfg.Audit)
		if err := st.Begin(context.Background(), []*audit.Record{r}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runCLI(t, getenv, "audit", "list", "--config", cfgPath, "--json", "--since", "2026-11-24T09:00:01Z")
	if code != 0 || strings.Count(out, "\n") != 2 || !strings.Contains(out, `"instance":"gw-pg"`) {
		t.Fatalf("list on postgres: exit %d %s\n%s", code, stderr, out)
	}
	code, out, _ = runCLI(t, getenv, "audit", "verify", "--config", cfgPath)
	if code != 0 || !strings.Contains(out, "OK: the audit trail is intact") || !strings.Contains(out, "signed coverage: 3 entries") {
		t.Fatalf("verify on postgres: exit %d\n%s", code, out)
	}
}
