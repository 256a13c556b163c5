package cli

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	fakeanthropic "github.com/gatehouse-dev/gatehouse/internal/fake/anthropic"
)

// TestHotReload: SIGHUP swaps in a new configuration while a stream is in
// flight on the old one; a bad file is refused and the running
// configuration keeps serving; both are audited and counted.
func TestHotReload(t *testing.T) {
	h := startGateway(t, harnessOptions{stub: fakeanthropic.Options{EventDelay: 60 * time.Millisecond, Deltas: 10}})
	ada := h.token(userAda)
	resp := h.post("/v1/messages", ada, `{"model":"claude-haiku-4-5","stream":true,"max_tokens":50,"messages":[]}`, nil)
	stream := bufio.NewReader(resp.Body)
	if _, err := stream.ReadString('\n'); err != nil {
		t.Fatal(err)
	}

	orig, _ := os.ReadFile(h.cfgPath)
	next := strings.Replace(string(orig), "  - id: claude-haiku-4-5\n", "  - id: claude-opus-4-6\n    display_name: Claude Opus 4.6\n", 1)
	if next == string(orig) {
		t.Fatal("test config edit did not apply")
	}
	os.WriteFile(h.cfgPath, []byte(next), 0o600)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)

	waitFor(t, func() bool {
		r := h.post("/v1/messages", ada, `{"model":"claude-opus-4-6","max_tokens":5,"messages":[]}`, nil)
		r.Body.Close()
		return r.StatusCode == 200
	})
	r := h.post("/v1/messages", ada, `{"model":"claude-haiku-4-5","max_tokens":5,"messages":[]}`, nil)
	if r.StatusCode != 404 {
		t.Fatalf("removed model: %d", r.StatusCode)
	}
	r.Body.Close()
	rest, err := io.ReadAll(stream) // the old generation finishes its stream
	resp.Body.Close()
	if err != nil || !strings.Contains(string(rest), "message_stop") {
		t.Fatalf("in-flight stream broken by the reload: %v", err)
	}

	// A bad file (unknown key) is refused; the running configuration serves on.
	os.WriteFile(h.cfgPath, []byte(next+"\nnot_a_key: 1\n"), 0o600)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitFor(t, func() bool { return strings.Contains(h.logs.String(), "configuration reload refused") })
	r = h.post("/v1/messages", ada, `{"model":"claude-opus-4-6","max_tokens":5,"messages":[]}`, nil)
	if r.StatusCode != 200 {
		t.Fatalf("after a refused reload: %d", r.StatusCode)
	}
	r.Body.Close()
	m, _ := http.Get(h.base + "/metrics")
	mb, _ := io.ReadAll(m.Body)
	m.Body.Close()
	for _, want := range []string{`gatehouse_config_reloads_total{result="applied"} 1`, `gatehouse_config_reloads_total{result="rejected"} 1`} {
		if !strings.Contains(string(mb), want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	var applied, rejected int
	for _, rec := range h.records() {
		if rec.Method != "RELOAD" {
			continue
		}
		switch {
		case rec.Reason == "config_reloaded" && rec.State == audit.StateCompleted:
			applied++
		case rec.Reason == "config_rejected" && rec.State == audit.StateDenied:
			rejected++
		}
	}
	if applied != 1 || rejected != 1 {
		t.Fatalf("audited reloads: %d applied, %d rejected", applied, rejected)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
