package authn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// keySet is the key cache of one issuer (one Entra tenant), implementing
// Microsoft's published algorithm (security.md §1.3): background refresh,
// refresh on an unknown kid at most once per cooldown (the first unknown
// kid after start may refresh at once), concurrent misses collapsed into
// one fetch, a short negative cache of unknown kids, last-known-good keys
// on any failure, a fetch timeout and a body cap.
type keySet struct {
	name         string // for logs: provider and tenant
	issuer       string // the issuer discovery must announce
	discoveryURL string // "" when jwksURL is configured
	filter       jwksFilter
	client       *http.Client
	log          *slog.Logger
	now          func() time.Time
	cooldown     time.Duration
	fetchTimeout time.Duration
	refreshEvery time.Duration

	keys    atomic.Pointer[keyMap]
	fetches atomic.Int64    // HTTP requests made (discovery + key set)
	base    context.Context // ends fetches when the Authenticator closes

	mu           sync.Mutex
	jwksURL      string
	inflight     chan struct{}
	onDemandUsed bool
	lastOnDemand time.Time
	negative     map[string]time.Time
	lastErr      error
	loadedAt     time.Time
}

const maxNegative = 1024

// lookup returns the key for kid. When allowFetch is set and the kid is
// unknown, it may trigger (or join) one refresh within the cooldown rules.
func (ks *keySet) lookup(ctx context.Context, kid string, allowFetch bool) (*verificationKey, *Error) {
	if km := ks.keys.Load(); km != nil {
		if k := km.keys[kid]; k != nil {
			return k, nil
		}
		if km.ambiguous[kid] {
			return nil, fail(ReasonUnknownKey, "kid %s is ambiguous in %s's key set", kid, ks.name)
		}
	}
	if !allowFetch {
		return nil, fail(ReasonUnknownKey, "kid %s not in %s's cached key set", kid, ks.name)
	}
	now := ks.now()
	ks.mu.Lock()
	loaded := ks.keys.Load() != nil
	ch := ks.inflight
	switch {
	case ch != nil:
		// join the fetch in progress
	case !loaded:
		err := ks.lastErr
		ks.mu.Unlock()
		return nil, fail(ReasonKeysUnavailable, "%s: no keys loaded yet: %v", ks.name, err)
	case ks.recentlyUnknown(kid, now):
		ks.mu.Unlock()
		return nil, fail(ReasonUnknownKey, "kid %s unknown to %s (negative cache)", kid, ks.name)
	case ks.onDemandUsed && now.Sub(ks.lastOnDemand) < ks.cooldown:
		ks.rememberUnknown(kid, now)
		ks.mu.Unlock()
		return nil, fail(ReasonUnknownKey, "kid %s unknown to %s; key refresh in cooldown", kid, ks.name)
	default:
		ks.onDemandUsed = true
		ks.lastOnDemand = now
		ch = ks.startFetchLocked("unknown kid")
	}
	ks.mu.Unlock()
	select {
	case <-ch:
	case <-ctx.Done():
		return nil, fail(ReasonKeysUnavailable, "%s: waiting for key refresh: %v", ks.name, ctx.Err())
	}
	km := ks.keys.Load()
	if km == nil {
		return nil, fail(ReasonKeysUnavailable, "%s: no keys loaded", ks.name)
	}
	if k := km.keys[kid]; k != nil {
		return k, nil
	}
	ks.mu.Lock()
	ks.rememberUnknown(kid, ks.now())
	ks.mu.Unlock()
	return nil, fail(ReasonUnknownKey, "kid %s not in %s's key set after refresh", kid, ks.name)
}

func (ks *keySet) recentlyUnknown(kid string, now time.Time) bool {
	t, ok := ks.negative[kid]
	return ok && now.Sub(t) < ks.cooldown
}

func (ks *keySet) rememberUnknown(kid string, now time.Time) {
	if ks.negative == nil || len(ks.negative) >= maxNegative {
		ks.negative = map[string]time.Time{}
	}
	ks.negative[kid] = now
}

// has reports whether kid is (still) in the current snapshot; the token
// cache uses it so a removed key ends its cached tokens.
func (ks *keySet) has(kid string) bool {
	km := ks.keys.Load()
	return km != nil && km.keys[kid] != nil
}

// startFetchLocked starts one refresh unless one is running; ks.mu held.
func (ks *keySet) startFetchLocked(why string) chan struct{} {
	if ks.inflight != nil {
		return ks.inflight
	}
	ch := make(chan struct{})
	ks.inflight = ch
	go func() {
		err := ks.fetch()
		ks.mu.Lock()
		ks.inflight = nil
		ks.lastErr = err
		if err == nil {
			ks.loadedAt = ks.now()
			ks.negative = nil
		}
		ks.mu.Unlock()
		close(ch)
		if err != nil {
			ks.log.Warn("identity key refresh failed; keeping last known keys", "issuer", ks.name, "trigger", why, "err", err)
		} else {
			ks.log.Debug("identity keys refreshed", "issuer", ks.name, "trigger", why, "keys", len(ks.keys.Load().keys))
		}
	}()
	return ch
}

// refresh runs (or joins) one fetch and waits for it.
func (ks *keySet) refresh(ctx context.Context, why string) error {
	ks.mu.Lock()
	ch := ks.startFetchLocked(why)
	ks.mu.Unlock()
	select {
	case <-ch:
	case <-ctx.Done():
		return ctx.Err()
	}
	ks.mu.Lock()
	defer ks.mu.Unlock()
	return ks.lastErr
}

// run keeps the key set fresh until ctx ends: first load with retries
// (backoff 500ms doubling to 1m), then a refresh every refreshEvery ±10%.
func (ks *keySet) run(ctx context.Context) {
	backoff := 500 * time.Millisecond
	for {
		err := ks.refresh(ctx, "background")
		var wait time.Duration
		if err != nil && ctx.Err() == nil {
			wait = backoff
			backoff = min(backoff*2, time.Minute)
			if ks.keys.Load() != nil {
				wait = max(wait, 10*time.Second) // keys in hand: no hurry
			}
		} else {
			backoff = 500 * time.Millisecond
			jitter := time.Duration(rand.Int64N(int64(ks.refreshEvery)/5+1)) - ks.refreshEvery/10
			wait = ks.refreshEvery + jitter
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (ks *keySet) fetch() error {
	base := ks.base
	if base == nil {
		base = context.Background()
	}
	ctx, cancel := context.WithTimeout(base, ks.fetchTimeout)
	defer cancel()
	ks.mu.Lock()
	jwksURL := ks.jwksURL
	ks.mu.Unlock()
	if ks.discoveryURL != "" {
		u, err := ks.discover(ctx)
		if err != nil {
			return err
		}
		jwksURL = u
		ks.mu.Lock()
		ks.jwksURL = u
		ks.mu.Unlock()
	}
	body, err := ks.get(ctx, jwksURL, maxJWKSBytes)
	if err != nil {
		return fmt.Errorf("key set: %w", err)
	}
	km, skipped, err := parseJWKS(body, ks.filter)
	if err != nil {
		return err
	}
	for _, s := range skipped {
		ks.log.Info("identity key ignored", "issuer", ks.name, "kid", s.KID, "why", s.Reason)
	}
	if len(km.keys) == 0 {
		return fmt.Errorf("key set at %s has no usable keys (%d ignored)", jwksURL, len(skipped))
	}
	ks.keys.Store(km)
	return nil
}

func (ks *keySet) discover(ctx context.Context) (string, error) {
	body, err := ks.get(ctx, ks.discoveryURL, maxDiscoverySz)
	if err != nil {
		return "", fmt.Errorf("discovery: %w", err)
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", fmt.Errorf("discovery document at %s: %v", ks.discoveryURL, err)
	}
	if doc.Issuer != ks.issuer {
		return "", fmt.Errorf("discovery at %s announces issuer %q, configured %q", ks.discoveryURL, doc.Issuer, ks.issuer)
	}
	if err := checkFetchURL(doc.JWKSURI); err != nil {
		return "", fmt.Errorf("discovery jwks_uri: %w", err)
	}
	return doc.JWKSURI, nil
}

var errTooLarge = errors.New("response body too large")

func (ks *keySet) get(ctx context.Context, u string, limit int64) ([]byte, error) {
	ks.fetches.Add(1)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "gatehouse")
	resp, err := ks.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil, fmt.Errorf("GET %s: status %d", u, resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("GET %s: %w (over %d bytes)", u, errTooLarge, limit)
	}
	return b, nil
}

// checkFetchURL allows https URLs, and http only for loopback hosts.
func checkFetchURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", raw)
	}
	if u.User != nil {
		return fmt.Errorf("%q carries credentials", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopback(u.Hostname()) {
			return nil
		}
	}
	return fmt.Errorf("%q must be https (http only for loopback)", raw)
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// DefaultHTTPClient is the client used when Options.HTTPClient is nil: no
// proxy from the environment, dial/TLS/header timeouts, a 10s overall
// timeout, and redirects followed only to the same scheme and host (at
// most 3). Body sizes are capped by the callers.
func DefaultHTTPClient() *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			Proxy:                  nil,
			DialContext:            (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:    5 * time.Second,
			ResponseHeaderTimeout:  10 * time.Second,
			MaxResponseHeaderBytes: 64 << 10,
			MaxIdleConns:           16,
			IdleConnTimeout:        90 * time.Second,
			ForceAttemptHTTP2:      true,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("too many redirects")
			}
			first := via[0].URL
			if req.URL.Scheme != first.Scheme || !strings.EqualFold(req.URL.Host, first.Host) {
				return fmt.Errorf("refusing cross-host redirect to %s", req.URL.Redacted())
			}
			return nil
		},
	}
}
