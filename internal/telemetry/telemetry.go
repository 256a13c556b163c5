// Package telemetry traces the gateway's requests with OpenTelemetry: it
// builds the OTLP/HTTP tracer provider, starts the server span of each
// request and the GenAI client span of its upstream call, and puts trace and
// span ids on log records.
//
// Nothing here is global: the package never calls otel.SetTracerProvider or
// otel.SetTextMapPropagator. internal/cli builds one provider and hands a
// *Tracer to the server; a nil *Tracer traces nothing and costs nothing.
//
// Spans carry only bounded, non-personal data: methods, routes, configured
// model and upstream names, status and reason codes, token counts and the
// gateway's request id. Never credentials, prompts, response text, user keys
// or display names; an operator who needs the user follows the request id
// into the audit trail.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.41.0"
)

// Options configure the tracer provider.
type Options struct {
	// Endpoint is the OTLP/HTTP base URL of the collector, e.g.
	// http://otel-collector:4318. Spans are posted to Endpoint + /v1/traces
	// (a URL that already ends in /v1/traces is used as is). http:// sends
	// in clear text; https:// verifies the collector's certificate with the
	// system roots. Required.
	Endpoint string
	// Headers are sent with every export (for example an API key of the
	// tracing backend). Nil: none. Values are never logged.
	Headers map[string]string
	// SampleRatio is the fraction of new traces recorded, 0 to 1. The zero
	// value records none. A request whose caller sent a sampled W3C
	// traceparent is always recorded (parent-based sampling), so a
	// caller's trace is never left with a hole.
	SampleRatio float64
	// ServiceName is the resource's service.name. Empty: "gatehouse".
	ServiceName string
	// Version is the resource's service.version. Empty: not set.
	Version string
	// Timeout bounds one export. Zero: 10s.
	Timeout time.Duration
	// Logger receives export failures (at most one line per
	// FailureLogInterval). Nil: discarded.
	Logger *slog.Logger
	// FailureLogInterval rate-limits export-failure logs. Zero: 1 minute.
	FailureLogInterval time.Duration
}

// NewTracerProvider builds a tracer provider that batches spans and exports
// them over OTLP/HTTP (protobuf, gzip). Nothing is dialled here: the first
// export happens when the first batch is full or 5 s after the first span.
//
// Export never blocks a request: spans wait in a bounded queue (2048) and are
// dropped when the collector cannot keep up or is down; failures are logged
// to Options.Logger, rate-limited.
//
// The caller owns the provider and must call Shutdown on exit: Shutdown
// exports every span that has ended, waits for that export (bounded by its
// context), and stops the provider; spans started after Shutdown are not
// recorded. ForceFlush exports without stopping.
//
// The OTLP exporter still honours the OTEL_EXPORTER_OTLP_CERTIFICATE,
// _CLIENT_CERTIFICATE and _CLIENT_KEY environment variables (paths); the
// endpoint, headers, timeout and compression given here override the other
// OTEL_EXPORTER_OTLP_* variables, and the sampler, resource and batch
// settings override OTEL_TRACES_SAMPLER, OTEL_RESOURCE_ATTRIBUTES,
// OTEL_SERVICE_NAME and OTEL_BSP_*.
func NewTracerProvider(ctx context.Context, o Options) (*sdktrace.TracerProvider, error) {
	endpoint, err := tracesURL(o.Endpoint)
	if err != nil {
		return nil, err
	}
	if o.ServiceName == "" {
		o.ServiceName = "gatehouse"
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.FailureLogInterval <= 0 {
		o.FailureLogInterval = time.Minute
	}
	headers := make(map[string]string, len(o.Headers))
	for k, v := range o.Headers {
		headers[k] = v
	}
	exp, err := otlptracehttp.New(ctx,
		otlptracehttp.WithEndpointURL(endpoint),
		otlptracehttp.WithHeaders(headers), // always set: overrides OTEL_EXPORTER_OTLP_HEADERS
		otlptracehttp.WithTimeout(o.Timeout),
		otlptracehttp.WithCompression(otlptracehttp.GzipCompression),
	)
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	attrs := []attribute.KeyValue{
		semconv.ServiceName(o.ServiceName),
		semconv.TelemetrySDKLanguageGo,
		semconv.TelemetrySDKName("opentelemetry"),
		semconv.TelemetrySDKVersion(sdk.Version()),
	}
	if o.Version != "" {
		attrs = append(attrs, semconv.ServiceVersion(o.Version))
	}
	res := resource.NewWithAttributes(semconv.SchemaURL, attrs...)
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ratio := o.SampleRatio
	if ratio < 0 || ratio != ratio { // negative or NaN
		ratio = 0
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
		// Explicit batch settings, so OTEL_BSP_* variables do not apply.
		sdktrace.WithBatcher(&loggingExporter{SpanExporter: exp, log: log, every: o.FailureLogInterval, endpoint: redactURL(endpoint)},
			sdktrace.WithMaxQueueSize(2048),
			sdktrace.WithMaxExportBatchSize(512),
			sdktrace.WithBatchTimeout(5*time.Second),
			sdktrace.WithExportTimeout(30*time.Second),
		),
	)
	return tp, nil
}

// tracesURL turns the configured base URL into the traces URL.
func tracesURL(raw string) (string, error) {
	if raw == "" {
		return "", errors.New("tracing: no OTLP endpoint configured")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("tracing: OTLP endpoint %q is not an absolute http(s) URL", redactURL(raw))
	}
	if u.User != nil {
		return "", errors.New("tracing: the OTLP endpoint must not carry credentials; use headers")
	}
	if !strings.HasSuffix(u.Path, "/v1/traces") {
		u.Path = strings.TrimRight(u.Path, "/") + "/v1/traces"
		u.RawPath = ""
	}
	return u.String(), nil
}

// redactURL drops userinfo and query from a URL for messages.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User = nil
	u.RawQuery = ""
	u.Fragment = ""
	return u.String()
}

// loggingExporter reports export failures to the injected logger instead of
// the OpenTelemetry global error handler (which writes unstructured lines
// to stderr). The batch processor does not retry a failed batch (the OTLP
// exporter already retried it), so the error is swallowed once logged.
type loggingExporter struct {
	sdktrace.SpanExporter
	log      *slog.Logger
	every    time.Duration
	endpoint string

	mu       sync.Mutex
	last     time.Time
	failures int // since the last log line
	dropped  int // spans in failed batches since the last log line
}

func (e *loggingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.SpanExporter.ExportSpans(ctx, spans)
	if err == nil {
		return nil
	}
	e.mu.Lock()
	e.failures++
	e.dropped += len(spans)
	now := time.Now()
	if !e.last.IsZero() && now.Sub(e.last) < e.every {
		e.mu.Unlock()
		return nil
	}
	failures, dropped := e.failures, e.dropped
	e.failures, e.dropped, e.last = 0, 0, now
	e.mu.Unlock()
	e.log.Warn("tracing: spans could not be exported to the OTLP collector; requests are unaffected",
		slog.String("endpoint", e.endpoint), slog.Int("failed_exports", failures), slog.Int("dropped_spans", dropped),
		slog.String("cause", err.Error()))
	return nil
}
