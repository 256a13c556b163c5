// Package pricing turns Anthropic token usage into US dollars: a table of
// per-model (and optionally per-upstream) prices, with shipped defaults for
// current Claude models that operators override, and exact integer
// arithmetic in nano-dollars so that sums over millions of requests do not
// drift and agree between the limits engine, audit records and reports.
package pricing

import (
	"fmt"
	"math"
	"regexp"
	"strings"

	"github.com/gatehouse-dev/gatehouse/internal/anthropic"
)

// NanoUSD is an amount of US dollars in units of 1e-9 USD. One token priced
// at p USD per million tokens costs p*1000 NanoUSD, so every price with at
// most three decimals per MTok is exact.
type NanoUSD int64

// USD returns the amount in dollars.
func (n NanoUSD) USD() float64 { return float64(n) / 1e9 }

// FromUSD converts dollars to NanoUSD, rounding to the nearest unit.
func FromUSD(usd float64) NanoUSD { return NanoUSD(math.Round(usd * 1e9)) }

func (n NanoUSD) String() string { return fmt.Sprintf("$%.6f", n.USD()) }

// Rates are USD per million tokens for each token category of the Messages
// API usage object.
type Rates struct {
	Input        float64 // input_tokens (uncached)
	Output       float64 // output_tokens (includes thinking)
	CacheWrite5m float64 // cache writes with the default 5-minute TTL
	CacheWrite1h float64 // cache writes with the 1-hour TTL
	CacheRead    float64 // cache_read_input_tokens (hits and refreshes)
}

// Price is the price of one model, optionally on one upstream only.
type Price struct {
	Model    string // model ID as clients ask for it (dated suffixes are matched too)
	Upstream string // upstream name; empty: every upstream
	Rates
	// LongContextThreshold, when positive with LongContext set: a request
	// whose total input (uncached + cache writes + cache reads) exceeds it
	// is billed entirely at LongContext rates.
	LongContextThreshold int64
	LongContext          *Rates
}

// perToken holds nano-dollars per token.
type perToken struct{ in, out, w5, w1, rd int64 }

func toPerToken(r Rates) perToken {
	c := func(p float64) int64 { return int64(math.Round(p * 1000)) }
	return perToken{c(r.Input), c(r.Output), c(r.CacheWrite5m), c(r.CacheWrite1h), c(r.CacheRead)}
}

type entry struct {
	price     Price
	base      perToken
	long      perToken
	threshold int64
}

type key struct{ model, upstream string }

// Table is an immutable price table. The zero value is not usable; build
// one with New. It is safe for concurrent use.
type Table struct {
	entries  map[key]*entry
	fallback *entry
}

// Options configures New.
type Options struct {
	// Overrides replace or add prices on top of the shipped defaults; an
	// entry replaces a default with the same model and upstream.
	Overrides []Price
	// NoDefaults starts from an empty table instead of Defaults().
	NoDefaults bool
}

// New builds a table. It fails on negative or non-finite prices.
func New(opts Options) (*Table, error) {
	t := &Table{entries: map[key]*entry{}}
	var all []Price
	if !opts.NoDefaults {
		all = append(all, Defaults()...)
	}
	all = append(all, opts.Overrides...)
	var fb Rates
	for _, p := range all {
		if err := check(p); err != nil {
			return nil, err
		}
		e := &entry{price: p, base: toPerToken(p.Rates)}
		if p.LongContext != nil && p.LongContextThreshold > 0 {
			e.long = toPerToken(*p.LongContext)
			e.threshold = p.LongContextThreshold
		}
		t.entries[key{strings.ToLower(p.Model), p.Upstream}] = e
		fb = maxRates(fb, p.Rates)
		if p.LongContext != nil {
			fb = maxRates(fb, *p.LongContext)
		}
	}
	t.fallback = &entry{price: Price{Model: "(unknown)", Rates: fb}, base: toPerToken(fb)}
	return t, nil
}

func check(p Price) error {
	if p.Model == "" {
		return fmt.Errorf("pricing: an entry has no model")
	}
	rs := []Rates{p.Rates}
	if p.LongContext != nil {
		rs = append(rs, *p.LongContext)
	}
	for _, r := range rs {
		for _, v := range []float64{r.Input, r.Output, r.CacheWrite5m, r.CacheWrite1h, r.CacheRead} {
			if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) || v > 1e4 {
				return fmt.Errorf("pricing: %s: prices must be between 0 and 10000 USD per million tokens", p.Model)
			}
		}
	}
	return nil
}

func maxRates(a, b Rates) Rates {
	return Rates{
		Input:        math.Max(a.Input, b.Input),
		Output:       math.Max(a.Output, b.Output),
		CacheWrite5m: math.Max(a.CacheWrite5m, b.CacheWrite5m),
		CacheWrite1h: math.Max(a.CacheWrite1h, b.CacheWrite1h),
		CacheRead:    math.Max(a.CacheRead, b.CacheRead),
	}
}

var (
	dateSuffix    = regexp.MustCompile(`[-@]\d{8}$`)
	bedrockSuffix = regexp.MustCompile(`-v\d+(:\d+)?$`)
)

// Normalize maps provider spellings of a model ID onto the canonical ID:
// lower case, without a vendor prefix ("anthropic.", "us.anthropic."),
// a Bedrock version suffix ("-v1:0") or a date ("-20250929", "@20250929").
func Normalize(model string) string {
	m := strings.ToLower(strings.TrimSpace(model))
	if i := strings.LastIndex(m, "anthropic."); i >= 0 {
		m = m[i+len("anthropic."):]
	}
	m = bedrockSuffix.ReplaceAllString(m, "")
	m = dateSuffix.ReplaceAllString(m, "")
	return m
}

func (t *Table) lookup(model, upstream string) *entry {
	if e := t.entries[key{model, upstream}]; e != nil {
		return e
	}
	if e := t.entries[key{model, ""}]; e != nil {
		return e
	}
	n := Normalize(model)
	if e := t.entries[key{n, upstream}]; e != nil {
		return e
	}
	return t.entries[key{n, ""}]
}

// Lookup returns the price of model on upstream (upstream may be empty).
func (t *Table) Lookup(model, upstream string) (Price, bool) {
	if e := t.lookup(model, upstream); e != nil {
		return e.price, true
	}
	return Price{}, false
}

// Cost is the price of one response.
type Cost struct {
	Total NanoUSD
	// Known is false when the model has no price; Total is then computed
	// at the table's highest rate of each category (never under-billed).
	Known bool
	// LongContext reports whether long-context rates applied.
	LongContext bool
}

// USD returns the total in dollars.
func (c Cost) USD() float64 { return c.Total.USD() }

// Cost prices usage u of model on upstream.
//
// Anthropic's input_tokens already excludes cache tokens, so each token is
// billed in exactly one category: uncached input, 5-minute cache write,
// 1-hour cache write, cache read, or output. Cache writes are split by TTL
// when the upstream reports the split (usage.cache_creation); any part of
// cache_creation_input_tokens not covered by the split is billed at the
// 5-minute rate, the API's default TTL.
func (t *Table) Cost(model, upstream string, u anthropic.Usage) Cost {
	e := t.lookup(model, upstream)
	c := Cost{Known: e != nil}
	if e == nil {
		e = t.fallback
	}
	r := e.base
	if e.threshold > 0 && u.TotalInput() > e.threshold {
		r = e.long
		c.LongContext = true
	}
	w5, w1 := splitCacheWrites(u)
	c.Total = NanoUSD(nonneg(u.InputTokens)*r.in + nonneg(u.OutputTokens)*r.out +
		w5*r.w5 + w1*r.w1 + nonneg(u.CacheReadInputTokens)*r.rd)
	return c
}

// splitCacheWrites returns the 5-minute and 1-hour cache-write token counts.
func splitCacheWrites(u anthropic.Usage) (w5, w1 int64) {
	w5, w1 = nonneg(u.CacheCreation5m), nonneg(u.CacheCreation1h)
	if rest := nonneg(u.CacheCreationInputTokens) - w5 - w1; rest > 0 {
		w5 += rest
	}
	return w5, w1
}

func nonneg(n int64) int64 {
	if n < 0 {
		return 0
	}
	return n
}

// MaxCost is the most a request of model on upstream can cost when it sends
// at most inputTokens of input and produces at most outputTokens: every
// input token at the dearest input category (a 1-hour cache write at the
// long-context rate, if any) and every output token at the dearest output
// rate. The limits engine holds this amount before forwarding.
func (t *Table) MaxCost(model, upstream string, inputTokens, outputTokens int64) NanoUSD {
	e := t.lookup(model, upstream)
	if e == nil {
		e = t.fallback
	}
	in := max(e.base.in, e.base.w5, e.base.w1, e.base.rd)
	out := e.base.out
	if e.threshold > 0 {
		in = max(in, e.long.in, e.long.w5, e.long.w1, e.long.rd)
		out = max(out, e.long.out)
	}
	return NanoUSD(nonneg(inputTokens)*in + nonneg(outputTokens)*out)
}
