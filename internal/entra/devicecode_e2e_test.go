package entra

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/fake/graph"
	"github.com/gatehouse-dev/gatehouse/internal/fake/idp"
)

// e2eClock is the clock the fake IdP issues and expires device codes by;
// the device code client's Sleep advances it, so polling takes no real time.
type e2eClock struct {
	mu     sync.Mutex
	t      time.Time
	sleeps []time.Duration
}

func (c *e2eClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *e2eClock) sleep(_ context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	c.t = c.t.Add(d)
	return nil
}

type e2e struct {
	idp   *idp.Server
	graph *graph.Server
	clock *e2eClock
}

func startE2E(t *testing.T, autoApprove int) *e2e {
	t.Helper()
	clock := &e2eClock{t: time.Now()}
	ids, err := idp.Start(idp.Options{Tenants: []string{tid}, AutoApproveDeviceCode: autoApprove, Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ids.Close() })
	gs, err := graph.Start(graph.Options{Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gs.Close() })
	return &e2e{idp: ids, graph: gs, clock: clock}
}

func (e *e2e) signIn(ctx context.Context, prompt *bytes.Buffer, sleep func(context.Context, time.Duration) error) (string, error) {
	if sleep == nil {
		sleep = e.clock.sleep
	}
	return DeviceCodeToken(ctx, DeviceCodeOptions{LoginURL: e.idp.URL(), TenantID: tid, Prompt: prompt, Sleep: sleep})
}

func (e *e2e) register(t *testing.T, tok string, spec Spec) *Result {
	t.Helper()
	g := NewGraph(GraphOptions{BaseURL: e.graph.URL(), Token: tok, Sleep: func(context.Context, time.Duration) error { return nil }})
	res, err := Register(context.Background(), g, spec, guids())
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// `gatehouse entra register` end to end: device code sign-in at the fake
// Entra (approved after two polls), then Register against the fake Graph
// with the token that sign-in produced, twice (the second run changes
// nothing).
func TestRegisterWithDeviceCodeSignIn(t *testing.T) {
	e := startE2E(t, 2)
	var prompt bytes.Buffer
	tok, err := e.signIn(context.Background(), &prompt, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(prompt.String(), e.idp.DeviceLoginURL()) {
		t.Errorf("prompt %q does not name the verification page", prompt.String())
	}
	if e.idp.DeviceCodeRequests() != 1 || e.idp.DeviceCodePolls() != 3 {
		t.Errorf("device code requests %d, polls %d; want 1, 3", e.idp.DeviceCodeRequests(), e.idp.DeviceCodePolls())
	}
	// Each poll waited the announced interval.
	if len(e.clock.sleeps) != 3 || e.clock.sleeps[0] != 5*time.Second {
		t.Errorf("sleeps %v", e.clock.sleeps)
	}
	spec := Spec{TenantID: tid, Name: "Claude (Gatehouse)", AppRole: "Claude.User", Scope: "access_as_user", AssignmentRequired: true}
	res := e.register(t, tok, spec)
	if !res.Created || res.ClientID == "" || res.ServicePrincipalID == "" {
		t.Fatalf("result %+v", res)
	}
	apps := e.graph.Applications(tid)
	if len(apps) != 1 || apps[0]["displayName"] != spec.Name || apps[0]["appId"] != res.ClientID {
		t.Fatalf("applications in the fake Graph: %v", apps)
	}
	sps := e.graph.ServicePrincipals(tid)
	if len(sps) != 1 || sps[0]["appId"] != res.ClientID || sps[0]["appRoleAssignmentRequired"] != true {
		t.Fatalf("service principals: %v", sps)
	}
	// Re-run with a fresh sign-in: idempotent.
	tok2, err := e.signIn(context.Background(), &prompt, nil)
	if err != nil {
		t.Fatal(err)
	}
	res2 := e.register(t, tok2, spec)
	if res2.Created || len(res2.Changes) != 0 || res2.ClientID != res.ClientID {
		t.Errorf("second run %+v", res2)
	}
}

// The test approves the code itself (as a person at the verification page
// would), after seeing it in the prompt; the token is the approving user's.
func TestRegisterDeviceCodeApprovedByUser(t *testing.T) {
	e := startE2E(t, 0)
	admin := idp.User{OID: "0b9d1f2e-3c4d-4e5f-8a9b-0c1d2e3f4a5b", Name: "Cloud App Admin", Username: "admin@contoso.example"}
	var prompt bytes.Buffer
	polls := 0
	tok, err := e.signIn(context.Background(), &prompt, func(ctx context.Context, d time.Duration) error {
		polls++
		if polls == 3 {
			pending := e.idp.PendingDeviceCodes()
			if len(pending) != 1 || !strings.Contains(prompt.String(), pending[0]) {
				t.Errorf("pending %v, prompt %q", pending, prompt.String())
			} else {
				e.idp.ApproveDeviceCode(pending[0], admin)
			}
		}
		return e.clock.sleep(ctx, d)
	})
	if err != nil {
		t.Fatal(err)
	}
	if polls != 3 {
		t.Errorf("signed in after %d polls, want 3", polls)
	}
	if c := jwtClaims(t, tok); c["oid"] != admin.OID || c["scp"] != "Application.ReadWrite.All" || c["aud"] != idp.GraphAppID || c["tid"] != tid {
		t.Errorf("token claims %v", c)
	}
	res := e.register(t, tok, Spec{TenantID: tid, Name: "Claude"})
	if !res.Created {
		t.Errorf("result %+v", res)
	}
}

// A client that polls too fast is told to slow down and adds 5 s to its
// interval (RFC 8628 §3.5); sign-in still succeeds.
func TestRegisterDeviceCodeSlowDown(t *testing.T) {
	e := startE2E(t, 0)
	e.idp.SetDeviceCodePolicy(idp.DeviceCodePolicy{Interval: 5 * time.Second, EnforceInterval: true})
	n := 0
	tok, err := e.signIn(context.Background(), &bytes.Buffer{}, func(ctx context.Context, d time.Duration) error {
		n++
		switch n {
		case 2: // poll early once
			d /= 2
		case 4:
			for _, c := range e.idp.PendingDeviceCodes() {
				e.idp.ApproveDeviceCode(c, e.idp.DefaultUser())
			}
		}
		return e.clock.sleep(ctx, d)
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{5 * time.Second, 5 * time.Second / 2, 10 * time.Second, 10 * time.Second}
	if len(e.clock.sleeps) != len(want) {
		t.Fatalf("sleeps %v, want %v", e.clock.sleeps, want)
	}
	for i := range want {
		if e.clock.sleeps[i] != want[i] {
			t.Errorf("sleeps %v, want %v", e.clock.sleeps, want)
		}
	}
	if e.register(t, tok, Spec{TenantID: tid, Name: "Claude"}).ClientID == "" {
		t.Error("no client ID")
	}
}

// Declined and expired sign-ins end DeviceCodeToken with Entra's error;
// Graph is never called.
func TestRegisterDeviceCodeFailures(t *testing.T) {
	t.Run("declined", func(t *testing.T) {
		e := startE2E(t, 0)
		_, err := e.signIn(context.Background(), &bytes.Buffer{}, func(ctx context.Context, d time.Duration) error {
			for _, c := range e.idp.PendingDeviceCodes() {
				e.idp.DeclineDeviceCode(c)
			}
			return e.clock.sleep(ctx, d)
		})
		var oe *OAuthError
		if !errors.As(err, &oe) || oe.Code != "authorization_declined" || oe.Status != 400 {
			t.Fatalf("err = %v", err)
		}
		if !strings.Contains(err.Error(), "authorization_declined") || strings.Contains(err.Error(), "Trace ID") {
			t.Errorf("message %q", err.Error())
		}
		if len(e.graph.Requests()) != 0 {
			t.Errorf("Graph called: %v", e.graph.Requests())
		}
	})
	t.Run("expired", func(t *testing.T) {
		e := startE2E(t, 0)
		e.idp.SetDeviceCodePolicy(idp.DeviceCodePolicy{ExpiresIn: time.Minute, Interval: 5 * time.Second})
		_, err := e.signIn(context.Background(), &bytes.Buffer{}, func(ctx context.Context, d time.Duration) error {
			return e.clock.sleep(ctx, 2*d) // a slow client: the code expires while it polls
		})
		var oe *OAuthError
		if !errors.As(err, &oe) || oe.Code != "expired_token" {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("unknown tenant", func(t *testing.T) {
		e := startE2E(t, 1)
		_, err := DeviceCodeToken(context.Background(), DeviceCodeOptions{LoginURL: e.idp.URL(), TenantID: "11111111-2222-4333-8444-555555555555", Sleep: e.clock.sleep})
		var oe *OAuthError
		if !errors.As(err, &oe) || oe.Code != "invalid_tenant" {
			t.Fatalf("err = %v", err)
		}
	})
}

func jwtClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %q", tok)
	}
	var m map[string]any
	if err := json.Unmarshal(mustB64(t, parts[1]), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func mustB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
