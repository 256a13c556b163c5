package entra

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/fake/graph"
)

const tid = "72f988bf-86f1-41af-91ab-2d7cd011db47"

func setup(t *testing.T) (*graph.Server, *Graph) {
	t.Helper()
	s, err := graph.Start(graph.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	g := NewGraph(GraphOptions{
		BaseURL: s.URL(),
		Token:   graph.Token(tid, "Application.ReadWrite.All", time.Now(), time.Hour),
		Sleep:   func(context.Context, time.Duration) error { return nil },
	})
	return s, g
}

func guids() func() string {
	var n atomic.Int64
	return func() string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", n.Add(1)) }
}

func writes(reqs []string) []string {
	var out []string
	for _, r := range reqs {
		if !strings.HasPrefix(r, "GET ") {
			out = append(out, r)
		}
	}
	return out
}

func TestRegisterCreatesThenIsIdempotent(t *testing.T) {
	s, g := setup(t)
	spec := Spec{TenantID: tid, Name: "Claude (Gatehouse)", AppRole: "Claude.User", Scope: "access_as_user", Broker: true, AssignmentRequired: true}
	res, err := Register(context.Background(), g, spec, guids())
	if err != nil {
		t.Fatal(err)
	}
	if !res.Created || res.ClientID == "" || res.ServicePrincipalID == "" {
		t.Fatalf("result %+v", res)
	}
	apps := s.Applications(tid)
	if len(apps) != 1 {
		t.Fatalf("%d applications", len(apps))
	}
	app := apps[0]
	checks := []struct {
		what string
		ok   bool
	}{
		{"single tenant", app["signInAudience"] == "AzureADMyOrg"},
		{"public client fallback", app["isFallbackPublicClient"] == true},
		{"loopback redirect under publicClient", slices.Contains(redirects(app, "publicClient"), LoopbackRedirect)},
		{"mac broker redirect", slices.Contains(redirects(app, "publicClient"), MacBrokerRedirect)},
		{"windows broker redirect", slices.Contains(redirects(app, "publicClient"), WindowsBrokerRedirect(res.ClientID))},
		{"no web redirects", len(redirects(app, "web")) == 0},
		{"no secrets", len(asSlice(app["passwordCredentials"])) == 0},
		{"v2 tokens", asMap(app["api"])["requestedAccessTokenVersion"] == float64(2)},
		{"app role", hasValue(asSlice(app["appRoles"]), "Claude.User") && enabled(asSlice(app["appRoles"]), "Claude.User")},
		{"scope", hasValue(asSlice(asMap(app["api"])["oauth2PermissionScopes"]), "access_as_user")},
		{"identifier uri", slices.Contains(stringsOf(app["identifierUris"]), "api://"+res.ClientID)},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: not satisfied in %v", c.what, app)
		}
	}
	var graphScopes []string
	for _, r := range asSlice(app["requiredResourceAccess"]) {
		m := asMap(r)
		if m["resourceAppId"] == GraphResourceAppID {
			for _, a := range asSlice(m["resourceAccess"]) {
				if asMap(a)["type"] == "Scope" {
					graphScopes = append(graphScopes, str(asMap(a)["id"]))
				}
			}
		}
	}
	slices.Sort(graphScopes)
	want := slices.Clone(delegatedScopes)
	slices.Sort(want)
	if !slices.Equal(graphScopes, want) {
		t.Errorf("Graph delegated scopes = %v, want %v", graphScopes, want)
	}
	sps := s.ServicePrincipals(tid)
	if len(sps) != 1 || sps[0]["appId"] != res.ClientID || sps[0]["appRoleAssignmentRequired"] != true {
		t.Errorf("service principals = %v", sps)
	}

	// Second run: found by name, nothing written.
	before := len(s.Requests())
	res2, err := Register(context.Background(), g, spec, guids())
	if err != nil {
		t.Fatal(err)
	}
	if w := writes(s.Requests()[before:]); len(w) != 0 {
		t.Errorf("re-run wrote %v", w)
	}
	if res2.Created || res2.ClientID != res.ClientID || len(res2.Changes) != 0 {
		t.Errorf("re-run result %+v", res2)
	}
	if len(s.Applications(tid)) != 1 || len(s.ServicePrincipals(tid)) != 1 {
		t.Error("re-run created duplicates")
	}
}

func TestRegisterUpdatesPartialRegistration(t *testing.T) {
	s, g := setup(t)
	otherRole := map[string]any{"id": "11111111-1111-4111-8111-111111111111", "value": "Admin", "displayName": "Admin", "allowedMemberTypes": []any{"User"}, "isEnabled": true, "description": "x"}
	existing := s.PutApplication(tid, map[string]any{
		"displayName":    "Claude",
		"signInAudience": "AzureADMultipleOrgs",
		"publicClient":   map[string]any{"redirectUris": []any{"http://localhost/other"}},
		"requiredResourceAccess": []any{
			map[string]any{"resourceAppId": GraphResourceAppID, "resourceAccess": []any{map[string]any{"id": ScopeOpenID, "type": "Scope"}, map[string]any{"id": "e1fe6dd8-ba31-4d61-89e7-88639da4683d", "type": "Scope"}}},
			map[string]any{"resourceAppId": "00000002-0000-0000-c000-000000000000", "resourceAccess": []any{map[string]any{"id": "311a71cc-e848-46a1-bdf8-97ff7156d8e6", "type": "Scope"}}},
		},
		"appRoles":            []any{otherRole},
		"passwordCredentials": []any{map[string]any{"keyId": "k", "displayName": "old secret"}},
	})
	res, err := Register(context.Background(), g, Spec{TenantID: tid, Name: "Claude", AppRole: "Claude.User"}, guids())
	if err != nil {
		t.Fatal(err)
	}
	if res.Created || res.ClientID != existing["appId"] {
		t.Fatalf("result %+v", res)
	}
	app := s.Applications(tid)[0]
	if app["signInAudience"] != "AzureADMyOrg" {
		t.Error("audience not narrowed to single tenant")
	}
	if pub := redirects(app, "publicClient"); !slices.Equal(pub, []string{"http://localhost/other", LoopbackRedirect}) {
		t.Errorf("publicClient redirects = %v (existing ones must be kept)", pub)
	}
	if !hasValue(asSlice(app["appRoles"]), "Admin") || !hasValue(asSlice(app["appRoles"]), "Claude.User") {
		t.Errorf("app roles = %v", app["appRoles"])
	}
	n := 0
	for _, r := range asSlice(app["requiredResourceAccess"]) {
		n += len(asSlice(asMap(r)["resourceAccess"]))
	}
	if n != 6 { // User.Read kept + 4 OIDC scopes (openid once) + the other resource's scope
		t.Errorf("%d resource access entries: %v", n, app["requiredResourceAccess"])
	}
	if !strings.Contains(strings.Join(res.Warnings, "\n"), "1 client secret") {
		t.Errorf("no warning about the secret: %v", res.Warnings)
	}
	if len(res.Changes) < 4 {
		t.Errorf("changes = %v", res.Changes)
	}
}

func TestWebPlatformTrap(t *testing.T) {
	s, g := setup(t)
	web := s.PutApplication(tid, map[string]any{
		"displayName": "Claude",
		"web":         map[string]any{"redirectUris": []any{"http://127.0.0.1/callback"}},
	})
	_, err := Register(context.Background(), g, Spec{TenantID: tid, Name: "Claude"}, guids())
	var we *WebPlatformError
	if !errors.As(err, &we) || we.ClientID != web["appId"] {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{"Web platform", "secret", "401", "cannot be converted", "--replace-web"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("explanation lacks %q: %s", want, err)
		}
	}
	if w := writes(s.Requests()); len(w) != 0 {
		t.Errorf("touched the Web registration: %v", w)
	}

	res, err := Register(context.Background(), g, Spec{TenantID: tid, Name: "Claude", ReplaceWeb: true}, guids())
	if err != nil {
		t.Fatal(err)
	}
	if !res.Created || res.ClientID == web["appId"] || len(res.Warnings) == 0 {
		t.Fatalf("result %+v", res)
	}
	names := []string{}
	for _, a := range s.Applications(tid) {
		names = append(names, str(a["displayName"]))
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"Claude", "Claude (public client)"}) {
		t.Errorf("applications = %v", names)
	}
	// Re-running with the new name is idempotent.
	before := len(s.Requests())
	if _, err := Register(context.Background(), g, Spec{TenantID: tid, Name: "Claude (public client)"}, guids()); err != nil {
		t.Fatal(err)
	}
	if w := writes(s.Requests()[before:]); len(w) != 0 {
		t.Errorf("re-run wrote %v", w)
	}
}

func TestAmbiguousNameAndAppID(t *testing.T) {
	s, g := setup(t)
	a := s.PutApplication(tid, map[string]any{"displayName": "Claude"})
	s.PutApplication(tid, map[string]any{"displayName": "Claude"})
	_, err := Register(context.Background(), g, Spec{TenantID: tid, Name: "Claude"}, guids())
	if err == nil || !strings.Contains(err.Error(), "--app-id") {
		t.Fatalf("err = %v", err)
	}
	res, err := Register(context.Background(), g, Spec{TenantID: tid, Name: "Claude", AppID: str(a["appId"])}, guids())
	if err != nil || res.ClientID != a["appId"] {
		t.Fatalf("by app id: %+v %v", res, err)
	}
	if _, err := Register(context.Background(), g, Spec{TenantID: tid, Name: "Claude", AppID: "99999999-9999-4999-8999-999999999999"}, guids()); err == nil {
		t.Error("unknown --app-id accepted")
	}
}

func TestReplicationLagAndThrottling(t *testing.T) {
	s, g := setup(t)
	s.SetReplicationLag(3)
	s.FailNext(http.StatusTooManyRequests, "TooManyRequests", "Too many requests.")
	res, err := Register(context.Background(), g, Spec{TenantID: tid, Name: "Claude"}, guids())
	if err != nil {
		t.Fatal(err)
	}
	if res.ServicePrincipalID == "" {
		t.Fatal("no service principal")
	}
	spPosts := 0
	for _, r := range s.Requests() {
		if r == "POST /v1.0/servicePrincipals" {
			spPosts++
		}
	}
	if spPosts != 4 {
		t.Errorf("%d service principal attempts, want 4 (3 lagging + 1)", spPosts)
	}
}

func TestGraphErrors(t *testing.T) {
	s, err := graph.Start(graph.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tc := range []struct {
		name, token, want string
	}{
		{"read-only token", graph.Token(tid, "User.Read", time.Now(), time.Hour), "Authorization_RequestDenied"},
		{"expired", graph.Token(tid, "Application.ReadWrite.All", time.Now().Add(-3*time.Hour), time.Hour), "InvalidAuthenticationToken"},
		{"garbage", "abc", "InvalidAuthenticationToken"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewGraph(GraphOptions{BaseURL: s.URL(), Token: tc.token})
			_, err := Register(context.Background(), g, Spec{TenantID: tid, Name: "Claude"}, guids())
			var ge *GraphError
			if !errors.As(err, &ge) || ge.Code != tc.want || ge.RequestID == "" {
				t.Fatalf("err = %#v", err)
			}
			if strings.Contains(err.Error(), tc.token) && len(tc.token) > 3 {
				t.Error("error message contains the token")
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("multi-line error: %q", err)
			}
		})
	}
	// A Graph error in the middle (entitlement rule) surfaces with a hint.
	s.FailNext(400, "CannotDeleteOrUpdateEnabledEntitlement", "Permission (scope or role) cannot be deleted or updated unless disabled first.")
	g := NewGraph(GraphOptions{BaseURL: s.URL(), Token: graph.Token(tid, "Application.ReadWrite.All", time.Now(), time.Hour)})
	_, err = Register(context.Background(), g, Spec{TenantID: tid, Name: "Claude"}, guids())
	if err == nil || !strings.Contains(err.Error(), "disable it in the portal") {
		t.Errorf("err = %v", err)
	}
}

func TestSpecValidate(t *testing.T) {
	for _, s := range []Spec{
		{TenantID: "contoso.onmicrosoft.com", Name: "x"},
		{TenantID: tid},
		{TenantID: tid, Name: "x", AppRole: "Claude User"},
		{TenantID: tid, Name: "x", Scope: "a/b"},
		{TenantID: tid, Name: "x", AppID: "abc"},
	} {
		if s.Validate() == nil {
			t.Errorf("%+v accepted", s)
		}
	}
}

func TestPlan(t *testing.T) {
	calls := Plan(Spec{TenantID: tid, Name: "Claude's app", AppRole: "Claude.User", Scope: "access_as_user", Broker: true}, guids())
	var lines []string
	for _, c := range calls {
		lines = append(lines, c.Method+" "+c.Path)
	}
	want := []string{
		"GET /applications?$filter=" + url.QueryEscape("displayName eq 'Claude''s app'"),
		"POST /applications",
		"PATCH /applications/{id}",
		"GET /servicePrincipals?$filter=" + url.QueryEscape("appId eq '{appId}'"),
		"POST /servicePrincipals",
	}
	if !slices.Equal(lines, want) {
		t.Fatalf("plan = %v", lines)
	}
	b, _ := json.Marshal(calls[1].Body)
	for _, w := range []string{`"signInAudience":"AzureADMyOrg"`, `"http://127.0.0.1/callback"`, `"requestedAccessTokenVersion":2`, ScopeOfflineAccess} {
		if !strings.Contains(string(b), w) {
			t.Errorf("create body lacks %s: %s", w, b)
		}
	}
	if strings.Contains(string(b), "passwordCredentials") || strings.Contains(string(b), `"web"`) {
		t.Errorf("create body has a secret or Web platform: %s", b)
	}
}

func TestDeviceCodeToken(t *testing.T) {
	var polls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/" + tid + "/oauth2/v2.0/devicecode":
			if r.PostForm.Get("client_id") != GraphCLIClientID || r.PostForm.Get("scope") != GraphScope {
				w.WriteHeader(400)
				fmt.Fprint(w, `{"error":"invalid_request","error_description":"bad"}`)
				return
			}
			fmt.Fprint(w, `{"device_code":"DC","user_code":"ABCD-EFGH","verification_uri":"https://microsoft.com/devicelogin","expires_in":900,"interval":5,"message":"To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code ABCD-EFGH to authenticate."}`)
		case "/" + tid + "/oauth2/v2.0/token":
			if r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:device_code" || r.PostForm.Get("device_code") != "DC" {
				w.WriteHeader(400)
				fmt.Fprint(w, `{"error":"invalid_grant"}`)
				return
			}
			switch polls.Add(1) {
			case 1:
				w.WriteHeader(400)
				fmt.Fprint(w, `{"error":"authorization_pending","error_description":"AADSTS70016: OAuth 2.0 device flow error. Authorization is pending."}`)
			case 2:
				w.WriteHeader(400)
				fmt.Fprint(w, `{"error":"slow_down"}`)
			default:
				fmt.Fprint(w, `{"token_type":"Bearer","access_token":"GRAPH-TOKEN","expires_in":3600}`)
			}
		default:
			w.WriteHeader(404)
		}
	}))
	defer srv.Close()
	var prompt strings.Builder
	var waits []time.Duration
	tok, err := DeviceCodeToken(context.Background(), DeviceCodeOptions{
		LoginURL: srv.URL, TenantID: tid, Prompt: &prompt,
		Sleep: func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil },
	})
	if err != nil || tok != "GRAPH-TOKEN" {
		t.Fatalf("%q %v", tok, err)
	}
	if !strings.Contains(prompt.String(), "ABCD-EFGH") {
		t.Errorf("prompt = %q", prompt.String())
	}
	if !slices.Equal(waits, []time.Duration{5 * time.Second, 5 * time.Second, 10 * time.Second}) {
		t.Errorf("waits = %v (interval, then slow_down adds 5 s)", waits)
	}

	// A declined sign-in fails with the IdP's reason.
	decline := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if strings.HasSuffix(r.URL.Path, "/devicecode") {
			fmt.Fprint(w, `{"device_code":"DC","user_code":"X","verification_uri":"u","expires_in":60,"interval":1}`)
			return
		}
		w.WriteHeader(400)
		fmt.Fprint(w, `{"error":"authorization_declined","error_description":"AADSTS70000: The user declined.\r\nTrace ID: x"}`)
	}))
	defer decline.Close()
	_, err = DeviceCodeToken(context.Background(), DeviceCodeOptions{LoginURL: decline.URL, TenantID: tid, Sleep: func(context.Context, time.Duration) error { return nil }})
	if err == nil || !strings.Contains(err.Error(), "authorization_declined") || strings.Contains(err.Error(), "Trace ID") {
		t.Errorf("declined: %v", err)
	}
}

// FuzzDiff: whatever shape Graph returns for an existing registration, diff
// does not panic, and a second diff after applying its patch is empty.
func FuzzDiff(f *testing.F) {
	f.Add(`{"appId":"a","signInAudience":"AzureADMyOrg","publicClient":{"redirectUris":["http://127.0.0.1/callback"]}}`)
	f.Add(`{"appId":"a","publicClient":{"redirectUris":[1,null]},"api":[],"appRoles":{"x":1},"requiredResourceAccess":[{"resourceAppId":"00000003-0000-0000-c000-000000000000","resourceAccess":"x"}]}`)
	f.Add(`{"web":{"redirectUris":["http://localhost/x"]},"passwordCredentials":[{}]}`)
	f.Fuzz(func(t *testing.T, raw string) {
		var app map[string]any
		if json.Unmarshal([]byte(raw), &app) != nil || app == nil {
			return
		}
		spec := Spec{TenantID: tid, Name: "x", AppRole: "Claude.User", Scope: "access_as_user", Broker: true}
		patch, _, _ := diff(app, spec, guids())
		for k, v := range patch {
			app[k] = v
		}
		b, _ := json.Marshal(app)
		var again map[string]any
		_ = json.Unmarshal(b, &again)
		if p2, _, _ := diff(again, spec, guids()); len(p2) != 0 {
			t.Fatalf("not idempotent: second patch %v", p2)
		}
	})
}

func TestRegisterAssignsUsersAndGroups(t *testing.T) {
	s, g := setup(t)
	ada := s.PutUser(tid, "ada@contoso.example", "Ada Lovelace")
	grace := s.PutUser(tid, "grace@contoso.example", "Grace Hopper")
	eng := s.PutGroup(tid, "Engineering")
	spec := Spec{TenantID: tid, Name: "Claude", AppRole: "Claude.User",
		AssignUsers: []string{"ada@contoso.example", str(grace["id"])}, AssignGroups: []string{str(eng["id"])}}
	res, err := Register(context.Background(), g, spec, guids())
	if err != nil {
		t.Fatal(err)
	}
	as := s.Assignments(tid)
	if len(as) != 3 {
		t.Fatalf("assignments = %v", as)
	}
	roleID := ""
	for _, r := range asSlice(s.Applications(tid)[0]["appRoles"]) {
		if asMap(r)["value"] == "Claude.User" {
			roleID = str(asMap(r)["id"])
		}
	}
	got := map[string]bool{}
	for _, a := range as {
		if a["appRoleId"] != roleID || a["resourceId"] != res.ServicePrincipalID {
			t.Errorf("assignment %v", a)
		}
		got[str(a["principalId"])] = true
	}
	for _, p := range []map[string]any{ada, grace, eng} {
		if !got[str(p["id"])] {
			t.Errorf("%v not assigned", p["displayName"])
		}
	}
	// Re-run: no new assignment, no write at all.
	before := len(s.Requests())
	if _, err := Register(context.Background(), g, spec, guids()); err != nil {
		t.Fatal(err)
	}
	if w := writes(s.Requests()[before:]); len(w) != 0 {
		t.Errorf("re-run wrote %v", w)
	}
	// Unknown user: a clear error.
	spec.AssignUsers = []string{"nobody@contoso.example"}
	if _, err := Register(context.Background(), g, spec, guids()); err == nil || !strings.Contains(err.Error(), "no user nobody@contoso.example") {
		t.Errorf("unknown user: %v", err)
	}
	if (Spec{TenantID: tid, Name: "x", AssignUsers: []string{"a@b.c"}}).Validate() == nil {
		t.Error("--assign without --app-role accepted")
	}
}

func TestAssignmentsAcrossPages(t *testing.T) {
	s, err := graph.Start(graph.Options{PageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	g := NewGraph(GraphOptions{BaseURL: s.URL(), Token: graph.Token(tid, "Application.ReadWrite.All", time.Now(), time.Hour)})
	spec := Spec{TenantID: tid, Name: "Claude", AppRole: "Claude.User"}
	for i := 0; i < 5; i++ {
		u := s.PutUser(tid, fmt.Sprintf("user%d@contoso.example", i), "U")
		spec.AssignUsers = append(spec.AssignUsers, str(u["id"]))
	}
	if _, err := Register(context.Background(), g, spec, guids()); err != nil {
		t.Fatal(err)
	}
	before := len(s.Requests())
	if _, err := Register(context.Background(), g, spec, guids()); err != nil {
		t.Fatal(err)
	}
	if w := writes(s.Requests()[before:]); len(w) != 0 {
		t.Errorf("re-run wrote %v (assignments on later pages not seen)", w)
	}
	if n := len(s.Assignments(tid)); n != 5 {
		t.Errorf("%d assignments", n)
	}
}

func TestNextLinkToAnotherHostRefused(t *testing.T) {
	var seen atomic.Int64
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			seen.Add(1)
		}
	}))
	defer evil.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"value":[],"@odata.nextLink":%q}`, evil.URL+"/v1.0/applications?$skiptoken=x")
	}))
	defer srv.Close()
	g := NewGraph(GraphOptions{BaseURL: srv.URL, Token: "secret-token"})
	_, err := g.list(context.Background(), "/applications")
	if err == nil || !strings.Contains(err.Error(), "outside") {
		t.Fatalf("err = %v", err)
	}
	if seen.Load() != 0 {
		t.Error("the token was sent to another host")
	}
}
