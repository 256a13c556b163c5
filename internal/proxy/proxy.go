// Package proxy forwards one already-authenticated, already-audited
// Messages request to an upstream and relays the response: headers through
// an allowlist, the upstream credential injected by the upstream layer,
// streams flushed per event, usage observed without re-encoding a byte.
//
// It knows nothing about identity, limits or audit storage: the server
// passes it the request and receives a Result to record.
package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/anthropic"
)

// Outbound is the request to send upstream.
type Outbound struct {
	Path     string      // /v1/messages or /v1/messages/count_tokens
	Header   http.Header // inbound headers; Dispatcher filters them with OutboundHeader
	Body     []byte      // the client's body, byte for byte
	Request  anthropic.Request
	Affinity string // session or user key, so one conversation keeps hitting one upstream
	// CaptureContent, when above zero, keeps up to this many bytes of the
	// response content for the audit trail (Result.Captured).
	CaptureContent int
}

// Served describes who answered.
type Served struct {
	Upstream      string
	UpstreamModel string
	Failed        []string // upstreams tried before, with the reason: "name: 529"
}

// Dispatcher chooses an upstream, builds the outbound request (model mapped,
// headers filtered, credential injected) and returns the response of the
// upstream that served. Errors are classified with UpstreamError.
type Dispatcher interface {
	Dispatch(ctx context.Context, out Outbound) (*http.Response, Served, error)
}

// UpstreamError classifies a failure to get a response.
type UpstreamError struct {
	Kind   string // "unreachable", "timeout", "credential"
	Served Served
	Err    error // cause, for the log only
}

func (e *UpstreamError) Error() string { return e.Kind + ": " + e.Err.Error() }
func (e *UpstreamError) Unwrap() error { return e.Err }

// Result is what the server records about a forwarded request.
type Result struct {
	Status            int
	ErrorType         string
	Reason            string
	Usage             anthropic.Usage
	Interrupted       bool
	Served            Served
	UpstreamRequestID string
	FirstByte         time.Time // when the first response byte was written
	// Captured is the response content when Outbound.CaptureContent asked
	// for it: the JSON body, or for a stream the assembled blocks as
	// {"content":[...],"truncated":bool}.
	Captured []byte
}

// Options configure a Proxy.
type Options struct {
	Dispatcher Dispatcher
	Logger     *slog.Logger
	// WriteIdleTimeout cuts a response when the client accepts no bytes for
	// this long. Zero: no per-write deadline.
	WriteIdleTimeout time.Duration
	// MaxJSONCapture bounds how much of a non-streaming response is kept to
	// read its usage. Default 16 MiB.
	MaxJSONCapture int
	// KeepAlive is how long a relayed SSE stream may be silent before a
	// PingEvent is written to the client (at an event boundary only).
	// Zero: DefaultKeepAlive. Negative: never.
	KeepAlive time.Duration
}

// Proxy relays requests.
type Proxy struct {
	opts Options
	log  *slog.Logger
	bufs sync.Pool // 32 KiB buffers JSON responses are relayed through
	sse  sync.Pool // 1 KiB buffers for streams: events are small and streams are long-lived
}

// New returns a Proxy.
func New(opts Options) *Proxy {
	if opts.MaxJSONCapture == 0 {
		opts.MaxJSONCapture = 16 << 20
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Proxy{opts: opts, log: log}
	p.bufs.New = func() any { b := make([]byte, 32<<10); return &b }
	p.sse.New = func() any { b := make([]byte, 1<<10); return &b }
	return p
}

// ErrorWriter writes a gateway-generated error in the Anthropic envelope.
type ErrorWriter func(w http.ResponseWriter, status int, errType, message string)

// Forward sends out upstream and relays the answer to w: Start then Relay.
func (p *Proxy) Forward(w http.ResponseWriter, r *http.Request, out Outbound, writeErr ErrorWriter) Result {
	return *p.Start(w, r, out, writeErr).Relay()
}

// Exchange is a forwarded request whose response head has been written to
// the client and whose body is still to be relayed.
//
// Start and Relay are separate so that a caller can relay from a shallow
// frame: the goroutine serving a stream keeps its stack for the stream's
// whole life, and Go shrinks a stack only while it uses under a quarter of
// it. Everything Relay needs lives here, on the heap, so the frames under
// the read a stream waits in stay small (see docs/benchmarks.md, memory).
type Exchange struct {
	p         *Proxy
	ctx       context.Context
	w         http.ResponseWriter
	rc        *http.ResponseController
	body      io.ReadCloser // nil: nothing to relay (the client has its answer)
	streaming bool
	capture   int
	res       Result

	// stream state
	tap    *anthropic.SSETap
	pinger *Pinger
	buf    *[]byte
	werr   error
}

// Start sends out upstream and writes the response status and headers to
// w (or, when no upstream answered usably, a complete error). It never
// returns nil; call Relay exactly once.
func (p *Proxy) Start(w http.ResponseWriter, r *http.Request, out Outbound, writeErr ErrorWriter) *Exchange {
	x := &Exchange{p: p, ctx: r.Context(), w: w, capture: out.CaptureContent}
	var resp *http.Response
	var err error
	resp, x.res.Served, err = p.opts.Dispatcher.Dispatch(x.ctx, out)
	if err != nil {
		p.dispatchFailed(x.ctx, w, err, &x.res, writeErr)
		return x
	}
	x.res.UpstreamRequestID = resp.Header.Get("request-id")
	if x.res.UpstreamRequestID == "" {
		x.res.UpstreamRequestID = resp.Header.Get("apim-request-id")
	}

	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		p.credentialRejected(w, resp, &x.res, writeErr)
		resp.Body.Close()
		return x
	}

	copyResponseHeader(w.Header(), resp.Header)
	x.res.Status = resp.StatusCode
	x.streaming = isEventStream(resp.Header.Get("Content-Type"))
	if x.streaming {
		w.Header().Del("Content-Length")
	}
	w.WriteHeader(resp.StatusCode)
	x.res.FirstByte = time.Now()
	x.rc = http.NewResponseController(w)
	x.body = resp.Body
	return x
}

// Relay copies the response body to the client, closes it and returns what
// happened. Without a body (Start already answered) it returns at once.
func (x *Exchange) Relay() *Result {
	if x.body == nil {
		return &x.res
	}
	if x.streaming {
		x.relayStream()
	} else {
		x.p.relayJSON(x.ctx, x.w, x.rc, x.body, &x.res, x.capture)
	}
	x.body.Close()
	x.body = nil
	return &x.res
}

// credentialRejected answers an upstream 401/403. It is our credential, not
// the user's: never let clients re-authenticate in a loop over it, and never
// relay what the upstream said about it. (Its own function, like
// dispatchFailed, so Forward's frame, which a stream holds for its life,
// stays small.)
func (p *Proxy) credentialRejected(w http.ResponseWriter, resp *http.Response, res *Result, writeErr ErrorWriter) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	p.log.Error("upstream rejected the gateway's credential",
		slog.String("upstream", res.Served.Upstream), slog.Int("upstream_status", resp.StatusCode),
		slog.String("upstream_request_id", res.UpstreamRequestID))
	res.Status, res.ErrorType, res.Reason = http.StatusBadGateway, anthropic.APIError, "upstream_credential_rejected"
	writeErr(w, res.Status, res.ErrorType, "The gateway could not authenticate to the model provider. This is a gateway configuration problem, not your sign-in; please contact your administrator and quote the request id.")
	res.FirstByte = time.Now()
}

func (p *Proxy) dispatchFailed(ctx context.Context, w http.ResponseWriter, err error, res *Result, writeErr ErrorWriter) {
	var ue *UpstreamError
	kind := "unreachable"
	if errors.As(err, &ue) {
		kind = ue.Kind
		res.Served = ue.Served
	} else if isTimeout(err) {
		kind = "timeout"
	}
	if ctx.Err() != nil && errors.Is(ctx.Err(), context.Canceled) {
		// The client went away before the upstream answered.
		res.Status, res.Reason, res.Interrupted = 499, "client_closed", true
		return
	}
	p.log.Error("upstream request failed", slog.String("kind", kind), slog.String("upstream", res.Served.Upstream),
		slog.Any("failed", res.Served.Failed), slog.String("cause", err.Error()))
	switch kind {
	case "timeout":
		res.Status, res.ErrorType, res.Reason = http.StatusGatewayTimeout, anthropic.TimeoutError, "upstream_timeout"
		writeErr(w, res.Status, res.ErrorType, "The model provider did not answer in time. Please retry.")
	case "credential":
		res.Status, res.ErrorType, res.Reason = http.StatusBadGateway, anthropic.APIError, "upstream_credential_unavailable"
		writeErr(w, res.Status, res.ErrorType, "The gateway could not obtain its credential for the model provider. This is a gateway problem, not your sign-in; please contact your administrator and quote the request id.")
	default:
		res.Status, res.ErrorType, res.Reason = http.StatusBadGateway, anthropic.APIError, "upstream_unreachable"
		writeErr(w, res.Status, res.ErrorType, "The gateway could not reach the model provider. Please retry; if it persists, contact your administrator and quote the request id.")
	}
	res.FirstByte = time.Now()
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func isEventStream(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "text/event-stream"
}

// relayStream copies an SSE body, flushing after every read so each event
// reaches the client as soon as it arrives, with pings while the upstream
// is silent. Its loop keeps no state on the stack: a stream waits in
// body.Read for most of its life (see Exchange).
func (x *Exchange) relayStream() {
	x.startStream()
	for {
		n, err := x.body.Read(*x.buf)
		if n > 0 && !x.relayChunk(n) {
			break // the client is gone: stop reading, which cancels the upstream
		}
		if err != nil {
			x.streamReadFailed(err)
			break
		}
	}
	x.endStream()
}

func (x *Exchange) startStream() {
	x.tap = anthropic.NewSSETap()
	if x.capture > 0 {
		x.tap.CaptureContent(x.capture)
	}
	// A failed ping means the client is gone: closing the upstream body
	// ends the read the relay is blocked in.
	body := x.body
	x.pinger = NewPinger(x.p.opts.KeepAlive, func(b []byte) error { return x.p.write(x.w, x.rc, b) }, func() { body.Close() })
	x.buf = x.p.sse.Get().(*[]byte)
}

// relayChunk passes the first n bytes of the buffer to the client; false:
// the client is gone.
func (x *Exchange) relayChunk(n int) bool {
	chunk := (*x.buf)[:n]
	x.tap.Write(chunk)
	x.werr = x.pinger.Write(chunk, x.tap.AtEventBoundary())
	return x.werr == nil
}

func (x *Exchange) streamReadFailed(err error) {
	if errors.Is(err, io.EOF) || x.ctx.Err() != nil {
		return
	}
	if x.werr = x.pinger.Err(); x.werr != nil {
		return // a failed ping closed the body: the client is gone
	}
	x.p.log.Warn("upstream stream broke", slog.String("upstream", x.res.Served.Upstream), slog.String("cause", err.Error()))
	if x.tap.AtEventBoundary() {
		_ = x.pinger.Write([]byte("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"The connection to the model provider was lost mid-response. Please retry.\"}}\n\n"), true)
	}
	x.res.Reason = "upstream_stream_broken"
}

func (x *Exchange) endStream() {
	x.pinger.Stop()
	x.p.sse.Put(x.buf)
	x.buf = nil
	tap, res := x.tap, &x.res
	res.Usage = tap.Usage()
	if t := tap.ErrorType(); t != "" {
		res.ErrorType = t
		res.Reason = "upstream_error_event"
	}
	if !tap.Complete() {
		res.Interrupted = true
		if res.Reason == "" {
			if x.werr != nil || x.ctx.Err() != nil {
				res.Reason = "client_closed"
			} else {
				res.Reason = "upstream_stream_ended_early"
			}
		}
	}
	if x.capture > 0 {
		blocks, truncated := tap.Content()
		res.Captured, _ = json.Marshal(struct {
			Content   []anthropic.ContentBlock `json:"content"`
			Truncated bool                     `json:"truncated,omitempty"`
		}{blocks, truncated})
	}
}

// relayJSON copies a non-streaming body and keeps a bounded copy to read
// usage (success) or the error type (failure) from.
func (p *Proxy) relayJSON(ctx context.Context, w http.ResponseWriter, rc *http.ResponseController, body io.Reader, res *Result, captureContent int) {
	capture := &boundedBuffer{max: p.opts.MaxJSONCapture}
	if res.Status >= 400 {
		capture.max = 64 << 10
	}
	bp := p.bufs.Get().(*[]byte)
	defer p.bufs.Put(bp)
	buf := *bp
	var werr error
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			capture.Write(buf[:n])
			if werr = p.write(w, rc, buf[:n]); werr != nil {
				break
			}
		}
		if rerr != nil {
			if !errors.Is(rerr, io.EOF) {
				res.Interrupted = true
				res.Reason = "upstream_body_broken"
			}
			break
		}
	}
	if werr != nil || ctx.Err() != nil {
		res.Interrupted, res.Reason = true, "client_closed"
	}
	if res.Status >= 400 {
		res.ErrorType = anthropic.ErrorTypeFromJSON(capture.Bytes())
		if res.ErrorType == "" {
			res.ErrorType = anthropic.TypeForStatus(res.Status)
		}
		return
	}
	if u, _, ok := anthropic.UsageFromJSON(capture.Bytes()); ok {
		res.Usage = u
	}
	if captureContent > 0 {
		b := capture.Bytes()
		if len(b) > captureContent {
			b = b[:captureContent]
		}
		res.Captured = append([]byte(nil), b...)
	}
}

func (p *Proxy) write(w http.ResponseWriter, rc *http.ResponseController, b []byte) error {
	if p.opts.WriteIdleTimeout > 0 {
		_ = rc.SetWriteDeadline(time.Now().Add(p.opts.WriteIdleTimeout))
	}
	if _, err := w.Write(b); err != nil {
		return err
	}
	return rc.Flush()
}

type boundedBuffer struct {
	bytes.Buffer
	max  int
	over bool
}

func (b *boundedBuffer) Write(p []byte) {
	if b.over {
		return
	}
	if b.Len()+len(p) > b.max {
		b.over = true
		b.Reset()
		return
	}
	b.Buffer.Write(p)
}

// hopByHop headers never cross the proxy (RFC 9110 §7.6.1).
var hopByHop = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true, "Proxy-Authorization": true,
	"Proxy-Connection": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
}

// copyResponseHeader relays upstream response headers except hop-by-hop
// ones, cookies, authentication challenges, anything credential-like, the
// upstream account's organisation id, and names the gateway already set.
func copyResponseHeader(dst, src http.Header) {
	var listed map[string]bool
	for _, c := range src.Values("Connection") {
		for _, f := range strings.Split(c, ",") {
			if f = strings.TrimSpace(f); f != "" {
				if listed == nil {
					listed = map[string]bool{}
				}
				listed[http.CanonicalHeaderKey(f)] = true
			}
		}
	}
	for k, vv := range src {
		if hopByHop[k] || listed[k] || !responseHeaderAllowed(k) {
			continue
		}
		if _, set := dst[k]; set {
			continue // the gateway's own value (e.g. per-user rate-limit state) wins
		}
		dst[k] = vv // shared with the upstream response, which nothing changes
	}
}

func responseHeaderAllowed(k string) bool {
	// Lower-case into a stack buffer: this runs for every upstream header
	// of every response.
	var a [64]byte
	if len(k) > len(a) {
		return responseHeaderAllowedLower([]byte(strings.ToLower(k)))
	}
	lk := a[:len(k)]
	for i := range len(k) {
		c := k[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		lk[i] = c
	}
	return responseHeaderAllowedLower(lk)
}

func responseHeaderAllowedLower(lk []byte) bool {
	switch string(lk) {
	case "set-cookie", "set-cookie2", "www-authenticate", "anthropic-organization-id", "authorization", "x-api-key", "api-key":
		return false
	}
	if bytes.ContainsAny(lk, "_.") {
		return false
	}
	if bytes.HasPrefix(lk, []byte("anthropic-ratelimit-")) {
		return true
	}
	for _, bad := range [...]string{"token", "secret", "password", "credential", "apikey", "api-key"} {
		if bytes.Contains(lk, []byte(bad)) {
			return false
		}
	}
	return true
}

// OutboundHeader builds the headers sent upstream from the inbound ones by
// allowlist: Content-Type, Accept, User-Agent and every anthropic-* header
// (forwarded verbatim: beta values and unknown names included). Everything
// else, credentials, cookies, forwarding and proxy headers, and any name
// containing '_' or '.', is dropped. The caller then injects the upstream
// credential.
func OutboundHeader(in http.Header) http.Header {
	out := make(http.Header, 8)
	for k, vv := range in {
		if !outboundAllowed(k) {
			continue
		}
		out[k] = append([]string(nil), vv...)
	}
	if out.Get("Content-Type") == "" {
		out.Set("Content-Type", "application/json")
	}
	// The gateway never re-encodes bodies and reads usage from them, so it
	// asks the upstream for an uncompressed response.
	out.Set("Accept-Encoding", "identity")
	return out
}

func outboundAllowed(k string) bool {
	if strings.ContainsAny(k, "_.") {
		return false
	}
	switch http.CanonicalHeaderKey(k) {
	case "Content-Type", "Accept", "User-Agent":
		return true
	}
	lk := strings.ToLower(k)
	return strings.HasPrefix(lk, "anthropic-") || strings.HasPrefix(lk, "x-stainless-")
}
