package telemetry

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	// Semantic conventions v1.41.0: the last release that carries the GenAI
	// attributes (gen_ai.*) in this module; from v1.42.0 they live in the
	// separate GenAI conventions. HTTP, server and error attributes are the
	// same (stable) names in every later release.
	semconv "go.opentelemetry.io/otel/semconv/v1.41.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/gatehouse-dev/gatehouse/internal/anthropic"
)

// ScopeName is the instrumentation scope of every span this package starts.
const ScopeName = "github.com/gatehouse-dev/gatehouse/internal/telemetry"

// Gateway-specific attributes (the gatehouse.* namespace).
const (
	AttrRequestID        = attribute.Key("gatehouse.request_id")        // the id returned in gatehouse-request-id and stored in the audit trail
	AttrReason           = attribute.Key("gatehouse.reason")            // closed reason code (docs/audit.md)
	AttrModel            = attribute.Key("gatehouse.model")             // configured model id the client asked for, or "other"
	AttrUpstream         = attribute.Key("gatehouse.upstream")          // configured upstream name
	AttrUpstreamProvider = attribute.Key("gatehouse.upstream.provider") // foundry | anthropic
	AttrInterrupted      = attribute.Key("gatehouse.interrupted")       // the response was cut before its end
	AttrAttempt          = attribute.Key("gatehouse.attempt")           // "name: 529" of a failed attempt before failover

	// EventAttemptFailed is recorded on the upstream span for every upstream
	// that failed before the one that served (failover).
	EventAttemptFailed = "gatehouse.upstream.attempt_failed"
)

// GenAI operation names (gen_ai.operation.name).
const (
	// OperationChat is the semantic conventions' well-known value for a
	// Messages call.
	OperationChat = "chat"
	// OperationCountTokens is the gateway's name for the Anthropic
	// count_tokens call, which has no well-known value.
	OperationCountTokens = "count_tokens"
)

// providerAnthropic is gen_ai.provider.name for every upstream. Microsoft
// Foundry serves Claude through Anthropic's own Messages API
// (<resource>.services.ai.azure.com/anthropic/v1/messages), so the telemetry
// flavour is Anthropic's; "azure.ai.inference" names the Azure AI Model
// Inference API, which the gateway does not speak. The semantic conventions
// (v1.41.0, gen_ai.provider.name) say the value is the instrumentation's
// best knowledge of the API flavour and that server.address identifies the
// actual system; gatehouse.upstream.provider tells Foundry and Anthropic
// apart.
var providerAnthropic = semconv.GenAIProviderNameAnthropic

const (
	pathMessages    = "/v1/messages"
	pathCountTokens = "/v1/messages/count_tokens"
	pathModels      = "/v1/models"
	maxAttrLen      = 256
)

// Upstream describes a configured upstream for client spans.
type Upstream struct {
	Name string
	// BaseURL gives server.address and server.port, e.g.
	// https://x.services.ai.azure.com/anthropic.
	BaseURL string
	// Provider is the gateway's provider kind: foundry or anthropic.
	Provider string
}

// Tracer starts the gateway's spans. A nil *Tracer is valid and does
// nothing: its methods return the context unchanged and spans whose End is a
// no-op, without allocating.
type Tracer struct {
	tracer    trace.Tracer
	prop      propagation.TraceContext
	upstreams map[string][]attribute.KeyValue
}

// NewTracer returns a Tracer on tp, which is usually the
// *sdktrace.TracerProvider from NewTracerProvider. A nil tp returns nil.
// upstreams are the configured upstreams (for server.address and port).
func NewTracer(tp trace.TracerProvider, upstreams ...Upstream) *Tracer {
	if tp == nil {
		return nil
	}
	if p, ok := tp.(*sdktrace.TracerProvider); ok && p == nil {
		return nil
	}
	t := &Tracer{
		tracer:    tp.Tracer(ScopeName, trace.WithSchemaURL(semconv.SchemaURL)),
		upstreams: make(map[string][]attribute.KeyValue, len(upstreams)),
	}
	for _, u := range upstreams {
		attrs := []attribute.KeyValue{AttrUpstream.String(u.Name)}
		if u.Provider != "" {
			attrs = append(attrs, AttrUpstreamProvider.String(u.Provider))
		}
		if pu, err := url.Parse(u.BaseURL); err == nil && pu.Hostname() != "" {
			attrs = append(attrs, semconv.ServerAddress(pu.Hostname()))
			port := 443
			if pu.Scheme == "http" {
				port = 80
			}
			if p, err := strconv.Atoi(pu.Port()); err == nil {
				port = p
			}
			attrs = append(attrs, semconv.ServerPort(port))
		}
		t.upstreams[u.Name] = attrs
	}
	return t
}

// RequestSpan is the server span of one request. The zero value is a no-op.
type RequestSpan struct {
	span trace.Span
}

// StartRequest starts the server span of an inbound request, continuing the
// caller's trace when it sent a W3C traceparent. The returned context
// carries the span: pass it down (r.WithContext) so the upstream span and
// log records join the trace. End the span exactly once.
//
// Attributes: http.request.method, http.route and url.path (known routes),
// url.scheme, server.address/port (from Host), network.protocol.version,
// user_agent.original (truncated) and gatehouse.request_id. Request headers
// other than traceparent/tracestate and User-Agent are never read.
func (t *Tracer) StartRequest(r *http.Request, requestID string) (context.Context, RequestSpan) {
	if t == nil {
		return r.Context(), RequestSpan{}
	}
	ctx := t.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	method, known := methodAttr(r.Method)
	route := routeOf(r.URL.Path)
	ctx, span := t.tracer.Start(ctx, spanName(r.Method, known, route), trace.WithSpanKind(trace.SpanKindServer))
	if !span.IsRecording() {
		return ctx, RequestSpan{span: span}
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	attrs := make([]attribute.KeyValue, 0, 10)
	attrs = append(attrs, method, semconv.URLScheme(scheme), semconv.URLPath(clean(r.URL.Path)), AttrRequestID.String(clean(requestID)))
	if route != "" {
		attrs = append(attrs, semconv.HTTPRoute(route))
	}
	if host, port := splitHost(r.Host); host != "" {
		attrs = append(attrs, semconv.ServerAddress(clean(host)))
		if port > 0 {
			attrs = append(attrs, semconv.ServerPort(port))
		}
	}
	if ua := r.Header.Get("User-Agent"); ua != "" {
		attrs = append(attrs, semconv.UserAgentOriginal(clean(ua)))
	}
	switch {
	case r.ProtoMajor == 2:
		attrs = append(attrs, semconv.NetworkProtocolVersion("2"))
	case r.ProtoMajor == 1 && r.ProtoMinor == 1:
		attrs = append(attrs, semconv.NetworkProtocolVersion("1.1"))
	}
	span.SetAttributes(attrs...)
	return ctx, RequestSpan{span: span}
}

// RequestOutcome is how a request ended.
type RequestOutcome struct {
	// Status is the HTTP status answered; 0 if none was written.
	Status int
	// ErrorType is the Anthropic error type of a refusal or failure
	// (becomes error.type); empty for success.
	ErrorType string
	// Reason is the gateway's closed reason code (gatehouse.reason).
	Reason string
	// Model is the configured model id the client asked for, or "other";
	// never an arbitrary client string.
	Model string
}

// End records the outcome and ends the span. 5xx marks the span as an
// error; 4xx does not (HTTP semantic conventions for server spans) but sets
// error.type. The user is deliberately absent: see docs/observability.md.
func (s RequestSpan) End(o RequestOutcome) {
	if s.span == nil {
		return
	}
	if s.span.IsRecording() {
		attrs := make([]attribute.KeyValue, 0, 4)
		if o.Status > 0 {
			attrs = append(attrs, semconv.HTTPResponseStatusCode(o.Status))
		}
		if o.Reason != "" {
			attrs = append(attrs, AttrReason.String(clean(o.Reason)))
		}
		if o.Model != "" {
			attrs = append(attrs, AttrModel.String(clean(o.Model)))
		}
		if o.Status >= 400 {
			attrs = append(attrs, semconv.ErrorTypeKey.String(errorType(clean(o.ErrorType), o.Status)))
		}
		s.span.SetAttributes(attrs...)
		if o.Status >= 500 {
			s.span.SetStatus(codes.Error, clean(o.Reason))
		}
	}
	s.span.End()
}

// SpanContext returns the span's identity (for tests and response headers).
func (s RequestSpan) SpanContext() trace.SpanContext {
	if s.span == nil {
		return trace.SpanContext{}
	}
	return s.span.SpanContext()
}

// UpstreamCall describes the upstream call about to be made.
type UpstreamCall struct {
	// Route is the gateway path being forwarded: /v1/messages (operation
	// chat) or /v1/messages/count_tokens (operation count_tokens).
	Route string
	// Model is the model id sent upstream (gen_ai.request.model): the
	// configured upstream_model, or the model id when it has none.
	Model string
	// Upstream is the configured name of the upstream tried first.
	Upstream string
	// MaxTokens is the request's max_tokens; 0: not set.
	MaxTokens int64
	// Stream reports whether the client asked for a stream.
	Stream bool
}

// UpstreamSpan is the GenAI client span of one upstream call. The zero value
// is a no-op.
type UpstreamSpan struct {
	span     trace.Span
	t        *Tracer
	op       string
	model    string
	upstream string
	stream   bool
	start    time.Time
}

// StartUpstream starts the client span of the call to the model provider,
// named "{gen_ai.operation.name} {gen_ai.request.model}" as the GenAI
// semantic conventions (v1.41.0) ask, with gen_ai.operation.name,
// gen_ai.provider.name ("anthropic"), gen_ai.request.model,
// gen_ai.request.max_tokens, gen_ai.request.stream, server.address/port and
// gatehouse.upstream. Call it just before forwarding; End it once the
// response (or stream) is finished.
func (t *Tracer) StartUpstream(ctx context.Context, c UpstreamCall) (context.Context, UpstreamSpan) {
	if t == nil {
		return ctx, UpstreamSpan{}
	}
	op := OperationChat
	if c.Route == pathCountTokens {
		op = OperationCountTokens
	}
	model := clean(c.Model)
	ctx, span := t.tracer.Start(ctx, op+" "+model, trace.WithSpanKind(trace.SpanKindClient))
	us := UpstreamSpan{span: span}
	if !span.IsRecording() {
		return ctx, us
	}
	us.t, us.op, us.model, us.upstream, us.stream, us.start = t, op, model, c.Upstream, c.Stream, time.Now()
	attrs := make([]attribute.KeyValue, 0, 12)
	attrs = append(attrs,
		semconv.GenAIOperationNameKey.String(op),
		providerAnthropic,
		semconv.GenAIRequestModel(model),
		semconv.GenAIRequestStream(c.Stream),
	)
	if c.MaxTokens > 0 {
		attrs = append(attrs, semconv.GenAIRequestMaxTokens(int(c.MaxTokens)))
	}
	attrs = append(attrs, t.upstreamAttrs(c.Upstream)...)
	span.SetAttributes(attrs...)
	return ctx, us
}

func (t *Tracer) upstreamAttrs(name string) []attribute.KeyValue {
	if a, ok := t.upstreams[name]; ok {
		return a
	}
	if name == "" {
		return nil
	}
	return []attribute.KeyValue{AttrUpstream.String(clean(name))}
}

// UpstreamResult is what the upstream call produced.
type UpstreamResult struct {
	// Status is the HTTP status relayed to the client.
	Status int
	// ErrorType is the Anthropic error type of a failure; empty on success.
	ErrorType string
	// Reason is the gateway's reason code (upstream_timeout, client_closed…).
	Reason string
	// Usage becomes gen_ai.usage.*; input_tokens includes cache reads and
	// writes, as the conventions ask.
	Usage anthropic.Usage
	// Upstream and Model name the upstream and model that served, when
	// failover moved the call; empty: as started.
	Upstream, Model string
	// Failed lists the attempts that failed before ("name: 529"), in order.
	Failed []string
	// FirstByte is when the first response byte reached the client; for a
	// stream it gives gen_ai.response.time_to_first_chunk.
	FirstByte time.Time
	// Interrupted reports a response cut before its end.
	Interrupted bool
	// ResponseID, ResponseModel and FinishReason come from the upstream's
	// message (id, model, stop_reason) when known; empty: not set.
	ResponseID, ResponseModel, FinishReason string
}

// End records the result and ends the span. A status of 400 or more, or an
// upstream_* reason (a stream that broke after 200), marks the span as an
// error with error.type set to the Anthropic error type (or the reason).
func (s UpstreamSpan) End(r UpstreamResult) {
	if s.span == nil {
		return
	}
	if s.t == nil { // not recording
		s.span.End()
		return
	}
	attrs := make([]attribute.KeyValue, 0, 16)
	if r.Upstream != "" && r.Upstream != s.upstream {
		attrs = append(attrs, s.t.upstreamAttrs(r.Upstream)...)
	}
	if m := clean(r.Model); m != "" && m != s.model {
		s.span.SetName(s.op + " " + m)
		attrs = append(attrs, semconv.GenAIRequestModel(m))
	}
	if r.Status > 0 {
		attrs = append(attrs, semconv.HTTPResponseStatusCode(r.Status))
	}
	if r.Usage != (anthropic.Usage{}) {
		attrs = append(attrs,
			semconv.GenAIUsageInputTokens(int(r.Usage.TotalInput())),
			semconv.GenAIUsageOutputTokens(int(r.Usage.OutputTokens)),
			semconv.GenAIUsageCacheReadInputTokens(int(r.Usage.CacheReadInputTokens)),
			semconv.GenAIUsageCacheCreationInputTokens(int(r.Usage.CacheCreationInputTokens)),
		)
	}
	if r.ResponseID != "" {
		attrs = append(attrs, semconv.GenAIResponseID(clean(r.ResponseID)))
	}
	if r.ResponseModel != "" {
		attrs = append(attrs, semconv.GenAIResponseModel(clean(r.ResponseModel)))
	}
	if r.FinishReason != "" {
		attrs = append(attrs, semconv.GenAIResponseFinishReasons(clean(r.FinishReason)))
	}
	if s.stream && !r.FirstByte.IsZero() && r.FirstByte.After(s.start) {
		attrs = append(attrs, semconv.GenAIResponseTimeToFirstChunk(r.FirstByte.Sub(s.start).Seconds()))
	}
	if r.Reason != "" {
		attrs = append(attrs, AttrReason.String(clean(r.Reason)))
	}
	if r.Interrupted {
		attrs = append(attrs, AttrInterrupted.Bool(true))
	}
	failed := r.Status >= 400 || strings.HasPrefix(r.Reason, "upstream_")
	if failed {
		et := r.ErrorType
		if et == "" && r.Reason != "" {
			et = r.Reason
		}
		attrs = append(attrs, semconv.ErrorTypeKey.String(errorType(clean(et), r.Status)))
	}
	s.span.SetAttributes(attrs...)
	for _, f := range r.Failed {
		s.span.AddEvent(EventAttemptFailed, trace.WithAttributes(AttrAttempt.String(clean(f))))
	}
	if failed {
		desc := r.Reason
		if desc == "" {
			desc = r.ErrorType
		}
		s.span.SetStatus(codes.Error, clean(desc))
	}
	s.span.End()
}

// SpanContext returns the span's identity (for tests).
func (s UpstreamSpan) SpanContext() trace.SpanContext {
	if s.span == nil {
		return trace.SpanContext{}
	}
	return s.span.SpanContext()
}

func errorType(t string, status int) string {
	if t != "" {
		return t
	}
	if status > 0 {
		return strconv.Itoa(status)
	}
	return "_OTHER"
}

func methodAttr(m string) (attribute.KeyValue, bool) {
	switch m {
	case http.MethodPost:
		return semconv.HTTPRequestMethodPost, true
	case http.MethodGet:
		return semconv.HTTPRequestMethodGet, true
	case http.MethodHead:
		return semconv.HTTPRequestMethodHead, true
	case http.MethodPut:
		return semconv.HTTPRequestMethodPut, true
	case http.MethodDelete:
		return semconv.HTTPRequestMethodDelete, true
	case http.MethodPatch:
		return semconv.HTTPRequestMethodPatch, true
	case http.MethodOptions:
		return semconv.HTTPRequestMethodOptions, true
	}
	return semconv.HTTPRequestMethodOther, false
}

// routeOf returns the path when it is one of the gateway's routes, so span
// names stay low-cardinality whatever path a client sends.
func routeOf(p string) string {
	switch p {
	case pathMessages, pathCountTokens, pathModels:
		return p
	}
	return ""
}

func spanName(method string, known bool, route string) string {
	switch {
	case method == http.MethodPost && route == pathMessages:
		return "POST /v1/messages"
	case method == http.MethodPost && route == pathCountTokens:
		return "POST /v1/messages/count_tokens"
	case method == http.MethodGet && route == pathModels:
		return "GET /v1/models"
	case !known:
		return "HTTP"
	case route == "":
		return method
	}
	return method + " " + route
}

func splitHost(hostport string) (string, int) {
	if hostport == "" {
		return "", 0
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return strings.Trim(hostport, "[]"), 0
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return host, 0
	}
	return host, p
}

// clean bounds an untrusted string to 256 bytes of valid UTF-8 without
// control characters before it becomes an attribute.
func clean(s string) string {
	if len(s) > maxAttrLen {
		s = s[:maxAttrLen]
	}
	if !utf8.ValidString(s) { // OTLP rejects a batch holding invalid UTF-8
		s = strings.ToValidUTF8(s, "")
	}
	if strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) < 0 {
		return s
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}
