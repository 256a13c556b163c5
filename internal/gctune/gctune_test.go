package gctune

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	const mb = 1 << 20
	for _, tc := range []struct {
		name                  string
		live, roots, headroom uint64
		want                  int
	}{
		{"small live heap gets the headroom", 6 * mb, 2 * mb, 24 * mb, 300},
		{"rounds up so the goal is at least the headroom", 7 * mb, 0, 24 * mb, 343},
		{"live heap past the headroom keeps Go's default", 40 * mb, 10 * mb, 24 * mb, 100},
		{"empty heap is capped", 0, 0, 24 * mb, MaxPercent},
		{"tiny heap is capped", 1 * mb, 0, 24 * mb, MaxPercent},
		{"no headroom is Go's default", 8 * mb, 0, 0, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Percent(tc.live, tc.roots, tc.headroom); got != tc.want {
				t.Fatalf("Percent(%d, %d, %d) = %d, want %d", tc.live, tc.roots, tc.headroom, got, tc.want)
			}
		})
	}
}

// gogc reads the runtime's current GOGC.
func gogc() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

func waitRuns(t *testing.T, tu *Tuner, n uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for tu.Runs() < n {
		if time.Now().After(deadline) {
			t.Fatalf("tuner ran %d times, want %d", tu.Runs(), n)
		}
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
}

// TestTunerFollowsTheLiveHeap runs the real runtime: the tuner re-tunes
// after collections, backs off to Go's default while a large live heap
// exists, returns when it is freed, and restores 100 on Stop.
func TestTunerFollowsTheLiveHeap(t *testing.T) {
	defer debug.SetGCPercent(gogc())
	const headroom = 32 << 20
	tu := Start(headroom)
	defer tu.Stop()
	waitRuns(t, tu, 3)
	if p := tu.Percent(); p <= 100 || gogc() != p {
		t.Fatalf("small heap: tuner set %d, runtime has %d; want the same value above 100", p, gogc())
	}

	live := make([][]byte, 64) // 64 MiB live: more than the headroom
	for i := range live {
		live[i] = make([]byte, 1<<20)
	}
	waitRuns(t, tu, tu.Runs()+2)
	if p := tu.Percent(); p != 100 || gogc() != 100 {
		t.Fatalf("large live heap: tuner set %d, runtime has %d; want 100", p, gogc())
	}
	runtime.KeepAlive(live)

	live = nil
	waitRuns(t, tu, tu.Runs()+2)
	if p := tu.Percent(); p <= 100 {
		t.Fatalf("after the heap shrank: tuner set %d, want above 100", p)
	}

	tu.Stop()
	if gogc() != 100 {
		t.Fatalf("after Stop the runtime has GOGC %d, want 100", gogc())
	}
	n := tu.Runs()
	for range 3 {
		runtime.GC()
	}
	time.Sleep(50 * time.Millisecond)
	if tu.Runs() != n || gogc() != 100 {
		t.Fatalf("tuner kept running after Stop (%d → %d runs, GOGC %d)", n, tu.Runs(), gogc())
	}
}
