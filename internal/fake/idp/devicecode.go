package idp

import (
	"crypto/rand"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// This file is the fake's OAuth 2.0 device authorization grant (RFC 8628)
// in Entra's v2 wire format, which `gatehouse entra register` signs in to
// Microsoft Graph with:
//
//	POST /{tid}/oauth2/v2.0/devicecode   client_id&scope
//	     → 200 {"user_code","device_code","verification_uri","expires_in",
//	            "interval","message"}
//	POST /{tid}/oauth2/v2.0/token
//	     grant_type=urn:ietf:params:oauth:grant-type:device_code&client_id&device_code
//	     → 400 authorization_pending until the code is approved, then 200
//	       {"token_type","scope","expires_in","ext_expires_in","access_token"
//	        [,"id_token"][,"refresh_token"]}
//
// A code is approved by the test (ApproveDeviceCode), by the fake's
// verification page (GET/POST URL()+"/devicelogin", for `gatehouse demo`),
// or automatically after Options.AutoApproveDeviceCode polls. Errors are the
// ones Microsoft documents for the device code flow (authorization_pending,
// authorization_declined, bad_verification_code, expired_token) plus RFC
// 8628's slow_down when DeviceCodePolicy.EnforceInterval is set, all in
// Entra's error JSON shape. The AADSTS numbers are our best reading of
// Entra's; clients must not depend on them.
//
// A Graph scope (https://graph.microsoft.com/X or the Graph app ID) yields
// a Graph-shaped v1 access token (GraphTokenScp) whose scp is the requested
// permission names, e.g. "Application.ReadWrite.All"; another API scope
// yields an Entra v2 access token for that API, as the code flow does.

// DeviceGrantType is the grant_type of the device code token request.
const DeviceGrantType = "urn:ietf:params:oauth:grant-type:device_code"

// DeviceCodePolicy tunes the device code flow. The zero value means Entra's
// defaults: codes live 15 minutes, clients poll every 5 seconds, and a
// client polling faster is not told to slow down.
type DeviceCodePolicy struct {
	// ExpiresIn is the lifetime of a device code. Default 15 min (900 s).
	ExpiresIn time.Duration
	// Interval is the polling interval announced. Default 5 s.
	Interval time.Duration
	// EnforceInterval answers slow_down (and adds 5 s to the interval, as
	// RFC 8628 §3.5 says) when a client polls sooner than the interval,
	// measured with Options.Now.
	EnforceInterval bool
}

type deviceStatus int

const (
	devicePending deviceStatus = iota
	deviceApproved
	deviceDeclined
	deviceRedeemed
)

type deviceGrant struct {
	tid, clientID, scope, userCode string
	expires, lastPoll              time.Time
	interval                       time.Duration
	polls                          int
	status                         deviceStatus
	user                           User
}

// deviceFlow holds the device codes issued; its zero value is ready.
type deviceFlow struct {
	mu       sync.Mutex
	policy   DeviceCodePolicy
	byDevice map[string]*deviceGrant
	byUser   map[string]*deviceGrant

	codeRequests atomic.Int64
	polls        atomic.Int64
}

// SetDeviceCodePolicy changes the device code lifetime, polling interval and
// slow_down enforcement for codes issued from now on.
func (s *Server) SetDeviceCodePolicy(p DeviceCodePolicy) {
	s.device.mu.Lock()
	defer s.device.mu.Unlock()
	s.device.policy = p
}

// DeviceCodeEndpoint returns tid's device authorization endpoint URL (as
// published in discovery as device_authorization_endpoint).
func (s *Server) DeviceCodeEndpoint(tid string) string {
	return s.url + "/" + tid + "/oauth2/v2.0/devicecode"
}

// DeviceLoginURL is the verification_uri the fake hands out (its stand-in
// for https://microsoft.com/devicelogin).
func (s *Server) DeviceLoginURL() string { return s.url + "/devicelogin" }

// DeviceCodeRequests counts requests to the device authorization endpoints.
func (s *Server) DeviceCodeRequests() int64 { return s.device.codeRequests.Load() }

// DeviceCodePolls counts device_code grant requests at the token endpoints.
func (s *Server) DeviceCodePolls() int64 { return s.device.polls.Load() }

// PendingDeviceCodes returns the user codes issued and not yet approved,
// declined, redeemed or expired, oldest first order not guaranteed.
func (s *Server) PendingDeviceCodes() []string {
	s.device.mu.Lock()
	defer s.device.mu.Unlock()
	now := s.opts.Now()
	var out []string
	for code, g := range s.device.byUser {
		if g.status == devicePending && now.Before(g.expires) {
			out = append(out, code)
		}
	}
	return out
}

// ApproveDeviceCode signs u in on the device code with this user code, as
// if u had entered it at the verification page: the next poll gets tokens
// for u. It panics if the fake never issued the code.
func (s *Server) ApproveDeviceCode(userCode string, u User) {
	s.setDevice(userCode, deviceApproved, u)
}

// DeclineDeviceCode makes the next poll of this code fail with
// authorization_declined, as when the user cancels at the verification page.
func (s *Server) DeclineDeviceCode(userCode string) {
	s.setDevice(userCode, deviceDeclined, User{})
}

func (s *Server) setDevice(userCode string, st deviceStatus, u User) {
	s.device.mu.Lock()
	defer s.device.mu.Unlock()
	g := s.device.byUser[strings.ToUpper(strings.TrimSpace(userCode))]
	if g == nil {
		panic(fmt.Sprintf("idp: unknown device user code %q", userCode))
	}
	if g.status == devicePending {
		g.status, g.user = st, u
	}
}

// serveDeviceCode is POST /{tid}/oauth2/v2.0/devicecode.
func (s *Server) serveDeviceCode(w http.ResponseWriter, r *http.Request, tid string) {
	s.device.codeRequests.Add(1)
	f, ok := entraForm(w, r, "client_id", "scope")
	if !ok {
		return
	}
	clientID, scope := f.Get("client_id"), f.Get("scope")
	if _, ok := s.findClient(clientID); !ok {
		entraError(w, http.StatusBadRequest, "unauthorized_client", 700016, fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'.", clientID, tid))
		return
	}
	if _, _, err := splitScope(scope); err != "" {
		entraError(w, http.StatusBadRequest, "invalid_scope", 28000, err)
		return
	}
	s.device.mu.Lock()
	if s.device.byDevice == nil {
		s.device.byDevice, s.device.byUser = map[string]*deviceGrant{}, map[string]*deviceGrant{}
	}
	p := s.device.policy
	if p.ExpiresIn <= 0 {
		p.ExpiresIn = 15 * time.Minute
	}
	if p.Interval <= 0 {
		p.Interval = 5 * time.Second
	}
	userCode := newUserCode()
	for s.device.byUser[userCode] != nil {
		userCode = newUserCode()
	}
	deviceCode := "DAQABIQEAAAD" + randomID(120)
	g := &deviceGrant{tid: tid, clientID: clientID, scope: scope, userCode: userCode,
		expires: s.opts.Now().Add(p.ExpiresIn), interval: p.Interval}
	s.device.byDevice[deviceCode], s.device.byUser[userCode] = g, g
	s.device.mu.Unlock()
	verify := s.DeviceLoginURL()
	w.Header().Set("Cache-Control", "no-store, no-cache")
	writeJSON(w, http.StatusOK, map[string]any{
		"user_code":        userCode,
		"device_code":      deviceCode,
		"verification_uri": verify,
		"expires_in":       int(p.ExpiresIn / time.Second),
		"interval":         int(p.Interval / time.Second),
		"message":          fmt.Sprintf("To sign in, use a web browser to open the page %s and enter the code %s to authenticate.", verify, userCode),
	})
}

// newUserCode returns a 9-character code of upper-case letters and digits,
// like Entra's (without 0/O and 1/I, which people mistype).
func newUserCode() string {
	const alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 9)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// redeemDevice is the device_code grant at the token endpoint.
func (s *Server) redeemDevice(w http.ResponseWriter, f url.Values, tid, clientID string) {
	s.device.polls.Add(1)
	dc := f.Get("device_code")
	if dc == "" {
		entraError(w, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'device_code'.")
		return
	}
	now := s.opts.Now()
	s.device.mu.Lock()
	g := s.device.byDevice[dc]
	var (
		status         = http.StatusBadRequest
		code, desc     string
		aadsts         int
		user           User
		scope          string
		autoApproveMin = s.opts.AutoApproveDeviceCode
	)
	switch {
	case g == nil || g.tid != tid:
		code, aadsts, desc = "bad_verification_code", 70000, "The provided value for the 'device_code' parameter is not valid. The device code was not recognized."
	case g.clientID != clientID:
		code, aadsts, desc = "invalid_grant", 70000, "The provided device code was issued to a different client."
	case g.status == deviceRedeemed:
		code, aadsts, desc = "invalid_grant", 54005, "The device code was already redeemed, please start a new device code sign-in."
	case !now.Before(g.expires):
		code, aadsts, desc = "expired_token", 70019, "Verification code expired. Have the user retry the sign-in."
	case g.status == deviceDeclined:
		code, aadsts, desc = "authorization_declined", 70000, "The end user declined the authorization request."
	case s.device.policy.EnforceInterval && !g.lastPoll.IsZero() && now.Before(g.lastPoll.Add(g.interval)):
		g.interval += 5 * time.Second
		g.lastPoll = now
		code, aadsts, desc = "slow_down", 70016, fmt.Sprintf("OAuth 2.0 device flow error. Polling too fast: wait at least %d seconds between requests.", int(g.interval/time.Second))
	default:
		g.lastPoll = now
		g.polls++
		if g.status == devicePending && autoApproveMin > 0 && g.polls > autoApproveMin {
			g.status, g.user = deviceApproved, s.opts.DefaultUser
		}
		if g.status == devicePending {
			code, aadsts, desc = "authorization_pending", 70016, "OAuth 2.0 device flow error. Authorization is pending. Continue polling."
			break
		}
		g.status = deviceRedeemed
		status, user, scope = http.StatusOK, g.user, g.scope
	}
	s.device.mu.Unlock()
	if status != http.StatusOK {
		entraError(w, status, code, aadsts, desc)
		return
	}
	s.issueDevice(w, tid, clientID, scope, user)
}

// graphResources are the resource identifiers Entra resolves to Graph.
var graphResources = map[string]bool{
	"https://graph.microsoft.com": true, "https://graph.microsoft.com/": true,
	GraphAppID: true, "00000003-0000-0000-c000-000000000000/": true,
}

// splitScope separates OIDC scopes from resource scopes and checks that the
// resource scopes name one resource. It returns the resource ("" for none)
// and the permission names requested on it.
func splitScope(scope string) (resource string, names []string, problem string) {
	for _, sc := range strings.Fields(scope) {
		if oidcScopes[sc] {
			continue
		}
		a := APIScopeAudience(sc)
		if !strings.Contains(sc, "/") || graphResources[a] || graphResources[a+"/"] {
			// A bare permission name ("User.Read") is a Graph scope.
			a = GraphAppID
		}
		if resource != "" && a != resource {
			return "", nil, "Provided value for the input parameter scope is not valid because it contains more than one resource. Scope " + scope + " is not valid."
		}
		resource = a
		names = append(names, sc[strings.LastIndex(sc, "/")+1:])
	}
	return resource, names, ""
}

// issueDevice answers a redeemed device code: Graph scopes get a Graph
// token with exactly the requested permissions; anything else goes through
// the same issuance as the authorization code flow.
func (s *Server) issueDevice(w http.ResponseWriter, tid, clientID, scope string, u User) {
	resource, names, _ := splitScope(scope)
	if resource != GraphAppID {
		s.issue(w, tid, clientID, scope, "", u)
		return
	}
	const ttl = time.Hour
	granted := make([]string, 0, len(names))
	for _, n := range names {
		if n != ".default" {
			granted = append(granted, n)
		}
	}
	if len(granted) == 0 { // .default: the app's configured Graph permissions
		granted = []string{"User.Read"}
	}
	var std []string
	for _, sc := range strings.Fields(scope) {
		if oidcScopes[sc] {
			std = append(std, sc)
		}
	}
	respScope := append([]string(nil), std...)
	for _, n := range granted {
		respScope = append(respScope, "https://graph.microsoft.com/"+n)
	}
	out := map[string]any{
		"token_type": "Bearer", "scope": joinSpace(respScope),
		"expires_in": int(ttl/time.Second) - 1, "ext_expires_in": int(ttl/time.Second) - 1,
		"access_token": s.GraphTokenScp(tid, clientID, u, append(append([]string(nil), std...), granted...), ttl),
	}
	for _, sc := range std {
		switch sc {
		case "openid":
			out["id_token"] = s.Sign(tid, nil, s.Claims(tid, clientID, u, ttl))
		case "offline_access":
			out["refresh_token"] = s.issueRefresh(tid, clientID, scope, u)
		}
	}
	writeTokens(w, out)
}

// GraphTokenScp mints a Microsoft Graph access token for u (delegated,
// requested by clientID) whose scp is exactly scp, space-separated, e.g.
// []string{"Application.ReadWrite.All"}. Like GraphToken it is a v1 token
// with aud Graph's app ID and a "nonce" header member.
func (s *Server) GraphTokenScp(tid, clientID string, u User, scp []string, ttl time.Duration) string {
	c := s.AccessTokenClaims(tid, GraphAppID, clientID, u, scp, ttl)
	c["aud"] = GraphAppID
	c["ver"] = "1.0"
	c["iss"] = "https://sts.windows.net/" + tid + "/"
	c["app_displayname"] = "Microsoft Graph Command Line Tools"
	c["appid"] = clientID
	if u.Username != "" {
		c["upn"] = u.Username
		c["unique_name"] = u.Username
	}
	k := s.CurrentKey(tid)
	return s.Sign(tid, map[string]any{"typ": "JWT", "nonce": randomID(32), "alg": "RS256", "x5t": k.X5T, "kid": k.KID}, c)
}

// serveDeviceLogin is the fake's verification page: GET shows a form, POST
// with otc=<user code> approves the code for DefaultUser (or for the
// Options.Users account whose Username or Email is login_hint).
func (s *Server) serveDeviceLogin(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store, no-cache")
	if r.Method == http.MethodGet {
		fmt.Fprint(w, `<!DOCTYPE html><html><head><title>Enter code</title></head><body><form method="post"><label>Enter code <input name="otc" autofocus></label> <input name="login_hint" placeholder="user (optional)"> <button>Next</button></form></body></html>`)
		return
	}
	if r.Method != http.MethodPost {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	_ = r.ParseForm()
	code := strings.ToUpper(strings.TrimSpace(r.PostForm.Get("otc")))
	u := s.opts.DefaultUser
	if hint := r.PostForm.Get("login_hint"); hint != "" {
		for _, x := range s.opts.Users {
			if strings.EqualFold(hint, x.Username) || strings.EqualFold(hint, x.Email) {
				u = x
			}
		}
	}
	s.device.mu.Lock()
	g := s.device.byUser[code]
	ok := g != nil && g.status == devicePending && s.opts.Now().Before(g.expires)
	if ok {
		g.status, g.user = deviceApproved, u
	}
	s.device.mu.Unlock()
	if !ok {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `<!DOCTYPE html><html><body><div id="error">That code didn't work. Check the code and try again. (%s)</div></body></html>`, html.EscapeString(code))
		return
	}
	fmt.Fprintf(w, `<!DOCTYPE html><html><body><div id="done">%s is signed in. You can close this window.</div></body></html>`, html.EscapeString(u.Username))
}
