package idp

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// This file is the fake's sign-in surface for public clients (the
// `gatehouse login` credential helper, Claude Desktop's gateway SSO): the
// authorization code flow with PKCE S256 and a loopback redirect, and the
// refresh_token grant, in Entra's v2 wire format:
//
//	GET  /{tid}/oauth2/v2.0/authorize?client_id&response_type=code&redirect_uri
//	     &scope&state&nonce&code_challenge&code_challenge_method=S256[&login_hint]
//	     → 302 redirect_uri?code=...&state=...&session_state=...
//	POST /{tid}/oauth2/v2.0/token (application/x-www-form-urlencoded)
//	     grant_type=authorization_code&code&redirect_uri&client_id&code_verifier
//	     grant_type=refresh_token&refresh_token&client_id[&scope]
//	     → {"token_type":"Bearer","scope","expires_in","ext_expires_in",
//	        "access_token","refresh_token","id_token"}
//
// There is no login page: the authorize endpoint signs in DefaultUser, or
// the user in Options.Users whose Username or Email equals login_hint.
// Errors use Entra's shapes: an error page (400) when the client or
// redirect URI cannot be trusted, a redirect with error/error_description
// otherwise, and {"error","error_description","error_codes",...} JSON at the
// token endpoint.

// codeTTL is how long an authorization code may be redeemed (Entra: ~10 min).
const codeTTL = 10 * time.Minute

type authCode struct {
	tid, clientID, redirectURI, scope, nonce, challenge string
	user                                                User
	expires                                             time.Time
	redeemed                                            bool
}

type refreshGrant struct {
	tid, clientID, scope string
	user                 User
	issued               time.Time
}

type loginState struct {
	mu        sync.Mutex
	codes     map[string]*authCode
	refresh   map[string]*refreshGrant
	revokedAt map[string]time.Time // oid → sessions revoked at

	authorizeRequests atomic.Int64
	tokenRequests     atomic.Int64
}

func (l *loginState) init() {
	l.codes = map[string]*authCode{}
	l.refresh = map[string]*refreshGrant{}
	l.revokedAt = map[string]time.Time{}
}

// AuthorizeRequests counts requests to the authorize endpoints.
func (s *Server) AuthorizeRequests() int64 { return s.login.authorizeRequests.Load() }

// TokenRequests counts requests to the token endpoints.
func (s *Server) TokenRequests() int64 { return s.login.tokenRequests.Load() }

// RevokeSignInSessions invalidates every refresh token issued to the user
// with this oid, like Graph's revokeSignInSessions.
func (s *Server) RevokeSignInSessions(oid string) {
	s.login.mu.Lock()
	defer s.login.mu.Unlock()
	s.login.revokedAt[oid] = s.opts.Now().Add(time.Second)
}

// TokenEndpoint returns tid's token endpoint URL.
func (s *Server) TokenEndpoint(tid string) string {
	if tid == OktaTenant {
		return s.Issuer(tid) + "/v1/token"
	}
	return s.url + "/" + tid + "/oauth2/v2.0/token"
}

// AuthorizeEndpoint returns tid's authorization endpoint URL.
func (s *Server) AuthorizeEndpoint(tid string) string {
	if tid == OktaTenant {
		return s.Issuer(tid) + "/v1/authorize"
	}
	return s.url + "/" + tid + "/oauth2/v2.0/authorize"
}

func (s *Server) findClient(id string) (Client, bool) {
	if len(s.opts.Clients) == 0 {
		return Client{ID: id}, isGUID(id) || (id != "" && len(id) <= 64 && !strings.ContainsAny(id, " /?#"))
	}
	for _, c := range s.opts.Clients {
		if c.ID == id {
			return c, true
		}
	}
	return Client{}, false
}

// redirectAllowed applies Entra's matching: exact match, except that for
// loopback redirect URIs (http://localhost, http://127.0.0.1, http://[::1])
// the port is ignored. With no registered URIs, any loopback URI is allowed.
func redirectAllowed(c Client, raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Fragment != "" {
		return false
	}
	loop := u.Scheme == "http" && (u.Hostname() == "localhost" || u.Hostname() == "127.0.0.1" || u.Hostname() == "::1")
	if len(c.RedirectURIs) == 0 {
		return loop
	}
	for _, reg := range c.RedirectURIs {
		if reg == raw {
			return true
		}
		r, err := url.Parse(reg)
		if err == nil && loop && r.Scheme == u.Scheme && r.Hostname() == u.Hostname() && r.Path == u.Path {
			return true
		}
	}
	return false
}

func errorPage(w http.ResponseWriter, aadsts int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusBadRequest)
	fmt.Fprintf(w, "<!DOCTYPE html><html><head><title>Sign in to your account</title></head><body><div id=\"error\">AADSTS%d: %s</div></body></html>", aadsts, html.EscapeString(msg))
}

func redirectError(w http.ResponseWriter, r *http.Request, redirectURI, state, code string, aadsts int, desc string) {
	u, _ := url.Parse(redirectURI)
	q := u.Query()
	q.Set("error", code)
	q.Set("error_description", fmt.Sprintf("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s", aadsts, desc, NewGUID(), NewGUID(), time.Now().UTC().Format("2006-01-02 15:04:05Z")))
	if state != "" {
		q.Set("state", state)
	}
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

func (s *Server) serveAuthorize(w http.ResponseWriter, r *http.Request, tid string) {
	s.login.authorizeRequests.Add(1)
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	_ = r.ParseForm()
	q := r.Form
	clientID := q.Get("client_id")
	if clientID == "" {
		errorPage(w, 900144, "The request body must contain the following parameter: 'client_id'.")
		return
	}
	client, ok := s.findClient(clientID)
	if !ok {
		errorPage(w, 700016, fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.", clientID, tid))
		return
	}
	redirectURI := q.Get("redirect_uri")
	if redirectURI == "" || !redirectAllowed(client, redirectURI) {
		errorPage(w, 50011, fmt.Sprintf("The redirect URI '%s' specified in the request does not match the redirect URIs configured for the application '%s'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal.", redirectURI, clientID))
		return
	}
	state := q.Get("state")
	if rt := q.Get("response_type"); rt != "code" {
		redirectError(w, r, redirectURI, state, "unsupported_response_type", 700054, fmt.Sprintf("response_type '%s' is not enabled for the application.", rt))
		return
	}
	challenge, method := q.Get("code_challenge"), q.Get("code_challenge_method")
	if challenge == "" {
		redirectError(w, r, redirectURI, state, "invalid_request", 9002325, "Proof Key for Code Exchange is required for cross-origin authorization code redemption.")
		return
	}
	if method != "S256" {
		redirectError(w, r, redirectURI, state, "invalid_request", 501491, fmt.Sprintf("Invalid code_challenge_method '%s'. Only S256 is accepted.", method))
		return
	}
	if len(challenge) != 43 {
		redirectError(w, r, redirectURI, state, "invalid_request", 501491, "Invalid size of Code_Challenge parameter.")
		return
	}
	scope := q.Get("scope")
	if scope == "" {
		redirectError(w, r, redirectURI, state, "invalid_request", 900144, "The request body must contain the following parameter: 'scope'.")
		return
	}
	user := s.opts.DefaultUser
	if hint := q.Get("login_hint"); hint != "" && !strings.EqualFold(hint, user.Username) && !strings.EqualFold(hint, user.Email) {
		found := false
		for _, u := range s.opts.Users {
			if strings.EqualFold(hint, u.Username) || strings.EqualFold(hint, u.Email) {
				user, found = u, true
				break
			}
		}
		if !found {
			redirectError(w, r, redirectURI, state, "invalid_request", 50034, fmt.Sprintf("The user account %s does not exist in the %s directory. To sign into this application, the account must be added to the directory.", hint, tid))
			return
		}
	}
	code := "1.A" + randomID(96)
	s.login.mu.Lock()
	s.login.codes[code] = &authCode{
		tid: tid, clientID: clientID, redirectURI: redirectURI, scope: scope, nonce: q.Get("nonce"),
		challenge: challenge, user: user, expires: s.opts.Now().Add(codeTTL),
	}
	s.login.mu.Unlock()
	u, _ := url.Parse(redirectURI)
	rq := u.Query()
	rq.Set("code", code)
	if state != "" {
		rq.Set("state", state)
	}
	rq.Set("session_state", NewGUID())
	u.RawQuery = rq.Encode()
	w.Header().Set("Cache-Control", "no-store, no-cache")
	http.Redirect(w, r, u.String(), http.StatusFound)
}

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request, tid string) {
	s.login.tokenRequests.Add(1)
	f, ok := entraForm(w, r, "grant_type", "client_id")
	if !ok {
		return
	}
	clientID := f.Get("client_id")
	if _, ok := s.findClient(clientID); !ok {
		entraError(w, http.StatusBadRequest, "unauthorized_client", 700016, fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'.", clientID, tid))
		return
	}
	switch f.Get("grant_type") {
	case "authorization_code":
		s.redeemCode(w, f, tid, clientID)
	case "refresh_token":
		s.redeemRefresh(w, f, tid, clientID)
	case "client_credentials":
		s.clientCredentials(w, f, tid, clientID)
	case DeviceGrantType:
		s.redeemDevice(w, f, tid, clientID)
	default:
		entraError(w, http.StatusBadRequest, "unsupported_grant_type", 70003, fmt.Sprintf("The app requested an unsupported grant type '%s'.", f.Get("grant_type")))
	}
}

func (s *Server) redeemCode(w http.ResponseWriter, f url.Values, tid, clientID string) {
	for _, p := range []string{"code", "redirect_uri", "code_verifier"} {
		if f.Get(p) == "" {
			entraError(w, http.StatusBadRequest, "invalid_request", 900144, fmt.Sprintf("The request body must contain the following parameter: '%s'.", p))
			return
		}
	}
	s.login.mu.Lock()
	c := s.login.codes[f.Get("code")]
	var problem func()
	switch {
	case c == nil || c.tid != tid:
		problem = func() {
			entraError(w, http.StatusBadRequest, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid. - The provided value for the 'code' parameter is not valid.")
		}
	case c.redeemed:
		problem = func() {
			entraError(w, http.StatusBadRequest, "invalid_grant", 54005, "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.")
		}
	case s.opts.Now().After(c.expires):
		problem = func() {
			entraError(w, http.StatusBadRequest, "invalid_grant", 70008, "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.")
		}
	case c.clientID != clientID:
		problem = func() {
			entraError(w, http.StatusBadRequest, "invalid_grant", 70000, "The provided value for the 'code' parameter is not valid. The code was issued to a different client.")
		}
	case c.redirectURI != f.Get("redirect_uri"):
		problem = func() {
			entraError(w, http.StatusBadRequest, "invalid_grant", 500117, "The reply uri specified in the request isn't expected by the client.")
		}
	case !pkceMatches(f.Get("code_verifier"), c.challenge):
		problem = func() {
			entraError(w, http.StatusBadRequest, "invalid_grant", 501481, "The Code_Verifier does not match the code_challenge supplied in the authorization request.")
		}
	}
	if c != nil && problem == nil {
		c.redeemed = true
	}
	s.login.mu.Unlock()
	if problem != nil {
		problem()
		return
	}
	s.issue(w, tid, clientID, c.scope, c.nonce, c.user)
}

func pkceMatches(verifier, challenge string) bool {
	if len(verifier) < 43 || len(verifier) > 128 {
		return false
	}
	sum := sha256.Sum256([]byte(verifier))
	got := base64.RawURLEncoding.EncodeToString(sum[:])
	return subtle.ConstantTimeCompare([]byte(got), []byte(challenge)) == 1
}

func (s *Server) redeemRefresh(w http.ResponseWriter, f url.Values, tid, clientID string) {
	rt := f.Get("refresh_token")
	if rt == "" {
		entraError(w, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'refresh_token'.")
		return
	}
	s.login.mu.Lock()
	g := s.login.refresh[rt]
	var revoked bool
	if g != nil {
		if at, ok := s.login.revokedAt[g.user.OID]; ok && !g.issued.After(at) {
			revoked = true
		}
	}
	s.login.mu.Unlock()
	switch {
	case g == nil || g.tid != tid:
		entraError(w, http.StatusBadRequest, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid. - The provided value for the 'refresh_token' parameter is not valid.")
		return
	case revoked:
		entraError(w, http.StatusBadRequest, "invalid_grant", 50173, "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password.")
		return
	case g.clientID != clientID:
		entraError(w, http.StatusBadRequest, "invalid_grant", 700005, "Provided Authorization Code is intended to use against other tenant or client, thus rejected.")
		return
	}
	scope := g.scope
	if sc := f.Get("scope"); sc != "" {
		scope = sc
	}
	s.issue(w, tid, clientID, scope, "", g.user)
}

// clientCredentials issues an app-only access token (idtyp "app", no scp)
// for scope "<resource>/.default" to a confidential client.
func (s *Server) clientCredentials(w http.ResponseWriter, f url.Values, tid, clientID string) {
	c, _ := s.findClient(clientID)
	secret := f.Get("client_secret")
	if c.Secret == "" || subtle.ConstantTimeCompare([]byte(secret), []byte(c.Secret)) != 1 {
		entraError(w, http.StatusUnauthorized, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '"+clientID+"'.")
		return
	}
	scope := f.Get("scope")
	resource, ok := strings.CutSuffix(scope, "/.default")
	if !ok || resource == "" {
		entraError(w, http.StatusBadRequest, "invalid_scope", 1002012, "The provided value for scope "+scope+" is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).")
		return
	}
	const ttl = time.Hour
	now := s.opts.Now()
	claims := map[string]any{
		"aud": resource, "iss": s.Issuer(tid), "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(ttl).Unix(),
		"aio": randomID(32), "azp": clientID, "azpacr": "1", "idp": s.Issuer(tid), "idtyp": "app",
		"oid": pairwiseSub(clientID, "sp")[:36], "roles": []string{"GroupMember.Read.All"},
		"sub": pairwiseSub(clientID, "sp")[:36], "tid": tid, "uti": randomID(16), "ver": "2.0",
	}
	w.Header().Set("Cache-Control", "no-store, no-cache")
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type": "Bearer", "expires_in": int(ttl/time.Second) - 1, "ext_expires_in": int(ttl/time.Second) - 1,
		"access_token": s.Sign(tid, nil, claims),
	})
}

var oidcScopes = map[string]bool{"openid": true, "profile": true, "email": true, "offline_access": true}

// APIScopeAudience resolves a resource scope ("api://<app-id>/name" or
// "<app-id>/name") to the access token audience. Other App ID URIs resolve
// to the URI itself.
func APIScopeAudience(scope string) string {
	res := scope
	if i := strings.LastIndex(scope, "/"); i > 0 {
		res = scope[:i]
	}
	if g := strings.TrimPrefix(res, "api://"); isGUID(g) {
		return g
	}
	return res
}

func (s *Server) issue(w http.ResponseWriter, tid, clientID, scope, nonce string, u User) {
	const ttl = time.Hour
	var std, res []string
	for _, sc := range strings.Fields(scope) {
		if oidcScopes[sc] {
			std = append(std, sc)
		} else {
			res = append(res, sc)
		}
	}
	out := map[string]any{"token_type": "Bearer", "expires_in": int(ttl/time.Second) - 1, "ext_expires_in": int(ttl/time.Second) - 1}
	var resource string
	for _, sc := range res {
		a := APIScopeAudience(sc)
		if resource != "" && a != resource {
			entraError(w, http.StatusBadRequest, "invalid_scope", 28000, "Provided value for the input parameter scope is not valid because it contains more than one resource. Scope "+scope+" is not valid.")
			return
		}
		resource = a
	}
	var names []string
	for _, sc := range res {
		names = append(names, sc[strings.LastIndex(sc, "/")+1:])
	}
	switch {
	case tid == OktaTenant:
		out["access_token"] = s.Sign(tid, nil, s.AccessTokenClaims(tid, "api://default", clientID, u, strings.Fields(scope), ttl))
		out["scope"] = scope
	case resource == "":
		out["access_token"] = s.GraphToken(tid, clientID, u, ttl)
		out["scope"] = joinSpace(append(append([]string(nil), std...), "User.Read"))
	default:
		out["access_token"] = s.AccessToken(tid, resource, clientID, u, names, ttl)
		out["scope"] = joinSpace(res)
	}
	has := func(x string) bool {
		for _, sc := range std {
			if sc == x {
				return true
			}
		}
		return false
	}
	if has("openid") {
		c := s.Claims(tid, clientID, u, ttl)
		if nonce != "" {
			c["nonce"] = nonce
		}
		out["id_token"] = s.Sign(tid, nil, c)
	}
	if has("offline_access") {
		out["refresh_token"] = s.issueRefresh(tid, clientID, scope, u)
	}
	writeTokens(w, out)
}

// issueRefresh mints a refresh token for u and remembers its grant.
func (s *Server) issueRefresh(tid, clientID, scope string, u User) string {
	rt := "1.A" + randomID(160)
	s.login.mu.Lock()
	s.login.refresh[rt] = &refreshGrant{tid: tid, clientID: clientID, scope: scope, user: u, issued: s.opts.Now()}
	s.login.mu.Unlock()
	return rt
}

// writeTokens answers a token request as Entra does: 200, never cached.
func writeTokens(w http.ResponseWriter, out map[string]any) {
	w.Header().Set("Cache-Control", "no-store, no-cache")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, out)
}

// entraForm reads a token-style endpoint's form as Entra does: POST only,
// form-encoded, at most 1 MiB, the required parameters present (the first
// is the one named when the body is not a form). It answers the error
// itself and reports false when there is one.
func entraForm(w http.ResponseWriter, r *http.Request, required ...string) (url.Values, bool) {
	if r.Method != http.MethodPost {
		entraError(w, http.StatusMethodNotAllowed, "invalid_request", 900561, "The endpoint only accepts POST requests. Received a "+r.Method+" request.")
		return nil, false
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		entraError(w, http.StatusBadRequest, "invalid_request", 900144, fmt.Sprintf("The request body must contain the following parameter: '%s'.", required[0]))
		return nil, false
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		entraError(w, http.StatusBadRequest, "invalid_request", 90014, "The request body is malformed.")
		return nil, false
	}
	for _, p := range required {
		if r.PostForm.Get(p) == "" {
			entraError(w, http.StatusBadRequest, "invalid_request", 900144, fmt.Sprintf("The request body must contain the following parameter: '%s'.", p))
			return nil, false
		}
	}
	return r.PostForm, true
}
