package audit_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/audit/audittest"
	"github.com/gatehouse-dev/gatehouse/internal/audit/sqlite"
)

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newStore(t *testing.T) (*audittest.Faulty, *sqlite.Store) {
	t.Helper()
	s, err := sqlite.Open(context.Background(), sqlite.Options{Path: filepath.Join(t.TempDir(), "a.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return &audittest.Faulty{Store: s}, s
}

func newRecorder(t *testing.T, opts audit.RecorderOptions) *audit.Recorder {
	t.Helper()
	r := audit.NewRecorder(opts)
	t.Cleanup(func() { _ = r.Close(context.Background()) })
	return r
}

func listAll(t *testing.T, s audit.Store) map[string]audit.Record {
	t.Helper()
	recs, err := s.List(context.Background(), audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]audit.Record{}
	for _, r := range recs {
		m[r.RequestID] = r
	}
	return m
}

// waitFor polls cond until it holds or 5s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestBeginIsDurableOnReturn(t *testing.T) {
	f, s := newStore(t)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r := newRecorder(t, audit.RecorderOptions{Store: f, Now: func() time.Time { return now }})
	rec := &audit.Record{RequestID: "req_1", Method: "POST", Path: "/v1/messages"}
	if err := r.Begin(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	if rec.Seq == 0 || rec.State != audit.StateBegun || !rec.Time.Equal(now) {
		t.Fatalf("after Begin: seq=%d state=%s time=%v", rec.Seq, rec.State, rec.Time)
	}
	got, ok := listAll(t, s)["req_1"]
	if !ok || got.State != audit.StateBegun || got.Seq != rec.Seq {
		t.Fatalf("store has %+v (present=%v)", got, ok)
	}
}

// holdFirst makes f's first Begin block until the returned release is
// called; entered is closed once that Begin is inside the store.
func holdFirst(t *testing.T, f *audittest.Faulty) (entered <-chan struct{}, release func()) {
	in := make(chan struct{})
	rel := make(chan struct{})
	var once, relOnce sync.Once
	f.BeginHook = func([]*audit.Record) {
		once.Do(func() {
			close(in)
			<-rel
		})
	}
	release = func() { relOnce.Do(func() { close(rel) }) }
	t.Cleanup(release) // registered after the recorder's Close: runs first
	return in, release
}

func TestGroupCommit(t *testing.T) {
	f, s := newStore(t)
	r := newRecorder(t, audit.RecorderOptions{Store: f})
	entered, release := holdFirst(t, f)

	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	begin := func(i int) {
		defer wg.Done()
		errs <- r.Begin(context.Background(), &audit.Record{RequestID: fmt.Sprint("g", i)})
	}
	wg.Add(1)
	go begin(0)
	<-entered
	for i := 1; i < n; i++ {
		wg.Add(1)
		go begin(i)
	}
	waitFor(t, "19 queued", func() bool { return r.Stats().BeginQueue == n-1 })
	release()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := f.Begins.Load(); got != 2 {
		t.Errorf("store Begin called %d times for %d records, want 2 (group commit)", got, n)
	}
	if st := r.Stats(); st.BeginRecords != n || st.BeginBatches != 2 {
		t.Errorf("stats %+v", st)
	}
	if len(listAll(t, s)) != n {
		t.Errorf("store holds %d records, want %d", len(listAll(t, s)), n)
	}
}

func TestBadRecordDoesNotFailItsBatch(t *testing.T) {
	f, s := newStore(t)
	r := newRecorder(t, audit.RecorderOptions{Store: f})
	if err := r.Begin(context.Background(), &audit.Record{RequestID: "dup"}); err != nil {
		t.Fatal(err)
	}
	entered, release := holdFirst(t, f)
	results := make(chan error, 3)
	ids := []string{"hold", "dup", "ok"}
	go func() { results <- r.Begin(context.Background(), &audit.Record{RequestID: ids[0]}) }()
	<-entered
	var wg sync.WaitGroup
	res := make([]error, 3)
	for i := 1; i < 3; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); res[i] = r.Begin(context.Background(), &audit.Record{RequestID: ids[i]}) }()
	}
	waitFor(t, "two queued", func() bool { return r.Stats().BeginQueue == 2 })
	release()
	wg.Wait()
	if err := <-results; err != nil {
		t.Fatalf("hold: %v", err)
	}
	if !errors.Is(res[1], audit.ErrUnavailable) {
		t.Errorf("duplicate: err = %v, want ErrUnavailable", res[1])
	}
	if res[2] != nil {
		t.Errorf("ok: err = %v, want nil", res[2])
	}
	if _, ok := listAll(t, s)["ok"]; !ok {
		t.Error("record ok missing")
	}
}

func TestFailClosed(t *testing.T) {
	f, s := newStore(t)
	var logs syncBuffer
	r := newRecorder(t, audit.RecorderOptions{Store: f, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	f.FailBegin.Store(true)
	err := r.Begin(context.Background(), &audit.Record{RequestID: "x"})
	if !errors.Is(err, audit.ErrUnavailable) || !errors.Is(err, audittest.ErrInjected) {
		t.Fatalf("err = %v, want ErrUnavailable wrapping the cause", err)
	}
	st := r.Stats()
	if st.Refused != 1 || st.Gaps != 0 || st.Failures != 1 {
		t.Errorf("stats %+v", st)
	}
	if _, ok := listAll(t, s)["x"]; ok {
		t.Error("record written despite failure")
	}
	if !strings.Contains(logs.String(), "audit write failed") {
		t.Errorf("no log line: %q", logs.String())
	}
	f.FailBegin.Store(false)
	if err := r.Begin(context.Background(), &audit.Record{RequestID: "y"}); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}

func TestFailOpen(t *testing.T) {
	f, s := newStore(t)
	var logs syncBuffer
	r := newRecorder(t, audit.RecorderOptions{Store: f, FailOpen: true, FlushInterval: 10 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	f.FailBegin.Store(true)
	rec := &audit.Record{RequestID: "gap"}
	if err := r.Begin(context.Background(), rec); err != nil {
		t.Fatalf("fail-open Begin returned %v", err)
	}
	if st := r.Stats(); st.Gaps != 1 || st.Refused != 0 {
		t.Errorf("stats %+v", st)
	}
	if n := strings.Count(logs.String(), "fail-open"); n != 1 {
		t.Errorf("want exactly one fail-open log line, got %d: %q", n, logs.String())
	}
	f.FailBegin.Store(false)
	rec.State, rec.Status = audit.StateCompleted, 200
	r.Finish(rec)
	waitFor(t, "the gap to close through Finish", func() bool { return listAll(t, s)["gap"].State == audit.StateCompleted })
}

func TestFinishBatchedAndFlushedOnClose(t *testing.T) {
	f, s := newStore(t)
	r := audit.NewRecorder(audit.RecorderOptions{Store: f, FlushInterval: time.Hour})
	const n = 10
	for i := range n {
		rec := &audit.Record{RequestID: fmt.Sprint("f", i)}
		if err := r.Begin(context.Background(), rec); err != nil {
			t.Fatal(err)
		}
		rec.State, rec.Status = audit.StateCompleted, 200
		r.Finish(rec)
	}
	if st := r.Stats(); st.FinishQueue != n {
		t.Fatalf("finish queue %d, want %d", st.FinishQueue, n)
	}
	for id, rec := range listAll(t, s) {
		if rec.State != audit.StateBegun {
			t.Fatalf("%s already %s before flush", id, rec.State)
		}
	}
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := f.Finishes.Load(); got != 1 {
		t.Errorf("store Finish called %d times, want 1 batch", got)
	}
	for id, rec := range listAll(t, s) {
		if rec.State != audit.StateCompleted || rec.Status != 200 {
			t.Errorf("%s: %s %d", id, rec.State, rec.Status)
		}
	}
	if err := r.Begin(context.Background(), &audit.Record{RequestID: "late"}); !errors.Is(err, audit.ErrUnavailable) || !errors.Is(err, audit.ErrClosed) {
		t.Errorf("Begin after Close: %v", err)
	}
}

func TestFinishRetriedUntilStoreRecovers(t *testing.T) {
	f, s := newStore(t)
	r := newRecorder(t, audit.RecorderOptions{Store: f, FlushInterval: 5 * time.Millisecond})
	rec := &audit.Record{RequestID: "r"}
	if err := r.Begin(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	f.FailFinish.Store(true)
	rec.State = audit.StateInterrupted
	r.Finish(rec)
	waitFor(t, "two failed attempts", func() bool { return r.Stats().Failures >= 2 })
	if st := r.Stats(); st.FinishQueue != 1 {
		t.Fatalf("record dropped from queue after failure: %+v", st)
	}
	f.FailFinish.Store(false)
	waitFor(t, "retry to succeed", func() bool { return listAll(t, s)["r"].State == audit.StateInterrupted })
}

func TestCloseReportsUnwritten(t *testing.T) {
	f, _ := newStore(t)
	r := audit.NewRecorder(audit.RecorderOptions{Store: f, FlushInterval: time.Hour})
	f.FailFinish.Store(true)
	r.Finish(&audit.Record{RequestID: "a"})
	r.Finish(&audit.Record{RequestID: "b"})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := r.Close(ctx)
	if err == nil || !strings.Contains(err.Error(), "2 finished records not written") {
		t.Fatalf("Close = %v", err)
	}
}

func TestBeginContextCancelled(t *testing.T) {
	f, _ := newStore(t)
	r := newRecorder(t, audit.RecorderOptions{Store: f})
	entered, release := holdFirst(t, f)
	defer release()
	go func() { _ = r.Begin(context.Background(), &audit.Record{RequestID: "leader"}) }()
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	rec := &audit.Record{RequestID: "c"}
	if err := r.Begin(ctx, rec); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if rec.Seq != 0 {
		t.Error("Seq set although Begin did not succeed")
	}
}

func TestWriteJSONL(t *testing.T) {
	recs := []audit.Record{*audittest.Finished(audittest.Sample("j1", 0)), *audittest.Sample("j2", time.Second)}
	recs[0].Seq, recs[1].Seq = 1, 2
	recs[1].Time = recs[1].Time.In(time.FixedZone("CET", 3600))
	var buf bytes.Buffer
	if err := audit.WriteJSONL(&buf, recs); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines", len(lines))
	}
	for _, want := range []string{`"request_id":"j1"`, `"state":"completed"`, `"output_tokens":22`, `"time":"2026-11-24T09:00:00.123456789Z"`, `"user_agent":"claude-cli/2.1 (external, cli)"`} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("line 1 lacks %s: %s", want, lines[0])
		}
	}
	if !strings.Contains(lines[1], `"time":"2026-11-24T09:00:01.123456789Z"`) {
		t.Errorf("line 2 time not UTC: %s", lines[1])
	}
}

func TestWriteCSV(t *testing.T) {
	rec := *audittest.Finished(audittest.Sample("c1", 0))
	rec.Seq = 7
	rec.UserName = "=HYPERLINK(\"http://evil\")"
	var buf bytes.Buffer
	if err := audit.WriteCSV(&buf, []audit.Record{rec}); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || len(rows[1]) != len(audit.CSVHeader) {
		t.Fatalf("rows %v", rows)
	}
	col := map[string]string{}
	for i, h := range rows[0] {
		col[h] = rows[1][i]
	}
	for k, want := range map[string]string{"seq": "7", "request_id": "c1", "time": "2026-11-24T09:00:00.123456789Z",
		"output_tokens": "22", "latency_ms": "812.5", "stream": "true", "user_name": `'=HYPERLINK("http://evil")`} {
		if col[k] != want {
			t.Errorf("%s = %q, want %q", k, col[k], want)
		}
	}
}

func TestRecordWithoutRequestID(t *testing.T) {
	f, s := newStore(t)
	r := newRecorder(t, audit.RecorderOptions{Store: f, FlushInterval: 5 * time.Millisecond})
	if err := r.Begin(context.Background(), &audit.Record{}); !errors.Is(err, audit.ErrNoRequestID) || errors.Is(err, audit.ErrUnavailable) {
		t.Fatalf("Begin without id: %v", err)
	}
	// A bad finished record must not block the good one behind it.
	r.Finish(&audit.Record{State: audit.StateCompleted})
	good := &audit.Record{RequestID: "good"}
	if err := r.Begin(context.Background(), good); err != nil {
		t.Fatal(err)
	}
	good.State = audit.StateCompleted
	r.Finish(good)
	waitFor(t, "the good record", func() bool { return listAll(t, s)["good"].State == audit.StateCompleted })
	if st := r.Stats(); st.Dropped != 1 || st.Failures != 0 {
		t.Errorf("stats %+v", st)
	}
}

// deadlineStore records whether each write's context had a deadline.
type deadlineStore struct {
	audit.Store
	mu        sync.Mutex
	deadlines []bool
}

func (d *deadlineStore) Begin(ctx context.Context, recs []*audit.Record) error {
	_, ok := ctx.Deadline()
	d.mu.Lock()
	d.deadlines = append(d.deadlines, ok)
	d.mu.Unlock()
	return d.Store.Begin(ctx, recs)
}

// localStore is a deadlineStore that declares its writes local.
type localStore struct{ *deadlineStore }

func (localStore) LocalWrites() {}

// TestWriteDeadlineOnlyForStoresThatWait: a store's writes get
// WriteTimeout as a deadline, except a LocalStore's (a journal append
// cannot be cancelled, so the timer would be pure cost).
func TestWriteDeadlineOnlyForStoresThatWait(t *testing.T) {
	for _, tc := range []struct {
		name  string
		local bool
	}{{"store", false}, {"local store", true}} {
		t.Run(tc.name, func(t *testing.T) {
			_, s := newStore(t)
			ds := &deadlineStore{Store: s}
			var store audit.Store = ds
			if tc.local {
				store = localStore{ds}
			}
			r := audit.NewRecorder(audit.RecorderOptions{Store: store, WriteTimeout: time.Minute})
			defer r.Close(context.Background())
			if err := r.Begin(context.Background(), audittest.Sample("d1", 0)); err != nil {
				t.Fatal(err)
			}
			ds.mu.Lock()
			defer ds.mu.Unlock()
			if len(ds.deadlines) != 1 || ds.deadlines[0] == tc.local {
				t.Fatalf("deadlines %v; want one write, with a deadline: %v", ds.deadlines, !tc.local)
			}
		})
	}
}
