// Package revoketest is the conformance suite every revoke.Store must
// pass: round trips of every kind, normalisation, the change counter,
// removal semantics, concurrent writers, and propagation of a revocation
// to a Snapshot on another handle of the same store within 5 seconds.
package revoketest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/revoke"
)

// Opener returns a function that opens a new handle on one fresh, empty
// store (every call shares the same data, as two processes would).
type Opener func(t *testing.T) func() revoke.Store

// Run runs the suite.
func Run(t *testing.T, open Opener) {
	t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, open(t)()) })
	t.Run("Normalize", func(t *testing.T) { testNormalize(t, open(t)()) })
	t.Run("VersionAndRemove", func(t *testing.T) { testVersionRemove(t, open(t)()) })
	t.Run("ConcurrentWriters", func(t *testing.T) { testConcurrent(t, open(t)) })
	t.Run("SnapshotPropagation", func(t *testing.T) { testPropagation(t, open(t)) })
}

var ctx = context.Background()

const (
	oid  = "0b9e4a38-2f67-4c1e-9d7b-2a4b6c8d0e1f"
	tid  = "11111111-2222-4333-8444-555555555555"
	hash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
)

func mustAdd(t *testing.T, s revoke.Store, r revoke.Revocation) revoke.Revocation {
	t.Helper()
	if r.Reason == "" {
		r.Reason = "test"
	}
	got, err := s.Add(ctx, r)
	if err != nil {
		t.Fatalf("Add(%+v): %v", r, err)
	}
	return got
}

func version(t *testing.T, s revoke.Store) int64 {
	t.Helper()
	v, err := s.Version(ctx)
	if err != nil {
		t.Fatalf("Version: %v", err)
	}
	return v
}

func testRoundTrip(t *testing.T, s revoke.Store) {
	before := time.Date(2026, 11, 24, 10, 0, 0, 123456000, time.UTC)
	until := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Microsecond)
	in := []revoke.Revocation{
		{Kind: revoke.KindUser, Subject: oid, Reason: "left the company", Actor: "alice@host", Source: revoke.SourceCLI},
		{Kind: revoke.KindUser, Subject: "ada@contoso.example", Reason: "laptop stolen", Actor: "bob", Source: revoke.SourceCLI, Until: until},
		{Kind: revoke.KindBefore, Subject: oid, Before: before, Reason: "sessions reset", Actor: "entra-sync", Source: revoke.SourceGraph},
		{Kind: revoke.KindBefore, Before: before, Reason: "key compromise", Actor: "carol"},
		{Kind: revoke.KindToken, Subject: "AAAbbbCCC-jti", Reason: "leaked in a ticket", Actor: "dave"},
		{Kind: revoke.KindToken, Subject: hash, Reason: "leaked token", Actor: "dave"},
		{Kind: revoke.KindAll, Reason: "incident", Actor: "eve", Until: until},
	}
	t0 := time.Now().Add(-time.Second)
	var added []revoke.Revocation
	for _, r := range in {
		added = append(added, mustAdd(t, s, r))
	}
	list, err := s.List(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != len(in) {
		t.Fatalf("List: %d revocations, want %d", len(list), len(in))
	}
	for i, got := range list {
		want := in[i]
		if got.ID != added[i].ID || (i > 0 && got.ID <= list[i-1].ID) {
			t.Errorf("%d: id %d (Add returned %d); ids must ascend", i, got.ID, added[i].ID)
		}
		if got.Kind != want.Kind || got.Subject != want.Subject || got.Reason != want.Reason || got.Actor != want.Actor || got.Source != want.Source {
			t.Errorf("%d: got %+v, want %+v", i, got, want)
		}
		if !got.Before.Equal(want.Before) || !got.Until.Equal(want.Until) {
			t.Errorf("%d: before/until %v/%v, want %v/%v", i, got.Before, got.Until, want.Before, want.Until)
		}
		if got.Created.Before(t0) || got.Created.After(time.Now().Add(time.Second)) || !got.Created.Equal(added[i].Created) {
			t.Errorf("%d: created %v (Add said %v)", i, got.Created, added[i].Created)
		}
		if !got.Removed.IsZero() || !got.Active(time.Now()) {
			t.Errorf("%d: not active: %+v", i, got)
		}
	}
}

func testNormalize(t *testing.T, s revoke.Store) {
	for _, tc := range []struct {
		in      revoke.Revocation
		subject string
		err     bool
	}{
		{in: revoke.Revocation{Kind: revoke.KindUser, Subject: " 0B9E4A38-2F67-4C1E-9D7B-2A4B6C8D0E1F "}, subject: oid},
		{in: revoke.Revocation{Kind: revoke.KindUser, Subject: "Ada@Contoso.Example"}, subject: "ada@contoso.example"},
		{in: revoke.Revocation{Kind: revoke.KindUser, Subject: tid + "/" + oid}, subject: tid + "/" + oid},
		{in: revoke.Revocation{Kind: revoke.KindUser, Subject: "https://idp.example|User-7"}, subject: "https://idp.example|User-7"},
		{in: revoke.Revocation{Kind: revoke.KindToken, Subject: "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"}, subject: hash},
		{in: revoke.Revocation{Kind: revoke.KindToken, Subject: "CaseSensitiveJTI"}, subject: "CaseSensitiveJTI"},
		{in: revoke.Revocation{Kind: revoke.KindAll, Subject: "ignored"}, subject: ""},
		{in: revoke.Revocation{Kind: revoke.KindUser}, err: true},
		{in: revoke.Revocation{Kind: revoke.KindUser, Subject: "ada"}, err: true},
		{in: revoke.Revocation{Kind: revoke.KindBefore, Subject: "ada@contoso.example", Before: time.Now()}, err: true},
		{in: revoke.Revocation{Kind: revoke.KindToken}, err: true},
		{in: revoke.Revocation{Kind: revoke.KindBefore, Subject: oid}, err: true},
		{in: revoke.Revocation{Kind: "group", Subject: "x"}, err: true},
		{in: revoke.Revocation{Kind: revoke.KindAll, Reason: "   "}, err: true},
	} {
		r := tc.in
		if r.Reason == "" {
			r.Reason = "test"
		}
		if tc.in.Reason != "" {
			r.Reason = tc.in.Reason
		}
		v0 := version(t, s)
		got, err := s.Add(ctx, r)
		if tc.err {
			if err == nil {
				t.Errorf("Add(%+v) accepted, want an error", tc.in)
			}
			if v := version(t, s); v != v0 {
				t.Errorf("a refused Add moved the version %d -> %d", v0, v)
			}
			continue
		}
		if err != nil {
			t.Errorf("Add(%+v): %v", tc.in, err)
			continue
		}
		if got.Subject != tc.subject {
			t.Errorf("Add(%+v): subject %q, want %q", tc.in, got.Subject, tc.subject)
		}
	}
}

func testVersionRemove(t *testing.T, s revoke.Store) {
	if v := version(t, s); v != 0 {
		t.Fatalf("empty store: version %d, want 0", v)
	}
	a := mustAdd(t, s, revoke.Revocation{Kind: revoke.KindUser, Subject: oid})
	b := mustAdd(t, s, revoke.Revocation{Kind: revoke.KindAll})
	if v := version(t, s); v != 2 {
		t.Fatalf("after two adds: version %d, want 2", v)
	}
	got, err := s.Remove(ctx, a.ID, "frank@host", "mistake")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != a.ID || got.Removed.IsZero() || got.RemovedBy != "frank@host" || got.RemovedReason != "mistake" || got.Subject != oid {
		t.Errorf("Remove returned %+v", got)
	}
	if v := version(t, s); v != 3 {
		t.Fatalf("after remove: version %d, want 3", v)
	}
	if _, err := s.Remove(ctx, a.ID, "frank", "again"); !errors.Is(err, revoke.ErrNotFound) {
		t.Errorf("second Remove: %v, want ErrNotFound", err)
	}
	if _, err := s.Remove(ctx, 999999, "frank", "nothing"); !errors.Is(err, revoke.ErrNotFound) {
		t.Errorf("Remove(unknown): %v, want ErrNotFound", err)
	}
	if v := version(t, s); v != 3 {
		t.Fatalf("failed removes moved the version to %d", v)
	}
	list, err := s.List(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != b.ID {
		t.Errorf("List without removed: %+v, want only %d", list, b.ID)
	}
	all, err := s.List(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].ID != a.ID || all[0].Removed.IsZero() || all[0].RemovedBy != "frank@host" || all[0].Active(time.Now()) {
		t.Errorf("List with removed: %+v", all)
	}
}

func testConcurrent(t *testing.T, open func() revoke.Store) {
	const writers, each = 4, 5
	stores := make([]revoke.Store, writers)
	for i := range stores {
		stores[i] = open()
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	ids := make(chan int64, writers*each)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				r, err := stores[w].Add(ctx, revoke.Revocation{Kind: revoke.KindToken, Subject: fmt.Sprintf("jti-%d-%d", w, i), Reason: "concurrent"})
				if err != nil {
					errs <- err
					return
				}
				ids <- r.ID
			}
		}()
	}
	wg.Wait()
	close(errs)
	close(ids)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[int64]bool{}
	for id := range ids {
		if seen[id] {
			t.Errorf("id %d assigned twice", id)
		}
		seen[id] = true
	}
	if v := version(t, stores[0]); v != writers*each {
		t.Errorf("version %d after %d adds", v, writers*each)
	}
	list, err := stores[1].List(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != writers*each {
		t.Errorf("List: %d, want %d", len(list), writers*each)
	}
}

// Principal is a user signed in now with a token issued a minute ago.
func Principal(oid, upn string) identity.Principal {
	now := time.Now()
	return identity.Principal{
		Key: tid + "/" + oid, TenantID: tid, ObjectID: oid, Username: upn, Email: upn,
		TokenID: "jti-" + oid, TokenHash: hash, IssuedAt: now.Add(-time.Minute).Truncate(time.Second), ExpiresAt: now.Add(time.Hour),
	}
}

// WaitRevoked polls s.Check until p is refused, failing after limit, and
// returns how long it took.
func WaitRevoked(t *testing.T, s *revoke.Snapshot, p identity.Principal, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for s.Check(ctx, p) == nil {
		if time.Since(start) > limit {
			t.Fatalf("revocation not seen within %v", limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

func testPropagation(t *testing.T, open func() revoke.Store) {
	writer, a, b := open(), open(), open()
	snaps := make([]*revoke.Snapshot, 2)
	for i, st := range []revoke.Store{a, b} {
		s, err := revoke.Start(ctx, revoke.Options{Store: st})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		snaps[i] = s
	}
	victim := Principal("6f1c2d3e-4a5b-4c6d-8e7f-8091a2b3c4d5", "victim@contoso.example")
	other := Principal("7a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", "other@contoso.example")
	other.TokenHash = ""
	for _, s := range snaps {
		if err := s.Check(ctx, victim); err != nil {
			t.Fatalf("before any revocation: %v", err)
		}
	}
	r := mustAdd(t, writer, revoke.Revocation{Kind: revoke.KindUser, Subject: victim.ObjectID, Reason: "propagation"})
	for i, s := range snaps {
		d := WaitRevoked(t, s, victim, 5*time.Second)
		t.Logf("snapshot %d saw the revocation after %v", i, d.Round(time.Millisecond))
		var re *revoke.RevokedError
		if err := s.Check(ctx, victim); !errors.As(err, &re) || re.ID != r.ID || re.Kind != revoke.KindUser {
			t.Errorf("Check: %v, want revocation %d (user)", err, r.ID)
		}
		if err := s.Check(ctx, other); err != nil {
			t.Errorf("another user is refused: %v", err)
		}
	}
	if _, err := writer.Remove(ctx, r.ID, "tester", "lifted"); err != nil {
		t.Fatal(err)
	}
	for i, s := range snaps {
		start := time.Now()
		for s.Check(ctx, victim) != nil {
			if time.Since(start) > 5*time.Second {
				t.Fatalf("snapshot %d: removal not seen within 5s", i)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}
