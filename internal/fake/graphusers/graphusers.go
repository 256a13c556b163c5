// Package graphusers is a faithful local fake of the part of Microsoft Graph
// v1.0 that the Entra revocation sync reads: GET /v1.0/users/{id | upn}
// with $select (accountEnabled, signInSessionsValidFromDateTime, ...), and
// POST /v1.0/users/{id}/revokeSignInSessions, served over real HTTP on a
// loopback port, plus GET /v1.0/servicePrincipals(appId='{appId}') for
// the service principal's accountEnabled.
//
// Tokens are checked the way Graph checks them, except the signature: a JWT
// whose aud is Graph, unexpired, with a tid; reading users needs the
// application role User.Read.All, User.ReadWrite.All or Directory.Read.All
// (or the delegated scope User.Read.All); revoking sessions needs
// User.ReadWrite.All or Directory.ReadWrite.All. Users live per tenant (the
// token's tid). Errors use Graph's shape {"error":{"code","message",
// "innerError":{"date","request-id","client-request-id"}}} with Graph's
// codes: InvalidAuthenticationToken (401), Authorization_RequestDenied
// (403), Request_ResourceNotFound (404), BadRequest (400) and, when
// injected, TooManyRequests (429 with Retry-After).
package graphusers

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// GraphAppID is Microsoft Graph's application ID (a token's aud).
const GraphAppID = "00000003-0000-0000-c000-000000000000"

// User is a directory user.
type User struct {
	ID                string
	UserPrincipalName string
	DisplayName       string
	AccountEnabled    bool
	// SignInSessionsValidFrom: refresh tokens and sessions issued before
	// this are invalid (Graph's signInSessionsValidFromDateTime).
	SignInSessionsValidFrom time.Time
}

// Options configures Start. The zero value is usable.
type Options struct {
	Addr string           // default 127.0.0.1:0
	Now  func() time.Time // default time.Now
	// Tokens resolves bearer tokens this fake cannot read (the opaque
	// tokens of the fake Entra in internal/fake/azure) to their tenant and
	// application roles, standing in for Graph's own token validation. A
	// token it does not know is checked as a JWT. nil: only JWTs.
	Tokens func(token string) (tid string, roles []string, ok bool)
}

// Server is a running fake.
type Server struct {
	opts     Options
	srv      *http.Server
	url      string
	mu       sync.Mutex
	users    map[string]map[string]*User // tid → id → user
	sps      map[string]map[string]bool  // tid → appId → accountEnabled
	log      []string
	failNext []failure
}

type failure struct {
	status        int
	code, message string
}

// Start listens and serves.
func Start(o Options) (*Server, error) {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("graphusers: listen: %w", err)
	}
	s := &Server{opts: o, url: "http://" + ln.Addr().String(), users: map[string]map[string]*User{}, sps: map[string]map[string]bool{}}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln) //nolint:errcheck // ErrServerClosed on Close
	return s, nil
}

// URL is the base URL; Graph v1.0 is under URL()+"/v1.0".
func (s *Server) URL() string { return s.url }

// Close stops the server.
func (s *Server) Close() error { return s.srv.Close() }

// PutUser stores (or replaces) u in tenant tid.
func (s *Server) PutUser(tid string, u User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.users[tid] == nil {
		s.users[tid] = map[string]*User{}
	}
	c := u
	s.users[tid][strings.ToLower(u.ID)] = &c
}

// SetAccountEnabled enables or disables a user (PATCH accountEnabled).
func (s *Server) SetAccountEnabled(tid, id string, enabled bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.users[tid][strings.ToLower(id)]; u != nil {
		u.AccountEnabled = enabled
	}
}

// RevokeSignInSessions sets the user's signInSessionsValidFromDateTime to
// now (second precision, as Graph reports it) and returns it.
func (s *Server) RevokeSignInSessions(tid, id string) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.revokeLocked(tid, id)
}

func (s *Server) revokeLocked(tid, id string) time.Time {
	u := s.users[tid][strings.ToLower(id)]
	if u == nil {
		return time.Time{}
	}
	u.SignInSessionsValidFrom = s.opts.Now().UTC().Truncate(time.Second)
	return u.SignInSessionsValidFrom
}

// PutServicePrincipal stores the service principal of application appID
// in tenant tid with accountEnabled ("Enabled for users to sign in?").
func (s *Server) PutServicePrincipal(tid, appID string, enabled bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sps[tid] == nil {
		s.sps[tid] = map[string]bool{}
	}
	s.sps[tid][strings.ToLower(appID)] = enabled
}

// DeleteUser removes a user.
func (s *Server) DeleteUser(tid, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.users[tid], strings.ToLower(id))
}

// FailNext makes the next request fail with status and a Graph error
// (429 and 503 carry Retry-After: 1).
func (s *Server) FailNext(status int, code, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext = append(s.failNext, failure{status, code, message})
}

// Requests returns "METHOD /path?query" for every request served.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.log...)
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, status int, code, format string, args ...any) {
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="`+GraphAppID+`"`)
	}
	crid := r.Header.Get("client-request-id")
	if crid == "" {
		crid = w.Header().Get("request-id")
	}
	writeJSON(w, status, map[string]any{"error": map[string]any{
		"code": code, "message": fmt.Sprintf(format, args...),
		"innerError": map[string]any{"date": s.opts.Now().UTC().Format("2006-01-02T15:04:05"), "request-id": w.Header().Get("request-id"), "client-request-id": crid},
	}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// userProps are the properties this fake knows, as Graph names them.
var userProps = []string{"id", "userPrincipalName", "displayName", "accountEnabled", "signInSessionsValidFromDateTime"}

// ServeHTTP implements the fake.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("request-id", newID())
	s.mu.Lock()
	s.log = append(s.log, r.Method+" "+r.URL.RequestURI())
	if len(s.failNext) > 0 {
		f := s.failNext[0]
		s.failNext = s.failNext[1:]
		s.mu.Unlock()
		s.writeError(w, r, f.status, f.code, "%s", f.message)
		return
	}
	s.mu.Unlock()

	tid, roles, scopes, ok := s.authorize(w, r)
	if !ok {
		return
	}
	path := strings.TrimSuffix(r.URL.Path, "/")
	if !strings.HasPrefix(path, "/v1.0/") {
		s.writeError(w, r, http.StatusBadRequest, "BadRequest", "Invalid version: %s", strings.SplitN(strings.TrimPrefix(path, "/"), "/", 2)[0])
		return
	}
	seg := strings.Split(strings.TrimPrefix(path, "/v1.0/"), "/")
	if strings.HasPrefix(seg[0], "servicePrincipals(") {
		s.servicePrincipal(w, r, tid, roles, seg)
		return
	}
	if seg[0] != "users" || len(seg) < 2 || len(seg) > 3 || (len(seg) == 3 && seg[2] != "revokeSignInSessions") {
		s.writeError(w, r, http.StatusBadRequest, "BadRequest", "Resource not found for the segment '%s'.", seg[len(seg)-1])
		return
	}
	has := func(set []string, want ...string) bool {
		for _, x := range set {
			for _, y := range want {
				if x == y {
					return true
				}
			}
		}
		return false
	}
	write := len(seg) == 3
	if write && !has(roles, "User.ReadWrite.All", "Directory.ReadWrite.All") && !has(scopes, "User.ReadWrite.All", "Directory.AccessAsUser.All") {
		s.writeError(w, r, http.StatusForbidden, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
		return
	}
	if !write && !has(roles, "User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All") && !has(scopes, "User.Read.All", "User.ReadBasic.All", "Directory.Read.All") {
		s.writeError(w, r, http.StatusForbidden, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
		return
	}
	if (write && r.Method != http.MethodPost) || (!write && r.Method != http.MethodGet) {
		s.writeError(w, r, http.StatusMethodNotAllowed, "Request_BadRequest", "Specified HTTP method is not allowed for the request uri.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var u *User
	for _, c := range s.users[tid] {
		if strings.EqualFold(c.ID, seg[1]) || strings.EqualFold(c.UserPrincipalName, seg[1]) {
			u = c
		}
	}
	if u == nil {
		s.writeError(w, r, http.StatusNotFound, "Request_ResourceNotFound", "Resource '%s' does not exist or one of its queried reference-property objects are not present.", seg[1])
		return
	}
	if write {
		s.revokeLocked(tid, u.ID)
		writeJSON(w, http.StatusOK, map[string]any{"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Edm.Boolean", "value": true})
		return
	}
	all := map[string]any{
		"id": u.ID, "userPrincipalName": u.UserPrincipalName, "displayName": u.DisplayName,
		"accountEnabled": u.AccountEnabled, "signInSessionsValidFromDateTime": nil,
	}
	if !u.SignInSessionsValidFrom.IsZero() {
		all["signInSessionsValidFromDateTime"] = u.SignInSessionsValidFrom.UTC().Format(time.RFC3339)
	}
	// Without $select Graph returns a default set, which does not include
	// accountEnabled or signInSessionsValidFromDateTime.
	sel := []string{"id", "userPrincipalName", "displayName"}
	if q := r.URL.Query().Get("$select"); q != "" {
		sel = strings.Split(q, ",")
	}
	out := map[string]any{"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users(" + strings.Join(sel, ",") + ")/$entity"}
	for _, p := range sel {
		p = strings.TrimSpace(p)
		known := false
		for _, k := range userProps {
			if strings.EqualFold(k, p) {
				out[k], known = all[k], true
			}
		}
		if !known {
			s.writeError(w, r, http.StatusBadRequest, "BadRequest", "Could not find a property named '%s' on type 'microsoft.graph.user'.", p)
			return
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// servicePrincipal serves GET /v1.0/servicePrincipals(appId='{appId}').
func (s *Server) servicePrincipal(w http.ResponseWriter, r *http.Request, tid string, roles []string, seg []string) {
	appID, ok := strings.CutPrefix(seg[0], "servicePrincipals(appId='")
	appID, ok2 := strings.CutSuffix(appID, "')")
	if !ok || !ok2 || len(seg) != 1 {
		s.writeError(w, r, http.StatusBadRequest, "BadRequest", "Resource not found for the segment '%s'.", seg[0])
		return
	}
	allowed := false
	for _, ro := range roles {
		if ro == "Application.Read.All" || ro == "Application.ReadWrite.All" || ro == "Directory.Read.All" || ro == "Directory.ReadWrite.All" {
			allowed = true
		}
	}
	if !allowed {
		s.writeError(w, r, http.StatusForbidden, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
		return
	}
	if r.Method != http.MethodGet {
		s.writeError(w, r, http.StatusMethodNotAllowed, "Request_BadRequest", "Specified HTTP method is not allowed for the request uri.")
		return
	}
	s.mu.Lock()
	enabled, found := s.sps[tid][strings.ToLower(appID)]
	s.mu.Unlock()
	if !found {
		s.writeError(w, r, http.StatusNotFound, "Request_ResourceNotFound", "Resource '%s' does not exist or one of its queried reference-property objects are not present.", appID)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#servicePrincipals(accountEnabled)/$entity", "accountEnabled": enabled})
}

// authorize checks the bearer token and returns its tenant, roles and
// scopes; on failure it has written the error.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) (tid string, roles, scopes []string, ok bool) {
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || tok == "" {
		s.writeError(w, r, http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token is empty.")
		return "", nil, nil, false
	}
	if s.opts.Tokens != nil {
		if tid, roles, ok := s.opts.Tokens(tok); ok {
			return strings.ToLower(tid), roles, nil, true
		}
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		s.writeError(w, r, http.StatusUnauthorized, "InvalidAuthenticationToken", "IDX14100: JWT is not well formed, there are no dots (.).")
		return "", nil, nil, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	var c struct {
		Aud   string   `json:"aud"`
		Exp   int64    `json:"exp"`
		Tid   string   `json:"tid"`
		Scp   string   `json:"scp"`
		Roles []string `json:"roles"`
	}
	if err != nil || json.Unmarshal(payload, &c) != nil {
		s.writeError(w, r, http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token validation failure.")
		return "", nil, nil, false
	}
	if c.Aud != GraphAppID && c.Aud != "https://graph.microsoft.com" && c.Aud != "https://graph.microsoft.com/" {
		s.writeError(w, r, http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.")
		return "", nil, nil, false
	}
	if c.Exp == 0 || !s.opts.Now().Before(time.Unix(c.Exp, 0)) {
		s.writeError(w, r, http.StatusUnauthorized, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.")
		return "", nil, nil, false
	}
	if len(c.Tid) != 36 {
		s.writeError(w, r, http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token validation failure.")
		return "", nil, nil, false
	}
	return strings.ToLower(c.Tid), c.Roles, strings.Fields(c.Scp), true
}

// AppToken mints an unsigned-looking app-only Graph token for tenant tid
// with the given application roles, valid for an hour (for tests and the
// demo; the fake does not check signatures, as only Graph can).
func AppToken(tid string, roles ...string) string {
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	return enc(map[string]any{"typ": "JWT", "alg": "RS256"}) + "." +
		enc(map[string]any{"aud": "https://graph.microsoft.com", "tid": tid, "roles": roles, "idtyp": "app", "exp": time.Now().Add(time.Hour).Unix()}) + ".c2ln"
}
