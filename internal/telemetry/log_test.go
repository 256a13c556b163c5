package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func decodeLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	dec := json.NewDecoder(buf)
	for dec.More() {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func TestLogHandlerAddsTraceIDs(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	tr := NewTracer(tp)

	var buf bytes.Buffer
	log := slog.New(NewLogHandler(slog.NewJSONHandler(&buf, nil))).With(slog.String("component", "server"))

	ctx, rs := tr.StartRequest(newInference(t, "/v1/messages", nil), "gh_log")
	log.InfoContext(ctx, "request", slog.String("request_id", "gh_log"))
	uctx, us := tr.StartUpstream(ctx, UpstreamCall{Route: "/v1/messages", Model: "m"})
	log.ErrorContext(uctx, "upstream failed")
	us.End(UpstreamResult{Status: 500})
	rs.End(RequestOutcome{Status: 500})
	log.InfoContext(context.Background(), "no span")
	log.Info("no context")

	lines := decodeLines(t, &buf)
	if len(lines) != 4 {
		t.Fatalf("got %d log lines", len(lines))
	}
	for i, sc := range []trace.SpanContext{rs.SpanContext(), us.SpanContext()} {
		l := lines[i]
		if !sc.IsValid() || l["trace_id"] != sc.TraceID().String() || l["span_id"] != sc.SpanID().String() {
			t.Errorf("line %d: trace_id=%v span_id=%v, want %s/%s", i, l["trace_id"], l["span_id"], sc.TraceID(), sc.SpanID())
		}
		if l["component"] != "server" {
			t.Errorf("line %d lost the logger's attributes: %v", i, l)
		}
	}
	if lines[0]["trace_id"] != lines[1]["trace_id"] || lines[0]["span_id"] == lines[1]["span_id"] {
		t.Errorf("request and upstream lines should share the trace and differ in span: %v / %v", lines[0], lines[1])
	}
	// The ids match the spans the SDK ended.
	ended := rec.Ended()
	if len(ended) != 2 || ended[1].SpanContext().SpanID().String() != lines[0]["span_id"] {
		t.Errorf("logged span id is not the request span's")
	}
	for _, l := range lines[2:] {
		if _, ok := l["trace_id"]; ok {
			t.Errorf("trace_id on a record without a span: %v", l)
		}
	}
}

func TestLogHandlerLevelsAndGroups(t *testing.T) {
	var buf bytes.Buffer
	h := NewLogHandler(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if NewLogHandler(h) != h {
		t.Error("wrapping twice adds a second layer")
	}
	if h.Enabled(context.Background(), slog.LevelInfo) || !h.Enabled(context.Background(), slog.LevelWarn) {
		t.Error("Enabled does not follow the wrapped handler")
	}
	slog.New(h).WithGroup("g").Warn("x", slog.Int("n", 1))
	lines := decodeLines(t, &buf)
	if g, ok := lines[0]["g"].(map[string]any); !ok || g["n"] != float64(1) {
		t.Errorf("group lost: %v", lines[0])
	}
}
