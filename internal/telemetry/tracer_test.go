package telemetry

import (
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/gatehouse-dev/gatehouse/internal/anthropic"
)

func newInference(t *testing.T, target string, hdr map[string]string) *http.Request {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, target, strings.NewReader(`{"model":"claude-sonnet-4-6","max_tokens":1024,"messages":[]}`))
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	return r
}

func byKind(t *testing.T, spans []exportedSpan, kind tracepb.Span_SpanKind) exportedSpan {
	t.Helper()
	var found []exportedSpan
	for _, s := range spans {
		if s.Kind == kind {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one %v span, got %d of %d spans", kind, len(found), len(spans))
	}
	return found[0]
}

func wantAttrs(t *testing.T, what string, got, want map[string]any) {
	t.Helper()
	for k, v := range want {
		if g, ok := got[k]; !ok {
			t.Errorf("%s: attribute %s missing (have %v)", what, k, got)
		} else if !reflect.DeepEqual(g, v) {
			t.Errorf("%s: %s = %#v, want %#v", what, k, g, v)
		}
	}
}

func TestRequestAndChatSpans(t *testing.T) {
	rc := newReceiver(t)
	tr, shutdown := provider(t, rc, Options{
		SampleRatio: 1, Version: "1.2.3",
		Headers: map[string]string{"Authorization": "Bearer collector-key", "X-Scope-OrgID": "tenant-a"},
	})
	r := newInference(t, "https://gw.example.com:8443/v1/messages?beta=true", map[string]string{"User-Agent": "claude-cli/2.1.0 (external, cli)"})

	ctx, rs := tr.StartRequest(r, "gh_request1")
	start := time.Now()
	_, us := tr.StartUpstream(ctx, UpstreamCall{Route: "/v1/messages", Model: "sonnet-deployment", Upstream: "foundry", MaxTokens: 1024, Stream: true})
	us.End(UpstreamResult{
		Status: 200, FirstByte: start.Add(250 * time.Millisecond),
		Usage:      anthropic.Usage{InputTokens: 10, OutputTokens: 20, CacheReadInputTokens: 5, CacheCreationInputTokens: 3},
		ResponseID: "msg_01abc", ResponseModel: "claude-sonnet-4-6-20260101", FinishReason: "end_turn",
	})
	rs.End(RequestOutcome{Status: 200, Model: "claude-sonnet-4-6"})
	shutdown()

	spans := rc.spans()
	if len(spans) != 2 {
		t.Fatalf("exported %d spans, want 2", len(spans))
	}
	srv := byKind(t, spans, tracepb.Span_SPAN_KIND_SERVER)
	cli := byKind(t, spans, tracepb.Span_SPAN_KIND_CLIENT)

	if srv.Name != "POST /v1/messages" {
		t.Errorf("server span name = %q", srv.Name)
	}
	if len(srv.ParentSpanId) != 0 {
		t.Errorf("request span has a parent without a traceparent")
	}
	wantAttrs(t, "request span", attrMap(srv.Attributes), map[string]any{
		"http.request.method":       "POST",
		"http.route":                "/v1/messages",
		"url.path":                  "/v1/messages",
		"url.scheme":                "https",
		"server.address":            "gw.example.com",
		"server.port":               int64(8443),
		"user_agent.original":       "claude-cli/2.1.0 (external, cli)",
		"gatehouse.request_id":      "gh_request1",
		"http.response.status_code": int64(200),
		"gatehouse.model":           "claude-sonnet-4-6",
	})
	if _, ok := attrMap(srv.Attributes)["error.type"]; ok {
		t.Errorf("error.type on a successful request")
	}

	if cli.Name != "chat sonnet-deployment" {
		t.Errorf("client span name = %q", cli.Name)
	}
	if !bytes.Equal(cli.TraceId, srv.TraceId) || !bytes.Equal(cli.ParentSpanId, srv.SpanId) {
		t.Errorf("chat span is not a child of the request span")
	}
	ca := attrMap(cli.Attributes)
	wantAttrs(t, "chat span", ca, map[string]any{
		"gen_ai.operation.name":                    "chat",
		"gen_ai.provider.name":                     "anthropic",
		"gen_ai.request.model":                     "sonnet-deployment",
		"gen_ai.request.max_tokens":                int64(1024),
		"gen_ai.request.stream":                    true,
		"gen_ai.usage.input_tokens":                int64(18), // 10 + cache read 5 + cache write 3
		"gen_ai.usage.output_tokens":               int64(20),
		"gen_ai.usage.cache_read.input_tokens":     int64(5),
		"gen_ai.usage.cache_creation.input_tokens": int64(3),
		"gen_ai.response.id":                       "msg_01abc",
		"gen_ai.response.model":                    "claude-sonnet-4-6-20260101",
		"gen_ai.response.finish_reasons":           []any{"end_turn"},
		"server.address":                           "contoso.services.ai.azure.com",
		"server.port":                              int64(443),
		"gatehouse.upstream":                       "foundry",
		"gatehouse.upstream.provider":              "foundry",
		"http.response.status_code":                int64(200),
	})
	if ttfc, ok := ca["gen_ai.response.time_to_first_chunk"].(float64); !ok || ttfc < 0.2 || ttfc > 0.3 {
		t.Errorf("time_to_first_chunk = %v, want about 0.25", ca["gen_ai.response.time_to_first_chunk"])
	}
	if cli.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("successful call marked as error")
	}

	wantAttrs(t, "resource", srv.resource, map[string]any{
		"service.name": "gatehouse", "service.version": "1.2.3", "telemetry.sdk.language": "go",
	})
	if srv.scope != ScopeName {
		t.Errorf("scope = %q", srv.scope)
	}

	hs := rc.requestHeaders()
	if len(hs) == 0 {
		t.Fatal("no export request")
	}
	for _, h := range hs {
		if h.Get("Authorization") != "Bearer collector-key" || h.Get("X-Scope-OrgID") != "tenant-a" {
			t.Errorf("configured headers not sent: %v", h)
		}
	}
	for _, p := range rc.requestPaths() {
		if p != "/v1/traces" {
			t.Errorf("exported to %q, want /v1/traces", p)
		}
	}
}

func TestTraceparentIsContinued(t *testing.T) {
	rc := newReceiver(t)
	// Ratio 0: only the caller's sampled flag can get this request recorded.
	tr, shutdown := provider(t, rc, Options{SampleRatio: 0})
	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	r := newInference(t, "/v1/messages", map[string]string{
		"traceparent": "00-" + traceID + "-" + parentID + "-01",
		"tracestate":  "vendor=abc",
	})
	ctx, rs := tr.StartRequest(r, "gh_x")
	_, us := tr.StartUpstream(ctx, UpstreamCall{Route: "/v1/messages", Model: "m", Upstream: "direct"})
	us.End(UpstreamResult{Status: 200})
	rs.End(RequestOutcome{Status: 200})
	if got := rs.SpanContext().TraceID().String(); got != traceID {
		t.Fatalf("request span trace id = %s, want the caller's %s", got, traceID)
	}
	shutdown()

	spans := rc.spans()
	if len(spans) != 2 {
		t.Fatalf("exported %d spans, want 2 (the caller sampled the trace)", len(spans))
	}
	srv := byKind(t, spans, tracepb.Span_SPAN_KIND_SERVER)
	if hex.EncodeToString(srv.TraceId) != traceID || hex.EncodeToString(srv.ParentSpanId) != parentID {
		t.Fatalf("request span trace=%x parent=%x, want %s / %s", srv.TraceId, srv.ParentSpanId, traceID, parentID)
	}
	if srv.TraceState != "vendor=abc" {
		t.Errorf("tracestate = %q", srv.TraceState)
	}
}

func TestSampleRatioZeroExportsNothing(t *testing.T) {
	rc := newReceiver(t)
	tr, shutdown := provider(t, rc, Options{SampleRatio: 0})
	for i := 0; i < 20; i++ {
		ctx, rs := tr.StartRequest(newInference(t, "/v1/messages", nil), "gh_unsampled")
		_, us := tr.StartUpstream(ctx, UpstreamCall{Route: "/v1/messages", Model: "m", Upstream: "foundry"})
		us.End(UpstreamResult{Status: 200, Usage: anthropic.Usage{InputTokens: 1}})
		rs.End(RequestOutcome{Status: 200})
	}
	// A caller that sent sampled=0 is not recorded either.
	r := newInference(t, "/v1/messages", map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"})
	_, rs := tr.StartRequest(r, "gh_unsampled")
	rs.End(RequestOutcome{Status: 200})
	shutdown()
	if n := len(rc.spans()); n != 0 {
		t.Fatalf("sample_ratio 0 exported %d spans", n)
	}
}

func TestSampleRatioOneExportsEverything(t *testing.T) {
	rc := newReceiver(t)
	tr, shutdown := provider(t, rc, Options{SampleRatio: 1})
	for i := 0; i < 20; i++ {
		_, rs := tr.StartRequest(newInference(t, "/v1/messages", nil), "gh_sampled")
		rs.End(RequestOutcome{Status: 200})
	}
	shutdown()
	if n := len(rc.spans()); n != 20 {
		t.Fatalf("sample_ratio 1 exported %d of 20 spans", n)
	}
}

func TestShutdownFlushes(t *testing.T) {
	rc := newReceiver(t)
	tr, shutdown := provider(t, rc, Options{SampleRatio: 1})
	_, rs := tr.StartRequest(newInference(t, "/v1/messages", nil), "gh_flush")
	rs.End(RequestOutcome{Status: 200})
	// The batch processor waits up to 5 s before exporting; nothing has
	// been sent yet.
	if n := len(rc.spans()); n != 0 {
		t.Fatalf("%d spans exported before Shutdown; the test cannot tell Shutdown flushed", n)
	}
	shutdown()
	if n := len(rc.spans()); n != 1 {
		t.Fatalf("after Shutdown the collector holds %d spans, want 1", n)
	}
	// Spans after Shutdown are dropped, not exported or blocking.
	_, rs = tr.StartRequest(newInference(t, "/v1/messages", nil), "gh_late")
	rs.End(RequestOutcome{Status: 200})
	if n := len(rc.spans()); n != 1 {
		t.Fatalf("a span after Shutdown was exported")
	}
}

// TestNoSecretsInSpans puts canaries everywhere a careless tracer might copy
// them from and checks that none reaches the collector's payload.
func TestNoSecretsInSpans(t *testing.T) {
	rc := newReceiver(t)
	tr, shutdown := provider(t, rc, Options{SampleRatio: 1, Headers: map[string]string{"Authorization": "Bearer canary-collector-key"}})
	canaries := []string{
		"canary-bearer-token", "canary-api-key", "canary-cookie", "canary-query-secret",
		"canary-prompt-text", "canary-collector-key", "canary-upn@contoso.com", "canary-session",
	}
	r := newInference(t, "https://gw.example.com/v1/messages?key=canary-query-secret", map[string]string{
		"Authorization":            "Bearer canary-bearer-token",
		"X-Api-Key":                "canary-api-key",
		"Cookie":                   "session=canary-cookie",
		"X-Claude-Code-Session-Id": "canary-session",
		"X-Ms-Client-Principal":    "canary-upn@contoso.com",
	})
	r.Body = io.NopCloser(strings.NewReader(`{"messages":[{"role":"user","content":"canary-prompt-text"}]}`))
	ctx, rs := tr.StartRequest(r, "gh_visible_request_id")
	_, us := tr.StartUpstream(ctx, UpstreamCall{Route: "/v1/messages", Model: "sonnet", Upstream: "foundry", Stream: true})
	us.End(UpstreamResult{Status: 500, ErrorType: "api_error", Reason: "upstream_stream_broken", Failed: []string{"direct: 529"}})
	rs.End(RequestOutcome{Status: 500, ErrorType: "api_error", Reason: "upstream_stream_broken", Model: "claude-sonnet-4-6"})
	shutdown()

	raw := rc.rawBytes()
	// Positive control: the scan sees the decoded payload.
	if !bytes.Contains(raw, []byte("gh_visible_request_id")) {
		t.Fatal("request id missing from the payload: the scan would see nothing")
	}
	strs := allStrings(rc.spans())
	if len(strs) < 20 {
		t.Fatalf("only %d strings exported; the scan is not looking at the spans", len(strs))
	}
	for _, c := range canaries {
		if bytes.Contains(raw, []byte(c)) {
			t.Errorf("canary %q appears in the exported payload", c)
		}
		for _, s := range strs {
			if strings.Contains(s, c) {
				t.Errorf("canary %q appears in exported value %q", c, s)
			}
		}
	}
	if got := rc.requestHeaders()[0].Get("Authorization"); got != "Bearer canary-collector-key" {
		t.Errorf("the collector header itself must be sent: %q", got)
	}
}

func TestFailoverAndErrors(t *testing.T) {
	rc := newReceiver(t)
	tr, shutdown := provider(t, rc, Options{SampleRatio: 1})

	ctx, rs := tr.StartRequest(newInference(t, "/v1/messages", nil), "gh_fail")
	_, us := tr.StartUpstream(ctx, UpstreamCall{Route: "/v1/messages", Model: "sonnet-deployment", Upstream: "foundry"})
	us.End(UpstreamResult{Status: 529, ErrorType: "overloaded_error", Upstream: "direct", Model: "claude-sonnet-4-6",
		Failed: []string{"foundry: 529", "local: upstream_unreachable"}})
	rs.End(RequestOutcome{Status: 529, ErrorType: "overloaded_error", Reason: "", Model: "claude-sonnet-4-6"})

	_, rs2 := tr.StartRequest(newInference(t, "/v1/messages/count_tokens", nil), "gh_limited")
	rs2.End(RequestOutcome{Status: 429, ErrorType: "rate_limit_error", Reason: "user_rate_limit"})

	ctx3, rs3 := tr.StartRequest(newInference(t, "/v1/messages", nil), "gh_broken")
	_, us3 := tr.StartUpstream(ctx3, UpstreamCall{Route: "/v1/messages/count_tokens", Model: "m", Upstream: "local"})
	us3.End(UpstreamResult{Status: 200, Reason: "upstream_stream_broken", Interrupted: true})
	rs3.End(RequestOutcome{Status: 200, Reason: "upstream_stream_broken"})
	shutdown()

	var fo, cl, broken exportedSpan
	for _, s := range rc.spans() {
		a := attrMap(s.Attributes)
		switch {
		case s.Kind == tracepb.Span_SPAN_KIND_CLIENT && a["gatehouse.upstream"] == "direct":
			fo = s
		case s.Kind == tracepb.Span_SPAN_KIND_CLIENT && a["gatehouse.upstream"] == "local":
			broken = s
		case a["gatehouse.request_id"] == "gh_limited":
			cl = s
		}
	}
	if fo.Span == nil || cl.Span == nil || broken.Span == nil {
		t.Fatalf("spans missing: %d exported", len(rc.spans()))
	}
	if fo.Name != "chat claude-sonnet-4-6" {
		t.Errorf("failover span name = %q, want the served model", fo.Name)
	}
	wantAttrs(t, "failover span", attrMap(fo.Attributes), map[string]any{
		"server.address": "api.anthropic.com", "server.port": int64(443), "gatehouse.upstream.provider": "anthropic",
		"error.type": "overloaded_error", "http.response.status_code": int64(529), "gen_ai.request.model": "claude-sonnet-4-6",
	})
	if fo.GetStatus().GetCode() != tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("529 not marked as error")
	}
	var events []string
	for _, e := range fo.Events {
		if e.Name == EventAttemptFailed {
			events = append(events, attrMap(e.Attributes)["gatehouse.attempt"].(string))
		}
	}
	if !reflect.DeepEqual(events, []string{"foundry: 529", "local: upstream_unreachable"}) {
		t.Errorf("failover events = %v", events)
	}

	if cl.Name != "POST /v1/messages/count_tokens" {
		t.Errorf("count_tokens request span name = %q", cl.Name)
	}
	wantAttrs(t, "429 request span", attrMap(cl.Attributes), map[string]any{"error.type": "rate_limit_error", "gatehouse.reason": "user_rate_limit"})
	if cl.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("a 4xx server span must not be marked as error")
	}

	if broken.Name != "count_tokens m" {
		t.Errorf("count_tokens client span name = %q", broken.Name)
	}
	wantAttrs(t, "broken stream", attrMap(broken.Attributes), map[string]any{
		"gen_ai.operation.name": "count_tokens", "error.type": "upstream_stream_broken", "gatehouse.interrupted": true,
		"server.address": "127.0.0.1", "server.port": int64(9000),
	})
	if broken.GetStatus().GetCode() != tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("a stream broken after 200 must be an error on the upstream span")
	}
}

func TestNilTracerIsNoop(t *testing.T) {
	var tr *Tracer
	r := newInference(t, "/v1/messages", map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
	ctx, rs := tr.StartRequest(r, "gh_x")
	if ctx != r.Context() {
		t.Fatal("nil tracer changed the context")
	}
	uctx, us := tr.StartUpstream(ctx, UpstreamCall{Model: "m"})
	if uctx != ctx {
		t.Fatal("nil tracer changed the context")
	}
	us.End(UpstreamResult{Status: 500})
	rs.End(RequestOutcome{Status: 500})
	if rs.SpanContext().IsValid() || us.SpanContext().IsValid() {
		t.Fatal("nil tracer produced a span")
	}
	if NewTracer(nil) != nil {
		t.Fatal("NewTracer(nil) is not nil")
	}
	var tp *sdktrace.TracerProvider
	if NewTracer(tp) != nil {
		t.Fatal("NewTracer of a typed nil provider is not nil")
	}
}

func TestTracesURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"http://otel:4318", "http://otel:4318/v1/traces"},
		{"http://otel:4318/", "http://otel:4318/v1/traces"},
		{"https://otlp.example.com/otlp", "https://otlp.example.com/otlp/v1/traces"},
		{"https://otlp.example.com/otlp/v1/traces", "https://otlp.example.com/otlp/v1/traces"},
	}
	for _, tc := range tests {
		if got, err := tracesURL(tc.in); err != nil || got != tc.want {
			t.Errorf("tracesURL(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "otel:4318", "ftp://otel", "https://user:pw@otel"} {
		if _, err := tracesURL(bad); err == nil {
			t.Errorf("tracesURL(%q) accepted", bad)
		} else if strings.Contains(err.Error(), "pw") {
			t.Errorf("error shows the URL's password: %v", err)
		}
	}
}

func TestExportFailureIsLoggedOnce(t *testing.T) {
	var calls int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		http.Error(w, "bad", http.StatusBadRequest) // permanent: no retry
	}))
	defer srv.Close()
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	tp, err := NewTracerProvider(context.Background(), Options{Endpoint: srv.URL, SampleRatio: 1, Logger: log,
		Headers: map[string]string{"Authorization": "Bearer canary-export-key"}})
	if err != nil {
		t.Fatal(err)
	}
	tr := NewTracer(tp)
	for i := 0; i < 3; i++ {
		_, rs := tr.StartRequest(newInference(t, "/v1/messages", nil), "gh_x")
		rs.End(RequestOutcome{Status: 200})
		if err := tp.ForceFlush(context.Background()); err != nil {
			t.Fatalf("ForceFlush reported the export error instead of logging it: %v", err)
		}
	}
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if calls < 3 {
		t.Fatalf("collector saw %d exports, want 3", calls)
	}
	if n := strings.Count(out, "spans could not be exported"); n != 1 {
		t.Fatalf("logged %d failure lines, want 1 (rate-limited):\n%s", n, out)
	}
	if strings.Contains(out, "canary-export-key") {
		t.Fatalf("log shows the collector credential:\n%s", out)
	}
	if !strings.Contains(out, `"dropped_spans":1`) || !strings.Contains(out, srv.URL+"/v1/traces") {
		t.Fatalf("log line lacks the endpoint or count:\n%s", out)
	}
}
