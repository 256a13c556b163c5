package postgres_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/audit/audittest"
	"github.com/gatehouse-dev/gatehouse/internal/audit/postgres"
	"github.com/jackc/pgx/v5"
)

// dsn returns the test database or skips (fails under CI).
func dsn(t testing.TB) string {
	d := os.Getenv("GATEHOUSE_TEST_POSTGRES_DSN")
	if d == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("GATEHOUSE_TEST_POSTGRES_DSN is not set (CI must run the PostgreSQL tests)")
		}
		t.Skip("set GATEHOUSE_TEST_POSTGRES_DSN=postgres://postgres@127.0.0.1:5432/test?sslmode=disable to run the PostgreSQL audit tests")
	}
	return d
}

// schema creates a unique schema dropped at cleanup.
func schema(t testing.TB) string {
	d := dsn(t)
	b := make([]byte, 6)
	rand.Read(b)
	name := "audittest_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), d)
		if err != nil {
			t.Logf("cleanup: %v", err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+name+" CASCADE"); err != nil {
			t.Logf("cleanup: %v", err)
		}
	})
	return name
}

func open(t testing.TB, opts postgres.Options) *postgres.Store {
	t.Helper()
	opts.DSN = dsn(t)
	if opts.Instance == "" && !opts.ReadOnly {
		opts.Instance = "gw-test"
	}
	s, err := postgres.Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	dsn(t)
	audittest.Run(t, func(t *testing.T) audit.Store { return open(t, postgres.Options{Schema: schema(t)}) })
}

// Several replicas write at once, each on its own chain; the whole store
// verifies, and tampering with one replica's record is found.
func TestReplicasChainsVerify(t *testing.T) {
	sch := schema(t)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	ctx := context.Background()
	var stores []*postgres.Store
	for _, inst := range []string{"gw-a", "gw-b", "gw-c"} {
		stores = append(stores, open(t, postgres.Options{Schema: sch, Instance: inst, SigningKey: priv}))
	}
	if _, err := postgres.Open(ctx, postgres.Options{DSN: dsn(t), Schema: sch, Instance: "gw-a"}); err == nil || !strings.Contains(err.Error(), "already writing") {
		t.Fatalf("second writer on gw-a: %v", err)
	}
	var wg sync.WaitGroup
	for i, s := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := audit.NewRecorder(audit.RecorderOptions{Store: s, FlushInterval: 5 * time.Millisecond})
			var inner sync.WaitGroup
			for w := range 8 {
				inner.Add(1)
				go func() {
					defer inner.Done()
					for j := range 10 {
						rec := audittest.Sample(fmt.Sprintf("s%d-w%d-%d", i, w, j), 0)
						rec.Instance = fmt.Sprint("gw-", i)
						if err := r.Begin(ctx, rec); err != nil {
							t.Error(err)
							return
						}
						r.Finish(audittest.Finished(rec))
					}
				}()
			}
			inner.Wait()
			if err := r.Close(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for _, s := range stores {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	ro := open(t, postgres.Options{Schema: sch, ReadOnly: true})
	defer ro.Close()
	rep, err := ro.Verify(ctx, priv.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Records != 240 || rep.Entries != 480 || rep.Checkpoints != 3 || rep.Covered != 480 || len(rep.Unsigned) != 0 {
		t.Fatalf("report %+v", rep)
	}
	conn, err := pgx.Connect(ctx, dsn(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "UPDATE "+sch+".audit_records SET model = 'claude-opus-4-1' WHERE request_id = 's1-w3-4'"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "DELETE FROM "+sch+".audit_chain WHERE chain = 'gw-c' AND seq > 150"); err != nil {
		t.Fatal(err)
	}
	rep, err = ro.Verify(ctx, priv.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, p := range rep.Problems {
		kinds = append(kinds, p.Kind+"@"+p.Chain+"/"+p.RequestID)
	}
	got := strings.Join(kinds, " ")
	if !strings.Contains(got, "edited@gw-b/s1-w3-4") || !strings.Contains(got, "truncated@gw-c/") {
		t.Fatalf("problems %v", rep.Problems)
	}
}

func TestRetentionDropsPartitions(t *testing.T) {
	sch := schema(t)
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	s := open(t, postgres.Options{Schema: sch, Retention: 60 * 24 * time.Hour, Now: func() time.Time { return now }})
	ctx := context.Background()
	months := []time.Time{
		time.Date(2026, 7, 10, 0, 0, 0, 0, time.UTC),  // ends Aug 1: dropped (horizon Sep 25)
		time.Date(2026, 8, 31, 23, 0, 0, 0, time.UTC), // ends Sep 1: dropped
		time.Date(2026, 9, 30, 0, 0, 0, 0, time.UTC),  // ends Oct 1: kept (newer than horizon)
		time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),  // kept
	}
	for i, m := range months {
		r := audittest.Sample(fmt.Sprint("m", i), 0)
		r.Time = m
		if err := s.Begin(ctx, []*audit.Record{r}); err != nil {
			t.Fatal(err)
		}
	}
	dropped, err := s.ApplyRetention(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(dropped, ",") != "audit_records_202607,audit_records_202608" {
		t.Fatalf("dropped %v", dropped)
	}
	recs, err := s.List(ctx, audit.Filter{})
	if err != nil || len(recs) != 2 || recs[0].RequestID != "m2" {
		t.Fatalf("after retention: %v %v", recs, err)
	}
	rep, err := s.Verify(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("records removed by retention reported: %v", rep.Problems)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
