package export_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/audit/audittest"
	"github.com/gatehouse-dev/gatehouse/internal/audit/export"
	"github.com/gatehouse-dev/gatehouse/internal/audit/sqlite"
)

// receiver fails the first `fail` requests with 503, stalls the next
// `stall` ones past the exporter's attempt timeout, then accepts. It
// records every idempotency key it acknowledged.
type receiver struct {
	t          *testing.T
	fail       int64
	stall      int64
	n          atomic.Int64
	keys       func(body []byte, h http.Header) ([]string, error)
	check      func(r *http.Request) error
	mu         sync.Mutex
	got        map[string]int
	release    chan struct{}
	badRequest atomic.Int64
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := rc.n.Add(1)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		// The exporter's attempt timeout cut the upload short (a loaded
		// machine): like a real receiver, reject it; the batch is retried.
		http.Error(w, "incomplete body", http.StatusBadRequest)
		return
	}
	if rc.check != nil {
		if err := rc.check(r); err != nil {
			rc.badRequest.Add(1)
			rc.t.Errorf("bad request: %v", err)
		}
	}
	switch {
	case n <= rc.fail:
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	case n <= rc.fail+rc.stall:
		select { // stall: the exporter's attempt timeout cuts us off
		case <-r.Context().Done():
		case <-rc.release:
		}
		return
	}
	keys, err := rc.keys(body, r.Header)
	if err != nil {
		rc.t.Errorf("cannot parse the body: %v\n%s", err, body)
		http.Error(w, "bad", 400)
		return
	}
	rc.mu.Lock()
	for _, k := range keys {
		rc.got[k]++
	}
	rc.mu.Unlock()
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(`{"text":"Success","code":0}`))
}

func (rc *receiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.got)
}

func webhookKeys(body []byte, h http.Header) ([]string, error) {
	var v struct {
		Events []export.Event `json:"events"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, err
	}
	var out []string
	for _, e := range v.Events {
		var r audit.Record
		if err := json.Unmarshal(e.Record, &r); err != nil || r.RequestID == "" {
			return nil, fmt.Errorf("event record: %v", err)
		}
		out = append(out, e.IdempotencyKey)
	}
	if want := v.Events[0].IdempotencyKey + ".." + v.Events[len(v.Events)-1].IdempotencyKey; h.Get("Idempotency-Key") != want {
		return nil, fmt.Errorf("Idempotency-Key %q, want %q", h.Get("Idempotency-Key"), want)
	}
	return out, nil
}

func splunkKeys(body []byte, _ http.Header) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var v struct {
			Time       string            `json:"time"`
			Sourcetype string            `json:"sourcetype"`
			Event      export.Event      `json:"event"`
			Fields     map[string]string `json:"fields"`
		}
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			return nil, err
		}
		if v.Sourcetype != "gatehouse:audit" || v.Time == "" || v.Fields["idempotency_key"] != v.Event.IdempotencyKey {
			return nil, fmt.Errorf("HEC event shape: %s", sc.Text())
		}
		out = append(out, v.Fields["idempotency_key"])
	}
	return out, nil
}

func otlpKeys(body []byte, _ http.Header) ([]string, error) {
	var v struct {
		ResourceLogs []struct {
			ScopeLogs []struct {
				LogRecords []struct {
					TimeUnixNano string `json:"timeUnixNano"`
					Body         struct {
						StringValue string `json:"stringValue"`
					} `json:"body"`
					Attributes []struct {
						Key   string `json:"key"`
						Value struct {
							StringValue string `json:"stringValue"`
						} `json:"value"`
					} `json:"attributes"`
				} `json:"logRecords"`
			} `json:"scopeLogs"`
		} `json:"resourceLogs"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, err
	}
	var out []string
	for _, lr := range v.ResourceLogs[0].ScopeLogs[0].LogRecords {
		var ev export.Event
		if err := json.Unmarshal([]byte(lr.Body.StringValue), &ev); err != nil || lr.TimeUnixNano == "" {
			return nil, fmt.Errorf("log record body: %v", err)
		}
		for _, a := range lr.Attributes {
			if a.Key == "event.id" {
				if a.Value.StringValue != ev.IdempotencyKey {
					return nil, fmt.Errorf("event.id %q != %q", a.Value.StringValue, ev.IdempotencyKey)
				}
				out = append(out, a.Value.StringValue)
			}
		}
	}
	return out, nil
}

func writeRecords(t *testing.T, s *sqlite.Store, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		r := audittest.Sample(fmt.Sprint("e", i), time.Duration(i)*time.Millisecond)
		if err := s.Begin(context.Background(), []*audit.Record{r}); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			if err := s.Finish(context.Background(), []*audit.Record{audittest.Finished(r)}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestExportersSurviveFailingStallingReceivers(t *testing.T) {
	tests := []struct {
		name  string
		keys  func([]byte, http.Header) ([]string, error)
		check func(*http.Request) error
		sink  func(url string) export.Sink
	}{
		{"webhook", webhookKeys, func(r *http.Request) error {
			if r.Header.Get("X-Test-Auth") != "t0ken" {
				return fmt.Errorf("custom header missing")
			}
			return nil
		}, func(url string) export.Sink {
			s, _ := export.NewWebhook(export.HTTPOptions{URL: url, Headers: map[string]string{"X-Test-Auth": "t0ken"}})
			return s
		}},
		{"splunk_hec", splunkKeys, func(r *http.Request) error {
			if r.Header.Get("Authorization") != "Splunk hec-token" {
				return fmt.Errorf("authorization %q", r.Header.Get("Authorization"))
			}
			return nil
		}, func(url string) export.Sink {
			s, _ := export.NewSplunkHEC(export.SplunkOptions{HTTPOptions: export.HTTPOptions{URL: url}, Token: "hec-token"})
			return s
		}},
		{"otlp", otlpKeys, func(r *http.Request) error {
			if r.URL.Path != "/v1/logs" || r.Header.Get("Content-Type") != "application/json" {
				return fmt.Errorf("%s %s", r.URL.Path, r.Header.Get("Content-Type"))
			}
			return nil
		}, func(url string) export.Sink {
			s, _ := export.NewOTLP(export.HTTPOptions{URL: url + "/v1/logs"})
			return s
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			st, err := sqlite.Open(context.Background(), sqlite.Options{Path: filepath.Join(dir, "a.db")})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			writeRecords(t, st, 0, 40) // 60 chain entries
			rc := &receiver{t: t, fail: 3, stall: 2, keys: tc.keys, check: tc.check, got: map[string]int{}, release: make(chan struct{})}
			srv := httptest.NewServer(rc)
			defer srv.Close()
			defer close(rc.release)
			opts := export.Options{Source: st, Sink: tc.sink(srv.URL), Dir: filepath.Join(dir, "spool"), BatchSize: 16,
				PollInterval: 10 * time.Millisecond, AttemptTimeout: 100 * time.Millisecond, MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}

			// First run: the receiver fails, stalls, recovers; records keep
			// arriving meanwhile. Then the exporter is stopped mid-stream.
			x, err := export.New(opts)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { x.Run(ctx); close(done) }()
			writeRecords(t, st, 40, 20) // +30 entries during the outage
			waitFor(t, "some deliveries", func() bool { return rc.count() >= 20 })
			cancel()
			<-done
			if x.Stats().Failures < 5 {
				t.Errorf("failures = %d, want ≥ 5 (3 errors + 2 stalls)", x.Stats().Failures)
			}
			// Second run resumes from the durable cursor.
			writeRecords(t, st, 60, 10) // +15 entries while stopped
			x2, err := export.New(opts)
			if err != nil {
				t.Fatal(err)
			}
			ctx2, cancel2 := context.WithCancel(context.Background())
			defer cancel2()
			go x2.Run(ctx2)
			const want = 105 // 70 begins + 35 finishes
			waitFor(t, "every event delivered", func() bool { return rc.count() == want })
			waitFor(t, "spool drained", func() bool { return x2.Stats().SpoolBytes == 0 })
			rc.mu.Lock()
			dups := 0
			for _, n := range rc.got {
				dups += n - 1
			}
			rc.mu.Unlock()
			for i := int64(1); i <= want; i++ {
				if rc.got[fmt.Sprint("main/", i)] == 0 {
					t.Errorf("event main/%d lost", i)
				}
			}
			t.Logf("%d requests, %d events, %d duplicates (at-least-once)", rc.n.Load(), want, dups)
		})
	}
}

func TestSpoolIsBoundedAndLosesNothing(t *testing.T) {
	dir := t.TempDir()
	st, err := sqlite.Open(context.Background(), sqlite.Options{Path: filepath.Join(dir, "a.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	writeRecords(t, st, 0, 100) // 150 entries, ~1 KiB each
	var down atomic.Bool
	down.Store(true)
	rc := &receiver{t: t, keys: webhookKeys, got: map[string]int{}, release: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "down", 500)
			return
		}
		rc.ServeHTTP(w, r)
	}))
	defer srv.Close()
	sink, _ := export.NewWebhook(export.HTTPOptions{URL: srv.URL})
	x, err := export.New(export.Options{Source: st, Sink: sink, Dir: filepath.Join(dir, "spool"), BatchSize: 10, MaxSpoolBytes: 8 << 10,
		PollInterval: 5 * time.Millisecond, AttemptTimeout: time.Second, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go x.Run(ctx)
	waitFor(t, "the spool to fill", func() bool { return x.Stats().SpoolFull > 0 })
	if b := x.Stats().SpoolBytes; b > 8<<10+20<<10 { // bound + one read batch
		t.Fatalf("spool grew to %d bytes past its bound", b)
	}
	down.Store(false)
	waitFor(t, "everything delivered", func() bool { return rc.count() == 150 })
}

func TestJSONLinesFileWithCheckpoints(t *testing.T) {
	dir := t.TempDir()
	priv := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	st, err := sqlite.Open(context.Background(), sqlite.Options{Path: filepath.Join(dir, "a.db"), SigningKey: priv})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	writeRecords(t, st, 0, 4)
	if err := st.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "audit.jsonl")
	x, err := export.New(export.Options{Source: st, Sink: export.NewJSONLinesFile(out), Dir: filepath.Join(dir, "spool"), PollInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go x.Run(ctx)
	waitFor(t, "7 lines", func() bool {
		b, _ := os.ReadFile(out)
		return strings.Count(string(b), "\n") == 7
	})
	b, _ := os.ReadFile(out)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	kinds := map[string]int{}
	for _, l := range lines {
		var ev export.Event
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		kinds[ev.Kind]++
		if ev.Kind == "checkpoint" {
			var c export.CheckpointJSON
			if err := json.Unmarshal(ev.Record, &c); err != nil {
				t.Fatal(err)
			}
			if ev.IdempotencyKey != "checkpoint/main/6" || c.Size != 6 || !ed25519.Verify(priv.Public().(ed25519.PublicKey), []byte(c.Note), c.Signature) {
				t.Errorf("checkpoint event %s: %+v", ev.IdempotencyKey, c)
			}
		}
	}
	if kinds["begin"] != 4 || kinds["finish"] != 2 || kinds["checkpoint"] != 1 {
		t.Errorf("kinds %v", kinds)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func FuzzReadCheckpoints(f *testing.F) {
	f.Add([]byte(`{"idempotency_key":"checkpoint/main/6","chain":"main","chain_seq":6,"kind":"checkpoint","record":{"chain":"main","size":6,"head":"AAAA","time":"2026-11-24T10:00:00Z","key_id":"k","note":"n","signature":"AAAA"}}` + "\n"))
	f.Add([]byte(`{"kind":"begin","record":{}}` + "\n\n"))
	f.Add([]byte("not json\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cps, err := export.ReadCheckpoints(bytes.NewReader(data))
		if err != nil && len(cps) != 0 {
			t.Errorf("checkpoints returned with an error")
		}
	})
}
