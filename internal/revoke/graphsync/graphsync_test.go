package graphsync_test

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/fake/graphusers"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/revoke"
	"github.com/gatehouse-dev/gatehouse/internal/revoke/graphsync"
	"github.com/gatehouse-dev/gatehouse/internal/revoke/sqlite"
)

const (
	tid      = "11111111-2222-4333-8444-555555555555"
	oidAda   = "0b9e4a38-2f67-4c1e-9d7b-2a4b6c8d0e1f"
	oidGrace = "7a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
)

type bearer string

func (b bearer) Apply(_ context.Context, r *http.Request) error {
	r.Header.Set("Authorization", "Bearer "+string(b))
	return nil
}

type env struct {
	graph *graphusers.Server
	store revoke.Store
	snap  *revoke.Snapshot
	sync  *graphsync.Syncer
}

func setup(t *testing.T, cred graphsync.Credential) *env {
	t.Helper()
	g, err := graphusers.Start(graphusers.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	st, err := sqlite.Open(context.Background(), sqlite.Options{Path: filepath.Join(t.TempDir(), "state.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if cred == nil {
		cred = bearer(graphusers.AppToken(tid, "User.Read.All"))
	}
	sy, err := graphsync.New(graphsync.Options{Store: st, Credential: cred, TenantID: tid, GraphURL: g.URL()})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := revoke.Start(context.Background(), revoke.Options{Store: st, Observe: sy.Observe, PollInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { snap.Close() })
	g.PutUser(tid, graphusers.User{ID: oidAda, UserPrincipalName: "ada@contoso.example", AccountEnabled: true})
	g.PutUser(tid, graphusers.User{ID: oidGrace, UserPrincipalName: "grace@contoso.example", AccountEnabled: true})
	return &env{graph: g, store: st, snap: snap, sync: sy}
}

func principal(oid string, iat time.Time) identity.Principal {
	return identity.Principal{Key: tid + "/" + oid, TenantID: tid, ObjectID: oid, IssuedAt: iat}
}

// pass runs one sync and reloads the snapshot.
func (e *env) pass(t *testing.T) {
	t.Helper()
	if err := e.sync.SyncOnce(context.Background()); err != nil {
		t.Fatalf("SyncOnce: %v", err)
	}
	if err := e.snap.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func (e *env) allowed(p identity.Principal) bool { return e.snap.Check(context.Background(), p) == nil }

func TestAccountDisabledAndReenabled(t *testing.T) {
	e := setup(t, nil)
	ada, grace := principal(oidAda, time.Now().Add(-time.Minute)), principal(oidGrace, time.Now().Add(-time.Minute))
	if !e.allowed(ada) || !e.allowed(grace) { // also: both are now observed
		t.Fatal("refused before any sync")
	}
	e.pass(t)
	if !e.allowed(ada) || !e.allowed(grace) {
		t.Fatal("a sync with nothing to report revoked someone")
	}
	e.graph.SetAccountEnabled(tid, oidAda, false)
	e.pass(t)
	if e.allowed(ada) {
		t.Fatal("disabled account still allowed after a sync")
	}
	if !e.allowed(grace) {
		t.Fatal("another user refused")
	}
	list, _ := e.store.List(context.Background(), false)
	if len(list) != 1 || list[0].Source != revoke.SourceGraph || list[0].Actor != revoke.SourceGraph || list[0].Subject != oidAda || !strings.Contains(list[0].Reason, "accountEnabled=false") {
		t.Fatalf("revocations: %+v", list)
	}
	e.pass(t) // idempotent
	if list2, _ := e.store.List(context.Background(), false); len(list2) != 1 {
		t.Fatalf("second pass added %d revocations", len(list2)-1)
	}
	e.graph.SetAccountEnabled(tid, oidAda, true)
	e.pass(t) // Ada is no longer observed (refused), but her entra-sync revocation makes her polled
	if !e.allowed(ada) {
		t.Fatal("re-enabled account still refused")
	}
	all, _ := e.store.List(context.Background(), true)
	if len(all) != 1 || all[0].Removed.IsZero() || all[0].RemovedBy != revoke.SourceGraph {
		t.Fatalf("revocation not lifted by the sync: %+v", all)
	}
}

func TestSessionsRevokedAndDeletedUser(t *testing.T) {
	e := setup(t, nil)
	old := principal(oidAda, time.Now().Add(-10*time.Minute).Truncate(time.Second))
	e.allowed(old)
	e.allowed(principal(oidGrace, time.Now()))
	e.pass(t)
	cut := e.graph.RevokeSignInSessions(tid, oidAda)
	e.pass(t)
	if e.allowed(old) {
		t.Fatal("a token issued before signInSessionsValidFromDateTime still works")
	}
	if fresh := principal(oidAda, cut.Add(time.Second)); !e.allowed(fresh) {
		t.Fatal("a token issued after the cutoff is refused")
	}
	list, _ := e.store.List(context.Background(), false)
	if len(list) != 1 || list[0].Kind != revoke.KindBefore || !list[0].Before.Equal(cut) || list[0].Until.IsZero() {
		t.Fatalf("revocations: %+v", list)
	}
	e.pass(t)
	if l, _ := e.store.List(context.Background(), false); len(l) != 1 {
		t.Fatalf("the same cutoff was copied twice: %+v", l)
	}

	e.graph.DeleteUser(tid, oidGrace)
	e.pass(t)
	if e.allowed(principal(oidGrace, time.Now())) {
		t.Fatal("a deleted user is still allowed")
	}
}

func TestGraphFailures(t *testing.T) {
	// Without User.Read.All Graph answers 403: the pass fails, nothing is
	// revoked, the error names the Graph code.
	e := setup(t, bearer(graphusers.AppToken(tid, "Application.Read.All")))
	e.allowed(principal(oidAda, time.Now()))
	err := e.sync.SyncOnce(context.Background())
	var ge *graphsync.GraphError
	if !errors.As(err, &ge) || ge.Status != http.StatusForbidden || ge.Code != "Authorization_RequestDenied" {
		t.Fatalf("SyncOnce without permission: %v", err)
	}
	if l, _ := e.store.List(context.Background(), false); len(l) != 0 {
		t.Fatalf("a failed pass revoked: %+v", l)
	}

	e2 := setup(t, nil)
	e2.allowed(principal(oidAda, time.Now()))
	e2.graph.FailNext(http.StatusTooManyRequests, "TooManyRequests", "Too many requests")
	err = e2.sync.SyncOnce(context.Background())
	if !errors.As(err, &ge) || ge.Status != http.StatusTooManyRequests || ge.RetryAfter != time.Second {
		t.Fatalf("throttled pass: %v", err)
	}
	if l, _ := e2.store.List(context.Background(), false); len(l) != 0 {
		t.Fatalf("a throttled pass revoked: %+v", l)
	}
	e2.pass(t) // next pass works
	reqs := e2.graph.Requests()
	if last := reqs[len(reqs)-1]; !strings.Contains(last, "/v1.0/users/"+oidAda) || !strings.Contains(last, "$select=id,accountEnabled,signInSessionsValidFromDateTime") {
		t.Errorf("request %q", last)
	}
}

func TestOtherTenantsNotPolled(t *testing.T) {
	e := setup(t, nil)
	p := principal(oidAda, time.Now())
	p.TenantID = "99999999-2222-4333-8444-555555555555"
	e.allowed(p)
	e.pass(t)
	if n := len(e.graph.Requests()); n != 0 {
		t.Errorf("%d Graph requests for a user of another tenant", n)
	}
}

func TestParseUser(t *testing.T) {
	for _, tc := range []struct {
		in      string
		enabled bool
		from    time.Time
		err     bool
	}{
		{`{"accountEnabled":true,"signInSessionsValidFromDateTime":"2026-11-24T10:00:00Z"}`, true, time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC), false},
		{`{"accountEnabled":false,"signInSessionsValidFromDateTime":null}`, false, time.Time{}, false},
		{`{"accountEnabled":true}`, true, time.Time{}, false},
		{`{"signInSessionsValidFromDateTime":"2026-11-24T10:00:00Z"}`, false, time.Time{}, true},
		{`{"accountEnabled":"false"}`, false, time.Time{}, true},
		{`{"accountEnabled":true,"signInSessionsValidFromDateTime":"yesterday"}`, false, time.Time{}, true},
		{`{"accountEnabled":true,"signInSessionsValidFromDateTime":5}`, false, time.Time{}, true},
		{`not json`, false, time.Time{}, true},
	} {
		st, err := graphsync.ParseUser([]byte(tc.in))
		if (err != nil) != tc.err {
			t.Errorf("ParseUser(%s): %v", tc.in, err)
			continue
		}
		if err == nil && (st.AccountEnabled != tc.enabled || !st.SessionsFrom.Equal(tc.from) || !st.Found) {
			t.Errorf("ParseUser(%s) = %+v", tc.in, st)
		}
	}
}

func FuzzParseUser(f *testing.F) {
	f.Add([]byte(`{"accountEnabled":true,"signInSessionsValidFromDateTime":"2026-11-24T10:00:00Z"}`))
	f.Add([]byte(`{"accountEnabled":false,"signInSessionsValidFromDateTime":null}`))
	f.Add([]byte(`{"@odata.context":"x","id":"y","accountEnabled":true,"signInSessionsValidFromDateTime":"0001-01-01T00:00:00Z"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := graphsync.ParseUser(b)
		if err == nil && (!st.Found || (!st.SessionsFrom.IsZero() && st.SessionsFrom.Year() < 1970)) {
			t.Fatalf("ParseUser(%q) = %+v", b, st)
		}
	})
}

// TestAppDisabledIsKillSwitch: "Enabled for users to sign in? = No" on the
// gateway's service principal refuses everyone after one pass, and lifting
// it restores access.
func TestAppDisabledIsKillSwitch(t *testing.T) {
	const appID = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
	g, err := graphusers.Start(graphusers.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	st, err := sqlite.Open(context.Background(), sqlite.Options{Path: filepath.Join(t.TempDir(), "state.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	g.PutServicePrincipal(tid, appID, true)
	sy, err := graphsync.New(graphsync.Options{Store: st, Credential: bearer(graphusers.AppToken(tid, "User.Read.All", "Application.Read.All")), TenantID: tid, GraphURL: g.URL(), AppID: appID})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := revoke.Start(context.Background(), revoke.Options{Store: st, PollInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	e := &env{graph: g, store: st, snap: snap, sync: sy}
	p := principal(oidAda, time.Now())
	e.pass(t)
	if !e.allowed(p) {
		t.Fatal("refused while the app is enabled")
	}
	g.PutServicePrincipal(tid, appID, false)
	e.pass(t)
	if e.allowed(p) {
		t.Fatal("the app is disabled in Entra but the gateway still serves")
	}
	l, _ := st.List(context.Background(), false)
	if len(l) != 1 || l[0].Kind != revoke.KindAll || l[0].Source != revoke.SourceGraph {
		t.Fatalf("revocations %+v", l)
	}
	g.PutServicePrincipal(tid, appID, true)
	e.pass(t)
	if !e.allowed(p) {
		t.Fatal("still refused after the app was enabled again")
	}
}

// TestFailClosedWhenStale: with FailClosedAfter, users of the tenant are
// refused once Graph has been unreachable for longer than the bound, and
// admitted again after a successful pass; other tenants are unaffected.
func TestFailClosedWhenStale(t *testing.T) {
	g, err := graphusers.Start(graphusers.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	st, err := sqlite.Open(context.Background(), sqlite.Options{Path: filepath.Join(t.TempDir(), "state.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	g.PutUser(tid, graphusers.User{ID: oidAda, AccountEnabled: true})
	now := time.Now()
	clock := func() time.Time { return now }
	sy, err := graphsync.New(graphsync.Options{Store: st, Credential: bearer(graphusers.AppToken(tid, "User.Read.All")), TenantID: tid, GraphURL: g.URL(), FailClosedAfter: 5 * time.Minute, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := revoke.Start(context.Background(), revoke.Options{Store: st, Guard: sy.Guard, Observe: sy.Observe, PollInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	ada := principal(oidAda, now)
	other := ada
	other.TenantID = "99999999-2222-4333-8444-555555555555"
	if err := snap.Check(context.Background(), ada); err != nil {
		t.Fatalf("within the bound after start: %v", err)
	}
	if err := sy.SyncOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	g.FailNext(http.StatusServiceUnavailable, "ServiceUnavailable", "down")
	now = now.Add(6 * time.Minute)
	if err := sy.SyncOnce(context.Background()); err == nil {
		t.Fatal("a failing pass reported success")
	}
	var se *graphsync.StaleError
	if err := snap.Check(context.Background(), ada); !errors.As(err, &se) {
		t.Fatalf("Graph stale beyond the bound: %v, want a StaleError", err)
	}
	if err := snap.Check(context.Background(), other); err != nil {
		t.Fatalf("another tenant refused: %v", err)
	}
	if err := sy.SyncOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := snap.Check(context.Background(), ada); err != nil {
		t.Fatalf("after a successful pass: %v", err)
	}
}
