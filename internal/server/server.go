// Package server is the gateway's HTTP surface: the routes of the Anthropic
// API it serves (contract §2.1), the order in which a request is
// authenticated, checked, audited and forwarded, and the Anthropic-shaped
// error for every refusal.
//
// It holds no business logic of its own: identity, admission, audit storage
// and forwarding are injected through the small interfaces below, which this
// package owns.
package server

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/anthropic"
	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/proxy"
	"github.com/gatehouse-dev/gatehouse/internal/telemetry"
)

// Denial is a refusal the gateway answers itself.
type Denial struct {
	Status    int
	ErrorType string      // Anthropic error type; default from Status
	Reason    string      // closed, documented reason code, recorded in the audit trail
	Message   string      // for the user: what is wrong and what to do; no internals
	Header    http.Header // extra response headers (retry-after, WWW-Authenticate, ...)
	Cause     error       // for the operator log only
	Source    string      // "auth" for identity refusals (counted as authentication failures)
	Policy    string      // the policy that refused, for the audit record
}

// Authenticator verifies the caller. With a denial it may return the
// verified identity that was refused (e.g. revoked) so the audit record can
// name it; that identity is never served.
type Authenticator interface {
	Authenticate(ctx context.Context, r *http.Request) (identity.Principal, *Denial)
	Ready(ctx context.Context) error
}

// Auditor records requests (audit.Recorder satisfies it).
type Auditor interface {
	Begin(ctx context.Context, rec *audit.Record) error
	Finish(rec *audit.Record)
}

// Forwarder sends an admitted request upstream and writes the response
// head; the returned exchange relays the body (proxy.Proxy satisfies it).
type Forwarder interface {
	Start(w http.ResponseWriter, r *http.Request, out proxy.Outbound, writeErr proxy.ErrorWriter) *proxy.Exchange
}

// AdmitRequest is what admission needs to know about a request.
type AdmitRequest struct {
	Model     string
	Upstream  string
	BodyBytes int64
	MaxTokens int64
	Stream    bool
}

// Admission is an admitted request's hold on its limits.
type Admission interface {
	// Headers are added to the response (anthropic-ratelimit-*).
	Headers() http.Header
	// Policy names the policy that admitted the request.
	Policy() string
	// Groups are the user's groups the policies govern (for reports).
	Groups() []string
	// ContentCapture is the policy's capture mode; "": the gateway's.
	ContentCapture() string
	// Settle records the real usage, releases the hold and returns the cost
	// in USD. It is called exactly once.
	Settle(ctx context.Context, u anthropic.Usage) float64
}

// Admitter decides who may use which model and how much.
type Admitter interface {
	Admit(ctx context.Context, p identity.Principal, req AdmitRequest) (Admission, *Denial)
	AllowedModels(p identity.Principal, all []string) []string
}

// Capturer stores request and response content for the audit trail.
type Capturer interface {
	// Mode is the gateway-wide mode: off | metadata | redacted | full.
	Mode() string
	// Capture stores content at mode (a policy's override or Mode()).
	Capture(ctx context.Context, mode, requestID string, t time.Time, userKey string, request, response []byte) error
}

// Observer receives what the gateway measures (metrics.Metrics satisfies
// it). Labels it receives are bounded by configuration: route, configured
// model id (or "other"), upstream name, reason codes.
type Observer interface {
	Request(route string, status int, model, upstream string, latency, ttfb, overhead time.Duration, u anthropic.Usage)
	UpstreamError(upstream, class string)
	AuthFailure(reason string)
	InFlight(delta int)
}

type nopObserver struct{}

func (nopObserver) Request(string, int, string, string, time.Duration, time.Duration, time.Duration, anthropic.Usage) {
}
func (nopObserver) UpstreamError(string, string) {}
func (nopObserver) AuthFailure(string)           {}
func (nopObserver) InFlight(int)                 {}

// Model is one entry of /v1/models and of the routing table.
type Model struct {
	ID            string
	DisplayName   string
	Description   string
	CreatedAt     time.Time
	FamilyDefault bool
	Upstream      string // name of the upstream that serves it (first route)
	UpstreamModel string
}

// Options configure the handler. Auth, Audit and Forward are required.
type Options struct {
	Auth    Authenticator
	Audit   Auditor
	Forward Forwarder
	Models  []Model
	// MaxBodyBytes caps request bodies; default 32 MiB.
	MaxBodyBytes int64
	// MaxRequestDuration is the hard ceiling on one request; 0 = none.
	MaxRequestDuration time.Duration
	Logger             *slog.Logger
	Now                func() time.Time
	// Ready reports extra readiness conditions (audit store, ...).
	Ready func(ctx context.Context) error
	// Capture stores prompts and responses per audit.content.capture; nil
	// or mode off: nothing is captured.
	Capture Capturer
	// MaxCaptureBytes bounds captured response content. Default 4 MiB.
	MaxCaptureBytes int
	// Instance names this replica in audit records (crash recovery closes
	// only its own open records).
	Instance string
	// Admit decides model access, rate limits and budgets; nil: everyone
	// may use every configured model without limits.
	Admit Admitter
	// Observer receives measurements; nil: none.
	Observer Observer
	// Metrics, when set, is served at /metrics.
	Metrics http.Handler
	// Tracer traces inference requests; nil: no tracing, at no cost.
	Tracer *telemetry.Tracer
}

// Server is the gateway handler.
type Server struct {
	opts   Options
	log    *slog.Logger
	now    func() time.Time
	models map[string]*Model
	obs    Observer
}

// New builds the handler.
func New(opts Options) *Server {
	if opts.MaxBodyBytes == 0 {
		opts.MaxBodyBytes = 32 << 20
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	if opts.MaxCaptureBytes == 0 {
		opts.MaxCaptureBytes = 4 << 20
	}
	s := &Server{opts: opts, log: log, now: opts.Now, models: map[string]*Model{}, obs: opts.Observer}
	for i := range opts.Models {
		s.models[opts.Models[i].ID] = &opts.Models[i]
	}
	return s
}

// ServeHTTP routes by exact path. The query string is ignored (clients send
// ?beta=true); paths are never cleaned or joined, so /v1/messages/../x is
// simply unknown.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rid := newRequestID()
	w.Header().Set("gatehouse-request-id", rid)
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("panic serving request", slog.String("request_id", rid), slog.Any("panic", v))
			anthropic.WriteError(w, http.StatusInternalServerError, anthropic.APIError, "The gateway hit an internal error. Please retry and quote the request id if it persists.", rid)
		}
	}()
	if r.Header.Get("Upgrade") != "" {
		anthropic.WriteError(w, http.StatusBadRequest, anthropic.InvalidRequestError, "Protocol upgrades are not supported.", rid)
		return
	}
	switch r.URL.Path {
	case "/v1/messages", "/v1/messages/count_tokens":
		if r.Method != http.MethodPost {
			s.methodNotAllowed(w, rid, http.MethodPost)
			return
		}
		if x := s.inference(w, r, rid); x != nil {
			s.relay(x)
		}
	case "/v1/models":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			s.methodNotAllowed(w, rid, http.MethodGet)
			return
		}
		s.listModels(w, r, rid)
	case "/api/hello":
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
	case "/healthz":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	case "/readyz":
		s.readyz(w, r)
	case "/metrics":
		if s.opts.Metrics == nil {
			anthropic.WriteError(w, http.StatusNotFound, anthropic.NotFoundError, "Metrics are served on the metrics listener.", rid)
			return
		}
		s.opts.Metrics.ServeHTTP(w, r)
	default:
		anthropic.WriteError(w, http.StatusNotFound, anthropic.NotFoundError, fmt.Sprintf("%s %s is not an endpoint of this gateway. It serves POST /v1/messages, POST /v1/messages/count_tokens and GET /v1/models.", r.Method, truncate(r.URL.Path, 200)), rid)
	}
}

func (s *Server) methodNotAllowed(w http.ResponseWriter, rid, allow string) {
	w.Header().Set("Allow", allow)
	anthropic.WriteError(w, http.StatusMethodNotAllowed, anthropic.InvalidRequestError, "This endpoint only accepts "+allow+".", rid)
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	var problems []string
	if err := s.opts.Auth.Ready(ctx); err != nil {
		problems = append(problems, "identity: "+err.Error())
	}
	if s.opts.Ready != nil {
		if err := s.opts.Ready(ctx); err != nil {
			problems = append(problems, err.Error())
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if len(problems) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "not ready\n"+strings.Join(problems, "\n")+"\n")
		return
	}
	io.WriteString(w, "ready\n")
}

// newRecord starts the audit record of a request from what the client sent.
func (s *Server) newRecord(r *http.Request, rid string, start time.Time) *audit.Record {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return &audit.Record{
		RequestID: rid,
		Time:      start.UTC(),
		Method:    r.Method,
		Path:      r.URL.Path,
		UserAgent: clean(r.Header.Get("User-Agent"), 256),
		SessionID: clean(r.Header.Get("X-Claude-Code-Session-Id"), 128),
		ClientIP:  host,
		Instance:  s.opts.Instance,
	}
}

func fillUser(rec *audit.Record, p *identity.Principal) {
	rec.UserKey = p.Key
	rec.TenantID = p.TenantID
	rec.ObjectID = p.ObjectID
	rec.Subject = p.Subject
	rec.Issuer = p.Issuer
	rec.UserName = clean(p.Display(), 256)
}

// deny answers a refusal, records it durably and logs it.
func (s *Server) deny(w http.ResponseWriter, r *http.Request, rec *audit.Record, d *Denial, start time.Time) {
	if d.ErrorType == "" {
		d.ErrorType = anthropic.TypeForStatus(d.Status)
	}
	for k, vv := range d.Header {
		w.Header()[k] = vv
	}
	rec.State = audit.StateDenied
	if d.Policy != "" {
		rec.Policy = d.Policy
	}
	rec.Status = d.Status
	rec.ErrorType = d.ErrorType
	rec.Reason = d.Reason
	rec.LatencyMS = ms(s.now().Sub(start))
	if err := s.opts.Audit.Begin(r.Context(), rec); err != nil {
		s.log.Error("audit record of a denial could not be written", slog.String("request_id", rec.RequestID), slog.String("cause", err.Error()))
	}
	anthropic.WriteError(w, d.Status, d.ErrorType, d.Message, rec.RequestID)
	if d.Source == "auth" {
		s.obs.AuthFailure(d.Reason)
	}
	s.obs.Request(routeLabel(rec.Path), d.Status, s.modelLabel(rec.Model), "", s.now().Sub(start), 0, 0, anthropic.Usage{})
	attrs := []any{slog.String("request_id", rec.RequestID), slog.String("path", rec.Path), slog.Int("status", d.Status),
		slog.String("reason", d.Reason), slog.String("user", rec.UserKey), slog.String("model", rec.Model)}
	if d.Cause != nil {
		attrs = append(attrs, slog.String("cause", d.Cause.Error()))
	}
	s.log.InfoContext(r.Context(), "request denied", attrs...)
}

// inference admits the request and starts it upstream. It returns the
// exchange whose body ServeHTTP then relays, from its own shallow frame (a
// stream's goroutine keeps its stack for the stream's life; see
// proxy.Exchange), or nil when the request was refused and recorded.
func (s *Server) inference(w http.ResponseWriter, r *http.Request, rid string) *exchange {
	x := &exchange{rid: rid, start: s.now()}
	ctx, span := s.opts.Tracer.StartRequest(r, rid) // joins the caller's traceparent
	x.span = span
	if s.opts.MaxRequestDuration > 0 {
		ctx, x.cancel = context.WithTimeout(ctx, s.opts.MaxRequestDuration)
	}
	if ctx != r.Context() {
		r = r.WithContext(ctx)
	}
	x.rec = s.newRecord(r, rid, x.start)

	x.a = s.admit(w, r, x.rec, rid, x.start)
	if x.a == nil {
		s.end(x) // refused and recorded
		return nil
	}
	s.forward(w, x)
	return x
}

// exchange is one inference request from admission to its final record.
type exchange struct {
	rid       string
	start     time.Time
	forwardAt time.Time
	span      telemetry.RequestSpan
	up        telemetry.UpstreamSpan
	cancel    context.CancelFunc // the MaxRequestDuration deadline; nil: none
	rec       *audit.Record
	a         *admitted
	capture   string // content capture mode; "": none
	px        *proxy.Exchange
	inFlight  bool // counted in the in-flight gauge (forwarded)
}

// end leaves the in-flight gauge, closes the request span and releases the
// request deadline, also when the relay panicked. Every exit sets
// rec.Status first (deny, finish, audit refusal).
func (s *Server) end(x *exchange) {
	if x.inFlight {
		s.obs.InFlight(-1)
	}
	x.span.End(telemetry.RequestOutcome{Status: x.rec.Status, ErrorType: x.rec.ErrorType, Reason: x.rec.Reason, Model: s.modelLabel(x.rec.Model)})
	if x.cancel != nil {
		x.cancel()
	}
}

// relay copies the upstream's body to the client, then completes the
// request. It is called from ServeHTTP so that what a stream keeps on its
// goroutine's stack while it waits for the upstream is a few small frames.
func (s *Server) relay(x *exchange) {
	defer s.end(x) // also if the relay panics
	s.complete(x, x.px.Relay())
}

// admitted is a request that passed every check and whose begin record is
// durable: what forward needs. Keeping the checks in their own function
// keeps their temporaries off the stack that a stream then holds for its
// whole life.
type admitted struct {
	r    *http.Request      // carries the request context with the principal
	p    identity.Principal // verified; nothing after authenticate changes it
	body []byte
	req  anthropic.Request
	m    *Model
	adm  Admission
}

// admit authenticates, reads and checks the body, applies the model list and
// the policy, and writes the begin record. On any refusal it answers the
// client, records the denial and returns nil.
//
// Each step is its own function and keeps its state in *admitted, on the
// heap: a request's goroutine then never needs more than Go's smallest
// grown stack (8 KiB), which it keeps for a stream's whole life (see
// proxy.Exchange and docs/benchmarks.md).
func (s *Server) admit(w http.ResponseWriter, r *http.Request, rec *audit.Record, rid string, start time.Time) *admitted {
	a := &admitted{r: r}
	d := s.authenticate(a, rec)
	if d == nil {
		d = s.readBody(w, a)
	}
	if d == nil {
		d = s.route(a, rec)
	}
	if d == nil {
		d = s.checkLimits(w, a, rec)
	}
	if d != nil {
		s.deny(w, a.r, rec, d, start)
		return nil
	}
	if !s.begin(w, a, rec, rid) {
		return nil
	}
	return a
}

//go:noinline
func (s *Server) authenticate(a *admitted, rec *audit.Record) *Denial {
	var denial *Denial
	a.p, denial = s.opts.Auth.Authenticate(a.r.Context(), a.r)
	if denial != nil {
		if a.p.Key != "" { // a verified but refused user (revoked) is named in the record
			fillUser(rec, &a.p)
		}
		return denial
	}
	fillUser(rec, &a.p)
	// The client's credential is verified and never forwarded (the
	// upstream layer sends its own): drop it now rather than keep the
	// token in memory for the rest of a long stream.
	a.r.Header.Del("Authorization")
	a.r.Header.Del("X-Api-Key")
	a.r = a.r.WithContext(identity.NewContext(a.r.Context(), &a.p))
	return nil
}

//go:noinline
func (s *Server) readBody(w http.ResponseWriter, a *admitted) *Denial {
	r := a.r
	if r.ContentLength > s.opts.MaxBodyBytes {
		return tooLarge(s.opts.MaxBodyBytes)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return tooLarge(s.opts.MaxBodyBytes)
		}
		return &Denial{Status: http.StatusBadRequest, Reason: "body_read_failed", Message: "The request body could not be read completely.", Cause: err}
	}
	a.body = body
	return nil
}

// route parses what the gateway needs of the body and finds the model.
//
//go:noinline
func (s *Server) route(a *admitted, rec *audit.Record) *Denial {
	req, err := anthropic.PeekRequest(a.body)
	if err != nil {
		return &Denial{Status: http.StatusBadRequest, Reason: "invalid_body", Message: err.Error() + "."}
	}
	a.req = req
	rec.Model, rec.Stream = clean(req.Model, 128), req.Stream
	if req.Model == "" {
		return &Denial{Status: http.StatusBadRequest, Reason: "missing_model", Message: "model: field required."}
	}
	m, ok := s.models[req.Model]
	if !ok {
		return &Denial{Status: http.StatusNotFound, Reason: "unknown_model",
			Message: fmt.Sprintf("model: %s is not offered by this gateway. Available models: %s.", truncate(req.Model, 128), strings.Join(s.modelIDs(), ", "))}
	}
	a.m = m
	rec.Upstream, rec.UpstreamModel = m.Upstream, m.UpstreamModel
	return nil
}

// checkLimits applies the policy: model access, rate limits, budgets.
//
//go:noinline
func (s *Server) checkLimits(w http.ResponseWriter, a *admitted, rec *audit.Record) *Denial {
	if s.opts.Admit == nil {
		return nil
	}
	m := a.m
	if a.r.URL.Path == "/v1/messages/count_tokens" {
		// Counting tokens spends nothing: check model access only, so it
		// uses no rate limit, budget or stream slot.
		if len(s.opts.Admit.AllowedModels(a.p, []string{m.ID})) == 0 {
			return &Denial{Status: http.StatusForbidden, ErrorType: anthropic.PermissionError, Reason: "limit_model",
				Message: fmt.Sprintf("model: %s is not allowed for you by the gateway's policy.", m.ID)}
		}
		return nil
	}
	adm, d := s.opts.Admit.Admit(a.r.Context(), a.p, AdmitRequest{Model: m.ID, Upstream: m.Upstream, BodyBytes: int64(len(a.body)), MaxTokens: a.req.MaxTokens, Stream: a.req.Stream})
	if d != nil {
		return d
	}
	a.adm = adm
	for k, vv := range adm.Headers() {
		w.Header()[k] = vv
	}
	rec.Policy, rec.Groups = adm.Policy(), adm.Groups()
	return nil
}

// begin writes the begin record; without it the request is refused.
//
//go:noinline
func (s *Server) begin(w http.ResponseWriter, a *admitted, rec *audit.Record, rid string) bool {
	ctx := a.r.Context()
	rec.State = audit.StateBegun
	err := s.opts.Audit.Begin(ctx, rec)
	if err == nil {
		return true
	}
	if a.adm != nil {
		a.adm.Settle(context.WithoutCancel(ctx), anthropic.Usage{})
	}
	rec.Status, rec.ErrorType, rec.Reason = http.StatusServiceUnavailable, anthropic.APIError, "audit_unavailable" // Begin kept its own copy
	s.log.ErrorContext(ctx, "audit store unavailable: refusing request", slog.String("request_id", rid), slog.String("cause", err.Error()))
	anthropic.WriteError(w, http.StatusServiceUnavailable, anthropic.APIError, "The gateway cannot record requests right now, so it is not accepting them. Please retry shortly.", rid)
	return false
}

// forward sends an admitted request upstream and writes the response head.
func (s *Server) forward(w http.ResponseWriter, x *exchange) {
	a, rec := x.a, x.rec
	r, p, req, m, adm := a.r, a.p, a.req, a.m, a.adm
	ctx := r.Context()
	s.obs.InFlight(1)
	x.inFlight = true
	x.forwardAt = s.now()
	affinity := rec.SessionID
	if affinity == "" {
		affinity = p.Key
	}
	out := proxy.Outbound{Path: r.URL.Path, Header: r.Header, Body: a.body, Request: req, Affinity: affinity}
	if s.opts.Capture != nil {
		mode := s.opts.Capture.Mode()
		if adm != nil && adm.ContentCapture() != "" {
			mode = adm.ContentCapture()
		}
		if mode != "off" {
			x.capture = mode
		}
	}
	if x.capture != "" {
		out.CaptureContent = s.opts.MaxCaptureBytes
	}
	upstreamModel := m.UpstreamModel
	if upstreamModel == "" {
		upstreamModel = m.ID
	}
	uctx, up := s.opts.Tracer.StartUpstream(ctx, telemetry.UpstreamCall{
		Route: r.URL.Path, Model: upstreamModel, Upstream: m.Upstream, MaxTokens: req.MaxTokens, Stream: req.Stream})
	x.up = up
	fr := r
	if uctx != ctx {
		fr = r.WithContext(uctx)
	}
	rid := x.rid
	x.px = s.opts.Forward.Start(w, fr, out, func(w http.ResponseWriter, status int, errType, msg string) {
		anthropic.WriteError(w, status, errType, msg, rid)
	})
	if x.capture == "" {
		a.body = nil // only content capture needs the request body after this
	}
}

// complete records what the relay ended with: the upstream span, usage
// settlement, the final audit record, captured content and metrics.
func (s *Server) complete(x *exchange, res *proxy.Result) {
	a, rec := x.a, x.rec
	ctx := a.r.Context()
	x.up.End(telemetry.UpstreamResult{
		Status: res.Status, ErrorType: res.ErrorType, Reason: res.Reason, Usage: res.Usage,
		Upstream: res.Served.Upstream, Model: res.Served.UpstreamModel, Failed: res.Served.Failed,
		FirstByte: res.FirstByte, Interrupted: res.Interrupted,
	})
	end := s.now()
	if a.adm != nil {
		rec.CostUSD = a.adm.Settle(context.WithoutCancel(ctx), res.Usage)
	}
	s.finish(ctx, rec, res, x.start, end)
	if x.capture != "" {
		if err := s.opts.Capture.Capture(context.WithoutCancel(ctx), x.capture, rec.RequestID, rec.Time, rec.UserKey, a.body, res.Captured); err != nil {
			s.log.Error("audit content capture failed", slog.String("request_id", x.rid), slog.String("cause", err.Error()))
		}
	}
	ttfb := time.Duration(0)
	if !res.FirstByte.IsZero() {
		ttfb = res.FirstByte.Sub(x.start)
	}
	s.obs.Request(routeLabel(rec.Path), res.Status, s.modelLabel(rec.Model), rec.Upstream, end.Sub(x.start), ttfb, x.forwardAt.Sub(x.start), res.Usage)
	for _, f := range res.Served.Failed {
		name, _, _ := strings.Cut(f, ":")
		s.obs.UpstreamError(name, "failed_over")
	}
	if class := upstreamErrorClass(res); class != "" {
		s.obs.UpstreamError(rec.Upstream, class)
	}
}

// upstreamErrorClass classifies the outcome of a forwarded request for the
// upstream-error metric ("" = not an upstream failure).
func upstreamErrorClass(res *proxy.Result) string {
	switch res.Reason {
	case "upstream_unreachable":
		return "unreachable"
	case "upstream_timeout":
		return "timeout"
	case "upstream_credential_rejected", "upstream_credential_unavailable":
		return "credential"
	case "upstream_stream_broken", "upstream_stream_ended_early", "upstream_body_broken":
		return "stream_broken"
	case "upstream_error_event":
		return "error_event"
	}
	switch {
	case res.Status == http.StatusTooManyRequests:
		return "rate_limited"
	case res.Status == 529:
		return "overloaded"
	case res.Status >= 500:
		return "server_error"
	}
	return ""
}

func routeLabel(path string) string {
	switch path {
	case "/v1/messages":
		return "messages"
	case "/v1/messages/count_tokens":
		return "count_tokens"
	case "/v1/models":
		return "models"
	}
	return "other"
}

func (s *Server) modelLabel(m string) string {
	if _, ok := s.models[m]; ok {
		return m
	}
	if m == "" {
		return ""
	}
	return "other"
}

func (s *Server) finish(ctx context.Context, rec *audit.Record, res *proxy.Result, start, end time.Time) {
	rec.Status = res.Status
	rec.ErrorType = res.ErrorType
	rec.Reason = res.Reason
	rec.Usage = res.Usage
	rec.UpstreamRequestID = clean(res.UpstreamRequestID, 128)
	if res.Served.Upstream != "" {
		rec.Upstream = res.Served.Upstream
	}
	if res.Served.UpstreamModel != "" {
		rec.UpstreamModel = res.Served.UpstreamModel
	}
	rec.FailedUpstreams = res.Served.Failed
	rec.LatencyMS = ms(end.Sub(start))
	if !res.FirstByte.IsZero() {
		rec.TTFBMS = ms(res.FirstByte.Sub(start))
	}
	rec.State = audit.StateCompleted
	if res.Interrupted {
		rec.State = audit.StateInterrupted
	}
	// The per-request line is built only when it will be written
	// (log.level info or debug): its attributes alone allocate ~0.8 KB.
	if s.log.Enabled(ctx, slog.LevelInfo) {
		s.log.LogAttrs(ctx, slog.LevelInfo, "request",
			slog.String("request_id", rec.RequestID), slog.String("path", rec.Path), slog.Int("status", rec.Status),
			slog.String("user", rec.UserKey), slog.String("model", rec.Model), slog.String("upstream", rec.Upstream),
			slog.Bool("stream", rec.Stream), slog.String("state", string(rec.State)), slog.String("reason", rec.Reason),
			slog.Float64("latency_ms", rec.LatencyMS), slog.Float64("ttfb_ms", rec.TTFBMS),
			slog.Int64("input_tokens", rec.Usage.InputTokens), slog.Int64("output_tokens", rec.Usage.OutputTokens))
	}
	s.opts.Audit.Finish(rec)
}

func tooLarge(limit int64) *Denial {
	return &Denial{Status: http.StatusRequestEntityTooLarge, ErrorType: anthropic.RequestTooLarge, Reason: "body_too_large",
		Message: fmt.Sprintf("The request body exceeds the gateway's limit of %d bytes.", limit)}
}

func (s *Server) modelIDs() []string {
	ids := make([]string, 0, len(s.opts.Models))
	for _, m := range s.opts.Models {
		ids = append(ids, m.ID)
	}
	return ids
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// requestIDEncoding is base32 with the "extended hex" alphabet, lower-cased
// (0-9 then a-v), whose text order is the order of the bytes encoded.
var requestIDEncoding = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

// newRequestID returns "gh_" and 24 characters: a 48-bit millisecond
// timestamp then 72 random bits. Ids sort by time, so the audit stores'
// request_id indexes grow at one end instead of dirtying random pages.
func newRequestID() string {
	var b [15]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixMilli())<<16)
	_, _ = rand.Read(b[6:])
	return "gh_" + requestIDEncoding.EncodeToString(b[:])
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// clean bounds an untrusted string and strips control characters before it
// reaches logs and the audit trail.
func clean(s string, n int) string {
	s = truncate(s, n)
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
