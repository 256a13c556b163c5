package azure

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func start(t *testing.T) *Server {
	t.Helper()
	s, err := Start(Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func call(t *testing.T, req *http.Request) (int, map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("body is not JSON: %s", b)
	}
	return resp.StatusCode, m
}

// TestDocumentedShapes checks the wire shapes the real services document.
func TestDocumentedShapes(t *testing.T) {
	s := start(t)
	s.SetSystemAssignedIdentity("sys")
	s.AddClientSecret("t1", "app", "pw")
	imds := func(hdr bool, query string) *http.Request {
		r, _ := http.NewRequest(http.MethodGet, s.URL()+IMDSTokenPath+"?"+query, nil)
		if hdr {
			r.Header.Set("Metadata", "true")
		}
		return r
	}
	entra := func(method string, form url.Values) *http.Request {
		r, _ := http.NewRequest(method, s.URL()+"/t1/oauth2/v2.0/token", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return r
	}
	cases := []struct {
		name       string
		req        *http.Request
		wantStatus int
		wantField  string // a field that must be present
		wantValue  string // ...with this value (when non-empty)
	}{
		{"imds ok, numbers as strings", imds(true, "api-version=2018-02-01&resource=https://ai.azure.com"), 200, "expires_in", "3599"},
		{"imds without Metadata header", imds(false, "api-version=2018-02-01&resource=https://ai.azure.com"), 400, "error_description", "Required metadata header not specified"},
		{"imds without api-version", imds(true, "resource=https://ai.azure.com"), 400, "error", "invalid_request"},
		{"imds unknown client_id", imds(true, "api-version=2018-02-01&resource=r&client_id=x"), 400, "error_description", "Identity not found"},
		{"entra secret ok", entra(http.MethodPost, url.Values{"grant_type": {"client_credentials"}, "client_id": {"app"}, "client_secret": {"pw"}, "scope": {"https://ai.azure.com/.default"}}), 200, "token_type", "Bearer"},
		{"entra bad secret", entra(http.MethodPost, url.Values{"grant_type": {"client_credentials"}, "client_id": {"app"}, "client_secret": {"no"}, "scope": {"https://ai.azure.com/.default"}}), 401, "error", "invalid_client"},
		{"entra unknown app", entra(http.MethodPost, url.Values{"grant_type": {"client_credentials"}, "client_id": {"nope"}, "client_secret": {"pw"}, "scope": {"https://ai.azure.com/.default"}}), 400, "error", "unauthorized_client"},
		{"entra GET", entra(http.MethodGet, nil), 400, "error_codes", ""},
		{"entra missing scope", entra(http.MethodPost, url.Values{"grant_type": {"client_credentials"}, "client_id": {"app"}, "client_secret": {"pw"}}), 400, "correlation_id", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, m := call(t, tc.req)
			if st != tc.wantStatus {
				t.Fatalf("status = %d, want %d (%v)", st, tc.wantStatus, m)
			}
			v, ok := m[tc.wantField]
			if !ok {
				t.Fatalf("field %q missing: %v", tc.wantField, m)
			}
			if tc.wantValue != "" {
				if s, isStr := v.(string); !isStr || s != tc.wantValue {
					t.Errorf("%s = %#v, want string %q", tc.wantField, v, tc.wantValue)
				}
			}
		})
	}
	// Tokens issued above are known, others are not.
	_, m := call(t, imds(true, "api-version=2018-02-01&resource=https://ai.azure.com/"))
	g, ok := s.Lookup(m["access_token"].(string))
	if !ok || g.Resource != "https://ai.azure.com" || g.ClientID != "sys" {
		t.Errorf("grant = %+v %v", g, ok)
	}
	if _, ok := s.Lookup("forged"); ok {
		t.Error("forged token accepted")
	}
	s.Revoke()
	if _, ok := s.Lookup(m["access_token"].(string)); ok {
		t.Error("revoked token accepted")
	}
}
