package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

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
