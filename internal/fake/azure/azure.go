// Package azure is a faithful local fake of the Azure identity endpoints the
// gateway talks to: the Instance Metadata Service token endpoint (VMs), the
// App Service / Container Apps / Functions IDENTITY_ENDPOINT, and Entra ID's
// v2 token endpoint for the client_credentials grant with a client secret, a
// certificate client assertion (RS256 JWT with x5t) or a federated client
// assertion (workload identity). It speaks the documented request and
// response shapes, including the documented error bodies, over real HTTP on
// 127.0.0.1 so that tests and `gatehouse demo` exercise the same code paths
// as production. It also issues and checks access tokens, so a fake Foundry
// upstream can verify the bearer it receives (Lookup).
package azure

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Endpoint names one of the fake's token endpoints, for fault injection and
// request counts.
type Endpoint string

// The fake's endpoints.
const (
	IMDS       Endpoint = "imds"
	AppService Endpoint = "app_service"
	Entra      Endpoint = "entra"
)

// Paths served.
const (
	IMDSTokenPath       = "/metadata/identity/oauth2/token"
	AppServiceTokenPath = "/msi/token"
	// Entra: POST /{tenant}/oauth2/v2.0/token
)

// Options configures Start. Zero values work.
type Options struct {
	// Logger receives one line per token request. Nil: discard.
	Logger *slog.Logger
	// Now is the clock used for expiry. Nil: time.Now.
	Now func() time.Time
	// TokenLifetime of issued tokens. Zero: 1h (Entra's about 60-90 min).
	TokenLifetime time.Duration
}

// Grant describes an issued access token.
type Grant struct {
	Method    string // imds, app_service, client_secret, client_certificate, federated
	ClientID  string
	TenantID  string
	Resource  string // e.g. https://ai.azure.com (scope without /.default)
	ExpiresAt time.Time
}

// Fault is an injected answer that replaces the next real one.
type Fault struct {
	Status int
	// Body overrides the endpoint's documented error body for Status.
	Body string
	// RetryAfter, if set, is sent as the Retry-After header (seconds).
	RetryAfter string
	// Delay holds the answer back (for timeout tests).
	Delay time.Duration
}

type app struct {
	tenant    string
	clientID  string
	secrets   map[string]bool
	certs     map[string]*x509.Certificate // by x5t
	federated map[[2]string]bool           // (issuer, subject)
}

// Server is a running fake.
type Server struct {
	o       Options
	ln      net.Listener
	srv     *http.Server
	url     string
	fedOnce sync.Once
	fedKey  *rsa.PrivateKey

	mu             sync.Mutex
	systemMI       string            // client id of the system-assigned identity, "" if none
	userMI         map[string]string // client id → ARM resource id
	identityHeader string
	apps           map[[2]string]*app // (tenant, client id)
	tenants        map[string]bool
	tokens         map[string]Grant
	faults         map[Endpoint][]Fault
	counts         map[Endpoint]int
	issued         int
}

// Start listens on 127.0.0.1:0 and serves until Close.
func Start(o Options) (*Server, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.TokenLifetime <= 0 {
		o.TokenLifetime = time.Hour
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{
		o: o, ln: ln,
		url:            "http://" + ln.Addr().String(),
		userMI:         map[string]string{},
		identityHeader: randomHex(16),
		apps:           map[[2]string]*app{},
		tenants:        map[string]bool{},
		tokens:         map[string]Grant{},
		faults:         map[Endpoint][]Fault{},
		counts:         map[Endpoint]int{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc(IMDSTokenPath, s.handleIMDS)
	mux.HandleFunc(AppServiceTokenPath, s.handleAppService)
	mux.HandleFunc("/{tenant}/oauth2/v2.0/token", s.handleEntra)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Close stops the server, cutting requests in flight.
func (s *Server) Close() error { return s.srv.Close() }

// federationKey is the key of the fake Kubernetes OIDC issuer, made on
// first use.
func (s *Server) federationKey() *rsa.PrivateKey {
	s.fedOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		s.fedKey = k
	})
	return s.fedKey
}

// URL is the server's base URL (http://127.0.0.1:port). It is the IMDS
// endpoint override and the Entra authority host.
func (s *Server) URL() string { return s.url }

// IdentityEndpoint is the value for IDENTITY_ENDPOINT.
func (s *Server) IdentityEndpoint() string { return s.url + AppServiceTokenPath }

// IdentityHeader is the current value for IDENTITY_HEADER.
func (s *Server) IdentityHeader() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.identityHeader
}

// RotateIdentityHeader replaces IDENTITY_HEADER, as the platform does; the
// old value is refused from now on.
func (s *Server) RotateIdentityHeader() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.identityHeader = randomHex(16)
	return s.identityHeader
}

// SetSystemAssignedIdentity gives the host a system-assigned identity.
func (s *Server) SetSystemAssignedIdentity(clientID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.systemMI = clientID
}

// AddUserAssignedIdentity attaches a user-assigned identity to the host.
// resourceID (optional) is its ARM id, for msi_res_id / mi_res_id selection.
func (s *Server) AddUserAssignedIdentity(clientID string, resourceID ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.userMI[clientID] = strings.Join(resourceID, "")
}

// AddTenant registers a tenant (apps register theirs implicitly).
func (s *Server) AddTenant(tenant string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tenants[tenant] = true
}

func (s *Server) appLocked(tenant, clientID string) *app {
	s.tenants[tenant] = true
	k := [2]string{tenant, clientID}
	a := s.apps[k]
	if a == nil {
		a = &app{tenant: tenant, clientID: clientID, secrets: map[string]bool{}, certs: map[string]*x509.Certificate{}, federated: map[[2]string]bool{}}
		s.apps[k] = a
	}
	return a
}

// AddClientSecret registers an app with a client secret.
func (s *Server) AddClientSecret(tenant, clientID, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.appLocked(tenant, clientID).secrets[secret] = true
}

// RemoveClientSecret revokes a secret (for "secret expired" tests).
func (s *Server) RemoveClientSecret(tenant, clientID, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.appLocked(tenant, clientID).secrets, secret)
}

// AddCertificate registers an app certificate credential.
func (s *Server) AddCertificate(tenant, clientID string, cert *x509.Certificate) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.appLocked(tenant, clientID).certs[thumbprint(cert)] = cert
}

// AddFederatedCredential trusts tokens from issuer with subject for the app
// (a federated identity credential, as configured for AKS workload identity).
func (s *Server) AddFederatedCredential(tenant, clientID, issuer, subject string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.appLocked(tenant, clientID).federated[[2]string{issuer, subject}] = true
}

// MintFederatedToken returns a service account token as the Kubernetes
// OIDC issuer would project it: RS256, aud api://AzureADTokenExchange,
// signed by a key the fake trusts for every issuer.
func (s *Server) MintFederatedToken(issuer, subject string, lifetime time.Duration) string {
	now := s.o.Now()
	return signJWT(s.federationKey(), map[string]string{"alg": "RS256", "typ": "JWT", "kid": "fake-k8s"}, map[string]any{
		"iss": issuer, "sub": subject, "aud": []string{FederatedAudience},
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(lifetime).Unix(),
	})
}

// FederatedAudience is the audience Entra requires in federated assertions.
const FederatedAudience = "api://AzureADTokenExchange"

// Inject queues faults for ep: each answers one request instead of the
// real handler, in order.
func (s *Server) Inject(ep Endpoint, faults ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[ep] = append(s.faults[ep], faults...)
}

// Requests returns how many requests ep has received.
func (s *Server) Requests(ep Endpoint) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[ep]
}

// Issued returns how many tokens were issued.
func (s *Server) Issued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issued
}

// Lookup reports the grant behind an access token, if it was issued here
// and has not expired.
func (s *Server) Lookup(token string) (Grant, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.tokens[token]
	if !ok || !s.o.Now().Before(g.ExpiresAt) {
		return Grant{}, false
	}
	return g, true
}

// Revoke forgets every issued token (Lookup fails), e.g. to simulate a
// role removal that makes the upstream answer 401.
func (s *Server) Revoke() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens = map[string]Grant{}
}

func (s *Server) issue(g Grant) (string, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.issued++
	tok := "fake-azure-at." + g.Method + "." + randomHex(24)
	g.ExpiresAt = s.o.Now().Add(s.o.TokenLifetime)
	s.tokens[tok] = g
	return tok, g.ExpiresAt
}

// begin counts the request and applies a queued fault. It reports whether
// the fault answered.
func (s *Server) begin(ep Endpoint, w http.ResponseWriter, r *http.Request, defaultBody func(status int) any) bool {
	s.mu.Lock()
	s.counts[ep]++
	var f *Fault
	if q := s.faults[ep]; len(q) > 0 {
		f = &q[0]
		s.faults[ep] = q[1:]
	}
	s.mu.Unlock()
	if f == nil {
		return false
	}
	if f.Delay > 0 {
		select {
		case <-time.After(f.Delay):
		case <-r.Context().Done():
			return true
		}
	}
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	if f.Body != "" {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(f.Status)
		_, _ = w.Write([]byte(f.Body))
	} else {
		writeJSON(w, f.Status, defaultBody(f.Status))
	}
	s.o.Logger.Info("fake azure: injected fault", slog.String("endpoint", string(ep)), slog.Int("status", f.Status))
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
