// Package revoke ends access before a token expires: it holds the
// revocations an operator (or the Entra sync) has made — a user, every token
// issued before a time, one token, or everything — in a shared state store,
// and answers on every request, from an in-memory snapshot kept current by
// change notifications and polling, whether the caller is revoked.
//
// The model (security.md §6.6):
//
//   - KindUser: every token of one user. Subject is the user's object ID
//     (oid), the gateway's user key ("<tid>/<oid>", or "<iss>|<sub>" for
//     other OIDC providers), or a user principal name / e-mail, which is
//     matched case-insensitively against the token's display claims
//     (preferred_username/upn, email). Display claims can be changed in the
//     identity provider, so the oid is the reliable key.
//   - KindBefore: every token issued (iat) strictly before Before; for one
//     user when Subject is set (oid or user key), else for everyone. Same
//     semantics as Entra's signInSessionsValidFromDateTime.
//   - KindToken: one token, by its jti/uti or the hex SHA-256 of the raw
//     token.
//   - KindAll: the kill switch; every request is refused.
//
// A revocation with a non-zero Until lapses at that time. Removing a
// revocation keeps it (with who removed it and why) for the record.
package revoke

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Kind is what a revocation covers.
type Kind string

// The kinds of revocation.
const (
	KindUser   Kind = "user"
	KindBefore Kind = "before"
	KindToken  Kind = "token"
	KindAll    Kind = "all"
)

// Sources of revocations.
const (
	SourceCLI   = "cli"
	SourceGraph = "entra-sync"
)

// Revocation is one entry in the store.
type Revocation struct {
	ID      int64     `json:"id"`
	Kind    Kind      `json:"kind"`
	Subject string    `json:"subject,omitempty"` // see the package doc; normalised by Normalize
	Before  time.Time `json:"before,omitzero"`   // KindBefore: tokens with iat < Before
	Until   time.Time `json:"until,omitzero"`    // zero: until removed
	Reason  string    `json:"reason"`
	Actor   string    `json:"actor"`  // who made it (operator, "entra-sync")
	Source  string    `json:"source"` // cli, entra-sync
	Created time.Time `json:"created"`

	// Set once removed (List with removed included).
	Removed       time.Time `json:"removed,omitzero"`
	RemovedBy     string    `json:"removed_by,omitempty"`
	RemovedReason string    `json:"removed_reason,omitempty"`
}

// Active reports whether r is in force at now (not removed, not lapsed).
func (r Revocation) Active(now time.Time) bool {
	return r.Removed.IsZero() && (r.Until.IsZero() || now.Before(r.Until))
}

// Describe is a one-line human description without the reason.
func (r Revocation) Describe() string {
	switch r.Kind {
	case KindUser:
		return "user " + r.Subject
	case KindBefore:
		who := "everyone"
		if r.Subject != "" {
			who = "user " + r.Subject
		}
		return "tokens issued before " + r.Before.UTC().Format(time.RFC3339) + " for " + who
	case KindToken:
		return "token " + r.Subject
	case KindAll:
		return "everything (kill switch)"
	}
	return string(r.Kind)
}

// ErrNotFound: no revocation with that ID (or it was already removed).
var ErrNotFound = errors.New("revoke: no such revocation")

// Store persists revocations. Every change (Add, Remove) increments a
// change counter returned by Version, in the same transaction, so a reader
// can poll one number to learn that it must reload.
type Store interface {
	// Add stores r (Kind, Subject, Before, Until, Reason, Actor, Source;
	// ID and Created are assigned) and returns the stored copy.
	Add(ctx context.Context, r Revocation) (Revocation, error)
	// Remove marks revocation id removed by actor for reason and returns
	// it. ErrNotFound when there is none (or it was already removed).
	Remove(ctx context.Context, id int64, actor, reason string) (Revocation, error)
	// List returns revocations ordered by ID; removed ones only when
	// includeRemoved is set.
	List(ctx context.Context, includeRemoved bool) ([]Revocation, error)
	// Version is the change counter (0 for an empty store).
	Version(ctx context.Context) (int64, error)
	Close() error
}

// Watcher is implemented by stores that push changes (PostgreSQL
// LISTEN/NOTIFY). Watch calls changed after every change made by any
// process, until ctx ends or the connection fails (it then returns the
// error; the caller reconnects by calling Watch again).
type Watcher interface {
	Watch(ctx context.Context, ready func(), changed func()) error
}

// Normalize checks r and brings its subject into canonical form (lower
// case for object IDs, user keys of Entra form, UPNs and hashes; a jti is
// kept as is). It is applied by stores on Add.
func Normalize(r Revocation) (Revocation, error) {
	r.Subject = strings.TrimSpace(r.Subject)
	r.Reason = strings.TrimSpace(r.Reason)
	if r.Reason == "" {
		return r, errors.New("revoke: a reason is required")
	}
	if len(r.Reason) > 1000 || len(r.Subject) > 1000 || len(r.Actor) > 200 {
		return r, errors.New("revoke: reason, subject or actor too long")
	}
	switch r.Kind {
	case KindUser:
		if r.Subject == "" {
			return r, errors.New("revoke: a user revocation needs an object ID, user key or user principal name")
		}
		if !IsGUID(r.Subject) && !strings.ContainsAny(r.Subject, "@/|") {
			return r, fmt.Errorf("revoke: %q is not an object ID (GUID), a user key (<tid>/<oid>, <iss>|<sub>) or a user principal name", r.Subject)
		}
		r.Subject = userSubject(r.Subject)
		r.Before = time.Time{}
	case KindBefore:
		if r.Before.IsZero() {
			return r, errors.New("revoke: a before revocation needs a time")
		}
		if r.Subject != "" {
			if !IsGUID(r.Subject) && !strings.ContainsAny(r.Subject, "/|") {
				return r, fmt.Errorf("revoke: %q: a before revocation names its user by object ID (GUID) or user key, not by name", r.Subject)
			}
			r.Subject = userSubject(r.Subject)
		}
	case KindToken:
		if r.Subject == "" {
			return r, errors.New("revoke: a token revocation needs a jti/uti or a SHA-256")
		}
		if IsSHA256(r.Subject) {
			r.Subject = strings.ToLower(r.Subject)
		}
		r.Before = time.Time{}
	case KindAll:
		r.Subject, r.Before = "", time.Time{}
	default:
		return r, fmt.Errorf("revoke: unknown kind %q", r.Kind)
	}
	r.Before = r.Before.UTC().Truncate(time.Microsecond)
	r.Until = r.Until.UTC().Truncate(time.Microsecond)
	if !r.Before.IsZero() && r.Before.Year() < 1970 {
		return r, errors.New("revoke: time before 1970")
	}
	return r, nil
}

// userSubject lower-cases everything but the issuer part of a non-Entra
// key ("<iss>|<sub>": sub is case-sensitive).
func userSubject(s string) string {
	if strings.Contains(s, "|") {
		return s
	}
	return strings.ToLower(s)
}

// IsSHA256 reports whether s is 64 hex digits.
func IsSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// IsGUID reports whether s has the 8-4-4-4-12 hex form of an object ID.
func IsGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return false
			}
			continue
		}
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// ParseTime reads an absolute time (RFC 3339) or a duration relative to
// now: positive ("24h") for the future, as used by --until, or "now".
// Negative durations ("-1h") are allowed for the past.
func ParseTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, errors.New("empty time")
	}
	if s == "now" {
		return now.UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(d).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time (2026-11-24T10:00:00Z) nor a duration (24h)", s)
}
