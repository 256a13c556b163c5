package redis_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/anthropic"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/limits"
	"github.com/gatehouse-dev/gatehouse/internal/policy"
	"github.com/gatehouse-dev/gatehouse/internal/pricing"
)

// The shared quota of the two-process test: one user, one group.
func sharedEngine(t testing.TB, prefix string, now func() time.Time) *limits.Engine {
	set, err := policy.New([]policy.Policy{{Name: "all", Limits: policy.Limits{TokensPerDay: 400_000, USDPerMonth: 3, ConcurrentStreams: 20}}},
		[]policy.GroupLimit{{Group: "team", Limits: policy.Limits{USDPerMonth: 2.5}}})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := limits.NewEngine(limits.Options{Policies: set, Backend: newBackend(t), KeyPrefix: prefix, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return eng
}

var sharedUser = identity.Principal{Key: "tenant/shared-user", Groups: []string{"team"}}

type procResult struct {
	Admitted, Denied int
	Tokens           int64
	CostNano         int64
}

// TestHelperProcess is one "gateway process" of TestTwoProcessesShareOneQuota.
// It does nothing unless started by that test.
func TestHelperProcess(t *testing.T) {
	prefix := os.Getenv("GATEHOUSE_LIMITS_HELPER_PREFIX")
	if prefix == "" {
		t.Skip("helper process for TestTwoProcessesShareOneQuota")
	}
	seed, _ := strconv.ParseUint(os.Getenv("GATEHOUSE_LIMITS_HELPER_SEED"), 10, 64)
	at, _ := time.Parse(time.RFC3339, os.Getenv("GATEHOUSE_LIMITS_HELPER_TIME"))
	eng := sharedEngine(t, prefix, func() time.Time { return at })
	prices, _ := pricing.New(pricing.Options{})
	var mu sync.Mutex
	var res procResult
	var wg sync.WaitGroup
	for g := 0; g < 100; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(g)))
			for i := 0; i < 3; i++ {
				req := limits.Request{Model: "claude-sonnet-4-6", EstimatedInputTokens: 5000 + rng.Int64N(20000), MaxTokens: 8000, Stream: true}
				r, err := eng.Admit(context.Background(), sharedUser, req)
				if err != nil {
					if d, ok := err.(*limits.Denial); !ok || d.Status != 429 {
						t.Errorf("unexpected: %v", err)
					}
					mu.Lock()
					res.Denied++
					mu.Unlock()
					continue
				}
				time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond) // "streaming"
				in := rng.Int64N(req.EstimatedInputTokens + 1)
				cr := rng.Int64N(in + 1)
				u := anthropic.Usage{InputTokens: in - cr, CacheReadInputTokens: cr, OutputTokens: rng.Int64N(req.MaxTokens + 1)}
				r.Settle(context.Background(), u)
				mu.Lock()
				res.Admitted++
				res.Tokens += eng.CountedTokens(u)
				res.CostNano += int64(prices.Cost(req.Model, "", u).Total)
				mu.Unlock()
			}
		}(g)
	}
	wg.Wait()
	b, _ := json.Marshal(res)
	fmt.Printf("RESULT %s\n", b)
}

// TestTwoProcessesShareOneQuota runs two OS processes, each with its own
// engine and Redis connection pool, hammering one user's and one group's
// budgets at the same time (100 goroutines x 3 requests each). Together
// they never exceed the limits, and Redis ends holding exactly the real
// usage of both.
func TestTwoProcessesShareOneQuota(t *testing.T) {
	if os.Getenv("GATEHOUSE_LIMITS_HELPER_PREFIX") != "" {
		t.Skip("inside a helper process")
	}
	newBackend(t) // skip or fail early when Redis is not configured
	prefix := "gh-2proc-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	at := time.Now().UTC().Truncate(time.Second)
	var results [2]procResult
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.v")
			cmd.Env = append(os.Environ(), "GATEHOUSE_LIMITS_HELPER_PREFIX="+prefix,
				"GATEHOUSE_LIMITS_HELPER_SEED="+strconv.Itoa(i+1), "GATEHOUSE_LIMITS_HELPER_TIME="+at.Format(time.RFC3339))
			out, err := cmd.CombinedOutput()
			if err != nil {
				errs <- fmt.Errorf("process %d: %v\n%s", i, err, out)
				return
			}
			var line []byte
			for _, l := range splitLines(out) {
				if len(l) > 7 && string(l[:7]) == "RESULT " {
					line = l[7:]
				}
			}
			if err := json.Unmarshal(line, &results[i]); err != nil {
				errs <- fmt.Errorf("process %d: no result: %v\n%s", i, err, out)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var total procResult
	for _, r := range results {
		if r.Admitted == 0 {
			t.Fatalf("a process admitted nothing: %+v", results)
		}
		total.Admitted += r.Admitted
		total.Denied += r.Denied
		total.Tokens += r.Tokens
		total.CostNano += r.CostNano
	}
	if total.Denied == 0 {
		t.Fatalf("the limits were never reached: %+v", total)
	}
	if total.Tokens > 400_000 {
		t.Fatalf("OVERSPENT tokens_per_day across processes: %d > 400000", total.Tokens)
	}
	if total.CostNano > int64(pricing.FromUSD(2.5)) {
		t.Fatalf("OVERSPENT the group budget across processes: %s > $2.50", pricing.NanoUSD(total.CostNano))
	}
	eng := sharedEngine(t, prefix, func() time.Time { return at })
	b := newBackend(t)
	r, err := b.Reserve(context.Background(), "peek", at, []limits.Op{
		{Key: eng.CounterKey("u", sharedUser.Key, limits.RuleTokensPerDay, at), Limit: -1, TTL: time.Minute},
		{Key: eng.CounterKey("g", "team", limits.RuleUSDPerMonth, at), Limit: -1, TTL: time.Minute},
		{Key: eng.CounterKey("u", sharedUser.Key, limits.RuleConcurrentStreams, at), Kind: limits.Lease, Limit: -1, TTL: time.Minute},
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Values[0] != total.Tokens || r.Values[1] != total.CostNano || r.Values[2] != 0 {
		t.Fatalf("Redis holds tokens %d, nano-USD %d, open streams %d; the processes used %d tokens, %d nano-USD", r.Values[0], r.Values[1], r.Values[2], total.Tokens, total.CostNano)
	}
	t.Logf("2 processes: admitted %d, denied %d, tokens %d of 400000, group cost %s of $2.50", total.Admitted, total.Denied, total.Tokens, pricing.NanoUSD(total.CostNano))
}

func splitLines(b []byte) [][]byte {
	var out [][]byte
	start := 0
	for i, c := range b {
		if c == '\n' {
			out = append(out, b[start:i])
			start = i + 1
		}
	}
	return append(out, b[start:])
}
