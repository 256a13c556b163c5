// Package authn verifies the caller of every gateway request: it takes the
// one credential a request carries (Authorization: Bearer or x-api-key),
// checks it as an OIDC token from a configured identity provider (Entra ID
// first, any OIDC provider second) and returns the identity.Principal, or an
// *Error saying why not (401 / 403) in a closed set of reasons.
//
// # Why go-jose directly, not go-oidc's verifier
//
// security.md §1.5 recommends go-oidc v3 on go-jose v4 with our own KeySet.
// We keep go-jose v4 for the cryptography (ParseSignedCompact with a
// mandatory one-element algorithm list, exactly one signature, crit
// refused) and its strict JSON fork for every JSON we read (duplicate
// members refused, case-sensitive), but do not use go-oidc's
// IDTokenVerifier: it accepts a single ClientID (several audiences or
// access-token mode would need SkipClientIDCheck, which §8 forbids), has a
// fixed 5-minute nbf leeway, no iat or max-age checks, decodes claims with
// encoding/json (case-insensitive, last duplicate wins), and cannot express
// the Entra rules (tid routing, ver, token profiles). Its good properties
// are kept here: the algorithm allowlist is mandatory, issuer and audience
// are always checked, a missing exp fails, cheap checks run before any key
// lookup, and the verified payload must equal the parsed one. The key set
// (keyset.go) implements Microsoft's key-cache algorithm (§1.3).
//
// # Pipeline (security.md §8.2)
//
//  1. ExtractCredential: exactly one credential (contract §2.3, D4).
//  2. Verified-token cache (SHA-256 of the token): a hit skips 3–7 but
//     never the revocation check.
//  3. Pre-parse: ≤16 KiB, three base64url segments, header ≤4 KiB of strict
//     JSON with only alg/kid/typ/x5t members, alg among RS/PS/ES, kid
//     [A-Za-z0-9_-]{1,128}; payload strict JSON; iss, aud, exp/nbf/iat typed.
//  4. Route by the unverified iss (exact) to a provider and tenant; unknown
//     issuers, tenants and token versions are refused with no network I/O.
//  5. Cheap claim checks: aud (+azp for arrays), typ/profile, times, ver, tid.
//  6. Key lookup (refresh on unknown kid within the cooldown) and signature.
//     A token failing step 5 is still signature-checked when its key is
//     cached, so a forged token reports bad_signature, never "expired".
//  7. Authorisation: user key claim, roles, scopes, claim requirements,
//     guests, groups (overage: deny or Graph).
//  8. Revocations hook, then cache.
package authn

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/go-jose/go-jose/v4"
	josejson "github.com/go-jose/go-jose/v4/json"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

// Token modes (decision D3).
const (
	ModeIDToken     = "id_token"
	ModeAccessToken = "access_token"
)

// Provider types.
const (
	TypeEntra = "entra"
	TypeOIDC  = "oidc"
)

// Group overage policies.
const (
	OverageDeny  = "deny"
	OverageGraph = "graph"
)

// ConsumerTenant is Entra's tenant of personal Microsoft accounts; tokens
// from it are always refused.
const ConsumerTenant = "9188040d-6c67-4c5b-b112-36a304b66dad"

// Options configures New. Zero values are documented per field.
type Options struct {
	Providers []Provider
	// HTTPClient for discovery, key sets and Graph. nil: DefaultHTTPClient()
	// (timeouts, no proxy from the environment, no cross-host redirects).
	HTTPClient *http.Client
	Logger     *slog.Logger     // nil: discard
	Now        func() time.Time // nil: time.Now
	// Revocations, when set, is consulted on every successful
	// authentication, cached or not.
	Revocations Revocations
	// KeyRefreshCooldown: minimum time between key refreshes caused by an
	// unknown kid, per issuer. Default 5m. (The first one after start is
	// immediate.)
	KeyRefreshCooldown time.Duration
	// MaxTokenAge rejects tokens whose iat is older than this. 0: off.
	MaxTokenAge time.Duration
	// CacheSize bounds the verified-token cache. 0: 10000; negative: off.
	CacheSize int
	// FetchTimeout bounds one discovery + key set fetch. Default 10s.
	FetchTimeout time.Duration
	// KeyRefreshInterval is the background refresh period. Default 1h.
	KeyRefreshInterval time.Duration
}

// Provider is one trusted identity provider (for Entra: one app
// registration in one or more tenants).
type Provider struct {
	// Name identifies the provider in logs, audit and Principal.Provider.
	Name string
	// Type is "entra" or "oidc". "": entra when the issuer's host is
	// login.microsoftonline.com (or another Entra cloud), else oidc.
	Type string
	// Issuer is the exact iss. For Entra, either tenant-specific
	// (https://login.microsoftonline.com/<tid>/v2.0) or the template
	// https://login.microsoftonline.com/{tenantid}/v2.0 together with
	// AllowedTenants (one key set per tenant).
	Issuer string
	// Audiences: accepted aud values (client ID in id_token mode, the API's
	// app ID in access_token mode). Required.
	Audiences []string
	// AllowedTenants (Entra): tid allow-list. Default: the issuer's tenant.
	// Required with a {tenantid} issuer.
	AllowedTenants []string
	// RequiredRoles: any-of, from RolesClaim. Empty: no role required.
	RequiredRoles []string
	// ClockSkew tolerated on exp, nbf and iat. Default 60s.
	ClockSkew time.Duration
	// TokenMode: "id_token" (default) or "access_token".
	TokenMode string

	// DiscoveryURL overrides <issuer>/.well-known/openid-configuration
	// ("{tenantid}" is substituted). Its issuer must equal Issuer.
	DiscoveryURL string
	// JWKSURL skips discovery and fetches keys here ("{tenantid}" substituted).
	JWKSURL string
	// Algorithms allowed for signatures. Default ["RS256"]. Allowed values:
	// RS256/384/512, PS256/384/512, ES256/384/512.
	Algorithms []string
	// TokenVersions (Entra): accepted ver values, "2.0" and/or "1.0".
	// Default ["2.0"]: v1 tokens are refused unless configured.
	TokenVersions []string
	// V1Issuer (Entra) is the iss of v1 tokens. Default
	// "https://sts.windows.net/{tenantid}/".
	V1Issuer string
	// MaxLifetime caps exp - iat. Default 12h.
	MaxLifetime time.Duration

	// AllowedClients (access_token mode): the client app (azp, appid, or
	// Okta's cid) must be one of these. Empty: any client.
	AllowedClients []string
	// RequiredScopes (access_token mode): any-of, from scp.
	RequiredScopes []string

	// UserClaim names the user key claim. Default "oid" (Entra), "sub" (oidc).
	UserClaim string
	// DisplayClaim names the display user name. Default "preferred_username"
	// (falling back to upn, unique_name and email).
	DisplayClaim string
	// GroupsClaim default "groups"; RolesClaim default "roles".
	GroupsClaim, RolesClaim string
	// RequiredGroups: any-of group IDs. Empty: no group required.
	RequiredGroups []string
	// GroupOverage (Entra): what to do when groups did not fit in the token
	// (_claim_names.groups / hasgroups): "deny" (default) or "graph".
	GroupOverage string
	// Graph configures the lookup for GroupOverage "graph".
	Graph GraphOptions
	// ClaimRules carry Conditional Access decisions: every rule must hold.
	ClaimRules []ClaimRule
	// BlockGuests (Entra) refuses guest accounts (acct = 1, or an idp claim
	// naming another issuer).
	BlockGuests bool
}

// ClaimRule requires a claim: with AnyOf, at least one listed value must be
// among the claim's values (a string, a space-separated string, an array,
// a number or a boolean in its JSON form); with AllOf, all of them.
// Examples: {Claim: "amr", AnyOf: ["mfa"]}, {Claim: "acrs", AnyOf: ["c1"]},
// {Claim: "device_compliant", AnyOf: ["true"]}.
type ClaimRule struct {
	Claim string
	AnyOf []string
	AllOf []string
}

// Revocations is consulted for every authenticated principal, including
// cache hits. A non-nil error means revoked. It must be cheap (in memory).
type Revocations interface {
	Check(ctx context.Context, p identity.Principal) error
}

// Authenticator verifies requests. It is safe for concurrent use.
type Authenticator struct {
	opts     Options
	log      *slog.Logger
	now      func() time.Time
	routes   map[string][]*route // by exact iss
	patterns []issuerPattern     // Entra issuer templates, to explain misses
	keySets  []*keySet
	cache    *tokenCache
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

type provider struct {
	Provider
	entra     bool
	algs      map[string]bool
	audiences []string
	tenants   map[string]bool
	graph     *graphClient
}

type route struct {
	p       *provider
	tenant  string // Entra tid
	version string // Entra "2.0" or "1.0"
	ks      *keySet
}

type issuerPattern struct {
	prefix, suffix string
	p              *provider
	version        string
}

// New validates opts and starts background key loading. It never fails
// because an identity provider is unreachable: keys load (and retry) in the
// background; Ready reports when every issuer has keys.
func New(ctx context.Context, opts Options) (*Authenticator, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = DefaultHTTPClient()
	}
	if opts.KeyRefreshCooldown <= 0 {
		opts.KeyRefreshCooldown = 5 * time.Minute
	}
	if opts.FetchTimeout <= 0 {
		opts.FetchTimeout = 10 * time.Second
	}
	if opts.KeyRefreshInterval <= 0 {
		opts.KeyRefreshInterval = time.Hour
	}
	if opts.CacheSize == 0 {
		opts.CacheSize = 10000
	}
	if opts.MaxTokenAge < 0 {
		return nil, errors.New("authn: MaxTokenAge must not be negative")
	}
	a := &Authenticator{opts: opts, log: opts.Logger, now: opts.Now, routes: map[string][]*route{}, cache: newTokenCache(opts.CacheSize)}
	if len(opts.Providers) == 0 {
		return nil, errors.New("authn: at least one identity provider is required")
	}
	var problems []error
	names := map[string]bool{}
	keySets := map[string]*keySet{} // by issuer+jwks source
	for i := range opts.Providers {
		p, err := newProvider(opts.Providers[i], opts)
		if err != nil {
			problems = append(problems, fmt.Errorf("provider %d (%s): %w", i, opts.Providers[i].Name, err))
			continue
		}
		if names[p.Name] {
			problems = append(problems, fmt.Errorf("provider %d: name %q used twice", i, p.Name))
			continue
		}
		names[p.Name] = true
		tenants := []string{""}
		if p.entra {
			tenants = slices.Sorted(mapKeys(p.tenants))
		}
		for _, tid := range tenants {
			iss := sub(p.Issuer, tid)
			id := iss + "\x00" + sub(p.JWKSURL, tid) + "\x00" + sub(p.DiscoveryURL, tid) + "\x00" + strings.Join(slices.Sorted(mapKeys(p.algs)), ",")
			ks := keySets[id]
			if ks == nil {
				ks = &keySet{
					name: p.Name, issuer: iss, client: opts.HTTPClient, log: opts.Logger, now: opts.Now,
					cooldown: opts.KeyRefreshCooldown, fetchTimeout: opts.FetchTimeout, refreshEvery: opts.KeyRefreshInterval,
					filter: jwksFilter{algs: p.algs, tenantID: tid},
				}
				if tid != "" {
					ks.name = p.Name + "/" + tid
					ks.filter.keyIssuer = iss
				}
				if p.JWKSURL != "" {
					ks.jwksURL = sub(p.JWKSURL, tid)
				} else if p.DiscoveryURL != "" {
					ks.discoveryURL = sub(p.DiscoveryURL, tid)
				} else {
					ks.discoveryURL = strings.TrimSuffix(iss, "/") + "/.well-known/openid-configuration"
				}
				keySets[id] = ks
				a.keySets = append(a.keySets, ks)
			}
			versions := []string{""}
			if p.entra {
				versions = p.TokenVersions
			}
			for _, v := range versions {
				ri := iss
				if v == "1.0" {
					ri = sub(p.V1Issuer, tid)
				}
				a.routes[ri] = append(a.routes[ri], &route{p: p, tenant: tid, version: v, ks: ks})
			}
		}
		if p.entra {
			for _, v := range []string{"2.0", "1.0"} {
				tmpl := entraTemplate(p.Issuer)
				if v == "1.0" {
					tmpl = p.V1Issuer
				}
				if pre, suf, ok := strings.Cut(tmpl, "{tenantid}"); ok {
					a.patterns = append(a.patterns, issuerPattern{prefix: pre, suffix: suf, p: p, version: v})
				}
			}
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("authn: %w", errors.Join(problems...))
	}
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.cancel = cancel
	for _, ks := range a.keySets {
		ks.base = bg
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			ks.run(bg)
		}()
	}
	return a, nil
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func sub(s, tid string) string { return strings.ReplaceAll(s, "{tenantid}", tid) }

// entraTemplate turns a tenant-specific Entra issuer into its template.
func entraTemplate(iss string) string {
	if strings.Contains(iss, "{tenantid}") {
		return iss
	}
	if tid := EntraTenantFromIssuer(iss); tid != "" {
		return strings.Replace(iss, "/"+tid+"/", "/{tenantid}/", 1)
	}
	return iss
}

// EntraTenantFromIssuer returns the tenant GUID of an Entra-shaped v2
// issuer (<base>/<tid>/v2.0), or "".
func EntraTenantFromIssuer(iss string) string {
	rest, ok := strings.CutSuffix(iss, "/v2.0")
	if !ok {
		return ""
	}
	i := strings.LastIndex(rest, "/")
	if i < 0 || !isGUID(rest[i+1:]) {
		return ""
	}
	return strings.ToLower(rest[i+1:])
}

var entraHosts = []string{"login.microsoftonline.com", "login.microsoftonline.us", "login.partner.microsoftonline.cn", "sts.windows.net"}

func newProvider(in Provider, o Options) (*provider, error) {
	p := &provider{Provider: in}
	var errs []error
	bad := func(f string, args ...any) { errs = append(errs, fmt.Errorf(f, args...)) }
	if p.Name == "" {
		bad("name is required")
	}
	u, err := url.Parse(strings.ReplaceAll(p.Issuer, "{tenantid}", "00000000-0000-0000-0000-000000000000"))
	if p.Issuer == "" || err != nil || checkFetchURL(u.String()) != nil {
		bad("issuer %q must be an https URL (http only for loopback)", p.Issuer)
	}
	switch p.Type {
	case "":
		p.Type = TypeOIDC
		if u != nil && slices.Contains(entraHosts, strings.ToLower(u.Hostname())) {
			p.Type = TypeEntra
		}
	case TypeEntra, TypeOIDC:
	default:
		bad("type %q must be entra or oidc", p.Type)
	}
	p.entra = p.Type == TypeEntra
	if len(p.Audiences) == 0 {
		bad("audiences: at least one is required")
	}
	for _, a := range p.Audiences {
		if strings.TrimSpace(a) == "" {
			bad("audiences: empty entry")
		}
	}
	p.audiences = p.Audiences
	switch p.TokenMode {
	case "":
		p.TokenMode = ModeIDToken
	case ModeIDToken, ModeAccessToken:
	default:
		bad("token_mode %q must be id_token or access_token", p.TokenMode)
	}
	if p.TokenMode == ModeIDToken && (len(p.RequiredScopes) > 0 || len(p.AllowedClients) > 0) {
		bad("required_scopes and allowed_clients apply to token_mode access_token only")
	}
	if p.ClockSkew == 0 {
		p.ClockSkew = 60 * time.Second
	}
	if p.ClockSkew < 0 || p.ClockSkew > 5*time.Minute {
		bad("clock_skew must be between 0 and 5m")
	}
	if p.MaxLifetime == 0 {
		p.MaxLifetime = 12 * time.Hour
	}
	if p.MaxLifetime < 0 {
		bad("max_lifetime must not be negative")
	}
	if len(p.Algorithms) == 0 {
		p.Algorithms = []string{"RS256"}
	}
	p.algs = map[string]bool{}
	for _, a := range p.Algorithms {
		if !supportedAlgs[a] {
			bad("algorithm %q not supported (RS256/384/512, PS256/384/512, ES256/384/512)", a)
		}
		p.algs[a] = true
	}
	if p.GroupsClaim == "" {
		p.GroupsClaim = "groups"
	}
	if p.RolesClaim == "" {
		p.RolesClaim = "roles"
	}
	if p.DisplayClaim == "" {
		p.DisplayClaim = "preferred_username"
	}
	for i, r := range p.ClaimRules {
		if r.Claim == "" || len(r.AnyOf)+len(r.AllOf) == 0 {
			bad("claim rule %d needs a claim and any_of or all_of values", i)
		}
	}
	for _, s := range []struct{ name, v string }{{"discovery_url", p.DiscoveryURL}, {"jwks_url", p.JWKSURL}} {
		if s.v != "" && checkFetchURL(sub(s.v, "00000000-0000-0000-0000-000000000000")) != nil {
			bad("%s %q must be an https URL (http only for loopback)", s.name, s.v)
		}
	}
	switch p.GroupOverage {
	case "":
		p.GroupOverage = OverageDeny
	case OverageDeny:
	case OverageGraph:
		if !p.entra {
			bad("group_overage graph applies to Entra providers only")
		}
		if p.Graph.ClientID == "" || p.Graph.ClientSecret == "" {
			bad("group_overage graph needs graph.client_id and graph.client_secret")
		}
		for _, s := range []string{p.Graph.BaseURL, p.Graph.TokenURL} {
			if s != "" && checkFetchURL(sub(s, "00000000-0000-0000-0000-000000000000")) != nil {
				bad("graph URL %q must be https (http only for loopback)", s)
			}
		}
		p.graph = newGraphClient(p.Graph, o.HTTPClient, o.Now)
	default:
		bad("group_overage %q must be deny or graph", p.GroupOverage)
	}
	if p.entra {
		if p.UserClaim == "" {
			p.UserClaim = "oid"
		}
		if len(p.TokenVersions) == 0 {
			p.TokenVersions = []string{"2.0"}
		}
		for _, v := range p.TokenVersions {
			if v != "2.0" && v != "1.0" {
				bad("token_versions: %q must be 2.0 or 1.0", v)
			}
		}
		if p.V1Issuer == "" {
			p.V1Issuer = "https://sts.windows.net/{tenantid}/"
		}
		if !strings.Contains(p.V1Issuer, "{tenantid}") {
			bad("v1_issuer must contain {tenantid}")
		}
		p.tenants = map[string]bool{}
		for _, t := range p.AllowedTenants {
			t = strings.ToLower(t)
			if !isGUID(t) {
				bad("allowed_tenants: %q is not a tenant ID (GUID)", t)
			}
			if t == ConsumerTenant {
				bad("allowed_tenants: %s is the Microsoft consumer (personal account) tenant, which is always refused", t)
			}
			p.tenants[t] = true
		}
		if strings.Contains(p.Issuer, "{tenantid}") {
			if len(p.tenants) == 0 {
				bad("allowed_tenants is required with a {tenantid} issuer")
			}
		} else if tid := EntraTenantFromIssuer(p.Issuer); tid == "" {
			bad("an Entra issuer must be <base>/<tenant-id>/v2.0 or <base>/{tenantid}/v2.0")
		} else {
			if tid == ConsumerTenant {
				bad("issuer names the Microsoft consumer tenant, which is always refused")
			}
			if len(p.tenants) > 0 && !p.tenants[tid] {
				bad("allowed_tenants must include the issuer's tenant %s (use a {tenantid} issuer for several tenants)", tid)
			}
			p.tenants = map[string]bool{tid: true}
			p.Issuer = strings.Replace(p.Issuer, "/"+rawTenant(p.Issuer)+"/", "/{tenantid}/", 1)
		}
	} else {
		if p.UserClaim == "" {
			p.UserClaim = "sub"
		}
		if len(p.AllowedTenants) > 0 || len(p.TokenVersions) > 0 || p.BlockGuests {
			bad("allowed_tenants, token_versions and block_guests apply to Entra providers only")
		}
		if strings.Contains(p.Issuer, "{tenantid}") {
			bad("only Entra issuers may contain {tenantid}")
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p, nil
}

func rawTenant(iss string) string {
	rest := strings.TrimSuffix(iss, "/v2.0")
	return rest[strings.LastIndex(rest, "/")+1:]
}

func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// Close stops background key refreshes.
// KeySetFetches is how many discovery and key-set requests the
// authenticator has made (the gatehouse_keyset_refreshes_total metric).
func (a *Authenticator) KeySetFetches() int64 {
	var n int64
	for _, ks := range a.keySets {
		n += ks.fetches.Load()
	}
	return n
}

func (a *Authenticator) Close() {
	a.cancel()
	a.wg.Wait()
}

// Ready returns nil when every issuer (every tenant) has usable keys.
func (a *Authenticator) Ready(ctx context.Context) error {
	var errs []error
	for _, ks := range a.keySets {
		if ks.keys.Load() == nil {
			ks.mu.Lock()
			err := ks.lastErr
			ks.mu.Unlock()
			if err == nil {
				err = errors.New("loading")
			}
			errs = append(errs, fmt.Errorf("identity provider %s: no signing keys yet: %w", ks.name, err))
		}
	}
	return errors.Join(errs...)
}

// Authenticate verifies the request's credential. The error, when not nil,
// is an *Error.
func (a *Authenticator) Authenticate(ctx context.Context, r *http.Request) (identity.Principal, error) {
	raw, e := ExtractCredential(r.Header)
	if e != nil {
		return identity.Principal{}, e
	}
	p, e := a.Verify(ctx, raw)
	if e != nil {
		return identity.Principal{}, e
	}
	return p, nil
}

// Verify checks one raw token (what Authenticate does after extraction).
func (a *Authenticator) Verify(ctx context.Context, raw string) (identity.Principal, *Error) {
	now := a.now()
	// Hashing a read-only view of the string avoids copying the token.
	h := sha256.Sum256(unsafe.Slice(unsafe.StringData(raw), len(raw)))
	if e, ok := a.cache.get(h, now); ok {
		if err := a.checkRevoked(ctx, e.p); err != nil {
			err.TokenSHA256 = e.p.TokenHash
			return identity.Principal{}, err
		}
		return e.p, nil
	}
	p, until, rt, kid, err := a.verifyCold(ctx, raw, h, now)
	if err != nil {
		err.TokenSHA256 = hex.EncodeToString(h[:])
		return identity.Principal{}, err
	}
	if err := a.checkRevoked(ctx, p); err != nil {
		err.TokenSHA256 = p.TokenHash
		return identity.Principal{}, err
	}
	a.cache.put(h, &cacheEntry{p: p, until: until, ks: rt.ks, kid: kid}, now)
	return p, nil
}

func (a *Authenticator) checkRevoked(ctx context.Context, p identity.Principal) *Error {
	if a.opts.Revocations == nil {
		return nil
	}
	if err := a.opts.Revocations.Check(ctx, p); err != nil {
		e := fail(ReasonRevoked, "%v", err)
		who := p // a copy, so only this path allocates (taking &p would move p to the heap on every call)
		e.Principal = &who
		return e
	}
	return nil
}

func (a *Authenticator) verifyCold(ctx context.Context, raw string, h [32]byte, now time.Time) (identity.Principal, time.Time, *route, string, *Error) {
	var zero identity.Principal
	t, err := parseToken(raw)
	if err != nil {
		return zero, time.Time{}, nil, "", err
	}
	rt, err := a.route(t)
	if err != nil {
		return zero, time.Time{}, nil, "", err
	}
	if !rt.p.algs[t.alg] {
		// Never verify with an algorithm the provider does not allow.
		return zero, time.Time{}, nil, "", fail(ReasonUnsupportedAlg, "alg %s not allowed for provider %s", t.alg, rt.p.Name)
	}
	if cheap := a.cheapChecks(t, rt, now); cheap != nil {
		// Attribute the failure to the signature when we can tell without
		// any network I/O (security.md §2 row 31).
		if k, e := rt.ks.lookup(ctx, t.kid, false); e == nil {
			if e := verifySignature(t, k); e != nil {
				return zero, time.Time{}, nil, "", e
			}
		}
		return zero, time.Time{}, nil, "", cheap
	}
	k, err := rt.ks.lookup(ctx, t.kid, true)
	if err != nil {
		return zero, time.Time{}, nil, "", err
	}
	if err := verifySignature(t, k); err != nil {
		return zero, time.Time{}, nil, "", err
	}
	p, err := a.authorize(ctx, t, rt)
	if err != nil {
		return zero, time.Time{}, nil, "", err
	}
	p.TokenHash = hex.EncodeToString(h[:])
	until := time.Unix(t.exp, 0).Add(rt.p.ClockSkew)
	if a.opts.MaxTokenAge > 0 {
		if age := time.Unix(t.iat, 0).Add(a.opts.MaxTokenAge + time.Second); age.Before(until) {
			until = age
		}
	}
	return p, until, rt, t.kid, nil
}

// route picks the provider/tenant for the unverified iss and aud. No
// network I/O happens for tokens that no route accepts.
func (a *Authenticator) route(t *token) (*route, *Error) {
	rs := a.routes[t.iss]
	if len(rs) == 0 {
		for _, pat := range a.patterns {
			mid, ok := strings.CutPrefix(t.iss, pat.prefix)
			if !ok {
				continue
			}
			tid, ok := strings.CutSuffix(mid, pat.suffix)
			if !ok || !isGUID(tid) {
				continue
			}
			if pat.version == "1.0" && !slices.Contains(pat.p.TokenVersions, "1.0") {
				return nil, fail(ReasonUnsupportedVersion, "v1 issuer %q: provider %s accepts only %v tokens", truncate(t.iss, 128), pat.p.Name, pat.p.TokenVersions)
			}
			if strings.EqualFold(tid, ConsumerTenant) {
				return nil, fail(ReasonTenantNotAllowed, "consumer (personal account) tenant")
			}
			if !pat.p.tenants[tid] {
				return nil, fail(ReasonTenantNotAllowed, "tenant %s is not allowed by provider %s", tid, pat.p.Name)
			}
		}
		return nil, fail(ReasonWrongIssuer, "issuer %q is not configured", truncate(t.iss, 128))
	}
	for _, r := range rs {
		if audienceMatch(t, r.p) != "" {
			return r, nil
		}
	}
	return nil, fail(ReasonWrongAudience, "aud %q not accepted for issuer %s (or an aud array without azp naming ours)", truncate(strings.Join(t.aud, ","), 128), truncate(t.iss, 128))
}

// audienceMatch returns our audience the token is for, or "". A single aud
// must equal one of ours (exact, case-sensitive). An aud array must contain
// one of ours and azp must equal it (OIDC Core §3.1.3.7).
func audienceMatch(t *token, p *provider) string {
	if !t.audArray {
		if slices.Contains(p.audiences, t.aud[0]) {
			return t.aud[0]
		}
		return ""
	}
	azp, _, err := t.str("azp")
	if err != nil || azp == "" {
		return ""
	}
	if slices.Contains(t.aud, azp) && slices.Contains(p.audiences, azp) {
		return azp
	}
	return ""
}

func (a *Authenticator) cheapChecks(t *token, rt *route, now time.Time) *Error {
	p := rt.p
	aud := audienceMatch(t, p)
	// Times.
	skew := p.ClockSkew
	nowU := now.Unix()
	sk := int64(skew / time.Second)
	if !t.hasExp {
		return fail(ReasonTokenExpired, "exp missing")
	}
	if nowU >= t.exp+sk {
		return fail(ReasonTokenExpired, "expired at %s (skew %s)", time.Unix(t.exp, 0).UTC().Format(time.RFC3339), skew)
	}
	if t.hasNbf && t.nbf > nowU+sk {
		return fail(ReasonTokenNotYetValid, "nbf %d is in the future", t.nbf)
	}
	if !t.hasIat {
		return fail(ReasonMissingClaim, "iat missing")
	}
	if t.iat > nowU+sk {
		return fail(ReasonTokenNotYetValid, "iat %d is in the future", t.iat)
	}
	if a.opts.MaxTokenAge > 0 && nowU-t.iat > int64(a.opts.MaxTokenAge/time.Second) {
		return fail(ReasonTokenTooOld, "issued %s ago, maximum token age %s", time.Duration(nowU-t.iat)*time.Second, a.opts.MaxTokenAge)
	}
	if t.exp-t.iat > int64(p.MaxLifetime/time.Second) {
		return fail(ReasonTokenTooOld, "lifetime %s exceeds maximum %s", time.Duration(t.exp-t.iat)*time.Second, p.MaxLifetime)
	}
	// Entra version and tenant.
	if p.entra {
		ver, ok, err := t.str("ver")
		if err != nil || !ok {
			return fail(ReasonUnsupportedVersion, "ver missing or not a string")
		}
		if ver != rt.version {
			return fail(ReasonUnsupportedVersion, "ver %q with a %s issuer", truncate(ver, 8), rt.version)
		}
		tid, _, err := t.str("tid")
		if err != nil || !isGUID(tid) {
			return fail(ReasonTenantNotAllowed, "tid missing or not a GUID")
		}
		if strings.EqualFold(tid, ConsumerTenant) {
			return fail(ReasonTenantNotAllowed, "consumer (personal account) tenant")
		}
		if tid != rt.tenant || !p.tenants[tid] {
			return fail(ReasonTenantNotAllowed, "tid %s does not match the issuer's tenant %s", tid, rt.tenant)
		}
	}
	// Token profile (security.md §2 row 16, decision D3).
	scp, err := t.strs("scp")
	if err != nil {
		return err
	}
	if idtyp, _, _ := t.str("idtyp"); idtyp == "app" {
		return fail(ReasonWrongTokenType, "app-only token (idtyp app): no user")
	}
	switch p.TokenMode {
	case ModeIDToken:
		if t.typ != "" && t.typ != "jwt" {
			return fail(ReasonWrongTokenType, "typ %s in id_token mode", t.typ)
		}
		if len(scp) > 0 || t.claims["scp"] != nil {
			return fail(ReasonWrongTokenType, "access token (scp present) in id_token mode")
		}
		if azp, ok, err := t.str("azp"); err != nil || (ok && azp != aud) {
			return fail(ReasonWrongTokenType, "azp is not the audience in id_token mode")
		}
		if _, ok := t.claims["appid"]; ok {
			return fail(ReasonWrongTokenType, "access token (appid present) in id_token mode")
		}
	case ModeAccessToken:
		if len(scp) == 0 {
			return fail(ReasonWrongTokenType, "no delegated scopes (scp) in access_token mode: an ID token or an app-only token")
		}
		if _, ok := t.claims["nonce"]; ok {
			return fail(ReasonWrongTokenType, "ID token (nonce present) in access_token mode")
		}
		client := ""
		for _, c := range []string{"azp", "appid", "cid"} {
			if v, ok, err := t.str(c); err == nil && ok && v != "" {
				client = v
				break
			}
		}
		if p.entra && client == "" {
			return fail(ReasonWrongTokenType, "access token without azp/appid")
		}
		if len(p.AllowedClients) > 0 && !slices.Contains(p.AllowedClients, client) {
			return fail(ReasonWrongAudience, "client %q is not an allowed client", truncate(client, 64))
		}
	}
	return nil
}

func verifySignature(t *token, k *verificationKey) *Error {
	if !keyFitsAlg(k, t.alg) {
		return fail(ReasonBadSignature, "key %s cannot verify alg %s", k.kid, t.alg)
	}
	jws, err := jose.ParseSignedCompact(t.raw, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(t.alg)})
	if err != nil {
		return fail(ReasonMalformedToken, "jws: %v", err)
	}
	payload, err := jws.Verify(k.key)
	if err != nil {
		return fail(ReasonBadSignature, "signature with key %s: %v", k.kid, err)
	}
	if !bytes.Equal(payload, t.payload) {
		return fail(ReasonBadSignature, "verified payload differs from parsed payload")
	}
	return checkPSSSalt(t, k)
}

// authorize runs the checks that need a verified token and builds the
// Principal.
func (a *Authenticator) authorize(ctx context.Context, t *token, rt *route) (identity.Principal, *Error) {
	p := rt.p
	pr := identity.Principal{Provider: p.Name, Issuer: t.iss, IssuedAt: time.Unix(t.iat, 0), ExpiresAt: time.Unix(t.exp, 0)}
	var err *Error
	str := func(name string) string {
		if err != nil {
			return ""
		}
		var v string
		v, _, err = t.str(name)
		return v
	}
	pr.Subject = str("sub")
	userKey := str(p.UserClaim)
	if err != nil {
		return pr, err
	}
	if userKey == "" {
		return pr, fail(ReasonMissingClaim, "user key claim %s missing or empty", p.UserClaim)
	}
	if p.entra {
		pr.TenantID = str("tid")
		pr.ObjectID = str("oid")
		pr.Key = pr.TenantID + "/" + userKey
	} else {
		pr.Key = t.iss + "|" + userKey
	}
	for _, c := range []string{p.DisplayClaim, "preferred_username", "upn", "unique_name"} {
		if pr.Username = str(c); pr.Username != "" || err != nil {
			break
		}
	}
	pr.Name = str("name")
	pr.Email = str("email")
	for _, c := range []string{"azp", "appid", "cid"} {
		if pr.ClientID = str(c); pr.ClientID != "" || err != nil {
			break
		}
	}
	if pr.TokenID = str("uti"); pr.TokenID == "" {
		pr.TokenID = str("jti")
	}
	if err != nil {
		return pr, err
	}
	if pr.Roles, err = t.strs(p.RolesClaim); err != nil {
		return pr, err
	}
	if p.TokenMode == ModeAccessToken {
		pr.Scopes, _ = t.strs("scp")
	}
	if len(p.RequiredRoles) > 0 && !anyOf(pr.Roles, p.RequiredRoles) {
		return pr, fail(ReasonMissingRole, "none of the required roles %v in %v", p.RequiredRoles, pr.Roles)
	}
	if len(p.RequiredScopes) > 0 && !anyOf(pr.Scopes, p.RequiredScopes) {
		return pr, fail(ReasonMissingScope, "none of the required scopes %v in %v", p.RequiredScopes, pr.Scopes)
	}
	for _, rule := range p.ClaimRules {
		vals := t.scalar(rule.Claim)
		if rule.Claim == "scp" || rule.Claim == "amr" {
			if v, e := t.strs(rule.Claim); e == nil {
				vals = v
			}
		}
		if (len(rule.AnyOf) > 0 && !anyOf(vals, rule.AnyOf)) || !allOf(vals, rule.AllOf) {
			return pr, fail(ReasonPolicyNotSatisfied, "claim %s %v does not satisfy any_of %v all_of %v", rule.Claim, vals, rule.AnyOf, rule.AllOf)
		}
	}
	if p.entra && p.BlockGuests && isGuest(t, pr.TenantID) {
		return pr, fail(ReasonGuestNotAllowed, "guest account")
	}
	if pr.Groups, err = t.strs(p.GroupsClaim); err != nil {
		return pr, err
	}
	if p.entra && overage(t) {
		if p.GroupOverage != OverageGraph {
			return pr, fail(ReasonGroupOverage, "group overage (_claim_names.groups / hasgroups) and group_overage is deny")
		}
		gctx, cancel := context.WithTimeout(ctx, a.opts.FetchTimeout)
		groups, gerr := p.graph.memberObjects(gctx, pr.TenantID, pr.ObjectID)
		cancel()
		if gerr != nil {
			return pr, fail(ReasonGroupsUnavailable, "%v", gerr)
		}
		pr.Groups = groups
	}
	if len(p.RequiredGroups) > 0 && !anyOf(pr.Groups, p.RequiredGroups) {
		return pr, fail(ReasonMissingGroup, "none of the required groups")
	}
	return pr, nil
}

func overage(t *token) bool {
	if raw, ok := t.claims["_claim_names"]; ok {
		var names map[string]any
		if josejson.Unmarshal(raw, &names) == nil {
			if _, ok := names["groups"]; ok {
				return true
			}
		}
	}
	if raw, ok := t.claims["hasgroups"]; ok && string(bytes.TrimSpace(raw)) == "true" {
		return true
	}
	return false
}

// isGuest: the optional acct claim is 1, or idp names an issuer other than
// the tenant's own (v2 tokens carry idp only for users from elsewhere).
func isGuest(t *token, tid string) bool {
	if v := t.scalar("acct"); len(v) == 1 && v[0] == "1" {
		return true
	}
	idp, ok, err := t.str("idp")
	if err != nil {
		return true
	}
	if !ok || idp == "" {
		return false
	}
	return idp != t.iss && idp != "https://sts.windows.net/"+tid+"/"
}

func anyOf(have, want []string) bool {
	for _, w := range want {
		if slices.Contains(have, w) {
			return true
		}
	}
	return false
}

func allOf(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}
