package redis_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/anthropic"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/limits"
	"github.com/gatehouse-dev/gatehouse/internal/limits/limitstest"
	"github.com/gatehouse-dev/gatehouse/internal/limits/redis"
	"github.com/gatehouse-dev/gatehouse/internal/policy"
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

// TestUnreachable: a Redis that is down surfaces as an error quickly, and
// the engine applies each policy's fail mode, logging and counting it.
func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there any more
	c, err := redis.NewClient("redis://"+addr+"/0", "", 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b, _ := redis.New(redis.Options{Client: c})
	set, _ := policy.New([]policy.Policy{
		{Name: "strict", Match: policy.Match{Roles: []string{"strict"}}, Limits: policy.Limits{RequestsPerMinute: 10}},
		{Name: "lenient", FailOpen: true, Limits: policy.Limits{RequestsPerMinute: 10}},
	}, nil)
	var log bytes.Buffer
	eng, err := limits.NewEngine(limits.Options{Policies: set, Backend: b, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, err = eng.Admit(ctx, identity.Principal{Key: "k", Roles: []string{"strict"}}, limits.Request{Model: "claude-haiku-4-5"})
	if d, ok := err.(*limits.Denial); !ok || d.Status != 503 {
		t.Fatalf("fail-closed: %v", err)
	}
	r, err := eng.Admit(ctx, identity.Principal{Key: "k2"}, limits.Request{Model: "claude-haiku-4-5"})
	if err != nil {
		t.Fatalf("fail-open: %v", err)
	}
	r.Settle(ctx, anthropic.Usage{InputTokens: 5})
	if s := eng.Stats(); s.FailedClosed != 1 || s.FailedOpen != 1 || s.SettleErrors != 1 || s.BackendErrors != 3 {
		t.Fatalf("stats %+v", s)
	}
	if !strings.Contains(log.String(), "limits store unavailable") {
		t.Fatalf("no log line:\n%s", log.String())
	}
}

func TestCooldown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, _ := redis.NewClient("redis://"+addr+"/0", "", 200*time.Millisecond)
	defer c.Close()
	now := time.Unix(1_800_000_000, 0)
	b, _ := redis.New(redis.Options{Client: c, Cooldown: time.Second, Now: func() time.Time { return now }})
	ops := []limits.Op{{Key: "k", Amount: 1, Limit: 1, TTL: time.Minute}}
	ctx := context.Background()
	if _, err := b.Reserve(ctx, "a", now, ops); err == nil || errors.Is(err, redis.ErrCoolingDown) {
		t.Fatalf("first call: %v", err)
	}
	if _, err := b.Reserve(ctx, "b", now, ops); !errors.Is(err, redis.ErrCoolingDown) {
		t.Fatalf("second call should fail fast: %v", err)
	}
	if err := b.Settle(ctx, "b", now, ops); !errors.Is(err, redis.ErrCoolingDown) {
		t.Fatalf("settle should fail fast: %v", err)
	}
	now = now.Add(1100 * time.Millisecond)
	if _, err := b.Reserve(ctx, "c", now, ops); err == nil || errors.Is(err, redis.ErrCoolingDown) {
		t.Fatalf("after the cooldown Redis is tried again: %v", err)
	}
}
