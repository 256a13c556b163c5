package redis_test

import (
	"context"
	"os"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/limits"
	"github.com/gatehouse-dev/gatehouse/internal/limits/limitstest"
	"github.com/gatehouse-dev/gatehouse/internal/limits/redis"
)

// newBackend connects to GATEHOUSE_TEST_REDIS_URL. Without it the test is
// skipped locally and fails in CI (CI must run it).
func newBackend(t testing.TB) *redis.Backend {
	t.Helper()
	url := os.Getenv("GATEHOUSE_TEST_REDIS_URL")
	if url == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("GATEHOUSE_TEST_REDIS_URL is not set; CI must run the Redis conformance suite")
		}
		t.Skip("set GATEHOUSE_TEST_REDIS_URL=redis://127.0.0.1:6379/0 to run the Redis conformance suite")
	}
	c, err := redis.NewClient(url, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	b, err := redis.New(redis.Options{Client: c})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Ping(context.Background()); err != nil {
		t.Fatalf("redis at %s: %v", url, err)
	}
	return b
}

func TestConformance(t *testing.T) {
	b := newBackend(t)
	limitstest.Run(t, func(t *testing.T) limits.Backend { return b })
}

func BenchmarkAdmitSettle(b *testing.B) { limitstest.Bench(b, newBackend(b)) }
