package cli

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	auditsqlite "github.com/gatehouse-dev/gatehouse/internal/audit/sqlite"
	fakeanthropic "github.com/gatehouse-dev/gatehouse/internal/fake/anthropic"
	"github.com/gatehouse-dev/gatehouse/internal/fake/idp"
)

const (
	testTenant   = "11111111-2222-4333-8444-555555555555"
	testClientID = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
)

var (
	userAda    = idp.User{OID: "00000000-0000-4000-8000-00000000a0a0", Name: "Ada Lovelace", Username: "ada@contoso.example", Email: "ada@contoso.example", Roles: []string{"Claude.User"}}
	userNoRole = idp.User{OID: "00000000-0000-4000-8000-00000000b0b0", Name: "Bob NoRole", Username: "bob@contoso.example"}
)

// syncBuffer is a concurrency-safe log sink.
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

// harness is one real gateway process-in-a-goroutine, started through Run
// exactly as `gatehouse serve --config FILE` would be.
type harness struct {
	t           testing.TB
	idp         *idp.Server
	stub        *fakeanthropic.Server
	upstreamKey string
	base        string
	dir         string
	cfgPath     string
	auditPath   string
	logs        *syncBuffer
	stop        context.CancelFunc
	done        chan int
	client      *http.Client // trusts the gateway's certificate when tls is on
	certFile    string
	keyFile     string
}

type harnessOptions struct {
	stub         fakeanthropic.Options
	upstreamURL  string // overrides the stub as the upstream
	provider     string // anthropic (default) or foundry
	extraYAML    string // appended to the configuration
	serverYAML   string // the server: section body
	upstreamYAML string // extra keys for the upstream entry
	logLevel     string // default debug
	tls          bool   // serve HTTPS with a fresh self-signed certificate
	auditYAML    string // extra keys for the audit section
	routingYAML  string // replaces the upstreams: and models: sections (${env:TEST_UPSTREAM_KEY} is the stub's key)
}

func freeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func startGateway(t testing.TB, o harnessOptions) *harness {
	t.Helper()
	h := &harness{t: t, dir: t.TempDir(), logs: &syncBuffer{}, done: make(chan int, 1), client: http.DefaultClient}
	var err error
	h.idp, err = idp.Start(idp.Options{Tenants: []string{testTenant}, DefaultUser: userAda})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.idp.Close() })
	if o.provider == "" {
		o.provider = "anthropic"
	}
	if o.logLevel == "" {
		o.logLevel = "debug"
	}
	h.upstreamKey = "sk-canary-" + randomHex(12)
	o.stub.Key = h.upstreamKey
	o.stub.Provider = o.provider
	h.stub, err = fakeanthropic.Start(o.stub)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.stub.Close() })
	upURL := h.stub.URL()
	if o.provider == "foundry" {
		upURL += "/anthropic"
	}
	if o.upstreamURL != "" {
		upURL = o.upstreamURL
	}
	routing := strings.ReplaceAll(o.routingYAML, "STUB", upURL)
	if routing == "" {
		routing = fmt.Sprintf(`upstreams:
  - name: primary
    provider: %s
    base_url: %s
    api_key: ${env:TEST_UPSTREAM_KEY}
%s
models:
  - id: claude-sonnet-4-6
    display_name: Claude Sonnet 4.6
    upstream_model: sonnet-deployment
  - id: claude-haiku-4-5`, o.provider, upURL, indentBlock(o.upstreamYAML, "    "))
	}
	addr := freeAddr(t)
	h.base = "http://" + addr
	if o.tls {
		h.certFile, h.keyFile = filepath.Join(h.dir, "tls.crt"), filepath.Join(h.dir, "tls.key")
		pool := writeSelfSigned(t, h.certFile, h.keyFile, 1)
		h.client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
		h.base = "https://" + addr
		o.serverYAML += fmt.Sprintf("\ntls:\n  cert_file: %s\n  key_file: %s\n", h.certFile, h.keyFile)
	}
	h.auditPath = filepath.Join(h.dir, "audit.db")
	cfg := fmt.Sprintf(`listen: %s
identity:
  type: entra
  issuer: %s
  audiences: [%q]
  required_roles: ["Claude.User"]
%s
audit:
  sqlite: %s
  flush_interval: 10ms
%s
log:
  level: %s
`, addr, h.idp.Issuer(testTenant), testClientID, routing, h.auditPath, indentBlock(o.auditYAML, "  "), o.logLevel)
	if o.serverYAML != "" {
		cfg += "server:\n" + indentBlock(o.serverYAML, "  ") + "\n"
	}
	cfg += o.extraYAML
	h.cfgPath = filepath.Join(h.dir, "gatehouse.yaml")
	if err := os.WriteFile(h.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.stop = cancel
	getenv := func(k string) string {
		if k == "TEST_UPSTREAM_KEY" {
			return h.upstreamKey
		}
		return ""
	}
	go func() {
		h.done <- Run(ctx, []string{"serve", "--config", h.cfgPath}, getenv, nil, h.logs, h.logs)
	}()
	t.Cleanup(func() { h.shutdown() })
	h.waitReady()
	return h
}

func indentBlock(s, pfx string) string {
	if s == "" {
		return ""
	}
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := range lines {
		lines[i] = pfx + lines[i]
	}
	return strings.Join(lines, "\n")
}

func (h *harness) waitReady() {
	h.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if h.stop != nil { // the in-process gateway is meant to be running
			select {
			case code := <-h.done:
				h.done <- code
				h.t.Fatalf("gateway exited with %d:\n%s", code, h.logs.String())
			default:
			}
		}
		resp, err := h.client.Get(h.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.t.Fatalf("gateway not ready:\n%s", h.logs.String())
}

// shutdown stops the gateway like SIGTERM and returns its exit code.
func (h *harness) shutdown() int {
	if h.stop == nil { // already stopping or stopped: share the one exit code
		code := <-h.done
		h.done <- code
		return code
	}
	h.stop()
	h.stop = nil
	select {
	case code := <-h.done:
		h.done <- code
		return code
	case <-time.After(30 * time.Second):
		h.t.Fatal("gateway did not stop")
		return -1
	}
}

// token mints an ID token for u, as Claude Desktop would send it.
func (h *harness) token(u idp.User) string {
	return h.idp.IDToken(testTenant, testClientID, u, time.Hour)
}

// records stops the gateway (which flushes its audit queue, as on SIGTERM)
// and reads the whole audit trail.
func (h *harness) records() []audit.Record {
	h.t.Helper()
	if code := h.shutdown(); code != 0 {
		h.t.Fatalf("gateway exited %d:\n%s", code, h.logs.String())
	}
	st, err := auditsqlite.Open(context.Background(), auditsqlite.Options{Path: h.auditPath})
	if err != nil {
		h.t.Fatal(err)
	}
	defer st.Close()
	recs, err := st.List(context.Background(), audit.Filter{})
	if err != nil {
		h.t.Fatal(err)
	}
	return recs
}

func (h *harness) post(path, token string, body string, hdr map[string]string) *http.Response {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.base+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("anthropic-version", "2023-06-01")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp
}

// writeSelfSigned writes a certificate for 127.0.0.1 with the given serial
// and returns a pool trusting it.
func writeSelfSigned(t testing.TB, certFile, keyFile string, serial int64) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "gatehouse test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}
