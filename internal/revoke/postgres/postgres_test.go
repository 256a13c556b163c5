package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-dev/gatehouse/internal/revoke"
	"github.com/gatehouse-dev/gatehouse/internal/revoke/postgres"
	"github.com/gatehouse-dev/gatehouse/internal/revoke/revoketest"
)

// dsn returns GATEHOUSE_TEST_POSTGRES_DSN, failing in CI and skipping
// elsewhere when it is unset.
func dsn(t *testing.T) string {
	t.Helper()
	d := os.Getenv("GATEHOUSE_TEST_POSTGRES_DSN")
	if d == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("GATEHOUSE_TEST_POSTGRES_DSN is not set; CI must run the PostgreSQL tests")
		}
		t.Skip("GATEHOUSE_TEST_POSTGRES_DSN is not set (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable); skipping PostgreSQL tests")
	}
	return d
}

// schema returns a unique schema for t, dropped at the end.
func schema(t *testing.T, d string) string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	s := "gh_revoke_t_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, d)
		if err != nil {
			return
		}
		defer c.Close(ctx)
		c.Exec(ctx, `DROP SCHEMA IF EXISTS `+s+` CASCADE`)
	})
	return s
}

func opener(t *testing.T) func() revoke.Store {
	d := dsn(t)
	sch := schema(t, d)
	return func() revoke.Store {
		s, err := postgres.Open(context.Background(), postgres.Options{DSN: d, Schema: sch})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
}

func TestConformance(t *testing.T) {
	revoketest.Run(t, opener)
}

// TestNotifyAlone: with polling and periodic reload effectively off, a
// revocation still reaches another replica's snapshot by LISTEN/NOTIFY.
func TestNotifyAlone(t *testing.T) {
	open := opener(t)
	writer := open()
	var snaps []*revoke.Snapshot
	for range 2 {
		s, err := revoke.Start(context.Background(), revoke.Options{Store: open(), PollInterval: time.Hour, ReloadInterval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		snaps = append(snaps, s)
	}
	time.Sleep(200 * time.Millisecond) // let both LISTENs start
	p := revoketest.Principal("0c0c0c0c-1d1d-4e2e-8f3f-404040404040", "n@contoso.example")
	if _, err := writer.Add(context.Background(), revoke.Revocation{Kind: revoke.KindUser, Subject: p.ObjectID, Reason: "notify"}); err != nil {
		t.Fatal(err)
	}
	for i, s := range snaps {
		d := revoketest.WaitRevoked(t, s, p, 5*time.Second)
		t.Logf("replica %d: revocation in force after %v (NOTIFY only)", i, d.Round(time.Microsecond))
	}
}

// TestStoreSurvivesReconnect: a killed backend connection is replaced on
// the next call.
func TestStoreSurvivesReconnect(t *testing.T) {
	d := dsn(t)
	app := schema(t, d) // unique name, reused as application_name
	sep := "?"
	if strings.Contains(d, "?") {
		sep = "&"
	}
	ctx := context.Background()
	s, err := postgres.Open(ctx, postgres.Options{DSN: d + sep + "application_name=" + app, Schema: app})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := pgx.Connect(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var killed int
	if err := c.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&killed); err != nil {
		t.Fatal(err)
	}
	if killed != 1 {
		t.Fatalf("terminated %d backends, want the store's one", killed)
	}
	// The first call may see the dead connection; the next must work.
	_, _ = s.Version(ctx)
	if _, err := s.Add(ctx, revoke.Revocation{Kind: revoke.KindAll, Reason: "after reconnect"}); err != nil {
		t.Fatalf("store did not reconnect: %v", err)
	}
	if v, err := s.Version(ctx); err != nil || v != 1 {
		t.Fatalf("Version after reconnect: %d, %v", v, err)
	}
}

func TestBadSchemaAndDSN(t *testing.T) {
	ctx := context.Background()
	if _, err := postgres.Open(ctx, postgres.Options{DSN: "postgres://u:sekret@127.0.0.1:1/db", Schema: "Robert'); DROP"}); err == nil || !strings.Contains(err.Error(), "schema") {
		t.Errorf("bad schema: %v", err)
	}
	_, err := postgres.Open(ctx, postgres.Options{DSN: "postgres://u:sekret@%zz/db"})
	if err == nil || strings.Contains(err.Error(), "sekret") {
		t.Errorf("bad DSN: %v (must fail without the password)", err)
	}
	_, err = postgres.Open(ctx, postgres.Options{DSN: "postgres://u:sekret@127.0.0.1:1/db?connect_timeout=1"})
	if err == nil || strings.Contains(err.Error(), "sekret") {
		t.Errorf("unreachable: %v (must fail without the password)", err)
	}
}
