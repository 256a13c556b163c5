// Package limitstest is the conformance suite every limits.Backend must
// pass: atomic all-or-nothing reservations, soft and unlimited ops, leases
// that expire and release, settles that correct counters, and, under
// heavy concurrency, no admission past a limit, both at the backend and
// through the limits.Engine.
package limitstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/anthropic"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/limits"
	"github.com/gatehouse-dev/gatehouse/internal/policy"
	"github.com/gatehouse-dev/gatehouse/internal/pricing"
)

// Run runs the suite. newBackend returns a backend for one subtest; all
// subtests use unique key prefixes, so one backend may be shared.
func Run(t *testing.T, newBackend func(t *testing.T) limits.Backend) {
	t.Run("ReserveWithinAndOverLimit", func(t *testing.T) { testReserve(t, newBackend(t)) })
	t.Run("AllOrNothing", func(t *testing.T) { testAllOrNothing(t, newBackend(t)) })
	t.Run("SoftAndUnlimited", func(t *testing.T) { testSoft(t, newBackend(t)) })
	t.Run("Lease", func(t *testing.T) { testLease(t, newBackend(t)) })
	t.Run("Settle", func(t *testing.T) { testSettle(t, newBackend(t)) })
	t.Run("CounterExpires", func(t *testing.T) { testExpiry(t, newBackend(t)) })
	t.Run("ConcurrentReserveNeverOverspends", func(t *testing.T) { testConcurrent(t, newBackend(t)) })
	t.Run("EngineConcurrentNeverOverspends", func(t *testing.T) { testEngineConcurrent(t, newBackend(t)) })
	t.Run("EngineDenialsAndSettle", func(t *testing.T) { testEngine(t, newBackend(t)) })
}

// Prefix returns a unique key prefix for one test.
func Prefix(t *testing.T) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	return "gh-test:" + name + ":" + hex.EncodeToString(b[:]) + ":"
}

var ctx = context.Background()

func counter(key string, amount, limit int64) limits.Op {
	return limits.Op{Key: key, Kind: limits.Counter, Amount: amount, Limit: limit, TTL: time.Minute}
}

func mustReserve(t *testing.T, b limits.Backend, id string, now time.Time, ops ...limits.Op) limits.Result {
	t.Helper()
	r, err := b.Reserve(ctx, id, now, ops)
	if err != nil {
		t.Fatalf("Reserve: %v", err)
	}
	if len(r.Values) != len(ops) {
		t.Fatalf("Reserve returned %d values for %d ops", len(r.Values), len(ops))
	}
	return r
}

func eq(t *testing.T, what string, got []int64, want ...int64) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%s: values %v, want %v", what, got, want)
	}
}

func testReserve(t *testing.T, b limits.Backend) {
	p := Prefix(t)
	now := time.Now()
	r := mustReserve(t, b, "a", now, counter(p+"k", 6, 10))
	if !r.OK {
		t.Fatal("6 of 10 refused")
	}
	eq(t, "after first", r.Values, 6)
	r = mustReserve(t, b, "b", now, counter(p+"k", 5, 10))
	if r.OK {
		t.Fatal("11 of 10 admitted")
	}
	eq(t, "refused shows value before", r.Values, 6)
	r = mustReserve(t, b, "c", now, counter(p+"k", 4, 10))
	if !r.OK {
		t.Fatal("exactly 10 of 10 refused")
	}
	eq(t, "filled", r.Values, 10)
	r = mustReserve(t, b, "d", now, counter(p+"k", 1, 10))
	if r.OK {
		t.Fatal("admitted past a full counter")
	}
	// A zero amount against a full counter is still admitted (nothing to add).
	if r = mustReserve(t, b, "e", now, counter(p+"k", 0, 10)); !r.OK {
		t.Fatal("zero amount refused at the limit")
	}
	// A single request bigger than the limit is refused on an empty counter.
	if r = mustReserve(t, b, "f", now, counter(p+"big", 11, 10)); r.OK {
		t.Fatal("request larger than the limit admitted")
	}
	// Large values (nano-dollars) stay exact.
	big := int64(3_000_000_000_000) // $3000
	if r = mustReserve(t, b, "g", now, counter(p+"usd", big, big+1)); !r.OK || r.Values[0] != big {
		t.Fatalf("large amount: %+v", r)
	}
}

func testAllOrNothing(t *testing.T, b limits.Backend) {
	p := Prefix(t)
	now := time.Now()
	mustReserve(t, b, "x", now, counter(p+"b", 9, 10))
	r := mustReserve(t, b, "y", now, counter(p+"a", 5, 10), counter(p+"b", 2, 10), limits.Op{Key: p + "l", Kind: limits.Lease, Amount: 1, Limit: 5, TTL: time.Minute})
	if r.OK {
		t.Fatal("admitted although the second counter is over")
	}
	eq(t, "refusal values", r.Values, 0, 9, 0)
	r = mustReserve(t, b, "z", now, counter(p+"a", 10, 10), counter(p+"b", 1, 10), limits.Op{Key: p + "l", Kind: limits.Lease, Amount: 1, Limit: 1, TTL: time.Minute})
	if !r.OK {
		t.Fatal("refused although all fit")
	}
	eq(t, "nothing leaked from the refused reservation", r.Values, 10, 10, 1)
}

func testSoft(t *testing.T, b limits.Backend) {
	p := Prefix(t)
	now := time.Now()
	soft := counter(p+"s", 8, 5)
	soft.Soft = true
	r := mustReserve(t, b, "a", now, soft, counter(p+"h", 1, 5))
	if !r.OK {
		t.Fatal("a soft op refused")
	}
	eq(t, "soft counted past its limit", r.Values, 8, 1)
	r = mustReserve(t, b, "b", now, counter(p+"u", 1<<40, -1))
	if !r.OK || r.Values[0] != 1<<40 {
		t.Fatalf("unlimited op: %+v", r)
	}
}

func testLease(t *testing.T, b limits.Backend) {
	p := Prefix(t)
	now := time.Now()
	lease := limits.Op{Key: p + "conc", Kind: limits.Lease, Amount: 1, Limit: 2, TTL: 10 * time.Minute}
	for i, id := range []string{"r1", "r2"} {
		r := mustReserve(t, b, id, now, lease)
		if !r.OK || r.Values[0] != int64(i+1) {
			t.Fatalf("lease %s: %+v", id, r)
		}
	}
	if r := mustReserve(t, b, "r3", now, lease); r.OK || r.Values[0] != 2 {
		t.Fatalf("third concurrent admitted: %+v", r)
	}
	if err := b.Settle(ctx, "r1", now, []limits.Op{lease}); err != nil {
		t.Fatal(err)
	}
	if r := mustReserve(t, b, "r3", now, lease); !r.OK || r.Values[0] != 2 {
		t.Fatalf("slot not released: %+v", r)
	}
	// Releasing twice, or an unknown id, changes nothing.
	for _, id := range []string{"r1", "nope"} {
		if err := b.Settle(ctx, id, now, []limits.Op{lease}); err != nil {
			t.Fatal(err)
		}
	}
	if r := mustReserve(t, b, "r4", now, lease); r.OK {
		t.Fatalf("double release freed a slot: %+v", r)
	}
	// Members expire on their own (a crashed gateway never releases).
	later := now.Add(11 * time.Minute)
	if r := mustReserve(t, b, "r5", later, lease); !r.OK || r.Values[0] != 1 {
		t.Fatalf("expired leases still counted: %+v", r)
	}
}

func testSettle(t *testing.T, b limits.Backend) {
	p := Prefix(t)
	now := time.Now()
	mustReserve(t, b, "a", now, counter(p+"t", 1000, 1000))
	// Real usage was 300 of the 1000 held.
	if err := b.Settle(ctx, "a", now, []limits.Op{counter(p+"t", -700, 0)}); err != nil {
		t.Fatal(err)
	}
	r := mustReserve(t, b, "b", now, counter(p+"t", 700, 1000))
	if !r.OK || r.Values[0] != 1000 {
		t.Fatalf("after settle: %+v", r)
	}
	// Settle creates a missing key (usage admitted while the store was down).
	if err := b.Settle(ctx, "c", now, []limits.Op{counter(p+"new", 42, 0)}); err != nil {
		t.Fatal(err)
	}
	if r := mustReserve(t, b, "d", now, counter(p+"new", 0, 100)); r.Values[0] != 42 {
		t.Fatalf("settle on missing key: %+v", r)
	}
	// Ops with no TTL left are skipped.
	skip := counter(p+"skip", 5, 0)
	skip.TTL = 0
	if err := b.Settle(ctx, "e", now, []limits.Op{skip}); err != nil {
		t.Fatal(err)
	}
	if r := mustReserve(t, b, "f", now, counter(p+"skip", 0, 100)); r.Values[0] != 0 {
		t.Fatalf("expired op applied: %+v", r)
	}
}

func testExpiry(t *testing.T, b limits.Backend) {
	p := Prefix(t)
	op := counter(p+"short", 5, 5)
	op.TTL = 100 * time.Millisecond
	if r := mustReserve(t, b, "a", time.Now(), op); !r.OK {
		t.Fatal("refused")
	}
	if r := mustReserve(t, b, "b", time.Now(), op); r.OK {
		t.Fatal("admitted past limit")
	}
	time.Sleep(250 * time.Millisecond)
	if r := mustReserve(t, b, "c", time.Now(), op); !r.OK || r.Values[0] != 5 {
		t.Fatalf("window did not expire: %+v", r)
	}
}

// testConcurrent: 200 goroutines race to reserve 7 units from counters with
// limits 1000 (user) and 700 (group) plus 50 concurrency slots; exactly the
// number that fits is admitted and the counters equal what was admitted.
func testConcurrent(t *testing.T, b limits.Backend) {
	p := Prefix(t)
	now := time.Now()
	const workers = 200
	var admitted atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r, err := b.Reserve(ctx, fmt.Sprintf("r%d", i), now, []limits.Op{
				counter(p+"user", 7, 1000),
				counter(p+"group", 7, 700),
				{Key: p + "conc", Kind: limits.Lease, Amount: 1, Limit: 150, TTL: time.Minute},
			})
			if err != nil {
				errs <- err
				return
			}
			if r.OK {
				admitted.Add(1)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := admitted.Load(); got != 100 {
		t.Fatalf("admitted %d, want exactly 100 (700/7)", got)
	}
	r := mustReserve(t, b, "check", now, counter(p+"user", 0, 1000), counter(p+"group", 0, 700),
		limits.Op{Key: p + "conc", Kind: limits.Lease, Amount: 0, Limit: 1000, TTL: time.Minute})
	eq(t, "counters", r.Values, 700, 700, 100)
}

// fixedClock is a settable clock for engine tests.
type fixedClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fixedClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// testEngineConcurrent proves "cannot overspend" end to end: 200 users'
// worth of concurrent requests from one user against tokens and dollars;
// each settles with a random real usage no larger than its hold; the total
// real usage never exceeds the limits, and the counters equal the real
// usage exactly.
func testEngineConcurrent(t *testing.T, b limits.Backend) {
	p := Prefix(t)
	set, err := policy.New([]policy.Policy{{Name: "all", Limits: policy.Limits{TokensPerMinute: 1_000_000, TokensPerDay: 300_000, USDPerMonth: 2, ConcurrentStreams: 64}}},
		[]policy.GroupLimit{{Group: "g1", Name: "team", Limits: policy.Limits{USDPerMonth: 1.5}}})
	if err != nil {
		t.Fatal(err)
	}
	prices, _ := pricing.New(pricing.Options{})
	clock := &fixedClock{t: time.Date(2026, 11, 24, 10, 30, 0, 0, time.UTC)}
	eng, err := limits.NewEngine(limits.Options{Policies: set, Backend: b, Pricing: prices, Now: clock.Now, KeyPrefix: strings.TrimSuffix(p, ":")})
	if err != nil {
		t.Fatal(err)
	}
	user := identity.Principal{Key: "tenant/user-" + p, Groups: []string{"g1"}}
	const workers = 200
	var mu sync.Mutex
	var tokens int64
	var cost pricing.NanoUSD
	var admitted, denied int
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			rng := mrand.New(mrand.NewPCG(uint64(i), 7))
			req := limits.Request{Model: "claude-sonnet-4-6", EstimatedInputTokens: 2000 + rng.Int64N(8000), MaxTokens: 4000, Stream: true}
			res, err := eng.Admit(ctx, user, req)
			if err != nil {
				var d *limits.Denial
				if !asDenial(err, &d) || d.Status != 429 {
					t.Errorf("unexpected error %v", err)
				}
				mu.Lock()
				denied++
				mu.Unlock()
				return
			}
			// Real usage within the hold, split across all categories.
			in := rng.Int64N(req.EstimatedInputTokens + 1)
			cr := rng.Int64N(in + 1)
			cw := rng.Int64N(in - cr + 1)
			u := anthropic.Usage{InputTokens: in - cr - cw, CacheReadInputTokens: cr, CacheCreationInputTokens: cw, OutputTokens: rng.Int64N(req.MaxTokens + 1)}
			c := res.Settle(ctx, u)
			mu.Lock()
			admitted++
			tokens += eng.CountedTokens(u)
			cost += prices.Cost(req.Model, "", u).Total
			mu.Unlock()
			if math.Abs(c-prices.Cost(req.Model, "", u).USD()) > 1e-12 {
				t.Errorf("Settle cost %v != table cost", c)
			}
		}(i)
	}
	wg.Wait()
	if admitted == 0 || denied == 0 {
		t.Fatalf("admitted %d denied %d: the test must hit the limit", admitted, denied)
	}
	if tokens > 300_000 {
		t.Fatalf("overspent tokens_per_day: %d > 300000", tokens)
	}
	if cost > pricing.FromUSD(1.5) {
		t.Fatalf("overspent the group budget: %s > $1.50", cost)
	}
	// The counters hold exactly the real usage (holds were released).
	dayKey := eng.CounterKey("u", user.Key, limits.RuleTokensPerDay, clock.Now())
	usdKey := eng.CounterKey("g", "g1", limits.RuleUSDPerMonth, clock.Now())
	concKey := eng.CounterKey("u", user.Key, limits.RuleConcurrentStreams, clock.Now())
	if want := strings.TrimSuffix(p, ":") + ":u:" + limits.HashKey(user.Key) + ":tpd:20261124"; dayKey != want {
		t.Fatalf("CounterKey = %q, want %q", dayKey, want)
	}
	r := mustReserve(t, b, "check", clock.Now(), counter(dayKey, 0, -1), counter(usdKey, 0, -1),
		limits.Op{Key: concKey, Kind: limits.Lease, Amount: 0, Limit: -1, TTL: time.Minute})
	eq(t, "counters after settle (tokens, group nano-USD, open streams)", r.Values, tokens, int64(cost), 0)
	if s := eng.Stats(); s.Admitted != uint64(admitted) || s.Denied != uint64(denied) || s.BackendErrors != 0 {
		t.Fatalf("stats %+v, admitted %d denied %d", s, admitted, denied)
	}
	t.Logf("admitted %d, denied %d, tokens %d of 300000, group cost %s of $1.50", admitted, denied, tokens, cost)
}

func asDenial(err error, d **limits.Denial) bool {
	x, ok := err.(*limits.Denial)
	*d = x
	return ok
}

func testEngine(t *testing.T, b limits.Backend) {
	p := strings.TrimSuffix(Prefix(t), ":")
	set, err := policy.New([]policy.Policy{
		{Name: "everyone", Models: []string{"claude-haiku-4-5", "claude-sonnet-*"}, MaxOutputTokens: 8000,
			Limits: policy.Limits{RequestsPerMinute: 3, TokensPerMinute: 50_000, ConcurrentStreams: 2}},
		{Name: "watch", Match: policy.Match{Roles: []string{"watched"}}, Shadow: true, Models: []string{"claude-haiku-4-5"},
			Limits: policy.Limits{RequestsPerMinute: 1}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	clock := &fixedClock{t: time.Date(2026, 11, 24, 10, 30, 15, 0, time.UTC)}
	eng, err := limits.NewEngine(limits.Options{Policies: set, Backend: b, Now: clock.Now, KeyPrefix: p})
	if err != nil {
		t.Fatal(err)
	}
	u := identity.Principal{Key: "t/u-" + p}
	small := limits.Request{Model: "claude-haiku-4-5", EstimatedInputTokens: 1000, MaxTokens: 1000}

	// Model not allowed: 403 naming the policy.
	_, err = eng.Admit(ctx, u, limits.Request{Model: "claude-opus-4-6", MaxTokens: 10})
	var d *limits.Denial
	if !asDenial(err, &d) || d.Status != 403 || d.ErrorType != "permission_error" || !strings.Contains(d.Message, `"everyone"`) || d.Rule != limits.RuleModel {
		t.Fatalf("model denial: %#v", err)
	}
	// max_tokens above the cap: 400.
	_, err = eng.Admit(ctx, u, limits.Request{Model: "claude-haiku-4-5", MaxTokens: 8001})
	if !asDenial(err, &d) || d.Status != 400 || d.Rule != limits.RuleMaxOutputTokens {
		t.Fatalf("max_tokens denial: %#v", err)
	}
	// Two streams at once fill concurrent_streams.
	r1, err := eng.Admit(ctx, u, small)
	if err != nil {
		t.Fatal(err)
	}
	if h := r1.Headers(); h.Get("anthropic-ratelimit-requests-limit") != "3" || h.Get("anthropic-ratelimit-requests-remaining") != "2" ||
		h.Get("anthropic-ratelimit-tokens-remaining") != "48000" || h.Get("anthropic-ratelimit-requests-reset") != "2026-11-24T10:31:00Z" {
		t.Fatalf("headers %v", h)
	}
	r2, err := eng.Admit(ctx, u, small)
	if err != nil {
		t.Fatal(err)
	}
	_, err = eng.Admit(ctx, u, small)
	if !asDenial(err, &d) || d.Rule != limits.RuleConcurrentStreams || d.Status != 429 || d.ErrorType != "rate_limit_error" || d.Headers.Get("Retry-After") == "" {
		t.Fatalf("concurrency denial: %#v", err)
	}
	r1.Settle(ctx, anthropic.Usage{InputTokens: 10, OutputTokens: 5})
	r1.Settle(ctx, anthropic.Usage{InputTokens: 999999}) // idempotent
	r2.Settle(ctx, anthropic.Usage{})
	// requests_per_minute: the denied attempt above did not count; one left.
	r3, err := eng.Admit(ctx, u, small)
	if err != nil {
		t.Fatal(err)
	}
	r3.Settle(ctx, anthropic.Usage{InputTokens: 1})
	_, err = eng.Admit(ctx, u, small)
	if !asDenial(err, &d) || d.Rule != limits.RuleRequestsPerMinute || d.RetryAfter != 45*time.Second || d.Headers.Get("Retry-After") != "45" ||
		d.Headers.Get("anthropic-ratelimit-requests-remaining") != "0" || !strings.Contains(d.Message, "3 requests per minute") {
		t.Fatalf("rpm denial: %#v", err)
	}
	// Next minute: allowed again; tokens_per_minute refuses a request whose
	// hold alone is over the limit, with an actionable message.
	clock.mu.Lock()
	clock.t = clock.t.Add(time.Minute)
	clock.mu.Unlock()
	_, err = eng.Admit(ctx, u, limits.Request{Model: "claude-sonnet-4-6", EstimatedInputTokens: 49_000, MaxTokens: 8000})
	if !asDenial(err, &d) || d.Rule != limits.RuleTokensPerMinute || !strings.Contains(d.Message, "Lower max_tokens") {
		t.Fatalf("tpm denial: %#v", err)
	}
	if _, err := eng.Admit(ctx, u, small); err != nil {
		t.Fatalf("new minute: %v", err)
	}
	// Shadow policy: over the limit and wrong model, yet admitted, with the
	// would-be denial reported.
	w := identity.Principal{Key: "t/w-" + p, Roles: []string{"watched"}}
	for i := 0; i < 3; i++ {
		r, err := eng.Admit(ctx, w, limits.Request{Model: "claude-opus-4-6", MaxTokens: 100})
		if err != nil {
			t.Fatalf("shadow mode denied: %v", err)
		}
		if sd := r.ShadowDenial(); sd == nil || !sd.Shadow {
			t.Fatalf("shadow denial missing on request %d", i)
		}
		r.Settle(ctx, anthropic.Usage{})
	}
	if got := eng.AllowedModels(u, []string{"claude-opus-4-6", "claude-haiku-4-5", "claude-sonnet-4-6"}); fmt.Sprint(got) != "[claude-haiku-4-5 claude-sonnet-4-6]" {
		t.Fatalf("AllowedModels = %v", got)
	}
}

// Bench measures one Admit plus Settle through the engine with a typical
// policy (five per-user limits and one group budget: six counters), serial
// and parallel. Limits are high enough never to refuse.
func Bench(b *testing.B, backend limits.Backend) {
	set, err := policy.New([]policy.Policy{{Name: "all", Models: []string{"claude-sonnet-*"}, MaxOutputTokens: 32000, Limits: policy.Limits{
		RequestsPerMinute: 1 << 40, TokensPerMinute: 1 << 50, TokensPerDay: 1 << 50, USDPerMonth: 1e8, ConcurrentStreams: 1 << 30}}},
		[]policy.GroupLimit{{Group: "g", Limits: policy.Limits{USDPerMonth: 1e8}}})
	if err != nil {
		b.Fatal(err)
	}
	var pb [6]byte
	_, _ = rand.Read(pb[:])
	eng, err := limits.NewEngine(limits.Options{Policies: set, Backend: backend, KeyPrefix: "gh-bench-" + hex.EncodeToString(pb[:])})
	if err != nil {
		b.Fatal(err)
	}
	user := identity.Principal{Key: "tenant/bench-user", Groups: []string{"g", "other-1", "other-2"}}
	req := limits.Request{Model: "claude-sonnet-4-6", EstimatedInputTokens: 50_000, MaxTokens: 16_000, Stream: true}
	usage := anthropic.Usage{InputTokens: 100, CacheReadInputTokens: 40_000, OutputTokens: 900}
	run := func(b *testing.B, next func() bool) {
		for next() {
			r, err := eng.Admit(ctx, user, req)
			if err != nil {
				b.Fatal(err)
			}
			r.Settle(ctx, usage)
		}
	}
	b.Run("admit-only", func(b *testing.B) {
		// Admit is on the request path; Settle runs after the response.
		// Up to 64 requests are in flight, settled outside the timer.
		b.ReportAllocs()
		held := make([]*limits.Reservation, 0, 64)
		settle := func() {
			b.StopTimer()
			for _, r := range held {
				r.Settle(ctx, usage)
			}
			held = held[:0]
			b.StartTimer()
		}
		for i := 0; i < b.N; i++ {
			r, err := eng.Admit(ctx, user, req)
			if err != nil {
				b.Fatal(err)
			}
			if held = append(held, r); len(held) == cap(held) {
				settle()
			}
		}
		settle()
	})
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		run(b, func() bool { i++; return i <= b.N })
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) { run(b, pb.Next) })
	})
}

// LoadResult summarises a concurrent load (see Load).
type LoadResult struct {
	Statuses map[int]int     // responses by HTTP status (0: transport error)
	Usage    anthropic.Usage // summed usage of the successful responses
	Errors   []error         // transport errors (at most 10 kept)
}

// Load runs workers goroutines that each call send perWorker times, and
// sums what came back. send performs one request (for example against one
// of several gateway processes, chosen by worker) and returns the HTTP
// status and the usage the response reported. End-to-end tests use it to
// show that a shared quota holds across replicas:
//
//	res := limitstest.Load(200, 3, func(w, i int) (int, anthropic.Usage, error) { ... })
//	if res.Usage.Total() > limit { t.Fatal("overspent") }
func Load(workers, perWorker int, send func(worker, i int) (int, anthropic.Usage, error)) LoadResult {
	res := LoadResult{Statuses: map[int]int{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < perWorker; i++ {
				status, u, err := send(w, i)
				mu.Lock()
				if err != nil {
					status = 0
					if len(res.Errors) < 10 {
						res.Errors = append(res.Errors, err)
					}
				}
				res.Statuses[status]++
				if status == 200 {
					res.Usage.InputTokens += u.InputTokens
					res.Usage.OutputTokens += u.OutputTokens
					res.Usage.CacheCreationInputTokens += u.CacheCreationInputTokens
					res.Usage.CacheReadInputTokens += u.CacheReadInputTokens
					res.Usage.CacheCreation5m += u.CacheCreation5m
					res.Usage.CacheCreation1h += u.CacheCreation1h
				}
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	return res
}
