package anthropic

// Usage is the token usage of one Messages response (contract §7.2).
type Usage struct {
	InputTokens              int64 `json:"input_tokens"`
	OutputTokens             int64 `json:"output_tokens"`
	CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
	// CacheCreation splits cache writes by TTL when the upstream reports it
	// (usage.cache_creation.ephemeral_5m_input_tokens / ephemeral_1h_input_tokens).
	CacheCreation5m int64 `json:"cache_creation_5m_input_tokens,omitempty"`
	CacheCreation1h int64 `json:"cache_creation_1h_input_tokens,omitempty"`
}

// TotalInput is all input tokens: uncached, cache writes and cache reads.
func (u Usage) TotalInput() int64 {
	return u.InputTokens + u.CacheCreationInputTokens + u.CacheReadInputTokens
}

// Total is every token the request consumed.
func (u Usage) Total() int64 { return u.TotalInput() + u.OutputTokens }
