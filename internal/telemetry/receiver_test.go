package telemetry

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// receiver is a local OTLP/HTTP collector: it accepts protobuf
// ExportTraceServiceRequests on /v1/traces and keeps what it got.
type receiver struct {
	*httptest.Server
	t *testing.T

	mu      sync.Mutex
	exports []*coltracepb.ExportTraceServiceRequest
	raw     [][]byte // decompressed request bodies
	headers []http.Header
	paths   []string
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	rc := &receiver{t: t}
	rc.Server = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "want POST application/x-protobuf", http.StatusBadRequest)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	data, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req := &coltracepb.ExportTraceServiceRequest{}
	if err := proto.Unmarshal(data, req); err != nil {
		rc.t.Errorf("receiver: undecodable export: %v", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	rc.exports = append(rc.exports, req)
	rc.raw = append(rc.raw, data)
	rc.headers = append(rc.headers, r.Header.Clone())
	rc.paths = append(rc.paths, r.URL.Path)
	rc.mu.Unlock()
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(out)
}

// exportedSpan is one span with the resource it came with.
type exportedSpan struct {
	resource map[string]any
	scope    string
	*tracepb.Span
}

func (rc *receiver) spans() []exportedSpan {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []exportedSpan
	for _, e := range rc.exports {
		for _, rs := range e.ResourceSpans {
			res := attrMap(rs.GetResource().GetAttributes())
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					out = append(out, exportedSpan{resource: res, scope: ss.GetScope().GetName(), Span: sp})
				}
			}
		}
	}
	return out
}

func (rc *receiver) rawBytes() []byte {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return bytes.Join(rc.raw, nil)
}

func (rc *receiver) requestHeaders() []http.Header {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]http.Header(nil), rc.headers...)
}

func (rc *receiver) requestPaths() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]string(nil), rc.paths...)
}

func attrMap(kvs []*commonpb.KeyValue) map[string]any {
	m := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		m[kv.Key] = anyValue(kv.Value)
	}
	return m
}

func anyValue(v *commonpb.AnyValue) any {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return x.IntValue
	case *commonpb.AnyValue_BoolValue:
		return x.BoolValue
	case *commonpb.AnyValue_DoubleValue:
		return x.DoubleValue
	case *commonpb.AnyValue_ArrayValue:
		var out []any
		for _, e := range x.ArrayValue.Values {
			out = append(out, anyValue(e))
		}
		return out
	}
	return nil
}

// allStrings returns every string in resources, spans, events and links.
func allStrings(spans []exportedSpan) []string {
	var out []string
	add := func(kvs []*commonpb.KeyValue) {
		for _, kv := range kvs {
			out = append(out, kv.Key)
			var walk func(v *commonpb.AnyValue)
			walk = func(v *commonpb.AnyValue) {
				switch x := v.GetValue().(type) {
				case *commonpb.AnyValue_StringValue:
					out = append(out, x.StringValue)
				case *commonpb.AnyValue_ArrayValue:
					for _, e := range x.ArrayValue.Values {
						walk(e)
					}
				}
			}
			walk(kv.Value)
		}
	}
	for _, s := range spans {
		for k, v := range s.resource {
			out = append(out, k)
			if str, ok := v.(string); ok {
				out = append(out, str)
			}
		}
		out = append(out, s.Name, s.TraceState, s.GetStatus().GetMessage())
		add(s.Attributes)
		for _, e := range s.Events {
			out = append(out, e.Name)
			add(e.Attributes)
		}
		for _, l := range s.Links {
			add(l.Attributes)
		}
	}
	return out
}

// provider builds a tracer provider exporting to rc.
func provider(t *testing.T, rc *receiver, o Options) (*Tracer, func()) {
	t.Helper()
	o.Endpoint = rc.URL
	tp, err := NewTracerProvider(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	shutdown := func() {
		if err := tp.Shutdown(context.Background()); err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	}
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return NewTracer(tp, testUpstreams...), shutdown
}

var testUpstreams = []Upstream{
	{Name: "foundry", BaseURL: "https://contoso.services.ai.azure.com/anthropic", Provider: "foundry"},
	{Name: "direct", BaseURL: "https://api.anthropic.com", Provider: "anthropic"},
	{Name: "local", BaseURL: "http://127.0.0.1:9000", Provider: "anthropic"},
}
