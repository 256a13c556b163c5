package pricing_test

import (
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/anthropic"
	"github.com/gatehouse-dev/gatehouse/internal/pricing"
)

// FuzzCost: model names come from clients and usage from upstream bodies;
// neither may panic the pricer, and the admission hold always bounds the
// real cost.
func FuzzCost(f *testing.F) {
	f.Add("claude-sonnet-4-5-20250929", int64(5000), int64(10000), int64(190000), int64(1000), int64(2000), int64(200))
	f.Add("us.anthropic.claude-haiku-4-5-v1:0", int64(1), int64(0), int64(0), int64(0), int64(0), int64(1))
	f.Add("anthropic.", int64(-1), int64(-5), int64(3), int64(9), int64(-2), int64(0))
	f.Add("", int64(0), int64(0), int64(0), int64(0), int64(0), int64(0))
	tb, err := pricing.New(pricing.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, model string, in, cw, cr, w1, w5, out int64) {
		clamp := func(n int64) int64 { return n % (1 << 31) } // realistic magnitudes, no int64 overflow
		u := anthropic.Usage{InputTokens: clamp(in), CacheCreationInputTokens: clamp(cw), CacheReadInputTokens: clamp(cr),
			CacheCreation1h: clamp(w1), CacheCreation5m: clamp(w5), OutputTokens: clamp(out)}
		_ = pricing.Normalize(model)
		c := tb.Cost(model, "", u)
		if c.Total < 0 {
			t.Fatalf("negative cost %d for %+v", c.Total, u)
		}
		// The hold covers the real cost whenever the reported split is
		// consistent (the TTL split never exceeds the cache-write total).
		if u.CacheCreation1h >= 0 && u.CacheCreation5m >= 0 && u.CacheCreation1h+u.CacheCreation5m <= max(u.CacheCreationInputTokens, 0) {
			pos := func(n int64) int64 { return max(n, 0) }
			totalIn := pos(u.InputTokens) + pos(u.CacheCreationInputTokens) + pos(u.CacheReadInputTokens)
			if hold := tb.MaxCost(model, "", totalIn, pos(u.OutputTokens)); c.Total > hold {
				t.Fatalf("cost %d > hold %d for %q %+v", c.Total, hold, model, u)
			}
		}
	})
}
