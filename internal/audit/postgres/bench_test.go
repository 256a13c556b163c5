package postgres_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/audit/audittest"
	"github.com/gatehouse-dev/gatehouse/internal/audit/postgres"
)

// BenchmarkRecorderBegin: Recorder.Begin on PostgreSQL (a committed
// transaction per group), concurrency 1 and 64.
//
//	GATEHOUSE_TEST_POSTGRES_DSN=... go test ./internal/audit/postgres -run '^$' -bench . -benchtime=2000x
func BenchmarkRecorderBegin(b *testing.B) {
	for _, conc := range []int{1, 64} {
		b.Run(fmt.Sprintf("c=%d", conc), func(b *testing.B) {
			s := open(b, postgres.Options{Schema: schema(b)})
			defer s.Close()
			r := audit.NewRecorder(audit.RecorderOptions{Store: s})
			var n atomic.Int64
			one := func() {
				rec := audittest.Sample(fmt.Sprint("b", n.Add(1)), 0)
				if err := r.Begin(context.Background(), rec); err != nil {
					b.Error(err)
				}
			}
			start := time.Now()
			if conc == 1 {
				for b.Loop() {
					one()
				}
			} else {
				b.SetParallelism(conc / 2)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						one()
					}
				})
			}
			_ = r.Close(context.Background())
			b.ReportMetric(float64(n.Load())/time.Since(start).Seconds(), "records/s")
		})
	}
}
