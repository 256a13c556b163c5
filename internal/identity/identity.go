// Package identity defines the verified caller of a request: the Principal
// produced by authentication and read by policy, audit and the proxy.
//
// It is a leaf package (standard library only) so every other package can
// depend on it without pulling in JOSE, storage or HTTP concerns.
package identity

import (
	"context"
	"time"
)

// Principal is a verified user. It is a value: once authentication has
// produced it, nothing changes it.
//
// Only Key, TenantID, ObjectID, Subject, Issuer, Groups, Roles and Scopes may
// be used for authorisation decisions. Username, Name and Email are display
// claims (mutable in the identity provider) and never authorise anything.
type Principal struct {
	// Key is the stable user key: "<tid>/<oid>" for Entra ID, "<iss>|<sub>"
	// for other OIDC providers. Limits, revocations and reports use it.
	Key string

	Provider string // name of the identity provider that verified the token
	Issuer   string // exact iss claim
	TenantID string // tid (Entra), empty elsewhere
	ObjectID string // oid (Entra), empty elsewhere
	Subject  string // sub
	ClientID string // azp / appid of the client application, when present

	Username string // preferred_username or upn: display only
	Name     string // name: display only
	Email    string // email: display only

	Groups []string // group object IDs (after overage resolution)
	Roles  []string // app roles
	Scopes []string // delegated scopes (scp), access-token mode only

	TokenID   string    // jti or uti, when present
	TokenHash string    // hex SHA-256 of the raw token; the token itself is never kept
	IssuedAt  time.Time // iat
	ExpiresAt time.Time // exp
}

// Display returns the best human-readable name for logs and audit records.
func (p Principal) Display() string {
	switch {
	case p.Username != "":
		return p.Username
	case p.Email != "":
		return p.Email
	case p.Name != "":
		return p.Name
	}
	return p.Key
}

type ctxKey struct{}

// NewContext returns a copy of ctx carrying p.
//
// The context keeps p itself, not a copy: nothing may change *p afterwards.
func NewContext(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// FromContext returns the Principal stored in ctx, if any.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(ctxKey{}).(*Principal)
	if !ok {
		return Principal{}, false
	}
	return *p, true
}
