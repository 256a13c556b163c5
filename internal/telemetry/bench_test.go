package telemetry

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/gatehouse-dev/gatehouse/internal/anthropic"
)

// discard is an exporter that drops everything (the benchmark measures the
// request path, not the network).
type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }

func benchRequest() *http.Request {
	r := httptest.NewRequest(http.MethodPost, "https://gw.example.com/v1/messages", http.NoBody)
	r.Header.Set("User-Agent", "claude-cli/2.1.0 (external, cli)")
	return r
}

func benchPath(b *testing.B, tr *Tracer) {
	r := benchRequest()
	res := UpstreamResult{Status: 200, Usage: anthropic.Usage{InputTokens: 100, OutputTokens: 200}, FirstByte: time.Now()}
	call := UpstreamCall{Route: "/v1/messages", Model: "sonnet-deployment", Upstream: "foundry", MaxTokens: 1024, Stream: true}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		ctx, rs := tr.StartRequest(r, "gh_bench")
		_, us := tr.StartUpstream(ctx, call)
		us.End(res)
		rs.End(RequestOutcome{Status: 200, Model: "claude-sonnet-4-6"})
	}
}

// BenchmarkTracingOff is the cost of the calls the server makes when
// tracing is not configured (nil *Tracer): it must allocate nothing.
func BenchmarkTracingOff(b *testing.B) { benchPath(b, nil) }

// BenchmarkTracingOn records both spans (sample_ratio 1) into the batch
// processor.
func BenchmarkTracingOn(b *testing.B) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discard{}))
	defer tp.Shutdown(context.Background())
	benchPath(b, NewTracer(tp, testUpstreams...))
}

// BenchmarkTracingUnsampled is tracing on with a request that the sampler
// drops (sample_ratio 0).
func BenchmarkTracingUnsampled(b *testing.B) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0))), sdktrace.WithBatcher(discard{}))
	defer tp.Shutdown(context.Background())
	benchPath(b, NewTracer(tp, testUpstreams...))
}

func TestTracingOffAllocatesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation count")
	}
	var tr *Tracer
	r := benchRequest()
	call := UpstreamCall{Route: "/v1/messages", Model: "m", Upstream: "foundry"}
	n := testing.AllocsPerRun(100, func() {
		ctx, rs := tr.StartRequest(r, "gh_x")
		_, us := tr.StartUpstream(ctx, call)
		us.End(UpstreamResult{Status: 200})
		rs.End(RequestOutcome{Status: 200})
	})
	if n != 0 {
		t.Fatalf("tracing off allocates %v times per request", n)
	}
}

// FuzzStartRequest feeds hostile request lines and headers through the
// request span and checks every exported string is bounded, valid UTF-8 and
// free of control characters (OTLP refuses a batch with invalid UTF-8), and
// that span names stay in a closed set.
var serverSpanNames = func() map[string]bool {
	m := map[string]bool{"HTTP": true}
	for _, method := range []string{"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"} {
		m[method] = true
		for _, route := range []string{pathMessages, pathCountTokens, pathModels} {
			m[method+" "+route] = true
		}
	}
	return m
}()

func validAttr(v string) bool {
	return len(v) <= maxAttrLen && utf8.ValidString(v) && !strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

func FuzzStartRequest(f *testing.F) {
	f.Add("POST", "/v1/messages", "gw.example.com:8443", "claude-cli/2.1.0", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "m", "reason")
	f.Add("BREW", "/v1/\xff\xfe", "[::1]:x", "ua\x00\x1b[31m", "garbage", "\xc3", "r\n")
	f.Add("GET", "/v1/models", "", string(make([]byte, 600)), "00-00000000000000000000000000000000-0000000000000000-01", "", "")
	f.Fuzz(func(t *testing.T, method, path, host, ua, traceparent, model, reason string) {
		rec := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
		tr := NewTracer(tp, testUpstreams...)
		r := &http.Request{Method: method, Host: host, Header: http.Header{}, ProtoMajor: 1, ProtoMinor: 1}
		r.URL = &url.URL{Path: path}
		r.Header.Set("User-Agent", ua)
		r.Header.Set("traceparent", traceparent)
		r = r.WithContext(context.Background())
		ctx, rs := tr.StartRequest(r, "gh_fuzz")
		_, us := tr.StartUpstream(ctx, UpstreamCall{Route: path, Model: model, Upstream: model})
		us.End(UpstreamResult{Status: 502, Reason: reason, ErrorType: model, Upstream: reason, Model: reason, Failed: []string{reason}, ResponseID: model})
		rs.End(RequestOutcome{Status: 502, Reason: reason, ErrorType: reason, Model: model})
		for _, s := range rec.Ended() {
			if s.SpanKind() == trace.SpanKindServer && !serverSpanNames[s.Name()] {
				t.Errorf("server span name %q is not from the closed set", s.Name())
			}
			if s.SpanKind() == trace.SpanKindClient && !validAttr(strings.TrimPrefix(strings.TrimPrefix(s.Name(), "chat "), "count_tokens ")) {
				t.Errorf("unsafe client span name %q", s.Name())
			}
			check := func(v string) {
				if !validAttr(v) {
					t.Errorf("unsafe exported string %q", v)
				}
			}
			check(s.Status().Description)
			for _, kv := range s.Attributes() {
				if kv.Value.Type().String() == "STRING" {
					check(kv.Value.AsString())
				}
			}
			for _, e := range s.Events() {
				for _, kv := range e.Attributes {
					check(kv.Value.AsString())
				}
			}
		}
	})
}
