package authn

import (
	"net/http"
	"strings"
	"testing"
)

const (
	jwtA = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJhIn0.c2ln"
	jwtB = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJiIn0.c2ln"
)

func TestExtractCredential(t *testing.T) {
	cases := []struct {
		name   string
		h      http.Header
		want   string
		reason string
	}{
		{"bearer", http.Header{"Authorization": {"Bearer " + jwtA}}, jwtA, ""},
		{"bearer lower case", http.Header{"Authorization": {"bearer " + jwtA}}, jwtA, ""},
		{"bearer upper case", http.Header{"Authorization": {"BEARER " + jwtA}}, jwtA, ""},
		{"bearer extra spaces", http.Header{"Authorization": {"Bearer   " + jwtA + " "}}, jwtA, ""},
		{"x-api-key", http.Header{"X-Api-Key": {jwtA}}, jwtA, ""},
		{"both equal", http.Header{"Authorization": {"Bearer " + jwtA}, "X-Api-Key": {jwtA}}, jwtA, ""},
		{"dummy bearer, jwt key", http.Header{"Authorization": {"Bearer dummy"}, "X-Api-Key": {jwtA}}, jwtA, ""},
		{"jwt bearer, dummy key", http.Header{"Authorization": {"Bearer " + jwtA}, "X-Api-Key": {"dummy"}}, jwtA, ""},
		{"basic auth, jwt key", http.Header{"Authorization": {"Basic dTpw"}, "X-Api-Key": {jwtA}}, jwtA, ""},
		{"empty bearer, jwt key", http.Header{"Authorization": {"Bearer "}, "X-Api-Key": {jwtA}}, jwtA, ""},
		{"two different jwts", http.Header{"Authorization": {"Bearer " + jwtA}, "X-Api-Key": {jwtB}}, "", ReasonAmbiguousCredential},
		{"two authorization headers", http.Header{"Authorization": {"Bearer " + jwtA, "Bearer " + jwtA}}, "", ReasonAmbiguousCredential},
		{"two api keys", http.Header{"X-Api-Key": {jwtA, jwtB}}, "", ReasonAmbiguousCredential},
		{"nothing", http.Header{}, "", ReasonMissingCredential},
		{"empty values", http.Header{"Authorization": {""}, "X-Api-Key": {""}}, "", ReasonMissingCredential},
		{"only dummy bearer", http.Header{"Authorization": {"Bearer dummy"}}, "dummy", ""},
		{"only basic", http.Header{"Authorization": {"Basic dTpw"}}, "", ReasonMalformedToken},
		{"two placeholders", http.Header{"Authorization": {"Bearer dummy"}, "X-Api-Key": {"other"}}, "", ReasonMalformedToken},
		{"oversize", http.Header{"Authorization": {"Bearer " + strings.Repeat("a", MaxTokenBytes+1)}}, "", ReasonMalformedToken},
		{"api-key header is not ours", http.Header{"Api-Key": {jwtA}}, "", ReasonMissingCredential},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ExtractCredential(c.h)
			if c.reason != "" {
				if err == nil || err.Reason != c.reason {
					t.Fatalf("got %q %v, want %s", got, err, c.reason)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %q %v, want %q", got, err, c.want)
			}
		})
	}
}

func TestJWTShaped(t *testing.T) {
	for s, want := range map[string]bool{
		jwtA: true, "a.b.c": true, "a..c": false, ".b.c": false, "a.b.": false, "a.b": false, "a.b.c.d": false,
		"dummy": false, "a.b.c=": false, "a b.c.d": false, "": false, "{\"a\":1}": false,
	} {
		if got := jwtShaped(s); got != want {
			t.Errorf("jwtShaped(%q) = %v", s, got)
		}
	}
}
