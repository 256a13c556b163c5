package sqlite

import (
	"context"
	"path/filepath"
	"testing"
)

// TestConnectionsKeepASmallPageCache pins the page cache of every pooled
// connection (see the comment in Open): a larger one here is memory the
// audit store's writer grows into while the gateway runs.
func TestConnectionsKeepASmallPageCache(t *testing.T) {
	s, err := Open(context.Background(), Options{Path: filepath.Join(t.TempDir(), "state.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	// Hold both pooled connections at once so each is checked.
	for range 2 {
		c, err := s.db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var kib int
		if err := c.QueryRowContext(ctx, "PRAGMA cache_size").Scan(&kib); err != nil {
			t.Fatal(err)
		}
		if kib != -256 {
			t.Fatalf("connection cache_size = %d, want -256 (256 KiB)", kib)
		}
	}
}
