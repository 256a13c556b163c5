package cli

import (
	"bufio"
	"crypto/tls"
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
