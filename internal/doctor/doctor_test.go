package doctor

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"go/parser"
	"go/token"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestRunKeepsGoingAndOrders(t *testing.T) {
	var started atomic.Int32
	block := make(chan struct{})
	defer close(block)
	checks := []Check{
		CheckFunc("slow-ok", func(ctx context.Context) Result {
			started.Add(1)
			time.Sleep(30 * time.Millisecond)
			return Okf("fine")
		}),
		CheckFunc("fails", func(context.Context) Result { started.Add(1); return Failf("do x", "broken") }),
		CheckFunc("hangs", func(ctx context.Context) Result { started.Add(1); <-block; return Okf("never") }),
		CheckFunc("panics", func(context.Context) Result { started.Add(1); panic("boom") }),
		CheckFunc("no-status", func(context.Context) Result { started.Add(1); return Result{Message: "hm"} }),
		CheckFunc("Bad_Name", func(context.Context) Result { return Okf("x") }),
		CheckFunc("fails", func(context.Context) Result { return Okf("duplicate") }),
	}
	rep := Run(context.Background(), checks, RunOptions{Timeout: 200 * time.Millisecond})
	want := []struct {
		name   string
		status Status
		msg    string
	}{
		{"slow-ok", OK, "fine"},
		{"fails", Fail, "broken"},
		{"hangs", Fail, "timed out after 200ms"},
		{"panics", Fail, "panicked: boom"},
		{"no-status", Fail, "no status"},
		{"Bad_Name", Fail, "not unique lower-kebab-case"},
		{"fails", Fail, "not unique"},
	}
	if len(rep.Entries) != len(want) {
		t.Fatalf("%d entries", len(rep.Entries))
	}
	for i, w := range want {
		e := rep.Entries[i]
		if e.Name != w.name || e.Status != w.status || !strings.Contains(e.Message, w.msg) {
			t.Errorf("entry %d = %s %s %q, want %s %s ~%q", i, e.Name, e.Status, e.Message, w.name, w.status, w.msg)
		}
	}
	if started.Load() != 5 {
		t.Errorf("%d checks ran, want 5", started.Load())
	}
	if !rep.Failed() || rep.Count(OK) != 1 || rep.Count(Fail) != 6 {
		t.Errorf("counts: ok %d fail %d", rep.Count(OK), rep.Count(Fail))
	}
}

func TestRunConcurrently(t *testing.T) {
	// Four checks that each wait for all four to have started: they only
	// finish if they run at the same time.
	var n atomic.Int32
	all := make(chan struct{})
	var checks []Check
	for i := range 4 {
		checks = append(checks, CheckFunc(fmt.Sprintf("c%d", i), func(ctx context.Context) Result {
			if n.Add(1) == 4 {
				close(all)
			}
			select {
			case <-all:
				return Okf("together")
			case <-ctx.Done():
				return Failf("", "alone")
			}
		}))
	}
	rep := Run(context.Background(), checks, RunOptions{Timeout: 5 * time.Second})
	if rep.Count(OK) != 4 {
		t.Errorf("checks did not run concurrently: %+v", rep.Entries)
	}
}

func TestReportText(t *testing.T) {
	rep := Report{Entries: []Entry{
		{Name: "a", Result: Okf("fine")},
		{Name: "longer-name", Result: Failf("do this\nthen that", "line one\nline two")},
		{Name: "w", Result: Warnf("tune it", "meh")},
		{Name: "s", Result: Result{Status: Skip, Message: "n/a", Fix: "not shown"}},
	}}
	var b bytes.Buffer
	if err := rep.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	want := `ok    a            fine
FAIL  longer-name  line one
                   line two
                   fix: do this
                        then that
warn  w            meh
                   fix: tune it
skip  s            n/a

4 checks: 1 ok, 1 warn, 1 fail, 1 skip: FAILED
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	rep.Entries[1].Duration = 1500 * time.Millisecond
	if err := rep.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var j struct {
		OK      bool
		Summary map[string]int
		Checks  []map[string]any
	}
	if err := json.Unmarshal(b.Bytes(), &j); err != nil {
		t.Fatal(err)
	}
	if j.OK || j.Summary["fail"] != 1 || j.Summary["ok"] != 1 || len(j.Checks) != 4 || j.Checks[1]["duration_ms"] != 1500.0 || j.Checks[1]["fix"] != "do this\nthen that" {
		t.Errorf("json: %s", b.String())
	}
}

func TestCheckIssuer(t *testing.T) {
	const tid = "11111111-2222-4333-8444-555555555555"
	cases := []struct {
		issuer string
		entra  bool
		status Status
		msg    string
	}{
		{"https://login.microsoftonline.com/" + tid + "/v2.0", true, OK, "nothing after /v2.0"},
		{"https://login.microsoftonline.com/" + tid + "/v2.0/.well-known/openid-configuration", true, Fail, "metadata URL"},
		{"https://login.microsoftonline.com/" + tid + "/v2.0/", true, Fail, "trailing slash"},
		{"https://login.microsoftonline.com/" + tid, true, Fail, "does not end at /v2.0"},
		{"https://login.microsoftonline.com/" + tid + "/oauth2/v2.0", true, Fail, "exactly one path segment"},
		{"https://login.microsoftonline.com/common/v2.0", true, Fail, "multi-tenant"},
		{"https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0", true, Fail, "by domain"},
		{"https://sts.windows.net/" + tid + "/", true, Fail, "v1 issuer"},
		{"https://login.microsoftonline.com/" + tid + "/v2.0?x=1", true, Fail, "query"},
		{"", true, Fail, "empty"},
		{"login.microsoftonline.com/" + tid + "/v2.0", true, Fail, "not an absolute URL"},
		{"http://idp.example.com/" + tid + "/v2.0", true, Fail, "not https"},
		{"http://127.0.0.1:9/" + tid + "/v2.0", true, OK, ""},
		{"https://contoso.okta.com/oauth2/default", false, OK, ""},
		{"https://contoso.okta.com/oauth2/default/.well-known/openid-configuration", false, Fail, "metadata URL"},
	}
	for _, c := range cases {
		r := CheckIssuer(c.issuer, c.entra)
		if r.Status != c.status || !strings.Contains(r.Message, c.msg) {
			t.Errorf("%q: %s %q, want %s ~%q", c.issuer, r.Status, r.Message, c.status, c.msg)
		}
		if r.Status == Fail && r.Fix == "" {
			t.Errorf("%q: failure without a fix", c.issuer)
		}
	}
	r := CheckIssuer("https://login.microsoftonline.com/"+tid+"/v2.0/.well-known/openid-configuration", true)
	if !strings.Contains(r.Fix, "https://login.microsoftonline.com/"+tid+"/v2.0 ") && !strings.Contains(r.Fix, "https://login.microsoftonline.com/"+tid+"/v2.0:") {
		t.Errorf("fix does not give the corrected issuer: %s", r.Fix)
	}
}

func rsaJWK(t testing.TB, bits int, kid string) map[string]any {
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{"kty": "RSA", "use": "sig", "kid": kid, "alg": "RS256",
		"n": base64.RawURLEncoding.EncodeToString(k.N.Bytes()), "e": "AQAB"}
}

func TestEvaluateJWKS(t *testing.T) {
	good := rsaJWK(t, 2048, "good")
	weak := rsaJWK(t, 1024, "weak")
	enc := map[string]any{"kty": "RSA", "use": "enc", "kid": "e", "n": good["n"], "e": "AQAB"}
	ec := map[string]any{"kty": "EC", "kid": "ec", "crv": "P-256"}
	nokid := map[string]any{"kty": "RSA", "n": good["n"], "e": "AQAB"}
	hs := map[string]any{"kty": "RSA", "kid": "h", "alg": "HS256", "n": good["n"], "e": "AQAB"}
	badn := map[string]any{"kty": "RSA", "kid": "b", "n": "!!", "e": "AQAB"}
	js := func(keys ...any) []byte { b, _ := json.Marshal(map[string]any{"keys": keys}); return b }
	cases := []struct {
		name   string
		data   []byte
		usable int
		total  int
		err    string
		prob   string
	}{
		{"good", js(good), 1, 1, "", ""},
		{"mixed", js(good, weak, enc, ec, nokid, hs, badn), 1, 7, "", "1024 bits"},
		{"weak only", js(weak), 0, 1, "", "< 2048"},
		{"empty", js(), 0, 0, "empty", ""},
		{"not json", []byte("<html>"), 0, 0, "not a JSON", ""},
		{"keys not array", []byte(`{"keys":{}}`), 0, 0, "not a JSON", ""},
	}
	for _, c := range cases {
		r, err := EvaluateJWKS(c.data)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: err %v, want %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || r.Usable != c.usable || r.Total != c.total || !strings.Contains(strings.Join(r.Problems, ";"), c.prob) {
			t.Errorf("%s: %+v %v", c.name, r, err)
		}
	}
	if r, _ := EvaluateJWKS(js(good, weak, enc, ec, nokid, hs, badn)); len(r.Problems) != 6 {
		t.Errorf("problems %v", r.Problems)
	}
}

func FuzzEvaluateJWKS(f *testing.F) {
	f.Add([]byte(`{"keys":[{"kty":"RSA","kid":"a","n":"AQAB","e":"AQAB"}]}`))
	f.Add([]byte(`{"keys":[]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC"},null,1,"x"]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := EvaluateJWKS(data)
		if err == nil && (r.Usable+len(r.Problems) != r.Total || r.Total == 0) {
			t.Fatalf("inconsistent report %+v", r)
		}
	})
}

func FuzzErrorMessage(f *testing.F) {
	f.Add([]byte(`{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}`))
	f.Add([]byte(`{"error":{"code":"DeploymentNotFound","message":"The API deployment for this resource does not exist."}}`))
	f.Add([]byte(`{"error":"invalid_tenant","error_description":"AADSTS90002: Tenant not found"}`))
	f.Add([]byte(`{"error":{"code":401,"message":"sk-ant-api03-leak \u001b[31m"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		m := errorMessage(body)
		if len(m) > 240+len("…") {
			t.Fatalf("message of %d bytes", len(m))
		}
		if ctrlRE.MatchString(m) || strings.Contains(strings.ToLower(m), "sk-ant-") {
			t.Fatalf("unsanitised message %q", m)
		}
	})
}

// idpServer serves discovery and keys like an OIDC provider.
func idpServer(t *testing.T, issuerOverride string, jwks []byte) (*httptest.Server, string) {
	t.Helper()
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/tid/v2.0/.well-known/openid-configuration":
			iss := srv.URL + "/tid/v2.0"
			if issuerOverride != "" {
				iss = issuerOverride
			}
			json.NewEncoder(w).Encode(map[string]string{"issuer": iss, "jwks_uri": srv.URL + "/keys"})
		case "/keys":
			w.Write(jwks)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, srv.URL + "/tid/v2.0"
}

func TestIdentityChecks(t *testing.T) {
	good, _ := json.Marshal(map[string]any{"keys": []any{rsaJWK(t, 2048, "k")}})
	weak, _ := json.Marshal(map[string]any{"keys": []any{rsaJWK(t, 1024, "k")}})
	ctx := context.Background()

	_, iss := idpServer(t, "", good)
	id := NewIdentity(IdentityOptions{Issuer: iss})
	if r := id.Discovery().Run(ctx); r.Status != OK {
		t.Errorf("discovery: %+v", r)
	}
	if r := id.JWKS().Run(ctx); r.Status != OK || !strings.Contains(r.Message, "1 of 1") {
		t.Errorf("jwks: %+v", r)
	}

	_, iss = idpServer(t, "https://other.example/v2.0", weak)
	id = NewIdentity(IdentityOptions{Issuer: iss})
	if r := id.Discovery().Run(ctx); r.Status != Fail || !strings.Contains(r.Fix, "https://other.example/v2.0") {
		t.Errorf("issuer mismatch: %+v", r)
	}
	if r := id.JWKS().Run(ctx); r.Status != Fail || !strings.Contains(r.Message, "none usable") {
		t.Errorf("weak keys: %+v", r)
	}

	_, iss = idpServer(t, "", good)
	id = NewIdentity(IdentityOptions{Issuer: iss + "/nope"})
	if r := id.Discovery().Run(ctx); r.Status != Fail || !strings.Contains(r.Message, "404") {
		t.Errorf("404: %+v", r)
	}
	if r := id.JWKS().Run(ctx); r.Status != Skip {
		t.Errorf("jwks after failed discovery: %+v", r)
	}
}

func TestAudience(t *testing.T) {
	const cid = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
	const iss = "https://login.microsoftonline.com/11111111-2222-4333-8444-555555555555/v2.0"
	cases := []struct {
		name   string
		o      IdentityOptions
		status Status
		msg    string
	}{
		{"bare guid", IdentityOptions{Entra: true, Audiences: []string{cid}}, OK, "no --profile"},
		{"api uri", IdentityOptions{Entra: true, Audiences: []string{"api://" + cid}}, Warn, "api://"},
		{"empty", IdentityOptions{Entra: true}, Fail, "empty"},
		{"profile matches", IdentityOptions{Issuer: iss, Entra: true, Audiences: []string{cid}, Profiles: []Profile{{Path: "d.json", ClientID: cid, Issuer: iss, TokenType: "id_token"}}}, OK, "accepted"},
		{"profile other client", IdentityOptions{Issuer: iss, Entra: true, Audiences: []string{cid}, Profiles: []Profile{{Path: "d.json", ClientID: "99999999-bbbb-4ccc-8ddd-eeeeeeeeeeee", Issuer: iss, TokenType: "id_token"}}}, Fail, "not in identity.audiences"},
		{"profile other issuer", IdentityOptions{Issuer: iss, Entra: true, Audiences: []string{cid}, Profiles: []Profile{{Path: "d.json", ClientID: cid, Issuer: iss + "/", TokenType: "id_token"}}}, Fail, "differs from identity.issuer"},
		{"access token mode", IdentityOptions{Issuer: iss, Entra: true, Audiences: []string{cid}, Profiles: []Profile{{Path: "d.json", ClientID: "99999999-bbbb-4ccc-8ddd-eeeeeeeeeeee", Issuer: iss, TokenType: "access_token"}}}, OK, "access tokens"},
		{"gateway url differs", IdentityOptions{Issuer: iss, Entra: true, Audiences: []string{cid}, PublicURL: "https://gw.example", Profiles: []Profile{{Path: "d.json", ClientID: cid, Issuer: iss, GatewayURL: "https://other.example"}}}, Warn, "differs from public_url"},
		{"unreadable profile", IdentityOptions{Entra: true, Audiences: []string{cid}, ProfileProblems: []string{"x.reg: bad"}}, Fail, "x.reg: bad"},
	}
	for _, c := range cases {
		r := NewIdentity(c.o).Audience().Run(context.Background())
		if r.Status != c.status || !strings.Contains(r.Message, c.msg) {
			t.Errorf("%s: %s %q", c.name, r.Status, r.Message)
		}
		if (r.Status == Fail || r.Status == Warn) && r.Fix == "" {
			t.Errorf("%s: no fix", c.name)
		}
	}
}

// staticCred is a test credential.
type staticCred struct {
	key string
	err error
}

func (s staticCred) Apply(_ context.Context, r *http.Request) error {
	if s.err != nil {
		return s.err
	}
	r.Header.Set("x-api-key", s.key)
	return nil
}

func TestUpstreamClassification(t *testing.T) {
	type reply struct{ count, messages int }
	cases := []struct {
		name   string
		reply  reply
		cred   staticCred
		kind   string
		status Status
		msg    string
		fix    string
	}{
		{"ok", reply{200, 200}, staticCred{key: "k"}, "api_key", OK, "count_tokens", ""},
		{"401", reply{401, 401}, staticCred{key: "sk-ant-api03-badkey"}, "api_key", Fail, "credential rejected", "api_key"},
		{"403 managed identity", reply{403, 403}, staticCred{key: "k"}, "managed_identity", Fail, "credential rejected", "Cognitive Services User"},
		{"count_tokens 404, messages ok", reply{404, 200}, staticCred{key: "k"}, "api_key", OK, "count_tokens is not served here", ""},
		{"404 both", reply{404, 404}, staticCred{key: "k"}, "api_key", Fail, "deployment/path not found: POST", "deployment"},
		{"429", reply{429, 429}, staticCred{key: "k"}, "api_key", Warn, "accepted", ""},
		{"500", reply{500, 500}, staticCred{key: "k"}, "api_key", Warn, "not confirmed", ""},
		{"400", reply{400, 400}, staticCred{key: "k"}, "api_key", Warn, "accepted, but", ""},
		{"no token", reply{200, 200}, staticCred{err: fmt.Errorf("IMDS unreachable")}, "managed_identity", Fail, "could not obtain", "managed identity"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var paths []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				paths = append(paths, r.URL.Path)
				st := c.reply.messages
				if strings.HasSuffix(r.URL.Path, "count_tokens") {
					st = c.reply.count
				}
				w.WriteHeader(st)
				fmt.Fprintf(w, `{"type":"error","error":{"type":"x","message":"echo %s"}}`, r.Header.Get("x-api-key"))
			}))
			defer srv.Close()
			r := Upstream(UpstreamOptions{Name: "primary", Provider: "foundry", BaseURL: srv.URL + "/anthropic", Model: "dep", Credential: c.cred, CredentialKind: c.kind}).Run(context.Background())
			if r.Status != c.status || !strings.Contains(r.Message, c.msg) || !strings.Contains(r.Fix, c.fix) {
				t.Errorf("%s %q fix %q", r.Status, r.Message, r.Fix)
			}
			if c.cred.err == nil && (len(paths) == 0 || paths[0] != "/anthropic/v1/messages/count_tokens") {
				t.Errorf("paths %v", paths)
			}
			if strings.Contains(r.Message, "sk-ant-api03") {
				t.Error("an echoed key was not redacted")
			}
		})
	}
	r := Upstream(UpstreamOptions{Name: "x", BaseURL: "http://127.0.0.1:1"}).Run(context.Background())
	if r.Status != Skip {
		t.Errorf("no credential: %+v", r)
	}
	if n := Upstream(UpstreamOptions{Name: "Azure_East.1"}).Name(); n != "upstream-azure-east-1" {
		t.Errorf("name %q", n)
	}
}

func TestSanitize(t *testing.T) {
	in := "bad key sk-ant-api03-abcdef and token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.sig and 0123456789abcdef0123456789abcdef\x1b[31m"
	out := sanitize(in, 500)
	for _, leak := range []string{"sk-ant-api03", "eyJhbGci", "0123456789abcdef0123", "\x1b"} {
		if strings.Contains(out, leak) {
			t.Errorf("%q leaks %q", out, leak)
		}
	}
}

func TestGatewayModelsDeadline(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/models" {
			select {
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
			}
		}
		w.WriteHeader(401)
	}))
	defer srv.Close()
	g := NewGateway(GatewayOptions{Candidates: []string{srv.URL}, ModelsDeadline: 100 * time.Millisecond})
	r := g.Checks()[1].Run(context.Background())
	if r.Status != Fail || !strings.Contains(r.Message, "did not answer within 100ms") {
		t.Errorf("%+v", r)
	}
}

func TestClockSkew(t *testing.T) {
	skewed := func(d time.Duration) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Date", time.Now().Add(d).UTC().Format(http.TimeFormat))
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	cases := []struct {
		skew   time.Duration
		status Status
		msg    string
	}{
		{0, OK, "tolerance 1m0s"},
		{40 * time.Second, Warn, "behind"},
		{-3 * time.Minute, Fail, "ahead of"},
	}
	for _, c := range cases {
		r := ClockSkew(ClockOptions{URLs: []string{"http://127.0.0.1:1", skewed(c.skew)}}).Run(context.Background())
		if r.Status != c.status || !strings.Contains(r.Message, c.msg) {
			t.Errorf("skew %s: %+v", c.skew, r)
		}
	}
	if r := ClockSkew(ClockOptions{}).Run(context.Background()); r.Status != Skip {
		t.Errorf("no URL: %+v", r)
	}
	s, u := Skew(time.Unix(100, 0), time.Unix(100, 0).Add(200*time.Millisecond), time.Unix(110, 0))
	if s != 10*time.Second+400*time.Millisecond || u != 600*time.Millisecond {
		t.Errorf("Skew = %s ± %s", s, u)
	}
}

// tlsServer serves TLS with a certificate for host valid until notAfter,
// signed by a fresh CA; it returns the URL and the CA pool.
func tlsServer(t *testing.T, host string, notAfter time.Time) (string, *x509.CertPool) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(10 * 365 * 24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: host}, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: notAfter,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der, caDER}, PrivateKey: key}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return srv.URL, pool
}

func TestTLSExpiry(t *testing.T) {
	day := 24 * time.Hour
	cases := []struct {
		name     string
		host     string
		notAfter time.Duration
		trust    bool
		status   Status
		msg      string
	}{
		{"valid", "127.0.0.1", 90 * day, true, OK, "valid for"},
		{"expiring", "127.0.0.1", 10 * day, true, Warn, "expires in"},
		{"expired", "127.0.0.1", -day, true, Fail, "EXPIRED"},
		{"wrong name", "gateway.example", 90 * day, true, Fail, "does not name 127.0.0.1"},
		{"untrusted", "127.0.0.1", 90 * day, false, Fail, "not trusted"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u, pool := tlsServer(t, c.host, time.Now().Add(c.notAfter))
			if !c.trust {
				pool = x509.NewCertPool()
			}
			r := TLSExpiry(TLSOptions{URLs: []string{u, u + "/again", "http://plain.example"}, Roots: pool}).Run(context.Background())
			if r.Status != c.status || !strings.Contains(r.Message, c.msg) || strings.Count(r.Message, "\n") != 0 {
				t.Errorf("%s %q", r.Status, r.Message)
			}
			if r.Status != OK && r.Fix == "" {
				t.Error("no fix")
			}
		})
	}
	if r := TLSExpiry(TLSOptions{URLs: []string{"http://x"}}).Run(context.Background()); r.Status != Skip {
		t.Errorf("http only: %+v", r)
	}
}

func TestAuditSQLite(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	if r := AuditSQLite(filepath.Join(dir, "audit.db")).Run(ctx); r.Status != OK || !strings.Contains(r.Message, "will be created") {
		t.Errorf("new db: %+v", r)
	}
	if r := AuditSQLite(filepath.Join(dir, "sub", "deeper", "audit.db")).Run(ctx); r.Status != OK || !strings.Contains(r.Message, "will create it") {
		t.Errorf("missing dir: %+v", r)
	}
	os.WriteFile(filepath.Join(dir, "audit.db"), nil, 0o600)
	os.Mkdir(filepath.Join(dir, "audit.db.journal"), 0o700)
	if r := AuditSQLite(filepath.Join(dir, "audit.db")).Run(ctx); r.Status != OK || !strings.Contains(r.Message, "journal writable") {
		t.Errorf("existing db: %+v", r)
	}
	file := filepath.Join(dir, "afile")
	os.WriteFile(file, nil, 0o600)
	if r := AuditSQLite(filepath.Join(file, "audit.db")).Run(ctx); r.Status != Fail {
		t.Errorf("parent is a file: %+v", r)
	}
	if r := AuditSQLite("").Run(ctx); r.Status != Skip {
		t.Errorf("unset: %+v", r)
	}
	if os.Geteuid() != 0 { // root writes anywhere
		ro := filepath.Join(dir, "ro")
		os.Mkdir(ro, 0o500)
		if r := AuditSQLite(filepath.Join(ro, "audit.db")).Run(ctx); r.Status != Fail || !strings.Contains(r.Fix, "writable") {
			t.Errorf("read-only dir: %+v", r)
		}
	}
}

func TestStores(t *testing.T) {
	ctx := context.Background()
	if r := Redis("", "").Run(ctx); r.Status != Skip {
		t.Errorf("redis unset: %+v", r)
	}
	if r := Redis("redis://127.0.0.1:1/0", "").Run(ctx); r.Status != Fail || !strings.Contains(r.Message, "127.0.0.1:1") {
		t.Errorf("redis down: %+v", r)
	}
	if r := Redis("::nope", "").Run(ctx); r.Status != Fail {
		t.Errorf("redis bad url: %+v", r)
	}
	if r := Postgres("audit", "postgres://u:secretpw@127.0.0.1:1/db?sslmode=disable").Run(ctx); r.Status != Fail || strings.Contains(r.Message, "secretpw") || !strings.Contains(r.Message, "127.0.0.1:1/db") {
		t.Errorf("postgres down: %+v", r)
	}
	redisURL, pgDSN := os.Getenv("GATEHOUSE_TEST_REDIS_URL"), os.Getenv("GATEHOUSE_TEST_POSTGRES_DSN")
	if redisURL == "" || pgDSN == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("CI must set GATEHOUSE_TEST_REDIS_URL and GATEHOUSE_TEST_POSTGRES_DSN")
		}
		t.Skip("GATEHOUSE_TEST_REDIS_URL / GATEHOUSE_TEST_POSTGRES_DSN unset: skipping the live Redis and PostgreSQL checks")
	}
	if r := Redis(redisURL, "").Run(ctx); r.Status != OK {
		t.Errorf("redis: %+v", r)
	}
	if r := Postgres("state", pgDSN).Run(ctx); r.Status != OK || !strings.Contains(r.Message, "accepts writes") || Postgres("state", pgDSN).Name() != "postgres-state" {
		t.Errorf("postgres: %+v", r)
	}
}

func TestGatewayHealth(t *testing.T) {
	ready := atomic.Bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" && !ready.Load() {
			w.WriteHeader(503)
			fmt.Fprint(w, "not ready\nidentity: no signing keys yet\n")
			return
		}
		w.WriteHeader(200)
	}))
	defer srv.Close()
	health := func(o GatewayOptions) Result { return NewGateway(o).Checks()[0].Run(context.Background()) }
	if r := health(GatewayOptions{Candidates: []string{srv.URL}}); r.Status != Fail || !strings.Contains(r.Message, "no signing keys yet") {
		t.Errorf("not ready: %+v", r)
	}
	ready.Store(true)
	// The first candidate is down: the second is used.
	if r := health(GatewayOptions{Candidates: []string{"http://127.0.0.1:1", srv.URL}}); r.Status != OK || !strings.Contains(r.Message, srv.URL) {
		t.Errorf("second candidate: %+v", r)
	}
	if r := health(GatewayOptions{Candidates: []string{"http://127.0.0.1:1"}}); r.Status != Skip {
		t.Errorf("optional gateway down: %+v", r)
	}
	if r := health(GatewayOptions{Candidates: []string{"http://127.0.0.1:1"}, Required: true}); r.Status != Fail {
		t.Errorf("required gateway down: %+v", r)
	}
	g := NewGateway(GatewayOptions{Candidates: []string{"http://127.0.0.1:1"}})
	for _, c := range g.Checks()[1:5] {
		if r := c.Run(context.Background()); r.Status != Skip || !strings.Contains(r.Message, "see gateway-health") {
			t.Errorf("%s without a gateway: %+v", c.Name(), r)
		}
	}
}

// TestImports guards the package's place in the architecture: doctor does
// not know the configuration schema (internal/cli maps it), does not import
// the server it diagnoses, and production code does not import httptest.
func TestImports(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			switch {
			case p == "github.com/gatehouse-dev/gatehouse/internal/config",
				p == "github.com/gatehouse-dev/gatehouse/internal/server",
				p == "github.com/gatehouse-dev/gatehouse/internal/cli",
				p == "net/http/httptest":
				t.Errorf("%s imports %s", f, p)
			}
		}
	}
}
