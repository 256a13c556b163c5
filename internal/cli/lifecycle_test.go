package cli

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	fakeanthropic "github.com/gatehouse-dev/gatehouse/internal/fake/anthropic"
)

// TestSlowHeadersAreCut: a client that never finishes its headers is
// disconnected after read_header_timeout (slowloris).
func TestSlowHeadersAreCut(t *testing.T) {
	h := startGateway(t, harnessOptions{serverYAML: "read_header_timeout: 300ms"})
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "POST /v1/messages HTTP/1.1\r\nHost: x\r\nX-Slow: ")
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 512)
	_, err = conn.Read(buf)
	if err == nil {
		// Go answers 408 or closes; either way the connection must end.
		_, err = conn.Read(buf)
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the slow client was not cut off")
	}
	if h.stub.Count() != 0 {
		t.Fatal("a partial request reached the upstream")
	}
}

// TestLongStreamsAreNotCut: a stream that keeps progressing outlives
// write_idle_timeout; only silence on the client side would cut it.
func TestLongStreamsAreNotCut(t *testing.T) {
	h := startGateway(t, harnessOptions{
		serverYAML: "write_idle_timeout: 300ms",
		stub:       fakeanthropic.Options{EventDelay: 100 * time.Millisecond, Deltas: 10},
	})
	start := time.Now()
	resp := h.post("/v1/messages", h.token(userAda), `{"model":"claude-sonnet-4-6","stream":true,"max_tokens":50,"messages":[]}`, nil)
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !strings.HasSuffix(string(b), "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n") {
		t.Fatalf("stream cut after %v: %v\n%s", time.Since(start), err, b)
	}
	if time.Since(start) < 600*time.Millisecond {
		t.Fatalf("stream took %v: the test did not outlast the idle timeout", time.Since(start))
	}
}

// TestClientDisconnectIsAuditedAsInterrupted: when the client goes away
// mid-stream the upstream request is cancelled and the record keeps what
// was seen.
func TestClientDisconnectIsAuditedAsInterrupted(t *testing.T) {
	h := startGateway(t, harnessOptions{stub: fakeanthropic.Options{EventDelay: 100 * time.Millisecond, Deltas: 30}})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.base+"/v1/messages", strings.NewReader(`{"model":"claude-sonnet-4-6","stream":true,"max_tokens":50,"messages":[]}`))
	req.Header.Set("Authorization", "Bearer "+h.token(userAda))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(resp.Body)
	for i := 0; i < 8; i++ { // message_start and a few more lines
		if _, err := r.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	resp.Body.Close()
	recs := h.records()
	if len(recs) != 1 || recs[0].State != "interrupted" || recs[0].Reason != "client_closed" || recs[0].Usage.InputTokens == 0 {
		t.Fatalf("records: %+v", recs)
	}
}

// TestDemo runs `gatehouse demo` and follows its printed instructions.
func TestDemo(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	logs := &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"demo", "--listen", "127.0.0.1:0"}, func(string) string { return "" }, nil, out, logs)
	}()
	deadline := time.Now().Add(20 * time.Second)
	re := regexp.MustCompile(`curl -sN (http://[0-9.:]+)/v1/messages \\\n\s+-H 'Authorization: Bearer ([^']+)'`)
	var m []string
	for m == nil && time.Now().Before(deadline) {
		m = re.FindStringSubmatch(out.String())
		time.Sleep(20 * time.Millisecond)
	}
	if m == nil {
		cancel()
		t.Fatalf("no curl command printed:\n%s\n%s", out.String(), logs.String())
	}
	for _, want := range []string{"ANTHROPIC_BASE_URL=" + m[1], "ANTHROPIC_AUTH_TOKEN=", "audit list --config"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, m[1]+"/v1/messages", strings.NewReader(`{"model":"claude-sonnet-4-6","max_tokens":256,"stream":true,"messages":[{"role":"user","content":"Hello"}]}`))
	req.Header.Set("Authorization", "Bearer "+m[2])
	req.Header.Set("anthropic-version", "2023-06-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "message_stop") {
		t.Fatalf("demo request: %d %s", resp.StatusCode, b)
	}
	cancel() // Ctrl-C
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("demo exited %d:\n%s", code, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("demo did not stop")
	}
}
