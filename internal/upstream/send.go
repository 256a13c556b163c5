package upstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
)

// Failure records one route that did not serve a request.
type Failure struct {
	Upstream      string
	UpstreamModel string
	// Status is the upstream's HTTP status, 0 when there was no response.
	Status int
	// Reason says what happened, safe for logs and audit: "connection
	// error", "first-byte timeout", "status 529", "circuit open",
	// "credential unavailable", ...
	Reason string
	// Err is the cause for logs (never a secret), "" if none.
	Err string
	// Skipped is true when the route was not attempted (open circuit,
	// retry-after not yet passed).
	Skipped bool
	// RetryAfter is how long the upstream asked us to stay away (or, when
	// Skipped, how long until it may be tried again).
	RetryAfter time.Duration
	// Duration of the attempt.
	Duration time.Duration
}

// Failure kinds of *SendError.
const (
	KindUnavailable = "unavailable" // every route skipped: circuits open or retry-after pending
	KindTimeout     = "timeout"     // the last attempt timed out (connect or first byte)
	KindConnection  = "connection"  // the last attempt could not connect or was cut before headers
	KindCredential  = "credential"  // no route's credential could be had
)

// SendError is returned by Send when no route produced a response.
type SendError struct {
	Kind     string
	Failures []Failure
	// RetryAfter, for KindUnavailable, is when the first route may be
	// tried again.
	RetryAfter time.Duration
	// RateLimited is true when every skipped route was skipped for its
	// retry-after (not for an open circuit).
	RateLimited bool
	// Err is the last cause; for KindCredential it wraps the credential's
	// *credential.Error.
	Err error
}

func (e *SendError) Error() string {
	s := "upstream " + e.Kind
	for _, f := range e.Failures {
		s += fmt.Sprintf("; %s: %s", f.Upstream, f.Reason)
		if f.Err != "" {
			s += " (" + f.Err + ")"
		}
	}
	return s
}

// Unwrap returns the last cause.
func (e *SendError) Unwrap() error { return e.Err }

// Status is the HTTP status the gateway should answer with, and ErrorType
// the Anthropic error type: 504 timeout_error for timeouts; 429
// rate_limit_error when every route is cooling down after a 429 (send
// retry-after); 503 overloaded_error when every circuit is open; 502
// api_error otherwise (connection failures, credential failures).
func (e *SendError) Status() (int, string) {
	switch e.Kind {
	case KindTimeout:
		return http.StatusGatewayTimeout, "timeout_error"
	case KindUnavailable:
		if e.RateLimited {
			return http.StatusTooManyRequests, "rate_limit_error"
		}
		return http.StatusServiceUnavailable, "overloaded_error"
	}
	return http.StatusBadGateway, "api_error"
}

// failoverStatus reports whether a response status moves the request to
// the next route: 429, 5xx and 529.
func failoverStatus(code int) bool {
	return code == http.StatusTooManyRequests || code >= 500
}

// Send tries cands in order and returns the first response that is not a
// failover status, with the candidate that served it and the routes that
// failed or were skipped before it.
//
// For each candidate it skips targets whose circuit is open or whose
// retry-after has not passed, calls newReq (which builds a fresh request:
// method, URL from Target.URL, headers, body with the upstream model), sets
// the target's static headers, applies its credential, and sends it through
// the target's transport (connect and first-byte timeouts). Connection
// errors, timeouts, 429, 5xx and 529 fail over to the next candidate;
// retry-after on 429/503/529 keeps the target out of rotation until then
// (capped). Nothing has reached the client at that point: Send only returns
// once it has a response to relay.
//
// When every route was skipped for an open circuit (none for retry-after
// alone), Send still tries the first of them unless Breaker.Strict is set
// (Envoy's "panic mode"): a single-upstream model then relays the
// upstream's real answer instead of 503s until the open period ends.
//
// When every attempted route answered with a failover status, the last
// such response is returned (its body buffered) so the client sees the
// upstream's own error and retry-after; it also appears in the failures.
// When no route produced a response, Send returns a *SendError. A request
// context cancelled by the client returns ctx.Err() without recording the
// target as failed. An error from newReq is returned as is.
func (rt *Router) Send(ctx context.Context, cands []Candidate, newReq func(Candidate) (*http.Request, error)) (*http.Response, Candidate, []Failure, error) {
	st := &sendState{rt: rt, newReq: newReq, allCooldown: true}
	var circuitOpen []Candidate // skipped only because their circuit is open
	for _, c := range cands {
		if c.Target == nil || c.Target.health == nil {
			st.closeHeld()
			return nil, c, st.failures, errors.New("upstream: candidate target does not belong to this router")
		}
		now := rt.o.Now()
		adm := c.Target.health.allow(now)
		if !adm.ok {
			wait := adm.until.Sub(now)
			if st.soonest == 0 || wait < st.soonest {
				st.soonest = wait
			}
			if adm.cooldown {
				// retry-after is honoured strictly
			} else {
				st.allCooldown = false
				circuitOpen = append(circuitOpen, c)
			}
			st.failures = append(st.failures, Failure{Upstream: c.Target.name, UpstreamModel: c.UpstreamModel, Reason: adm.reason, Skipped: true, RetryAfter: wait})
			continue
		}
		if resp, done, err := st.attempt(ctx, c, adm); done {
			return resp, c, st.failures, err
		}
	}
	// Panic mode: every route that could be tried had an open circuit and
	// none produced a response. Rather than answer synthetic errors until an
	// open period ends, try the first such route (the outcome closes its
	// circuit on success, like a probe).
	if st.held == nil && st.lastErr == nil && len(circuitOpen) > 0 && !rt.o.Breaker.Strict {
		c := circuitOpen[0]
		st.failures = slices.DeleteFunc(st.failures, func(f Failure) bool { return f.Skipped && f.Upstream == c.Target.name })
		rt.o.Logger.Warn("every upstream circuit is open: trying one anyway", slog.String("upstream", c.Target.name))
		if resp, done, err := st.attempt(ctx, c, admission{ok: true, forced: true}); done {
			return resp, c, st.failures, err
		}
	}
	if st.held != nil {
		return st.held, st.heldCand, st.failures, nil
	}
	if st.lastErr == nil {
		if len(st.failures) == 0 {
			return nil, Candidate{}, nil, &SendError{Kind: KindUnavailable, Err: errors.New("no route")}
		}
		return nil, Candidate{}, st.failures, &SendError{Kind: KindUnavailable, Failures: st.failures, RetryAfter: st.soonest, RateLimited: st.allCooldown}
	}
	return nil, Candidate{}, st.failures, &SendError{Kind: st.lastKind, Failures: st.failures, Err: st.lastErr}
}

// sendState is one Send call's progress.
type sendState struct {
	rt          *Router
	newReq      func(Candidate) (*http.Request, error)
	failures    []Failure
	held        *http.Response
	heldCand    Candidate
	lastErr     error
	lastKind    string
	soonest     time.Duration
	allCooldown bool
}

func (st *sendState) closeHeld() {
	if st.held != nil {
		_ = st.held.Body.Close()
		st.held = nil
	}
}

// attempt sends to one candidate. done reports that Send must return
// (resp, err) now: a response to relay, the client gone, or a caller error.
func (st *sendState) attempt(ctx context.Context, c Candidate, adm admission) (resp *http.Response, done bool, err error) {
	rt, t := st.rt, c.Target
	if err := ctx.Err(); err != nil {
		t.health.release(adm)
		st.closeHeld()
		return nil, true, err
	}
	req, err := st.newReq(c)
	if err != nil {
		t.health.release(adm)
		st.closeHeld()
		return nil, true, err
	}
	if req.URL == nil || req.URL.Scheme != t.base.Scheme || req.URL.Host != t.base.Host {
		t.health.release(adm)
		st.closeHeld()
		return nil, true, fmt.Errorf("upstream %s: request URL does not point at the target's base URL", t.name)
	}
	for _, h := range t.headers {
		req.Header.Set(h[0], h[1])
	}
	if err := t.cred.Apply(ctx, req); err != nil {
		return st.credentialFailed(ctx, c, adm, err)
	}
	start := rt.o.Now()
	resp, err = t.transport.RoundTrip(req)
	dur := rt.o.Now().Sub(start)
	if err != nil {
		return st.roundTripFailed(ctx, c, adm, err, dur)
	}
	if !failoverStatus(resp.StatusCode) {
		t.health.success(adm)
		if resp.StatusCode < 300 {
			// A stream the upstream cuts after the headers cannot fail over
			// any more, but it still counts against the upstream's breaker.
			resp.Body = &watchedBody{ReadCloser: resp.Body, ctx: ctx, t: t, now: rt.o.Now, log: rt.o.Logger}
		}
		if resp.StatusCode == http.StatusUnauthorized {
			if inv, ok := t.cred.(Invalidator); ok {
				inv.Invalidate()
			}
		}
		st.closeHeld()
		return resp, true, nil
	}
	st.failover(resp, c, adm, dur)
	return nil, false, nil
}

// The failure paths of attempt are functions of their own so that the
// frames of the path every request takes stay small (a stream's goroutine
// keeps the stack it grew to; see proxy.Exchange).

func (st *sendState) credentialFailed(ctx context.Context, c Candidate, adm admission, err error) (*http.Response, bool, error) {
	rt, t := st.rt, c.Target
	t.health.release(adm)
	if ctx.Err() != nil {
		st.closeHeld()
		return nil, true, ctx.Err()
	}
	st.lastErr, st.lastKind = err, KindCredential
	st.allCooldown = false
	st.failures = append(st.failures, Failure{Upstream: t.name, UpstreamModel: c.UpstreamModel, Reason: "credential unavailable", Err: err.Error()})
	rt.o.Logger.Error("upstream credential unavailable", slog.String("upstream", t.name), slog.String("error", err.Error()))
	return nil, false, nil
}

func (st *sendState) roundTripFailed(ctx context.Context, c Candidate, adm admission, err error, dur time.Duration) (*http.Response, bool, error) {
	rt, t := st.rt, c.Target
	if ctx.Err() != nil {
		t.health.release(adm)
		st.closeHeld()
		return nil, true, ctx.Err()
	}
	t.health.failure(rt.o.Now(), adm)
	reason, kind := "connection error", KindConnection
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		reason, kind = "timeout (connect or first byte)", KindTimeout
	}
	st.lastErr, st.lastKind = err, kind
	st.allCooldown = false
	st.failures = append(st.failures, Failure{Upstream: t.name, UpstreamModel: c.UpstreamModel, Reason: reason, Err: err.Error(), Duration: dur})
	rt.o.Logger.Warn("upstream attempt failed", slog.String("upstream", t.name), slog.String("reason", reason), slog.String("error", err.Error()))
	return nil, false, nil
}

// failover records a failover status: it remembers the answer and cools
// the target down on retry-after.
func (st *sendState) failover(resp *http.Response, c Candidate, adm admission, dur time.Duration) {
	rt, t := st.rt, c.Target
	ra := retryAfter(resp.Header, rt.o.Now())
	if ra > rt.o.MaxRetryAfter {
		ra = rt.o.MaxRetryAfter
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		t.health.release(adm) // alive, just throttled
	} else {
		t.health.failure(rt.o.Now(), adm)
	}
	if ra > 0 {
		t.health.cooldown(rt.o.Now().Add(ra))
	}
	st.allCooldown = false
	st.failures = append(st.failures, Failure{Upstream: t.name, UpstreamModel: c.UpstreamModel, Status: resp.StatusCode,
		Reason: "status " + strconv.Itoa(resp.StatusCode), RetryAfter: ra, Duration: dur})
	rt.o.Logger.Warn("upstream attempt failed", slog.String("upstream", t.name), slog.Int("status", resp.StatusCode), slog.Duration("retry_after", ra))
	st.closeHeld()
	st.held, st.heldCand = rt.buffer(resp), c
}

// buffer reads a failed response's body (bounded) and closes the
// connection, so the response can be relayed later if nothing else serves.
func (rt *Router) buffer(resp *http.Response) *http.Response {
	// A stalled error body must not hold the request: give it 10 s.
	stop := time.AfterFunc(10*time.Second, func() { _ = resp.Body.Close() })
	b, err := io.ReadAll(io.LimitReader(resp.Body, rt.o.MaxErrorBody))
	stop.Stop()
	_ = resp.Body.Close()
	if err != nil {
		b = nil
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
	resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
	resp.Header.Del("Transfer-Encoding")
	resp.TransferEncoding = nil
	return resp
}

// retryAfter parses Retry-After (seconds or an HTTP date), then the
// Anthropic/OpenAI-style retry-after-ms header, capped at a day (Send caps
// further at RouterOptions.MaxRetryAfter).
func retryAfter(h http.Header, now time.Time) time.Duration {
	return min(parseRetryAfter(h, now), 24*time.Hour)
}

func parseRetryAfter(h http.Header, now time.Time) time.Duration {
	if v := h.Get("Retry-After"); v != "" {
		if s, err := strconv.ParseFloat(v, 64); err == nil && s > 0 && s < 1e7 {
			return time.Duration(s * float64(time.Second))
		}
		if t, err := http.ParseTime(v); err == nil && t.After(now) {
			return t.Sub(now)
		}
	}
	if v := h.Get("Retry-After-Ms"); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 && ms < 1e10 {
			return time.Duration(ms * float64(time.Millisecond))
		}
	}
	return 0
}

// watchedBody records a failure on the target's breaker when the body
// breaks (not EOF, not the client going away).
type watchedBody struct {
	io.ReadCloser
	ctx    context.Context
	t      *Target
	now    func() time.Time
	log    *slog.Logger
	done   bool
	closed atomic.Bool
}

// Close marks the body closed by the caller: errors after it are ours.
func (w *watchedBody) Close() error {
	w.closed.Store(true)
	return w.ReadCloser.Close()
}

func (w *watchedBody) Read(p []byte) (int, error) {
	n, err := w.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		w.failed(err)
	}
	return n, err
}

// failed is out of Read so that Read's frame, under which a stream waits
// for the upstream, stays small.
//
//go:noinline
func (w *watchedBody) failed(err error) {
	if w.done || w.ctx.Err() != nil || w.closed.Load() {
		return
	}
	w.done = true
	w.t.health.failure(w.now(), admission{})
	w.log.Warn("upstream response cut", slog.String("upstream", w.t.name), slog.String("error", err.Error()))
}
