package doctor

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
)

// Profile is what a deployed client profile says (see internal/profile's
// Inspect), for the audience check.
type Profile struct {
	Path       string // where it was read from, for messages
	Client     string // "desktop" or "code"
	GatewayURL string
	Issuer     string // empty when the profile names none
	ClientID   string // empty when the profile names none
	TokenType  string // "id_token" or "access_token"
}

// IdentityOptions describes the identity provider as configured.
type IdentityOptions struct {
	// Issuer is identity.issuer exactly as configured.
	Issuer string
	// Entra is true when the provider is Entra ID (identity.type entra, or
	// an issuer on login.microsoftonline.com).
	Entra bool
	// Audiences are identity.audiences.
	Audiences []string
	// PublicURL is the gateway's public_url (compared with profiles).
	PublicURL string
	// Profiles are the deployed profiles given with --profile (optional).
	Profiles []Profile
	// ProfileProblems are profiles that could not be read (the audience
	// check fails with them).
	ProfileProblems []string
	// Client fetches discovery and keys. Nil: NewHTTPClient(nil).
	Client *http.Client
}

// Identity holds the identity checks; discovery is fetched once and shared
// by oidc-discovery and jwks.
type Identity struct {
	o    IdentityOptions
	once sync.Once
	disc *discovery
	err  Result // set when discovery failed
}

type discovery struct {
	Issuer  string `json:"issuer"`
	JWKSURI string `json:"jwks_uri"`
	url     string
}

// NewIdentity returns the identity checks' shared state.
func NewIdentity(o IdentityOptions) *Identity {
	o.Client = clientOr(o.Client)
	return &Identity{o: o}
}

var guidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// IssuerFormat is "issuer-format": the issuer is a base URL with no
// metadata path, and for Entra ID the tenant-specific v2.0 issuer with
// nothing after /v2.0 (Claude Desktop appends
// /.well-known/openid-configuration itself; a pasted metadata URL makes its
// discovery fail with HTTP 404).
func (id *Identity) IssuerFormat() Check {
	return CheckFunc("issuer-format", func(context.Context) Result { return CheckIssuer(id.o.Issuer, id.o.Entra) })
}

// CheckIssuer is IssuerFormat's logic, exported for the profile generator
// and tests.
func CheckIssuer(issuer string, entra bool) Result {
	const entraForm = "https://login.microsoftonline.com/<tenant-id>/v2.0"
	if issuer == "" {
		return Failf("set identity.issuer (for Entra ID: "+entraForm+")", "identity.issuer is empty")
	}
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return Failf("set identity.issuer to an absolute https:// URL (for Entra ID: "+entraForm+")", "issuer %q is not an absolute URL", issuer)
	}
	if i := strings.Index(u.Path, "/.well-known"); i >= 0 {
		fixed := *u
		fixed.Path = u.Path[:i]
		fixed.RawQuery = ""
		return Failf(fmt.Sprintf("set identity.issuer (and the profiles' issuer) to %s: clients append /.well-known/openid-configuration themselves", fixed.String()),
			"issuer %q is the metadata URL, not the issuer: Claude Desktop's discovery would fail with HTTP 404", issuer)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return Failf("remove the query and fragment from identity.issuer", "issuer %q has a query or fragment; an issuer never does", issuer)
	}
	if !entra {
		if u.Scheme != "https" && !isLoopback(u.Hostname()) {
			return Failf("use the https:// issuer", "issuer %q is not https", issuer)
		}
		return Okf("issuer %s has no metadata path", issuer)
	}
	if strings.EqualFold(u.Hostname(), "sts.windows.net") {
		return Failf("use the v2.0 issuer "+entraForm+" (ID tokens are always v2; for access-token mode set the API app's requestedAccessTokenVersion to 2)",
			"issuer %q is the Entra v1 issuer", issuer)
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	switch {
	case strings.HasSuffix(u.Path, "/v2.0/"):
		return Failf("remove the trailing slash: "+strings.TrimSuffix(issuer, "/"), "issuer %q has something after /v2.0 (a trailing slash); tokens' iss ends exactly at /v2.0", issuer)
	case !strings.HasSuffix(u.Path, "/v2.0"):
		return Failf("set identity.issuer to "+entraForm+", nothing after /v2.0", "Entra issuer %q does not end at /v2.0", issuer)
	case len(parts) != 2:
		return Failf("set identity.issuer to "+entraForm, "Entra issuer %q should have exactly one path segment (the tenant ID) before /v2.0", issuer)
	}
	switch tid := parts[0]; {
	case strings.EqualFold(tid, "common") || strings.EqualFold(tid, "organizations") || strings.EqualFold(tid, "consumers"):
		return Failf("use your tenant ID: "+entraForm+" (tokens' iss always names the tenant GUID)", "issuer %q is the multi-tenant %q endpoint; no token carries it as iss", issuer, tid)
	case !guidRE.MatchString(tid):
		return Failf("use the tenant ID (a GUID, shown on the Entra overview page) instead of the domain: "+entraForm,
			"issuer %q names the tenant by domain %q; tokens' iss carries the tenant GUID, so none would match", issuer, tid)
	}
	if u.Scheme != "https" && !isLoopback(u.Hostname()) {
		return Failf("use https://", "issuer %q is not https", issuer)
	}
	return Okf("issuer %s is a tenant v2.0 issuer with nothing after /v2.0", issuer)
}

func isLoopback(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

func (id *Identity) discover(ctx context.Context) (*discovery, Result) {
	id.once.Do(func() {
		issuer := strings.TrimRight(id.o.Issuer, "/")
		if i := strings.Index(issuer, "/.well-known"); i >= 0 {
			issuer = issuer[:i] // issuer-format reports this; still try the real document
		}
		u := issuer + "/.well-known/openid-configuration"
		if _, err := url.Parse(u); err != nil || id.o.Issuer == "" {
			id.err = Skipf("no usable issuer (see issuer-format)")
			return
		}
		resp, err := get(ctx, id.o.Client, u, nil)
		if err != nil {
			id.err = Failf("check DNS, the firewall/egress rules to the identity provider, and the issuer's host name", "discovery %s unreachable: %s", u, describeErr(err))
			return
		}
		if resp.status != http.StatusOK {
			fix := "check identity.issuer: it must be the issuer itself (" + "https://login.microsoftonline.com/<tenant-id>/v2.0 for Entra ID)"
			if m := errorMessage(resp.body); strings.Contains(m, "90002") || strings.Contains(m, "invalid_tenant") {
				fix = "the tenant ID in identity.issuer does not exist in this cloud; copy it from the Entra overview page"
			}
			id.err = Failf(fix, "discovery %s answered HTTP %d %s", u, resp.status, bodyHint(resp.body))
			return
		}
		d := &discovery{url: u}
		if err := json.Unmarshal(resp.body, d); err != nil {
			id.err = Failf("point identity.issuer at an OpenID Connect provider", "discovery %s is not a JSON discovery document", u)
			return
		}
		id.disc = d
	})
	return id.disc, id.err
}

func bodyHint(body []byte) string {
	if m := errorMessage(body); m != "" {
		return "(" + m + ")"
	}
	return ""
}

// Discovery is "oidc-discovery": the discovery document is reachable and
// its issuer equals the configured one (otherwise every token's iss check
// fails).
func (id *Identity) Discovery() Check {
	return CheckFunc("oidc-discovery", func(ctx context.Context) Result {
		d, r := id.discover(ctx)
		if d == nil {
			return r
		}
		switch {
		case d.Issuer == "":
			return Failf("point identity.issuer at an OpenID Connect provider", "discovery %s has no issuer", d.url)
		case strings.Contains(d.Issuer, "{tenantid}"):
			return Failf("use the tenant-specific issuer https://login.microsoftonline.com/<tenant-id>/v2.0", "discovery %s is the multi-tenant document (issuer %s)", d.url, sanitize(d.Issuer, 200))
		case d.Issuer != id.o.Issuer:
			return Failf("set identity.issuer (and the profiles' issuer) to exactly "+sanitize(d.Issuer, 200),
				"discovery says issuer %q but identity.issuer is %q: every token would be refused", sanitize(d.Issuer, 200), id.o.Issuer)
		case d.JWKSURI == "":
			return Failf("the provider publishes no keys; use a standard OpenID Connect provider", "discovery %s has no jwks_uri", d.url)
		}
		return Okf("discovery reachable; issuer matches; keys at %s", sanitize(d.JWKSURI, 200))
	})
}

// JWKS is "jwks": the key set is reachable, non-empty and holds RS256
// signing keys of at least 2048 bits.
func (id *Identity) JWKS() Check {
	return CheckFunc("jwks", func(ctx context.Context) Result {
		d, _ := id.discover(ctx)
		if d == nil || d.JWKSURI == "" {
			return Skipf("no jwks_uri (see oidc-discovery)")
		}
		resp, err := get(ctx, id.o.Client, d.JWKSURI, nil)
		if err != nil {
			return Failf("allow the gateway to reach the identity provider's key endpoint", "key set %s unreachable: %s", d.JWKSURI, describeErr(err))
		}
		if resp.status != http.StatusOK {
			return Failf("the provider's key endpoint is failing; retry later or check the issuer", "key set %s answered HTTP %d", d.JWKSURI, resp.status)
		}
		ks, err := EvaluateJWKS(resp.body)
		if err != nil {
			return Failf("the provider's key endpoint returns no valid key set; check the issuer", "key set %s: %v", d.JWKSURI, err)
		}
		if ks.Usable == 0 {
			return Failf("the provider must publish RSA signing keys of 2048 bits or more (RS256)", "key set has %d keys, none usable: %s", ks.Total, strings.Join(ks.Problems, "; "))
		}
		msg := fmt.Sprintf("%d of %d keys usable (RS256, ≥2048-bit RSA)", ks.Usable, ks.Total)
		if len(ks.Problems) > 0 {
			return Warnf("nothing to do unless tokens are refused with an unknown key; the gateway ignores unusable keys", "%s; ignored: %s", msg, strings.Join(ks.Problems, "; "))
		}
		return Okf("%s", msg)
	})
}

// KeySetReport is the outcome of EvaluateJWKS.
type KeySetReport struct {
	Total    int
	Usable   int
	Problems []string // one per unusable key
}

// EvaluateJWKS parses a JSON Web Key Set (untrusted input) and counts the
// keys the gateway can verify tokens with: kty RSA, use absent or sig, alg
// absent or RS256, a kid, and a modulus of at least 2048 bits.
func EvaluateJWKS(data []byte) (KeySetReport, error) {
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return KeySetReport{}, errors.New("not a JSON key set")
	}
	if len(set.Keys) == 0 {
		return KeySetReport{}, errors.New("the key set is empty")
	}
	r := KeySetReport{Total: len(set.Keys)}
	for i, k := range set.Keys {
		str := func(name string) string { s, _ := k[name].(string); return s }
		kid := str("kid")
		label := fmt.Sprintf("key %d", i)
		if kid != "" {
			label = "kid " + sanitize(kid, 40)
		}
		var problem string
		switch {
		case str("kty") != "RSA":
			problem = fmt.Sprintf("kty %q is not RSA", sanitize(str("kty"), 20))
		case str("use") != "" && str("use") != "sig":
			problem = fmt.Sprintf("use %q is not sig", sanitize(str("use"), 20))
		case str("alg") != "" && str("alg") != "RS256":
			problem = fmt.Sprintf("alg %q is not RS256", sanitize(str("alg"), 20))
		case kid == "":
			problem = "no kid"
		default:
			n, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(str("n"), "="))
			e, err2 := base64.RawURLEncoding.DecodeString(strings.TrimRight(str("e"), "="))
			switch {
			case err != nil || len(n) == 0:
				problem = "modulus n missing or not base64url"
			case err2 != nil || len(e) == 0:
				problem = "exponent e missing or not base64url"
			default:
				if bits := new(big.Int).SetBytes(n).BitLen(); bits < 2048 {
					problem = fmt.Sprintf("RSA modulus is %d bits (< 2048)", bits)
				}
			}
		}
		if problem != "" {
			r.Problems = append(r.Problems, label+": "+problem)
			continue
		}
		r.Usable++
	}
	return r, nil
}

// Audience is "audience": the accepted audiences are what clients' tokens
// will carry. For Entra, v2 tokens carry the bare client (application) ID;
// api://… appears only in v1 access tokens. With profiles, each profile's
// client ID (ID-token mode) must be an accepted audience and its issuer the
// configured one.
func (id *Identity) Audience() Check {
	return CheckFunc("audience", func(context.Context) Result {
		o := id.o
		if len(o.Audiences) == 0 {
			return Failf("set identity.audiences to the Desktop/Code app registration's client ID", "identity.audiences is empty")
		}
		var fails, warns, fixes, notes []string
		for _, p := range o.ProfileProblems {
			fails = append(fails, p)
			fixes = append(fixes, "pass a profile written by `gatehouse profile` (.mobileconfig, .reg or .json)")
		}
		if o.Entra {
			for _, a := range o.Audiences {
				switch {
				case strings.HasPrefix(strings.ToLower(a), "api://"):
					warns = append(warns, fmt.Sprintf("audience %q is an api:// URI: v2 tokens carry the bare application ID as aud (api:// appears only in v1 access tokens, which the v2.0 issuer never matches)", a))
					fixes = append(fixes, "use the bare application (client) ID GUID "+strings.TrimPrefix(strings.TrimPrefix(a, "api://"), "API://"))
				case !guidRE.MatchString(a):
					warns = append(warns, fmt.Sprintf("audience %q is not an application (client) ID GUID", a))
					fixes = append(fixes, "set identity.audiences to the app registration's Application (client) ID")
				}
			}
		}
		accepted := map[string]bool{}
		for _, a := range o.Audiences {
			accepted[a] = true
		}
		for _, p := range o.Profiles {
			name := p.Path
			if p.Issuer != "" && p.Issuer != o.Issuer {
				fails = append(fails, fmt.Sprintf("%s: issuer %q differs from identity.issuer %q", name, p.Issuer, o.Issuer))
				fixes = append(fixes, "regenerate the profile with `gatehouse profile --config FILE`, or make identity.issuer and the profile's issuer identical")
			}
			switch {
			case p.ClientID == "":
				notes = append(notes, fmt.Sprintf("%s names no client ID", name))
			case p.TokenType == "access_token":
				notes = append(notes, fmt.Sprintf("%s uses access tokens (aud is the gateway API's ID, not client %s)", name, p.ClientID))
			case !accepted[p.ClientID]:
				fails = append(fails, fmt.Sprintf("%s: client ID %s is not in identity.audiences %v: every ID token it sends would be refused (401)", name, p.ClientID, o.Audiences))
				fixes = append(fixes, "add "+p.ClientID+" to identity.audiences, or regenerate the profile with the right --client-id")
			default:
				notes = append(notes, fmt.Sprintf("%s: client ID %s accepted", name, p.ClientID))
			}
			if o.PublicURL != "" && p.GatewayURL != "" && strings.TrimRight(p.GatewayURL, "/") != strings.TrimRight(o.PublicURL, "/") {
				warns = append(warns, fmt.Sprintf("%s: gateway URL %s differs from public_url %s", name, p.GatewayURL, o.PublicURL))
				fixes = append(fixes, "regenerate the profile from the gateway's config, or correct public_url")
			}
		}
		fix := strings.Join(dedupe(fixes), "; ")
		switch {
		case len(fails) > 0:
			return Failf(fix, "%s", strings.Join(append(fails, warns...), "\n"))
		case len(warns) > 0:
			return Warnf(fix, "%s", strings.Join(warns, "\n"))
		}
		msg := fmt.Sprintf("audiences %v", o.Audiences)
		if len(o.Profiles) == 0 {
			msg += fmt.Sprintf("; no --profile given: profiles generated with `gatehouse profile --config` use client ID %s", o.Audiences[0])
		} else {
			msg += "; " + strings.Join(notes, "; ")
		}
		return Okf("%s", msg)
	})
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}
