package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	auditsqlite "github.com/gatehouse-dev/gatehouse/internal/audit/sqlite"
	"github.com/gatehouse-dev/gatehouse/internal/fake/idp"
)

// TestContentCaptureRedacted: with capture "redacted", the prompt and the
// streamed answer (assembled) are stored encrypted with secrets and card
// numbers removed; `audit show --content` reads them back and that read is
// itself audited; the database file holds no plaintext.
func TestContentCaptureRedacted(t *testing.T) {
	key := make([]byte, 32)
	rand.Read(key)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "content.key")
	os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(key)), 0o600)
	h := startGateway(t, harnessOptions{auditYAML: fmt.Sprintf("content:\n  capture: redacted\n  keys:\n    - id: k1\n      key: ${file:%s}\n", keyFile)})

	prompt := `{"model":"claude-sonnet-4-6","stream":true,"max_tokens":64,"messages":[{"role":"user","content":"My card is 4111 1111 1111 1111 and my key is sk-ant-api03-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA. Summarise the contract for mallory@example.com."}]}`
	resp := h.post("/v1/messages", h.token(userAda), prompt, nil)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	rid := resp.Header.Get("gatehouse-request-id")

	recs := h.records()
	if len(recs) != 1 || recs[0].State != audit.StateCompleted {
		t.Fatalf("records %+v", recs)
	}
	db, _ := os.ReadFile(h.auditPath)
	wal, _ := os.ReadFile(h.auditPath + "-wal")
	for _, plain := range []string{"4111 1111 1111 1111", "Summarise the contract", "Gatehouse stub model"} {
		if bytes.Contains(append(db, wal...), []byte(plain)) {
			t.Errorf("the audit database holds %q in plaintext", plain)
		}
	}

	var out, errb bytes.Buffer
	code := Run(context.Background(), []string{"audit", "show", rid, "--config", h.cfgPath, "--content", "--as", "auditor@contoso.example"},
		func(k string) string {
			if k == "TEST_UPSTREAM_KEY" {
				return h.upstreamKey
			}
			return ""
		}, nil, &out, &errb)
	if code != 0 {
		t.Fatalf("audit show: %d %s", code, errb.String())
	}
	shown := out.String()
	for _, want := range []string{"Summarise the contract", "Hello from the Gatehouse stub model"} {
		if !strings.Contains(shown, want) {
			t.Errorf("captured content lacks %q:\n%s", want, shown)
		}
	}
	for _, secret := range []string{"4111 1111 1111 1111", "sk-ant-api03-AAAA", "mallory@example.com"} {
		if strings.Contains(shown, secret) {
			t.Errorf("redacted capture still holds %q", secret)
		}
	}
	// The read itself is in the audit trail, naming the reader.
	st, err := auditsqlite.Open(context.Background(), auditsqlite.Options{Path: h.auditPath, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	all, _ := st.List(context.Background(), audit.Filter{})
	found := false
	for _, r := range all {
		if r.Reason == "content_read" && strings.Contains(r.UserName, "auditor@contoso.example") && strings.Contains(r.Path, rid) {
			found = true
		}
	}
	if !found {
		t.Fatalf("the content read was not audited: %+v", all)
	}
}

// TestContentCapturePerPolicy: capture is off gateway-wide but full for one
// policy's users; only their requests are captured.
func TestContentCapturePerPolicy(t *testing.T) {
	key := make([]byte, 32)
	rand.Read(key)
	keyFile := filepath.Join(t.TempDir(), "content.key")
	os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(key)), 0o600)
	bea := userAda
	bea.OID, bea.Username, bea.Email, bea.Name = "00000000-0000-4000-8000-0000000000be", "bea@contoso.example", "bea@contoso.example", "Bea"
	h := startGateway(t, harnessOptions{
		auditYAML: fmt.Sprintf("content:\n  capture: off\n  keys:\n    - id: k1\n      key: ${file:%s}\n", keyFile),
		extraYAML: "policies:\n  - name: legal-hold\n    match: {users: [\"" + userAda.OID + "\"]}\n    content_capture: full\n  - name: everyone\n    match: {}\n",
	})
	ids := map[string]string{}
	for name, u := range map[string]idp.User{"ada": userAda, "bea": bea} {
		resp := h.post("/v1/messages", h.token(u), `{"model":"claude-sonnet-4-6","max_tokens":16,"messages":[{"role":"user","content":"prompt of `+name+`"}]}`, nil)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		ids[name] = resp.Header.Get("gatehouse-request-id")
	}
	h.records()
	getenv := func(k string) string {
		if k == "TEST_UPSTREAM_KEY" {
			return h.upstreamKey
		}
		return ""
	}
	var out, errb bytes.Buffer
	if code := Run(context.Background(), []string{"audit", "show", ids["ada"], "--config", h.cfgPath, "--content", "--as", "auditor"}, getenv, nil, &out, &errb); code != 0 || !strings.Contains(out.String(), "prompt of ada") {
		t.Fatalf("ada's request (policy: full) not captured: %d %s %s", code, out.String(), errb.String())
	}
	out.Reset()
	errb.Reset()
	Run(context.Background(), []string{"audit", "show", ids["bea"], "--config", h.cfgPath, "--content", "--as", "auditor"}, getenv, nil, &out, &errb)
	if strings.Contains(out.String(), "prompt of bea") {
		t.Fatalf("bea's request was captured though capture is off for her:\n%s", out.String())
	}
}
