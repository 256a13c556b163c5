package cli

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	fakeanthropic "github.com/gatehouse-dev/gatehouse/internal/fake/anthropic"
)

func TestTLSHTTP2AndCertificateReload(t *testing.T) {
	h := startGateway(t, harnessOptions{tls: true})
	resp := h.post("/v1/messages", h.token(userAda), `{"model":"claude-sonnet-4-6","stream":true,"max_tokens":5,"messages":[]}`, nil)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 || !strings.Contains(string(b), "message_stop") {
		t.Fatalf("TLS stream: %d %s", resp.StatusCode, resp.Proto)
	}
	if serial := resp.TLS.PeerCertificates[0].SerialNumber.Int64(); serial != 1 {
		t.Fatalf("serial %d", serial)
	}
	// TLS 1.1 is refused.
	old := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11}}}
	if _, err := old.Get(h.base + "/healthz"); err == nil {
		t.Fatal("a TLS 1.1 client was served")
	}
	// New files are picked up without a restart.
	pool := writeSelfSigned(t, h.certFile, h.keyFile, 2)
	time.Sleep(2100 * time.Millisecond)
	fresh := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := fresh.Get(h.base + "/healthz")
	if err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	resp.Body.Close()
	if serial := resp.TLS.PeerCertificates[0].SerialNumber.Int64(); serial != 2 {
		t.Fatalf("serial after rotation %d", serial)
	}
}

// TestGracefulShutdown: on SIGTERM the gateway stops accepting, lets the
// stream in flight finish, flushes the audit trail and exits 0.
func TestGracefulShutdown(t *testing.T) {
	h := startGateway(t, harnessOptions{stub: fakeanthropic.Options{EventDelay: 80 * time.Millisecond, Deltas: 10}})
	resp := h.post("/v1/messages", h.token(userAda), `{"model":"claude-sonnet-4-6","stream":true,"max_tokens":50,"messages":[]}`, nil)
	r := bufio.NewReader(resp.Body)
	if _, err := r.ReadString('\n'); err != nil { // the stream has started
		t.Fatal(err)
	}
	code := make(chan int, 1)
	go func() { code <- h.shutdown() }() // SIGTERM
	rest, err := io.ReadAll(r)
	resp.Body.Close()
	if err != nil || !strings.HasSuffix(string(rest), "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n") {
		t.Fatalf("stream cut by shutdown: %v\n%s", err, rest)
	}
	if c := <-code; c != 0 {
		t.Fatalf("exit code %d", c)
	}
	if _, err := http.Get(h.base + "/healthz"); err == nil {
		t.Fatal("still accepting after shutdown")
	}
	recs := h.records()
	if len(recs) != 1 || recs[0].State != audit.StateCompleted || recs[0].Usage.OutputTokens == 0 {
		t.Fatalf("audit after shutdown: %+v", recs)
	}
}

// TestSideListeners: metrics_listen moves /metrics off the client-facing
// port; debug_listen serves Go's profiles on loopback and nowhere else.
func TestSideListeners(t *testing.T) {
	metricsAddr, debugAddr := freeAddr(t), freeAddr(t)
	h := startGateway(t, harnessOptions{extraYAML: fmt.Sprintf("metrics_listen: %s\ndebug_listen: %s\n", metricsAddr, debugAddr)})
	get := func(u string) (int, string) {
		t.Helper()
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("http://" + metricsAddr + "/metrics"); code != 200 || !strings.Contains(body, "gatehouse_") {
		t.Fatalf("metrics_listen /metrics: %d %.200s", code, body)
	}
	if code, body := get("http://" + debugAddr + "/debug/pprof/goroutine?debug=1"); code != 200 || !strings.Contains(body, "goroutine profile") {
		t.Fatalf("debug_listen goroutine profile: %d %.200s", code, body)
	}
	for _, path := range []string{"/metrics", "/debug/pprof/"} {
		if code, _ := get(h.base + path); code == 200 {
			t.Errorf("main listener serves %s although it was moved", path)
		}
	}
	if code, _ := get("http://" + metricsAddr + "/debug/pprof/"); code == 200 {
		t.Error("metrics listener serves profiles")
	}
}
