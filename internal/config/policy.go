package config

import (
	"math"
	"net/url"
	"path"
	"strings"
	"time"
)

// Usage-governance sections (issue 4): who may use which model, how much,
// what it costs, and where the shared counters live. docs/governance.md is
// the operator reference for every key below.

// Policy modes and fail modes.
const (
	PolicyModeEnforce = "enforce"
	PolicyModeShadow  = "shadow"
	FailOpen          = "open"
	FailClosed        = "closed"
)

// Policy is one entry of `policies`. The first policy whose match selects the
// user wins; its unset fields are taken from the catch-all policy (the one
// with an empty match), if there is one.
type Policy struct {
	// Name appears in denial messages, logs and audit reasons.
	Name string `yaml:"name"`
	// Match selects users; an empty match ({}) is the catch-all.
	Match PolicyMatch `yaml:"match"`
	// Models the user may call: model IDs or globs (claude-sonnet-*).
	// Empty: inherit from the catch-all; empty there too: every model.
	Models []string `yaml:"models,omitempty"`
	// MaxOutputTokens caps max_tokens per request. 0: inherit / no cap.
	MaxOutputTokens int64 `yaml:"max_output_tokens,omitempty"`
	// Limits apply per user. Each zero field inherits from the catch-all;
	// zero there too means unlimited.
	Limits LimitSet `yaml:"limits,omitempty"`
	// Mode is enforce (default) or shadow (log and count what would be
	// denied, deny nothing).
	Mode string `yaml:"mode,omitempty"`
	// FailMode says what happens when the limits store (Redis) cannot be
	// reached: closed refuses with 503, open admits uncounted. Default:
	// limits.fail_mode.
	FailMode string `yaml:"fail_mode,omitempty"`
	// ContentCapture overrides audit.content.capture for the users this
	// policy selects: off, metadata, redacted or full. Empty: inherit.
	ContentCapture string `yaml:"content_capture,omitempty"`
}

// PolicyMatch selects users. A user matches when any listed value matches
// (any-of across all lists). Only verified, immutable claims are used:
// group object IDs, app roles, user keys or object IDs, and tenant IDs.
type PolicyMatch struct {
	Groups  []string `yaml:"groups,omitempty"`  // Entra group object IDs
	Roles   []string `yaml:"roles,omitempty"`   // app roles
	Users   []string `yaml:"users,omitempty"`   // user keys (<tid>/<oid>, <iss>|<sub>) or object IDs
	Tenants []string `yaml:"tenants,omitempty"` // tenant IDs (tid)
}

// IsCatchAll reports whether the match selects everyone.
func (m PolicyMatch) IsCatchAll() bool {
	return len(m.Groups) == 0 && len(m.Roles) == 0 && len(m.Users) == 0 && len(m.Tenants) == 0
}

// LimitSet is the set of limits of a policy or group. Zero means "not set".
type LimitSet struct {
	RequestsPerMinute int64   `yaml:"requests_per_minute,omitempty"`
	TokensPerMinute   int64   `yaml:"tokens_per_minute,omitempty"`
	TokensPerDay      int64   `yaml:"tokens_per_day,omitempty"`
	USDPerMonth       float64 `yaml:"usd_per_month,omitempty"`
	ConcurrentStreams int64   `yaml:"concurrent_streams,omitempty"`
}

// IsZero reports whether no limit is set.
func (l LimitSet) IsZero() bool { return l == LimitSet{} }

// GroupLimit is one entry of `group_limits`: a cap on a group as a whole,
// counted across all its members, in addition to each member's own limits.
type GroupLimit struct {
	// Group is the group object ID as it appears in the token's groups.
	Group string `yaml:"group"`
	// Name is a label for messages and reports. Default: the group ID.
	Name     string   `yaml:"name,omitempty"`
	Limits   LimitSet `yaml:"limits"`
	Mode     string   `yaml:"mode,omitempty"`      // enforce (default) | shadow
	FailMode string   `yaml:"fail_mode,omitempty"` // default: limits.fail_mode
}

// Limits configures where the counters live.
type Limits struct {
	// Redis is a redis:// or rediss:// URL. Empty: counters live in the
	// gateway process (one replica only).
	Redis string `yaml:"redis,omitempty"`
	// RedisPassword is the Redis password, as ${env:NAME} or ${file:/path}.
	RedisPassword Secret `yaml:"redis_password,omitempty"`
	// KeyPrefix namespaces the Redis keys. Default "gatehouse".
	KeyPrefix string `yaml:"key_prefix,omitempty"`
	// Timeout bounds one Redis round trip. Default 500ms.
	Timeout time.Duration `yaml:"timeout,omitempty"`
	// FailMode is the default for policies without one: closed (default)
	// or open.
	FailMode string `yaml:"fail_mode,omitempty"`
	// CountCacheReads makes tokens_per_minute and tokens_per_day count
	// cache reads too. Default false, as Anthropic's own rate limits: a
	// Claude Code session re-reads its whole context every turn.
	CountCacheReads bool `yaml:"count_cache_reads,omitempty"`
	// StreamLease is how long a concurrent_streams slot is held when the
	// gateway dies before releasing it. Default 61m; must be at least
	// server.max_request_duration.
	StreamLease time.Duration `yaml:"stream_lease,omitempty"`
}

// Price is one entry of `pricing`: USD per million tokens for a model
// (optionally on one upstream only). Entries override the shipped defaults.
type Price struct {
	Model string `yaml:"model"`
	// Upstream restricts the entry to one upstream; empty: every upstream.
	Upstream     string  `yaml:"upstream,omitempty"`
	Input        float64 `yaml:"input"`
	Output       float64 `yaml:"output"`
	CacheWrite5m float64 `yaml:"cache_write_5m"`
	CacheWrite1h float64 `yaml:"cache_write_1h"`
	CacheRead    float64 `yaml:"cache_read"`
	// LongContext, when set, prices the whole request at its rates once the
	// total input (uncached + cache writes + cache reads) exceeds
	// threshold tokens.
	LongContext *LongContextPrice `yaml:"long_context,omitempty"`
}

// LongContextPrice are the rates above a total-input threshold.
type LongContextPrice struct {
	Threshold    int64   `yaml:"threshold"`
	Input        float64 `yaml:"input"`
	Output       float64 `yaml:"output"`
	CacheWrite5m float64 `yaml:"cache_write_5m"`
	CacheWrite1h float64 `yaml:"cache_write_1h"`
	CacheRead    float64 `yaml:"cache_read"`
}

// The root Config gains four fields (added in config.go):
//
//	Policies    []Policy     `yaml:"policies,omitempty"`
//	GroupLimits []GroupLimit `yaml:"group_limits,omitempty"`
//	Limits      Limits       `yaml:"limits,omitempty"`
//	Pricing     []Price      `yaml:"pricing,omitempty"`
//
// and ApplyDefaults/Validate call c.applyPolicyDefaults() and
// c.validatePolicies(v) (policy_hooks.go), which delegate to the two
// functions below.

// applyGovernanceDefaults fills defaults of policies, group_limits and
// limits. It is idempotent.
func applyGovernanceDefaults(policies []Policy, groupLimits []GroupLimit, l *Limits) {
	if l.KeyPrefix == "" {
		l.KeyPrefix = "gatehouse"
	}
	if l.Timeout == 0 {
		l.Timeout = 500 * time.Millisecond
	}
	if l.FailMode == "" {
		l.FailMode = FailClosed
	}
	if l.StreamLease == 0 {
		l.StreamLease = 61 * time.Minute
	}
	for i := range policies {
		p := &policies[i]
		if p.Mode == "" {
			p.Mode = PolicyModeEnforce
		}
		if p.FailMode == "" {
			p.FailMode = l.FailMode
		}
	}
	for i := range groupLimits {
		g := &groupLimits[i]
		if g.Name == "" {
			g.Name = g.Group
		}
		if g.Mode == "" {
			g.Mode = PolicyModeEnforce
		}
		if g.FailMode == "" {
			g.FailMode = l.FailMode
		}
	}
}

// validateGovernance checks policies, group_limits, limits and pricing.
// hasUpstream reports whether an upstream name is configured.
func validateGovernance(v *validator, policies []Policy, groupLimits []GroupLimit, l *Limits, pricing []Price, models []Model, hasUpstream func(string) bool, maxRequest time.Duration) {
	known := map[string]bool{}
	for _, m := range models {
		known[m.ID] = true
	}
	names := map[string]bool{}
	catchAll := -1
	for i := range policies {
		p := &policies[i]
		pv := v.index("policies", i)
		switch {
		case p.Name == "":
			pv.add("name", "is required (it names the rule in denial messages)")
		case !nameRE.MatchString(p.Name):
			pv.add("name", "%q must be lower-case letters, digits, '-', '_' or '.'", p.Name)
		case names[p.Name]:
			pv.add("name", "%q is used by another policy", p.Name)
		}
		names[p.Name] = true
		if p.Match.IsCatchAll() {
			if catchAll >= 0 {
				pv.add("match", "policies[%d] is already the catch-all (match: {}); only one policy may match everyone", catchAll)
			}
			catchAll = i
		}
		validateMatch(pv.at("match"), p.Match)
		for j, m := range p.Models {
			validateModelRef(pv, j, m, known)
		}
		if p.MaxOutputTokens < 0 {
			pv.add("max_output_tokens", "must not be negative")
		}
		validateLimitSet(pv.at("limits"), p.Limits)
		validateMode(pv, p.Mode, p.FailMode)
	}
	groups := map[string]bool{}
	for i := range groupLimits {
		g := &groupLimits[i]
		gv := v.index("group_limits", i)
		switch {
		case strings.TrimSpace(g.Group) == "":
			gv.add("group", "is required (the group object ID)")
		case groups[g.Group]:
			gv.add("group", "%q has another group_limits entry; merge them", g.Group)
		}
		groups[g.Group] = true
		if g.Limits.IsZero() {
			gv.add("limits", "set at least one limit")
		}
		validateLimitSet(gv.at("limits"), g.Limits)
		validateMode(gv, g.Mode, g.FailMode)
	}
	l.validate(v.at("limits"), maxRequest)
	type pkey struct{ model, upstream string }
	seen := map[pkey]bool{}
	for i := range pricing {
		p := &pricing[i]
		pv := v.index("pricing", i)
		if p.Model == "" {
			pv.add("model", "is required")
		}
		k := pkey{strings.ToLower(p.Model), p.Upstream}
		if seen[k] {
			pv.add("model", "%q has another pricing entry for the same upstream", p.Model)
		}
		seen[k] = true
		if p.Upstream != "" && !hasUpstream(p.Upstream) {
			pv.add("upstream", "%q is not the name of a configured upstream", p.Upstream)
		}
		for _, f := range []struct {
			name string
			val  float64
		}{{"input", p.Input}, {"output", p.Output}, {"cache_write_5m", p.CacheWrite5m}, {"cache_write_1h", p.CacheWrite1h}, {"cache_read", p.CacheRead}} {
			if f.val < 0 || math.IsNaN(f.val) || math.IsInf(f.val, 0) || f.val > 10000 {
				pv.add(f.name, "must be a USD price per million tokens between 0 and 10000")
			}
		}
		if lc := p.LongContext; lc != nil {
			lv := pv.at("long_context")
			if lc.Threshold <= 0 {
				lv.add("threshold", "must be a positive number of input tokens")
			}
			for _, f := range []struct {
				name string
				val  float64
			}{{"input", lc.Input}, {"output", lc.Output}, {"cache_write_5m", lc.CacheWrite5m}, {"cache_write_1h", lc.CacheWrite1h}, {"cache_read", lc.CacheRead}} {
				if f.val < 0 || math.IsNaN(f.val) || math.IsInf(f.val, 0) || f.val > 10000 {
					lv.add(f.name, "must be a USD price per million tokens between 0 and 10000")
				}
			}
		}
	}
}

func validateMatch(v *validator, m PolicyMatch) {
	for _, l := range []struct {
		name string
		vals []string
	}{{"groups", m.Groups}, {"roles", m.Roles}, {"users", m.Users}, {"tenants", m.Tenants}} {
		for i, s := range l.vals {
			if strings.TrimSpace(s) == "" {
				v.add(l.name, "entry %d is empty", i)
			}
		}
	}
}

func validateModelRef(v *validator, j int, m string, known map[string]bool) {
	if strings.ContainsAny(m, "*?[") {
		if _, err := path.Match(m, ""); err != nil {
			v.add("models", "entry %d: %q is not a valid glob", j, m)
		}
		return
	}
	switch {
	case !modelRE.MatchString(m):
		v.add("models", "entry %d: %q is not a valid model id", j, m)
	case len(known) > 0 && !known[m]:
		v.add("models", "entry %d: %q is not listed under models", j, m)
	}
}

func validateLimitSet(v *validator, l LimitSet) {
	for _, f := range []struct {
		name string
		val  int64
	}{
		{"requests_per_minute", l.RequestsPerMinute},
		{"tokens_per_minute", l.TokensPerMinute},
		{"tokens_per_day", l.TokensPerDay},
		{"concurrent_streams", l.ConcurrentStreams},
	} {
		if f.val < 0 {
			v.add(f.name, "must not be negative (omit it for no limit)")
		}
	}
	if l.USDPerMonth < 0 || math.IsNaN(l.USDPerMonth) || math.IsInf(l.USDPerMonth, 0) || l.USDPerMonth > 1e9 {
		v.add("usd_per_month", "must be between 0 and 1e9 (omit it for no limit)")
	}
}

func validateMode(v *validator, mode, failMode string) {
	switch mode {
	case PolicyModeEnforce, PolicyModeShadow:
	default:
		v.add("mode", "%q is not enforce or shadow", mode)
	}
	switch failMode {
	case FailOpen, FailClosed:
	default:
		v.add("fail_mode", "%q is not open or closed", failMode)
	}
}

func (l *Limits) validate(v *validator, maxRequest time.Duration) {
	if l.Redis != "" {
		u, err := url.Parse(l.Redis)
		switch {
		case err != nil:
			v.add("redis", "is not a URL: %v", err)
		case u.Scheme != "redis" && u.Scheme != "rediss":
			v.add("redis", "must be a redis:// or rediss:// URL")
		case u.Host == "":
			v.add("redis", "has no host")
		default:
			if _, has := u.User.Password(); has {
				v.add("redis", "must not carry a password; put it in limits.redis_password as ${env:NAME}")
			}
		}
	} else if l.RedisPassword.IsSet() {
		v.add("redis_password", "is set but limits.redis is empty")
	}
	if l.KeyPrefix != "" && !nameRE.MatchString(l.KeyPrefix) {
		v.add("key_prefix", "%q must be lower-case letters, digits, '-', '_' or '.'", l.KeyPrefix)
	}
	if l.Timeout < 0 || l.Timeout > 10*time.Second {
		v.add("timeout", "must be between 0 and 10s")
	}
	switch l.FailMode {
	case FailOpen, FailClosed:
	default:
		v.add("fail_mode", "%q is not open or closed", l.FailMode)
	}
	if l.StreamLease < time.Minute {
		v.add("stream_lease", "must be at least 1m")
	} else if maxRequest > 0 && l.StreamLease < maxRequest {
		v.add("stream_lease", "must be at least server.max_request_duration (%s), or live streams lose their slot", maxRequest)
	}
}
