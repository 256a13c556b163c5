package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	auditsqlite "github.com/gatehouse-dev/gatehouse/internal/audit/sqlite"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	fakeazure "github.com/gatehouse-dev/gatehouse/internal/fake/azure"
	"github.com/gatehouse-dev/gatehouse/internal/fake/graphusers"
	"github.com/gatehouse-dev/gatehouse/internal/fake/idp"
)

var userGrace = idp.User{OID: "00000000-0000-4000-8000-00000000c0c0", Name: "Grace Hopper", Username: "grace@contoso.example", Email: "grace@contoso.example", Roles: []string{"Claude.User"}}

// needStateConfig skips (fails in CI) while config.Config lacks the state:
// and revocation: sections.
func needStateConfig(t *testing.T) {
	t.Helper()
	if _, ok := reflect.TypeOf(config.Config{}).FieldByName("Revocation"); !ok {
		if os.Getenv("CI") != "" {
			t.Fatal("config.Config has no State/Revocation fields: the state: and revocation: sections are not wired (see docs/revocation.md)")
		}
		t.Skip("config.Config has no state:/revocation: sections yet")
	}
}

// revokePostgres returns a reachable PostgreSQL DSN and a fresh schema
// (dropped at the end), or skips — only outside CI — when there is none.
func revokePostgres(t *testing.T) (dsn, schema string) {
	t.Helper()
	dsn = os.Getenv("GATEHOUSE_TEST_POSTGRES_DSN")
	explicit := dsn != ""
	if !explicit {
		dsn = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		if os.Getenv("CI") != "" || explicit {
			t.Fatalf("PostgreSQL not reachable (%v); CI must run the revocation end-to-end test", err)
		}
		t.Skipf("no PostgreSQL reachable at 127.0.0.1:5432 and GATEHOUSE_TEST_POSTGRES_DSN unset; skipping the two-gateway revocation test (%v)", err)
	}
	c.Close(ctx)
	var b [5]byte
	_, _ = rand.Read(b[:])
	schema = "gh_revoke_e2e_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, dsn); err == nil {
			c.Exec(ctx, `DROP SCHEMA IF EXISTS `+schema+` CASCADE`)
			c.Close(ctx)
		}
	})
	return dsn, schema
}

// TestRevocationAcrossReplicas runs two real gateway processes sharing one
// PostgreSQL state store. A user revoked through `gatehouse revoke user` on
// one replica's configuration is refused by the other within 5 seconds,
// even though that replica has the user's token in its verified-token
// cache, while another user keeps working; the refusal is audited with
// reason revoked. Removing the revocation restores access.
func TestRevocationAcrossReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("starts gateway processes")
	}
	needStateConfig(t)
	dsn, schema := revokePostgres(t)

	// The in-process gateway only provides the fakes and replica A's
	// configuration; the replicas are real processes.
	h := startGateway(t, harnessOptions{extraYAML: "state:\n  postgres: " + dsn + "\n  postgres_schema: " + schema + "\nrevocation:\n  poll_interval: 5s\n  reload_interval: 1h\n"})
	h.shutdown()
	cfgA, err := os.ReadFile(h.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	// Replica B: its own address and audit database, the same state store.
	b := &harness{t: t, idp: h.idp, stub: h.stub, upstreamKey: h.upstreamKey, dir: t.TempDir(), logs: &syncBuffer{}, done: make(chan int, 1), client: http.DefaultClient}
	addrB := freeAddr(t)
	b.base = "http://" + addrB
	b.auditPath = filepath.Join(b.dir, "audit.db")
	b.cfgPath = filepath.Join(b.dir, "gatehouse.yaml")
	cfgB := strings.Replace(string(cfgA), strings.TrimPrefix(h.base, "http://"), addrB, 1)
	cfgB = strings.Replace(cfgB, h.auditPath, b.auditPath, 1)
	if err := os.WriteFile(b.cfgPath, []byte(cfgB), 0o600); err != nil {
		t.Fatal(err)
	}
	childA := startChildGateway(t, h)
	defer func() { childA.Process.Kill(); childA.Wait() }()
	childB := startChildGateway(t, b)
	defer func() { childB.Process.Kill(); childB.Wait() }()

	ada, grace := h.token(userAda), h.token(userGrace)
	body := `{"model":"claude-sonnet-4-6","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`
	status := func(g *harness, tok string) (int, []byte) {
		resp := g.post("/v1/messages", tok, body, nil)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	// Both replicas serve both users (and B now has Ada's token cached).
	for _, g := range []*harness{h, b} {
		for _, tok := range []string{ada, grace} {
			if code, body := status(g, tok); code != http.StatusOK {
				t.Fatalf("before revocation: %s answered %d: %s\n%s", g.base, code, body, g.logs.String())
			}
		}
	}

	// Revoke Ada on A's configuration (the CLI talks to the store only).
	var out, errb bytes.Buffer
	getenv := func(k string) string {
		if k == "TEST_UPSTREAM_KEY" {
			return h.upstreamKey
		}
		return map[string]string{"USER": "e2e-operator"}[k]
	}
	start := time.Now()
	if code := Run(context.Background(), []string{"revoke", "user", userAda.OID, "--config", h.cfgPath, "--reason", "e2e: account compromised"}, getenv, nil, &out, &errb); code != 0 {
		t.Fatalf("revoke user: exit %d\n%s%s", code, out.String(), errb.String())
	}
	var refused []byte
	for {
		code, body := status(b, ada)
		if code == http.StatusUnauthorized {
			refused = body
			break
		}
		if code != http.StatusOK {
			t.Fatalf("replica B answered %d while waiting for the revocation: %s", code, body)
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("replica B still serves the revoked user after 5s\n%s", b.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	delay := time.Since(start)
	t.Logf("revocation made through replica A's store enforced by replica B after %v (revoke command included)", delay.Round(time.Millisecond))
	var env struct {
		Type  string `json:"type"`
		Error struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(refused, &env); err != nil || env.Type != "error" || env.Error.Type != "authentication_error" || !strings.Contains(env.Error.Message, "revoked") {
		t.Errorf("refusal body: %s", refused)
	}
	if code, body := status(b, grace); code != http.StatusOK {
		t.Errorf("replica B refuses another user: %d %s", code, body)
	}
	if code, _ := status(h, ada); code != http.StatusUnauthorized {
		t.Errorf("replica A serves the revoked user: %d", code)
	}
	upstreamBefore := len(h.stub.Requests())
	if code, _ := status(b, ada); code != http.StatusUnauthorized {
		t.Errorf("replica B: second request of the revoked user: %d", code)
	}
	if n := len(h.stub.Requests()); n != upstreamBefore {
		t.Errorf("a revoked request reached the upstream (%d -> %d requests)", upstreamBefore, n)
	}

	// Lift it: Ada works again everywhere within 5s.
	out.Reset()
	if code := Run(context.Background(), []string{"revoke", "remove", "1", "--config", b.cfgPath, "--reason", "e2e: false alarm"}, getenv, nil, &out, &errb); code != 0 {
		t.Fatalf("revoke remove: exit %d\n%s%s", code, out.String(), errb.String())
	}
	start = time.Now()
	for {
		code, _ := status(h, ada)
		if code == http.StatusOK {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("replica A still refuses Ada 5s after the revocation was removed")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// B's audit trail records the refusal with reason revoked.
	childB.Process.Signal(syscall.SIGTERM)
	if err := childB.Wait(); err != nil {
		t.Fatalf("replica B did not stop cleanly: %v\n%s", err, b.logs.String())
	}
	st, err := auditsqlite.Open(context.Background(), auditsqlite.Options{Path: b.auditPath})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	recs, err := st.List(context.Background(), audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	revoked := 0
	for _, r := range recs {
		if r.Reason == "revoked" {
			revoked++
			if r.Status != http.StatusUnauthorized || r.ErrorType != "authentication_error" {
				t.Errorf("revoked record: status %d error %q", r.Status, r.ErrorType)
			}
			if r.ObjectID != userAda.OID || r.UserName != userAda.Username {
				t.Errorf("the refusal of a revoked user does not name her: %+v", r)
			}
		}
	}
	if revoked < 2 {
		t.Errorf("replica B audited %d refusals with reason revoked, want at least 2; records: %+v", revoked, recs)
	}
	if !strings.Contains(b.logs.String(), "revocations loaded") {
		t.Errorf("replica B did not log the revocation change:\n%s", b.logs.String())
	}
}

// TestEntraSyncAppDisabled: with revocation.entra_sync, a gateway that signs
// in to (fake) Entra with client credentials and finds its own app disabled
// in (fake) Microsoft Graph turns on the kill switch: the user is refused
// with 401 revoked, and audited so. Everything runs through the real
// configuration, credential, Graph client, state store and authenticator
// (lifting is covered by internal/revoke/graphsync, the pass interval being
// at least 10s).
func TestEntraSyncAppDisabled(t *testing.T) {
	needStateConfig(t)
	const syncApp = "bbbbbbbb-cccc-4ddd-8eee-ffffffffffff"
	az, err := fakeazure.Start(fakeazure.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer az.Close()
	az.AddClientSecret(testTenant, syncApp, "graph-secret")
	var graph *graphusers.Server
	graph, err = graphusers.Start(graphusers.Options{Tokens: func(tok string) (string, []string, bool) {
		// The gateway asks Entra for <graph_url>/.default: here the fake's URL.
		g, ok := az.Lookup(tok)
		if !ok || g.ClientID != syncApp || strings.TrimSuffix(g.Resource, "/") != graph.URL() {
			return "", nil, false
		}
		return g.TenantID, []string{"User.Read.All", "Application.Read.All"}, true
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer graph.Close()
	graph.PutServicePrincipal(testTenant, testClientID, false) // "Enabled for users to sign in?" = No
	graph.PutUser(testTenant, graphusers.User{ID: userAda.OID, UserPrincipalName: userAda.Username, AccountEnabled: true})

	secretFile := filepath.Join(t.TempDir(), "graph-secret")
	if err := os.WriteFile(secretFile, []byte("graph-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := startGateway(t, harnessOptions{extraYAML: "revocation:\n  entra_sync:\n    enabled: true\n    tenant_id: " + testTenant +
		"\n    client_id: " + syncApp + "\n    client_secret: ${file:" + secretFile + "}\n    app_id: " + testClientID +
		"\n    authority_host: " + az.URL() + "\n    graph_url: " + graph.URL() + "\n    interval: 10s\n"})
	tok := h.token(userAda)
	body := `{"model":"claude-sonnet-4-6","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp := h.post("/v1/messages", tok, body, nil)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusUnauthorized {
			if !strings.Contains(string(b), "revoked") {
				t.Fatalf("401 without the revoked message: %s", b)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the app is disabled in Entra but the gateway still answers %d\n%s", resp.StatusCode, h.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(h.logs.String(), "kill switch on") {
		t.Errorf("the kill switch was not logged:\n%s", h.logs.String())
	}
	found := false
	for _, r := range graph.Requests() {
		if strings.Contains(r, "/v1.0/servicePrincipals(appId='"+testClientID+"')") {
			found = true
		}
	}
	if !found {
		t.Errorf("Graph requests: %v", graph.Requests())
	}
	recs := h.records()
	revoked := 0
	for _, r := range recs {
		if r.Reason == "revoked" && r.Status == http.StatusUnauthorized {
			revoked++
		}
	}
	if revoked == 0 {
		t.Errorf("no audit record with reason revoked: %+v", recs)
	}
}
