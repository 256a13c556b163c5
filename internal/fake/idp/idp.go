// Package idp is a faithful local fake of Microsoft Entra ID's OpenID Connect
// surface (and of a generic, Okta-shaped OIDC provider), served over real
// HTTP on a loopback port. Tests and `gatehouse demo` use it in place of
// login.microsoftonline.com, which development machines cannot reach.
//
// Wire formats follow Entra's published documents exactly: per-tenant v2
// discovery at /{tid}/v2.0/.well-known/openid-configuration, the key set at
// /{tid}/discovery/v2.0/keys (RSA-2048 keys carrying kid, x5t, x5c, use and
// the Entra "issuer" member), v1 discovery at /{tid}/.well-known/openid-configuration,
// the authorize and token endpoints under /{tid}/oauth2/v2.0/ (see login.go),
// the device code flow (/{tid}/oauth2/v2.0/devicecode, see devicecode.go),
// and Entra-shaped ID and access tokens. The generic provider lives under
// /oauth2/default with Okta's paths (/v1/keys, /v1/authorize, /v1/token).
//
// Besides honest behaviour, the fake can misbehave on purpose for resilience
// tests: it counts every fetch, rotates keys, and can stall, fail, garble or
// bloat its key set responses.
package idp

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// OktaTenant is the tenant name of the generic (Okta-shaped) OIDC provider
// every Server also serves. Use it wherever a method takes a tid, e.g.
// s.Issuer(idp.OktaTenant) or s.Sign(idp.OktaTenant, ...).
const OktaTenant = "oauth2/default"

// ConsumerTenant is Entra's tenant for personal Microsoft accounts.
const ConsumerTenant = "9188040d-6c67-4c5b-b112-36a304b66dad"

// GraphAppID is Microsoft Graph's application ID (the aud of Graph tokens).
const GraphAppID = "00000003-0000-0000-c000-000000000000"

// Options configures Start. The zero value is usable.
type Options struct {
	// Tenants are the Entra tenant IDs (GUIDs) served. Default: one random GUID.
	Tenants []string
	// Addr is the listen address. Default "127.0.0.1:0".
	Addr string
	// DefaultUser is who the fake authorize endpoint signs in when the
	// request carries no login_hint matching a user in Users.
	// Default: a user named "Ada Lovelace" with role "Claude.User".
	DefaultUser User
	// Users are further accounts a login_hint (their Username or Email)
	// selects at the authorize endpoint.
	Users []User
	// Clients are the registered public clients (client ID and redirect
	// URIs). Empty: any GUID client ID with a loopback redirect URI is
	// accepted. For loopback redirect URIs the port is ignored, as in Entra.
	Clients []Client
	// Now is the clock used for minted tokens. Default time.Now.
	Now func() time.Time
	// AutoApproveDeviceCode, when N > 0, signs DefaultUser in on every
	// device code after N authorization_pending answers (poll N+1 gets the
	// tokens). Zero: codes wait for ApproveDeviceCode or the /devicelogin
	// page (see devicecode.go).
	AutoApproveDeviceCode int
}

// User is an account at the fake IdP.
type User struct {
	OID, Name, Username, Email string
	Roles, Groups              []string
}

// Client is a registered application at the fake IdP.
type Client struct {
	ID           string
	RedirectURIs []string
	// Secret makes this a confidential client that may use the
	// client_credentials grant (app-only tokens, e.g. for Microsoft Graph).
	Secret string
}

// JWKSMode selects how the key set endpoint of a tenant behaves.
type JWKSMode int

const (
	JWKSNormal  JWKSMode = iota // serve the current keys
	JWKSStall                   // never answer (until the client gives up or the server closes)
	JWKS500                     // 500 with an Entra-style error body
	JWKSGarbage                 // 200 with invalid JSON
	JWKSHuge                    // 200 with a 5 MiB body that starts like a key set
	JWKSCustom                  // 200 with the body given to SetJWKSBody
)

// Key is one signing key of a tenant.
type Key struct {
	KID     string
	X5T     string
	Private *rsa.PrivateKey
	CertDER []byte
}

type tenant struct {
	name    string
	generic bool
	keys    []*Key // keys[0] signs
	extra   []map[string]any
	mode    JWKSMode
	custom  []byte

	discoveryFetches atomic.Int64
	jwksFetches      atomic.Int64
}

// Server is a running fake IdP.
type Server struct {
	opts    Options
	ln      net.Listener
	srv     *http.Server
	url     string
	stop    chan struct{}
	stopped sync.Once

	mu      sync.Mutex
	tenants map[string]*tenant
	order   []string

	login  loginState
	device deviceFlow

	requests atomic.Int64
}

// Start generates keys for every tenant and starts serving.
func Start(opts Options) (*Server, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if len(opts.Tenants) == 0 {
		opts.Tenants = []string{NewGUID()}
	}
	if opts.DefaultUser.OID == "" {
		opts.DefaultUser = User{
			OID: NewGUID(), Name: "Ada Lovelace", Username: "ada@contoso.example",
			Email: "ada@contoso.example", Roles: []string{"Claude.User"},
		}
	}
	s := &Server{opts: opts, tenants: map[string]*tenant{}, stop: make(chan struct{})}
	s.login.init()
	for _, tid := range append(append([]string(nil), opts.Tenants...), OktaTenant) {
		if _, dup := s.tenants[tid]; dup {
			return nil, fmt.Errorf("idp: tenant %q listed twice", tid)
		}
		if tid != OktaTenant && !isGUID(tid) {
			return nil, fmt.Errorf("idp: tenant %q is not a GUID", tid)
		}
		k, err := NewKey()
		if err != nil {
			return nil, err
		}
		s.tenants[tid] = &tenant{name: tid, generic: tid == OktaTenant, keys: []*Key{k}}
		s.order = append(s.order, tid)
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("idp: listen: %w", err)
	}
	s.ln = ln
	s.url = "http://" + ln.Addr().String()
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln) //nolint:errcheck // returns ErrServerClosed on Close
	return s, nil
}

// URL is the base URL, e.g. http://127.0.0.1:41234 (no trailing slash).
func (s *Server) URL() string { return s.url }

// Tenants returns the Entra tenant IDs served (not OktaTenant).
func (s *Server) Tenants() []string { return append([]string(nil), s.opts.Tenants...) }

// DefaultUser returns the user the authorize endpoint signs in by default.
func (s *Server) DefaultUser() User { return s.opts.DefaultUser }

// Issuer is the v2 issuer of tid: URL()+"/"+tid+"/v2.0". For OktaTenant it
// is URL()+"/oauth2/default".
func (s *Server) Issuer(tid string) string {
	if tid == OktaTenant {
		return s.url + "/" + OktaTenant
	}
	return s.url + "/" + tid + "/v2.0"
}

// IssuerV1 is the fake's stand-in for https://sts.windows.net/{tid}/: the
// issuer of v1 tokens, URL()+"/"+tid+"/" (also the issuer of v1 discovery).
func (s *Server) IssuerV1(tid string) string { return s.url + "/" + tid + "/" }

// JWKSURL is the key set URL of tid as discovery publishes it.
func (s *Server) JWKSURL(tid string) string {
	if tid == OktaTenant {
		return s.url + "/" + OktaTenant + "/v1/keys"
	}
	return s.url + "/" + tid + "/discovery/v2.0/keys"
}

// Close stops the server and releases stalled responses.
func (s *Server) Close() error {
	s.stopped.Do(func() { close(s.stop) })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = s.srv.Close()
	}
	return err
}

func (s *Server) tenant(tid string) *tenant {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tenants[tid]
	if t == nil {
		panic(fmt.Sprintf("idp: unknown tenant %q", tid))
	}
	return t
}

// CurrentKey returns the key tid currently signs with.
func (s *Server) CurrentKey(tid string) *Key {
	t := s.tenant(tid)
	s.mu.Lock()
	defer s.mu.Unlock()
	return t.keys[0]
}

// Keys returns all keys tid publishes, the signing key first.
func (s *Server) Keys(tid string) []*Key {
	t := s.tenant(tid)
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Key(nil), t.keys...)
}

// Rotate adds a fresh key that becomes the signing key. When keep is false
// the previous keys are removed from the published set (an emergency
// rollover); otherwise they stay published, as in a normal rollover.
func (s *Server) Rotate(tid string, keep bool) (*Key, error) {
	k, err := NewKey()
	if err != nil {
		return nil, err
	}
	s.SetKeys(tid, k, keep)
	return k, nil
}

// SetKeys installs k as tid's signing key (keeping the old keys published
// when keep is true).
func (s *Server) SetKeys(tid string, k *Key, keep bool) {
	t := s.tenant(tid)
	s.mu.Lock()
	defer s.mu.Unlock()
	if keep {
		t.keys = append([]*Key{k}, t.keys...)
	} else {
		t.keys = []*Key{k}
	}
}

// PublishKey adds k to tid's key set without making it the signing key.
func (s *Server) PublishKey(tid string, k *Key) {
	t := s.tenant(tid)
	s.mu.Lock()
	defer s.mu.Unlock()
	t.keys = append(t.keys, k)
}

// AddRawJWK appends an arbitrary JSON object to tid's published key set
// (unsupported key types, oct keys, enc keys, duplicate kids, ...).
func (s *Server) AddRawJWK(tid string, jwk map[string]any) {
	t := s.tenant(tid)
	s.mu.Lock()
	defer s.mu.Unlock()
	t.extra = append(t.extra, jwk)
}

// SetJWKSMode changes how tid's key set endpoint answers.
func (s *Server) SetJWKSMode(tid string, m JWKSMode) {
	t := s.tenant(tid)
	s.mu.Lock()
	defer s.mu.Unlock()
	t.mode = m
}

// SetJWKSBody makes tid's key set endpoint answer 200 with body verbatim.
func (s *Server) SetJWKSBody(tid string, body []byte) {
	t := s.tenant(tid)
	s.mu.Lock()
	defer s.mu.Unlock()
	t.mode = JWKSCustom
	t.custom = append([]byte(nil), body...)
}

// JWKSFetches counts requests to tid's key set endpoint(s).
func (s *Server) JWKSFetches(tid string) int64 { return s.tenant(tid).jwksFetches.Load() }

// DiscoveryFetches counts requests to tid's discovery documents.
func (s *Server) DiscoveryFetches(tid string) int64 { return s.tenant(tid).discoveryFetches.Load() }

// Requests counts every HTTP request the server received.
func (s *Server) Requests() int64 { return s.requests.Load() }

// NewKey generates an RSA-2048 signing key with a self-signed certificate,
// its x5t (base64url SHA-1 of the certificate) and kid (equal to x5t, as
// Entra publishes them).
func NewKey() (*Key, error) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("idp: generate key: %w", err)
	}
	return KeyFrom(priv)
}

// KeyFrom wraps an existing RSA key (any size, for weak-key tests).
func KeyFrom(priv *rsa.PrivateKey) (*Key, error) {
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "accounts.accesscontrol.windows.net"},
		NotBefore:    time.Now().Add(-24 * time.Hour),
		NotAfter:     time.Now().Add(5 * 365 * 24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return nil, fmt.Errorf("idp: certificate: %w", err)
	}
	sum := sha1.Sum(der)
	x5t := base64.RawURLEncoding.EncodeToString(sum[:])
	return &Key{KID: x5t, X5T: x5t, Private: priv, CertDER: der}, nil
}

// JWK returns the key as Entra publishes it in a tenant-specific key set.
func (k *Key) JWK(issuer string) map[string]any {
	m := map[string]any{
		"kty": "RSA",
		"use": "sig",
		"kid": k.KID,
		"x5t": k.X5T,
		"n":   base64.RawURLEncoding.EncodeToString(k.Private.N.Bytes()),
		"e":   base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.Private.E)).Bytes()),
		"x5c": []string{base64.StdEncoding.EncodeToString(k.CertDER)},
	}
	if issuer != "" {
		m["cloud_instance_name"] = "microsoftonline.com"
		m["issuer"] = issuer
	}
	return m
}

// ServeHTTP routes the fake's endpoints.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	path := r.URL.Path
	if path == "/devicelogin" {
		s.serveDeviceLogin(w, r)
		return
	}
	if strings.HasPrefix(path, "/"+OktaTenant+"/") {
		s.serveOkta(w, r, strings.TrimPrefix(path, "/"+OktaTenant))
		return
	}
	tid, rest, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	rest = "/" + rest
	s.mu.Lock()
	t := s.tenants[tid]
	s.mu.Unlock()
	if t == nil || t.generic {
		if tid == "common" || tid == "organizations" {
			s.serveCommon(w, r, tid, rest)
			return
		}
		entraError(w, http.StatusBadRequest, "invalid_tenant", 90002,
			fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", tid))
		return
	}
	switch rest {
	case "/v2.0/.well-known/openid-configuration":
		t.discoveryFetches.Add(1)
		writeJSON(w, http.StatusOK, s.entraDiscovery(tid, true))
	case "/.well-known/openid-configuration":
		t.discoveryFetches.Add(1)
		writeJSON(w, http.StatusOK, s.entraDiscovery(tid, false))
	case "/discovery/v2.0/keys":
		s.serveJWKS(w, r, t, s.Issuer(tid))
	case "/discovery/keys":
		s.serveJWKS(w, r, t, "https://sts.windows.net/"+tid+"/")
	case "/oauth2/v2.0/authorize":
		s.serveAuthorize(w, r, tid)
	case "/oauth2/v2.0/token":
		s.serveToken(w, r, tid)
	case "/oauth2/v2.0/devicecode":
		s.serveDeviceCode(w, r, tid)
	default:
		http.NotFound(w, r)
	}
}

func (s *Server) serveCommon(w http.ResponseWriter, r *http.Request, name, rest string) {
	switch rest {
	case "/v2.0/.well-known/openid-configuration":
		d := s.entraDiscovery("{tenantid}", true)
		d["jwks_uri"] = s.url + "/" + name + "/discovery/v2.0/keys"
		writeJSON(w, http.StatusOK, d)
	case "/discovery/v2.0/keys":
		// Tenant-independent keys: every tenant's keys with the templated issuer.
		var keys []any
		s.mu.Lock()
		for _, tid := range s.order {
			if t := s.tenants[tid]; !t.generic {
				for _, k := range t.keys {
					keys = append(keys, k.JWK(s.url+"/{tenantid}/v2.0"))
				}
			}
		}
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"keys": keys})
	default:
		http.NotFound(w, r)
	}
}

func (s *Server) entraDiscovery(tid string, v2 bool) map[string]any {
	base := s.url + "/" + tid
	if !v2 {
		return map[string]any{
			"token_endpoint":                        base + "/oauth2/token",
			"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
			"jwks_uri":                              base + "/discovery/keys",
			"response_modes_supported":              []string{"query", "fragment", "form_post"},
			"subject_types_supported":               []string{"pairwise"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
			"response_types_supported":              []string{"code", "id_token", "code id_token", "token id_token", "token"},
			"scopes_supported":                      []string{"openid"},
			"issuer":                                s.IssuerV1(tid),
			"microsoft_multi_refresh_token":         true,
			"authorization_endpoint":                base + "/oauth2/authorize",
			"http_logout_supported":                 true,
			"frontchannel_logout_supported":         true,
			"end_session_endpoint":                  base + "/oauth2/logout",
			"claims_supported":                      []string{"sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "amr", "nonce", "email", "given_name", "family_name", "nickname"},
			"tenant_region_scope":                   "EU",
			"cloud_instance_name":                   "microsoftonline.com",
			"cloud_graph_host_name":                 "graph.windows.net",
			"msgraph_host":                          "graph.microsoft.com",
			"rbac_url":                              "https://pas.windows.net",
		}
	}
	return map[string]any{
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"jwks_uri":                              base + "/discovery/v2.0/keys",
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"issuer":                                s.url + "/" + tid + "/v2.0",
		"request_uri_parameter_supported":       false,
		"userinfo_endpoint":                     "https://graph.microsoft.com/oidc/userinfo",
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"device_authorization_endpoint":         base + "/oauth2/v2.0/devicecode",
		"http_logout_supported":                 true,
		"frontchannel_logout_supported":         true,
		"end_session_endpoint":                  base + "/oauth2/v2.0/logout",
		"claims_supported":                      []string{"sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"},
		"kerberos_endpoint":                     base + "/kerberos",
		"tenant_region_scope":                   "EU",
		"cloud_instance_name":                   "microsoftonline.com",
		"cloud_graph_host_name":                 "graph.windows.net",
		"msgraph_host":                          "graph.microsoft.com",
		"rbac_url":                              "https://pas.windows.net",
	}
}

func (s *Server) serveOkta(w http.ResponseWriter, r *http.Request, rest string) {
	t := s.tenant(OktaTenant)
	iss := s.Issuer(OktaTenant)
	switch rest {
	case "/.well-known/openid-configuration", "/.well-known/oauth-authorization-server":
		t.discoveryFetches.Add(1)
		writeJSON(w, http.StatusOK, map[string]any{
			"issuer":                                iss,
			"authorization_endpoint":                iss + "/v1/authorize",
			"token_endpoint":                        iss + "/v1/token",
			"userinfo_endpoint":                     iss + "/v1/userinfo",
			"registration_endpoint":                 s.url + "/oauth2/v1/clients",
			"jwks_uri":                              iss + "/v1/keys",
			"response_types_supported":              []string{"code", "id_token", "code id_token", "code token", "id_token token", "code id_token token"},
			"response_modes_supported":              []string{"query", "fragment", "form_post", "okta_post_message"},
			"grant_types_supported":                 []string{"authorization_code", "implicit", "refresh_token", "password"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
			"scopes_supported":                      []string{"openid", "profile", "email", "address", "phone", "offline_access", "groups"},
			"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt", "none"},
			"claims_supported":                      []string{"iss", "ver", "sub", "aud", "iat", "exp", "jti", "auth_time", "amr", "idp", "nonce", "name", "nickname", "preferred_username", "given_name", "middle_name", "family_name", "email", "email_verified", "profile", "zoneinfo", "locale", "address", "phone_number", "picture", "website", "gender", "birthdate", "updated_at", "at_hash", "c_hash"},
			"code_challenge_methods_supported":      []string{"S256"},
			"introspection_endpoint":                iss + "/v1/introspect",
			"revocation_endpoint":                   iss + "/v1/revoke",
			"end_session_endpoint":                  iss + "/v1/logout",
			"request_parameter_supported":           true,
		})
	case "/v1/keys":
		s.serveJWKS(w, r, t, "")
	case "/v1/authorize":
		s.serveAuthorize(w, r, OktaTenant)
	case "/v1/token":
		s.serveToken(w, r, OktaTenant)
	default:
		http.NotFound(w, r)
	}
}

func (s *Server) serveJWKS(w http.ResponseWriter, r *http.Request, t *tenant, issuer string) {
	t.jwksFetches.Add(1)
	s.mu.Lock()
	mode, custom := t.mode, t.custom
	var keys []any
	for _, k := range t.keys {
		jwk := k.JWK(issuer)
		if t.generic {
			jwk["alg"] = "RS256"
			delete(jwk, "x5c")
			delete(jwk, "x5t")
		}
		keys = append(keys, jwk)
	}
	for _, e := range t.extra {
		keys = append(keys, e)
	}
	s.mu.Unlock()
	switch mode {
	case JWKSStall:
		select {
		case <-r.Context().Done():
		case <-s.stop:
		}
		return
	case JWKS500:
		entraError(w, http.StatusInternalServerError, "temporarily_unavailable", 90033, "A transient error has occurred. Please try again.")
		return
	case JWKSGarbage:
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"keys":[{"kty":"RSA","n":` + "\x00garbage<html>"))
		return
	case JWKSHuge:
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"keys":[{"kty":"RSA","use":"sig","kid":"`))
		chunk := []byte(strings.Repeat("A", 64<<10))
		for i := 0; i < 80; i++ { // 5 MiB
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
		_, _ = w.Write([]byte(`"}]}`))
		return
	case JWKSCustom:
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(custom)
		return
	}
	w.Header().Set("Cache-Control", "max-age=86400, private")
	writeJSON(w, http.StatusOK, map[string]any{"keys": keys})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// entraError writes Entra's OAuth error JSON shape.
func entraError(w http.ResponseWriter, status int, code string, aadsts int, desc string) {
	w.Header().Set("Cache-Control", "no-store, no-cache")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, status, entraErrorBody(code, aadsts, desc))
}

func entraErrorBody(code string, aadsts int, desc string) map[string]any {
	trace, corr := NewGUID(), NewGUID()
	ts := time.Now().UTC().Format("2006-01-02 15:04:05Z")
	return map[string]any{
		"error":             code,
		"error_description": fmt.Sprintf("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s", aadsts, desc, trace, corr, ts),
		"error_codes":       []int{aadsts},
		"timestamp":         ts,
		"trace_id":          trace,
		"correlation_id":    corr,
		"error_uri":         fmt.Sprintf("https://login.microsoftonline.com/error?code=%d", aadsts),
	}
}

// NewGUID returns a random version-4 GUID in Entra's lower-case form.
func NewGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
				return false
			}
		}
	}
	return true
}

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// pairwiseSub derives Entra's per-application sub for a user.
func pairwiseSub(oid, app string) string {
	sum := sha256.Sum256([]byte(oid + "|" + app))
	return base64.RawURLEncoding.EncodeToString(sum[:])[:43]
}

var _ crypto.Signer = (*rsa.PrivateKey)(nil)
