package pricing

// Defaults returns the shipped prices (USD per million tokens, standard
// tier, no batch discount) for current Claude models.
//
// Source: Anthropic's pricing page, https://platform.claude.com/docs/en/about-claude/pricing
// ("Model pricing": base input, 5m cache writes, 1h cache writes, cache hits
// and refreshes, output; "Long context pricing" for Sonnet 4 / 4.5 above
// 200K input tokens), as retrieved on 2026-11-24. Cache multipliers on that
// page: 5m write 1.25x input, 1h write 2x input, read 0.1x input, except
// where the table lists otherwise (Fable 5.1 reads).
//
// Model IDs for Fable and Opus 4.7+ follow Anthropic's naming scheme
// (claude-<family>-<major>-<minor>); add an entry in the config's pricing
// section if your deployment names them differently. Foundry, Bedrock and
// Vertex may price differently: override per upstream.
func Defaults() []Price {
	p := func(model string, in, w5, w1, rd, out float64) Price {
		return Price{Model: model, Rates: Rates{Input: in, Output: out, CacheWrite5m: w5, CacheWrite1h: w1, CacheRead: rd}}
	}
	sonnetLong := func(pr Price) Price {
		pr.LongContextThreshold = 200_000
		pr.LongContext = &Rates{Input: 6, Output: 22.50, CacheWrite5m: 7.50, CacheWrite1h: 12, CacheRead: 0.60}
		return pr
	}
	return []Price{
		//  model                    input  5m write 1h write read  output
		p("claude-fable-5-1", 10, 12.50, 20, 0.25, 50),
		p("claude-fable-5", 10, 12.50, 20, 1, 50),
		p("claude-opus-5", 5, 6.25, 10, 0.50, 25),
		p("claude-opus-4-8", 5, 6.25, 10, 0.50, 25),
		p("claude-opus-4-7", 5, 6.25, 10, 0.50, 25),
		p("claude-opus-4-6", 5, 6.25, 10, 0.50, 25),
		p("claude-opus-4-5", 5, 6.25, 10, 0.50, 25),
		p("claude-opus-4-1", 15, 18.75, 30, 1.50, 75),
		p("claude-opus-4-0", 15, 18.75, 30, 1.50, 75),
		p("claude-opus-4", 15, 18.75, 30, 1.50, 75),
		p("claude-sonnet-4-6", 3, 3.75, 6, 0.30, 15),
		sonnetLong(p("claude-sonnet-4-5", 3, 3.75, 6, 0.30, 15)),
		sonnetLong(p("claude-sonnet-4-0", 3, 3.75, 6, 0.30, 15)),
		sonnetLong(p("claude-sonnet-4", 3, 3.75, 6, 0.30, 15)),
		p("claude-3-7-sonnet", 3, 3.75, 6, 0.30, 15),
		p("claude-3-7-sonnet-latest", 3, 3.75, 6, 0.30, 15),
		p("claude-haiku-4-5", 1, 1.25, 2, 0.10, 5),
		p("claude-3-5-haiku", 0.80, 1, 1.60, 0.08, 4),
		p("claude-3-5-haiku-latest", 0.80, 1, 1.60, 0.08, 4),
		p("claude-3-haiku", 0.25, 0.30, 0.50, 0.03, 1.25),
	}
}
