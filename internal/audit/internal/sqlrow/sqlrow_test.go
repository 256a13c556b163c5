package sqlrow_test

import (
	"database/sql/driver"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/audit/audittest"
	"github.com/gatehouse-dev/gatehouse/internal/audit/internal/sqlrow"
)

// The SQLite store binds AppendArgs's values straight to the driver, with
// no database/sql conversion: each must already be a driver.Value.
func TestArgsAreDriverValues(t *testing.T) {
	r := audittest.Sample("r1", 0)
	r.Groups = []string{"a", "b"}
	r.Status = 429
	args := sqlrow.AppendArgs([]any{"kept"}, r)
	if len(args) != 1+len(sqlrow.Columns) || args[0] != "kept" {
		t.Fatalf("AppendArgs gave %d values (want %d after the existing one)", len(args), 1+len(sqlrow.Columns))
	}
	for i, a := range args[1:] {
		if !driver.IsValue(a) {
			t.Errorf("column %s: %T is not a driver.Value", sqlrow.Columns[i], a)
		}
	}
	if got := args[1+indexOf(t, "status")]; got != int64(429) {
		t.Errorf("status = %#v, want int64(429)", got)
	}
}

func indexOf(t *testing.T, col string) int {
	for i, c := range sqlrow.Columns {
		if c == col {
			return i
		}
	}
	t.Fatalf("no column %q", col)
	return -1
}
