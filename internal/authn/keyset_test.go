package authn

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/fake/idp"
)

// tokenWithKID signs valid claims with the issuer's key but names kid.
func tokenWithKID(s *idp.Server, tid, aud, kid string) string {
	return s.Sign(tid, map[string]any{"typ": "JWT", "kid": kid}, s.Claims(tid, aud, s.DefaultUser(), time.Hour))
}

// Row 7: an unknown-kid flood costs at most one key refresh per cooldown,
// and tokens failing cheap checks cost none.
func TestUnknownKidFlood(t *testing.T) {
	e := newEnv(t, nil, nil)
	base := e.idp.JWKSFetches(e.tid)
	ctx := context.Background()
	good := e.idp.IDToken(e.tid, e.aud, e.idp.DefaultUser(), time.Hour)
	// Cheap failures first: wrong iss, wrong aud, expired, with random kids.
	for i := 0; i < 300; i++ {
		kid := fmt.Sprintf("cheap%d", i)
		c := e.idp.Claims(e.tid, e.aud, e.idp.DefaultUser(), time.Hour)
		switch i % 3 {
		case 0:
			c["iss"] = "https://evil.example/v2.0"
		case 1:
			c["aud"] = idp.NewGUID()
		case 2:
			c["exp"] = time.Now().Add(-time.Hour).Unix()
		}
		_, err := e.a.Verify(ctx, e.idp.Sign(e.tid, map[string]any{"kid": kid}, c))
		if err == nil {
			t.Fatal("accepted")
		}
	}
	if got := e.idp.JWKSFetches(e.tid) - base; got != 0 {
		t.Fatalf("cheap failures caused %d fetches", got)
	}
	// 2000 random kids from many goroutines: one refresh (the first miss).
	var wg sync.WaitGroup
	var unknown atomic.Int64
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 250; i++ {
				_, err := e.a.Verify(ctx, tokenWithKID(e.idp, e.tid, e.aud, fmt.Sprintf("g%dk%d", g, i)))
				if err != nil && err.Reason == ReasonUnknownKey {
					unknown.Add(1)
				}
			}
		}()
	}
	// Valid traffic is unaffected meanwhile.
	for i := 0; i < 50; i++ {
		if _, err := e.a.Verify(ctx, good); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if unknown.Load() != 2000 {
		t.Errorf("unknown_key %d/2000", unknown.Load())
	}
	if got := e.idp.JWKSFetches(e.tid) - base; got != 1 {
		t.Errorf("flood caused %d key set fetches, want 1", got)
	}
	// After the cooldown one more refresh is allowed, not more.
	e.clk.Add(5*time.Minute + time.Second)
	for i := 0; i < 100; i++ {
		e.a.Verify(ctx, tokenWithKID(e.idp, e.tid, e.aud, fmt.Sprintf("late%d", i)))
	}
	if got := e.idp.JWKSFetches(e.tid) - base; got != 2 {
		t.Errorf("after cooldown: %d fetches, want 2", got)
	}
}

// Row 9: rollover. A new kid is picked up by the first unknown-kid
// refresh; after an emergency rollover the removed key stops working, cached
// tokens included.
func TestKeyRotation(t *testing.T) {
	e := newEnv(t, nil, nil)
	ctx := context.Background()
	u := e.idp.DefaultUser()
	oldTok := e.idp.IDToken(e.tid, e.aud, u, time.Hour)
	if _, err := e.a.Verify(ctx, oldTok); err != nil {
		t.Fatal(err)
	}
	if _, err := e.idp.Rotate(e.tid, true); err != nil {
		t.Fatal(err)
	}
	newTok := e.idp.IDToken(e.tid, e.aud, u, time.Hour)
	if _, err := e.a.Verify(ctx, newTok); err != nil {
		t.Fatalf("token with the new kid: %v", err)
	}
	// Emergency: publish only a fresh key; the old key disappears.
	if _, err := e.idp.Rotate(e.tid, false); err != nil {
		t.Fatal(err)
	}
	e.clk.Add(6 * time.Minute) // cooldown passed
	newest := e.idp.IDToken(e.tid, e.aud, u, time.Hour)
	if _, err := e.a.Verify(ctx, newest); err != nil {
		t.Fatalf("token after emergency rollover: %v", err)
	}
	_, err := e.a.Verify(ctx, oldTok) // was cached
	if err == nil || err.Reason != ReasonUnknownKey {
		t.Fatalf("token of a removed key: %v", err)
	}
}

// Row 8: key set endpoint down, slow, huge or garbage: last known good
// keys keep working, memory stays bounded, fetches time out.
func TestKeySetFailuresKeepLastKnownGood(t *testing.T) {
	s := startIdP(t, idp.Options{})
	e := newEnv(t, s, func(o *Options) { o.FetchTimeout = 300 * time.Millisecond })
	ctx := context.Background()
	u := s.DefaultUser()
	for _, mode := range []idp.JWKSMode{idp.JWKS500, idp.JWKSGarbage, idp.JWKSHuge, idp.JWKSStall, idp.JWKSCustom} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			if mode == idp.JWKSCustom {
				s.SetJWKSBody(e.tid, []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"x"}]}`)) // no usable keys
			} else {
				s.SetJWKSMode(e.tid, mode)
			}
			e.clk.Add(6 * time.Minute)
			before := s.JWKSFetches(e.tid)
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			start := time.Now()
			_, err := e.a.Verify(ctx, tokenWithKID(s, e.tid, e.aud, "rotated-"+fmt.Sprint(mode)))
			if err == nil || err.Reason != ReasonUnknownKey {
				t.Fatalf("unknown kid during outage: %v", err)
			}
			if time.Since(start) > 3*time.Second {
				t.Errorf("refresh not bounded by the fetch timeout: %s", time.Since(start))
			}
			runtime.ReadMemStats(&m1)
			if mode == idp.JWKSHuge && m1.TotalAlloc-m0.TotalAlloc > 2<<20 {
				t.Errorf("huge key set allocated %d bytes", m1.TotalAlloc-m0.TotalAlloc)
			}
			if s.JWKSFetches(e.tid)-before != 1 {
				t.Errorf("fetches %d", s.JWKSFetches(e.tid)-before)
			}
			if _, err := e.a.Verify(ctx, s.IDToken(e.tid, e.aud, u, time.Hour)); err != nil {
				t.Fatalf("existing key stopped working during outage: %v", err)
			}
			if err := e.a.Ready(ctx); err != nil {
				t.Errorf("not ready with last known good keys: %v", err)
			}
		})
	}
	s.SetJWKSMode(e.tid, idp.JWKSNormal)
}

// New must not fail when the IdP is down; keys load in the background.
func TestIdPDownAtStart(t *testing.T) {
	s := startIdP(t, idp.Options{})
	tid := s.Tenants()[0]
	s.SetJWKSMode(tid, idp.JWKS500)
	aud := idp.NewGUID()
	a := newAuth(t, Options{Providers: []Provider{entraProvider(s, tid, aud)}})
	time.Sleep(100 * time.Millisecond)
	if err := a.Ready(context.Background()); err == nil {
		t.Fatal("ready without keys")
	}
	tok := s.IDToken(tid, aud, s.DefaultUser(), time.Hour)
	_, err := a.Verify(context.Background(), tok)
	if err == nil || err.Reason != ReasonKeysUnavailable || err.Status != 503 {
		t.Fatalf("no keys: %v", err)
	}
	s.SetJWKSMode(tid, idp.JWKSNormal)
	waitReady(t, a)
	if _, err := a.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
}

// Rows 25, 26: key hygiene in the published set, end to end.
func TestKeySetHygiene(t *testing.T) {
	s := startIdP(t, idp.Options{})
	tid := s.Tenants()[0]
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	wk, _ := idp.KeyFrom(weak)
	s.PublishKey(tid, wk)
	s.AddRawJWK(tid, map[string]any{"kty": "OKP", "crv": "X25519", "x": "abc", "kid": "okp"})
	s.AddRawJWK(tid, map[string]any{"kty": "oct", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", "kid": "oct"})
	s.AddRawJWK(tid, map[string]any{"kty": "FOO", "kid": "foo"})
	encKey, _ := idp.NewKey()
	jwk := encKey.JWK(s.Issuer(tid))
	jwk["use"] = "enc"
	s.AddRawJWK(tid, jwk)
	// Duplicate kid with different material.
	dupA, _ := idp.NewKey()
	dupB, _ := idp.NewKey()
	dupB.KID = dupA.KID
	s.PublishKey(tid, dupA)
	s.PublishKey(tid, dupB)
	// A key whose Entra issuer names another tenant.
	foreign, _ := idp.NewKey()
	fj := foreign.JWK(s.Issuer(idp.NewGUID()))
	s.AddRawJWK(tid, fj)
	e := newEnv(t, s, nil)
	ctx := context.Background()
	if _, err := e.a.Verify(ctx, s.IDToken(tid, e.aud, s.DefaultUser(), time.Hour)); err != nil {
		t.Fatalf("good key unusable next to odd keys: %v", err)
	}
	claims := s.Claims(tid, e.aud, s.DefaultUser(), time.Hour)
	for name, k := range map[string]*idp.Key{"1024-bit": wk, "enc": encKey, "ambiguous": dupA, "foreign issuer": foreign} {
		tok := idp.SignWith("RS256", k.Private, map[string]any{"alg": "RS256", "kid": k.KID, "typ": "JWT"}, claims)
		if _, err := e.a.Verify(ctx, tok); err == nil || err.Reason != ReasonUnknownKey {
			t.Errorf("%s key: %v", name, err)
		}
	}
	tok := idp.SignWith("HS256", []byte("secretsecretsecretsecretsecretse"), map[string]any{"alg": "HS256", "kid": "oct"}, claims)
	if _, err := e.a.Verify(ctx, tok); err == nil || err.Reason != ReasonUnsupportedAlg {
		t.Errorf("oct key: %v", err)
	}
}

func TestParseJWKSFilters(t *testing.T) {
	k, _ := idp.NewKey()
	good := k.JWK("")
	mk := func(edit func(m map[string]any)) map[string]any {
		m := map[string]any{}
		for n, v := range good {
			m[n] = v
		}
		edit(m)
		return m
	}
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	f := jwksFilter{algs: map[string]bool{"RS256": true}}
	cases := []struct {
		name string
		key  map[string]any
		ok   bool
	}{
		{"good", good, true},
		{"alg RS256", mk(func(m map[string]any) { m["alg"] = "RS256" }), true},
		{"alg RS512 not allowed", mk(func(m map[string]any) { m["alg"] = "RS512" }), false},
		{"alg HS256", mk(func(m map[string]any) { m["alg"] = "HS256" }), false},
		{"alg ES256 on RSA", mk(func(m map[string]any) { m["alg"] = "ES256" }), false},
		{"use enc", mk(func(m map[string]any) { m["use"] = "enc" }), false},
		{"key_ops sign only", mk(func(m map[string]any) { m["key_ops"] = []string{"sign"} }), false},
		{"key_ops verify", mk(func(m map[string]any) { m["key_ops"] = []string{"verify"} }), true},
		{"no kid", mk(func(m map[string]any) { delete(m, "kid") }), false},
		{"bad kid", mk(func(m map[string]any) { m["kid"] = "../x" }), false},
		{"e=1", mk(func(m map[string]any) { m["e"] = "AQ" }), false},
		{"e=3", mk(func(m map[string]any) { m["e"] = "Aw" }), false},
		{"1024 bits", mk(func(m map[string]any) {
			m["n"] = idp.PublicJWK(&weak.PublicKey, "w")["n"]
			delete(m, "x5c")
		}), false},
		{"x5c of another key", mk(func(m map[string]any) {
			o, _ := idp.NewKey()
			m["x5c"] = o.JWK("")["x5c"]
		}), false},
		{"private material", mk(func(m map[string]any) { m["d"] = "AQAB" }), false},
		{"oct", map[string]any{"kty": "oct", "k": "AAAA", "kid": "o"}, false},
		{"unknown kty", map[string]any{"kty": "XYZ", "kid": "z"}, false},
		{"garbage n", mk(func(m map[string]any) { m["n"] = "!!"; delete(m, "x5c") }), false},
	}
	for _, c := range cases {
		body, _ := json.Marshal(map[string]any{"keys": []any{c.key}})
		km, _, err := parseJWKS(body, f)
		if err != nil {
			t.Fatalf("%s: set error %v", c.name, err)
		}
		if got := len(km.keys) == 1; got != c.ok {
			t.Errorf("%s: usable=%v want %v", c.name, got, c.ok)
		}
	}
	for name, body := range map[string]string{
		"not object": `[]`, "no keys": `{}`, "keys not array": `{"keys":{}}`, "garbage": "\x00<html>",
		"duplicate keys member": `{"keys":[],"keys":[]}`,
	} {
		if _, _, err := parseJWKS([]byte(body), f); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	big := make([]byte, maxJWKSBytes+1)
	if _, _, err := parseJWKS(big, f); err == nil {
		t.Error("oversize set accepted")
	}
}

// The default client refuses cross-host redirects and ignores proxy env.
func TestDefaultHTTPClient(t *testing.T) {
	var hits atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer other.Close()
	redir := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/same" {
			http.Redirect(w, r, "/ok", http.StatusFound)
			return
		}
		if r.URL.Path == "/ok" {
			w.Write([]byte("ok"))
			return
		}
		http.Redirect(w, r, other.URL+"/x", http.StatusFound)
	}))
	defer redir.Close()
	t.Setenv("HTTP_PROXY", "http://127.0.0.1:1")
	c := DefaultHTTPClient()
	if _, err := c.Get(redir.URL + "/cross"); err == nil || hits.Load() != 0 {
		t.Errorf("cross-host redirect followed: %v hits %d", err, hits.Load())
	}
	resp, err := c.Get(redir.URL + "/same")
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("same-host redirect: %v", err)
	}
	if resp != nil {
		resp.Body.Close()
	}
	if c.Transport.(*http.Transport).Proxy != nil {
		t.Error("proxy from environment")
	}
}

// Discovery must announce exactly the configured issuer, and its jwks_uri
// must be https (or loopback http).
func TestDiscoveryChecks(t *testing.T) {
	for name, doc := range map[string]func(base string) map[string]any{
		"issuer mismatch": func(base string) map[string]any {
			return map[string]any{"issuer": base + "/other", "jwks_uri": base + "/keys"}
		},
		"jwks_uri http non-loopback": func(base string) map[string]any {
			return map[string]any{"issuer": base, "jwks_uri": "http://keys.example/keys"}
		},
	} {
		t.Run(name, func(t *testing.T) {
			var keyHits atomic.Int64
			var srv *httptest.Server
			srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/.well-known/openid-configuration" {
					json.NewEncoder(w).Encode(doc(srv.URL))
					return
				}
				keyHits.Add(1)
			}))
			defer srv.Close()
			a := newAuth(t, Options{Providers: []Provider{{Name: "g", Issuer: srv.URL, Audiences: []string{"x"}}}})
			time.Sleep(200 * time.Millisecond)
			if err := a.Ready(context.Background()); err == nil {
				t.Error("ready with a bad discovery document")
			}
			if keyHits.Load() != 0 {
				t.Errorf("fetched keys %d times", keyHits.Load())
			}
		})
	}
}

// Rows 5 and 6: key-source headers never cause a fetch of the URL they name.
func TestKeySourceHeadersNeverFetched(t *testing.T) {
	var hits atomic.Int64
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte(`{"keys":[]}`))
	}))
	defer attacker.Close()
	e := newEnv(t, nil, nil)
	atk, _ := rsa.GenerateKey(rand.Reader, 2048)
	claims := e.idp.Claims(e.tid, e.aud, e.idp.DefaultUser(), time.Hour)
	for _, h := range []map[string]any{
		{"alg": "RS256", "kid": "attacker", "jku": attacker.URL + "/keys"},
		{"alg": "RS256", "kid": "attacker", "x5u": attacker.URL + "/cert.pem"},
		{"alg": "RS256", "kid": "attacker", "jwk": idp.PublicJWK(&atk.PublicKey, "attacker")},
	} {
		_, err := e.a.Verify(context.Background(), idp.SignWith("RS256", atk, h, claims))
		if err == nil || err.Reason != ReasonForbiddenHeader || len(err.TokenSHA256) != 64 {
			t.Errorf("%v: %v", h, err)
		}
	}
	if hits.Load() != 0 {
		t.Errorf("attacker server hit %d times", hits.Load())
	}
}
