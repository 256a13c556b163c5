package journal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
)

// memStore is an in-memory inner store that can be made to fail.
type memStore struct {
	mu       sync.Mutex
	recs     map[string]audit.Record
	order    []string
	failing  atomic.Bool
	begins   int
	finishes int
	calls    int // Begin and Finish calls: transactions
}

func newMem() *memStore { return &memStore{recs: map[string]audit.Record{}} }

func (m *memStore) Begin(ctx context.Context, recs []*audit.Record) error {
	if m.failing.Load() {
		return errors.New("disk full")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range recs {
		if _, ok := m.recs[r.RequestID]; ok {
			return fmt.Errorf("UNIQUE constraint failed: %s", r.RequestID)
		}
	}
	for _, r := range recs {
		m.recs[r.RequestID] = *r
		m.order = append(m.order, r.RequestID)
		m.begins++
	}
	m.calls++
	return nil
}

func (m *memStore) Finish(ctx context.Context, recs []*audit.Record) error {
	if m.failing.Load() {
		return errors.New("disk full")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range recs {
		if _, ok := m.recs[r.RequestID]; !ok {
			m.order = append(m.order, r.RequestID)
		}
		m.recs[r.RequestID] = *r
		m.finishes++
	}
	m.calls++
	return nil
}

// snapshot returns the record for id (if the inner store has it) and the
// write counts so far.
func (m *memStore) snapshot(id string) (rec audit.Record, ok bool, begins, finishes int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rec, ok = m.recs[id]
	return rec, ok, m.begins, m.finishes
}

// waitFor polls until the inner store has id.
func (m *memStore) waitFor(t *testing.T, id string) audit.Record {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if r, ok, _, _ := m.snapshot(id); ok {
			return r
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s never reached the inner store", id)
	return audit.Record{}
}

func (m *memStore) List(ctx context.Context, f audit.Filter) ([]audit.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []audit.Record
	for _, id := range m.order {
		out = append(out, m.recs[id])
	}
	return out, nil
}

func (m *memStore) Close() error { return nil }

func rec(i int, st audit.State) *audit.Record {
	return &audit.Record{RequestID: fmt.Sprintf("req-%04d", i), State: st, Time: time.Unix(int64(i), 0).UTC(), Model: "claude-sonnet-4-6"}
}

func TestBeginFinishReachInnerInOrder(t *testing.T) {
	inner := newMem()
	s, err := Open(context.Background(), inner, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if err := s.Begin(context.Background(), []*audit.Record{rec(i, audit.StateBegun)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 100; i += 2 {
		r := rec(i, audit.StateCompleted)
		r.Status = 200
		s.Finish(context.Background(), []*audit.Record{r})
	}
	got, err := s.List(context.Background(), audit.Filter{})
	if err != nil || len(got) != 100 {
		t.Fatalf("list: %d %v", len(got), err)
	}
	for i, r := range got {
		want := audit.StateBegun
		if i%2 == 0 {
			want = audit.StateCompleted
		}
		if r.RequestID != fmt.Sprintf("req-%04d", i) || r.State != want {
			t.Fatalf("record %d: %+v", i, r)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if segs, _ := filepath.Glob(filepath.Join(s.opts.Dir, "*.journal")); len(segs) != 0 {
		t.Fatalf("segments left after a clean close: %v", segs)
	}
}

// TestReplayAfterCrash: entries journaled while the inner store could not
// take them are replayed by the next Open, as after a killed process.
func TestReplayAfterCrash(t *testing.T) {
	dir := t.TempDir()
	dead := newMem()
	dead.failing.Store(true)
	s1, err := Open(context.Background(), dead, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		if err := s1.Begin(context.Background(), []*audit.Record{rec(i, audit.StateBegun)}); err != nil {
			t.Fatal(err)
		}
	}
	s1.Finish(context.Background(), []*audit.Record{rec(7, audit.StateCompleted)})
	// "Crash": s1 is abandoned without Close; its file holds everything.
	inner := newMem()
	s2, err := Open(context.Background(), inner, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	got, _ := inner.List(context.Background(), audit.Filter{})
	if len(got) != 50 {
		t.Fatalf("replayed %d records, want 50", len(got))
	}
	if inner.recs["req-0007"].State != audit.StateCompleted || inner.recs["req-0008"].State != audit.StateBegun {
		t.Fatalf("replayed states wrong: %+v %+v", inner.recs["req-0007"], inner.recs["req-0008"])
	}
}

func TestTornTailIsTruncated(t *testing.T) {
	dir := t.TempDir()
	dead := newMem()
	dead.failing.Store(true)
	s1, _ := Open(context.Background(), dead, Options{Dir: dir})
	for i := 0; i < 3; i++ {
		s1.Begin(context.Background(), []*audit.Record{rec(i, audit.StateBegun)})
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*.journal"))
	f, _ := os.OpenFile(segs[len(segs)-1], os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte{200, 0, 0, 0, 1, 2, 3, 4, 'B', '{', '"'}) // half an entry: the process died mid-write
	f.Close()
	inner := newMem()
	s2, err := Open(context.Background(), inner, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if len(inner.recs) != 3 {
		t.Fatalf("replayed %d, want 3", len(inner.recs))
	}
}

// TestDoubleReplayIsIdempotent: a crash between an inner commit and the
// progress marker replays entries the inner store already has.
func TestDoubleReplayIsIdempotent(t *testing.T) {
	dir := t.TempDir()
	inner := newMem()
	s1, _ := Open(context.Background(), inner, Options{Dir: dir})
	for i := 0; i < 10; i++ {
		s1.Begin(context.Background(), []*audit.Record{rec(i, audit.StateBegun)})
	}
	s1.Flush(context.Background())
	crash(s1)
	os.Remove(filepath.Join(dir, "ingested")) // progress lost
	// Reopen over the same inner store.
	s2, err := Open(context.Background(), inner, Options{Dir: dir})
	if err != nil {
		t.Fatalf("replay over existing records: %v", err)
	}
	defer s2.Close()
	if len(inner.recs) != 10 || inner.begins != 10 {
		t.Fatalf("records %d, begins %d", len(inner.recs), inner.begins)
	}
}

func TestHighWaterFailsClosed(t *testing.T) {
	inner := newMem()
	inner.failing.Store(true)
	s, _ := Open(context.Background(), inner, Options{Dir: t.TempDir(), MaxPendingBytes: 2000})
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		err = s.Begin(context.Background(), []*audit.Record{rec(i, audit.StateBegun)})
	}
	if !errors.Is(err, ErrHighWater) {
		t.Fatalf("err = %v, want the high-water mark", err)
	}
	inner.failing.Store(false) // the store recovers: the backlog drains and Begin works again
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Begin(context.Background(), []*audit.Record{rec(1000, audit.StateBegun)}); err != nil {
		t.Fatal(err)
	}
	s.Close()
}

// TestSegmentsRotateAndAreRetired: ingested segments become spares (at
// most MaxSpares) that later segments reuse; Close leaves no file behind.
func TestSegmentsRotateAndAreRetired(t *testing.T) {
	dir := t.TempDir()
	inner := newMem()
	s, _ := Open(context.Background(), inner, Options{Dir: dir, SegmentBytes: 1024, Sync: SyncAlways})
	reused := 0
	for i := 0; i < 200; i++ {
		seg := s.seg
		s.Begin(context.Background(), []*audit.Record{rec(i, audit.StateBegun)})
		if i%10 == 0 {
			s.Flush(context.Background())
		}
		if s.seg != seg {
			if st, err := os.Stat(s.segPath(s.seg)); err == nil && st.Size() > fileHeaderLen {
				reused++
			}
		}
		if n := len(spareFiles(t, dir)); n > MaxSpares {
			t.Fatalf("%d spares", n)
		}
	}
	s.Flush(context.Background())
	time.Sleep(50 * time.Millisecond)
	segs, _ := filepath.Glob(filepath.Join(dir, "*.journal"))
	if len(segs) > 2 {
		t.Fatalf("%d segments kept after ingestion", len(segs))
	}
	if len(inner.recs) != 200 {
		t.Fatalf("%d records", len(inner.recs))
	}
	if reused == 0 {
		t.Fatal("no segment reused a spare")
	}
	s.Close()
	left, _ := filepath.Glob(filepath.Join(dir, "audit-*"))
	if len(left) != 0 {
		t.Fatalf("files left after Close: %v", left)
	}
}

func BenchmarkBegin(b *testing.B) {
	for _, level := range []string{SyncCrash, SyncAlways} {
		b.Run(level, func(b *testing.B) {
			s, _ := Open(context.Background(), newMem(), Options{Dir: b.TempDir(), Sync: level})
			defer s.Close()
			r := rec(1, audit.StateBegun)
			r.UserName, r.UserAgent, r.Issuer = "ada@contoso.example", "claude-cli/2.1.300 (external, cli)", "https://login.microsoftonline.com/x/v2.0"
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c := *r
				c.RequestID = fmt.Sprintf("r%d", i)
				if err := s.Begin(context.Background(), []*audit.Record{&c}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestCoalesceBeginAndFinish: a record begun and finished within one ingest
// batch reaches the store as one write, in its final state.
func TestCoalesceBeginAndFinish(t *testing.T) {
	inner := newMem()
	s, _ := Open(context.Background(), inner, Options{Dir: t.TempDir(), IngestDelay: 200 * time.Millisecond})
	defer s.Close()
	s.Begin(context.Background(), []*audit.Record{rec(1, audit.StateBegun), rec(2, audit.StateBegun)})
	s.Finish(context.Background(), []*audit.Record{rec(1, audit.StateCompleted)})
	got, _ := s.List(context.Background(), audit.Filter{})
	if len(got) != 2 || inner.recs["req-0001"].State != audit.StateCompleted || inner.recs["req-0002"].State != audit.StateBegun {
		t.Fatalf("records %+v", got)
	}
	if inner.begins != 2 || len(inner.order) != 2 || inner.order[0] != "req-0001" { // one write each, in arrival order
		t.Fatalf("%d begin writes, order %v", inner.begins, inner.order)
	}
}

// TestFinishWindow: a request that finishes within the window reaches the
// store as one write of its final version, even when its Finish is
// journaled in a later ingest round than its Begin; one that outlives the
// window is written begun first and finished later.
func TestFinishWindow(t *testing.T) {
	inner := newMem()
	s, _ := Open(context.Background(), inner, Options{Dir: t.TempDir(), IngestDelay: time.Millisecond, FinishWindow: 300 * time.Millisecond})
	defer s.Close()
	ctx := context.Background()
	s.Begin(ctx, []*audit.Record{rec(1, audit.StateBegun), rec(2, audit.StateBegun)})
	time.Sleep(50 * time.Millisecond) // later than IngestDelay: a separate round without the window
	mid := rec(1, audit.StateCompleted)
	mid.Usage.OutputTokens = 1
	last := rec(1, audit.StateCompleted)
	last.Usage.OutputTokens = 2
	s.Finish(ctx, []*audit.Record{mid})
	s.Finish(ctx, []*audit.Record{last})

	got := inner.waitFor(t, "req-0001")
	if got.State != audit.StateCompleted || got.Usage.OutputTokens != 2 {
		t.Fatalf("first write of req-0001 is %s with %d output tokens, want its last Finish", got.State, got.Usage.OutputTokens)
	}
	if r := inner.waitFor(t, "req-0002"); r.State != audit.StateBegun {
		t.Fatalf("req-0002 = %s", r.State)
	}
	s.Finish(ctx, []*audit.Record{rec(2, audit.StateCompleted)})
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	r2, _, begins, finishes := inner.snapshot("req-0002")
	if r2.State != audit.StateCompleted {
		t.Fatalf("req-0002 = %s after its Finish", r2.State)
	}
	// req-0001: one begin write; its two Finishes never reach the store
	// separately. req-0002: begin, then its one Finish.
	if begins != 2 || finishes != 1 {
		t.Fatalf("%d begin writes and %d finish writes, want 2 and 1", begins, finishes)
	}
}

// TestFlushDoesNotWaitForTheWindow: Flush (used by List, Recover and Close)
// ingests at once, whatever the window.
func TestFlushDoesNotWaitForTheWindow(t *testing.T) {
	inner := newMem()
	s, _ := Open(context.Background(), inner, Options{Dir: t.TempDir(), FinishWindow: time.Hour})
	defer s.Close()
	s.Begin(context.Background(), []*audit.Record{rec(1, audit.StateBegun)})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Flush(ctx); err != nil {
		t.Fatalf("flush with a one-hour window: %v", err)
	}
	if _, ok, _, _ := inner.snapshot("req-0001"); !ok {
		t.Fatal("flushed record missing from the inner store")
	}
}

// TestReplayAfterEarlyAppliedFinish: a Finish written early (merged into its
// Begin) is still in the journal; a crash before the marker passes it
// replays it harmlessly.
func TestReplayAfterEarlyAppliedFinish(t *testing.T) {
	dir := t.TempDir()
	inner := newMem()
	s, _ := Open(context.Background(), inner, Options{Dir: dir, IngestDelay: time.Millisecond, FinishWindow: 100 * time.Millisecond})
	ctx := context.Background()
	s.Begin(ctx, []*audit.Record{rec(1, audit.StateBegun)})
	s.Finish(ctx, []*audit.Record{rec(1, audit.StateCompleted)})
	inner.waitFor(t, "req-0001")
	crash(s)
	if err := os.Remove(filepath.Join(dir, "ingested")); err != nil {
		t.Fatal(err)
	}

	s2, err := Open(ctx, inner, Options{Dir: dir})
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	defer s2.Close()
	if r, _, _, _ := inner.snapshot("req-0001"); r.State != audit.StateCompleted {
		t.Fatalf("after replay req-0001 = %s", r.State)
	}
}

// TestIngestBatches: a steady trickle of requests reaches the inner store in
// batches about IngestDelay apart, not one transaction per arrival (small
// commits rewrite the same pages over and over).
func TestIngestBatches(t *testing.T) {
	inner := newMem()
	s, _ := Open(context.Background(), inner, Options{Dir: t.TempDir(), FinishWindow: 20 * time.Millisecond, IngestDelay: 100 * time.Millisecond})
	defer s.Close()
	start := time.Now()
	n := 0
	for time.Since(start) < 400*time.Millisecond {
		s.Begin(context.Background(), []*audit.Record{rec(n, audit.StateBegun)})
		n++
		time.Sleep(time.Millisecond)
	}
	inner.waitFor(t, fmt.Sprintf("req-%04d", n-1))
	inner.mu.Lock()
	calls := inner.calls
	inner.mu.Unlock()
	// 400 ms of arrivals in batches spanning at least 100 ms: about 4-5
	// transactions; one per arrival would be ~n.
	if calls > 8 {
		t.Fatalf("%d records reached the store in %d transactions", n, calls)
	}
}

// crash stops s's goroutines without draining or cleaning up, as a killed
// process would leave its directory (no stray marker write afterwards).
func crash(s *Store) {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	s.wg.Wait()
	s.f.Close()
}

// spareFiles lists dir's spare segment files.
func spareFiles(t *testing.T, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.spare"))
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// TestReusedSegmentLeftoversAreNeverReplayed: a reused segment file still
// holds the entries of its earlier use past what was written since. Their
// checksums were seeded with the old nonce, so a replay after a crash
// applies only the new entries (applying the old ones again would put
// finished records back to begun).
func TestReusedSegmentLeftoversAreNeverReplayed(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s1, err := Open(ctx, newMem(), Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		if err := s1.Begin(ctx, []*audit.Record{rec(i, audit.StateBegun)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s1.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	old := s1.segPath(s1.seg)
	crash(s1)
	// Retire the segment as the ingester would once it is ingested.
	if err := os.Rename(old, filepath.Join(dir, "audit-0000000000000001.spare")); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, "ingested"))

	inner2 := newMem()
	s2, err := Open(ctx, inner2, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(inner2.recs) != 0 {
		t.Fatalf("a spare was replayed: %d records", len(inner2.recs))
	}
	if got := spareFiles(t, dir); len(got) != 0 {
		t.Fatalf("spare not reused: %v", got)
	}
	st, err := os.Stat(s2.segPath(s2.seg))
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() <= fileHeaderLen*10 {
		t.Fatalf("the new segment is a fresh file (%d bytes), not the reused spare", st.Size())
	}
	// Nothing written yet: the reused file holds only leftovers.
	if ents, _, err := readSegment(s2.segPath(s2.seg), 0); err != nil || len(ents) != 0 {
		t.Fatalf("reused segment reads %d entries (err %v), want 0", len(ents), err)
	}
	inner2.failing.Store(true) // what follows stays in the journal only
	for i := 100; i < 103; i++ {
		if err := s2.Begin(ctx, []*audit.Record{rec(i, audit.StateBegun)}); err != nil {
			t.Fatal(err)
		}
	}
	crash(s2)

	inner3 := newMem()
	s3, err := Open(ctx, inner3, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	if len(inner3.recs) != 3 {
		t.Fatalf("replayed %d records, want the 3 written after reuse", len(inner3.recs))
	}
	for i := 100; i < 103; i++ {
		if _, ok := inner3.recs[rec(i, audit.StateBegun).RequestID]; !ok {
			t.Fatalf("record %d not replayed", i)
		}
	}
}

// TestFormat1SegmentIsReplayed: a segment written by an earlier version
// (no file header, unseeded checksums) is still replayed.
func TestFormat1SegmentIsReplayed(t *testing.T) {
	dir := t.TempDir()
	var file []byte
	for i := range 3 {
		payload, err := audit.AppendJSON(nil, rec(i, audit.StateBegun))
		if err != nil {
			t.Fatal(err)
		}
		hdr := make([]byte, headerLen)
		binary.LittleEndian.PutUint32(hdr[0:4], uint32(len(payload)))
		hdr[8] = kindBegin
		binary.LittleEndian.PutUint32(hdr[4:8], crc32.Update(crc32.Update(0, crcTable, hdr[8:9]), crcTable, payload))
		file = append(append(file, hdr...), payload...)
	}
	if err := os.WriteFile(filepath.Join(dir, "audit-0000000000000007.journal"), file, 0o600); err != nil {
		t.Fatal(err)
	}
	inner := newMem()
	s, err := Open(context.Background(), inner, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if len(inner.recs) != 3 {
		t.Fatalf("replayed %d records of a format-1 segment, want 3", len(inner.recs))
	}
	if s.seg != 8 {
		t.Fatalf("new segment %d, want 8", s.seg)
	}
}

// TestUnknownFormatRefusesToStart: a segment of a newer format is not
// mistaken for a torn file (truncating it would lose its records).
func TestUnknownFormatRefusesToStart(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit-0000000000000001.journal")
	if err := os.WriteFile(path, []byte("GHAJ\x03\x00\x00\x00nonce123more-entries"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), newMem(), Options{Dir: dir}); err == nil || !strings.Contains(err.Error(), "journal format 3") {
		t.Fatalf("Open = %v, want a refusal naming format 3", err)
	}
	if st, err := os.Stat(path); err != nil || st.Size() == 0 {
		t.Fatalf("the segment was altered: %v", err)
	}
}

// TestStaleSparesAreRemoved: a spare idle longer than spareMaxAge may be
// out of the page cache; it is deleted rather than reused.
func TestStaleSparesAreRemoved(t *testing.T) {
	dir := t.TempDir()
	spare := filepath.Join(dir, "audit-0000000000000003.spare")
	if err := os.WriteFile(spare, make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-2 * spareMaxAge)
	if err := os.Chtimes(spare, past, past); err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), newMem(), Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := os.Stat(spare); !os.IsNotExist(err) {
		t.Fatalf("stale spare still there (%v)", err)
	}
	if st, err := os.Stat(s.segPath(s.seg)); err != nil || st.Size() != fileHeaderLen {
		t.Fatalf("new segment: %v, %d bytes; want a fresh file", err, st.Size())
	}
}
