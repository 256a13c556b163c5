package idp

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// fakeClock is a settable clock for Options.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func postForm(t *testing.T, u string, f url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := http.PostForm(u, f)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v: %s", u, err, b)
	}
	return resp.StatusCode, m
}

type deviceCodeResp struct {
	UserCode        string `json:"user_code"`
	DeviceCode      string `json:"device_code"`
	VerificationURI string `json:"verification_uri"`
	ExpiresIn       int    `json:"expires_in"`
	Interval        int    `json:"interval"`
	Message         string `json:"message"`
}

func startDevice(t *testing.T, s *Server, tid, clientID, scope string) deviceCodeResp {
	t.Helper()
	resp, err := http.PostForm(s.DeviceCodeEndpoint(tid), url.Values{"client_id": {clientID}, "scope": {scope}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("devicecode: %d %s", resp.StatusCode, b)
	}
	// Exactly Entra's members, numbers as numbers.
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"user_code", "device_code", "verification_uri", "expires_in", "interval", "message"} {
		if _, ok := raw[m]; !ok {
			t.Errorf("device code response lacks %q: %s", m, b)
		}
	}
	if len(raw) != 6 {
		t.Errorf("device code response has extra members: %s", b)
	}
	var dc deviceCodeResp
	if err := json.Unmarshal(b, &dc); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return dc
}

func poll(t *testing.T, s *Server, tid, clientID, deviceCode string) (int, map[string]any) {
	t.Helper()
	return postForm(t, s.TokenEndpoint(tid), url.Values{"grant_type": {DeviceGrantType}, "client_id": {clientID}, "device_code": {deviceCode}})
}

func wantEntraError(t *testing.T, what string, st int, m map[string]any, code string) {
	t.Helper()
	if st != 400 || m["error"] != code {
		t.Fatalf("%s: %d %v, want 400 %s", what, st, m, code)
	}
	for _, k := range []string{"error_description", "error_codes", "timestamp", "trace_id", "correlation_id"} {
		if _, ok := m[k]; !ok {
			t.Errorf("%s: error body lacks %q: %v", what, k, m)
		}
	}
	if d, _ := m["error_description"].(string); !strings.HasPrefix(d, "AADSTS") {
		t.Errorf("%s: error_description %q", what, d)
	}
}

func TestDeviceCodeApproveGraph(t *testing.T) {
	tid := NewGUID()
	s := startT(t, Options{Tenants: []string{tid}})
	const client = "14d82eec-204b-4c2f-b7e8-296a70dab67e"
	dc := startDevice(t, s, tid, client, "https://graph.microsoft.com/Application.ReadWrite.All")
	if len(dc.UserCode) != 9 || strings.ToUpper(dc.UserCode) != dc.UserCode || len(dc.DeviceCode) < 100 {
		t.Errorf("codes %q %q", dc.UserCode, dc.DeviceCode)
	}
	if dc.VerificationURI != s.URL()+"/devicelogin" || dc.ExpiresIn != 900 || dc.Interval != 5 {
		t.Errorf("response %+v", dc)
	}
	if !strings.Contains(dc.Message, dc.VerificationURI) || !strings.Contains(dc.Message, dc.UserCode) {
		t.Errorf("message %q", dc.Message)
	}
	if p := s.PendingDeviceCodes(); len(p) != 1 || p[0] != dc.UserCode {
		t.Errorf("pending %v", p)
	}
	for i := 0; i < 3; i++ {
		st, m := poll(t, s, tid, client, dc.DeviceCode)
		wantEntraError(t, "pending poll", st, m, "authorization_pending")
	}
	u := User{OID: NewGUID(), Name: "Grace Hopper", Username: "grace@contoso.example"}
	s.ApproveDeviceCode(strings.ToLower(dc.UserCode), u) // codes are case-insensitive
	st, m := poll(t, s, tid, client, dc.DeviceCode)
	if st != 200 {
		t.Fatalf("approved poll: %d %v", st, m)
	}
	if m["token_type"] != "Bearer" || m["scope"] != "https://graph.microsoft.com/Application.ReadWrite.All" {
		t.Errorf("token response %v", m)
	}
	if _, ok := m["refresh_token"]; ok {
		t.Error("refresh_token without offline_access")
	}
	at, _ := m["access_token"].(string)
	c := claimsOf(t, at)
	if c["aud"] != GraphAppID || c["scp"] != "Application.ReadWrite.All" || c["tid"] != tid || c["oid"] != u.OID || c["appid"] != client || c["ver"] != "1.0" {
		t.Errorf("Graph token claims %v", c)
	}
	// The token is really signed by the tenant's key (only Graph could
	// check it in real life, but the fake's key is published).
	jws, err := jose.ParseSigned(at, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jws.Verify(&s.CurrentKey(tid).Private.PublicKey); err != nil {
		t.Errorf("signature: %v", err)
	}
	if jws.Signatures[0].Protected.Nonce == "" && jws.Signatures[0].Header.ExtraHeaders["nonce"] == nil {
		t.Error("Graph token without nonce header")
	}
	// A device code is redeemed once.
	st, m = poll(t, s, tid, client, dc.DeviceCode)
	wantEntraError(t, "second redemption", st, m, "invalid_grant")
	if len(s.PendingDeviceCodes()) != 0 || s.DeviceCodeRequests() != 1 || s.DeviceCodePolls() != 5 {
		t.Errorf("pending %v, requests %d, polls %d", s.PendingDeviceCodes(), s.DeviceCodeRequests(), s.DeviceCodePolls())
	}
}

func TestDeviceCodeAutoApproveAfterNPolls(t *testing.T) {
	tid := NewGUID()
	s := startT(t, Options{Tenants: []string{tid}, AutoApproveDeviceCode: 2})
	client := NewGUID()
	dc := startDevice(t, s, tid, client, "openid offline_access https://graph.microsoft.com/Application.ReadWrite.All")
	for i := 0; i < 2; i++ {
		st, m := poll(t, s, tid, client, dc.DeviceCode)
		wantEntraError(t, "pending", st, m, "authorization_pending")
	}
	st, m := poll(t, s, tid, client, dc.DeviceCode)
	if st != 200 {
		t.Fatalf("poll 3: %d %v", st, m)
	}
	if c := claimsOf(t, m["access_token"].(string)); c["oid"] != s.DefaultUser().OID || c["scp"] != "openid offline_access Application.ReadWrite.All" {
		t.Errorf("claims %v", c)
	}
	if c := claimsOf(t, m["id_token"].(string)); c["aud"] != client || c["oid"] != s.DefaultUser().OID {
		t.Errorf("id_token claims %v", c)
	}
	// The refresh token works at the refresh_token grant.
	st, m = postForm(t, s.TokenEndpoint(tid), url.Values{"grant_type": {"refresh_token"}, "client_id": {client}, "refresh_token": {m["refresh_token"].(string)}})
	if st != 200 || m["access_token"] == nil {
		t.Errorf("refresh: %d %v", st, m)
	}
}

func TestDeviceCodeAPIScopeGetsAPIToken(t *testing.T) {
	tid := NewGUID()
	s := startT(t, Options{Tenants: []string{tid}, AutoApproveDeviceCode: 1})
	client, api := NewGUID(), NewGUID()
	dc := startDevice(t, s, tid, client, "api://"+api+"/access_as_user")
	poll(t, s, tid, client, dc.DeviceCode)
	st, m := poll(t, s, tid, client, dc.DeviceCode)
	if st != 200 {
		t.Fatalf("%d %v", st, m)
	}
	if c := claimsOf(t, m["access_token"].(string)); c["aud"] != api || c["scp"] != "access_as_user" || c["ver"] != "2.0" || c["iss"] != s.Issuer(tid) {
		t.Errorf("claims %v", c)
	}
}

func TestDeviceCodeErrors(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)}
	tid, other := NewGUID(), NewGUID()
	s := startT(t, Options{Tenants: []string{tid, other}, Now: clock.Now})
	client := NewGUID()
	graphScope := "https://graph.microsoft.com/Application.ReadWrite.All"

	t.Run("declined", func(t *testing.T) {
		dc := startDevice(t, s, tid, client, graphScope)
		s.DeclineDeviceCode(dc.UserCode)
		st, m := poll(t, s, tid, client, dc.DeviceCode)
		wantEntraError(t, "declined", st, m, "authorization_declined")
		s.ApproveDeviceCode(dc.UserCode, s.DefaultUser()) // too late: stays declined
		st, m = poll(t, s, tid, client, dc.DeviceCode)
		wantEntraError(t, "declined then approved", st, m, "authorization_declined")
	})
	t.Run("expired", func(t *testing.T) {
		dc := startDevice(t, s, tid, client, graphScope)
		clock.Add(899 * time.Second)
		st, m := poll(t, s, tid, client, dc.DeviceCode)
		wantEntraError(t, "before expiry", st, m, "authorization_pending")
		clock.Add(time.Second)
		s.ApproveDeviceCode(dc.UserCode, s.DefaultUser())
		st, m = poll(t, s, tid, client, dc.DeviceCode)
		wantEntraError(t, "at expiry", st, m, "expired_token")
	})
	t.Run("slow_down", func(t *testing.T) {
		s.SetDeviceCodePolicy(DeviceCodePolicy{Interval: 2 * time.Second, ExpiresIn: time.Minute, EnforceInterval: true})
		defer s.SetDeviceCodePolicy(DeviceCodePolicy{})
		dc := startDevice(t, s, tid, client, graphScope)
		if dc.Interval != 2 || dc.ExpiresIn != 60 {
			t.Errorf("policy not applied: %+v", dc)
		}
		st, m := poll(t, s, tid, client, dc.DeviceCode)
		wantEntraError(t, "first poll", st, m, "authorization_pending")
		clock.Add(time.Second)
		st, m = poll(t, s, tid, client, dc.DeviceCode)
		wantEntraError(t, "too fast", st, m, "slow_down")
		clock.Add(3 * time.Second) // interval is now 7 s
		st, m = poll(t, s, tid, client, dc.DeviceCode)
		wantEntraError(t, "still too fast", st, m, "slow_down")
		clock.Add(12 * time.Second) // 12 s ≥ 12 s
		st, m = poll(t, s, tid, client, dc.DeviceCode)
		wantEntraError(t, "after waiting", st, m, "authorization_pending")
	})
	t.Run("bad codes and clients", func(t *testing.T) {
		dc := startDevice(t, s, tid, client, graphScope)
		st, m := poll(t, s, tid, client, "DAQABIQEAAADnotacode")
		wantEntraError(t, "unknown code", st, m, "bad_verification_code")
		st, m = poll(t, s, other, client, dc.DeviceCode)
		wantEntraError(t, "other tenant", st, m, "bad_verification_code")
		st, m = poll(t, s, tid, NewGUID(), dc.DeviceCode)
		wantEntraError(t, "other client", st, m, "invalid_grant")
		st, m = postForm(t, s.TokenEndpoint(tid), url.Values{"grant_type": {DeviceGrantType}, "client_id": {client}})
		wantEntraError(t, "no device_code", st, m, "invalid_request")
	})
	t.Run("devicecode endpoint", func(t *testing.T) {
		st, m := postForm(t, s.DeviceCodeEndpoint(tid), url.Values{"client_id": {client}})
		wantEntraError(t, "no scope", st, m, "invalid_request")
		st, m = postForm(t, s.DeviceCodeEndpoint(tid), url.Values{"scope": {graphScope}})
		wantEntraError(t, "no client", st, m, "invalid_request")
		st, m = postForm(t, s.DeviceCodeEndpoint(tid), url.Values{"client_id": {client}, "scope": {graphScope + " api://" + NewGUID() + "/x"}})
		wantEntraError(t, "two resources", st, m, "invalid_scope")
		resp, err := http.Get(s.DeviceCodeEndpoint(tid))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("GET devicecode: %d", resp.StatusCode)
		}
		var d map[string]any
		getJSON(t, s.URL()+"/"+tid+"/v2.0/.well-known/openid-configuration", &d)
		if d["device_authorization_endpoint"] != s.DeviceCodeEndpoint(tid) {
			t.Errorf("discovery device_authorization_endpoint %v", d["device_authorization_endpoint"])
		}
	})
}

func TestDeviceLoginPage(t *testing.T) {
	tid := NewGUID()
	alt := User{OID: NewGUID(), Name: "Alan Turing", Username: "alan@contoso.example"}
	s := startT(t, Options{Tenants: []string{tid}, Users: []User{alt}})
	client := NewGUID()
	dc := startDevice(t, s, tid, client, "https://graph.microsoft.com/Application.ReadWrite.All")
	resp, err := http.Get(dc.VerificationURI)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET devicelogin: %d", resp.StatusCode)
	}
	resp, err = http.PostForm(dc.VerificationURI, url.Values{"otc": {"WRONGCODE"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("wrong code: %d", resp.StatusCode)
	}
	resp, err = http.PostForm(dc.VerificationURI, url.Values{"otc": {dc.UserCode}, "login_hint": {alt.Username}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("right code: %d", resp.StatusCode)
	}
	st, m := poll(t, s, tid, client, dc.DeviceCode)
	if st != 200 || claimsOf(t, m["access_token"].(string))["oid"] != alt.OID {
		t.Errorf("%d %v", st, m)
	}
}

func TestGraphTokenScp(t *testing.T) {
	tid := NewGUID()
	s := startT(t, Options{Tenants: []string{tid}})
	u := s.DefaultUser()
	tok := s.GraphTokenScp(tid, "c", u, []string{"Application.ReadWrite.All", "User.Read"}, time.Hour)
	c := claimsOf(t, tok)
	if c["scp"] != "Application.ReadWrite.All User.Read" || c["aud"] != GraphAppID || c["iss"] != "https://sts.windows.net/"+tid+"/" || c["upn"] != u.Username {
		t.Errorf("claims %v", c)
	}
	if exp, _ := c["exp"].(float64); int64(exp) <= time.Now().Unix() {
		t.Errorf("exp %v", c["exp"])
	}
}
