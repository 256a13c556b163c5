// Package limits is the gateway's admission engine: before a request is
// forwarded it checks the user's policy (model access, max_tokens cap) and
// reserves the request's worst case against every applicable limit
// (requests, tokens and dollars per window, concurrent requests; per user
// and per group), atomically, in a shared Backend; after the response it
// settles the reservation with the real usage and cost. Because the worst
// case is held before forwarding, concurrent requests cannot push anyone
// past a limit.
//
// Windows are fixed calendar windows in UTC (or Options.Location): the
// minute, the day and the month. The backends live in limits/memory and
// limits/redis; limits/limitstest is their conformance suite.
package limits

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/anthropic"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/policy"
	"github.com/gatehouse-dev/gatehouse/internal/pricing"
)

// Request is what admission needs to know about a Messages request.
type Request struct {
	Model    string // as the client asked for it
	Upstream string // upstream name serving it (for per-upstream prices); may be empty
	// EstimatedInputTokens is an upper estimate of all input tokens
	// (uncached + cache writes + cache reads); see EstimateInputTokens.
	EstimatedInputTokens int64
	MaxTokens            int64 // max_tokens of the request
	Stream               bool
}

// EstimateInputTokens is the input hold for a request body of bodyBytes:
// one token per two bytes, rounded up. A Messages body spends at least two
// bytes per input token in practice (JSON syntax and escaping; English text
// averages about four bytes per token, code three, CJK three); images and
// PDFs cost far fewer tokens than their base64 bytes. If an exotic body
// does exceed the estimate, the settle records the real usage, so the
// overshoot is bounded by the estimation error of the requests in flight.
func EstimateInputTokens(bodyBytes int64) int64 {
	if bodyBytes <= 0 {
		return 0
	}
	return (bodyBytes + 1) / 2
}

// Options configures NewEngine. Zero values are documented per field.
type Options struct {
	// Policies decides who may do what; nil: everyone may use every model
	// without limits.
	Policies *policy.Set
	// Backend stores the counters. Required when Policies set any limit.
	Backend Backend
	// Pricing prices usage; nil: the shipped defaults.
	Pricing *pricing.Table
	// Logger receives decisions and backend failures; nil: discard.
	Logger *slog.Logger
	// Now is the clock; nil: time.Now.
	Now func() time.Time
	// Location is the calendar of the day and month windows; nil: UTC.
	Location *time.Location
	// KeyPrefix namespaces backend keys; empty: "gatehouse".
	KeyPrefix string
	// StreamLease is the lifetime of a concurrent-request slot that is
	// never released (gateway crash); zero: 61 minutes. Windows are also
	// kept this long after they end so late settles still land.
	StreamLease time.Duration
	// SettleTimeout bounds one Settle; zero: 5 seconds. Not applied to a
	// LocalBackend.
	SettleTimeout time.Duration
	// CountCacheReads makes token limits count cache reads too. By default
	// (false) token limits count uncached input, cache writes and output,
	// as Anthropic's own rate limits do: cache reads cost a tenth of input
	// and a Claude Code session re-reads its whole context every turn, so
	// counting them would exhaust token limits within minutes. Cache reads
	// always count in usd_per_month.
	CountCacheReads bool
}

// Engine admits and settles requests. It is safe for concurrent use.
type Engine struct {
	set      *policy.Set
	backend  Backend
	prices   *pricing.Table
	log      *slog.Logger
	now      func() time.Time
	loc      *time.Location
	prefix   string
	lease    time.Duration
	settleTO time.Duration
	cacheRd  bool
	idPrefix string
	idSeq    atomic.Uint64
	stats    stats
	unpriced sync.Map // model+upstream already warned about
	keys     keyCache
	local    bool // backend is a LocalBackend: Settle needs no deadline
}

type stats struct {
	admitted, denied, shadowDenied, backendErrors, failedOpen, failedClosed, settleErrors atomic.Uint64
}

// Stats are cumulative counters for metrics.
type Stats struct {
	Admitted      uint64 // requests admitted (including shadow denials)
	Denied        uint64 // requests refused
	ShadowDenied  uint64 // requests a shadow rule would have refused
	BackendErrors uint64 // Reserve or Settle calls that failed (store unreachable)
	FailedOpen    uint64 // requests admitted uncounted because the store failed
	FailedClosed  uint64 // requests refused because the store failed
	SettleErrors  uint64 // settles that could not be recorded
}

// NewEngine builds an engine.
func NewEngine(opts Options) (*Engine, error) {
	e := &Engine{
		set: opts.Policies, backend: opts.Backend, prices: opts.Pricing, log: opts.Logger,
		now: opts.Now, loc: opts.Location, prefix: opts.KeyPrefix, lease: opts.StreamLease, settleTO: opts.SettleTimeout,
		cacheRd: opts.CountCacheReads,
	}
	var err error
	if e.set == nil {
		if e.set, err = policy.New(nil, nil); err != nil {
			return nil, err
		}
	}
	_, e.local = e.backend.(LocalBackend)
	if e.backend == nil && e.set.HasLimits() {
		return nil, errors.New("limits: policies set limits but no backend is configured")
	}
	if e.prices == nil {
		if e.prices, err = pricing.New(pricing.Options{}); err != nil {
			return nil, err
		}
	}
	if e.log == nil {
		e.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.loc == nil {
		e.loc = time.UTC
	}
	if e.prefix == "" {
		e.prefix = "gatehouse"
	}
	if e.lease <= 0 {
		e.lease = 61 * time.Minute
	}
	if e.settleTO <= 0 {
		e.settleTO = 5 * time.Second
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	e.idPrefix = hex.EncodeToString(b[:])
	return e, nil
}

// Stats returns the cumulative counters.
func (e *Engine) Stats() Stats {
	s := &e.stats
	return Stats{
		Admitted: s.admitted.Load(), Denied: s.denied.Load(), ShadowDenied: s.shadowDenied.Load(),
		BackendErrors: s.backendErrors.Load(), FailedOpen: s.failedOpen.Load(), FailedClosed: s.failedClosed.Load(),
		SettleErrors: s.settleErrors.Load(),
	}
}

// AllowedModels filters all down to the models p may call (for /v1/models).
func (e *Engine) AllowedModels(p identity.Principal, all []string) []string {
	eff, ok := e.set.Resolve(p)
	if !ok {
		return []string{}
	}
	out := make([]string, 0, len(all))
	for _, m := range all {
		if eff.Shadow || eff.AllowsModel(m) {
			out = append(out, m)
		}
	}
	return out
}

// Rule names, used in messages, logs and Denial.Rule.
const (
	RuleModel             = "models"
	RuleMaxOutputTokens   = "max_output_tokens"
	RuleNoPolicy          = "policies"
	RuleRequestsPerMinute = "requests_per_minute"
	RuleTokensPerMinute   = "tokens_per_minute"
	RuleTokensPerDay      = "tokens_per_day"
	RuleUSDPerMonth       = "usd_per_month"
	RuleConcurrentStreams = "concurrent_streams"
	RuleStoreUnavailable  = "limits_store"
)

// Denial is a refused request. Its Message is safe to show the user (it
// names the policy and rule and says what to do); it never contains
// secrets. The gateway renders it as the Anthropic error envelope with
// Status and ErrorType, adding Headers (retry-after, anthropic-ratelimit-*).
type Denial struct {
	Status     int
	ErrorType  string
	Message    string
	Rule       string // one of the Rule constants
	Policy     string // policy or group-limit name
	Group      string // group object ID when a group limit refused
	RetryAfter time.Duration
	Headers    http.Header
	// Shadow is true for a denial a shadow-mode rule would have made; the
	// request was admitted (see Reservation.ShadowDenial).
	Shadow bool
}

func (d *Denial) Error() string { return d.Message }

// counter identifies one limit of one scope.
type counter struct {
	rule    string
	scope   string // "user" or "group"
	name    string // policy or group-limit name
	group   string // group ID for group scope
	limit   int64
	hold    int64 // amount held at admission
	reset   time.Time
	opIndex int
	soft    bool
}

// Reservation is an admitted request's hold. Settle it exactly once when
// the response ends (any outcome); Settle is idempotent and safe to call
// from another goroutine.
type Reservation struct {
	e          *Engine
	id         string
	ops        []Op
	counters   []counter
	model      string
	upstream   string
	holdTokens int64
	holdNano   pricing.NanoUSD
	reserved   bool // the backend holds the ops (false: failed open)
	maxOut     int64
	policyName string
	capture    string
	groups     []string
	headers    http.Header
	shadow     *Denial
	once       sync.Once
	cost       float64
}

// Admit decides whether p may send req now and, if so, holds its worst
// case. The error is always a *Denial.
func (e *Engine) Admit(ctx context.Context, p identity.Principal, req Request) (*Reservation, error) {
	now := e.now()
	eff, ok := e.set.Resolve(p)
	if !ok {
		e.stats.denied.Add(1)
		d := &Denial{Status: http.StatusForbidden, ErrorType: anthropic.PermissionError, Rule: RuleNoPolicy,
			Message: "No gateway policy grants you access. Ask your administrator to add you to a group covered by a policy."}
		e.logDenial(p, req, d)
		return nil, d
	}
	r := &Reservation{e: e, model: req.Model, upstream: req.Upstream, maxOut: eff.MaxOutputTokens, policyName: eff.Name, capture: eff.ContentCapture}
	var shadow *Denial
	if !eff.AllowsModel(req.Model) {
		d := &Denial{Status: http.StatusForbidden, ErrorType: anthropic.PermissionError, Rule: RuleModel, Policy: eff.Name,
			Message: fmt.Sprintf("Model %q is not allowed by policy %q. Allowed models: %s.", req.Model, eff.Name, strings.Join(eff.Models, ", "))}
		if !eff.Shadow {
			e.stats.denied.Add(1)
			e.logDenial(p, req, d)
			return nil, d
		}
		shadow = d
	}
	if eff.MaxOutputTokens > 0 && req.MaxTokens > eff.MaxOutputTokens {
		d := &Denial{Status: http.StatusBadRequest, ErrorType: anthropic.InvalidRequestError, Rule: RuleMaxOutputTokens, Policy: eff.Name,
			Message: fmt.Sprintf("max_tokens %d exceeds %d, the maximum of policy %q. Lower max_tokens (Claude Code: set CLAUDE_CODE_MAX_OUTPUT_TOKENS=%d).",
				req.MaxTokens, eff.MaxOutputTokens, eff.Name, eff.MaxOutputTokens)}
		if !eff.Shadow {
			e.stats.denied.Add(1)
			e.logDenial(p, req, d)
			return nil, d
		}
		if shadow == nil {
			shadow = d
		}
	}

	in := max(req.EstimatedInputTokens, 0)
	out := max(req.MaxTokens, 0)
	r.holdTokens = in + out
	r.holdNano = e.prices.MaxCost(req.Model, req.Upstream, in, out)
	r.id = e.idPrefix + "-" + strconv.FormatUint(e.idSeq.Add(1), 36)

	n := limitCount(eff.Limits)
	for _, g := range eff.Groups {
		n += limitCount(g.Limits)
	}
	r.ops, r.counters = make([]Op, 0, n), make([]counter, 0, n) // held for the request's life: no spare capacity
	failOpen := true
	e.addScope(r, now, "user", eff.Name, "", 'u', p.Key, eff.Limits, eff.Shadow)
	if len(r.ops) > 0 && !eff.FailOpen {
		failOpen = false
	}
	for _, g := range eff.Groups {
		r.groups = append(r.groups, g.Group)
		n := len(r.ops)
		e.addScope(r, now, "group", g.Name, g.Group, 'g', g.Group, g.Limits, g.Shadow)
		if len(r.ops) > n && !g.FailOpen {
			failOpen = false
		}
	}
	if len(r.ops) == 0 {
		r.shadow = shadow
		e.admitted(p, req, r)
		return r, nil
	}

	res, err := e.backend.Reserve(ctx, r.id, now, r.ops)
	if err != nil && ctx.Err() != nil {
		// The client went away (or the request timed out) while waiting:
		// not a store failure; nobody reads this answer.
		return nil, &Denial{Status: http.StatusServiceUnavailable, ErrorType: anthropic.APIError, Rule: RuleStoreUnavailable, Policy: eff.Name,
			Message: "The request was cancelled before it could be admitted."}
	}
	if err != nil {
		e.stats.backendErrors.Add(1)
		if failOpen {
			e.stats.failedOpen.Add(1)
			e.log.Warn("limits store unavailable: admitting uncounted (fail-open)", "policy", eff.Name, "user", HashKey(p.Key), "err", err)
			r.shadow = shadow
			e.admitted(p, req, r)
			return r, nil
		}
		e.stats.failedClosed.Add(1)
		e.stats.denied.Add(1)
		e.log.Error("limits store unavailable: refusing (fail-closed)", "policy", eff.Name, "user", HashKey(p.Key), "err", err)
		return nil, &Denial{Status: http.StatusServiceUnavailable, ErrorType: anthropic.APIError, Rule: RuleStoreUnavailable, Policy: eff.Name,
			Message: "Usage limits cannot be checked right now, so the gateway is not forwarding requests. Try again in a few seconds.", RetryAfter: 5 * time.Second,
			Headers: http.Header{"Retry-After": []string{"5"}}}
	}
	if len(res.Values) != len(r.ops) {
		e.stats.backendErrors.Add(1)
		return nil, &Denial{Status: http.StatusServiceUnavailable, ErrorType: anthropic.APIError, Rule: RuleStoreUnavailable,
			Message: "Usage limits cannot be checked right now. Try again in a few seconds.", RetryAfter: 5 * time.Second, Headers: http.Header{"Retry-After": []string{"5"}}}
	}
	if !res.OK {
		d := e.denial(r, res.Values, false, now)
		e.stats.denied.Add(1)
		e.logDenial(p, req, d)
		return nil, d
	}
	r.reserved = true
	if d := e.denial(r, res.Values, true, now); d != nil && shadow == nil {
		shadow = d
	}
	r.shadow = shadow
	r.headers = e.rateHeaders(r, res.Values)
	e.admitted(p, req, r)
	return r, nil
}

func (e *Engine) admitted(p identity.Principal, req Request, r *Reservation) {
	e.stats.admitted.Add(1)
	if r.shadow != nil {
		r.shadow.Shadow = true
		e.stats.shadowDenied.Add(1)
		e.log.Warn("shadow policy would deny", "user", HashKey(p.Key), "model", req.Model, "policy", r.shadow.Policy, "rule", r.shadow.Rule, "reason", r.shadow.Message)
	}
}

func (e *Engine) logDenial(p identity.Principal, req Request, d *Denial) {
	e.log.Info("request denied by policy", "user", HashKey(p.Key), "model", req.Model, "policy", d.Policy, "rule", d.Rule, "status", d.Status)
}

// HashKey is the short hash of a user key or group ID used in backend keys
// and logs (user keys are identifiers, not secrets, but need not be spread).
func HashKey(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:12])
}

// CountedTokens is what token limits count of usage u: every token, minus
// cache reads unless Options.CountCacheReads.
func (e *Engine) CountedTokens(u anthropic.Usage) int64 {
	if e.cacheRd {
		return u.Total()
	}
	return u.Total() - u.CacheReadInputTokens
}

// CounterKey returns the backend key of one counter: scope "u" with a
// user key or "g" with a group ID, rule one of the windowed Rule constants
// (or RuleConcurrentStreams), for the window containing at. Tests and
// diagnostics read counters with it.
func (e *Engine) CounterKey(scope, id, rule string, at time.Time) string {
	t := at.In(e.loc)
	base := e.prefix + ":" + scope + ":" + HashKey(id) + ":"
	switch rule {
	case RuleRequestsPerMinute:
		return base + "rpm:" + strconv.FormatInt(t.Truncate(time.Minute).Unix(), 10)
	case RuleTokensPerMinute:
		return base + "tpm:" + strconv.FormatInt(t.Truncate(time.Minute).Unix(), 10)
	case RuleTokensPerDay:
		return base + "tpd:" + t.Format("20060102")
	case RuleUSDPerMonth:
		return base + "usd:" + t.Format("200601")
	case RuleConcurrentStreams:
		return base + "conc"
	}
	return ""
}

// limitCount is how many ops addScope adds for l.
func limitCount(l policy.Limits) int {
	n := 0
	for _, v := range []int64{l.RequestsPerMinute, l.TokensPerMinute, l.TokensPerDay, int64(pricing.FromUSD(l.USDPerMonth)), l.ConcurrentStreams} {
		if v > 0 {
			n++
		}
	}
	return n
}

func (e *Engine) addScope(r *Reservation, now time.Time, scope, name, group string, kind byte, id string, l policy.Limits, soft bool) {
	if limitCount(l) == 0 {
		return
	}
	w := e.windowKeys(kind, id, now)
	add := func(rule string, limit, amount int64, key string, kind Kind, reset time.Time, ttl time.Duration) {
		if limit <= 0 {
			return
		}
		r.counters = append(r.counters, counter{rule: rule, scope: scope, name: name, group: group, limit: limit, hold: amount, reset: reset, opIndex: len(r.ops), soft: soft})
		r.ops = append(r.ops, Op{Key: key, Kind: kind, Amount: amount, Limit: limit, Soft: soft, TTL: ttl})
	}
	win := func(end time.Time) time.Duration { return end.Sub(now) + e.lease }
	add(RuleRequestsPerMinute, l.RequestsPerMinute, 1, w.rpm, Counter, w.minuteEnd, win(w.minuteEnd))
	add(RuleTokensPerMinute, l.TokensPerMinute, r.holdTokens, w.tpm, Counter, w.minuteEnd, win(w.minuteEnd))
	add(RuleTokensPerDay, l.TokensPerDay, r.holdTokens, w.tpd, Counter, w.dayEnd, win(w.dayEnd))
	add(RuleUSDPerMonth, int64(pricing.FromUSD(l.USDPerMonth)), int64(r.holdNano), w.usd, Counter, w.monthEnd, win(w.monthEnd))
	add(RuleConcurrentStreams, l.ConcurrentStreams, 1, w.conc, Lease, time.Time{}, e.lease)
}

// denial builds the denial for the first counter over its limit. values
// are before-values when !admitted and after-values when admitted (then
// only soft counters can be over, and the result is a shadow denial).
func (e *Engine) denial(r *Reservation, values []int64, admitted bool, now time.Time) *Denial {
	for _, c := range r.counters {
		v := values[c.opIndex]
		before := v
		if admitted {
			before = v - c.hold
		}
		if before+c.hold <= c.limit {
			continue
		}
		if !admitted && c.soft {
			continue
		}
		d := &Denial{Status: http.StatusTooManyRequests, ErrorType: anthropic.RateLimitError, Rule: c.rule, Policy: c.name, Group: c.group, Shadow: admitted}
		if c.rule == RuleTokensPerDay || c.rule == RuleUSDPerMonth {
			d.ErrorType = anthropic.BillingError
		}
		if c.reset.IsZero() {
			d.RetryAfter = 5 * time.Second
		} else {
			d.RetryAfter = max(c.reset.Sub(now), time.Second)
		}
		d.Message = e.message(c, before, d.RetryAfter)
		d.Headers = e.rateHeaders(r, values)
		secs := int64((d.RetryAfter + time.Second - 1) / time.Second)
		d.Headers.Set("Retry-After", strconv.FormatInt(secs, 10))
		return d
	}
	return nil
}

func (e *Engine) message(c counter, used int64, wait time.Duration) string {
	who, rule := fmt.Sprintf("policy %q allows you", c.name), fmt.Sprintf("policy %q", c.name)
	if c.scope == "group" {
		who, rule = fmt.Sprintf("group limit %q allows the group", c.name), fmt.Sprintf("group limit %q", c.name)
	}
	when := "Retry after " + wait.Round(time.Second).String()
	if !c.reset.IsZero() {
		when = "It resets at " + c.reset.UTC().Format(time.RFC3339) + " (retry after " + wait.Round(time.Second).String() + ")"
	}
	tooBig := c.hold > c.limit
	switch c.rule {
	case RuleRequestsPerMinute:
		return fmt.Sprintf("Rate limit reached: %s %d requests per minute. %s.", who, c.limit, when)
	case RuleConcurrentStreams:
		return fmt.Sprintf("Too many requests in progress: %s %d at a time. Wait for one to finish.", who, c.limit)
	case RuleTokensPerMinute, RuleTokensPerDay:
		per := "minute"
		if c.rule == RuleTokensPerDay {
			per = "day"
		}
		if tooBig {
			return fmt.Sprintf("This request may use up to %d tokens (estimated input plus max_tokens), more than the %d tokens per %s of %s. Lower max_tokens or start a shorter conversation.", c.hold, c.limit, per, rule)
		}
		return fmt.Sprintf("Token limit reached: %s %d tokens per %s; %d are used or held and this request may need up to %d. %s.", who, c.limit, per, used, c.hold, when)
	case RuleUSDPerMonth:
		if tooBig {
			return fmt.Sprintf("This request may cost up to %s, more than the %s monthly budget of %s. Lower max_tokens or use a cheaper model.", money(c.hold), money(c.limit), rule)
		}
		return fmt.Sprintf("Monthly budget reached: %s %s per month; %s is spent or held and this request may cost up to %s. %s.", who, money(c.limit), money(used), money(c.hold), when)
	}
	return "Usage limit reached. " + when + "."
}

// money formats nano-dollars for messages: cents, or four decimals below $1.
func money(n int64) string {
	usd := pricing.NanoUSD(n).USD()
	if usd < 1 && usd != 0 {
		return fmt.Sprintf("$%.4f", usd)
	}
	return fmt.Sprintf("$%.2f", usd)
}

// rateHeaders renders anthropic-ratelimit-* headers from the user's own
// requests_per_minute and the tightest per-user token limit.
// values are the counters' values (after the reservation when admitted).
func (e *Engine) rateHeaders(r *Reservation, values []int64) http.Header {
	h := make(http.Header, 6)
	hv := func(v string) []string { return []string{v} }
	var tok *counter
	var tokRemaining int64
	for i := range r.counters {
		c := &r.counters[i]
		if c.scope != "user" {
			continue
		}
		used := values[c.opIndex]
		remaining := max(c.limit-used, 0)
		switch c.rule {
		case RuleRequestsPerMinute:
			h["Anthropic-Ratelimit-Requests-Limit"] = hv(strconv.FormatInt(c.limit, 10))
			h["Anthropic-Ratelimit-Requests-Remaining"] = hv(strconv.FormatInt(remaining, 10))
			h["Anthropic-Ratelimit-Requests-Reset"] = hv(c.reset.UTC().Format(time.RFC3339))
		case RuleTokensPerMinute, RuleTokensPerDay:
			if tok == nil || remaining < tokRemaining {
				tok, tokRemaining = c, remaining
			}
		}
	}
	if tok != nil {
		h["Anthropic-Ratelimit-Tokens-Limit"] = hv(strconv.FormatInt(tok.limit, 10))
		h["Anthropic-Ratelimit-Tokens-Remaining"] = hv(strconv.FormatInt(tokRemaining, 10))
		h["Anthropic-Ratelimit-Tokens-Reset"] = hv(tok.reset.UTC().Format(time.RFC3339))
	}
	return h
}

// Headers returns anthropic-ratelimit-* headers for the successful
// response (may be nil). They belong to this reservation and are never
// changed after Admit; callers copy them and must not modify them.
func (r *Reservation) Headers() http.Header {
	if r == nil {
		return nil
	}
	return r.headers
}

// ContentCapture is the policy's content-capture mode ("": the
// gateway-wide setting).
func (r *Reservation) ContentCapture() string {
	if r == nil {
		return ""
	}
	return r.capture
}

// MaxOutputTokens is the policy's max_tokens cap (0: none).
func (r *Reservation) MaxOutputTokens() int64 {
	if r == nil {
		return 0
	}
	return r.maxOut
}

// Policy names the policy that admitted the request.
func (r *Reservation) Policy() string {
	if r == nil {
		return ""
	}
	return r.policyName
}

// Groups returns the IDs of the groups whose group limits counted this
// request (for the audit record, so reports by group agree with limits).
func (r *Reservation) Groups() []string {
	if r == nil {
		return nil
	}
	return r.groups
}

// ShadowDenial returns the denial a shadow-mode rule would have made, or
// nil. The gateway records it in the audit record (reason).
func (r *Reservation) ShadowDenial() *Denial {
	if r == nil {
		return nil
	}
	return r.shadow
}

// Settle releases the worst-case hold, records the real usage u and
// returns its cost in USD. Call it once the response has ended, whatever
// the outcome: an interrupted or failed response is settled with what was
// produced (zero usage if nothing was). Later calls return the first
// result. It never blocks longer than Options.SettleTimeout and ignores
// ctx's cancellation (the client going away must not lose the accounting).
func (r *Reservation) Settle(ctx context.Context, u anthropic.Usage) (costUSD float64) {
	if r == nil {
		return 0
	}
	r.once.Do(func() { r.cost = r.settle(ctx, u) })
	return r.cost
}

func (r *Reservation) settle(ctx context.Context, u anthropic.Usage) float64 {
	e := r.e
	cost := e.prices.Cost(r.model, r.upstream, u)
	if len(r.ops) == 0 {
		return cost.USD()
	}
	now := e.now()
	tokens := e.CountedTokens(u)
	ops := make([]Op, 0, len(r.ops))
	for _, c := range r.counters {
		op := r.ops[c.opIndex]
		op.TTL = 0
		if !c.reset.IsZero() {
			op.TTL = c.reset.Sub(now) + e.lease
		}
		switch c.rule {
		case RuleRequestsPerMinute:
			if r.reserved {
				continue
			}
			op.Amount = 1
		case RuleTokensPerMinute, RuleTokensPerDay:
			op.Amount = tokens
			if r.reserved {
				op.Amount -= r.holdTokens
			}
		case RuleUSDPerMonth:
			op.Amount = int64(cost.Total)
			if r.reserved {
				op.Amount -= int64(r.holdNano)
			}
		case RuleConcurrentStreams:
			if !r.reserved {
				continue
			}
			op.TTL = e.lease
		}
		if op.TTL <= 0 || (op.Kind == Counter && op.Amount == 0) {
			continue
		}
		ops = append(ops, op)
	}
	if len(ops) == 0 {
		return cost.USD()
	}
	sctx := context.WithoutCancel(ctx)
	if !e.local {
		var cancel context.CancelFunc
		sctx, cancel = context.WithTimeout(sctx, e.settleTO)
		defer cancel()
	}
	if err := e.backend.Settle(sctx, r.id, now, ops); err != nil {
		e.stats.backendErrors.Add(1)
		e.stats.settleErrors.Add(1)
		e.log.Error("limits store unavailable: usage not recorded in limits", "model", r.model, "tokens", tokens, "cost_usd", cost.USD(), "err", err)
	}
	if !cost.Known {
		// Once per model and upstream: the operator needs to know, not to
		// be told on every request.
		if _, seen := e.unpriced.LoadOrStore(r.model+"\x00"+r.upstream, true); !seen {
			e.log.Warn("no price for model: cost computed at the highest known rates; add it to pricing", "model", r.model, "upstream", r.upstream)
		}
	}
	return cost.USD()
}
