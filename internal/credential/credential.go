// Package credential authenticates the gateway to its upstreams: static keys
// and bearer tokens, and Azure tokens (managed identity, workload identity,
// service principal) that are cached and refreshed ahead of expiry. Every
// kind satisfies one method, Apply, which sets the credential header on an
// outbound request.
//
// Nothing here reads the process environment or global state: environment
// variables come through an injected Getenv and endpoints through Options, so
// tests and the demo point the flows at local fakes (internal/fake/azure).
package credential

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
)

// Credential sets the upstream credential on an outbound request.
type Credential interface {
	Apply(ctx context.Context, r *http.Request) error
}

// Invalidator is implemented by credentials holding a cached token. The
// caller invokes Invalidate when the upstream rejected the token (401), so
// the next Apply fetches a fresh one.
type Invalidator interface {
	Invalidate()
}

// Kinds of credential, used in errors and logs.
const (
	KindStatic           = "static"
	KindManagedIdentity  = "managed_identity"
	KindWorkloadIdentity = "workload_identity"
	KindServicePrincipal = "service_principal"
)

// ErrNoToken is matched (errors.Is) by every *Error.
var ErrNoToken = errors.New("no upstream credential available")

// Error is returned by Apply when no credential can be had. The proxy answers
// 502 api_error with UserMessage and logs Error(), which says why (endpoint,
// status, Entra error code) and never contains a secret or a token.
type Error struct {
	Kind   string // one of the Kind constants
	Source string // e.g. "IMDS", "App Service identity endpoint", "Entra token endpoint"
	Reason string // what went wrong, safe to log
	Status int    // HTTP status from the token endpoint, 0 if none
	Code   string // OAuth error code or AADSTS code when known
	Err    error  // underlying cause (network error), safe to log
}

// UserMessage is the text for the client: it names no internals.
const UserMessage = "The gateway could not authenticate to the upstream model provider. Please try again later or contact your administrator."

func (e *Error) Error() string {
	s := "credential " + e.Kind
	if e.Source != "" {
		s += " (" + e.Source + ")"
	}
	s += ": " + e.Reason
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is matches ErrNoToken.
func (e *Error) Is(target error) bool { return target == ErrNoToken }

// Fingerprint returns a short, non-reversible identifier of a secret or token
// for logs: the first 12 hex characters of its SHA-256.
func Fingerprint(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:6])
}

// Header names used for credentials.
const (
	HeaderAPIKey        = "api-key"   // Foundry
	HeaderXAPIKey       = "x-api-key" // Anthropic API
	HeaderAuthorization = "Authorization"
)

// Providers (the same names as the configuration's upstream provider).
const (
	ProviderFoundry   = "foundry"
	ProviderAnthropic = "anthropic"
)

// KeyHeader returns the header a static key is sent in for provider:
// x-api-key for anthropic, api-key for foundry.
func KeyHeader(provider string) (string, error) {
	switch provider {
	case ProviderAnthropic:
		return HeaderXAPIKey, nil
	case ProviderFoundry:
		return HeaderAPIKey, nil
	}
	return "", fmt.Errorf("credential: unknown provider %q", provider)
}

// StaticKey sends a fixed API key in the provider's header.
type StaticKey struct {
	header string
	key    string
}

// NewStaticKey returns the key credential for provider (anthropic → x-api-key,
// foundry → api-key).
func NewStaticKey(provider, key string) (*StaticKey, error) {
	h, err := KeyHeader(provider)
	if err != nil {
		return nil, err
	}
	if key == "" {
		return nil, errors.New("credential: empty API key")
	}
	return &StaticKey{header: h, key: key}, nil
}

// Apply sets the key header, replacing any value already present.
func (s *StaticKey) Apply(_ context.Context, r *http.Request) error {
	r.Header.Set(s.header, s.key)
	return nil
}

// String never shows the key.
func (s *StaticKey) String() string {
	return "static key (" + s.header + ", sha256:" + Fingerprint(s.key) + ")"
}

// StaticBearer sends a fixed token as Authorization: Bearer (an Anthropic
// OAuth token, for example).
type StaticBearer struct{ token string }

// NewStaticBearer returns the bearer credential.
func NewStaticBearer(token string) (*StaticBearer, error) {
	if token == "" {
		return nil, errors.New("credential: empty bearer token")
	}
	return &StaticBearer{token: token}, nil
}

// Apply sets Authorization: Bearer <token>.
func (s *StaticBearer) Apply(_ context.Context, r *http.Request) error {
	r.Header.Set(HeaderAuthorization, "Bearer "+s.token)
	return nil
}

// String never shows the token.
func (s *StaticBearer) String() string { return "static bearer (sha256:" + Fingerprint(s.token) + ")" }

var (
	_ Credential = (*StaticKey)(nil)
	_ Credential = (*StaticBearer)(nil)
)
