package authn

import (
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

// tokenCache remembers successful verifications, keyed by SHA-256 of the
// token (the token itself is never stored). An entry lives until the
// token's own validity ends (exp + skew, or the maximum token age) and is
// dropped as soon as its signing key leaves the issuer's key set. It is
// bounded: when full, expired entries go first, then arbitrary ones.
// Revocations are checked on every hit by the caller, never cached.
type tokenCache struct {
	mu      sync.Mutex
	max     int
	entries map[[32]byte]*cacheEntry
}

type cacheEntry struct {
	p     identity.Principal
	until time.Time
	ks    *keySet
	kid   string
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{max: max, entries: make(map[[32]byte]*cacheEntry, min(max, 1024))}
}

func (c *tokenCache) get(h [32]byte, now time.Time) (*cacheEntry, bool) {
	if c.max <= 0 {
		return nil, false
	}
	c.mu.Lock()
	e, ok := c.entries[h]
	if ok && !now.Before(e.until) {
		delete(c.entries, h)
		ok = false
	}
	c.mu.Unlock()
	if ok && !e.ks.has(e.kid) {
		c.mu.Lock()
		delete(c.entries, h)
		c.mu.Unlock()
		return nil, false
	}
	return e, ok
}

func (c *tokenCache) put(h [32]byte, e *cacheEntry, now time.Time) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		for k, v := range c.entries {
			if !now.Before(v.until) {
				delete(c.entries, k)
			}
		}
		// Still full: drop an arbitrary tenth so eviction cost is amortised.
		for k := range c.entries {
			if len(c.entries) <= c.max-c.max/10-1 {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[h] = e
}

func (c *tokenCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// purge drops every entry (e.g. after a revocation change).
func (c *tokenCache) purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.entries)
}
