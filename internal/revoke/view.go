package revoke

import (
	"encoding/binary"
	"math"
	"strings"
	"time"
	"unsafe"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

// forever is the "until" of a revocation without an end.
const forever = int64(math.MaxInt64)

// cutoff is one "issued before" rule in force until until (unix ns).
type cutoff struct {
	before int64 // unix ns: tokens with iat < before are revoked
	until  int64
	id     int64
}

// entry is one matching rule in force until until (unix ns).
type entry struct {
	until int64
	id    int64
	kind  Kind
}

// view is an immutable index of the revocations in force, built from one
// List. Lookups allocate nothing unless a principal's display claims carry
// upper-case letters and UPN revocations exist.
type view struct {
	version int64
	loaded  time.Time // when this view was built
	count   int
	all     []entry               // kill switches
	ids     map[string]*userRules // user and before rules by oid or user key
	names   map[string][]entry    // user: by lower-case UPN / e-mail
	tokens  map[string][]entry    // token: jti or sha256
	global  []cutoff              // before, everyone
}

// userRules are the rules naming one user by oid or key.
type userRules struct {
	entries []entry  // KindUser
	cuts    []cutoff // KindBefore for this user
}

func buildView(version int64, list []Revocation, now time.Time) *view {
	v := &view{version: version, loaded: now}
	rules := func(k string) *userRules {
		if v.ids == nil {
			v.ids = map[string]*userRules{}
		}
		u := v.ids[k]
		if u == nil {
			u = &userRules{}
			v.ids[k] = u
		}
		return u
	}
	add := func(m *map[string][]entry, k string, e entry) {
		if *m == nil {
			*m = map[string][]entry{}
		}
		(*m)[k] = append((*m)[k], e)
	}
	for _, r := range list {
		if !r.Active(now) {
			continue
		}
		v.count++
		until := forever
		if !r.Until.IsZero() {
			until = r.Until.UnixNano()
		}
		e := entry{until: until, id: r.ID, kind: r.Kind}
		switch r.Kind {
		case KindAll:
			v.all = append(v.all, e)
		case KindUser:
			if isUserKey(r.Subject) {
				u := rules(r.Subject)
				u.entries = append(u.entries, e)
			} else {
				add(&v.names, strings.ToLower(r.Subject), e)
			}
		case KindToken:
			add(&v.tokens, r.Subject, e)
		case KindBefore:
			c := cutoff{before: r.Before.UnixNano(), until: until, id: r.ID}
			if r.Subject == "" {
				v.global = append(v.global, c)
			} else {
				u := rules(r.Subject)
				u.cuts = append(u.cuts, c)
			}
		}
	}
	return v
}

// isUserKey: an object ID, a "<tid>/<oid>" key or an "<iss>|<sub>" key, as
// opposed to a UPN / e-mail (display claim).
func isUserKey(s string) bool {
	return IsGUID(s) || strings.Contains(s, "/") || strings.Contains(s, "|") || !strings.Contains(s, "@")
}

// RevokedError is what Check returns for a revoked principal. It names the
// revocation, never the token.
type RevokedError struct {
	ID   int64
	Kind Kind
}

func (e *RevokedError) Error() string {
	if e.ID == 0 {
		return "revoked: " + string(e.Kind)
	}
	return "revoked by revocation " + itoa(e.ID) + " (" + string(e.Kind) + ")"
}

func itoa(n int64) string {
	var b [20]byte
	i := len(b)
	neg := n < 0
	if neg {
		n = -n
	}
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}

// clock reads the time at most once per check, and only when a candidate
// rule needs it (the common no-match case never does).
type clock struct {
	f  func() time.Time
	n  int64
	ok bool
}

func (c *clock) now() int64 {
	if !c.ok {
		c.n, c.ok = c.f().UnixNano(), true
	}
	return c.n
}

func firstActive(es []entry, c *clock) (entry, bool) {
	for _, e := range es {
		if e.until == forever || c.now() < e.until {
			return e, true
		}
	}
	return entry{}, false
}

func firstCut(cs []cutoff, iat int64, clk *clock) (cutoff, bool) {
	for _, c := range cs {
		if iat < c.before && (c.until == forever || clk.now() < c.until) {
			return c, true
		}
	}
	return cutoff{}, false
}

// match returns the revocation that covers p at clk's time, if any.
func (v *view) match(p *identity.Principal, clk *clock) (int64, Kind, bool) {
	n := clk
	if e, ok := firstActive(v.all, n); ok {
		return e.id, e.kind, true
	}
	// A token without iat counts as issued at the beginning of time.
	iat := int64(math.MinInt64)
	if !p.IssuedAt.IsZero() {
		iat = p.IssuedAt.UnixNano()
	}
	if c, ok := firstCut(v.global, iat, n); ok {
		return c.id, KindBefore, true
	}
	var buf [128]byte
	if v.ids != nil {
		for _, k := range [...]string{p.ObjectID, p.Key} {
			if k == "" {
				continue
			}
			if u := v.ids[lowerKey(k, &buf)]; u != nil {
				if e, ok := firstActive(u.entries, n); ok {
					return e.id, e.kind, true
				}
				if c, ok := firstCut(u.cuts, iat, n); ok {
					return c.id, KindBefore, true
				}
			}
		}
	}
	if v.names != nil {
		for _, k := range [...]string{p.Username, p.Email} {
			if k == "" {
				continue
			}
			if e, ok := firstActive(v.names[lowerKey(k, &buf)], n); ok {
				return e.id, e.kind, true
			}
		}
	}
	if v.tokens != nil {
		for _, k := range [...]string{p.TokenID, p.TokenHash} {
			if k == "" {
				continue
			}
			if e, ok := firstActive(v.tokens[k], n); ok {
				return e.id, e.kind, true
			}
		}
	}
	return 0, "", false
}

// lowerKey returns s lower-cased for a map lookup, using buf (no
// allocation) for short ASCII strings. Non-Entra keys ("<iss>|<sub>") are
// returned unchanged: their sub is case-sensitive.
func lowerKey(s string, buf *[128]byte) string {
	upper, special := scan(s)
	if special {
		if strings.IndexByte(s, '|') >= 0 {
			return s
		}
		return strings.ToLower(s)
	}
	if !upper {
		return s
	}
	if len(s) > len(buf) {
		return strings.ToLower(s)
	}
	b := buf[:len(s)]
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[i] = c
	}
	// Only used as a map key during the lookup; buf outlives that.
	return unsafe.String(&b[0], len(b))
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// scan reports whether s has ASCII upper-case letters, and whether it has
// a '|' or a non-ASCII byte (special), eight bytes at a time.
func scan(s string) (upper, special bool) {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := binary.LittleEndian.Uint64(unsafe.Slice(unsafe.StringData(s[i:]), 8))
		if w&msb != 0 {
			return upper, true
		}
		// All bytes < 0x80: per-byte adds cannot carry into the next byte.
		if (w+0x3f*lsb)&^(w+0x25*lsb)&msb != 0 { // 'A' <= b <= 'Z'
			upper = true
		}
		if x := w ^ ('|' * lsb); (x-lsb)&^x&msb != 0 {
			return upper, true
		}
	}
	for ; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 || c == '|' {
			return upper, true
		}
		if 'A' <= c && c <= 'Z' {
			upper = true
		}
	}
	return upper, false
}
