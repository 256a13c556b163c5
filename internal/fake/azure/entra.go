package azure

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// entraError is Entra ID's documented OAuth error body.
type entraError struct {
	Error         string  `json:"error"`
	Description   string  `json:"error_description"`
	ErrorCodes    []int64 `json:"error_codes"`
	Timestamp     string  `json:"timestamp"`
	TraceID       string  `json:"trace_id"`
	CorrelationID string  `json:"correlation_id"`
	ErrorURI      string  `json:"error_uri"`
}

func newEntraError(code string, aadsts int64, text string, now time.Time) entraError {
	trace, corr := uuidish(), uuidish()
	ts := now.UTC().Format("2006-01-02 15:04:05Z")
	return entraError{
		Error:         code,
		Description:   fmt.Sprintf("AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s", aadsts, text, trace, corr, ts),
		ErrorCodes:    []int64{aadsts},
		Timestamp:     ts,
		TraceID:       trace,
		CorrelationID: corr,
		ErrorURI:      fmt.Sprintf("https://login.microsoftonline.com/error?code=%d", aadsts),
	}
}

func (s *Server) entraDefaultBody(status int) any {
	switch status {
	case http.StatusTooManyRequests:
		return newEntraError("temporarily_unavailable", 50196, "The server terminated an operation because it encountered a client request loop.", s.o.Now())
	case http.StatusBadRequest:
		return newEntraError("invalid_request", 90002, "Tenant not found.", s.o.Now())
	case http.StatusUnauthorized:
		return newEntraError("invalid_client", 7000215, "Invalid client secret provided.", s.o.Now())
	}
	return newEntraError("temporarily_unavailable", 90033, "A transient error has occurred. Please try again.", s.o.Now())
}

// handleEntra serves POST /{tenant}/oauth2/v2.0/token (client_credentials).
func (s *Server) handleEntra(w http.ResponseWriter, r *http.Request) {
	if s.begin(Entra, w, r, s.entraDefaultBody) {
		return
	}
	now := s.o.Now()
	fail := func(status int, code string, aadsts int64, text string) {
		s.o.Logger.Info("fake azure: Entra token refused", slog.Int64("aadsts", aadsts))
		writeJSON(w, status, newEntraError(code, aadsts, text, now))
	}
	tenant := r.PathValue("tenant")
	if r.Method != http.MethodPost {
		fail(http.StatusBadRequest, "invalid_request", 900561, "The endpoint only accepts POST requests. Received a "+r.Method+" request.")
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		fail(http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		fail(http.StatusBadRequest, "invalid_request", 900144, "The request body could not be parsed.")
		return
	}
	f := r.PostForm
	s.mu.Lock()
	knownTenant := s.tenants[tenant]
	s.mu.Unlock()
	if !knownTenant {
		fail(http.StatusBadRequest, "invalid_request", 90002, fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", tenant))
		return
	}
	for _, p := range []string{"grant_type", "client_id", "scope"} {
		if f.Get(p) == "" {
			fail(http.StatusBadRequest, "invalid_request", 900144, fmt.Sprintf("The request body must contain the following parameter: '%s'.", p))
			return
		}
	}
	if gt := f.Get("grant_type"); gt != "client_credentials" {
		fail(http.StatusBadRequest, "unsupported_grant_type", 70003, fmt.Sprintf("The app requested an unsupported grant type '%s'.", gt))
		return
	}
	clientID := f.Get("client_id")
	s.mu.Lock()
	a := s.apps[[2]string{tenant, clientID}]
	s.mu.Unlock()
	if a == nil {
		fail(http.StatusBadRequest, "unauthorized_client", 700016, fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'.", clientID, tenant))
		return
	}
	scope := f.Get("scope")
	if !strings.HasSuffix(scope, "/.default") || strings.Contains(scope, " ") {
		fail(http.StatusBadRequest, "invalid_scope", 1002012, fmt.Sprintf("The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", scope))
		return
	}
	endpoint := s.url + "/" + tenant + "/oauth2/v2.0/token"
	var method string
	switch {
	case f.Get("client_secret") != "" && f.Get("client_assertion") != "":
		fail(http.StatusBadRequest, "invalid_request", 50027, "Only one client credential may be presented.")
		return
	case f.Get("client_secret") != "":
		s.mu.Lock()
		ok := a.secrets[f.Get("client_secret")]
		s.mu.Unlock()
		if !ok {
			fail(http.StatusUnauthorized, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '"+clientID+"'.")
			return
		}
		method = "client_secret"
	case f.Get("client_assertion") != "":
		if f.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
			fail(http.StatusBadRequest, "invalid_request", 700025, "Client assertion type is invalid; expected urn:ietf:params:oauth:client-assertion-type:jwt-bearer.")
			return
		}
		m, status, code, aadsts, text := s.checkAssertion(a, f.Get("client_assertion"), endpoint, now)
		if m == "" {
			fail(status, code, aadsts, text)
			return
		}
		method = m
	default:
		fail(http.StatusUnauthorized, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
		return
	}
	res := strings.TrimSuffix(scope, "/.default")
	tok, exp := s.issue(Grant{Method: method, ClientID: clientID, TenantID: tenant, Resource: res})
	in := int64(exp.Sub(now).Seconds())
	s.o.Logger.Info("fake azure: Entra token issued", slog.String("client_id", clientID), slog.String("method", method))
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type":     "Bearer",
		"expires_in":     in,
		"ext_expires_in": in,
		"access_token":   tok,
	})
}

// checkAssertion validates a client assertion. A header with x5t is a
// certificate credential; otherwise the assertion must match a federated
// identity credential. It returns the method or the refusal.
func (s *Server) checkAssertion(a *app, assertion, endpoint string, now time.Time) (method string, status int, code string, aadsts int64, text string) {
	hdr, claims, signed, sig, err := parseJWT(assertion)
	if err != nil {
		return "", http.StatusBadRequest, "invalid_client", 50027, "JWT token is invalid or malformed."
	}
	alg, _ := hdr["alg"].(string)
	if alg != "RS256" {
		return "", http.StatusUnauthorized, "invalid_client", 5002738, fmt.Sprintf("Invalid JWT token. '%s' is not a supported signature algorithm.", alg)
	}
	exp, _ := claims["exp"].(float64)
	nbf, _ := claims["nbf"].(float64)
	if exp == 0 || now.After(time.Unix(int64(exp), 0).Add(5*time.Minute)) || (nbf != 0 && now.Add(5*time.Minute).Before(time.Unix(int64(nbf), 0))) {
		return "", http.StatusUnauthorized, "invalid_client", 700024, "Client assertion is not within its valid time range."
	}
	iss, _ := claims["iss"].(string)
	sub, _ := claims["sub"].(string)
	if x5t, _ := hdr["x5t"].(string); x5t != "" {
		s.mu.Lock()
		cert := a.certs[x5t]
		s.mu.Unlock()
		if cert == nil {
			return "", http.StatusUnauthorized, "invalid_client", 700027, fmt.Sprintf("The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '%s']", x5t)
		}
		pub, _ := cert.PublicKey.(*rsa.PublicKey)
		if pub == nil || verifyRS256(pub, signed, sig) != nil {
			return "", http.StatusUnauthorized, "invalid_client", 700027, "Client assertion failed signature validation."
		}
		if !audienceIs(claims["aud"], endpoint) {
			return "", http.StatusUnauthorized, "invalid_client", 700021, "Client assertion audience claim does not match Realm issuer."
		}
		if iss != a.clientID || sub != a.clientID {
			return "", http.StatusUnauthorized, "invalid_client", 700023, "Client assertion issuer and subject must be the client id."
		}
		return "client_certificate", 0, "", 0, ""
	}
	// Federated credential (workload identity).
	if verifyRS256(&s.federationKey().PublicKey, signed, sig) != nil {
		return "", http.StatusUnauthorized, "invalid_client", 700024, "Client assertion failed signature validation."
	}
	if !audienceIs(claims["aud"], FederatedAudience) {
		return "", http.StatusBadRequest, "invalid_request", 700212, "No matching federated identity record found for presented assertion audience '" + fmt.Sprint(claims["aud"]) + "'."
	}
	s.mu.Lock()
	ok := a.federated[[2]string{iss, sub}]
	s.mu.Unlock()
	if !ok {
		return "", http.StatusBadRequest, "invalid_request", 70021, fmt.Sprintf("No matching federated identity record found for presented assertion. Assertion Issuer: '%s'. Assertion Subject: '%s'.", iss, sub)
	}
	return "federated", 0, "", 0, ""
}

func audienceIs(aud any, want string) bool {
	switch v := aud.(type) {
	case string:
		return v == want
	case []any:
		for _, x := range v {
			if s, _ := x.(string); s == want {
				return true
			}
		}
	}
	return false
}

func parseJWT(tok string) (hdr, claims map[string]any, signed string, sig []byte, err error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, nil, "", nil, errors.New("not three parts")
	}
	hb, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	cb, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	sig, err3 := base64.RawURLEncoding.DecodeString(parts[2])
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, nil, "", nil, err
	}
	if err := json.Unmarshal(hb, &hdr); err != nil {
		return nil, nil, "", nil, err
	}
	if err := json.Unmarshal(cb, &claims); err != nil {
		return nil, nil, "", nil, err
	}
	return hdr, claims, parts[0] + "." + parts[1], sig, nil
}

func verifyRS256(pub *rsa.PublicKey, signed string, sig []byte) error {
	d := sha256.Sum256([]byte(signed))
	return rsa.VerifyPKCS1v15(pub, crypto.SHA256, d[:], sig)
}

func signJWT(key *rsa.PrivateKey, hdr map[string]string, claims map[string]any) string {
	hb, _ := json.Marshal(hdr)
	cb, _ := json.Marshal(claims)
	signed := base64.RawURLEncoding.EncodeToString(hb) + "." + base64.RawURLEncoding.EncodeToString(cb)
	d := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, d[:])
	if err != nil {
		panic(err)
	}
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func thumbprint(cert *x509.Certificate) string {
	sum := sha1.Sum(cert.Raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func uuidish() string {
	h := randomHex(16)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
