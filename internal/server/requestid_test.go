package server

import (
	"regexp"
	"testing"
	"time"
)

// TestRequestIDs: ids have the published shape, are unique, and sort in
// the order they were issued across milliseconds (the audit stores rely on
// this for index locality).
func TestRequestIDs(t *testing.T) {
	shape := regexp.MustCompile(`^gh_[0-9a-v]{24}$`)
	seen := map[string]bool{}
	prev := ""
	for i := 0; i < 5; i++ {
		for j := 0; j < 1000; j++ {
			id := newRequestID()
			if !shape.MatchString(id) {
				t.Fatalf("request id %q does not match %v", id, shape)
			}
			if seen[id] {
				t.Fatalf("duplicate request id %q", id)
			}
			seen[id] = true
		}
		id := newRequestID()
		if prev != "" && id[:13] <= prev[:13] {
			t.Fatalf("id %q issued after %q does not sort after it", id, prev)
		}
		prev = id
		time.Sleep(2 * time.Millisecond)
	}
}
