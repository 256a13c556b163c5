package authn

import (
	"net/http"
	"strings"
	"testing"
)

// Seed corpora live in testdata/fuzz/<FuzzName>/ (go test's format); the
// f.Add seeds below cover the same ground for runs without testdata.

// FuzzParseToken: the pre-parser must never panic, must refuse anything
// that is not a three-segment compact JWS, and must bound its work.
func FuzzParseToken(f *testing.F) {
	for _, s := range []string{
		jwtA, "", ".", "..", "a.b.c", "eyJhbGciOiJub25lIn0.e30.",
		"eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJpc3MiOiJ4IiwiYXVkIjoieSIsImV4cCI6MX0.c2ln",
		"eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIiwiYWxnIjoibm9uZSJ9.e30.c2ln",
		"eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIiwiamt1IjoiaHR0cDovL3gifQ.e30.c2ln",
		`{"payload":"e30","signatures":[]}`, strings.Repeat(".", 1000), strings.Repeat("A", 5000) + ".e30.c2ln",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := parseToken(s)
		if (tok == nil) == (err == nil) {
			t.Fatalf("exactly one of token and error must be set: %v %v", tok, err)
		}
		if err != nil {
			if !validReason(err.Reason) {
				t.Fatalf("unknown reason %q", err.Reason)
			}
			return
		}
		if strings.Count(s, ".") != 2 || len(s) > MaxTokenBytes || !supportedAlgs[tok.alg] || !validKID(tok.kid) || tok.iss == "" || len(tok.aud) == 0 {
			t.Fatalf("accepted %q", s)
		}
	})
}

// FuzzParseJWKS: the key set parser must never panic and only ever keep
// keys that pass the filters.
func FuzzParseJWKS(f *testing.F) {
	for _, s := range []string{
		`{"keys":[]}`, `{}`, `[]`, `{"keys":{}}`, `{"keys":[{"kty":"RSA","kid":"a","n":"AQAB","e":"AQAB"}]}`,
		`{"keys":[{"kty":"EC","crv":"P-256","kid":"e","x":"04N0xi21hshyvBp7I167sbE_bXqyqkAPfefdklMO7wY","y":"UI8exy-C06a7DUnjIdENkxeFtHM4-l_41LqEw9nVgmw"}]}`,
		`{"keys":[{"kty":"oct","k":"AAAA","kid":"o"},{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"k"}]}`,
		`{"keys":[{"kty":"RSA","kid":"d","use":"enc"},{"kty":"RSA","kid":"d","key_ops":["sign"]}]}`,
		`{"keys":[1,"x",null,true,{"kid":1}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		km, _, err := parseJWKS(b, jwksFilter{algs: map[string]bool{"RS256": true, "ES256": true}})
		if err != nil {
			return
		}
		for kid, k := range km.keys {
			if !validKID(kid) || k.key == nil || km.ambiguous[kid] {
				t.Fatalf("kept bad key %q", kid)
			}
		}
	})
}

// FuzzExtractCredential: header extraction never panics, returns exactly
// one of credential and error, and never returns a credential that was not
// in a header.
func FuzzExtractCredential(f *testing.F) {
	for _, c := range [][3]string{
		{"Bearer " + jwtA, "", ""}, {"", jwtA, ""}, {"Bearer dummy", jwtA, ""}, {"Bearer " + jwtA, jwtB, ""},
		{"Bearer " + jwtA, "", "Bearer " + jwtA}, {"Basic dTpw", "", ""}, {"bearer\t" + jwtA, "", ""}, {"", "", ""},
	} {
		f.Add(c[0], c[1], c[2])
	}
	f.Fuzz(func(t *testing.T, authz, key, authz2 string) {
		h := http.Header{}
		if authz != "" {
			h.Add("Authorization", authz)
		}
		if key != "" {
			h.Add("X-Api-Key", key)
		}
		if authz2 != "" {
			h.Add("Authorization", authz2)
		}
		got, err := ExtractCredential(h)
		if (err == nil && got == "") || (err != nil && got != "") {
			t.Fatalf("credential %q and error %v", got, err)
		}
		if err != nil {
			if !validReason(err.Reason) {
				t.Fatalf("unknown reason %q", err.Reason)
			}
			return
		}
		if !strings.Contains(authz, got) && !strings.Contains(key, got) {
			t.Fatalf("credential %q not taken from a header", got)
		}
		if authz2 != "" && authz != "" {
			t.Fatalf("two Authorization headers accepted")
		}
	})
}

func validReason(r string) bool {
	_, ok := reasonInfo[r]
	return ok
}
