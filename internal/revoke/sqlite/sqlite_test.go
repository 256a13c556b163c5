package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/revoke"
	"github.com/gatehouse-dev/gatehouse/internal/revoke/revoketest"
	"github.com/gatehouse-dev/gatehouse/internal/revoke/sqlite"
)

func TestConformance(t *testing.T) {
	revoketest.Run(t, func(t *testing.T) func() revoke.Store {
		path := filepath.Join(t.TempDir(), "state.db")
		return func() revoke.Store {
			s, err := sqlite.Open(context.Background(), sqlite.Options{Path: path})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
	})
}

func TestOpenNeedsPath(t *testing.T) {
	if _, err := sqlite.Open(context.Background(), sqlite.Options{}); err == nil {
		t.Fatal("Open without a path succeeded")
	}
}
