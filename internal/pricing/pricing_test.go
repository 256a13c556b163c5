package pricing_test

import (
	"math/rand/v2"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/anthropic"
	"github.com/gatehouse-dev/gatehouse/internal/pricing"
)

func mustTable(t *testing.T, o pricing.Options) *pricing.Table {
	t.Helper()
	tb, err := pricing.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func TestCost(t *testing.T) {
	tb := mustTable(t, pricing.Options{Overrides: []pricing.Price{
		{Model: "claude-sonnet-4-6", Upstream: "foundry", Rates: pricing.Rates{Input: 3.3, Output: 16.5, CacheWrite5m: 4.125, CacheWrite1h: 6.6, CacheRead: 0.33}},
		{Model: "in-house", Rates: pricing.Rates{Input: 1, Output: 2}},
	}})
	tests := []struct {
		name, model, upstream string
		u                     anthropic.Usage
		want                  pricing.NanoUSD
		known, long           bool
	}{
		{"plain sonnet", "claude-sonnet-4-6", "", anthropic.Usage{InputTokens: 1000, OutputTokens: 100}, 1000*3000 + 100*15000, true, false},
		// Cache tokens are billed once each, in their own category; input_tokens excludes them.
		{"cache write 5m + read", "claude-sonnet-4-6", "", anthropic.Usage{InputTokens: 10, CacheCreationInputTokens: 2000, CacheReadInputTokens: 50000, OutputTokens: 300},
			10*3000 + 2000*3750 + 50000*300 + 300*15000, true, false},
		{"cache write split by ttl", "claude-opus-4-6", "", anthropic.Usage{InputTokens: 5, CacheCreationInputTokens: 3000, CacheCreation5m: 1000, CacheCreation1h: 2000, OutputTokens: 1},
			5*5000 + 1000*6250 + 2000*10000 + 1*25000, true, false},
		{"partial split: remainder at 5m", "claude-opus-4-6", "", anthropic.Usage{CacheCreationInputTokens: 3000, CacheCreation1h: 1000},
			2000*6250 + 1000*10000, true, false},
		{"dated id", "claude-sonnet-4-5-20250929", "", anthropic.Usage{InputTokens: 100_000}, 300_000_000, true, false},
		{"bedrock id", "us.anthropic.claude-haiku-4-5-20251001-v1:0", "", anthropic.Usage{OutputTokens: 1_000_000}, 5_000_000_000, true, false},
		{"vertex id", "claude-opus-4-1@20250805", "", anthropic.Usage{InputTokens: 2}, 2 * 15000, true, false},
		{"upstream override", "claude-sonnet-4-6", "foundry", anthropic.Usage{InputTokens: 1000}, 1000 * 3300, true, false},
		{"upstream override not applied elsewhere", "claude-sonnet-4-6", "anthropic", anthropic.Usage{InputTokens: 1000}, 1000 * 3000, true, false},
		{"long context above 200k", "claude-sonnet-4-5", "", anthropic.Usage{InputTokens: 1000, CacheReadInputTokens: 199_001, OutputTokens: 10},
			1000*6000 + 199_001*600 + 10*22500, true, true},
		{"long context at exactly 200k is standard", "claude-sonnet-4-5", "", anthropic.Usage{InputTokens: 1000, CacheReadInputTokens: 199_000},
			1000*3000 + 199_000*300, true, false},
		{"custom model", "in-house", "", anthropic.Usage{InputTokens: 3, OutputTokens: 3}, 3*1000 + 3*2000, true, false},
		{"unknown model billed at the dearest rates", "mystery", "", anthropic.Usage{InputTokens: 1, OutputTokens: 1}, 1*15000 + 1*75000, false, false}, // Opus 4.1 rates
		{"negative counts ignored", "claude-sonnet-4-6", "", anthropic.Usage{InputTokens: -5, OutputTokens: 1}, 15000, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tb.Cost(tt.model, tt.upstream, tt.u)
			if c.Total != tt.want || c.Known != tt.known || c.LongContext != tt.long {
				t.Fatalf("Cost = %d known=%v long=%v, want %d known=%v long=%v", c.Total, c.Known, c.LongContext, tt.want, tt.known, tt.long)
			}
		})
	}
}

// TestMaxCostBoundsCost: whatever mix of categories the upstream reports,
// the real cost never exceeds the hold computed from total input and output.
func TestMaxCostBoundsCost(t *testing.T) {
	tb := mustTable(t, pricing.Options{})
	r := rand.New(rand.NewPCG(1, 2))
	models := []string{"claude-sonnet-4-5", "claude-opus-4-6", "claude-haiku-4-5", "unknown-x"}
	for i := 0; i < 20000; i++ {
		m := models[r.IntN(len(models))]
		u := anthropic.Usage{
			InputTokens:              r.Int64N(300_000),
			CacheCreationInputTokens: r.Int64N(100_000),
			CacheReadInputTokens:     r.Int64N(300_000),
			OutputTokens:             r.Int64N(64_000),
		}
		u.CacheCreation1h = r.Int64N(u.CacheCreationInputTokens + 1)
		got := tb.Cost(m, "", u).Total
		bound := tb.MaxCost(m, "", u.TotalInput(), u.OutputTokens)
		if got > bound {
			t.Fatalf("%s %+v: cost %d > MaxCost %d", m, u, got, bound)
		}
	}
}

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"Claude-Sonnet-4-6":                          "claude-sonnet-4-6",
		"claude-sonnet-4-5-20250929":                 "claude-sonnet-4-5",
		"claude-opus-4-1@20250805":                   "claude-opus-4-1",
		"anthropic.claude-3-haiku-20240307-v1:0":     "claude-3-haiku",
		"eu.anthropic.claude-sonnet-4-6-v1":          "claude-sonnet-4-6",
		"claude-sonnet-4-6":                          "claude-sonnet-4-6",
		"my-deployment":                              "my-deployment",
		"claude-opus-4-7":                            "claude-opus-4-7",
		" claude-haiku-4-5 ":                         "claude-haiku-4-5",
		"global.anthropic.claude-opus-4-6-v1:0":      "claude-opus-4-6",
		"claude-3-5-haiku-latest":                    "claude-3-5-haiku-latest",
		"claude-sonnet-4-20250514":                   "claude-sonnet-4",
		"claude-opus-4-20250514":                     "claude-opus-4",
		"claude-opus-4-0":                            "claude-opus-4-0",
		"claude-3-7-sonnet-20250219":                 "claude-3-7-sonnet",
		"claude-sonnet-4-6-12345678-extra":           "claude-sonnet-4-6-12345678-extra",
		"us.anthropic.claude-opus-4-1-20250805-v1:0": "claude-opus-4-1",
	} {
		if got := pricing.Normalize(in); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDefaultsSane(t *testing.T) {
	for _, p := range pricing.Defaults() {
		r := p.Rates
		if r.Input <= 0 || r.Output <= r.Input || r.CacheRead >= r.Input || r.CacheWrite5m <= r.Input || r.CacheWrite1h <= r.CacheWrite5m {
			t.Errorf("%s: implausible rates %+v", p.Model, r)
		}
	}
	if _, err := pricing.New(pricing.Options{Overrides: []pricing.Price{{Model: "x", Rates: pricing.Rates{Input: -1}}}}); err == nil {
		t.Fatal("negative price accepted")
	}
}

func TestNanoUSD(t *testing.T) {
	if got := pricing.FromUSD(12.345678912); got != 12_345_678_912 {
		t.Fatalf("FromUSD = %d", got)
	}
	if got := pricing.NanoUSD(1_500_000_000).USD(); got != 1.5 {
		t.Fatalf("USD = %v", got)
	}
}
