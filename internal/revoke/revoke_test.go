package revoke

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

// memStore is a minimal in-memory Store for the package's own tests.
type memStore struct {
	mu      sync.Mutex
	list    []Revocation
	version int64
	fail    error
}

func (m *memStore) Add(_ context.Context, r Revocation) (Revocation, error) {
	r, err := Normalize(r)
	if err != nil {
		return r, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r.ID = int64(len(m.list) + 1)
	r.Created = time.Now()
	m.list = append(m.list, r)
	m.version++
	return r, nil
}

func (m *memStore) Remove(_ context.Context, id int64, actor, reason string) (Revocation, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.list {
		if m.list[i].ID == id && m.list[i].Removed.IsZero() {
			m.list[i].Removed, m.list[i].RemovedBy, m.list[i].RemovedReason = time.Now(), actor, reason
			m.version++
			return m.list[i], nil
		}
	}
	return Revocation{}, ErrNotFound
}

func (m *memStore) List(context.Context, bool) ([]Revocation, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return nil, m.fail
	}
	return append([]Revocation(nil), m.list...), nil
}

func (m *memStore) Version(context.Context) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return 0, m.fail
	}
	return m.version, nil
}

func (m *memStore) Close() error { return nil }

const (
	tid    = "11111111-2222-4333-8444-555555555555"
	oidAda = "0b9e4a38-2f67-4c1e-9d7b-2a4b6c8d0e1f"
	oidBob = "7a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
	hashA  = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
)

var now = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func ada() identity.Principal {
	return identity.Principal{
		Key: tid + "/" + oidAda, TenantID: tid, ObjectID: oidAda,
		Username: "Ada.Lovelace@Contoso.Example", Email: "ada@contoso.example",
		TokenID: "AbC-uti-1", TokenHash: hashA,
		IssuedAt: now.Add(-30 * time.Minute), ExpiresAt: now.Add(30 * time.Minute),
	}
}

func TestMatching(t *testing.T) {
	okta := identity.Principal{Key: "https://idp.example/oauth2|User-7", Subject: "User-7", Username: "seven@example.com", IssuedAt: now.Add(-time.Minute)}
	type rv = Revocation
	for _, tc := range []struct {
		name    string
		rs      []rv
		p       identity.Principal
		revoked bool
	}{
		{"nothing", nil, ada(), false},
		{"kill switch", []rv{{Kind: KindAll}}, ada(), true},
		{"kill switch lapsed", []rv{{Kind: KindAll, Until: now.Add(-time.Second)}}, ada(), false},
		{"kill switch until later", []rv{{Kind: KindAll, Until: now.Add(time.Hour)}}, ada(), true},
		{"user by oid", []rv{{Kind: KindUser, Subject: oidAda}}, ada(), true},
		{"user by upper-case oid", []rv{{Kind: KindUser, Subject: "0B9E4A38-2F67-4C1E-9D7B-2A4B6C8D0E1F"}}, ada(), true},
		{"user by key", []rv{{Kind: KindUser, Subject: tid + "/" + oidAda}}, ada(), true},
		{"other user by oid", []rv{{Kind: KindUser, Subject: oidBob}}, ada(), false},
		{"same oid other tenant key", []rv{{Kind: KindUser, Subject: "99999999-2222-4333-8444-555555555555/" + oidAda}}, ada(), false},
		{"user by upn, case-insensitive", []rv{{Kind: KindUser, Subject: "ada.lovelace@contoso.example"}}, ada(), true},
		{"user by email", []rv{{Kind: KindUser, Subject: "ADA@contoso.example"}}, ada(), true},
		{"upn prefix is not a match", []rv{{Kind: KindUser, Subject: "ada.lovelace@contoso.exampl"}}, ada(), false},
		{"user lapsed", []rv{{Kind: KindUser, Subject: oidAda, Until: now}}, ada(), false},
		{"removed", []rv{{Kind: KindUser, Subject: oidAda, Removed: now.Add(-time.Minute)}}, ada(), false},
		{"token by jti (case-sensitive)", []rv{{Kind: KindToken, Subject: "AbC-uti-1"}}, ada(), true},
		{"token by jti, other case", []rv{{Kind: KindToken, Subject: "abc-uti-1"}}, ada(), false},
		{"token by sha256", []rv{{Kind: KindToken, Subject: hashA}}, ada(), true},
		{"token by upper-case sha256", []rv{{Kind: KindToken, Subject: "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"}}, ada(), true},
		{"other token", []rv{{Kind: KindToken, Subject: "other"}}, ada(), false},
		{"before, everyone, older token", []rv{{Kind: KindBefore, Before: now.Add(-10 * time.Minute)}}, ada(), true},
		{"before, everyone, newer token", []rv{{Kind: KindBefore, Before: now.Add(-40 * time.Minute)}}, ada(), false},
		{"before, iat equal to cutoff is kept", []rv{{Kind: KindBefore, Before: now.Add(-30 * time.Minute)}}, ada(), false},
		{"before, for the user", []rv{{Kind: KindBefore, Subject: oidAda, Before: now}}, ada(), true},
		{"before, for the user by key", []rv{{Kind: KindBefore, Subject: tid + "/" + oidAda, Before: now}}, ada(), true},
		{"before, for another user", []rv{{Kind: KindBefore, Subject: oidBob, Before: now}}, ada(), false},
		{"before, lapsed", []rv{{Kind: KindBefore, Before: now, Until: now.Add(-time.Nanosecond)}}, ada(), false},
		{"before, token without iat", []rv{{Kind: KindBefore, Before: time.Unix(1, 0)}}, identity.Principal{Key: tid + "/" + oidAda, ObjectID: oidAda}, true},
		{"lapsed and active duplicates", []rv{{Kind: KindUser, Subject: oidAda, Until: now.Add(-time.Hour)}, {Kind: KindUser, Subject: oidAda}}, ada(), true},
		{"oidc key, case kept", []rv{{Kind: KindUser, Subject: "https://idp.example/oauth2|User-7"}}, okta, true},
		{"oidc key, other case", []rv{{Kind: KindUser, Subject: "https://idp.example/oauth2|user-7"}}, okta, false},
		{"oidc user by upn", []rv{{Kind: KindUser, Subject: "Seven@Example.com"}}, okta, true},
		{"oidc key before", []rv{{Kind: KindBefore, Subject: "https://idp.example/oauth2|User-7", Before: now}}, okta, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var list []Revocation
			for i, r := range tc.rs {
				if r.Reason == "" {
					r.Reason = "test"
				}
				removed := r.Removed
				r, err := Normalize(r)
				if err != nil {
					t.Fatal(err)
				}
				r.ID, r.Removed = int64(i+1), removed
				list = append(list, r)
			}
			st := &memStore{list: list, version: 1}
			s, err := Start(context.Background(), Options{Store: st, Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			err = s.Check(context.Background(), tc.p)
			if got := err != nil; got != tc.revoked {
				t.Fatalf("revoked = %v (%v), want %v", got, err, tc.revoked)
			}
			if err != nil {
				var re *RevokedError
				if !errors.As(err, &re) || re.ID == 0 || re.Kind != list[re.ID-1].Kind {
					t.Errorf("error %#v does not name the matching revocation", err)
				}
			}
		})
	}
}

func TestFailClosedAfter(t *testing.T) {
	st := &memStore{}
	clock := now
	var mu sync.Mutex
	s, err := Start(context.Background(), Options{Store: st, FailClosedAfter: time.Minute, PollInterval: time.Hour,
		Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Check(context.Background(), ada()); err != nil {
		t.Fatal(err)
	}
	st.mu.Lock()
	st.fail = errors.New("database down")
	st.mu.Unlock()
	mu.Lock()
	clock = clock.Add(2 * time.Minute)
	mu.Unlock()
	if err := s.Refresh(context.Background()); err == nil {
		t.Fatal("Refresh on a failing store succeeded")
	}
	var re *RevokedError
	if err := s.Check(context.Background(), ada()); !errors.As(err, &re) || re.Kind != "state_unavailable" {
		t.Fatalf("stale beyond FailClosedAfter: %v, want state_unavailable", err)
	}
	st.mu.Lock()
	st.fail = nil
	st.mu.Unlock()
	if err := s.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(context.Background(), ada()); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}

func TestStartFailsWithoutStore(t *testing.T) {
	if _, err := Start(context.Background(), Options{}); err == nil {
		t.Fatal("Start without a store succeeded")
	}
	if _, err := Start(context.Background(), Options{Store: &memStore{fail: errors.New("down")}}); err == nil {
		t.Fatal("Start on an unreadable store succeeded (must not start without revocations)")
	}
}

func TestPollPicksUpChanges(t *testing.T) {
	st := &memStore{}
	var changes sync.WaitGroup
	changes.Add(1)
	var once sync.Once
	s, err := Start(context.Background(), Options{Store: st, PollInterval: 10 * time.Millisecond,
		OnChange: func(v int64) {
			if v > 0 {
				once.Do(changes.Done)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := st.Add(context.Background(), Revocation{Kind: KindUser, Subject: oidAda, Reason: "poll"}); err != nil {
		t.Fatal(err)
	}
	changes.Wait()
	if err := s.Check(context.Background(), ada()); err == nil {
		t.Fatal("revocation not in force after the poll")
	}
	if s.Version() != 1 || s.Active() != 1 {
		t.Errorf("Version %d Active %d", s.Version(), s.Active())
	}
}

func TestObserveOnlyAllowed(t *testing.T) {
	st := &memStore{}
	st.Add(context.Background(), Revocation{Kind: KindUser, Subject: oidBob, Reason: "x"})
	var seen []string
	s, err := Start(context.Background(), Options{Store: st, Observe: func(p identity.Principal) { seen = append(seen, p.ObjectID) }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	bob := ada()
	bob.ObjectID, bob.Key = oidBob, tid+"/"+oidBob
	s.Check(context.Background(), ada())
	s.Check(context.Background(), bob)
	if len(seen) != 1 || seen[0] != oidAda {
		t.Errorf("observed %v, want only ada", seen)
	}
}

func TestParseTime(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
		err  bool
	}{
		{"2026-11-24T10:00:00Z", time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC), false},
		{"2026-11-24T11:00:00+01:00", time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC), false},
		{"24h", now.Add(24 * time.Hour), false},
		{"-90m", now.Add(-90 * time.Minute), false},
		{"now", now, false},
		{"", time.Time{}, true},
		{"tomorrow", time.Time{}, true},
		{"2026-11-24", time.Time{}, true},
	} {
		got, err := ParseTime(tc.in, now)
		if (err != nil) != tc.err || !got.Equal(tc.want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v (error %v)", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestClassifiers(t *testing.T) {
	if !IsGUID(oidAda) || !IsGUID("0B9E4A38-2F67-4C1E-9D7B-2A4B6C8D0E1F") || IsGUID("0b9e4a38-2f67-4c1e-9d7b-2a4b6c8d0e1") || IsGUID("0b9e4a38x2f67-4c1e-9d7b-2a4b6c8d0e1f") {
		t.Error("IsGUID")
	}
	if !IsSHA256(hashA) || IsSHA256(hashA[1:]) || IsSHA256("g"+hashA[1:]) {
		t.Error("IsSHA256")
	}
}

// BenchmarkCheck measures the per-request lookup with a realistic number of
// revocations in force (1000 users, 100 tokens, cutoffs, no match).
func BenchmarkCheck(b *testing.B) {
	st := &memStore{}
	ctx := context.Background()
	for i := range 1000 {
		st.Add(ctx, Revocation{Kind: KindUser, Subject: "00000000-0000-4000-8000-" + padInt(i), Reason: "bench"})
	}
	for i := range 100 {
		st.Add(ctx, Revocation{Kind: KindToken, Subject: "jti-" + padInt(i), Reason: "bench"})
		st.Add(ctx, Revocation{Kind: KindUser, Subject: "user" + padInt(i) + "@contoso.example", Reason: "bench"})
		st.Add(ctx, Revocation{Kind: KindBefore, Subject: "00000000-0000-4000-9000-" + padInt(i), Before: now, Reason: "bench"})
	}
	st.Add(ctx, Revocation{Kind: KindBefore, Before: now.Add(-time.Hour), Reason: "bench"})
	s, err := Start(ctx, Options{Store: st, PollInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	p := ada()
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Check(ctx, p); err != nil {
			b.Fatal(err)
		}
	}
}

func padInt(i int) string {
	s := itoa(int64(i))
	for len(s) < 12 {
		s = "0" + s
	}
	return s
}

// naiveLower is lowerKey's specification.
func naiveLower(s string) string {
	if strings.Contains(s, "|") {
		return s
	}
	return strings.ToLower(s)
}

func TestLowerKey(t *testing.T) {
	for _, s := range []string{"", "a", "A", "abc", "0b9e4a38-2f67-4c1e-9d7b-2a4b6c8d0e1f", "0B9E4A38-2F67-4C1E-9D7B-2A4B6C8D0E1F",
		"Ada.Lovelace@Contoso.Example", "https://idp.example|User-7", "ABCDEFGH|", "abcdefgh@[Z]`{", "Ünïcödé@Example.COM", strings.Repeat("X", 200), "@AZ[`az{"} {
		var buf [128]byte
		if got, want := lowerKey(s, &buf), naiveLower(s); got != want {
			t.Errorf("lowerKey(%q) = %q, want %q", s, got, want)
		}
	}
}

func FuzzLowerKey(f *testing.F) {
	for _, s := range []string{"Ada.Lovelace@Contoso.Example", "https://idp.example|User-7", "0B9E4A38-2F67-4C1E-9D7B-2A4B6C8D0E1F", "@AZ[`az{|\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var buf [128]byte
		if got, want := lowerKey(s, &buf), naiveLower(s); got != want {
			t.Fatalf("lowerKey(%q) = %q, want %q", s, got, want)
		}
	})
}

// BenchmarkCheckEmpty is the common case: no revocations in force.
func BenchmarkCheckEmpty(b *testing.B) {
	s, err := Start(context.Background(), Options{Store: &memStore{}, PollInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	p := ada()
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Check(context.Background(), p); err != nil {
			b.Fatal(err)
		}
	}
}

// TestPropagationDelayIsReported: a revocation that arrives with a reload
// is reported with the time from its creation to its taking effect here.
func TestPropagationDelayIsReported(t *testing.T) {
	st := &memStore{}
	got := make(chan time.Duration, 4)
	s, err := Start(context.Background(), Options{Store: st, PollInterval: 10 * time.Millisecond,
		OnPropagated: func(d time.Duration) { got <- d }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := st.Add(context.Background(), Revocation{Kind: KindUser, Subject: oidAda, Reason: "propagation"}); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-got:
		if d < 0 || d > 5*time.Second {
			t.Fatalf("propagation delay %v", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no propagation delay reported")
	}
	select {
	case d := <-got:
		t.Fatalf("a second report (%v) for one revocation", d)
	case <-time.After(100 * time.Millisecond):
	}
}
