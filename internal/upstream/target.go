// Package upstream decides where a request goes and gets it there: targets
// (an upstream's base URL, credential, static headers and a tuned
// *http.Transport), a Router that orders a model's routes per request
// (ordered or weighted, with rendezvous-hashing session affinity so Anthropic
// prompt caching keeps hitting) and skips upstreams whose circuit breaker is
// open or whose retry-after has not passed, and Send, which fails over
// between routes before any response reaches the client.
//
// It knows nothing of the configuration file: internal/cli maps the schema
// onto TargetOptions and RouterOptions.
package upstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"strings"
	"time"
)

// Credential sets the upstream credential on an outbound request; the
// internal/credential types satisfy it.
type Credential interface {
	Apply(ctx context.Context, r *http.Request) error
}

// Invalidator is implemented by credentials that cache a token; Send calls
// Invalidate when an upstream answers 401, so the next request fetches a
// fresh token.
type Invalidator interface {
	Invalidate()
}

// Defaults for TargetOptions.
const (
	DefaultConnectTimeout   = 10 * time.Second
	DefaultFirstByteTimeout = 10 * time.Minute
)

// TargetOptions describes one upstream. Zero values are documented per field.
type TargetOptions struct {
	// Name identifies the upstream in routes, logs and audit. Required.
	Name string
	// Provider is "foundry" or "anthropic" (informational here).
	Provider string
	// BaseURL, e.g. https://contoso.services.ai.azure.com/anthropic.
	// Required: absolute http(s), no query, no user info.
	BaseURL string
	// Credential is applied to every request. Required.
	Credential Credential
	// Headers are static headers set on every request (after the caller's
	// headers, before the credential). Reserved names are refused.
	Headers map[string]string
	// ConnectTimeout bounds the TCP dial and, separately, the TLS
	// handshake. Zero: 10s.
	ConnectTimeout time.Duration
	// FirstByteTimeout bounds the wait for response headers once the
	// request is written (time to first byte). Zero: 10m, since a
	// non-streaming generation sends its headers only when it is done.
	FirstByteTimeout time.Duration
	// RootCAs verifies the upstream (and an https proxy). Nil: the system
	// roots. See LoadCABundle.
	RootCAs *x509.CertPool
	// Proxy routes requests through an HTTP(S) CONNECT proxy. Zero: direct
	// connections; the process environment (HTTPS_PROXY) is never read here.
	Proxy ProxyOptions
	// MaxIdleConnsPerHost. Zero: 64.
	MaxIdleConnsPerHost int
}

// Target is one upstream ready to receive requests.
type Target struct {
	name      string
	provider  string
	base      *url.URL
	cred      Credential
	headers   [][2]string
	transport *http.Transport
	timeouts  [2]time.Duration
	health    *breaker // set by NewRouter
}

// NewTarget validates o and builds the target's transport.
func NewTarget(o TargetOptions) (*Target, error) {
	var errs []error
	if o.Name == "" {
		errs = append(errs, errors.New("name is required"))
	}
	base, err := url.Parse(strings.TrimRight(o.BaseURL, "/"))
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("base URL: %v", err))
	case base.Host == "" || (base.Scheme != "https" && base.Scheme != "http"):
		errs = append(errs, fmt.Errorf("base URL %q is not an absolute http(s) URL", o.BaseURL))
	case base.User != nil || base.RawQuery != "" || base.Fragment != "":
		errs = append(errs, errors.New("base URL must not carry user info, a query or a fragment"))
	}
	if o.Credential == nil {
		errs = append(errs, errors.New("a credential is required"))
	}
	var headers [][2]string
	for k, v := range o.Headers {
		if err := CheckStaticHeader(k, v); err != nil {
			errs = append(errs, err)
			continue
		}
		headers = append(headers, [2]string{textproto.CanonicalMIMEHeaderKey(k), v})
	}
	proxy, err := o.Proxy.proxyFunc()
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("upstream %q: %w", o.Name, errors.Join(errs...))
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.FirstByteTimeout <= 0 {
		o.FirstByteTimeout = DefaultFirstByteTimeout
	}
	if o.MaxIdleConnsPerHost <= 0 {
		o.MaxIdleConnsPerHost = 64
	}
	tr := &http.Transport{
		Proxy:                 proxy, // nil unless configured: never HTTPS_PROXY from the environment
		DialContext:           (&net.Dialer{Timeout: o.ConnectTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   o.ConnectTimeout,
		ResponseHeaderTimeout: o.FirstByteTimeout,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          o.MaxIdleConnsPerHost * 2,
		MaxIdleConnsPerHost:   o.MaxIdleConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		// The caller forwards the client's body and reads the upstream's
		// bytes untouched; never negotiate compression behind its back.
		DisableCompression: true,
		// Each HTTP/1.1 connection keeps these for its lifetime, and a
		// long stream holds one connection. An SSE event is a few hundred
		// bytes, so 1 KiB holds what one read relays, and 1 KiB holds a
		// request's headers. Larger reads and writes (request bodies, JSON
		// responses) bypass the buffers. (1,000 slow streams: 3 MB less RSS
		// than 2 KiB each; streaming throughput unchanged.)
		ReadBufferSize:  1 << 10,
		WriteBufferSize: 1 << 10,
		TLSClientConfig: &tls.Config{
			MinVersion: tls.VersionTLS12,
			RootCAs:    o.RootCAs,
			ServerName: base.Hostname(),
		},
	}
	return &Target{
		name: o.Name, provider: o.Provider, base: base, cred: o.Credential,
		headers: headers, transport: tr, timeouts: [2]time.Duration{o.ConnectTimeout, o.FirstByteTimeout},
	}, nil
}

// Name returns the upstream's name.
func (t *Target) Name() string { return t.name }

// Provider returns "foundry" or "anthropic".
func (t *Target) Provider() string { return t.provider }

// BaseURL returns a copy of the base URL.
func (t *Target) BaseURL() *url.URL { u := *t.base; return &u }

// URL returns the base URL joined with path (for example "/v1/messages"),
// with no query: the destination is fixed by configuration.
func (t *Target) URL(path string) *url.URL {
	u := *t.base
	u.Path = strings.TrimRight(u.Path, "/") + "/" + strings.TrimLeft(path, "/")
	u.RawPath = ""
	u.RawQuery = ""
	return &u
}

// Transport is the target's transport (for the lead's ReverseProxy, or
// Close on shutdown via CloseIdleConnections).
func (t *Target) Transport() *http.Transport { return t.transport }

// Credential returns the target's credential.
func (t *Target) Credential() Credential { return t.cred }

// ConnectTimeout and FirstByteTimeout are the effective timeouts.
func (t *Target) ConnectTimeout() time.Duration { return t.timeouts[0] }

// FirstByteTimeout is the effective time-to-first-byte timeout.
func (t *Target) FirstByteTimeout() time.Duration { return t.timeouts[1] }

// State reports the target's circuit breaker state (Closed before the
// target joins a router).
func (t *Target) State() State {
	if t.health == nil {
		return Closed
	}
	return t.health.snapshot()
}

// reservedHeaders may not be set as static headers: credentials, hop-by-hop
// and framing headers, forwarding headers, and the Anthropic protocol
// headers the client owns.
var reservedHeaders = map[string]bool{
	"authorization": true, "x-api-key": true, "api-key": true, "ocp-apim-subscription-key": true,
	"cookie": true, "set-cookie": true, "host": true,
	"content-length": true, "content-type": true, "content-encoding": true, "transfer-encoding": true,
	"connection": true, "keep-alive": true, "te": true, "trailer": true, "upgrade": true,
	"forwarded": true, "x-real-ip": true, "via": true, "expect": true,
	"anthropic-version": true, "anthropic-beta": true,
}

// ReservedHeader reports whether name may not be configured as a static
// header.
func ReservedHeader(name string) bool {
	n := strings.ToLower(name)
	return reservedHeaders[n] || strings.HasPrefix(n, "proxy-") || strings.HasPrefix(n, "x-forwarded-")
}

// CheckStaticHeader validates one static header.
func CheckStaticHeader(name, value string) error {
	if name == "" {
		return errors.New("header name is empty")
	}
	for _, r := range name {
		if !(r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return fmt.Errorf("header %q: names may hold only letters, digits and '-'", name)
		}
	}
	if ReservedHeader(name) {
		return fmt.Errorf("header %q is reserved (credentials, framing, forwarding and anthropic-* protocol headers are set by the gateway or the client)", name)
	}
	if strings.ContainsAny(value, "\r\n\x00") {
		return fmt.Errorf("header %q: the value must not contain CR, LF or NUL", name)
	}
	return nil
}

// LoadCABundle returns the system roots plus the PEM certificates in file
// (or only those, when withSystem is false).
func LoadCABundle(file string, withSystem bool) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if withSystem {
		if sys, err := x509.SystemCertPool(); err == nil {
			pool = sys
		}
	}
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("CA bundle %s holds no PEM certificate", file)
	}
	return pool, nil
}
