package credential

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// Token is an access token and its expiry.
type Token struct {
	Value     string
	ExpiresAt time.Time
}

// TokenOptions are shared by the token-based credentials. Every zero value
// has a working default.
type TokenOptions struct {
	// Logger receives refresh outcomes (never a token: only its sha256
	// fingerprint). Nil: discard.
	Logger *slog.Logger
	// Now is the clock. Nil: time.Now.
	Now func() time.Time
	// HTTPClient sends token requests. Nil: a client with no proxy, TLS
	// 1.2 or later, verified certificates, no redirects and a 30 s timeout.
	// (Managed identity endpoints must never be reached through a proxy;
	// pass a client with a proxy only for Entra when egress requires it.)
	HTTPClient *http.Client
	// RetryDelay is the first pause between retries of one token request;
	// it doubles per attempt. Zero: 500ms.
	RetryDelay time.Duration
	// MaxAttempts bounds the tries of one token request. Zero: 5 for
	// managed identity (IMDS may answer 404/410 while updating), 3 for Entra.
	MaxAttempts int
	// FailureBackoff is the pause after a failed refresh before the next
	// one is attempted (doubling, capped at one minute). While it lasts,
	// requests without a valid token fail fast. Zero: 1s.
	FailureBackoff time.Duration
	// FetchTimeout bounds one refresh, retries included. Zero: 60s.
	FetchTimeout time.Duration
}

func (o *TokenOptions) normalize(defaultAttempts int) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.HTTPClient == nil {
		o.HTTPClient = DefaultHTTPClient()
	}
	if o.RetryDelay <= 0 {
		o.RetryDelay = 500 * time.Millisecond
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = defaultAttempts
	}
	if o.FailureBackoff <= 0 {
		o.FailureBackoff = time.Second
	}
	if o.FetchTimeout <= 0 {
		o.FetchTimeout = 60 * time.Second
	}
}

// DefaultHTTPClient is the client used for token requests when none is
// given: no proxy (never the environment's), TLS 1.2+, no redirects.
func DefaultHTTPClient() *http.Client { return NewHTTPClient(nil, nil) }

// NewHTTPClient is DefaultHTTPClient with an explicit proxy selector and
// root CAs (nil: none, system roots), for Entra token requests that must
// leave through a corporate proxy. Never use a proxy for managed identity.
func NewHTTPClient(proxy func(*http.Request) (*url.URL, error), roots *x509.CertPool) *http.Client {
	tc := tlsConfig()
	tc.RootCAs = roots
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			Proxy:                 proxy,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
			MaxIdleConnsPerHost:   2,
			IdleConnTimeout:       90 * time.Second,
			TLSClientConfig:       tc,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// refreshLead is how long before expiry a long-lived token is refreshed.
const refreshLead = 5 * time.Minute

// TokenCredential is a cached, self-refreshing bearer token. Apply sets
// Authorization: Bearer. A token is refreshed in the background once it is
// within 5 minutes of expiry (or past half its life, for tokens living less
// than 20 minutes), one refresh at a time; requests keep using the current
// token meanwhile. Without a valid token, requests wait for the single
// in-flight refresh; after a failed refresh, further attempts back off and
// requests fail fast with *Error until the backoff ends.
type TokenCredential struct {
	kind   string
	source string
	fetch  func(ctx context.Context) (Token, error)
	o      TokenOptions

	mu        sync.Mutex
	tok       Token
	refreshAt time.Time
	validTill time.Time // ExpiresAt minus a safety margin
	inflight  chan struct{}
	lastErr   error
	failures  int
	nextTry   time.Time
}

func newTokenCredential(kind, source string, o TokenOptions, fetch func(context.Context) (Token, error)) *TokenCredential {
	return &TokenCredential{kind: kind, source: source, o: o, fetch: fetch}
}

// Kind returns the credential kind (KindManagedIdentity, ...).
func (c *TokenCredential) Kind() string { return c.kind }

// Source names the endpoint tokens come from, for logs.
func (c *TokenCredential) Source() string { return c.source }

// String describes the credential without secrets.
func (c *TokenCredential) String() string { return c.kind + " (" + c.source + ")" }

// Apply sets Authorization: Bearer <token>, or returns *Error.
func (c *TokenCredential) Apply(ctx context.Context, r *http.Request) error {
	t, err := c.Token(ctx)
	if err != nil {
		return err
	}
	r.Header.Set(HeaderAuthorization, "Bearer "+t.Value)
	return nil
}

// Invalidate drops the cached token, so the next Apply fetches a new one.
// Call it when the upstream answered 401 to the current token.
func (c *TokenCredential) Invalidate() {
	c.mu.Lock()
	c.tok = Token{}
	c.nextTry = time.Time{}
	c.mu.Unlock()
}

// Token returns a valid token, fetching one if needed.
func (c *TokenCredential) Token(ctx context.Context) (Token, error) {
	c.mu.Lock()
	now := c.o.Now()
	if c.tok.Value != "" && now.Before(c.validTill) {
		t := c.tok
		if !now.Before(c.refreshAt) && c.inflight == nil && !now.Before(c.nextTry) {
			c.startRefreshLocked()
		}
		c.mu.Unlock()
		return t, nil
	}
	if c.inflight == nil {
		if c.lastErr != nil && now.Before(c.nextTry) {
			err := c.lastErr
			c.mu.Unlock()
			return Token{}, err
		}
		c.startRefreshLocked()
	}
	ch := c.inflight
	c.mu.Unlock()

	select {
	case <-ch:
	case <-ctx.Done():
		return Token{}, &Error{Kind: c.kind, Source: c.source, Reason: "the request ended while waiting for a token", Err: ctx.Err()}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tok.Value != "" && c.o.Now().Before(c.validTill) {
		return c.tok, nil
	}
	if c.lastErr != nil {
		return Token{}, c.lastErr
	}
	return Token{}, &Error{Kind: c.kind, Source: c.source, Reason: "the token endpoint returned an already expired token"}
}

func (c *TokenCredential) startRefreshLocked() {
	ch := make(chan struct{})
	c.inflight = ch
	go c.refresh(ch)
}

func (c *TokenCredential) refresh(done chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), c.o.FetchTimeout)
	defer cancel()
	start := c.o.Now()
	tok, err := c.fetch(ctx)
	var ce *Error
	if err != nil && !errors.As(err, &ce) {
		err = &Error{Kind: c.kind, Source: c.source, Reason: "token request failed", Err: err}
	}

	c.mu.Lock()
	defer func() {
		c.inflight = nil
		close(done)
		c.mu.Unlock()
	}()
	if err != nil {
		c.failures++
		backoff := c.o.FailureBackoff << min(c.failures-1, 16)
		if backoff > time.Minute || backoff <= 0 {
			backoff = time.Minute
		}
		c.lastErr = err
		c.nextTry = c.o.Now().Add(backoff)
		c.o.Logger.Warn("upstream credential refresh failed",
			slog.String("credential", c.kind), slog.String("source", c.source),
			slog.String("error", err.Error()), slog.Int("consecutive_failures", c.failures),
			slog.Duration("next_attempt_in", backoff),
			slog.Bool("current_token_valid", c.tok.Value != "" && c.o.Now().Before(c.validTill)))
		return
	}
	life := tok.ExpiresAt.Sub(start)
	margin := min(30*time.Second, life/4)
	c.tok = tok
	c.validTill = tok.ExpiresAt.Add(-margin)
	if life >= 4*refreshLead {
		c.refreshAt = tok.ExpiresAt.Add(-refreshLead)
	} else {
		c.refreshAt = start.Add(life / 2)
	}
	c.failures = 0
	c.lastErr = nil
	c.nextTry = time.Time{}
	c.o.Logger.Debug("upstream credential refreshed",
		slog.String("credential", c.kind), slog.String("source", c.source),
		slog.String("token_sha256", Fingerprint(tok.Value)), slog.Time("expires_at", tok.ExpiresAt))
}

var _ interface {
	Credential
	Invalidator
} = (*TokenCredential)(nil)
