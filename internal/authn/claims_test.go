package authn

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/fake/idp"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

// Row 10: exp/nbf/iat boundaries with the default 60s skew.
func TestTimeBoundaries(t *testing.T) {
	e := newEnv(t, nil, nil)
	ctx := context.Background()
	iat := time.Now().Truncate(time.Second).Add(-10 * time.Minute)
	exp := iat.Add(time.Hour)
	mint := func(edit func(c map[string]any)) string {
		c := e.idp.Claims(e.tid, e.aud, e.idp.DefaultUser(), time.Hour)
		c["iat"], c["nbf"], c["exp"] = iat.Unix(), iat.Unix(), exp.Unix()
		if edit != nil {
			edit(c)
		}
		return e.idp.Sign(e.tid, nil, c)
	}
	tok := mint(nil)
	cases := []struct {
		name   string
		tok    string
		now    time.Time
		reason string // "" = accepted
	}{
		{"exp-1s", tok, exp.Add(-time.Second), ""},
		{"exp", tok, exp, ""},
		{"exp+skew-1s", tok, exp.Add(59 * time.Second), ""},
		{"exp+skew", tok, exp.Add(60 * time.Second), ReasonTokenExpired},
		{"exp+skew+1s", tok, exp.Add(61 * time.Second), ReasonTokenExpired},
		{"nbf-skew", mint(func(c map[string]any) { c["nbf"] = iat.Add(2 * time.Minute).Unix() }), iat.Add(time.Minute), ""},
		{"nbf-skew-1s", mint(func(c map[string]any) { c["nbf"] = iat.Add(2 * time.Minute).Unix() }), iat.Add(59 * time.Second), ReasonTokenNotYetValid},
		{"iat future beyond skew", tok, iat.Add(-61 * time.Second), ReasonTokenNotYetValid},
		{"iat future within skew", tok, iat.Add(-60 * time.Second), ""},
		{"no exp", mint(func(c map[string]any) { delete(c, "exp") }), iat, ReasonTokenExpired},
		{"no iat", mint(func(c map[string]any) { delete(c, "iat") }), iat, ReasonMissingClaim},
		{"no nbf is fine", mint(func(c map[string]any) { delete(c, "nbf") }), iat, ""},
		{"lifetime 12h ok", mint(func(c map[string]any) { c["exp"] = iat.Add(12 * time.Hour).Unix() }), iat, ""},
		{"lifetime 12h+1s", mint(func(c map[string]any) { c["exp"] = iat.Add(12*time.Hour + time.Second).Unix() }), iat, ReasonTokenTooOld},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.a.cache.purge()
			e.clk.Set(c.now)
			_, err := e.a.Verify(ctx, c.tok)
			switch {
			case c.reason == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.reason != "" && (err == nil || err.Reason != c.reason):
				t.Fatalf("got %v, want %s", err, c.reason)
			}
		})
	}
	// A cached token expires with the token.
	e.a.cache.purge()
	e.clk.Set(exp.Add(-time.Second))
	if _, err := e.a.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	e.clk.Set(exp.Add(60 * time.Second))
	if _, err := e.a.Verify(ctx, tok); err == nil || err.Reason != ReasonTokenExpired {
		t.Fatalf("cached token outlived exp+skew: %v", err)
	}
}

// Row 11: maximum token age.
func TestMaxTokenAge(t *testing.T) {
	e := newEnv(t, nil, func(o *Options) { o.MaxTokenAge = 30 * time.Minute })
	tok := e.idp.IDToken(e.tid, e.aud, e.idp.DefaultUser(), time.Hour)
	ctx := context.Background()
	if _, err := e.a.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	e.clk.Add(30*time.Minute + 2*time.Second) // cached entry must not outlive the age cap
	if _, err := e.a.Verify(ctx, tok); err == nil || err.Reason != ReasonTokenTooOld {
		t.Fatalf("old token: %v", err)
	}
}

// Row 14: one provider, several tenants, per-tenant key sets.
func TestMultiTenant(t *testing.T) {
	t1, t2, t3 := idp.NewGUID(), idp.NewGUID(), idp.NewGUID()
	s := startIdP(t, idp.Options{Tenants: []string{t1, t2, t3}})
	aud := idp.NewGUID()
	a := newAuth(t, Options{Providers: []Provider{{
		Name: "msp", Type: TypeEntra, Issuer: s.URL() + "/{tenantid}/v2.0", Audiences: []string{aud}, AllowedTenants: []string{t1, strings.ToUpper(t2)},
	}}})
	waitReady(t, a)
	ctx := context.Background()
	u := s.DefaultUser()
	for _, tid := range []string{t1, t2} {
		p, err := a.Verify(ctx, s.IDToken(tid, aud, u, time.Hour))
		if err != nil || p.Key != tid+"/"+u.OID || p.TenantID != tid {
			t.Fatalf("tenant %s: %v %+v", tid, err, p)
		}
	}
	if s.DiscoveryFetches(t3) != 0 || s.JWKSFetches(t3) != 0 {
		t.Fatal("fetched keys of a tenant that is not allowed")
	}
	if _, err := a.Verify(ctx, s.IDToken(t3, aud, u, time.Hour)); err == nil || err.Reason != ReasonTenantNotAllowed {
		t.Fatalf("third tenant: %v", err)
	}
	if s.DiscoveryFetches(t3) != 0 || s.JWKSFetches(t3) != 0 {
		t.Fatal("a token from a tenant that is not allowed caused fetches")
	}
	// Tenant 2's claims signed with tenant 1's key: its kid is unknown in
	// tenant 2's key set (keys are cached per tenant).
	c := s.Claims(t2, aud, u, time.Hour)
	k1 := s.CurrentKey(t1)
	forged := idp.SignWith("RS256", k1.Private, map[string]any{"alg": "RS256", "kid": k1.KID, "typ": "JWT"}, c)
	if _, err := a.Verify(ctx, forged); err == nil || err.Reason != ReasonUnknownKey {
		t.Fatalf("cross-tenant key: %v", err)
	}
	// Config errors.
	for name, p := range map[string]Provider{
		"template without tenants": {Name: "x", Type: TypeEntra, Issuer: s.URL() + "/{tenantid}/v2.0", Audiences: []string{aud}},
		"consumer tenant":          {Name: "x", Type: TypeEntra, Issuer: s.URL() + "/{tenantid}/v2.0", Audiences: []string{aud}, AllowedTenants: []string{ConsumerTenant}},
		"tenant not GUID":          {Name: "x", Type: TypeEntra, Issuer: s.URL() + "/{tenantid}/v2.0", Audiences: []string{aud}, AllowedTenants: []string{"contoso"}},
		"issuer tenant not listed": {Name: "x", Type: TypeEntra, Issuer: s.Issuer(t1), Audiences: []string{aud}, AllowedTenants: []string{t2}},
		"no audience":              {Name: "x", Issuer: s.Issuer(t1)},
		"http issuer":              {Name: "x", Issuer: "http://idp.example/x", Audiences: []string{aud}},
		"bad mode":                 {Name: "x", Issuer: s.Issuer(t1), Audiences: []string{aud}, TokenMode: "both"},
		"hs256":                    {Name: "x", Issuer: s.Issuer(t1), Audiences: []string{aud}, Algorithms: []string{"HS256"}},
		"graph without secret":     {Name: "x", Type: TypeEntra, Issuer: s.Issuer(t1), Audiences: []string{aud}, GroupOverage: OverageGraph},
	} {
		if _, err := New(ctx, Options{Providers: []Provider{p}}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// Row 16 and D3: access-token mode.
func TestAccessTokenMode(t *testing.T) {
	s := startIdP(t, idp.Options{})
	tid := s.Tenants()[0]
	api, desktop := idp.NewGUID(), idp.NewGUID()
	a := newAuth(t, Options{Providers: []Provider{{
		Name: "api", Type: TypeEntra, Issuer: s.Issuer(tid), Audiences: []string{api}, TokenMode: ModeAccessToken,
		RequiredScopes: []string{"Claude.Use"}, AllowedClients: []string{desktop},
	}}})
	waitReady(t, a)
	ctx := context.Background()
	u := s.DefaultUser()
	p, err := a.Verify(ctx, s.AccessToken(tid, api, desktop, u, []string{"Claude.Use", "other"}, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Scopes, []string{"Claude.Use", "other"}) || p.ClientID != desktop {
		t.Errorf("principal %+v", p)
	}
	cases := map[string]struct {
		tok    string
		reason string
	}{
		"ID token with the API audience": {s.IDToken(tid, api, u, time.Hour), ReasonWrongTokenType},
		"ID token of the desktop app":    {s.IDToken(tid, desktop, u, time.Hour), ReasonWrongAudience},
		"missing scope":                  {s.AccessToken(tid, api, desktop, u, []string{"other"}, time.Hour), ReasonMissingScope},
		"other client":                   {s.AccessToken(tid, api, idp.NewGUID(), u, []string{"Claude.Use"}, time.Hour), ReasonWrongAudience},
		"app-only token": {s.Sign(tid, nil, func() map[string]any {
			c := s.AccessTokenClaims(tid, api, desktop, u, nil, time.Hour)
			c["idtyp"] = "app"
			return c
		}()), ReasonWrongTokenType},
		"Graph token": {s.GraphToken(tid, desktop, u, time.Hour), ReasonForbiddenHeader},
	}
	for name, c := range cases {
		_, err := a.Verify(ctx, c.tok)
		if err == nil || err.Reason != c.reason {
			t.Errorf("%s: %v, want %s", name, err, c.reason)
		}
	}
	// at+jwt typ is fine in access-token mode.
	at := s.Sign(tid, map[string]any{"typ": "at+jwt"}, s.AccessTokenClaims(tid, api, desktop, u, []string{"Claude.Use"}, time.Hour))
	if _, err := a.Verify(ctx, at); err != nil {
		t.Errorf("at+jwt: %v", err)
	}
}

// Row 13: v1 tokens accepted only when configured.
func TestV1TokensWhenConfigured(t *testing.T) {
	s := startIdP(t, idp.Options{})
	tid := s.Tenants()[0]
	api, client := "api://gatehouse", idp.NewGUID()
	a := newAuth(t, Options{Providers: []Provider{{
		Name: "v1", Type: TypeEntra, Issuer: s.Issuer(tid), Audiences: []string{api}, TokenMode: ModeAccessToken,
		TokenVersions: []string{"1.0", "2.0"}, V1Issuer: s.URL() + "/{tenantid}/",
	}}})
	waitReady(t, a)
	u := s.DefaultUser()
	p, err := a.Verify(context.Background(), s.V1Token(tid, api, client, u, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if p.Key != tid+"/"+u.OID || p.Username != u.Username || p.ClientID != client {
		t.Errorf("principal %+v", p)
	}
	// ver 2.0 under the v1 issuer is refused.
	c := s.AccessTokenClaims(tid, api, client, u, []string{"x"}, time.Hour)
	c["iss"] = s.IssuerV1(tid)
	if _, err := a.Verify(context.Background(), s.Sign(tid, nil, c)); err == nil || err.Reason != ReasonUnsupportedVersion {
		t.Errorf("v2 claims with v1 issuer: %v", err)
	}
}

// Okta and a generic OIDC provider (ES256, keys at a fixed JWKS URL).
func TestOktaAndGenericOIDC(t *testing.T) {
	s := startIdP(t, idp.Options{})
	oktaClient := "0oa" + strings.Repeat("x", 17)
	a := newAuth(t, Options{Providers: []Provider{
		{Name: "okta", Issuer: s.Issuer(idp.OktaTenant), Audiences: []string{oktaClient}, ClaimRules: []ClaimRule{{Claim: "amr", AnyOf: []string{"mfa"}}}},
		{Name: "okta-api", Issuer: s.Issuer(idp.OktaTenant), Audiences: []string{"api://default"}, TokenMode: ModeAccessToken, RequiredScopes: []string{"claude"}},
	}})
	waitReady(t, a)
	ctx := context.Background()
	u := idp.User{OID: "00u" + strings.Repeat("a", 17), Name: "Okta User", Username: "o@example.com", Email: "o@example.com", Groups: []string{"Everyone"}}
	p, err := a.Verify(ctx, s.IDToken(idp.OktaTenant, oktaClient, u, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if p.Key != s.Issuer(idp.OktaTenant)+"|"+u.OID || p.TenantID != "" || p.Provider != "okta" || !slices.Equal(p.Groups, u.Groups) {
		t.Errorf("okta principal %+v", p)
	}
	c := s.Claims(idp.OktaTenant, oktaClient, u, time.Hour)
	c["amr"] = []string{"pwd"}
	if _, err := a.Verify(ctx, s.Sign(idp.OktaTenant, nil, c)); err == nil || err.Reason != ReasonPolicyNotSatisfied {
		t.Errorf("amr without mfa: %v", err)
	}
	at := s.AccessToken(idp.OktaTenant, "api://default", oktaClient, u, []string{"openid", "claude"}, time.Hour)
	if p, err := a.Verify(ctx, at); err != nil || p.Provider != "okta-api" || p.ClientID != oktaClient {
		t.Errorf("okta access token: %v %+v", err, p)
	}
	// An Okta-shaped token for an Entra-looking tenant GUID is not Entra.
	// Generic ES256 provider.
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwk := map[string]any{"kty": "EC", "crv": "P-256", "kid": "ec1", "use": "sig", "alg": "ES256",
		"x": base64.RawURLEncoding.EncodeToString(ec.X.FillBytes(make([]byte, 32))),
		"y": base64.RawURLEncoding.EncodeToString(ec.Y.FillBytes(make([]byte, 32)))}
	var keyHits atomic.Int64
	keys := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		keyHits.Add(1)
		json.NewEncoder(w).Encode(map[string]any{"keys": []any{jwk}})
	}))
	defer keys.Close()
	iss := "https://auth.example.com/realms/corp"
	g := newAuth(t, Options{Providers: []Provider{{Name: "kc", Issuer: iss, JWKSURL: keys.URL, Audiences: []string{"gatehouse"}, Algorithms: []string{"ES256"}, RequiredRoles: []string{"claude"}}}})
	waitReady(t, g)
	now := time.Now()
	claims := map[string]any{"iss": iss, "aud": []string{"gatehouse", "account"}, "azp": "gatehouse", "sub": "f:1234", "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "roles": []string{"claude"}, "preferred_username": "kc-user"}
	tok := idp.SignWith("ES256", ec, map[string]any{"alg": "ES256", "kid": "ec1", "typ": "JWT"}, claims)
	p, err = g.Verify(ctx, tok)
	if err != nil || p.Key != iss+"|f:1234" || p.Username != "kc-user" {
		t.Fatalf("generic ES256: %v %+v", err, p)
	}
	rs := s.Sign(idp.OktaTenant, map[string]any{"kid": "ec1"}, claims)
	if _, err := g.Verify(ctx, rs); err == nil || err.Reason != ReasonUnsupportedAlg {
		t.Errorf("RS256 on an ES256 provider: %v", err)
	}
	claims["roles"] = []string{"viewer"}
	if _, err := g.Verify(ctx, idp.SignWith("ES256", ec, map[string]any{"alg": "ES256", "kid": "ec1"}, claims)); err == nil || err.Status != 403 {
		t.Errorf("generic without role: %v", err)
	}
}

// Rows 28, 29: roles, guests, claim rules, display claims never authorise.
func TestAuthorisationClaims(t *testing.T) {
	s := startIdP(t, idp.Options{})
	tid := s.Tenants()[0]
	aud := idp.NewGUID()
	p := entraProvider(s, tid, aud)
	p.BlockGuests = true
	p.ClaimRules = []ClaimRule{{Claim: "acrs", AnyOf: []string{"c1"}}, {Claim: "xms_cc", AllOf: []string{"cp1"}}}
	a := newAuth(t, Options{Providers: []Provider{p}})
	waitReady(t, a)
	ctx := context.Background()
	u := s.DefaultUser()
	mint := func(edit func(c map[string]any)) string {
		c := s.Claims(tid, aud, u, time.Hour)
		c["acrs"] = []string{"c1"}
		c["xms_cc"] = []string{"cp1"}
		if edit != nil {
			edit(c)
		}
		return s.Sign(tid, nil, c)
	}
	cases := map[string]struct {
		edit   func(c map[string]any)
		status int
		reason string
	}{
		"member":               {nil, 0, ""},
		"guest by acct":        {func(c map[string]any) { c["acct"] = 1 }, 403, ReasonGuestNotAllowed},
		"guest by idp":         {func(c map[string]any) { c["idp"] = "https://sts.windows.net/" + idp.NewGUID() + "/" }, 403, ReasonGuestNotAllowed},
		"guest MSA":            {func(c map[string]any) { c["idp"] = "live.com" }, 403, ReasonGuestNotAllowed},
		"member idp is tenant": {func(c map[string]any) { c["idp"] = "https://sts.windows.net/" + tid + "/" }, 0, ""},
		"acrs missing":         {func(c map[string]any) { delete(c, "acrs") }, 403, ReasonPolicyNotSatisfied},
		"acrs other":           {func(c map[string]any) { c["acrs"] = []string{"c2"} }, 403, ReasonPolicyNotSatisfied},
		"xms_cc missing":       {func(c map[string]any) { delete(c, "xms_cc") }, 403, ReasonPolicyNotSatisfied},
		"roles string":         {func(c map[string]any) { c["roles"] = "Claude.User" }, 0, ""},
		"no roles":             {func(c map[string]any) { delete(c, "roles") }, 403, ReasonMissingRole},
		"admin email, no oid": {func(c map[string]any) {
			delete(c, "oid")
			c["email"] = "admin@contoso.example"
		}, 401, ReasonMissingClaim},
		"oid not a string": {func(c map[string]any) { c["oid"] = 7 }, 401, ReasonMalformedToken},
	}
	for name, c := range cases {
		_, err := a.Verify(ctx, mint(c.edit))
		if c.reason == "" {
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
			continue
		}
		if err == nil || err.Status != c.status || err.Reason != c.reason {
			t.Errorf("%s: %v, want %d %s", name, err, c.status, c.reason)
		}
	}
	// nOAuth: same email, different oid → a different user key.
	p1, _ := a.Verify(ctx, mint(func(c map[string]any) { c["email"] = "admin@contoso.example" }))
	p2, _ := a.Verify(ctx, mint(func(c map[string]any) { c["email"] = "admin@contoso.example"; c["oid"] = idp.NewGUID() }))
	if p1.Key == "" || p1.Key == p2.Key {
		t.Errorf("users keyed by display claims: %q %q", p1.Key, p2.Key)
	}
}

// fakeGraph speaks Microsoft Graph's getMemberObjects and checks the
// app-only bearer token issued by the fake IdP.
func fakeGraph(t *testing.T, groups map[string][]string) (*httptest.Server, *atomic.Int64) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		parts := strings.Split(tok, ".")
		var c map[string]any
		if ok && len(parts) == 3 {
			b, _ := base64.RawURLEncoding.DecodeString(parts[1])
			json.Unmarshal(b, &c)
		}
		if c["idtyp"] != "app" || c["aud"] != "https://graph.microsoft.com" {
			w.WriteHeader(401)
			json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": "InvalidAuthenticationToken", "message": "Access token validation failure."}})
			return
		}
		oid, ok := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/v1.0/users/"), "/getMemberObjects")
		var body map[string]any
		if r.Method != http.MethodPost || !ok || json.NewDecoder(r.Body).Decode(&body) != nil || body["securityEnabledOnly"] == nil {
			w.WriteHeader(400)
			json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": "Request_BadRequest"}})
			return
		}
		g, found := groups[oid]
		if !found {
			w.WriteHeader(404)
			json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": "Request_ResourceNotFound"}})
			return
		}
		w.Header().Set("Content-Type", "application/json;odata.metadata=minimal")
		json.NewEncoder(w).Encode(map[string]any{"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(Edm.String)", "value": g})
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

// Row 28: group overage resolved through Graph (never the token's URL).
func TestGroupOverageGraph(t *testing.T) {
	gwApp, secret := idp.NewGUID(), "s3cret"
	s := startIdP(t, idp.Options{Clients: []idp.Client{{ID: gwApp, Secret: secret}}})
	tid := s.Tenants()[0]
	aud := idp.NewGUID()
	u := s.DefaultUser()
	admins := idp.NewGUID()
	graph, calls := fakeGraph(t, map[string][]string{u.OID: {idp.NewGUID(), admins}})
	var evilHits atomic.Int64
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { evilHits.Add(1) }))
	defer evil.Close()
	p := entraProvider(s, tid, aud)
	p.GroupOverage = OverageGraph
	p.RequiredGroups = []string{admins}
	p.Graph = GraphOptions{BaseURL: graph.URL + "/v1.0", TokenURL: s.URL() + "/{tenantid}/oauth2/v2.0/token", ClientID: gwApp, ClientSecret: secret, Scope: "https://graph.microsoft.com/.default"}
	a := newAuth(t, Options{Providers: []Provider{p}})
	waitReady(t, a)
	over := func(oid string) string {
		c := s.Claims(tid, aud, u, time.Hour)
		c["oid"] = oid
		c["_claim_names"] = map[string]any{"groups": "src1"}
		c["_claim_sources"] = map[string]any{"src1": map[string]any{"endpoint": evil.URL + "/v1.0/users/" + oid + "/getMemberObjects"}}
		return s.Sign(tid, nil, c)
	}
	ctx := context.Background()
	pr, err := a.Verify(ctx, over(u.OID))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(pr.Groups, admins) || calls.Load() != 1 || evilHits.Load() != 0 {
		t.Errorf("groups %v graph calls %d evil hits %d", pr.Groups, calls.Load(), evilHits.Load())
	}
	// A second user: the app token is reused (one token request in all).
	tokens := s.TokenRequests()
	if _, err := a.Verify(ctx, over(idp.NewGUID())); err == nil || err.Reason != ReasonGroupsUnavailable || err.Status != 503 {
		t.Errorf("unknown user at Graph: %v", err)
	}
	if s.TokenRequests() != tokens {
		t.Errorf("app token not reused")
	}
	// Not in the required group.
	c := s.Claims(tid, aud, u, time.Hour)
	c["groups"] = []string{idp.NewGUID()}
	if _, err := a.Verify(ctx, s.Sign(tid, nil, c)); err == nil || err.Reason != ReasonMissingGroup {
		t.Errorf("missing group: %v", err)
	}
	// hasgroups: true with deny.
	d := newEnv(t, s, nil)
	c = s.Claims(d.tid, d.aud, u, time.Hour)
	c["hasgroups"] = true
	if _, err := d.a.Verify(ctx, s.Sign(d.tid, nil, c)); err == nil || err.Reason != ReasonGroupOverage {
		t.Errorf("hasgroups with deny: %v", err)
	}
}

type revokeSet map[string]bool

func (r revokeSet) Check(_ context.Context, p identity.Principal) error {
	if r[p.Key] || r[p.TokenHash] {
		return errors.New("revoked by test")
	}
	return nil
}

// Row 30 hook: revocations apply to cached tokens too.
func TestRevocationsHook(t *testing.T) {
	rs := revokeSet{}
	e := newEnv(t, nil, func(o *Options) { o.Revocations = rs })
	u := e.idp.DefaultUser()
	tok := e.idp.IDToken(e.tid, e.aud, u, time.Hour)
	ctx := context.Background()
	p, err := e.a.Verify(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	rs[p.Key] = true
	if _, err := e.a.Verify(ctx, tok); err == nil || err.Reason != ReasonRevoked || err.Status != 401 {
		t.Fatalf("revoked user, cached token: %v", err)
	}
	delete(rs, p.Key)
	rs[p.TokenHash] = true
	if _, err := e.a.Verify(ctx, tok); err == nil || err.Reason != ReasonRevoked {
		t.Fatalf("revoked token: %v", err)
	}
	delete(rs, p.TokenHash)
	if _, err := e.a.Verify(ctx, tok); err != nil {
		t.Fatalf("lifted: %v", err)
	}
}

func TestCacheBounded(t *testing.T) {
	e := newEnv(t, nil, func(o *Options) { o.CacheSize = 20 })
	ctx := context.Background()
	for i := 0; i < 100; i++ {
		u := e.idp.DefaultUser()
		u.OID = idp.NewGUID()
		if _, err := e.a.Verify(ctx, e.idp.IDToken(e.tid, e.aud, u, time.Hour)); err != nil {
			t.Fatal(err)
		}
		if n := e.a.cache.len(); n > 20 {
			t.Fatalf("cache holds %d entries", n)
		}
	}
	off := newEnv(t, e.idp, func(o *Options) { o.CacheSize = -1 })
	off.a.Verify(ctx, e.idp.IDToken(off.tid, off.aud, e.idp.DefaultUser(), time.Hour))
	if off.a.cache.len() != 0 {
		t.Error("disabled cache stores entries")
	}
}

// Two providers on one issuer are told apart by audience (D3: the mode is
// explicit per provider; a token of the other kind is refused).
func TestTwoModesOneIssuer(t *testing.T) {
	s := startIdP(t, idp.Options{})
	tid := s.Tenants()[0]
	desktop, api := idp.NewGUID(), idp.NewGUID()
	a := newAuth(t, Options{Providers: []Provider{
		{Name: "desktop", Type: TypeEntra, Issuer: s.Issuer(tid), Audiences: []string{desktop}},
		{Name: "code", Type: TypeEntra, Issuer: s.Issuer(tid), Audiences: []string{api}, TokenMode: ModeAccessToken},
	}})
	waitReady(t, a)
	ctx := context.Background()
	u := s.DefaultUser()
	for _, c := range []struct {
		tok, provider string
	}{
		{s.IDToken(tid, desktop, u, time.Hour), "desktop"},
		{s.AccessToken(tid, api, desktop, u, []string{"access"}, time.Hour), "code"},
	} {
		p, err := a.Verify(ctx, c.tok)
		if err != nil || p.Provider != c.provider {
			t.Errorf("%s: %v %+v", c.provider, err, p)
		}
	}
	if len(a.keySets) != 1 {
		t.Errorf("%d key sets for one issuer", len(a.keySets))
	}
	if _, err := a.Verify(ctx, s.AccessToken(tid, desktop, desktop, u, []string{"x"}, time.Hour)); err == nil || err.Reason != ReasonWrongTokenType {
		t.Errorf("access token to the ID-token provider: %v", err)
	}
}

func TestErrorShape(t *testing.T) {
	for _, r := range Reasons {
		e := fail(r, "cause %d", 1)
		if e.Status != 401 && e.Status != 403 && e.Status != 503 {
			t.Errorf("%s: status %d", r, e.Status)
		}
		if e.Message == "" || strings.Contains(strings.ToLower(e.Message), "kid") || strings.Contains(e.Message, "jwks") {
			t.Errorf("%s: message %q", r, e.Message)
		}
		if !strings.Contains(e.Error(), r) || !errors.Is(e, e.Cause) {
			t.Errorf("%s: Error() %q", r, e.Error())
		}
		want := map[int]string{401: "authentication_error", 403: "permission_error", 503: "api_error"}[e.Status]
		if e.StatusText() != want {
			t.Errorf("%s: %s", r, e.StatusText())
		}
	}
	if len(Reasons) != len(reasonInfo) {
		t.Errorf("Reasons %d vs reasonInfo %d", len(Reasons), len(reasonInfo))
	}
	_ = fmt.Sprint()
}

// Row 24: ECDSA "psychic signatures" (r = s = 0) and other degenerate
// signatures are refused for an ES256 provider.
func TestECDSADegenerateSignatures(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwk := map[string]any{"kty": "EC", "crv": "P-256", "kid": "ec1", "use": "sig",
		"x": base64.RawURLEncoding.EncodeToString(ec.X.FillBytes(make([]byte, 32))),
		"y": base64.RawURLEncoding.EncodeToString(ec.Y.FillBytes(make([]byte, 32)))}
	keys := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"keys": []any{jwk}})
	}))
	defer keys.Close()
	iss := "https://idp.example.com"
	a := newAuth(t, Options{Providers: []Provider{{Name: "es", Issuer: iss, JWKSURL: keys.URL, Audiences: []string{"gw"}, Algorithms: []string{"ES256"}}}})
	waitReady(t, a)
	now := time.Now()
	claims := map[string]any{"iss": iss, "aud": "gw", "sub": "u1", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	good := idp.SignWith("ES256", ec, map[string]any{"alg": "ES256", "kid": "ec1"}, claims)
	if _, err := a.Verify(context.Background(), good); err != nil {
		t.Fatalf("valid ES256: %v", err)
	}
	parts := strings.Split(good, ".")
	n := elliptic.P256().Params().N.FillBytes(make([]byte, 32))
	one := make([]byte, 32)
	one[31] = 1
	for name, sig := range map[string][]byte{
		"r=s=0":   make([]byte, 64),
		"r=s=n":   append(append([]byte{}, n...), n...),
		"r=1,s=1": append(append([]byte{}, one...), one...),
		"short":   make([]byte, 63),
		"DER":     append([]byte{0x30, 0x44, 0x02, 0x20}, make([]byte, 66)...),
	} {
		tok := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
		if _, err := a.Verify(context.Background(), tok); err == nil || (err.Reason != ReasonBadSignature && err.Reason != ReasonMalformedToken) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
