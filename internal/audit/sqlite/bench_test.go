package sqlite_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/audit/audittest"
)

// BenchmarkRecorderBegin measures Recorder.Begin (one durable begin record,
// group-committed) on a real SQLite file at concurrency 1 and 64, for both
// durability levels. Run:
//
//	go test ./internal/audit/sqlite -run '^$' -bench RecorderBegin -benchtime=2000x
func BenchmarkRecorderBegin(b *testing.B) {
	for _, sync := range []string{"crash", "always"} {
		for _, conc := range []int{1, 64} {
			b.Run(fmt.Sprintf("sync=%s/c=%d", sync, conc), func(b *testing.B) {
				benchBegin(b, sync, conc, false)
			})
		}
	}
}

// BenchmarkRecorderRequest is Begin plus an asynchronous Finish: the full
// audit cost of one request.
func BenchmarkRecorderRequest(b *testing.B) {
	for _, conc := range []int{1, 64} {
		b.Run(fmt.Sprintf("sync=crash/c=%d", conc), func(b *testing.B) {
			benchBegin(b, "crash", conc, true)
		})
	}
}

func benchBegin(b *testing.B, sync string, conc int, finish bool) {
	s := openTemp(b, sync)
	defer s.Close()
	r := audit.NewRecorder(audit.RecorderOptions{Store: s})
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(max(conc/max(1, testingProcs()), 1))
	start := time.Now()
	one := func() {
		i := n.Add(1)
		rec := audittest.Sample(fmt.Sprintf("b%d", i), 0)
		if err := r.Begin(context.Background(), rec); err != nil {
			b.Error(err)
			return
		}
		if finish {
			r.Finish(audittest.Finished(rec))
		}
	}
	b.ResetTimer()
	if conc == 1 {
		for b.Loop() {
			one()
		}
	} else {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				one()
			}
		})
	}
	if err := r.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	el := time.Since(start)
	b.ReportMetric(float64(n.Load())/el.Seconds(), "records/s")
	st := r.Stats()
	if st.BeginBatches > 0 {
		b.ReportMetric(float64(st.BeginRecords)/float64(st.BeginBatches), "recs/commit")
	}
}

// BenchmarkStoreBegin is the store alone: one single-record transaction
// per op, no Recorder.
func BenchmarkStoreBegin(b *testing.B) {
	s := openTemp(b, "crash")
	defer s.Close()
	i := 0
	for b.Loop() {
		i++
		if err := s.Begin(context.Background(), []*audit.Record{audittest.Sample(fmt.Sprint("s", i), 0)}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStoreBeginBatch64 is the ingestion path (a journal or the
// Recorder under load): 64 records per transaction; ns/op is per record.
func BenchmarkStoreBeginBatch64(b *testing.B) {
	s := openTemp(b, "crash")
	defer s.Close()
	batch := make([]*audit.Record, 0, 64)
	i := 0
	start := time.Now()
	for b.Loop() {
		i++
		batch = append(batch, audittest.Sample(fmt.Sprint("s", i), 0))
		if len(batch) == cap(batch) {
			if err := s.Begin(context.Background(), batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	b.ReportMetric(float64(i)/time.Since(start).Seconds(), "records/s")
}

// BenchmarkStoreBatch measures the store alone as the journal's ingester
// drives it: one transaction per batch of final records (row, indexes and
// chain entry each). ns/op is per record.
//
//	go test ./internal/audit/sqlite -run '^$' -bench StoreBatch
func BenchmarkStoreBatch(b *testing.B) {
	for _, size := range []int{64, 512} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			s := openTemp(b, "crash")
			defer s.Close()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if i%size == 0 {
					batch := make([]*audit.Record, size)
					for k := range batch {
						batch[k] = audittest.Finished(audittest.Sample(fmt.Sprintf("gh_%012d", i+k), time.Duration(i+k)*time.Millisecond))
					}
					if err := s.Begin(context.Background(), batch); err != nil {
						b.Fatal(err)
					}
				}
				i++
			}
		})
	}
}
