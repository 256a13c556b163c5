package credential_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/credential"
	"github.com/gatehouse-dev/gatehouse/internal/fake/azure"
)

const (
	tenant   = "11111111-2222-3333-4444-555555555555"
	appID    = "aaaaaaaa-0000-0000-0000-000000000001"
	systemMI = "bbbbbbbb-0000-0000-0000-000000000001"
	userMI   = "cccccccc-0000-0000-0000-000000000001"
	// userMIRes is userMI's ARM resource id.
	userMIRes = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/gatehouse"
)

// clock is a settable time source shared by the fake and the credential.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)} }
func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func startFake(t *testing.T, clk *clock, lifetime time.Duration) *azure.Server {
	t.Helper()
	o := azure.Options{TokenLifetime: lifetime}
	if clk != nil {
		o.Now = clk.Now
	}
	s, err := azure.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// syncBuffer is a log sink safe for the background refresh goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func fastOpts(clk *clock, logs *syncBuffer) credential.TokenOptions {
	o := credential.TokenOptions{RetryDelay: time.Millisecond, FailureBackoff: 10 * time.Second}
	if clk != nil {
		o.Now = clk.Now
	}
	if logs != nil {
		o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return o
}

func bearer(t *testing.T, c credential.Credential) (string, error) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "https://example.invalid/v1/messages", nil)
	if err := c.Apply(context.Background(), req); err != nil {
		return "", err
	}
	v := req.Header.Get("Authorization")
	if !strings.HasPrefix(v, "Bearer ") {
		t.Fatalf("Authorization = %q, want a bearer", v)
	}
	return strings.TrimPrefix(v, "Bearer "), nil
}

func TestStatic(t *testing.T) {
	cases := []struct {
		provider, header string
	}{
		{"anthropic", "x-api-key"},
		{"foundry", "api-key"},
	}
	for _, tc := range cases {
		k, err := credential.NewStaticKey(tc.provider, "sk-canary-123")
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodPost, "https://x.invalid/", nil)
		req.Header.Set(tc.header, "user-supplied")
		if err := k.Apply(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		if got := req.Header.Values(tc.header); len(got) != 1 || got[0] != "sk-canary-123" {
			t.Errorf("%s: %s = %q", tc.provider, tc.header, got)
		}
		if strings.Contains(k.String(), "canary") {
			t.Errorf("String leaks the key: %s", k)
		}
	}
	if _, err := credential.NewStaticKey("openai", "k"); err == nil {
		t.Error("unknown provider accepted")
	}
	if _, err := credential.NewStaticKey("foundry", ""); err == nil {
		t.Error("empty key accepted")
	}
	b, err := credential.NewStaticBearer("oauth-canary")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := bearer(t, b); got != "oauth-canary" {
		t.Errorf("bearer = %q", got)
	}
	if strings.Contains(b.String(), "canary") {
		t.Error("String leaks the token")
	}
}

func TestResourceFromScope(t *testing.T) {
	for in, want := range map[string]string{
		"https://ai.azure.com/.default":                "https://ai.azure.com",
		"https://cognitiveservices.azure.com/.default": "https://cognitiveservices.azure.com",
		"https://ai.azure.com":                         "https://ai.azure.com",
	} {
		if got := credential.ResourceFromScope(in); got != want {
			t.Errorf("ResourceFromScope(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestManagedIdentityIMDS(t *testing.T) {
	f := startFake(t, nil, 0)
	f.SetSystemAssignedIdentity(systemMI)
	f.AddUserAssignedIdentity(userMI, userMIRes)

	cases := []struct {
		name, clientID, resID, scope string
		wantClient, wantRes          string
		wantStatus                   int
	}{
		{"system assigned, default scope", "", "", "", systemMI, "https://ai.azure.com", 0},
		{"user assigned", userMI, "", "", userMI, "https://ai.azure.com", 0},
		{"user assigned by resource id", "", userMIRes, "", userMI, "https://ai.azure.com", 0},
		{"cognitive services scope", "", "", "https://cognitiveservices.azure.com/.default", systemMI, "https://cognitiveservices.azure.com", 0},
		{"unknown identity", "dddddddd-0000-0000-0000-000000000000", "", "", "", "", 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := f.Requests(azure.IMDS)
			c, err := credential.NewManagedIdentity(credential.ManagedIdentityOptions{
				TokenOptions: fastOpts(nil, nil), ClientID: tc.clientID, ResourceID: tc.resID, Scope: tc.scope, IMDSEndpoint: f.URL(),
			})
			if err != nil {
				t.Fatal(err)
			}
			tok, err := bearer(t, c)
			if tc.wantStatus != 0 {
				var ce *credential.Error
				if !errors.As(err, &ce) || ce.Status != tc.wantStatus || !errors.Is(err, credential.ErrNoToken) {
					t.Fatalf("err = %v, want *Error with status %d", err, tc.wantStatus)
				}
				if !strings.Contains(err.Error(), "Identity not found") || !strings.Contains(err.Error(), "IMDS") {
					t.Errorf("error does not say why: %v", err)
				}
				if n := f.Requests(azure.IMDS) - before; n != 1 {
					t.Errorf("a 400 was retried: %d requests", n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			g, ok := f.Lookup(tok)
			if !ok || g.Method != "imds" || g.ClientID != tc.wantClient || g.Resource != tc.wantRes {
				t.Errorf("grant = %+v, %v; want client %s resource %s", g, ok, tc.wantClient, tc.wantRes)
			}
		})
	}
}

func TestManagedIdentityIMDSRetries(t *testing.T) {
	f := startFake(t, nil, 0)
	f.SetSystemAssignedIdentity(systemMI)
	// 404, 410, 429 and 5xx are retried; the fifth attempt succeeds.
	f.Inject(azure.IMDS, azure.Fault{Status: 404}, azure.Fault{Status: 410}, azure.Fault{Status: 429, RetryAfter: "0"}, azure.Fault{Status: 503})
	c, err := credential.NewManagedIdentity(credential.ManagedIdentityOptions{TokenOptions: fastOpts(nil, nil), IMDSEndpoint: f.URL()})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := bearer(t, c)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Lookup(tok); !ok {
		t.Error("token not issued by the fake")
	}
	if n := f.Requests(azure.IMDS); n != 5 {
		t.Errorf("requests = %d, want 5", n)
	}

	// Exhausted retries surface the last status.
	f2 := startFake(t, nil, 0)
	f2.SetSystemAssignedIdentity(systemMI)
	f2.Inject(azure.IMDS, azure.Fault{Status: 500}, azure.Fault{Status: 500}, azure.Fault{Status: 500})
	o := fastOpts(nil, nil)
	o.MaxAttempts = 3
	c2, _ := credential.NewManagedIdentity(credential.ManagedIdentityOptions{TokenOptions: o, IMDSEndpoint: f2.URL()})
	_, err = bearer(t, c2)
	var ce *credential.Error
	if !errors.As(err, &ce) || ce.Status != 500 || ce.Code != "unknown" {
		t.Fatalf("err = %#v", err)
	}
	if n := f2.Requests(azure.IMDS); n != 3 {
		t.Errorf("requests = %d, want 3", n)
	}
}

func TestManagedIdentityAppService(t *testing.T) {
	f := startFake(t, nil, 0)
	f.SetSystemAssignedIdentity(systemMI)
	f.AddUserAssignedIdentity(userMI)
	var mu sync.Mutex
	header := f.IdentityHeader()
	env := func(k string) string {
		mu.Lock()
		defer mu.Unlock()
		switch k {
		case "IDENTITY_ENDPOINT":
			return f.IdentityEndpoint()
		case "IDENTITY_HEADER":
			return header
		}
		return ""
	}
	c, err := credential.NewManagedIdentity(credential.ManagedIdentityOptions{TokenOptions: fastOpts(nil, nil), ClientID: userMI, Getenv: env,
		IMDSEndpoint: "http://127.0.0.1:1"}) // IMDS must not be used
	if err != nil {
		t.Fatal(err)
	}
	if c.Source() != "App Service identity endpoint" {
		t.Errorf("source = %q", c.Source())
	}
	tok, err := bearer(t, c)
	if err != nil {
		t.Fatal(err)
	}
	if g, ok := f.Lookup(tok); !ok || g.Method != "app_service" || g.ClientID != userMI || g.Resource != "https://ai.azure.com" {
		t.Errorf("grant = %+v %v", g, ok)
	}

	// The platform rotates IDENTITY_HEADER; a stale value is refused (401),
	// and the current value is read on every request.
	f.RotateIdentityHeader()
	c.Invalidate()
	_, err = bearer(t, c)
	var ce *credential.Error
	if !errors.As(err, &ce) || ce.Status != 401 {
		t.Fatalf("stale header: err = %v", err)
	}
	mu.Lock()
	header = f.IdentityHeader()
	mu.Unlock()
	c2, _ := credential.NewManagedIdentity(credential.ManagedIdentityOptions{TokenOptions: fastOpts(nil, nil), Getenv: env})
	if _, err := bearer(t, c2); err != nil {
		t.Fatalf("rotated header: %v", err)
	}
}

func TestServicePrincipalSecret(t *testing.T) {
	f := startFake(t, nil, 0)
	f.AddClientSecret(tenant, appID, "secret-canary-1")
	cases := []struct {
		name, tenant, secret, scope string
		wantCode                    string
		wantText                    string
	}{
		{"ok", tenant, "secret-canary-1", "", "", ""},
		{"wrong secret", tenant, "secret-canary-wrong", "", "invalid_client", "AADSTS7000215"},
		{"unknown tenant", "99999999-2222-3333-4444-555555555555", "secret-canary-1", "", "invalid_request", "AADSTS90002"},
		{"scope without .default", tenant, "secret-canary-1", "https://ai.azure.com/user_impersonation", "invalid_scope", "AADSTS1002012"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var logs syncBuffer
			c, err := credential.NewServicePrincipal(credential.ServicePrincipalOptions{
				TokenOptions: fastOpts(nil, &logs), TenantID: tc.tenant, ClientID: appID, ClientSecret: tc.secret,
				Scope: tc.scope, AuthorityHost: f.URL(),
			})
			if err != nil {
				t.Fatal(err)
			}
			tok, err := bearer(t, c)
			if tc.wantCode == "" {
				if err != nil {
					t.Fatal(err)
				}
				if g, ok := f.Lookup(tok); !ok || g.Method != "client_secret" || g.TenantID != tenant || g.Resource != "https://ai.azure.com" {
					t.Errorf("grant = %+v %v", g, ok)
				}
				if !strings.Contains(logs.String(), credential.Fingerprint(tok)) || strings.Contains(logs.String(), tok) {
					t.Errorf("log should carry the token fingerprint, never the token: %s", logs.String())
				}
				return
			}
			var ce *credential.Error
			if !errors.As(err, &ce) || ce.Code != tc.wantCode || !strings.Contains(err.Error(), tc.wantText) {
				t.Fatalf("err = %v, want %s / %s", err, tc.wantCode, tc.wantText)
			}
			if strings.Contains(err.Error(), "Trace ID") {
				t.Errorf("error keeps only the first line of the description: %v", err)
			}
			if strings.Contains(err.Error()+logs.String(), tc.secret) {
				t.Error("the secret leaked into an error or log")
			}
			if n := f.Requests(azure.Entra); n == 0 {
				t.Error("no request reached the fake")
			}
		})
	}
	if _, err := credential.NewServicePrincipal(credential.ServicePrincipalOptions{TenantID: tenant, ClientID: appID}); err == nil {
		t.Error("no secret and no certificate accepted")
	}
	if _, err := credential.NewServicePrincipal(credential.ServicePrincipalOptions{TenantID: "../evil", ClientID: appID, ClientSecret: "x"}); err == nil {
		t.Error("path in tenant accepted")
	}
}

func selfSigned(t *testing.T) (*x509.Certificate, []byte) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gatehouse-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pk8, _ := x509.MarshalPKCS8PrivateKey(key)
	var b bytes.Buffer
	_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	_ = pem.Encode(&b, &pem.Block{Type: "PRIVATE KEY", Bytes: pk8})
	return cert, b.Bytes()
}

func TestServicePrincipalCertificate(t *testing.T) {
	f := startFake(t, nil, 0)
	cert, pemBytes := selfSigned(t)
	_, otherPEM := selfSigned(t)
	f.AddCertificate(tenant, appID, cert)
	file := filepath.Join(t.TempDir(), "sp.pem")
	if err := os.WriteFile(file, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}

	c, err := credential.NewServicePrincipal(credential.ServicePrincipalOptions{TokenOptions: fastOpts(nil, nil),
		TenantID: tenant, ClientID: appID, CertificateFile: file, AuthorityHost: f.URL()})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := bearer(t, c)
	if err != nil {
		t.Fatal(err)
	}
	if g, ok := f.Lookup(tok); !ok || g.Method != "client_certificate" {
		t.Errorf("grant = %+v %v", g, ok)
	}
	// A refresh signs a fresh assertion (new jti, new times) and succeeds.
	c.Invalidate()
	tok2, err := bearer(t, c)
	if err != nil || tok2 == tok || f.Requests(azure.Entra) != 2 {
		t.Fatalf("refresh: %v (requests %d)", err, f.Requests(azure.Entra))
	}

	// A certificate not registered on the app is refused with AADSTS700027.
	c2, err := credential.NewServicePrincipal(credential.ServicePrincipalOptions{TokenOptions: fastOpts(nil, nil),
		TenantID: tenant, ClientID: appID, CertificatePEM: otherPEM, AuthorityHost: f.URL()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = bearer(t, c2)
	var ce *credential.Error
	if !errors.As(err, &ce) || ce.Code != "invalid_client" || !strings.Contains(err.Error(), "AADSTS700027") {
		t.Fatalf("err = %v", err)
	}

	// A PEM whose key does not match the certificate is refused at build time.
	mixed := append(append([]byte{}, pemBytes[:bytes.Index(pemBytes, []byte("-----BEGIN PRIVATE KEY"))]...), otherPEM[bytes.Index(otherPEM, []byte("-----BEGIN PRIVATE KEY")):]...)
	if _, _, err := credential.ParseCertificatePEM(mixed); err == nil {
		t.Error("mismatched key accepted")
	}
}

func TestWorkloadIdentity(t *testing.T) {
	f := startFake(t, nil, 0)
	const issuer = "https://oidc.prod-aks.azure.com/tenant/issuer/"
	const subject = "system:serviceaccount:gatehouse:gatehouse"
	f.AddFederatedCredential(tenant, appID, issuer, subject)
	file := filepath.Join(t.TempDir(), "azure-identity-token")
	if err := os.WriteFile(file, []byte(f.MintFederatedToken(issuer, subject, time.Hour)), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"AZURE_CLIENT_ID": appID, "AZURE_TENANT_ID": tenant,
		"AZURE_FEDERATED_TOKEN_FILE": file, "AZURE_AUTHORITY_HOST": f.URL() + "/",
	}
	getenv := func(k string) string { return env[k] }
	c, err := credential.NewWorkloadIdentity(credential.WorkloadIdentityOptions{TokenOptions: fastOpts(nil, nil), Getenv: getenv})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := bearer(t, c)
	if err != nil {
		t.Fatal(err)
	}
	if g, ok := f.Lookup(tok); !ok || g.Method != "federated" || g.ClientID != appID {
		t.Errorf("grant = %+v %v", g, ok)
	}

	// The kubelet rotates the file; a token for another subject is refused.
	if err := os.WriteFile(file, []byte(f.MintFederatedToken(issuer, "system:serviceaccount:other:sa", time.Hour)), 0o600); err != nil {
		t.Fatal(err)
	}
	c.Invalidate()
	_, err = bearer(t, c)
	var ce *credential.Error
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "AADSTS70021") {
		t.Fatalf("err = %v", err)
	}

	// Missing variables are reported at construction, by name.
	_, err = credential.NewWorkloadIdentity(credential.WorkloadIdentityOptions{Getenv: func(string) string { return "" }})
	if err == nil || !strings.Contains(err.Error(), "AZURE_FEDERATED_TOKEN_FILE") {
		t.Errorf("err = %v", err)
	}
	// A missing file is a clear error, not a panic.
	env["AZURE_FEDERATED_TOKEN_FILE"] = filepath.Join(t.TempDir(), "missing")
	c3, _ := credential.NewWorkloadIdentity(credential.WorkloadIdentityOptions{TokenOptions: fastOpts(nil, nil), Getenv: getenv})
	if _, err := bearer(t, c3); err == nil || !strings.Contains(err.Error(), "federated token file") {
		t.Errorf("err = %v", err)
	}
}

func TestTokenCacheSingleFlight(t *testing.T) {
	f := startFake(t, nil, 0)
	f.SetSystemAssignedIdentity(systemMI)
	f.Inject(azure.IMDS, azure.Fault{Status: 200, Delay: 50 * time.Millisecond, Body: `{"access_token":"slow-token","expires_in":"3599","token_type":"Bearer"}`})
	c, _ := credential.NewManagedIdentity(credential.ManagedIdentityOptions{TokenOptions: fastOpts(nil, nil), IMDSEndpoint: f.URL()})
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, err := bearer(t, c)
			if err == nil && tok != "slow-token" {
				err = errors.New("got " + tok)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := f.Requests(azure.IMDS); n != 1 {
		t.Errorf("IMDS requests = %d, want 1 (single flight, then cached)", n)
	}
}

// waitFor polls cond (the refresh runs in the background).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestTokenRefreshAhead(t *testing.T) {
	cases := []struct {
		name            string
		lifetime        time.Duration
		notYet, refresh time.Duration // clock offsets from issue
	}{
		{"long token: 5 minutes before expiry", time.Hour, 54 * time.Minute, 56 * time.Minute},
		{"short token: at half life", 10 * time.Minute, 4 * time.Minute, 6 * time.Minute},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			f := startFake(t, clk, tc.lifetime)
			f.AddClientSecret(tenant, appID, "s")
			c, _ := credential.NewServicePrincipal(credential.ServicePrincipalOptions{TokenOptions: fastOpts(clk, nil),
				TenantID: tenant, ClientID: appID, ClientSecret: "s", AuthorityHost: f.URL()})
			t1, err := bearer(t, c)
			if err != nil {
				t.Fatal(err)
			}
			clk.Advance(tc.notYet)
			if got, _ := bearer(t, c); got != t1 || f.Issued() != 1 {
				t.Fatalf("refreshed too early (issued %d)", f.Issued())
			}
			clk.Advance(tc.refresh - tc.notYet)
			// The current token is still served while the refresh runs.
			if got, _ := bearer(t, c); got != t1 {
				t.Fatal("a request waited for the refresh although the token was valid")
			}
			waitFor(t, "background refresh", func() bool { return f.Issued() == 2 })
			var t2 string
			waitFor(t, "new token in use", func() bool { t2, _ = bearer(t, c); return t2 != t1 })
			if _, ok := f.Lookup(t2); !ok {
				t.Error("new token unknown to the fake")
			}
		})
	}
}

func TestTokenFailureBackoffAndExpiry(t *testing.T) {
	clk := newClock()
	f := startFake(t, clk, time.Hour)
	f.SetSystemAssignedIdentity(systemMI)
	var logs syncBuffer
	o := fastOpts(clk, &logs)
	o.MaxAttempts = 1
	c, _ := credential.NewManagedIdentity(credential.ManagedIdentityOptions{TokenOptions: o, IMDSEndpoint: f.URL()})
	t1, err := bearer(t, c)
	if err != nil {
		t.Fatal(err)
	}

	// The refresh ahead of expiry fails: the valid token keeps being used.
	f.Inject(azure.IMDS, azure.Fault{Status: 500}, azure.Fault{Status: 500}, azure.Fault{Status: 500})
	clk.Advance(56 * time.Minute)
	if got, err := bearer(t, c); err != nil || got != t1 {
		t.Fatalf("valid token not served during a failing refresh: %v", err)
	}
	waitFor(t, "failed refresh", func() bool { return strings.Contains(logs.String(), "refresh failed") })
	// Within the backoff no new request is made.
	n := f.Requests(azure.IMDS)
	if got, err := bearer(t, c); err != nil || got != t1 {
		t.Fatal(err)
	}
	if f.Requests(azure.IMDS) != n {
		t.Error("refresh retried inside the backoff")
	}

	// Past expiry with the endpoint still failing: a typed error that says why.
	clk.Advance(5 * time.Minute)
	_, err = bearer(t, c)
	var ce *credential.Error
	if !errors.As(err, &ce) || ce.Kind != credential.KindManagedIdentity || ce.Status != 500 {
		t.Fatalf("err = %v", err)
	}
	// Fail fast inside the backoff: no request to the endpoint.
	n = f.Requests(azure.IMDS)
	if _, err := bearer(t, c); err == nil {
		t.Fatal("expected the cached error")
	}
	if f.Requests(azure.IMDS) != n {
		t.Error("no backoff after a failure")
	}
	// After the backoff the endpoint has recovered (one fault left, then OK).
	clk.Advance(21 * time.Second)
	_, _ = bearer(t, c) // consumes the last fault
	clk.Advance(41 * time.Second)
	t3, err := bearer(t, c)
	if err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	if t3 == t1 {
		t.Error("expired token served")
	}
}

func TestTokenWaitHonoursContext(t *testing.T) {
	f := startFake(t, nil, 0)
	f.SetSystemAssignedIdentity(systemMI)
	f.Inject(azure.IMDS, azure.Fault{Status: 200, Delay: 2 * time.Second, Body: `{"access_token":"late","expires_in":"3599"}`})
	c, _ := credential.NewManagedIdentity(credential.ManagedIdentityOptions{TokenOptions: fastOpts(nil, nil), IMDSEndpoint: f.URL()})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequest(http.MethodPost, "https://x.invalid/", nil)
	err := c.Apply(ctx, req)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, credential.ErrNoToken) {
		t.Fatalf("err = %v", err)
	}
	if req.Header.Get("Authorization") != "" {
		t.Error("header set on failure")
	}
}

func TestTokenResponseShapes(t *testing.T) {
	// Numbers as strings (IMDS), as numbers (Entra), expires_on only (App Service).
	cases := []struct {
		name, body string
		ok         bool
	}{
		{"imds strings", `{"access_token":"a","expires_in":"3599","expires_on":"1","token_type":"Bearer"}`, true},
		{"entra numbers", `{"access_token":"a","expires_in":3599,"token_type":"Bearer"}`, true},
		{"expires_on only", `{"access_token":"a","expires_on":"4102444800","token_type":"Bearer"}`, true},
		{"no expiry", `{"access_token":"a"}`, false},
		{"no token", `{"expires_in":"3599"}`, false},
		{"wrong type", `{"access_token":"a","expires_in":1,"token_type":"pop"}`, false},
		{"not json", `<html>`, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := startFake(t, nil, 0)
			f.Inject(azure.IMDS, azure.Fault{Status: 200, Body: tc.body})
			o := fastOpts(nil, nil)
			o.MaxAttempts = 1
			c, _ := credential.NewManagedIdentity(credential.ManagedIdentityOptions{TokenOptions: o, IMDSEndpoint: f.URL()})
			_, err := bearer(t, c)
			if (err == nil) != tc.ok {
				t.Errorf("err = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestTokenClientNeverUsesEnvironmentProxy(t *testing.T) {
	t.Setenv("HTTP_PROXY", "http://127.0.0.1:1")
	t.Setenv("HTTPS_PROXY", "http://127.0.0.1:1")
	tr := credential.DefaultHTTPClient().Transport.(*http.Transport)
	if tr.Proxy != nil || tr.TLSClientConfig.MinVersion < 0x0303 || tr.TLSClientConfig.InsecureSkipVerify {
		t.Fatal("token client: proxy from the environment or weak TLS")
	}
	// And a real flow reaches the fake directly despite the variables.
	f := startFake(t, nil, 0)
	f.SetSystemAssignedIdentity(systemMI)
	c, _ := credential.NewManagedIdentity(credential.ManagedIdentityOptions{TokenOptions: fastOpts(nil, nil), IMDSEndpoint: strings.Replace(f.URL(), "127.0.0.1", "localhost", 1)})
	if _, err := bearer(t, c); err != nil {
		t.Fatal(err)
	}
}
