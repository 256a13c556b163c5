package idp

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

func getJSON(t *testing.T, u string, v any) int {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v: %s", u, err, b)
		}
	}
	return resp.StatusCode
}

func startT(t *testing.T, opts Options) *Server {
	t.Helper()
	s, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestDiscoveryAndKeysAreEntraShaped(t *testing.T) {
	tid := NewGUID()
	s := startT(t, Options{Tenants: []string{tid}})
	var d map[string]any
	if code := getJSON(t, s.URL()+"/"+tid+"/v2.0/.well-known/openid-configuration", &d); code != 200 {
		t.Fatalf("discovery status %d", code)
	}
	want := map[string]string{
		"issuer":                 s.URL() + "/" + tid + "/v2.0",
		"jwks_uri":               s.URL() + "/" + tid + "/discovery/v2.0/keys",
		"authorization_endpoint": s.URL() + "/" + tid + "/oauth2/v2.0/authorize",
		"token_endpoint":         s.URL() + "/" + tid + "/oauth2/v2.0/token",
	}
	for k, v := range want {
		if d[k] != v {
			t.Errorf("%s = %v, want %v", k, d[k], v)
		}
	}
	if s.Issuer(tid) != want["issuer"] {
		t.Errorf("Issuer() = %s", s.Issuer(tid))
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	getJSON(t, s.JWKSURL(tid), &set)
	if len(set.Keys) != 1 {
		t.Fatalf("keys: %v", set.Keys)
	}
	k := set.Keys[0]
	for _, m := range []string{"kty", "use", "kid", "x5t", "n", "e", "x5c", "issuer", "cloud_instance_name"} {
		if _, ok := k[m]; !ok {
			t.Errorf("key lacks %q", m)
		}
	}
	if k["issuer"] != s.Issuer(tid) || k["use"] != "sig" || k["e"] != "AQAB" || k["kid"] != k["x5t"] {
		t.Errorf("key = %v", k)
	}
	if s.DiscoveryFetches(tid) != 1 || s.JWKSFetches(tid) != 1 {
		t.Errorf("counters %d %d", s.DiscoveryFetches(tid), s.JWKSFetches(tid))
	}
	// go-jose must accept the published key and verify an ID token with it.
	raw, _ := json.Marshal(k)
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(raw); err != nil {
		t.Fatal(err)
	}
	tok := s.IDToken(tid, "client-1", s.DefaultUser(), time.Hour)
	sig, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	payload, err := sig.Verify(jwk.Key)
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	_ = json.Unmarshal(payload, &c)
	for _, m := range []string{"iss", "aud", "tid", "oid", "sub", "iat", "nbf", "exp", "ver", "preferred_username", "name", "email", "roles", "uti"} {
		if _, ok := c[m]; !ok {
			t.Errorf("ID token lacks %q", m)
		}
	}
	if c["ver"] != "2.0" || c["tid"] != tid || c["aud"] != "client-1" || sig.Signatures[0].Header.KeyID != jwk.KeyID {
		t.Errorf("claims %v", c)
	}
	// v1 discovery.
	getJSON(t, s.URL()+"/"+tid+"/.well-known/openid-configuration", &d)
	if d["issuer"] != s.IssuerV1(tid) {
		t.Errorf("v1 issuer %v", d["issuer"])
	}
	// Unknown tenant: Entra error shape.
	var e map[string]any
	if code := getJSON(t, s.URL()+"/"+NewGUID()+"/v2.0/.well-known/openid-configuration", &e); code != 400 || e["error"] != "invalid_tenant" {
		t.Errorf("unknown tenant: %d %v", code, e)
	}
	// Generic provider.
	getJSON(t, s.URL()+"/oauth2/default/.well-known/openid-configuration", &d)
	if d["issuer"] != s.Issuer(OktaTenant) || d["jwks_uri"] != s.JWKSURL(OktaTenant) {
		t.Errorf("okta discovery %v", d)
	}
}

func TestJWKSModesAndRotation(t *testing.T) {
	s := startT(t, Options{})
	tid := s.Tenants()[0]
	old := s.CurrentKey(tid)
	nk, err := s.Rotate(tid, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Keys(tid)) != 2 || s.CurrentKey(tid) != nk || nk.KID == old.KID {
		t.Fatal("rotation with keep")
	}
	s.SetKeys(tid, nk, false)
	if len(s.Keys(tid)) != 1 {
		t.Fatal("rotation without keep")
	}
	s.SetJWKSMode(tid, JWKS500)
	if code := getJSON(t, s.JWKSURL(tid), nil); code != 500 {
		t.Errorf("500 mode: %d", code)
	}
	s.SetJWKSMode(tid, JWKSHuge)
	resp, err := http.Get(s.JWKSURL(tid))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if n < 5<<20 {
		t.Errorf("huge body %d bytes", n)
	}
	s.SetJWKSBody(tid, []byte(`{"keys":[]}`))
	var set map[string]any
	getJSON(t, s.JWKSURL(tid), &set)
	if len(set["keys"].([]any)) != 0 {
		t.Errorf("custom body %v", set)
	}
	s.SetJWKSMode(tid, JWKSStall)
	c := &http.Client{Timeout: 200 * time.Millisecond}
	if _, err := c.Get(s.JWKSURL(tid)); err == nil {
		t.Error("stall mode answered")
	}
	if got := s.JWKSFetches(tid); got != 4 {
		t.Errorf("fetches = %d, want 4", got)
	}
}

func pkce() (verifier, challenge string) {
	verifier = randomID(48)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

func noRedirect() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func TestAuthCodePKCEAndRefresh(t *testing.T) {
	tid := NewGUID()
	clientID := NewGUID()
	bob := User{OID: NewGUID(), Name: "Bob", Username: "bob@contoso.example", Roles: []string{"Claude.User"}}
	s := startT(t, Options{Tenants: []string{tid}, Users: []User{bob},
		Clients: []Client{{ID: clientID, RedirectURIs: []string{"http://localhost/callback"}}}})
	verifier, challenge := pkce()
	redirect := "http://localhost:53123/callback"
	authz := func(mod func(url.Values)) *http.Response {
		q := url.Values{"client_id": {clientID}, "response_type": {"code"}, "redirect_uri": {redirect},
			"scope": {"openid profile offline_access api://" + clientID + "/access"}, "state": {"st8"}, "nonce": {"n0nce"},
			"code_challenge": {challenge}, "code_challenge_method": {"S256"}, "login_hint": {"bob@contoso.example"}}
		if mod != nil {
			mod(q)
		}
		resp, err := noRedirect().Get(s.AuthorizeEndpoint(tid) + "?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	// Rejections.
	if r := authz(func(q url.Values) { q.Set("redirect_uri", "https://evil.example/cb") }); r.StatusCode != 400 {
		t.Errorf("bad redirect: %d", r.StatusCode)
	}
	if r := authz(func(q url.Values) { q.Set("client_id", NewGUID()) }); r.StatusCode != 400 {
		t.Errorf("bad client: %d", r.StatusCode)
	}
	for name, mod := range map[string]func(url.Values){
		"plain":    func(q url.Values) { q.Set("code_challenge_method", "plain") },
		"token":    func(q url.Values) { q.Set("response_type", "token") },
		"nopkce":   func(q url.Values) { q.Del("code_challenge") },
		"nobody":   func(q url.Values) { q.Set("login_hint", "nobody@x") },
		"noscopes": func(q url.Values) { q.Del("scope") },
	} {
		r := authz(mod)
		loc, _ := url.Parse(r.Header.Get("Location"))
		if r.StatusCode != 302 || loc.Query().Get("error") == "" || loc.Query().Get("state") != "st8" {
			t.Errorf("%s: %d %s", name, r.StatusCode, loc)
		}
	}
	r := authz(nil)
	loc, _ := url.Parse(r.Header.Get("Location"))
	if r.StatusCode != 302 || loc.Host != "localhost:53123" || loc.Query().Get("state") != "st8" || loc.Query().Get("code") == "" {
		t.Fatalf("authorize: %d %s", r.StatusCode, loc)
	}
	code := loc.Query().Get("code")
	post := func(f url.Values) (int, map[string]any) {
		resp, err := http.PostForm(s.TokenEndpoint(tid), f)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	form := url.Values{"grant_type": {"authorization_code"}, "client_id": {clientID}, "code": {code}, "redirect_uri": {redirect}}
	bad := url.Values{}
	for k, v := range form {
		bad[k] = v
	}
	bad.Set("code_verifier", strings.Repeat("x", 43))
	if st, m := post(bad); st != 400 || m["error"] != "invalid_grant" || m["error_codes"] == nil || m["error_description"] == nil {
		t.Errorf("wrong verifier: %d %v", st, m)
	}
	form.Set("code_verifier", verifier)
	st, m := post(form)
	if st != 200 {
		t.Fatalf("token: %d %v", st, m)
	}
	for _, k := range []string{"token_type", "scope", "expires_in", "id_token", "access_token", "refresh_token"} {
		if m[k] == nil {
			t.Errorf("token response lacks %s", k)
		}
	}
	idc := claimsOf(t, m["id_token"].(string))
	if idc["nonce"] != "n0nce" || idc["oid"] != bob.OID || idc["aud"] != clientID {
		t.Errorf("id token claims %v", idc)
	}
	atc := claimsOf(t, m["access_token"].(string))
	if atc["aud"] != clientID || atc["scp"] != "access" || atc["azp"] != clientID {
		t.Errorf("access token claims %v", atc)
	}
	if st, m := post(form); st != 400 || m["error_codes"].([]any)[0].(float64) != 54005 {
		t.Errorf("replayed code: %d %v", st, m)
	}
	rf := url.Values{"grant_type": {"refresh_token"}, "client_id": {clientID}, "refresh_token": {m["refresh_token"].(string)}}
	if st, m2 := post(rf); st != 200 || m2["id_token"] == nil {
		t.Errorf("refresh: %d %v", st, m2)
	}
	s.RevokeSignInSessions(bob.OID)
	if st, m2 := post(rf); st != 400 || m2["error"] != "invalid_grant" {
		t.Errorf("refresh after revoke: %d %v", st, m2)
	}
	if st, m2 := post(url.Values{"grant_type": {"password"}, "client_id": {clientID}}); st != 400 || m2["error"] != "unsupported_grant_type" {
		t.Errorf("password grant: %d %v", st, m2)
	}
}

func claimsOf(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %q", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestClientCredentials(t *testing.T) {
	app := NewGUID()
	s := startT(t, Options{Clients: []Client{{ID: app, Secret: "s3cret"}}})
	tid := s.Tenants()[0]
	post := func(f url.Values) (int, map[string]any) {
		resp, err := http.PostForm(s.TokenEndpoint(tid), f)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	f := url.Values{"grant_type": {"client_credentials"}, "client_id": {app}, "client_secret": {"s3cret"}, "scope": {"https://graph.microsoft.com/.default"}}
	st, m := post(f)
	if st != 200 || m["access_token"] == nil || m["refresh_token"] != nil || m["id_token"] != nil {
		t.Fatalf("client credentials: %d %v", st, m)
	}
	c := claimsOf(t, m["access_token"].(string))
	if c["idtyp"] != "app" || c["aud"] != "https://graph.microsoft.com" || c["scp"] != nil {
		t.Errorf("app token claims %v", c)
	}
	f.Set("client_secret", "wrong")
	if st, m := post(f); st != 401 || m["error"] != "invalid_client" {
		t.Errorf("wrong secret: %d %v", st, m)
	}
	f.Set("client_secret", "s3cret")
	f.Set("scope", "User.Read")
	if st, m := post(f); st != 400 || m["error"] != "invalid_scope" {
		t.Errorf("scope without /.default: %d %v", st, m)
	}
}
