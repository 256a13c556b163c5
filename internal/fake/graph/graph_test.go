package graph

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

const tid = "72f988bf-86f1-41af-91ab-2d7cd011db47"

func startT(t *testing.T) *Server {
	t.Helper()
	s, err := Start(Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

type resp struct {
	status int
	header http.Header
	body   map[string]any
}

func call(t *testing.T, s *Server, token, method, path string, body any) resp {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.URL()+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("client-request-id", "crid-1")
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	out := resp{status: r.StatusCode, header: r.Header}
	data, _ := io.ReadAll(r.Body)
	if len(data) > 0 {
		if err := json.Unmarshal(data, &out.body); err != nil {
			t.Fatalf("%s %s: body is not JSON: %q", method, path, data)
		}
	}
	return out
}

func tok() string { return Token(tid, "Application.ReadWrite.All", time.Now(), time.Hour) }

// errorOf checks Graph's error shape and returns code and message.
func errorOf(t *testing.T, r resp) (string, string) {
	t.Helper()
	e, ok := r.body["error"].(map[string]any)
	if !ok {
		t.Fatalf("no error object in %v", r.body)
	}
	inner, ok := e["innerError"].(map[string]any)
	if !ok || inner["request-id"] == "" || inner["request-id"] != r.header.Get("request-id") || inner["client-request-id"] != "crid-1" || inner["date"] == nil {
		t.Errorf("innerError = %v (request-id header %q)", e["innerError"], r.header.Get("request-id"))
	}
	return e["code"].(string), e["message"].(string)
}

func TestAuthErrors(t *testing.T) {
	s := startT(t)
	now := time.Now()
	tests := []struct {
		name, token string
		status      int
		code, msg   string
	}{
		{"missing", "", 401, "InvalidAuthenticationToken", "Access token is empty."},
		{"opaque", "not-a-jwt", 401, "InvalidAuthenticationToken", "IDX14100"},
		{"expired", Token(tid, "Application.ReadWrite.All", now.Add(-2*time.Hour), time.Hour), 401, "InvalidAuthenticationToken", "Lifetime validation failed"},
		{"no scope", Token(tid, "User.Read", now, time.Hour), 403, "Authorization_RequestDenied", "Insufficient privileges"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := call(t, s, tc.token, "POST", "/v1.0/applications", map[string]any{"displayName": "x"})
			if r.status != tc.status {
				t.Fatalf("status %d, want %d", r.status, tc.status)
			}
			code, msg := errorOf(t, r)
			if code != tc.code || !strings.Contains(msg, tc.msg) {
				t.Errorf("error %s %q", code, msg)
			}
			if tc.status == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer ") {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	// Wrong audience.
	r := call(t, s, "eyJhbGciOiJub25lIn0.eyJhdWQiOiJhcGk6Ly94IiwiZXhwIjo0MTAyNDQ0ODAwLCJ0aWQiOiI3MmY5ODhiZi04NmYxLTQxYWYtOTFhYi0yZDdjZDAxMWRiNDcifQ.x", "GET", "/v1.0/applications", nil)
	if code, msg := errorOf(t, r); r.status != 401 || code != "InvalidAuthenticationToken" || !strings.Contains(msg, "audience") {
		t.Errorf("wrong audience: %d %s %s", r.status, code, msg)
	}
}

func TestCreateListPatchApplication(t *testing.T) {
	s := startT(t)
	r := call(t, s, tok(), "POST", "/v1.0/applications", map[string]any{
		"displayName":    "Claude O'Brien",
		"signInAudience": "AzureADMyOrg",
		"publicClient":   map[string]any{"redirectUris": []string{"http://127.0.0.1/callback"}},
		"api":            map[string]any{"requestedAccessTokenVersion": 2},
	})
	if r.status != 201 {
		t.Fatalf("create: %d %v", r.status, r.body)
	}
	if !isGUID(str(r.body["id"])) || !isGUID(str(r.body["appId"])) || r.body["id"] == r.body["appId"] {
		t.Fatalf("ids: %v %v", r.body["id"], r.body["appId"])
	}
	if !strings.HasSuffix(str(r.body["@odata.context"]), "#applications/$entity") {
		t.Errorf("@odata.context = %v", r.body["@odata.context"])
	}
	api := r.body["api"].(map[string]any)
	if _, ok := api["oauth2PermissionScopes"].([]any); !ok {
		t.Error("api defaults missing")
	}
	id, appID := str(r.body["id"]), str(r.body["appId"])

	// $filter with a doubled quote.
	l := call(t, s, tok(), "GET", "/v1.0/applications?$filter="+url.QueryEscape("displayName eq 'Claude O''Brien'"), nil)
	if v := l.body["value"].([]any); l.status != 200 || len(v) != 1 {
		t.Fatalf("filter: %d %v", l.status, l.body)
	}
	l = call(t, s, tok(), "GET", "/v1.0/applications?$filter="+url.QueryEscape("appId eq '"+appID+"'"), nil)
	if v := l.body["value"].([]any); len(v) != 1 {
		t.Fatalf("appId filter: %v", l.body)
	}
	l = call(t, s, tok(), "GET", "/v1.0/applications?$filter="+url.QueryEscape("startswith(displayName,'C')"), nil)
	if code, _ := errorOf(t, l); l.status != 400 || code != "Request_UnsupportedQuery" {
		t.Errorf("unsupported filter: %d %s", l.status, code)
	}

	p := call(t, s, tok(), "PATCH", "/v1.0/applications/"+id, map[string]any{"identifierUris": []string{"api://" + appID}})
	if p.status != 204 || p.body != nil {
		t.Fatalf("patch: %d %v", p.status, p.body)
	}
	g := call(t, s, tok(), "GET", "/v1.0/applications/"+id, nil)
	if uris := g.body["identifierUris"].([]any); len(uris) != 1 || uris[0] != "api://"+appID {
		t.Errorf("identifierUris = %v", uris)
	}
	if g.body["displayName"] != "Claude O'Brien" {
		t.Error("PATCH lost displayName")
	}

	nf := call(t, s, tok(), "GET", "/v1.0/applications/"+NewGUID(), nil)
	if code, _ := errorOf(t, nf); nf.status != 404 || code != "Request_ResourceNotFound" {
		t.Errorf("not found: %d %s", nf.status, code)
	}
	// Another tenant sees nothing.
	other := Token("11111111-2222-4333-8444-555555555555", "Application.ReadWrite.All", time.Now(), time.Hour)
	if v := call(t, s, other, "GET", "/v1.0/applications", nil).body["value"].([]any); len(v) != 0 {
		t.Error("tenants are not separated")
	}
}

func TestValidationErrors(t *testing.T) {
	s := startT(t)
	bad := []struct {
		name string
		body map[string]any
		code string
		msg  string
	}{
		{"unknown property", map[string]any{"displayName": "a", "color": "red"}, "Request_BadRequest", "does not exist on type 'microsoft.graph.application'"},
		{"read-only appId", map[string]any{"displayName": "a", "appId": NewGUID()}, "Request_BadRequest", "read-only"},
		{"secret via PATCH body", map[string]any{"displayName": "a", "passwordCredentials": []any{}}, "Request_BadRequest", "addPassword"},
		{"no name", map[string]any{"signInAudience": "AzureADMyOrg"}, "Request_BadRequest", "displayName"},
		{"bad audience", map[string]any{"displayName": "a", "signInAudience": "Everyone"}, "Request_BadRequest", "signInAudience"},
		{"http public redirect", map[string]any{"displayName": "a", "publicClient": map[string]any{"redirectUris": []string{"http://example.com/cb"}}}, "Request_BadRequest", "PublicClientApplication"},
		{"custom scheme on web", map[string]any{"displayName": "a", "web": map[string]any{"redirectUris": []string{"msauth.x://auth"}}}, "Request_BadRequest", "WebApplication"},
		{"token version 3", map[string]any{"displayName": "a", "api": map[string]any{"requestedAccessTokenVersion": 3}}, "Request_BadRequest", "requestedAccessTokenVersion"},
		{"unverified domain", map[string]any{"displayName": "a", "identifierUris": []string{"https://contoso.example/claude"}}, "HostNameNotOnVerifiedDomain", "verified domain"},
		{"bad resource access", map[string]any{"displayName": "a", "requiredResourceAccess": []any{map[string]any{"resourceAppId": GraphAppID, "resourceAccess": []any{map[string]any{"id": "openid", "type": "Scope"}}}}}, "Request_BadRequest", "resourceAccess"},
		{"duplicate role value", map[string]any{"displayName": "a", "appRoles": []any{
			map[string]any{"id": NewGUID(), "value": "R", "allowedMemberTypes": []string{"User"}, "isEnabled": true},
			map[string]any{"id": NewGUID(), "value": "R", "allowedMemberTypes": []string{"User"}, "isEnabled": true},
		}}, "Request_BadRequest", "already in use"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			r := call(t, s, tok(), "POST", "/v1.0/applications", tc.body)
			code, msg := errorOf(t, r)
			if r.status != 400 || code != tc.code || !strings.Contains(msg, tc.msg) {
				t.Errorf("%d %s %q", r.status, code, msg)
			}
		})
	}
	if n := len(s.Applications(tid)); n != 0 {
		t.Errorf("%d applications stored by failed requests", n)
	}
}

func TestEnabledEntitlementsCannotChange(t *testing.T) {
	s := startT(t)
	role := map[string]any{"id": NewGUID(), "value": "Claude.User", "displayName": "Claude.User", "allowedMemberTypes": []string{"User"}, "isEnabled": true, "description": "d"}
	app := call(t, s, tok(), "POST", "/v1.0/applications", map[string]any{"displayName": "a", "appRoles": []any{role}}).body
	id := str(app["id"])
	// Removing it: refused.
	r := call(t, s, tok(), "PATCH", "/v1.0/applications/"+id, map[string]any{"appRoles": []any{}})
	if code, _ := errorOf(t, r); r.status != 400 || code != "CannotDeleteOrUpdateEnabledEntitlement" {
		t.Fatalf("remove enabled role: %d %s", r.status, code)
	}
	// Changing it while enabled: refused. Disabling it: allowed; then removing: allowed.
	changed := map[string]any{}
	for k, v := range role {
		changed[k] = v
	}
	changed["description"] = "new"
	if r := call(t, s, tok(), "PATCH", "/v1.0/applications/"+id, map[string]any{"appRoles": []any{changed}}); r.status != 400 {
		t.Errorf("update enabled role: %d", r.status)
	}
	changed["isEnabled"] = false
	if r := call(t, s, tok(), "PATCH", "/v1.0/applications/"+id, map[string]any{"appRoles": []any{changed}}); r.status != 204 {
		t.Errorf("disable role: %d %v", r.status, r.body)
	}
	if r := call(t, s, tok(), "PATCH", "/v1.0/applications/"+id, map[string]any{"appRoles": []any{}}); r.status != 204 {
		t.Errorf("remove disabled role: %d %v", r.status, r.body)
	}
}

func TestServicePrincipalsAndReplicationLag(t *testing.T) {
	s := startT(t)
	s.SetReplicationLag(2)
	app := call(t, s, tok(), "POST", "/v1.0/applications", map[string]any{"displayName": "a"}).body
	appID := str(app["appId"])
	for i := 0; i < 2; i++ {
		r := call(t, s, tok(), "POST", "/v1.0/servicePrincipals", map[string]any{"appId": appID})
		if _, msg := errorOf(t, r); r.status != 400 || !strings.Contains(msg, "does not reference a valid application object") {
			t.Fatalf("lag %d: %d %s", i, r.status, msg)
		}
	}
	r := call(t, s, tok(), "POST", "/v1.0/servicePrincipals", map[string]any{"appId": appID, "appRoleAssignmentRequired": true})
	if r.status != 201 || r.body["appId"] != appID || r.body["appRoleAssignmentRequired"] != true {
		t.Fatalf("create sp: %d %v", r.status, r.body)
	}
	r = call(t, s, tok(), "POST", "/v1.0/servicePrincipals", map[string]any{"appId": appID})
	if code, _ := errorOf(t, r); r.status != 409 || code != "Request_MultipleObjectsWithSameKeyValue" {
		t.Errorf("duplicate sp: %d %s", r.status, code)
	}
	r = call(t, s, tok(), "POST", "/v1.0/servicePrincipals", map[string]any{"appId": NewGUID()})
	if r.status != 400 {
		t.Errorf("sp for unknown app: %d", r.status)
	}
	l := call(t, s, tok(), "GET", "/v1.0/servicePrincipals?$filter="+url.QueryEscape("appId eq '"+appID+"'"), nil)
	if v := l.body["value"].([]any); len(v) != 1 {
		t.Errorf("sp filter: %v", l.body)
	}
}

func TestFailNextAndThrottle(t *testing.T) {
	s := startT(t)
	s.FailNext(429, "TooManyRequests", "Too many requests.")
	r := call(t, s, tok(), "GET", "/v1.0/applications", nil)
	if code, _ := errorOf(t, r); r.status != 429 || code != "TooManyRequests" || r.header.Get("Retry-After") != "1" {
		t.Errorf("throttle: %d %s %q", r.status, code, r.header.Get("Retry-After"))
	}
	if r := call(t, s, tok(), "GET", "/v1.0/applications", nil); r.status != 200 {
		t.Errorf("after injected failure: %d", r.status)
	}
	if got := s.Requests(); len(got) != 2 || got[0] != "GET /v1.0/applications" {
		t.Errorf("requests = %v", got)
	}
}

func TestBadBodyAndVersion(t *testing.T) {
	s := startT(t)
	req, _ := http.NewRequest("POST", s.URL()+"/v1.0/applications", strings.NewReader("{"))
	req.Header.Set("Authorization", "Bearer "+tok())
	req.Header.Set("Content-Type", "application/json")
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != 400 {
		t.Errorf("malformed JSON: %d", r.StatusCode)
	}
	if v := call(t, s, tok(), "GET", "/beta2/applications", nil); v.status != 400 {
		t.Errorf("bad version: %d", v.status)
	}
}

func TestAppRoleAssignments(t *testing.T) {
	s := startT(t)
	roleID := NewGUID()
	app := call(t, s, tok(), "POST", "/v1.0/applications", map[string]any{"displayName": "a", "appRoles": []any{
		map[string]any{"id": roleID, "value": "Claude.User", "allowedMemberTypes": []string{"User"}, "isEnabled": true},
	}}).body
	sp := call(t, s, tok(), "POST", "/v1.0/servicePrincipals", map[string]any{"appId": app["appId"]}).body
	spID := str(sp["id"])
	u := s.PutUser(tid, "ada@contoso.example", "Ada")
	if r := call(t, s, tok(), "GET", "/v1.0/users/ada@contoso.example", nil); r.status != 200 || r.body["id"] != u["id"] {
		t.Fatalf("user by UPN: %d %v", r.status, r.body)
	}
	if r := call(t, s, tok(), "GET", "/v1.0/users/"+NewGUID(), nil); r.status != 404 {
		t.Errorf("unknown user: %d", r.status)
	}
	path := "/v1.0/servicePrincipals/" + spID + "/appRoleAssignedTo"
	body := map[string]any{"principalId": u["id"], "resourceId": spID, "appRoleId": roleID}
	if r := call(t, s, tok(), "POST", path, body); r.status != 201 || r.body["principalType"] != "User" {
		t.Fatalf("assign: %d %v", r.status, r.body)
	}
	r := call(t, s, tok(), "POST", path, body)
	if _, msg := errorOf(t, r); r.status != 400 || !strings.Contains(msg, "already exists") {
		t.Errorf("duplicate: %d %s", r.status, msg)
	}
	body["appRoleId"] = NewGUID()
	if r := call(t, s, tok(), "POST", path, body); r.status != 400 {
		t.Errorf("unknown role: %d", r.status)
	}
	if l := call(t, s, tok(), "GET", path, nil); len(l.body["value"].([]any)) != 1 {
		t.Errorf("list: %v", l.body)
	}
}

func TestPaging(t *testing.T) {
	s, err := Start(Options{PageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := 0; i < 5; i++ {
		s.PutApplication(tid, map[string]any{"displayName": "same"})
	}
	var got int
	next := "/v1.0/applications?$filter=" + url.QueryEscape("displayName eq 'same'")
	for pages := 0; next != ""; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		r := call(t, s, tok(), "GET", next, nil)
		got += len(r.body["value"].([]any))
		next = ""
		if nl, ok := r.body["@odata.nextLink"].(string); ok {
			if !strings.HasPrefix(nl, s.URL()+"/v1.0/applications?") || !strings.Contains(nl, "%24filter=") {
				t.Fatalf("nextLink %q", nl)
			}
			next = strings.TrimPrefix(nl, s.URL())
		}
	}
	if got != 5 {
		t.Errorf("%d applications over all pages", got)
	}
	if r := call(t, s, tok(), "GET", "/v1.0/applications?$skiptoken=garbage", nil); r.status != 400 {
		t.Errorf("bad skiptoken: %d", r.status)
	}
}
