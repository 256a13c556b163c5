// Package gctune gives Go's garbage collector a minimum headroom.
//
// Go starts a collection when the heap has grown by GOGC percent (default
// 100) of the live heap. A gateway's live heap is small, a few megabytes
// at thousands of requests a second, so the default collects twenty or
// more times a second and each collection marks the same live records
// again: a tenth or more of the gateway's CPU. A Tuner raises GOGC after
// every collection so that the next one starts no sooner than Headroom
// bytes of allocation later. It never lowers GOGC below 100: once the live
// heap is larger than the headroom (thousands of open streams), Go's
// default applies unchanged, and the memory limit (GOMEMLIMIT, or the one
// taken from the container) still caps the heap either way.
package gctune

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

// MaxPercent bounds the GOGC a Tuner sets when the live heap is tiny.
const MaxPercent = 1000

// Percent is the GOGC under which the next collection starts after
// headroom bytes of allocation, for a live heap of live bytes and scannable
// stacks and globals of roots bytes (Go's heap goal is live + (live +
// roots) * GOGC / 100). It is at least 100 and at most MaxPercent.
func Percent(live, roots, headroom uint64) int {
	base := live + roots
	if base == 0 {
		return MaxPercent
	}
	p := (headroom*100 + base - 1) / base
	return int(min(max(p, 100), MaxPercent))
}

// Tuner adjusts GOGC after each collection. Start one per process.
type Tuner struct {
	headroom uint64
	samples  []metrics.Sample // used by tune only, one call at a time
	runs     atomic.Uint64

	mu      sync.Mutex // orders SetGCPercent between tune and Stop
	stopped bool
	set     int // the GOGC last set
}

// sentinel is the object whose collection marks the end of a GC cycle. It
// is big enough to stay out of the tiny allocator, whose objects may
// never be cleaned up.
type sentinel struct{ _ [32]byte }

// Start sets GOGC for the current heap and re-tunes it after every
// collection until Stop.
func Start(headroom uint64) *Tuner {
	t := &Tuner{
		headroom: headroom,
		samples: []metrics.Sample{
			{Name: "/gc/heap/live:bytes"},
			{Name: "/gc/scan/stack:bytes"},
			{Name: "/gc/scan/globals:bytes"},
		},
	}
	t.tune()
	t.arm()
	return t
}

// Stop ends tuning and restores Go's default GOGC of 100.
func (t *Tuner) Stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.stopped {
		t.stopped = true
		debug.SetGCPercent(100)
	}
}

// Percent is the GOGC the tuner last set.
func (t *Tuner) Percent() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.set
}

// Runs is how many times the tuner has run (once at Start, then once per
// collection).
func (t *Tuner) Runs() uint64 { return t.runs.Load() }

func (t *Tuner) arm() {
	runtime.AddCleanup(new(sentinel), func(t *Tuner) {
		if t.tune() {
			t.arm()
		}
	}, t)
}

// tune runs at Start and then on the cleanup goroutine, one call at a
// time. It reports whether the tuner is still running.
func (t *Tuner) tune() bool {
	metrics.Read(t.samples)
	var v [3]uint64
	for i, s := range t.samples {
		if s.Value.Kind() == metrics.KindUint64 {
			v[i] = s.Value.Uint64()
		}
	}
	p := Percent(v[0], v[1]+v[2], t.headroom)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return false
	}
	if p != t.set {
		debug.SetGCPercent(p)
		t.set = p
	}
	t.runs.Add(1)
	return true
}
