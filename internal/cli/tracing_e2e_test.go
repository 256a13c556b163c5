package cli

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// TestTracingEndToEnd runs the gateway with tracing on against a local OTLP
// receiver: a request yields a server span and a GenAI client span, the log
// line carries the trace id, a caller's traceparent is continued, no
// identity or credential reaches the collector, and spans are flushed by the
// graceful shutdown.
func TestTracingEndToEnd(t *testing.T) {
	var mu sync.Mutex
	var raw [][]byte
	var spans []*tracepb.Span
	var auth []string
	otlp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			body = zr
		}
		data, _ := io.ReadAll(body)
		req := &coltracepb.ExportTraceServiceRequest{}
		if err := proto.Unmarshal(data, req); err != nil || r.URL.Path != "/v1/traces" {
			http.Error(w, "bad export", 400)
			return
		}
		mu.Lock()
		raw = append(raw, data)
		auth = append(auth, r.Header.Get("Authorization"))
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				spans = append(spans, ss.Spans...)
			}
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Write(out)
	}))
	defer otlp.Close()
	keyFile := filepath.Join(t.TempDir(), "otlp-auth")
	if err := os.WriteFile(keyFile, []byte("Bearer otlp-canary-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	h := startGateway(t, harnessOptions{logLevel: "info", extraYAML: "tracing:\n  otlp_endpoint: " + otlp.URL + "\n  headers:\n    Authorization: ${file:" + keyFile + "}\n"})
	ada := h.token(userAda)
	const callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	resp := h.post("/v1/messages", ada, okBody, map[string]string{"traceparent": "00-" + callerTrace + "-00f067aa0ba902b7-01"})
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if code := h.shutdown(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, h.logs.String())
	}

	mu.Lock()
	defer mu.Unlock()
	var server, client *tracepb.Span
	for _, s := range spans {
		switch s.Kind {
		case tracepb.Span_SPAN_KIND_SERVER:
			server = s
		case tracepb.Span_SPAN_KIND_CLIENT:
			client = s
		}
	}
	if len(spans) != 2 || server == nil || client == nil {
		t.Fatalf("spans: %v\nlogs:\n%s", spans, h.logs.String())
	}
	if hex.EncodeToString(server.TraceId) != callerTrace || !bytes.Equal(client.ParentSpanId, server.SpanId) {
		t.Fatalf("trace not continued or not nested")
	}
	if client.Name != "chat sonnet-deployment" || server.Name != "POST /v1/messages" {
		t.Fatalf("names %q %q", server.Name, client.Name)
	}
	if auth[0] != "Bearer otlp-canary-key" {
		t.Fatalf("collector header %q", auth[0])
	}
	all := bytes.Join(raw, nil)
	for _, forbidden := range []string{ada, h.upstreamKey, userAda.OID, userAda.Username, "otlp-canary-key"} {
		if bytes.Contains(all, []byte(forbidden)) {
			t.Errorf("exported spans contain %q", forbidden)
		}
	}
	found := false
	for _, line := range strings.Split(h.logs.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil || m["msg"] != "request" {
			continue
		}
		found = true
		if m["trace_id"] != callerTrace || m["span_id"] != hex.EncodeToString(server.SpanId) {
			t.Errorf("request log line trace_id=%v span_id=%v, want %s/%x", m["trace_id"], m["span_id"], callerTrace, server.SpanId)
		}
	}
	if !found {
		t.Fatalf("no request log line:\n%s", h.logs.String())
	}
	t.Logf("client span attributes: %v", client.Attributes)
}
