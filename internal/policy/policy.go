// Package policy decides which governance rules apply to a verified user:
// the first configured policy whose match selects the user wins, merged over
// the catch-all policy, and every group limit of the user's groups applies
// on top. It answers "may this user call this model" and "which limits
// count this request"; counting itself is package limits' job.
//
// Matching uses only verified, immutable claims (group object IDs, app
// roles, user keys or object IDs, tenant IDs), never display names.
package policy

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

// Limits are the limits of a policy or a group. Zero means "not set"
// (inherit from the catch-all in a policy; unlimited after merging).
type Limits struct {
	RequestsPerMinute int64
	TokensPerMinute   int64
	TokensPerDay      int64
	USDPerMonth       float64
	ConcurrentStreams int64
}

// IsZero reports whether no limit is set.
func (l Limits) IsZero() bool { return l == Limits{} }

// over fills each unset field of l from base.
func (l Limits) over(base Limits) Limits {
	if l.RequestsPerMinute == 0 {
		l.RequestsPerMinute = base.RequestsPerMinute
	}
	if l.TokensPerMinute == 0 {
		l.TokensPerMinute = base.TokensPerMinute
	}
	if l.TokensPerDay == 0 {
		l.TokensPerDay = base.TokensPerDay
	}
	if l.USDPerMonth == 0 {
		l.USDPerMonth = base.USDPerMonth
	}
	if l.ConcurrentStreams == 0 {
		l.ConcurrentStreams = base.ConcurrentStreams
	}
	return l
}

// Match selects users: any listed value matching selects (any-of). An
// empty Match selects everyone (the catch-all).
type Match struct {
	Groups  []string // group object IDs
	Roles   []string // app roles
	Users   []string // Principal.Key or Principal.ObjectID
	Tenants []string // Principal.TenantID
}

// IsCatchAll reports whether m selects everyone.
func (m Match) IsCatchAll() bool {
	return len(m.Groups) == 0 && len(m.Roles) == 0 && len(m.Users) == 0 && len(m.Tenants) == 0
}

// Policy is one configured policy.
type Policy struct {
	Name  string
	Match Match
	// Models the user may call: exact IDs or path.Match globs
	// ("claude-sonnet-*"). Empty: inherit; empty after merging: all.
	Models []string
	// MaxOutputTokens caps max_tokens. 0: inherit; 0 after merging: none.
	MaxOutputTokens int64
	Limits          Limits
	// Shadow: decisions are logged and counted, nothing is denied.
	Shadow bool
	// FailOpen: admit uncounted when the limits store is unreachable
	// (default false: refuse).
	FailOpen bool
	// ContentCapture overrides audit.content.capture for these users:
	// off, metadata, redacted or full. Empty: inherit.
	ContentCapture string
}

// GroupLimit caps a group as a whole.
type GroupLimit struct {
	Group    string // group object ID
	Name     string // label for messages; default Group
	Limits   Limits
	Shadow   bool
	FailOpen bool
}

// Effective is the merged policy that applies to one user.
type Effective struct {
	// Name of the policy that matched ("default" when no policies are
	// configured).
	Name            string
	Models          []string // empty: every model
	MaxOutputTokens int64
	Limits          Limits
	Shadow          bool
	FailOpen        bool
	ContentCapture  string // "" : the gateway-wide audit.content.capture
	// Groups are the group limits of the user's groups, in configuration
	// order.
	Groups []*GroupLimit
}

// AllowsModel reports whether the effective policy lets the user call model.
func (e *Effective) AllowsModel(model string) bool {
	if len(e.Models) == 0 {
		return true
	}
	for _, m := range e.Models {
		if m == model {
			return true
		}
		if strings.ContainsAny(m, "*?[") {
			if ok, _ := path.Match(m, model); ok {
				return true
			}
		}
	}
	return false
}

type compiled struct {
	p                       Policy
	groups, roles, users, t map[string]struct{}
}

func set(vals []string) map[string]struct{} {
	if len(vals) == 0 {
		return nil
	}
	m := make(map[string]struct{}, len(vals))
	for _, v := range vals {
		m[v] = struct{}{}
	}
	return m
}

func hasAny(m map[string]struct{}, vals []string) bool {
	if len(m) == 0 {
		return false
	}
	for _, v := range vals {
		if _, ok := m[v]; ok {
			return true
		}
	}
	return false
}

func (c *compiled) matches(p *identity.Principal) bool {
	if hasAny(c.groups, p.Groups) || hasAny(c.roles, p.Roles) || hasAny(c.t, []string{p.TenantID}) {
		return true
	}
	if len(c.users) > 0 {
		if _, ok := c.users[p.Key]; ok && p.Key != "" {
			return true
		}
		if _, ok := c.users[p.ObjectID]; ok && p.ObjectID != "" {
			return true
		}
	}
	return false
}

// Set is the compiled, immutable set of policies and group limits. It is
// safe for concurrent use.
type Set struct {
	specific []*compiled
	catchAll *Policy
	groups   map[string]*GroupLimit
	order    []*GroupLimit
	none     bool // no policies configured: everyone may use everything
}

// New compiles policies and group limits. Names must be unique, at most one
// policy may be the catch-all, and globs must be valid.
func New(policies []Policy, groups []GroupLimit) (*Set, error) {
	s := &Set{groups: map[string]*GroupLimit{}, none: len(policies) == 0}
	var errs []error
	names := map[string]bool{}
	for i := range policies {
		p := policies[i]
		if p.Name == "" {
			errs = append(errs, fmt.Errorf("policy %d has no name", i))
		}
		if names[p.Name] {
			errs = append(errs, fmt.Errorf("policy %q is defined twice", p.Name))
		}
		names[p.Name] = true
		for _, m := range p.Models {
			if _, err := path.Match(m, ""); err != nil {
				errs = append(errs, fmt.Errorf("policy %q: model pattern %q is invalid", p.Name, m))
			}
		}
		if p.Match.IsCatchAll() {
			if s.catchAll != nil {
				errs = append(errs, fmt.Errorf("policies %q and %q both match everyone", s.catchAll.Name, p.Name))
			}
			s.catchAll = &p
			continue
		}
		s.specific = append(s.specific, &compiled{p: p, groups: set(p.Match.Groups), roles: set(p.Match.Roles), users: set(p.Match.Users), t: set(p.Match.Tenants)})
	}
	for i := range groups {
		g := groups[i]
		if g.Group == "" {
			errs = append(errs, fmt.Errorf("group limit %d has no group", i))
			continue
		}
		if _, dup := s.groups[g.Group]; dup {
			errs = append(errs, fmt.Errorf("group %q has two group limits", g.Group))
			continue
		}
		if g.Name == "" {
			g.Name = g.Group
		}
		s.groups[g.Group] = &g
		s.order = append(s.order, &g)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// Resolve returns the effective policy for p. ok is false when policies are
// configured and none matches p (no catch-all): the user may use nothing.
func (s *Set) Resolve(p identity.Principal) (eff Effective, ok bool) {
	eff.Groups = s.groupsOf(&p)
	if s.none {
		eff.Name = "default"
		return eff, true
	}
	var chosen *Policy
	for _, c := range s.specific {
		if c.matches(&p) {
			chosen = &c.p
			break
		}
	}
	if chosen == nil {
		chosen = s.catchAll
	}
	if chosen == nil {
		return eff, false
	}
	eff.Name = chosen.Name
	eff.Models = chosen.Models
	eff.MaxOutputTokens = chosen.MaxOutputTokens
	eff.Limits = chosen.Limits
	eff.Shadow = chosen.Shadow
	eff.FailOpen = chosen.FailOpen
	eff.ContentCapture = chosen.ContentCapture
	if base := s.catchAll; base != nil && base != chosen {
		if eff.ContentCapture == "" {
			eff.ContentCapture = base.ContentCapture
		}
		if len(eff.Models) == 0 {
			eff.Models = base.Models
		}
		if eff.MaxOutputTokens == 0 {
			eff.MaxOutputTokens = base.MaxOutputTokens
		}
		eff.Limits = eff.Limits.over(base.Limits)
	}
	return eff, true
}

func (s *Set) groupsOf(p *identity.Principal) []*GroupLimit {
	if len(s.groups) == 0 || len(p.Groups) == 0 {
		return nil
	}
	var out []*GroupLimit
	if len(p.Groups) < len(s.order) {
		member := set(p.Groups)
		for _, g := range s.order {
			if _, ok := member[g.Group]; ok {
				out = append(out, g)
			}
		}
		return out
	}
	for _, g := range s.order {
		for _, pg := range p.Groups {
			if pg == g.Group {
				out = append(out, g)
				break
			}
		}
	}
	return out
}

// HasLimits reports whether any policy or group limit sets a limit.
func (s *Set) HasLimits() bool {
	if s.catchAll != nil && !s.catchAll.Limits.IsZero() {
		return true
	}
	for _, c := range s.specific {
		if !c.p.Limits.IsZero() {
			return true
		}
	}
	return len(s.order) > 0
}
