// Package graph is a faithful local fake of the part of Microsoft Graph v1.0
// that app registration uses: /v1.0/applications, /v1.0/servicePrincipals
// (with appRoleAssignedTo), and lookups of /v1.0/users/{id|upn} and
// /v1.0/groups/{id}, served over real HTTP on a loopback port. Tests
// and `gatehouse demo` use it in place of graph.microsoft.com, which
// development machines cannot reach.
//
// Wire formats follow Graph's documentation: OData collections
// ({"@odata.context":…,"value":[…]}), 201 with the created entity on POST,
// 204 on PATCH, $filter on displayName and appId (eq only), paging with
// @odata.nextLink and $skiptoken (Options.PageSize), and Graph's
// error shape {"error":{"code","message","innerError":{"date","request-id",
// "client-request-id"}}} with Graph's codes: InvalidAuthenticationToken
// (401), Authorization_RequestDenied (403), Request_ResourceNotFound (404),
// Request_BadRequest (400, including unknown and read-only properties),
// Request_UnsupportedQuery, CannotDeleteOrUpdateEnabledEntitlement,
// HostNameNotOnVerifiedDomain, Request_MultipleObjectsWithSameKeyValue (409;
// the status for a duplicate service principal is our best reading of
// Graph's behaviour) and TooManyRequests (429 with Retry-After).
//
// Tokens are checked the way Graph checks them, except the signature, which
// only Graph can verify: a JWT whose aud is Graph, unexpired, with the
// delegated scope Application.ReadWrite.All or Directory.AccessAsUser.All,
// or the application role Application.ReadWrite.All. Objects live per tenant
// (the token's tid). The fake can also misbehave on purpose: inject the next
// error (FailNext) and simulate directory replication lag for new
// applications (SetReplicationLag), which real tenants show as "does not
// reference a valid application object" on an immediate service principal
// creation.
package graph

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// GraphAppID is Microsoft Graph's application ID.
const GraphAppID = "00000003-0000-0000-c000-000000000000"

// Options configures Start. The zero value is usable.
type Options struct {
	// Addr is the listen address. Default "127.0.0.1:0".
	Addr string
	// Now is the clock (token expiry, createdDateTime). Default time.Now.
	Now func() time.Time
	// PageSize is the number of objects per collection page; further pages
	// are linked with @odata.nextLink ($skiptoken), as Graph does. Default
	// 100 (Graph's default for these collections).
	PageSize int
}

// Server is a running fake.
type Server struct {
	opts Options
	ln   net.Listener
	srv  *http.Server
	url  string

	mu       sync.Mutex
	tenants  map[string]*directory
	log      []string
	failNext []injected
	lag      int
}

type directory struct {
	apps        []map[string]any
	sps         []map[string]any
	users       []map[string]any
	groups      []map[string]any
	assignments []map[string]any // appRoleAssignment objects (resourceId = service principal id)
	lag         map[string]int   // appId → failed service principal creations still to come
}

type injected struct {
	status     int
	code, msg  string
	retryAfter string
}

// Start listens and serves.
func Start(o Options) (*Server, error) {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.PageSize <= 0 {
		o.PageSize = 100
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("graph: listen: %w", err)
	}
	s := &Server{opts: o, ln: ln, url: "http://" + ln.Addr().String(), tenants: map[string]*directory{}}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln) //nolint:errcheck // ErrServerClosed on Close
	return s, nil
}

// URL is the base URL (no trailing slash); Graph v1.0 is under URL()+"/v1.0".
func (s *Server) URL() string { return s.url }

// Close stops the server.
func (s *Server) Close() error { return s.srv.Close() }

// Requests returns "METHOD /path?query" for every request served, in order.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.log...)
}

// FailNext makes the next request fail with status and a Graph error body.
// For 429 and 503 a Retry-After of one second is sent.
func (s *Server) FailNext(status int, code, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ra := ""
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
		ra = "1"
	}
	s.failNext = append(s.failNext, injected{status, code, message, ra})
}

// SetReplicationLag makes the first n service principal creations for each
// newly created application fail as they do in a real tenant right after
// the application is created.
func (s *Server) SetReplicationLag(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lag = n
}

func (s *Server) dir(tid string) *directory {
	d := s.tenants[tid]
	if d == nil {
		d = &directory{lag: map[string]int{}}
		s.tenants[tid] = d
	}
	return d
}

// PutApplication stores app in tenant tid as it is (seeding state a test
// starts from, e.g. a Web-platform registration or one with secrets) and
// returns the stored copy with id, appId and createdDateTime filled in.
func (s *Server) PutApplication(tid string, app map[string]any) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := clone(app)
	if a["id"] == nil {
		a["id"] = NewGUID()
	}
	if a["appId"] == nil {
		a["appId"] = NewGUID()
	}
	fillApplicationDefaults(a, s.opts.Now())
	d := s.dir(tid)
	d.apps = append(d.apps, a)
	return clone(a)
}

// Applications returns copies of tenant tid's applications.
func (s *Server) Applications(tid string) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, a := range s.dir(tid).apps {
		out = append(out, clone(a))
	}
	return out
}

// ServicePrincipals returns copies of tenant tid's service principals.
func (s *Server) ServicePrincipals(tid string) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, sp := range s.dir(tid).sps {
		out = append(out, clone(sp))
	}
	return out
}

// Error is a Graph error response.
type Error struct {
	Status     int
	Code       string
	Message    string
	RetryAfter string
}

func gerr(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, e *Error) {
	if e.RetryAfter != "" {
		w.Header().Set("Retry-After", e.RetryAfter)
	}
	body := map[string]any{"error": map[string]any{
		"code":    e.Code,
		"message": e.Message,
		"innerError": map[string]any{
			"date":              s.opts.Now().UTC().Format("2006-01-02T15:04:05"),
			"request-id":        w.Header().Get("request-id"),
			"client-request-id": w.Header().Get("client-request-id"),
		},
	}}
	writeJSON(w, e.Status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// ServeHTTP routes a Graph request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reqID := NewGUID()
	w.Header().Set("request-id", reqID)
	crid := r.Header.Get("client-request-id")
	if crid == "" {
		crid = reqID
	}
	w.Header().Set("client-request-id", crid)
	w.Header().Set("x-ms-ags-diagnostic", `{"ServerInfo":{"DataCenter":"Local","Slice":"E","Ring":"0","ScaleUnit":"000","RoleInstance":"fake-graph"}}`)

	s.mu.Lock()
	s.log = append(s.log, r.Method+" "+r.URL.RequestURI())
	if len(s.failNext) > 0 {
		f := s.failNext[0]
		s.failNext = s.failNext[1:]
		s.mu.Unlock()
		s.writeError(w, r, &Error{Status: f.status, Code: f.code, Message: f.msg, RetryAfter: f.retryAfter})
		return
	}
	s.mu.Unlock()

	tid, e := s.authorize(r)
	if e != nil {
		if e.Status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="`+GraphAppID+`"`)
		}
		s.writeError(w, r, e)
		return
	}
	path := strings.TrimSuffix(r.URL.Path, "/")
	if !strings.HasPrefix(path, "/v1.0/") {
		s.writeError(w, r, gerr(http.StatusBadRequest, "BadRequest", "Invalid version: %s", strings.SplitN(strings.TrimPrefix(path, "/"), "/", 2)[0]))
		return
	}
	seg := strings.Split(strings.TrimPrefix(path, "/v1.0/"), "/")
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.dir(tid)
	var status int
	var out any
	switch {
	case len(seg) == 1 && (seg[0] == "applications" || seg[0] == "servicePrincipals"):
		switch r.Method {
		case http.MethodGet:
			status, out, e = s.list(d, seg[0], r)
		case http.MethodPost:
			var body map[string]any
			if body, e = readBody(r); e == nil {
				if seg[0] == "applications" {
					status, out, e = s.createApp(d, body)
				} else {
					status, out, e = s.createSP(d, body)
				}
			}
		default:
			e = gerr(http.StatusMethodNotAllowed, "Request_BadRequest", "Specified HTTP method is not allowed for the request uri.")
		}
	case len(seg) == 2 && (seg[0] == "users" || seg[0] == "groups"):
		if r.Method != http.MethodGet {
			e = gerr(http.StatusMethodNotAllowed, "Request_BadRequest", "Specified HTTP method is not allowed for the request uri.")
			break
		}
		coll := d.users
		if seg[0] == "groups" {
			coll = d.groups
		}
		i := find(coll, "id", seg[1])
		if i < 0 && seg[0] == "users" {
			for j, u := range coll {
				if strings.EqualFold(str(u["userPrincipalName"]), seg[1]) {
					i = j
				}
			}
		}
		if i < 0 {
			e = gerr(http.StatusNotFound, "Request_ResourceNotFound", "Resource '%s' does not exist or one of its queried reference-property objects are not present.", seg[1])
			break
		}
		status, out = http.StatusOK, withContext(seg[0]+"/$entity", clone(coll[i]))
	case len(seg) == 3 && seg[0] == "servicePrincipals" && seg[2] == "appRoleAssignedTo":
		status, out, e = s.appRoleAssignedTo(d, seg[1], r)
	case len(seg) == 2 && (seg[0] == "applications" || seg[0] == "servicePrincipals"):
		coll := &d.apps
		if seg[0] == "servicePrincipals" {
			coll = &d.sps
		}
		i := find(*coll, "id", seg[1])
		if i < 0 {
			e = gerr(http.StatusNotFound, "Request_ResourceNotFound", "Resource '%s' does not exist or one of its queried reference-property objects are not present.", seg[1])
			break
		}
		switch r.Method {
		case http.MethodGet:
			status, out = http.StatusOK, withContext(seg[0]+"/$entity", clone((*coll)[i]))
		case http.MethodPatch:
			var body map[string]any
			if body, e = readBody(r); e == nil {
				if seg[0] == "applications" {
					e = s.patchApp(d, i, body)
				} else {
					e = patchSP((*coll)[i], body)
				}
				status = http.StatusNoContent
			}
		case http.MethodDelete:
			*coll = append((*coll)[:i], (*coll)[i+1:]...)
			status = http.StatusNoContent
		default:
			e = gerr(http.StatusMethodNotAllowed, "Request_BadRequest", "Specified HTTP method is not allowed for the request uri.")
		}
	default:
		e = gerr(http.StatusBadRequest, "BadRequest", "Resource not found for the segment '%s'.", seg[0])
	}
	if e != nil {
		s.writeError(w, r, e)
		return
	}
	if status == http.StatusNoContent {
		w.WriteHeader(status)
		return
	}
	writeJSON(w, status, out)
}

// authorize checks the bearer token and returns its tenant.
func (s *Server) authorize(r *http.Request) (string, *Error) {
	auth := r.Header.Get("Authorization")
	scheme, tok, _ := strings.Cut(auth, " ")
	if auth == "" || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", gerr(http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token is empty.")
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return "", gerr(http.StatusUnauthorized, "InvalidAuthenticationToken", "IDX14100: JWT is not well formed, there are no dots (.).\nThe token needs to be in JWS or JWE Compact Serialization Format. (JWS): 'EncodedHeader.EndcodedPayload.EncodedSignature'. (JWE): 'EncodedProtectedHeader.EncodedEncryptedKey.EncodedInitializationVector.EncodedCiphertext.EncodedAuthenticationTag'.")
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
		return "", gerr(http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token validation failure.")
	}
	if c.Aud != GraphAppID && c.Aud != "https://graph.microsoft.com" && c.Aud != "https://graph.microsoft.com/" {
		return "", gerr(http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.")
	}
	if c.Exp == 0 || !s.opts.Now().Before(time.Unix(c.Exp, 0)) {
		return "", gerr(http.StatusUnauthorized, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.")
	}
	if !isGUID(c.Tid) {
		return "", gerr(http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token validation failure.")
	}
	ok := false
	for _, sc := range strings.Fields(c.Scp) {
		if sc == "Application.ReadWrite.All" || sc == "Directory.AccessAsUser.All" {
			ok = true
		}
	}
	for _, ro := range c.Roles {
		if ro == "Application.ReadWrite.All" {
			ok = true
		}
	}
	if !ok && (r.Method != http.MethodGet || !strings.Contains(c.Scp, "Application.Read.All")) {
		return "", gerr(http.StatusForbidden, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
	}
	return c.Tid, nil
}

func readBody(r *http.Request) (map[string]any, *Error) {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return nil, gerr(http.StatusUnsupportedMediaType, "BadRequest", "A supported MIME type could not be found that matches the content type of the response. None of the supported type(s) 'application/json' matches the content type '%s'.", ct)
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	if err != nil {
		return nil, gerr(http.StatusBadRequest, "BadRequest", "Unable to read JSON request payload.")
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil || m == nil {
		return nil, gerr(http.StatusBadRequest, "BadRequest", "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.")
	}
	return m, nil
}

func withContext(entity string, v map[string]any) map[string]any {
	v["@odata.context"] = "https://graph.microsoft.com/v1.0/$metadata#" + entity
	return v
}

// list serves GET on a collection with an optional $filter of the form
// `<prop> eq '<value>'` on displayName or appId.
func (s *Server) list(d *directory, coll string, r *http.Request) (int, any, *Error) {
	q := r.URL.Query()
	items := d.apps
	if coll == "servicePrincipals" {
		items = d.sps
	}
	var prop, val string
	if f := q.Get("$filter"); f != "" {
		p, rest, ok := strings.Cut(strings.TrimSpace(f), " eq ")
		if !ok || (p != "displayName" && p != "appId") || len(rest) < 2 || rest[0] != '\'' || rest[len(rest)-1] != '\'' {
			return 0, nil, gerr(http.StatusBadRequest, "Request_UnsupportedQuery", "Unsupported Query.")
		}
		inner := rest[1 : len(rest)-1]
		// OData escapes a quote inside a string literal by doubling it.
		if strings.Count(strings.ReplaceAll(inner, "''", ""), "'") != 0 {
			return 0, nil, gerr(http.StatusBadRequest, "BadRequest", "Invalid filter clause: syntax error.")
		}
		prop, val = p, strings.ReplaceAll(inner, "''", "'")
	}
	value := []any{}
	for _, it := range items {
		if prop == "" || it[prop] == val {
			value = append(value, clone(it))
		}
	}
	return s.page(r, "https://graph.microsoft.com/v1.0/$metadata#"+coll, value)
}

// page returns one page of value: $skiptoken (opaque to clients) is the
// offset, and @odata.nextLink repeats the request with the next one.
func (s *Server) page(r *http.Request, odataContext string, value []any) (int, any, *Error) {
	q := r.URL.Query()
	off := 0
	if tok := q.Get("$skiptoken"); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		n, err2 := strconv.Atoi(string(b))
		if err != nil || err2 != nil || n < 0 || n > len(value) {
			return 0, nil, gerr(http.StatusBadRequest, "Request_BadRequest", "Invalid $skiptoken.")
		}
		off = n
	}
	end := min(off+s.opts.PageSize, len(value))
	out := map[string]any{"@odata.context": odataContext, "value": value[off:end]}
	if end < len(value) {
		q.Set("$skiptoken", base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(end))))
		out["@odata.nextLink"] = s.url + r.URL.Path + "?" + q.Encode()
	}
	return http.StatusOK, out, nil
}

var appProps = map[string]bool{
	"displayName": true, "description": true, "signInAudience": true, "publicClient": true, "web": true, "spa": true,
	"isFallbackPublicClient": true, "requiredResourceAccess": true, "api": true, "appRoles": true,
	"identifierUris": true, "groupMembershipClaims": true, "optionalClaims": true, "tags": true, "notes": true,
	"info": true, "parentalControlSettings": true, "serviceManagementReference": true,
}

var appReadOnly = map[string]bool{
	"id": true, "appId": true, "createdDateTime": true, "publisherDomain": true, "deletedDateTime": true,
	"passwordCredentials": true, "keyCredentials": true,
}

func checkProps(body map[string]any) *Error {
	for k := range body {
		if strings.HasPrefix(k, "@odata.") {
			continue
		}
		if appReadOnly[k] {
			if k == "passwordCredentials" || k == "keyCredentials" {
				return gerr(http.StatusBadRequest, "Request_BadRequest", "Property '%s' cannot be set through this request; use addPassword or addKey.", k)
			}
			return gerr(http.StatusBadRequest, "Request_BadRequest", "Property '%s' is read-only and cannot be set.", k)
		}
		if !appProps[k] {
			return gerr(http.StatusBadRequest, "Request_BadRequest", "Property '%s' does not exist on type 'microsoft.graph.application'. Make sure to only use property names that are defined by the type.", k)
		}
	}
	return nil
}

func (s *Server) createApp(d *directory, body map[string]any) (int, any, *Error) {
	if e := checkProps(body); e != nil {
		return 0, nil, e
	}
	if name, _ := body["displayName"].(string); strings.TrimSpace(name) == "" {
		return 0, nil, gerr(http.StatusBadRequest, "Request_BadRequest", "Invalid value specified for property 'displayName' of resource 'Application'.")
	}
	a := clone(body)
	a["id"] = NewGUID()
	a["appId"] = NewGUID()
	fillApplicationDefaults(a, s.opts.Now())
	if e := validateApp(a, nil); e != nil {
		return 0, nil, e
	}
	d.apps = append(d.apps, a)
	if s.lag > 0 {
		d.lag[a["appId"].(string)] = s.lag
	}
	return http.StatusCreated, withContext("applications/$entity", clone(a)), nil
}

func (s *Server) patchApp(d *directory, i int, body map[string]any) *Error {
	if e := checkProps(body); e != nil {
		return e
	}
	old := d.apps[i]
	a := clone(old)
	for k, v := range body {
		a[k] = v
	}
	fillApplicationDefaults(a, s.opts.Now())
	if e := validateApp(a, old); e != nil {
		return e
	}
	d.apps[i] = a
	return nil
}

// fillApplicationDefaults sets the properties Graph always returns.
func fillApplicationDefaults(a map[string]any, now time.Time) {
	def := func(k string, v any) {
		if a[k] == nil {
			a[k] = v
		}
	}
	def("createdDateTime", now.UTC().Format(time.RFC3339))
	def("publisherDomain", "contoso.onmicrosoft.com")
	def("signInAudience", "AzureADandPersonalMicrosoftAccount")
	def("identifierUris", []any{})
	def("appRoles", []any{})
	def("requiredResourceAccess", []any{})
	def("passwordCredentials", []any{})
	def("keyCredentials", []any{})
	def("tags", []any{})
	def("publicClient", map[string]any{"redirectUris": []any{}})
	def("web", map[string]any{"redirectUris": []any{}, "implicitGrantSettings": map[string]any{"enableAccessTokenIssuance": false, "enableIdTokenIssuance": false}})
	def("spa", map[string]any{"redirectUris": []any{}})
	def("api", map[string]any{})
	api, _ := a["api"].(map[string]any)
	if api != nil {
		for k, v := range map[string]any{"acceptMappedClaims": nil, "knownClientApplications": []any{}, "oauth2PermissionScopes": []any{}, "preAuthorizedApplications": []any{}, "requestedAccessTokenVersion": nil} {
			if _, ok := api[k]; !ok {
				api[k] = v
			}
		}
	}
}

func validateApp(a, old map[string]any) *Error {
	switch a["signInAudience"] {
	case "AzureADMyOrg", "AzureADMultipleOrgs", "AzureADandPersonalMicrosoftAccount", "PersonalMicrosoftAccount":
	default:
		return gerr(http.StatusBadRequest, "Request_BadRequest", "Invalid value specified for property 'signInAudience' of resource 'Application'.")
	}
	for _, plat := range []struct{ prop, typ string }{{"publicClient", "PublicClientApplication"}, {"web", "WebApplication"}, {"spa", "SpaApplication"}} {
		m, ok := a[plat.prop].(map[string]any)
		if !ok {
			return gerr(http.StatusBadRequest, "Request_BadRequest", "Invalid value specified for property '%s' of resource 'Application'.", plat.prop)
		}
		uris, ok := stringList(m["redirectUris"])
		if !ok {
			return gerr(http.StatusBadRequest, "Request_BadRequest", "Invalid value specified for property 'redirectUris' of resource '%s'.", plat.typ)
		}
		for _, raw := range uris {
			u, err := url.Parse(raw)
			bad := err != nil || u.Scheme == "" || strings.Contains(raw, "#")
			if !bad && u.Scheme == "http" {
				h := u.Hostname()
				bad = h != "localhost" && h != "127.0.0.1" && h != "::1"
			}
			if !bad && plat.prop != "publicClient" && u.Scheme != "https" && u.Scheme != "http" {
				bad = true // custom schemes belong to the publicClient platform
			}
			if bad {
				return gerr(http.StatusBadRequest, "Request_BadRequest", "Invalid value specified for property 'redirectUris' of resource '%s'.", plat.typ)
			}
		}
	}
	if v, ok := a["isFallbackPublicClient"]; ok && v != nil {
		if _, ok := v.(bool); !ok {
			return gerr(http.StatusBadRequest, "BadRequest", "Cannot convert the literal '%v' to the expected type 'Edm.Boolean'.", v)
		}
	}
	api, _ := a["api"].(map[string]any)
	if api == nil {
		return gerr(http.StatusBadRequest, "Request_BadRequest", "Invalid value specified for property 'api' of resource 'Application'.")
	}
	switch v := api["requestedAccessTokenVersion"].(type) {
	case nil:
	case float64:
		if v != 1 && v != 2 {
			return gerr(http.StatusBadRequest, "Request_BadRequest", "Invalid value specified for property 'requestedAccessTokenVersion' of resource 'ApiApplication'.")
		}
	default:
		return gerr(http.StatusBadRequest, "BadRequest", "Cannot convert the literal '%v' to the expected type 'Edm.Int32'.", v)
	}
	if e := checkEntitlements(a, old, "appRoles", ""); e != nil {
		return e
	}
	if e := checkEntitlements(api, apiOf(old), "oauth2PermissionScopes", "api."); e != nil {
		return e
	}
	uris, ok := stringList(a["identifierUris"])
	if !ok {
		return gerr(http.StatusBadRequest, "Request_BadRequest", "Invalid value specified for property 'identifierUris' of resource 'Application'.")
	}
	for _, u := range uris {
		if u != "api://"+a["appId"].(string) && !strings.HasPrefix(u, "api://") {
			return gerr(http.StatusBadRequest, "HostNameNotOnVerifiedDomain", "Values of identifierUris property must use a verified domain of the organization or its subdomain: '%s'", u)
		}
	}
	rra, ok := a["requiredResourceAccess"].([]any)
	if !ok {
		return gerr(http.StatusBadRequest, "Request_BadRequest", "Invalid value specified for property 'requiredResourceAccess' of resource 'Application'.")
	}
	for _, r := range rra {
		m, _ := r.(map[string]any)
		ra, _ := m["resourceAccess"].([]any)
		if m == nil || !isGUID(str(m["resourceAppId"])) || ra == nil {
			return gerr(http.StatusBadRequest, "Request_BadRequest", "Invalid value specified for property 'requiredResourceAccess' of resource 'Application'.")
		}
		for _, x := range ra {
			xm, _ := x.(map[string]any)
			if xm == nil || !isGUID(str(xm["id"])) || (xm["type"] != "Scope" && xm["type"] != "Role") {
				return gerr(http.StatusBadRequest, "Request_BadRequest", "Invalid value specified for property 'resourceAccess' of resource 'RequiredResourceAccess'.")
			}
		}
	}
	return nil
}

func apiOf(a map[string]any) map[string]any {
	if a == nil {
		return nil
	}
	m, _ := a["api"].(map[string]any)
	return m
}

// checkEntitlements validates app roles or permission scopes, and applies
// Graph's rule that an enabled entitlement cannot be removed or changed
// unless it is disabled first.
func checkEntitlements(cur, old map[string]any, prop, prefix string) *Error {
	list, ok := cur[prop].([]any)
	if !ok && cur[prop] != nil {
		return gerr(http.StatusBadRequest, "Request_BadRequest", "Invalid value specified for property '%s%s' of resource 'Application'.", prefix, prop)
	}
	byID := map[string]map[string]any{}
	values := map[string]bool{}
	for _, x := range list {
		m, _ := x.(map[string]any)
		if m == nil || !isGUID(str(m["id"])) || str(m["value"]) == "" || strings.ContainsAny(str(m["value"]), " \t") {
			return gerr(http.StatusBadRequest, "Request_BadRequest", "Invalid value specified for property '%s%s' of resource 'Application'.", prefix, prop)
		}
		if prop == "appRoles" {
			if mt, ok := stringList(m["allowedMemberTypes"]); !ok || len(mt) == 0 {
				return gerr(http.StatusBadRequest, "Request_BadRequest", "Invalid value specified for property 'allowedMemberTypes' of resource 'AppRole'.")
			}
		}
		if values[str(m["value"])] {
			return gerr(http.StatusBadRequest, "Request_BadRequest", "The value '%s' is already in use by another entitlement of this application.", str(m["value"]))
		}
		values[str(m["value"])] = true
		byID[str(m["id"])] = m
	}
	if old == nil {
		return nil
	}
	oldList, _ := old[prop].([]any)
	for _, x := range oldList {
		m, _ := x.(map[string]any)
		if m == nil || m["isEnabled"] != true {
			continue
		}
		now := byID[str(m["id"])]
		if now == nil || !sameJSON(now, m) && now["isEnabled"] == true {
			return gerr(http.StatusBadRequest, "CannotDeleteOrUpdateEnabledEntitlement", "Permission (scope or role) cannot be deleted or updated unless disabled first.")
		}
	}
	return nil
}

func (s *Server) createSP(d *directory, body map[string]any) (int, any, *Error) {
	for k := range body {
		switch k {
		case "appId", "appRoleAssignmentRequired", "tags", "accountEnabled", "notes":
		default:
			return 0, nil, gerr(http.StatusBadRequest, "Request_BadRequest", "Property '%s' does not exist on type 'microsoft.graph.servicePrincipal'. Make sure to only use property names that are defined by the type.", k)
		}
	}
	appID := str(body["appId"])
	i := find(d.apps, "appId", appID)
	if i < 0 || d.lag[appID] > 0 {
		if i >= 0 {
			d.lag[appID]--
		}
		return 0, nil, gerr(http.StatusBadRequest, "Request_BadRequest", "The appId '%s' of the service principal does not reference a valid application object.", appID)
	}
	if find(d.sps, "appId", appID) >= 0 {
		return 0, nil, gerr(http.StatusConflict, "Request_MultipleObjectsWithSameKeyValue", "The service principal cannot be created, updated, or restored because the service principal name %s is already in use.", appID)
	}
	app := d.apps[i]
	sp := map[string]any{
		"id": NewGUID(), "appId": appID, "displayName": app["displayName"], "accountEnabled": true,
		"appRoleAssignmentRequired": false, "servicePrincipalType": "Application", "tags": []any{},
		"appRoles": clone(map[string]any{"x": app["appRoles"]})["x"],
	}
	for k, v := range body {
		sp[k] = v
	}
	if _, ok := sp["appRoleAssignmentRequired"].(bool); !ok {
		return 0, nil, gerr(http.StatusBadRequest, "BadRequest", "Cannot convert the literal '%v' to the expected type 'Edm.Boolean'.", sp["appRoleAssignmentRequired"])
	}
	d.sps = append(d.sps, sp)
	return http.StatusCreated, withContext("servicePrincipals/$entity", clone(sp)), nil
}

func patchSP(sp, body map[string]any) *Error {
	for k, v := range body {
		switch k {
		case "appRoleAssignmentRequired", "accountEnabled":
			if _, ok := v.(bool); !ok {
				return gerr(http.StatusBadRequest, "BadRequest", "Cannot convert the literal '%v' to the expected type 'Edm.Boolean'.", v)
			}
			sp[k] = v
		case "tags", "notes":
			sp[k] = v
		default:
			return gerr(http.StatusBadRequest, "Request_BadRequest", "Property '%s' is read-only and cannot be set.", k)
		}
	}
	return nil
}

// PutUser stores a user (id, userPrincipalName, displayName) in tenant tid
// and returns the stored copy; id defaults to a new GUID.
func (s *Server) PutUser(tid, upn, displayName string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := map[string]any{"id": NewGUID(), "userPrincipalName": upn, "displayName": displayName, "mail": upn}
	d := s.dir(tid)
	d.users = append(d.users, u)
	return clone(u)
}

// PutGroup stores a security group in tenant tid and returns it.
func (s *Server) PutGroup(tid, displayName string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := map[string]any{"id": NewGUID(), "displayName": displayName, "securityEnabled": true}
	d := s.dir(tid)
	d.groups = append(d.groups, g)
	return clone(g)
}

// Assignments returns copies of tenant tid's app role assignments.
func (s *Server) Assignments(tid string) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, a := range s.dir(tid).assignments {
		out = append(out, clone(a))
	}
	return out
}

// appRoleAssignedTo serves GET and POST /servicePrincipals/{id}/appRoleAssignedTo.
func (s *Server) appRoleAssignedTo(d *directory, spID string, r *http.Request) (int, any, *Error) {
	si := find(d.sps, "id", spID)
	if si < 0 {
		return 0, nil, gerr(http.StatusNotFound, "Request_ResourceNotFound", "Resource '%s' does not exist or one of its queried reference-property objects are not present.", spID)
	}
	sp := d.sps[si]
	switch r.Method {
	case http.MethodGet:
		value := []any{}
		for _, a := range d.assignments {
			if a["resourceId"] == spID {
				value = append(value, clone(a))
			}
		}
		return s.page(r, "https://graph.microsoft.com/v1.0/$metadata#servicePrincipals('"+spID+"')/appRoleAssignedTo", value)
	case http.MethodPost:
		body, e := readBody(r)
		if e != nil {
			return 0, nil, e
		}
		for k := range body {
			switch k {
			case "principalId", "resourceId", "appRoleId":
			default:
				return 0, nil, gerr(http.StatusBadRequest, "Request_BadRequest", "Property '%s' does not exist on type 'microsoft.graph.appRoleAssignment'. Make sure to only use property names that are defined by the type.", k)
			}
		}
		if body["resourceId"] != spID {
			return 0, nil, gerr(http.StatusBadRequest, "Request_BadRequest", "Invalid value specified for property 'resourceId' of resource 'AppRoleAssignment'.")
		}
		pid := str(body["principalId"])
		ptype, pname := "", ""
		if i := find(d.users, "id", pid); i >= 0 {
			ptype, pname = "User", str(d.users[i]["displayName"])
		} else if i := find(d.groups, "id", pid); i >= 0 {
			ptype, pname = "Group", str(d.groups[i]["displayName"])
		} else {
			return 0, nil, gerr(http.StatusNotFound, "Request_ResourceNotFound", "Resource '%s' does not exist or one of its queried reference-property objects are not present.", pid)
		}
		// The roles are the application's (kept in sync with the service
		// principal by the directory).
		roleOK := false
		if ai := find(d.apps, "appId", str(sp["appId"])); ai >= 0 {
			for _, x := range asList(d.apps[ai]["appRoles"]) {
				m, _ := x.(map[string]any)
				if m != nil && m["id"] == body["appRoleId"] && m["isEnabled"] == true {
					roleOK = true
				}
			}
		}
		if !roleOK {
			return 0, nil, gerr(http.StatusBadRequest, "Request_BadRequest", "Permission being assigned was not found on application '%s'.", str(sp["appId"]))
		}
		for _, a := range d.assignments {
			if a["resourceId"] == spID && a["principalId"] == pid && a["appRoleId"] == body["appRoleId"] {
				return 0, nil, gerr(http.StatusBadRequest, "Request_BadRequest", "Permission being assigned already exists on the object")
			}
		}
		a := map[string]any{
			"id": NewGUID(), "appRoleId": body["appRoleId"], "principalId": pid, "principalType": ptype,
			"principalDisplayName": pname, "resourceId": spID, "resourceDisplayName": sp["displayName"],
			"createdDateTime": s.opts.Now().UTC().Format(time.RFC3339),
		}
		d.assignments = append(d.assignments, a)
		return http.StatusCreated, withContext("servicePrincipals('"+spID+"')/appRoleAssignedTo/$entity", clone(a)), nil
	}
	return 0, nil, gerr(http.StatusMethodNotAllowed, "Request_BadRequest", "Specified HTTP method is not allowed for the request uri.")
}

func asList(v any) []any { l, _ := v.([]any); return l }

func find(items []map[string]any, prop, val string) int {
	for i, it := range items {
		if it[prop] == val {
			return i
		}
	}
	return -1
}

func str(v any) string { s, _ := v.(string); return s }

func stringList(v any) ([]string, bool) {
	if v == nil {
		return nil, true
	}
	l, ok := v.([]any)
	if !ok {
		return nil, false
	}
	out := make([]string, 0, len(l))
	for _, x := range l {
		s, ok := x.(string)
		if !ok {
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}

func clone(m map[string]any) map[string]any {
	b, _ := json.Marshal(m)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	if out == nil {
		out = map[string]any{}
	}
	return out
}

func sameJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// NewGUID returns a random lower-case GUID.
func NewGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
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

// Token mints an unsigned token the fake accepts (Graph-shaped claims: aud
// Graph, tid, scp, exp = now+ttl). Real Graph would reject it; only tests and
// the demo use it. scope is the space-separated scp, e.g.
// "Application.ReadWrite.All".
func Token(tid, scope string, now time.Time, ttl time.Duration) string {
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	return enc(map[string]any{"typ": "JWT", "alg": "RS256", "kid": "fake-graph"}) + "." +
		enc(map[string]any{"aud": GraphAppID, "iss": "https://sts.windows.net/" + tid + "/", "tid": tid, "scp": scope,
			"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(ttl).Unix(), "ver": "1.0"}) + "." +
		base64.RawURLEncoding.EncodeToString([]byte("unsigned-fake-graph-token"))
}
