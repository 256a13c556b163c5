// Package entra creates or updates, idempotently, the Entra ID app
// registration Claude Desktop and Claude Code sign in with, through
// Microsoft Graph (`gatehouse entra register`): a single-tenant public
// client under the Mobile and desktop applications platform with the
// loopback redirect http://127.0.0.1/callback, no secret, delegated openid
// profile email offline_access on Microsoft Graph, v2 access tokens, an
// optional app role and exposed scope, and its service principal (contract
// §4.1). It also signs in to Graph with the device code flow.
//
// Re-running is safe: an existing registration is found by name (or client
// ID) and only what differs is changed; nothing it does not own is removed,
// and enabled app roles and scopes are never edited in place (Graph forbids
// it). A registration under the Web platform cannot be converted, so it is
// reported (WebPlatformError) instead of patched.
package entra

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Well-known identifiers (contract §4.1).
const (
	GraphResourceAppID = "00000003-0000-0000-c000-000000000000"
	ScopeOpenID        = "37f7f235-527c-4136-accd-4a02d197296e"
	ScopeProfile       = "14dad69e-099b-42c9-810b-d002981feec1"
	ScopeEmail         = "64a6cdd6-aab1-4aaf-94b8-3cc8405e90d0"
	ScopeOfflineAccess = "7427e0e9-2fba-42fe-b0c0-848c9e6a8182"
	// LoopbackRedirect is the redirect URI Claude Desktop and `gatehouse
	// login` use; Entra ignores the port of loopback URIs but not the path.
	LoopbackRedirect = "http://127.0.0.1/callback"
	// MacBrokerRedirect is Claude Desktop's macOS broker (Company Portal)
	// redirect URI.
	MacBrokerRedirect = "msauth.com.anthropic.claudefordesktop://auth"
)

// WindowsBrokerRedirect is the WAM broker redirect URI for a client ID.
func WindowsBrokerRedirect(clientID string) string {
	return "ms-appx-web://Microsoft.AAD.BrokerPlugin/" + clientID
}

var delegatedScopes = []string{ScopeOpenID, ScopeProfile, ScopeEmail, ScopeOfflineAccess}

// Spec is the registration wanted.
type Spec struct {
	// TenantID is the directory (GUID). Required.
	TenantID string
	// Name is the display name the registration is found and created by.
	// Required.
	Name string
	// AppID selects an existing registration by client ID instead of by
	// name. Optional.
	AppID string
	// AppRole, if set (e.g. "Claude.User"), is an app role for users that the
	// gateway can require (identity.required_roles).
	AppRole string
	// Scope, if set (e.g. "access_as_user"), is exposed under
	// api://<client-id> for access-token mode.
	Scope string
	// Broker adds the OS broker redirect URIs (WAM, Company Portal).
	Broker bool
	// AssignmentRequired makes Entra refuse sign-in to users not assigned to
	// the app (Enterprise applications → Properties → Assignment required).
	AssignmentRequired bool
	// AssignUsers are users (UPN or object ID) to assign to AppRole.
	AssignUsers []string
	// AssignGroups are groups (object IDs) to assign to AppRole. Assigning a
	// group needs Entra ID P1 or P2 in the tenant.
	AssignGroups []string
	// ReplaceWeb, when the registration found uses the Web platform, creates
	// a new public-client registration named NewName instead of failing.
	ReplaceWeb bool
	// NewName is the name for that new registration. Default: Name + " (public client)".
	NewName string
}

var (
	guidRE  = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	valueRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,120}$`)
	upnRE   = regexp.MustCompile(`^[A-Za-z0-9._%+'#-]+@[A-Za-z0-9.-]+$`)
)

// Validate checks the spec without any network access.
func (s Spec) Validate() error {
	var errs []error
	if !guidRE.MatchString(s.TenantID) {
		errs = append(errs, errors.New("--tenant must be the directory (tenant) ID, a GUID"))
	}
	if strings.TrimSpace(s.Name) == "" || len(s.Name) > 120 {
		errs = append(errs, errors.New("--name is required (at most 120 characters)"))
	}
	if s.AppID != "" && !guidRE.MatchString(s.AppID) {
		errs = append(errs, errors.New("--app-id must be a client ID (GUID)"))
	}
	if s.AppRole != "" && !valueRE.MatchString(s.AppRole) {
		errs = append(errs, errors.New("--app-role may contain only letters, digits, '.', '_' and '-'"))
	}
	if (len(s.AssignUsers) > 0 || len(s.AssignGroups) > 0) && s.AppRole == "" {
		errs = append(errs, errors.New("--assign and --assign-group need --app-role (the role to assign)"))
	}
	for _, u := range s.AssignUsers {
		if !guidRE.MatchString(u) && !upnRE.MatchString(u) {
			errs = append(errs, fmt.Errorf("--assign %q: want a user principal name or an object ID", u))
		}
	}
	for _, g := range s.AssignGroups {
		if !guidRE.MatchString(g) {
			errs = append(errs, fmt.Errorf("--assign-group %q: want the group's object ID", g))
		}
	}
	if s.Scope != "" && !valueRE.MatchString(s.Scope) {
		errs = append(errs, errors.New("--scope may contain only letters, digits, '.', '_' and '-'"))
	}
	return errors.Join(errs...)
}

// Issuer is the v2 issuer of a tenant.
func Issuer(loginBase, tenantID string) string {
	if loginBase == "" {
		loginBase = "https://login.microsoftonline.com"
	}
	return strings.TrimSuffix(loginBase, "/") + "/" + tenantID + "/v2.0"
}

// Result is what Register did.
type Result struct {
	TenantID           string
	ClientID           string // appId
	ObjectID           string // the application object's id
	ServicePrincipalID string
	Created            bool
	Changes            []string // human-readable, one per change made
	Warnings           []string
}

// WebPlatformError reports a registration that uses the Web platform.
type WebPlatformError struct {
	Name, ClientID string
}

func (e *WebPlatformError) Error() string {
	return fmt.Sprintf("the registration %q (client ID %s) uses the Web platform. A Web registration makes Entra demand a client secret at the token exchange: "+
		"the browser says \"Connected\" but Claude then fails with AADSTS7000218 or \"Token exchange failed (HTTP 401)\", and the platform type cannot be converted. "+
		"Create a new public-client registration (re-run with --replace-web, optionally --new-name NAME)", e.Name, e.ClientID)
}

// Call is one Graph request Register makes (for --dry-run).
type Call struct {
	Method, Path string
	Body         any
	Why          string
}

// Plan lists the calls Register would make for a tenant that has no
// registration yet, and, after them, the calls of an update. It needs no
// sign-in; {id} and {appId} stand for values Graph assigns.
func Plan(s Spec, newGUID func() string) []Call {
	lookup := "/applications?$filter=" + url.QueryEscape("displayName eq "+odataString(s.Name))
	if s.AppID != "" {
		lookup = "/applications?$filter=" + url.QueryEscape("appId eq "+odataString(s.AppID))
	}
	calls := []Call{
		{Method: http.MethodGet, Path: lookup, Why: "find an existing registration (re-runs update it in place)"},
		{Method: http.MethodPost, Path: "/applications", Body: newApp(s, s.Name, newGUID), Why: "create the public client if none exists (otherwise: PATCH /applications/{id} with only the differences)"},
	}
	if p := afterCreatePatch(s, "{appId}"); len(p) > 0 {
		calls = append(calls, Call{Method: http.MethodPatch, Path: "/applications/{id}", Body: p, Why: "settings that need the client ID Graph assigned"})
	}
	calls = append(calls,
		Call{Method: http.MethodGet, Path: "/servicePrincipals?$filter=" + url.QueryEscape("appId eq '{appId}'"), Why: "find the service principal (enterprise application)"},
		Call{Method: http.MethodPost, Path: "/servicePrincipals", Body: spBody(s, "{appId}"), Why: "create it if missing (retried while the new application replicates)"},
	)
	if len(s.AssignUsers)+len(s.AssignGroups) > 0 {
		calls = append(calls, Call{Method: http.MethodGet, Path: "/applications/{id}", Why: "read the id of the app role " + s.AppRole})
		for _, u := range s.AssignUsers {
			calls = append(calls, Call{Method: http.MethodGet, Path: "/users/" + url.PathEscape(u), Why: "resolve the user"})
		}
		for _, g := range s.AssignGroups {
			calls = append(calls, Call{Method: http.MethodGet, Path: "/groups/" + g, Why: "check the group"})
		}
		calls = append(calls, Call{Method: http.MethodGet, Path: "/servicePrincipals/{spId}/appRoleAssignedTo", Why: "existing assignments"})
		calls = append(calls, Call{Method: http.MethodPost, Path: "/servicePrincipals/{spId}/appRoleAssignedTo",
			Body: map[string]any{"principalId": "{userOrGroupId}", "resourceId": "{spId}", "appRoleId": "{appRoleId}"},
			Why:  "assign " + s.AppRole + " to each principal not yet assigned"})
	}
	return calls
}

func newApp(s Spec, name string, newGUID func() string) map[string]any {
	app := map[string]any{
		"displayName":            name,
		"signInAudience":         "AzureADMyOrg",
		"isFallbackPublicClient": true,
		"publicClient":           map[string]any{"redirectUris": []any{LoopbackRedirect}},
		"requiredResourceAccess": []any{graphAccess(nil)},
		"api":                    map[string]any{"requestedAccessTokenVersion": 2},
		"notes":                  "Managed by `gatehouse entra register`: public client for Claude Desktop and Claude Code behind the Gatehouse gateway. Do not add secrets or Web redirect URIs.",
	}
	if s.Broker {
		app["publicClient"] = map[string]any{"redirectUris": []any{LoopbackRedirect, MacBrokerRedirect}}
	}
	if s.AppRole != "" {
		app["appRoles"] = []any{appRole(s.AppRole, newGUID())}
	}
	if s.Scope != "" {
		app["api"].(map[string]any)["oauth2PermissionScopes"] = []any{permissionScope(s.Scope, newGUID())}
	}
	return app
}

// afterCreatePatch is what needs the assigned client ID.
func afterCreatePatch(s Spec, appID string) map[string]any {
	p := map[string]any{}
	if s.Scope != "" {
		p["identifierUris"] = []any{"api://" + appID}
	}
	if s.Broker {
		p["publicClient"] = map[string]any{"redirectUris": []any{LoopbackRedirect, MacBrokerRedirect, WindowsBrokerRedirect(appID)}}
	}
	return p
}

func spBody(s Spec, appID string) map[string]any {
	b := map[string]any{"appId": appID}
	if s.AssignmentRequired {
		b["appRoleAssignmentRequired"] = true
	}
	return b
}

func appRole(value, id string) map[string]any {
	return map[string]any{
		"id":                 id,
		"allowedMemberTypes": []any{"User"},
		"value":              value,
		"displayName":        value,
		"description":        "May use Claude through the Gatehouse gateway.",
		"isEnabled":          true,
	}
}

func permissionScope(value, id string) map[string]any {
	return map[string]any{
		"id":                      id,
		"value":                   value,
		"type":                    "User",
		"isEnabled":               true,
		"adminConsentDisplayName": "Use Claude through the Gatehouse gateway",
		"adminConsentDescription": "Lets the signed-in user call Claude through the organisation's Gatehouse gateway.",
		"userConsentDisplayName":  "Use Claude through the Gatehouse gateway",
		"userConsentDescription":  "Lets you call Claude through your organisation's gateway.",
	}
}

// graphAccess returns the Microsoft Graph requiredResourceAccess entry with
// the four delegated scopes, keeping whatever else an existing entry has.
func graphAccess(existing map[string]any) map[string]any {
	var access []any
	have := map[string]bool{}
	if existing != nil {
		access, _ = existing["resourceAccess"].([]any)
		for _, a := range access {
			if m, ok := a.(map[string]any); ok && m["type"] == "Scope" {
				have[str(m["id"])] = true
			}
		}
	}
	access = slices.Clone(access)
	for _, id := range delegatedScopes {
		if !have[id] {
			access = append(access, map[string]any{"id": id, "type": "Scope"})
		}
	}
	return map[string]any{"resourceAppId": GraphResourceAppID, "resourceAccess": access}
}

// Register creates or updates the registration and its service principal.
// newGUID supplies IDs for new app roles and scopes.
func Register(ctx context.Context, g *Graph, s Spec, newGUID func() string) (*Result, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	res := &Result{TenantID: s.TenantID}
	app, err := findApp(ctx, g, s)
	if err != nil {
		return nil, err
	}
	if app != nil && isWebPlatform(app) {
		we := &WebPlatformError{Name: str(app["displayName"]), ClientID: str(app["appId"])}
		if !s.ReplaceWeb {
			return nil, we
		}
		name := s.NewName
		if name == "" {
			name = s.Name + " (public client)"
		}
		res.Warnings = append(res.Warnings, fmt.Sprintf("left the Web registration %q (client ID %s) untouched; delete it once nothing uses it, and use --name %q from now on", we.Name, we.ClientID, name))
		s.Name, s.AppID = name, ""
		if app, err = findApp(ctx, g, s); err != nil {
			return nil, err
		}
		if app != nil && isWebPlatform(app) {
			return nil, &WebPlatformError{Name: str(app["displayName"]), ClientID: str(app["appId"])}
		}
	}
	if app == nil {
		var created map[string]any
		if err := g.do(ctx, http.MethodPost, "/applications", newApp(s, s.Name, newGUID), &created); err != nil {
			return nil, err
		}
		res.Created = true
		res.ObjectID, res.ClientID = str(created["id"]), str(created["appId"])
		res.Changes = append(res.Changes, fmt.Sprintf("created the application %q", s.Name))
		if p := afterCreatePatch(s, res.ClientID); len(p) > 0 {
			if err := g.do(ctx, http.MethodPatch, "/applications/"+res.ObjectID, p, nil); err != nil {
				return nil, err
			}
			res.Changes = append(res.Changes, "set "+strings.Join(sortedKeys(p), ", "))
		}
	} else {
		res.ObjectID, res.ClientID = str(app["id"]), str(app["appId"])
		patch, changes, warnings := diff(app, s, newGUID)
		res.Warnings = append(res.Warnings, warnings...)
		if len(patch) > 0 {
			if err := g.do(ctx, http.MethodPatch, "/applications/"+res.ObjectID, patch, nil); err != nil {
				return nil, err
			}
			res.Changes = append(res.Changes, changes...)
		}
	}
	if err := ensureSP(ctx, g, s, res); err != nil {
		return nil, err
	}
	if len(s.AssignUsers)+len(s.AssignGroups) > 0 {
		if err := assign(ctx, g, s, res); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// assign gives AppRole to the requested users and groups that lack it.
func assign(ctx context.Context, g *Graph, s Spec, res *Result) error {
	var app map[string]any
	if err := g.do(ctx, http.MethodGet, "/applications/"+res.ObjectID, nil, &app); err != nil {
		return err
	}
	roleID := ""
	for _, x := range asSlice(app["appRoles"]) {
		if m := asMap(x); m["value"] == s.AppRole && m["isEnabled"] == true {
			roleID = str(m["id"])
		}
	}
	if roleID == "" {
		return fmt.Errorf("the app role %s is missing or disabled on the registration; cannot assign it", s.AppRole)
	}
	type principal struct{ id, label string }
	var ps []principal
	for _, u := range s.AssignUsers {
		var user map[string]any
		if err := g.do(ctx, http.MethodGet, "/users/"+url.PathEscape(u), nil, &user); err != nil {
			var ge *GraphError
			if errors.As(err, &ge) && ge.Status == http.StatusNotFound {
				return fmt.Errorf("no user %s in tenant %s", u, s.TenantID)
			}
			return err
		}
		ps = append(ps, principal{str(user["id"]), "user " + firstNonEmpty(str(user["userPrincipalName"]), u)})
	}
	for _, gid := range s.AssignGroups {
		var grp map[string]any
		if err := g.do(ctx, http.MethodGet, "/groups/"+gid, nil, &grp); err != nil {
			var ge *GraphError
			if errors.As(err, &ge) && ge.Status == http.StatusNotFound {
				return fmt.Errorf("no group %s in tenant %s", gid, s.TenantID)
			}
			return err
		}
		ps = append(ps, principal{str(grp["id"]), "group " + firstNonEmpty(str(grp["displayName"]), gid)})
	}
	base := "/servicePrincipals/" + res.ServicePrincipalID + "/appRoleAssignedTo"
	existing, err := g.list(ctx, base)
	if err != nil {
		return err
	}
	for _, p := range ps {
		have := false
		for _, a := range existing {
			if a["principalId"] == p.id && a["appRoleId"] == roleID {
				have = true
			}
		}
		if have {
			continue
		}
		body := map[string]any{"principalId": p.id, "resourceId": res.ServicePrincipalID, "appRoleId": roleID}
		if err := g.do(ctx, http.MethodPost, base, body, nil); err != nil {
			return err
		}
		res.Changes = append(res.Changes, "assigned "+s.AppRole+" to "+p.label)
	}
	return nil
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func findApp(ctx context.Context, g *Graph, s Spec) (map[string]any, error) {
	filter := "displayName eq " + odataString(s.Name)
	if s.AppID != "" {
		filter = "appId eq " + odataString(s.AppID)
	}
	apps, err := g.list(ctx, "/applications?$filter="+url.QueryEscape(filter))
	if err != nil {
		return nil, err
	}
	switch len(apps) {
	case 0:
		if s.AppID != "" {
			return nil, fmt.Errorf("no application with client ID %s in tenant %s", s.AppID, s.TenantID)
		}
		return nil, nil
	case 1:
		return apps[0], nil
	}
	var ids []string
	for _, a := range apps {
		ids = append(ids, str(a["appId"]))
	}
	return nil, fmt.Errorf("%d applications are named %q (client IDs %s); choose one with --app-id", len(apps), s.Name, strings.Join(ids, ", "))
}

func stringsOf(v any) []string {
	l, _ := v.([]any)
	var out []string
	for _, x := range l {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func redirects(app map[string]any, platform string) []string {
	m, _ := app[platform].(map[string]any)
	return stringsOf(m["redirectUris"])
}

func isLoopback(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && u.Scheme == "http" && (u.Hostname() == "127.0.0.1" || u.Hostname() == "localhost" || u.Hostname() == "::1")
}

// isWebPlatform reports the trap: the registration has Web redirect URIs and
// no loopback redirect under the public-client platform.
func isWebPlatform(app map[string]any) bool {
	web := redirects(app, "web")
	return len(web) > 0 && !slices.Contains(redirects(app, "publicClient"), LoopbackRedirect)
}

// diff computes the PATCH body that brings app to the spec, without removing
// anything the spec does not own.
func diff(app map[string]any, s Spec, newGUID func() string) (patch map[string]any, changes, warnings []string) {
	patch = map[string]any{}
	appID := str(app["appId"])
	if app["signInAudience"] != "AzureADMyOrg" {
		patch["signInAudience"] = "AzureADMyOrg"
		changes = append(changes, fmt.Sprintf("signInAudience %v → AzureADMyOrg (single tenant)", app["signInAudience"]))
	}
	if app["isFallbackPublicClient"] != true {
		patch["isFallbackPublicClient"] = true
		changes = append(changes, "isFallbackPublicClient → true (public client, no secret)")
	}
	want := []string{LoopbackRedirect}
	if s.Broker {
		want = append(want, MacBrokerRedirect, WindowsBrokerRedirect(appID))
	}
	pub := redirects(app, "publicClient")
	var add []string
	for _, w := range want {
		if !slices.Contains(pub, w) {
			add = append(add, w)
		}
	}
	if len(add) > 0 {
		pc, _ := app["publicClient"].(map[string]any)
		pc = cloneMap(pc)
		pc["redirectUris"] = toAny(append(slices.Clone(pub), add...))
		patch["publicClient"] = pc
		changes = append(changes, "added public-client redirect URIs "+strings.Join(add, ", "))
	}
	for _, w := range redirects(app, "web") {
		if isLoopback(w) {
			warnings = append(warnings, fmt.Sprintf("the Web platform also lists %s; remove it (Authentication → Web) so sign-in cannot pick the secret-requiring Web client", w))
		}
	}

	// Graph delegated scopes: keep other resources and scopes.
	rra, _ := app["requiredResourceAccess"].([]any)
	var out []any
	found, changed := false, false
	for _, r := range rra {
		m, _ := r.(map[string]any)
		if m != nil && m["resourceAppId"] == GraphResourceAppID {
			found = true
			ga := graphAccess(m)
			if len(ga["resourceAccess"].([]any)) != len(stringsOrMaps(m["resourceAccess"])) {
				changed = true
			}
			out = append(out, ga)
			continue
		}
		out = append(out, r)
	}
	if !found {
		out = append(out, graphAccess(nil))
		changed = true
	}
	if changed {
		patch["requiredResourceAccess"] = out
		changes = append(changes, "delegated Microsoft Graph permissions openid, profile, email, offline_access")
	}

	api := cloneMap(asMap(app["api"]))
	apiChanged := false
	if v, _ := api["requestedAccessTokenVersion"].(float64); v != 2 {
		api["requestedAccessTokenVersion"] = 2
		apiChanged = true
		changes = append(changes, "api.requestedAccessTokenVersion → 2 (v2 tokens: iss …/v2.0, aud = client ID)")
	}
	if s.Scope != "" {
		scopes, _ := api["oauth2PermissionScopes"].([]any)
		if !hasValue(scopes, s.Scope) {
			api["oauth2PermissionScopes"] = append(slices.Clone(scopes), permissionScope(s.Scope, newGUID()))
			apiChanged = true
			changes = append(changes, "exposed scope "+s.Scope)
		} else if !enabled(scopes, s.Scope) {
			warnings = append(warnings, "the scope "+s.Scope+" exists but is disabled; enable it in the portal (Expose an API)")
		}
		uris := stringsOf(app["identifierUris"])
		if !slices.Contains(uris, "api://"+appID) {
			patch["identifierUris"] = toAny(append(uris, "api://"+appID))
			changes = append(changes, "identifier URI api://"+appID)
		}
	}
	if apiChanged {
		patch["api"] = api
	}
	if s.AppRole != "" {
		roles, _ := app["appRoles"].([]any)
		if !hasValue(roles, s.AppRole) {
			patch["appRoles"] = append(slices.Clone(roles), appRole(s.AppRole, newGUID()))
			changes = append(changes, "app role "+s.AppRole)
		} else if !enabled(roles, s.AppRole) {
			warnings = append(warnings, "the app role "+s.AppRole+" exists but is disabled; enable it in the portal (App roles)")
		}
	}
	if n := len(asSlice(app["passwordCredentials"])); n > 0 {
		warnings = append(warnings, fmt.Sprintf("the registration has %d client secret(s); a public client needs none: delete them (Certificates & secrets)", n))
	}
	return patch, changes, warnings
}

func ensureSP(ctx context.Context, g *Graph, s Spec, res *Result) error {
	sps, err := g.list(ctx, "/servicePrincipals?$filter="+url.QueryEscape("appId eq "+odataString(res.ClientID)))
	if err != nil {
		return err
	}
	if len(sps) > 0 {
		sp := sps[0]
		res.ServicePrincipalID = str(sp["id"])
		if s.AssignmentRequired && sp["appRoleAssignmentRequired"] != true {
			if err := g.do(ctx, http.MethodPatch, "/servicePrincipals/"+res.ServicePrincipalID, map[string]any{"appRoleAssignmentRequired": true}, nil); err != nil {
				return err
			}
			res.Changes = append(res.Changes, "service principal: assignment required")
		}
		if sp["accountEnabled"] == false {
			res.Warnings = append(res.Warnings, "the enterprise application is disabled (Enterprise applications → Properties → Enabled for users to sign in): nobody can sign in")
		}
		return nil
	}
	// A new application takes a few seconds to replicate; Graph answers
	// "does not reference a valid application object" meanwhile.
	var sp map[string]any
	for attempt, wait := 1, time.Second; ; attempt, wait = attempt+1, wait*2 {
		err = g.do(ctx, http.MethodPost, "/servicePrincipals", spBody(s, res.ClientID), &sp)
		var ge *GraphError
		if err == nil || !errors.As(err, &ge) || !strings.Contains(ge.Message, "does not reference a valid application object") || attempt >= 6 {
			break
		}
		if err := g.sleep(ctx, wait); err != nil {
			return err
		}
	}
	if err != nil {
		return err
	}
	res.ServicePrincipalID = str(sp["id"])
	res.Changes = append(res.Changes, "created the service principal (enterprise application)")
	return nil
}

func hasValue(list []any, v string) bool {
	for _, x := range list {
		if m, ok := x.(map[string]any); ok && m["value"] == v {
			return true
		}
	}
	return false
}

func enabled(list []any, v string) bool {
	for _, x := range list {
		if m, ok := x.(map[string]any); ok && m["value"] == v {
			return m["isEnabled"] == true
		}
	}
	return false
}

func str(v any) string { s, _ := v.(string); return s }

func asMap(v any) map[string]any { m, _ := v.(map[string]any); return m }

func asSlice(v any) []any { s, _ := v.([]any); return s }

func stringsOrMaps(v any) []any { return asSlice(v) }

func cloneMap(m map[string]any) map[string]any {
	out := map[string]any{}
	if m == nil {
		return out
	}
	b, _ := json.Marshal(m)
	_ = json.Unmarshal(b, &out)
	return out
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func sortedKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// NewGUID returns a random GUID, for new app role and scope IDs.
func NewGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
