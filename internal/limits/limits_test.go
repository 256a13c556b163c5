package limits_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/anthropic"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/limits"
	"github.com/gatehouse-dev/gatehouse/internal/limits/memory"
	"github.com/gatehouse-dev/gatehouse/internal/policy"
)

var ctx = context.Background()

// flaky wraps a backend and fails while down is set.
type flaky struct {
	mu   sync.Mutex
	down bool
	b    limits.Backend
}

var errDown = errors.New("dial tcp 127.0.0.1:6379: connection refused")

func (f *flaky) set(down bool) { f.mu.Lock(); f.down = down; f.mu.Unlock() }
func (f *flaky) isDown() bool  { f.mu.Lock(); defer f.mu.Unlock(); return f.down }
func (f *flaky) Reserve(ctx context.Context, id string, now time.Time, ops []limits.Op) (limits.Result, error) {
	if f.isDown() {
		return limits.Result{}, errDown
	}
	return f.b.Reserve(ctx, id, now, ops)
}
func (f *flaky) Settle(ctx context.Context, id string, now time.Time, ops []limits.Op) error {
	if f.isDown() {
		return errDown
	}
	return f.b.Settle(ctx, id, now, ops)
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func engine(t *testing.T, ps []policy.Policy, gs []policy.GroupLimit, b limits.Backend, now *clock, log *bytes.Buffer) *limits.Engine {
	t.Helper()
	set, err := policy.New(ps, gs)
	if err != nil {
		t.Fatal(err)
	}
	var lg *slog.Logger
	if log != nil {
		lg = slog.New(slog.NewTextHandler(log, nil))
	}
	e, err := limits.NewEngine(limits.Options{Policies: set, Backend: b, Now: now.Now, Logger: lg})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func denial(t *testing.T, err error) *limits.Denial {
	t.Helper()
	var d *limits.Denial
	if !errors.As(err, &d) {
		t.Fatalf("want a *Denial, got %v", err)
	}
	return d
}

func TestFailClosedAndOpen(t *testing.T) {
	now := &clock{t: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)}
	mem := memory.New()
	fb := &flaky{b: mem}
	var log bytes.Buffer
	e := engine(t, []policy.Policy{
		{Name: "strict", Match: policy.Match{Roles: []string{"strict"}}, Limits: policy.Limits{TokensPerDay: 10_000}},
		{Name: "lenient", FailOpen: true, Limits: policy.Limits{TokensPerDay: 10_000, ConcurrentStreams: 1}},
	}, nil, fb, now, &log)
	req := limits.Request{Model: "claude-sonnet-4-6", EstimatedInputTokens: 1000, MaxTokens: 1000}
	fb.set(true)

	_, err := e.Admit(ctx, identity.Principal{Key: "t/s", Roles: []string{"strict"}}, req)
	d := denial(t, err)
	if d.Status != 503 || d.ErrorType != "api_error" || d.Rule != limits.RuleStoreUnavailable || d.Headers.Get("Retry-After") != "5" {
		t.Fatalf("fail-closed denial: %+v", d)
	}
	if strings.Contains(d.Message, "6379") {
		t.Fatalf("the user-facing message leaks the logged cause: %q", d.Message)
	}

	u := identity.Principal{Key: "t/l"}
	r, err := e.Admit(ctx, u, req)
	if err != nil {
		t.Fatalf("fail-open refused: %v", err)
	}
	s := e.Stats()
	if s.FailedClosed != 1 || s.FailedOpen != 1 || s.BackendErrors != 2 {
		t.Fatalf("stats %+v", s)
	}
	if !strings.Contains(log.String(), "fail-open") || !strings.Contains(log.String(), "fail-closed") || !strings.Contains(log.String(), "connection refused") {
		t.Fatalf("log lines missing:\n%s", log.String())
	}
	// The store comes back before the response ends: the usage admitted
	// uncounted is still recorded (no free tokens), and no phantom stream
	// slot is released.
	fb.set(false)
	r.Settle(ctx, anthropic.Usage{InputTokens: 700, OutputTokens: 300})
	res, err := mem.Reserve(ctx, "peek", now.Now(), []limits.Op{{Key: e.CounterKey("u", "t/l", limits.RuleTokensPerDay, now.Now()), Limit: -1, TTL: time.Hour}})
	if err != nil || res.Values[0] != 1000 {
		t.Fatalf("usage admitted while the store was down: %+v %v", res, err)
	}
	// Now the user is at 1000 of 10000 and has one slot: 9000 more fit.
	r2, err := e.Admit(ctx, u, limits.Request{Model: "claude-sonnet-4-6", EstimatedInputTokens: 4000, MaxTokens: 5000})
	if err != nil {
		t.Fatal(err)
	}
	r2.Settle(ctx, anthropic.Usage{})
}

func TestSettleErrorsCounted(t *testing.T) {
	now := &clock{t: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)}
	fb := &flaky{b: memory.New()}
	e := engine(t, []policy.Policy{{Name: "p", Limits: policy.Limits{TokensPerMinute: 100_000}}}, nil, fb, now, nil)
	r, err := e.Admit(ctx, identity.Principal{Key: "k"}, limits.Request{Model: "claude-haiku-4-5", EstimatedInputTokens: 10, MaxTokens: 10})
	if err != nil {
		t.Fatal(err)
	}
	fb.set(true)
	if c := r.Settle(ctx, anthropic.Usage{InputTokens: 1_000_000}); c != 1.0 {
		t.Fatalf("cost %v, want 1.0 even when the store is down", c)
	}
	if s := e.Stats(); s.SettleErrors != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestNoPolicyMatches(t *testing.T) {
	now := &clock{t: time.Now()}
	e := engine(t, []policy.Policy{{Name: "eng", Match: policy.Match{Groups: []string{"g"}}}}, nil, memory.New(), now, nil)
	_, err := e.Admit(ctx, identity.Principal{Key: "k"}, limits.Request{Model: "m"})
	if d := denial(t, err); d.Status != 403 || d.Rule != limits.RuleNoPolicy {
		t.Fatalf("%+v", d)
	}
	if got := e.AllowedModels(identity.Principal{Key: "k"}, []string{"a"}); len(got) != 0 {
		t.Fatalf("AllowedModels = %v", got)
	}
}

func TestBudgetDenialIsBillingError(t *testing.T) {
	now := &clock{t: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)}
	e := engine(t, nil, []policy.GroupLimit{{Group: "g", Name: "finance", Limits: policy.Limits{USDPerMonth: 1}}}, memory.New(), now, nil)
	u := identity.Principal{Key: "k", Groups: []string{"g"}}
	// Opus 4.6: 100k input held at the 1h cache-write rate ($10/MTok) = $1,
	// plus output: over the $1 budget by itself.
	_, err := e.Admit(ctx, u, limits.Request{Model: "claude-opus-4-6", EstimatedInputTokens: 100_000, MaxTokens: 1000})
	d := denial(t, err)
	if d.Status != 429 || d.ErrorType != "billing_error" || d.Rule != limits.RuleUSDPerMonth || d.Group != "g" || !strings.Contains(d.Message, `group limit "finance"`) {
		t.Fatalf("%+v", d)
	}
	// Spend $0.90 for real, then a request that could cost $0.105 is refused
	// until the month ends.
	r, err := e.Admit(ctx, u, limits.Request{Model: "claude-opus-4-6", EstimatedInputTokens: 10_000, MaxTokens: 30_000})
	if err != nil {
		t.Fatal(err)
	}
	if c := r.Settle(ctx, anthropic.Usage{InputTokens: 80_000, OutputTokens: 20_000}); c != 0.9 {
		t.Fatalf("cost %v", c)
	}
	_, err = e.Admit(ctx, u, limits.Request{Model: "claude-opus-4-6", EstimatedInputTokens: 500, MaxTokens: 4000})
	d = denial(t, err)
	if d.ErrorType != "billing_error" || d.Headers.Get("Retry-After") != "568800" || !strings.Contains(d.Message, "2026-12-01T00:00:00Z") {
		t.Fatalf("%+v %v", d, d.Headers)
	}
	// A cheap request still fits in the remaining $0.10.
	if _, err := e.Admit(ctx, u, limits.Request{Model: "claude-haiku-4-5", EstimatedInputTokens: 500, MaxTokens: 4000}); err != nil {
		t.Fatal(err)
	}
	// Next month the budget is fresh.
	now.Advance(7 * 24 * time.Hour)
	if _, err := e.Admit(ctx, u, limits.Request{Model: "claude-opus-4-6", EstimatedInputTokens: 500, MaxTokens: 4000}); err != nil {
		t.Fatal(err)
	}
}

// A settle that arrives after its minute has ended corrects the minute it
// was admitted in, not the current one.
func TestLateSettleCorrectsAdmissionWindow(t *testing.T) {
	now := &clock{t: time.Date(2026, 11, 24, 10, 0, 50, 0, time.UTC)}
	e := engine(t, []policy.Policy{{Name: "p", Limits: policy.Limits{TokensPerMinute: 10_000}}}, nil, memory.New(), now, nil)
	u := identity.Principal{Key: "k"}
	r, err := e.Admit(ctx, u, limits.Request{Model: "claude-haiku-4-5", EstimatedInputTokens: 4000, MaxTokens: 4000})
	if err != nil {
		t.Fatal(err)
	}
	now.Advance(20 * time.Second) // 10:01:10
	r2, err := e.Admit(ctx, u, limits.Request{Model: "claude-haiku-4-5", EstimatedInputTokens: 5000, MaxTokens: 5000})
	if err != nil {
		t.Fatalf("new minute should start empty: %v", err)
	}
	r.Settle(ctx, anthropic.Usage{InputTokens: 100, OutputTokens: 100})
	// The current minute holds 10000 (r2): full, whatever r settled.
	_, err = e.Admit(ctx, u, limits.Request{Model: "claude-haiku-4-5", EstimatedInputTokens: 1})
	if d := denial(t, err); d.Rule != limits.RuleTokensPerMinute {
		t.Fatalf("%+v", d)
	}
	r2.Settle(ctx, anthropic.Usage{InputTokens: 1000})
	if _, err := e.Admit(ctx, u, limits.Request{Model: "claude-haiku-4-5", EstimatedInputTokens: 8000, MaxTokens: 1000}); err != nil {
		t.Fatalf("after settle: %v", err)
	}
}

func TestUnlimitedNeedsNoBackend(t *testing.T) {
	e, err := limits.NewEngine(limits.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := e.Admit(ctx, identity.Principal{Key: "k"}, limits.Request{Model: "claude-sonnet-4-6", MaxTokens: 100})
	if err != nil {
		t.Fatal(err)
	}
	if c := r.Settle(ctx, anthropic.Usage{InputTokens: 1_000_000}); c != 3 {
		t.Fatalf("cost %v", c)
	}
	set, _ := policy.New([]policy.Policy{{Name: "p", Limits: policy.Limits{RequestsPerMinute: 1}}}, nil)
	if _, err := limits.NewEngine(limits.Options{Policies: set}); err == nil {
		t.Fatal("limits without a backend accepted")
	}
}

func TestEstimateInputTokens(t *testing.T) {
	for in, want := range map[int64]int64{0: 0, -1: 0, 1: 1, 2: 1, 3: 2, 1 << 20: 1 << 19} {
		if got := limits.EstimateInputTokens(in); got != want {
			t.Errorf("EstimateInputTokens(%d) = %d, want %d", in, got, want)
		}
	}
}

func TestCacheReadsAndTokenLimits(t *testing.T) {
	for _, countReads := range []bool{false, true} {
		now := &clock{t: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)}
		set, _ := policy.New([]policy.Policy{{Name: "p", Limits: policy.Limits{TokensPerDay: 1_000_000}}}, nil)
		mem := memory.New()
		e, err := limits.NewEngine(limits.Options{Policies: set, Backend: mem, Now: now.Now, CountCacheReads: countReads})
		if err != nil {
			t.Fatal(err)
		}
		r, err := e.Admit(ctx, identity.Principal{Key: "k"}, limits.Request{Model: "claude-sonnet-4-6", EstimatedInputTokens: 60_000, MaxTokens: 1000})
		if err != nil {
			t.Fatal(err)
		}
		r.Settle(ctx, anthropic.Usage{InputTokens: 100, CacheCreationInputTokens: 400, CacheReadInputTokens: 50_000, OutputTokens: 500})
		res, _ := mem.Reserve(ctx, "peek", now.Now(), []limits.Op{{Key: e.CounterKey("u", "k", limits.RuleTokensPerDay, now.Now()), Limit: -1, TTL: time.Hour}})
		want := int64(1000)
		if countReads {
			want = 51_000
		}
		if res.Values[0] != want {
			t.Errorf("CountCacheReads=%v: tokens_per_day counted %d, want %d", countReads, res.Values[0], want)
		}
	}
}

func TestCancelledAdmissionIsNotAStoreFailure(t *testing.T) {
	now := &clock{t: time.Now()}
	e := engine(t, []policy.Policy{{Name: "p", Limits: policy.Limits{RequestsPerMinute: 5}}}, nil, memory.New(), now, nil)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err := e.Admit(cctx, identity.Principal{Key: "k"}, limits.Request{Model: "m"})
	if d := denial(t, err); d.Status != 503 {
		t.Fatalf("%+v", d)
	}
	if s := e.Stats(); s.BackendErrors != 0 || s.FailedClosed != 0 {
		t.Fatalf("a cancelled request counted as a store failure: %+v", s)
	}
}

// capturing records the ops of each Reserve.
type capturing struct {
	limits.Backend
	ops []limits.Op
}

func (c *capturing) Reserve(ctx context.Context, id string, now time.Time, ops []limits.Op) (limits.Result, error) {
	c.ops = ops
	return c.Backend.Reserve(ctx, id, now, ops)
}

// A reservation lives as long as its request (a stream: minutes), so its
// ops are allocated at their exact count, with no spare capacity.
func TestReservationOpsAreExact(t *testing.T) {
	now := &clock{t: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)}
	b := &capturing{Backend: memory.New()}
	all := policy.Limits{RequestsPerMinute: 100, TokensPerMinute: 1e6, TokensPerDay: 1e7, USDPerMonth: 100, ConcurrentStreams: 5}
	e := engine(t, []policy.Policy{{Name: "p", Limits: all}},
		[]policy.GroupLimit{{Group: "g", Name: "team", Limits: policy.Limits{RequestsPerMinute: 1000, ConcurrentStreams: 50}}}, b, now, nil)
	r, err := e.Admit(ctx, identity.Principal{Key: "k", Groups: []string{"g"}}, limits.Request{Model: "claude-sonnet-4-6", MaxTokens: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Settle(ctx, anthropic.Usage{})
	if len(b.ops) != 7 || cap(b.ops) != 7 {
		t.Fatalf("ops: len %d cap %d, want 7 and 7", len(b.ops), cap(b.ops))
	}
}

// settleDeadlines wraps a backend and records whether each Settle's
// context had a deadline.
type settleDeadlines struct {
	limits.Backend
	deadlines []bool
}

func (s *settleDeadlines) Settle(ctx context.Context, id string, now time.Time, ops []limits.Op) error {
	_, ok := ctx.Deadline()
	s.deadlines = append(s.deadlines, ok)
	return s.Backend.Settle(ctx, id, now, ops)
}

type localSettleDeadlines struct{ *settleDeadlines }

func (localSettleDeadlines) LocalCounters() {}

// TestSettleDeadlineOnlyForRemoteBackends: Settle is bounded by
// SettleTimeout on a backend that waits on I/O (Redis), and runs without a
// timer on an in-process one.
func TestSettleDeadlineOnlyForRemoteBackends(t *testing.T) {
	if _, ok := limits.Backend(memory.New()).(limits.LocalBackend); !ok {
		t.Fatal("the memory backend does not declare itself local")
	}
	for _, local := range []bool{false, true} {
		now := &clock{t: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)}
		sd := &settleDeadlines{Backend: memory.New()}
		var b limits.Backend = sd
		if local {
			b = localSettleDeadlines{sd}
		}
		e := engine(t, []policy.Policy{{Name: "p", Limits: policy.Limits{TokensPerMinute: 100_000}}}, nil, b, now, nil)
		r, err := e.Admit(ctx, identity.Principal{Key: "k"}, limits.Request{Model: "claude-haiku-4-5", EstimatedInputTokens: 10, MaxTokens: 10})
		if err != nil {
			t.Fatal(err)
		}
		r.Settle(ctx, anthropic.Usage{InputTokens: 5})
		if len(sd.deadlines) != 1 || sd.deadlines[0] == local {
			t.Fatalf("local %v: deadlines %v", local, sd.deadlines)
		}
	}
}
