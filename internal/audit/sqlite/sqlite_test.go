package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/audit/audittest"
	"github.com/gatehouse-dev/gatehouse/internal/audit/sqlite"
)

func openTemp(t testing.TB, sync string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), sqlite.Options{Path: filepath.Join(t.TempDir(), "audit.db"), Sync: sync})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	for _, sync := range []string{"crash", "always"} {
		t.Run(sync, func(t *testing.T) {
			audittest.Run(t, func(t *testing.T) audit.Store { return openTemp(t, sync) })
		})
	}
}

func TestReadOnlyAndSecondWriter(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "a.db")
	if _, err := sqlite.Open(ctx, sqlite.Options{Path: path, ReadOnly: true}); err == nil {
		t.Fatal("read-only open of a missing database succeeded")
	}
	a, err := sqlite.Open(ctx, sqlite.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	// A second writer on the same file (another process, e.g. the CLI)
	// must continue the chain, not fork it.
	b, err := sqlite.Open(ctx, sqlite.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		s := a
		if i%2 == 1 {
			s = b
		}
		if err := s.Begin(ctx, []*audit.Record{audittest.Sample(fmt.Sprint("x", i), 0)}); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := sqlite.Open(ctx, sqlite.Options{Path: path, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	recs, err := ro.List(ctx, audit.Filter{})
	if err != nil || len(recs) != 6 {
		t.Fatalf("read-only List = %d records, %v", len(recs), err)
	}
	rep, err := ro.Verify(ctx, nil)
	if err != nil || !rep.OK() || rep.Entries != 6 {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
	if err := ro.Begin(ctx, []*audit.Record{audittest.Sample("nope", 0)}); !errors.Is(err, sqlite.ErrReadOnly) {
		t.Errorf("write to read-only store: %v", err)
	}
}

// At level crash a commit is fsynced by the background loop within
// SyncInterval; an idle store does not fsync.
func TestCrashLevelFsyncsWALAfterCommits(t *testing.T) {
	s, err := sqlite.Open(context.Background(), sqlite.Options{Path: filepath.Join(t.TempDir(), "a.db"), SyncInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	time.Sleep(50 * time.Millisecond)
	if n := s.WALSyncs(); n != 0 {
		t.Fatalf("idle store fsynced %d times", n)
	}
	if err := s.Begin(context.Background(), []*audit.Record{audittest.Sample("f1", 0)}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.WALSyncs() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the commit was never fsynced")
		}
		time.Sleep(2 * time.Millisecond)
	}
	n := s.WALSyncs()
	time.Sleep(50 * time.Millisecond)
	if s.WALSyncs() != n {
		t.Errorf("fsynced again without new commits")
	}
}

// An fsync error makes the WAL untrustworthy: every later write fails, so
// a fail-closed Recorder refuses requests until a restart.
func TestFsyncFailureIsFatal(t *testing.T) {
	s, err := sqlite.Open(context.Background(), sqlite.Options{Path: filepath.Join(t.TempDir(), "a.db"), SyncInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sqlite.SetFsync(s, func(*os.File) error { return errors.New("EIO") })
	r := audit.NewRecorder(audit.RecorderOptions{Store: s})
	defer r.Close(context.Background())
	if err := r.Begin(context.Background(), audittest.Sample("before", 0)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := r.Begin(context.Background(), audittest.Sample(fmt.Sprint("after-", time.Now().UnixNano()), 0))
		if errors.Is(err, audit.ErrUnavailable) {
			if !strings.Contains(err.Error(), "fsync failed") {
				t.Errorf("cause not reported: %v", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("writes still accepted after a failed fsync")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestWALStaysBoundedUnderSustainedWrites writes without a pause while the
// background loop checkpoints: the WAL must keep restarting from its
// beginning instead of growing by everything written. (A checkpoint run
// beside the writer, on another connection, never caught up, and the WAL
// grew to the size of the data written.)
func TestWALStaysBoundedUnderSustainedWrites(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "audit.db")
	s, err := sqlite.Open(ctx, sqlite.Options{Path: path, WALCheckpointInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const batches, per = 400, 64
	var maxWAL int64
	for b := range batches {
		recs := make([]*audit.Record, per)
		for i := range recs {
			recs[i] = audittest.Sample(fmt.Sprintf("w%d-%d", b, i), 0)
		}
		if err := s.Begin(ctx, recs); err != nil {
			t.Fatal(err)
		}
		if st, err := os.Stat(path + "-wal"); err == nil {
			maxWAL = max(maxWAL, st.Size())
		}
	}
	db, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("database %d bytes, largest WAL %d bytes", db.Size(), maxWAL)
	if db.Size() < 16<<20 {
		t.Fatalf("only %d bytes written; the test needs more to tell a bounded WAL from a growing one", db.Size())
	}
	// Checkpoints every 10ms keep the WAL at a few MB; the bound leaves
	// room for the background loop to be starved for a few hundred ms on
	// a busy machine. Without the fix the WAL outgrew the database.
	if maxWAL > db.Size()/2 {
		t.Fatalf("WAL grew to %d bytes for a %d-byte database: checkpoints are not keeping up", maxWAL, db.Size())
	}
}
