// Package audittest is the conformance suite every audit.Store must pass:
// write, read back, ordering, filters, finish/upsert, recovery and
// concurrency. Backends call Run from their own tests.
package audittest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/anthropic"
	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/audit/content"
)

// NewStore returns a fresh, empty store; the suite closes it.
type NewStore func(t *testing.T) audit.Store

// base is a fixed instant so tests are reproducible.
var base = time.Date(2026, 11, 24, 9, 0, 0, 123456789, time.UTC)

// Sample returns a fully populated begun record with request id id at
// base+offset.
func Sample(id string, offset time.Duration) *audit.Record {
	return &audit.Record{
		RequestID: id,
		Time:      base.Add(offset),
		State:     audit.StateBegun,
		Method:    "POST",
		Path:      "/v1/messages",
		UserKey:   "tid-1/oid-" + id,
		TenantID:  "tid-1",
		ObjectID:  "oid-" + id,
		Subject:   "sub-" + id,
		Issuer:    "https://login.example/tid-1/v2.0",
		UserName:  "user-" + id + "@example.com",
		UserAgent: "claude-cli/2.1 (external, cli)",
		SessionID: "sess-" + id,
		ClientIP:  "192.0.2.7",
		Model:     "claude-sonnet-4-6",
		Stream:    true,
		Instance:  "gw-a",
	}
}

// Finished returns a copy of rec completed with status, usage and timings.
func Finished(rec *audit.Record) *audit.Record {
	f := *rec
	f.State = audit.StateCompleted
	f.UpstreamModel = "dep-sonnet"
	f.Upstream = "foundry"
	f.Status = 200
	f.LatencyMS = 812.5
	f.TTFBMS = 95.25
	f.UpstreamRequestID = "req_up_" + rec.RequestID
	f.Usage = anthropic.Usage{InputTokens: 11, OutputTokens: 22, CacheCreationInputTokens: 33, CacheReadInputTokens: 44, CacheCreation5m: 30, CacheCreation1h: 3}
	f.CostUSD = 0.0125
	return &f
}

// Run runs the suite; newStore is called once per subtest.
func Run(t *testing.T, newStore NewStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s audit.Store)
	}{
		{"BeginRoundTrip", testBeginRoundTrip},
		{"SeqIncreasesAcrossBatches", testSeqOrder},
		{"FinishUpdatesInPlace", testFinish},
		{"FinishWithoutBeginInserts", testFinishWithoutBegin},
		{"DuplicateBeginFails", testDuplicateBegin},
		{"Filters", testFilters},
		{"Recover", testRecover},
		{"Concurrent", testConcurrent},
		{"Content", testContent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, s)
		})
	}
}

func list(t *testing.T, s audit.Store, f audit.Filter) []audit.Record {
	t.Helper()
	recs, err := s.List(context.Background(), f)
	if err != nil {
		t.Fatalf("List(%+v): %v", f, err)
	}
	return recs
}

func ids(recs []audit.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.RequestID
	}
	return out
}

func equalRecord(t *testing.T, got audit.Record, want *audit.Record) {
	t.Helper()
	w := *want
	if !got.Time.Equal(w.Time) {
		t.Errorf("%s: time = %v, want %v", w.RequestID, got.Time, w.Time)
	}
	got.Time, w.Time = time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, w) {
		t.Errorf("record mismatch:\n got %+v\nwant %+v", got, w)
	}
}

func testBeginRoundTrip(t *testing.T, s audit.Store) {
	ctx := context.Background()
	a, d := Sample("a", 0), Sample("d", time.Second)
	d.State, d.Status, d.ErrorType, d.Reason = audit.StateDenied, 401, "authentication_error", "token_expired"
	a.Policy, a.Groups, a.FailedUpstreams = "engineering", []string{"g-1", "g-2"}, []string{"east: 529", "west: circuit open"}
	if err := s.Begin(ctx, []*audit.Record{a, d}); err != nil {
		t.Fatalf("Begin: %v", err)
	}
	if a.Seq <= 0 || d.Seq <= a.Seq {
		t.Fatalf("seqs = %d, %d; want positive and increasing", a.Seq, d.Seq)
	}
	got := list(t, s, audit.Filter{})
	if len(got) != 2 {
		t.Fatalf("List returned %d records, want 2", len(got))
	}
	equalRecord(t, got[0], a)
	equalRecord(t, got[1], d)
	if got[0].Time.Location() != time.UTC {
		t.Errorf("time location = %v, want UTC", got[0].Time.Location())
	}
}

func testSeqOrder(t *testing.T, s audit.Store) {
	ctx := context.Background()
	var want []string
	for i := range 5 {
		// Times deliberately out of order: List orders by Seq, not Time.
		batch := []*audit.Record{Sample(fmt.Sprintf("r%d-0", i), time.Duration(10-i)*time.Second), Sample(fmt.Sprintf("r%d-1", i), 0)}
		if err := s.Begin(ctx, batch); err != nil {
			t.Fatal(err)
		}
		want = append(want, batch[0].RequestID, batch[1].RequestID)
	}
	got := list(t, s, audit.Filter{})
	if !reflect.DeepEqual(ids(got), want) {
		t.Fatalf("order = %v, want %v", ids(got), want)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Seq <= got[i-1].Seq {
			t.Fatalf("seq not increasing at %d: %d after %d", i, got[i].Seq, got[i-1].Seq)
		}
	}
}

func testFinish(t *testing.T, s audit.Store) {
	ctx := context.Background()
	a, b := Sample("a", 0), Sample("b", time.Second)
	if err := s.Begin(ctx, []*audit.Record{a, b}); err != nil {
		t.Fatal(err)
	}
	fa := Finished(a)
	fb := Finished(b)
	fb.State, fb.Status, fb.ErrorType = audit.StateInterrupted, 200, ""
	if err := s.Finish(ctx, []*audit.Record{fb, fa}); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	got := list(t, s, audit.Filter{})
	if len(got) != 2 {
		t.Fatalf("got %d records, want 2 (finish must update, not add)", len(got))
	}
	fa.Seq, fb.Seq = a.Seq, b.Seq
	equalRecord(t, got[0], fa)
	equalRecord(t, got[1], fb)
}

func testFinishWithoutBegin(t *testing.T, s audit.Store) {
	ctx := context.Background()
	a := Sample("a", 0)
	if err := s.Begin(ctx, []*audit.Record{a}); err != nil {
		t.Fatal(err)
	}
	orphan := Finished(Sample("orphan", time.Second))
	if err := s.Finish(ctx, []*audit.Record{orphan}); err != nil {
		t.Fatalf("Finish of a never-begun record: %v", err)
	}
	got := list(t, s, audit.Filter{})
	if !reflect.DeepEqual(ids(got), []string{"a", "orphan"}) {
		t.Fatalf("records = %v", ids(got))
	}
	if got[1].Seq <= got[0].Seq {
		t.Errorf("orphan seq %d not after %d", got[1].Seq, got[0].Seq)
	}
	o := *orphan
	o.Seq = got[1].Seq
	equalRecord(t, got[1], &o)
}

func testDuplicateBegin(t *testing.T, s audit.Store) {
	ctx := context.Background()
	if err := s.Begin(ctx, []*audit.Record{Sample("dup", 0)}); err != nil {
		t.Fatal(err)
	}
	// Same request id and time: a replayed or repeated write. (PostgreSQL
	// keys records on (request_id, time) because it partitions on time.)
	err := s.Begin(ctx, []*audit.Record{Sample("fresh", 0), Sample("dup", 0)})
	if err == nil {
		t.Fatal("Begin with a duplicate request_id succeeded")
	}
	// The failed batch is atomic: "fresh" must not have been written.
	if got := ids(list(t, s, audit.Filter{})); !reflect.DeepEqual(got, []string{"dup"}) {
		t.Fatalf("after failed batch, records = %v, want [dup]", got)
	}
}

func testFilters(t *testing.T, s audit.Store) {
	ctx := context.Background()
	mk := func(id, user, name, model string, off time.Duration, state audit.State, status int) *audit.Record {
		r := Sample(id, off)
		r.UserKey, r.ObjectID, r.UserName, r.Model, r.State, r.Status = "tid/"+user, user, name, model, state, status
		return r
	}
	recs := []*audit.Record{
		mk("1", "alice", "alice@x", "sonnet", 0, audit.StateBegun, 0),
		mk("2", "bob", "bob@x", "opus", time.Minute, audit.StateDenied, 403),
		mk("3", "alice", "alice@x", "opus", 2*time.Minute, audit.StateBegun, 0),
		mk("4", "carol", "carol@x", "sonnet", 3*time.Minute, audit.StateDenied, 401),
		mk("5", "alice", "alice@x", "sonnet", 4*time.Minute, audit.StateBegun, 0),
	}
	if err := s.Begin(ctx, recs); err != nil {
		t.Fatal(err)
	}
	f3 := Finished(recs[2])
	f3.Status = 429
	if err := s.Finish(ctx, []*audit.Record{f3}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		f    audit.Filter
		want []string
	}{
		{"all", audit.Filter{}, []string{"1", "2", "3", "4", "5"}},
		{"user key", audit.Filter{UserKey: "tid/alice"}, []string{"1", "3", "5"}},
		{"object id", audit.Filter{UserKey: "bob"}, []string{"2"}},
		{"user name", audit.Filter{UserKey: "carol@x"}, []string{"4"}},
		{"unknown user", audit.Filter{UserKey: "mallory"}, nil},
		{"since inclusive", audit.Filter{Since: base.Add(2 * time.Minute)}, []string{"3", "4", "5"}},
		{"until exclusive", audit.Filter{Until: base.Add(2 * time.Minute)}, []string{"1", "2"}},
		{"range", audit.Filter{Since: base.Add(time.Minute), Until: base.Add(3 * time.Minute)}, []string{"2", "3"}},
		{"model", audit.Filter{Model: "opus"}, []string{"2", "3"}},
		{"status", audit.Filter{Status: 429}, []string{"3"}},
		{"denied only", audit.Filter{DeniedOnly: true}, []string{"2", "4"}},
		{"state", audit.Filter{State: audit.StateCompleted}, []string{"3"}},
		{"request id", audit.Filter{RequestID: "4"}, []string{"4"}},
		{"limit", audit.Filter{Limit: 2}, []string{"1", "2"}},
		{"combined", audit.Filter{UserKey: "alice", Model: "sonnet", Since: base.Add(time.Second)}, []string{"5"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ids(list(t, s, tc.f))
			if len(got) == 0 && len(tc.want) == 0 {
				return
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func testRecover(t *testing.T, s audit.Store) {
	rc, ok := s.(audit.Recoverer)
	if !ok {
		t.Skip("store does not implement audit.Recoverer")
	}
	ctx := context.Background()
	a, b, c, d := Sample("a", 0), Sample("b", 0), Sample("c", 0), Sample("d", 0)
	c.Instance = "gw-b"
	d.State = audit.StateDenied
	if err := s.Begin(ctx, []*audit.Record{a, b, c, d}); err != nil {
		t.Fatal(err)
	}
	if err := s.Finish(ctx, []*audit.Record{Finished(b)}); err != nil {
		t.Fatal(err)
	}
	n, err := rc.Recover(ctx, "gw-a")
	if err != nil || n != 1 {
		t.Fatalf("Recover(gw-a) = %d, %v; want 1 (only a)", n, err)
	}
	want := map[string]audit.State{"a": audit.StateUnfinished, "b": audit.StateCompleted, "c": audit.StateBegun, "d": audit.StateDenied}
	for _, r := range list(t, s, audit.Filter{}) {
		if r.State != want[r.RequestID] {
			t.Errorf("%s: state %s, want %s", r.RequestID, r.State, want[r.RequestID])
		}
		if r.RequestID == "a" && r.Reason != "crash_recovered" {
			t.Errorf("a: reason %q, want crash_recovered", r.Reason)
		}
	}
	if n, err := rc.Recover(ctx, ""); err != nil || n != 1 {
		t.Fatalf("Recover(all) = %d, %v; want 1 (c)", n, err)
	}
}

func testConcurrent(t *testing.T, s audit.Store) {
	ctx := context.Background()
	const workers, per = 16, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				r := Sample(fmt.Sprintf("w%d-%d", w, i), time.Duration(i)*time.Millisecond)
				if err := s.Begin(ctx, []*audit.Record{r}); err != nil {
					errs <- err
					return
				}
				if err := s.Finish(ctx, []*audit.Record{Finished(r)}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := list(t, s, audit.Filter{})
	if len(got) != workers*per {
		t.Fatalf("got %d records, want %d", len(got), workers*per)
	}
	seen := map[string]bool{}
	for i, r := range got {
		if seen[r.RequestID] {
			t.Fatalf("duplicate %s", r.RequestID)
		}
		seen[r.RequestID] = true
		if r.State != audit.StateCompleted || r.Usage.OutputTokens != 22 {
			t.Errorf("%s: state %s output %d", r.RequestID, r.State, r.Usage.OutputTokens)
		}
		if i > 0 && r.Seq <= got[i-1].Seq {
			t.Fatalf("seq not increasing at %d", i)
		}
	}
}

// ErrInjected is what FailingStore returns while failing.
var ErrInjected = errors.New("audittest: injected store failure")

func testContent(t *testing.T, s audit.Store) {
	cs, ok := s.(content.Store)
	if !ok {
		t.Skip("store does not keep captured content")
	}
	ctx := context.Background()
	mk := func(id, user string, off time.Duration) *content.Entry {
		return &content.Entry{RequestID: id, Time: base.Add(off), UserKey: user, Mode: content.ModeFull,
			RequestSHA256: "aa", ResponseSHA256: "bb", RequestBytes: 10, ResponseBytes: 20,
			Redactions: map[string]int{"email": 2}, KeyID: "k1", Sealed: []byte{1, 2, 3}}
	}
	entries := []*content.Entry{mk("c1", "alice", 0), mk("c2", "bob", time.Minute), mk("c3", "alice", 2*time.Minute)}
	for _, e := range entries {
		if err := cs.PutContent(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	got, err := cs.GetContent(ctx, "c2")
	if err != nil || !reflect.DeepEqual(got, entries[1]) {
		t.Fatalf("GetContent = %+v, %v; want %+v", got, err, entries[1])
	}
	if _, err := cs.GetContent(ctx, "nope"); !errors.Is(err, content.ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	if n, err := cs.PurgeContent(ctx, "alice", base.Add(time.Minute)); err != nil || n != 1 {
		t.Fatalf("purge alice before +1m = %d, %v; want 1 (c1)", n, err)
	}
	if n, err := cs.PurgeContent(ctx, "alice", time.Time{}); err != nil || n != 1 {
		t.Fatalf("purge alice = %d, %v; want 1 (c3)", n, err)
	}
	for id, want := range map[string]bool{"c1": false, "c2": true, "c3": false} {
		_, err := cs.GetContent(ctx, id)
		if (err == nil) != want {
			t.Errorf("%s present=%v, want %v", id, err == nil, want)
		}
	}
	// Content writes and purges are chained: the store still verifies.
	if v, ok := s.(audit.Verifier); ok {
		rep, err := v.Verify(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK() || rep.Contents != 1 || rep.Entries != 5 {
			t.Errorf("verify after content put/purge: %+v", rep)
		}
	}
}
