// Package memory is the in-process limits.Backend: counters in a map under
// one mutex, for a gateway running as a single replica. Counters are lost
// on restart (windows start over); use limits/redis for several replicas.
package memory

import (
	"context"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/limits"
)

var _ limits.Backend = (*Backend)(nil)

type entry struct {
	val     int64
	expires time.Time
	leases  map[string]time.Time // Lease members and their expiry
	nextExp time.Time            // earliest member expiry
}

// Backend is safe for concurrent use. The zero value is not usable; call New.
type Backend struct {
	mu      sync.Mutex
	m       map[string]*entry
	writes  int
	sweepAt int
}

// New returns an empty backend.
func New() *Backend { return &Backend{m: map[string]*entry{}, sweepAt: 4096} }

var _ limits.LocalBackend = (*Backend)(nil)

// LocalCounters marks the counters as in-process: Reserve and Settle never
// wait on their context.
func (*Backend) LocalCounters() {}

func (b *Backend) get(key string, now time.Time) *entry {
	e := b.m[key]
	if e != nil && !e.expires.IsZero() && !now.Before(e.expires) {
		delete(b.m, key)
		return nil
	}
	return e
}

// live drops expired lease members and returns how many remain. The scan
// runs only once the earliest member has expired.
func (e *entry) live(now time.Time) int64 {
	if len(e.leases) > 0 && !now.Before(e.nextExp) {
		e.nextExp = time.Time{}
		for id, exp := range e.leases {
			if !now.Before(exp) {
				delete(e.leases, id)
			} else if e.nextExp.IsZero() || exp.Before(e.nextExp) {
				e.nextExp = exp
			}
		}
	}
	return int64(len(e.leases))
}

// Reserve implements limits.Backend.
func (b *Backend) Reserve(ctx context.Context, id string, now time.Time, ops []limits.Op) (limits.Result, error) {
	if err := ctx.Err(); err != nil {
		return limits.Result{}, err
	}
	res := limits.Result{Values: make([]int64, len(ops)), OK: true}
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, op := range ops {
		var v int64
		if e := b.get(op.Key, now); e != nil {
			if op.Kind == limits.Lease {
				v = e.live(now)
			} else {
				v = e.val
			}
		}
		res.Values[i] = v
		if !op.Soft && op.Limit >= 0 && v+op.Amount > op.Limit {
			res.OK = false
		}
	}
	if !res.OK {
		return res, nil
	}
	for i, op := range ops {
		e := b.get(op.Key, now)
		if e == nil {
			e = &entry{}
			b.m[op.Key] = e
		}
		if op.Kind == limits.Lease {
			if op.Amount <= 0 { // peek: count without taking a slot
				res.Values[i] = e.live(now)
				continue
			}
			if e.leases == nil {
				e.leases = map[string]time.Time{}
			}
			exp := now.Add(op.TTL)
			if len(e.leases) == 0 || exp.Before(e.nextExp) {
				e.nextExp = exp
			}
			e.leases[id] = exp
			if exp := now.Add(op.TTL); exp.After(e.expires) {
				e.expires = exp
			}
			res.Values[i] = int64(len(e.leases))
			continue
		}
		e.val += op.Amount
		if exp := now.Add(op.TTL); exp.After(e.expires) {
			e.expires = exp
		}
		res.Values[i] = e.val
	}
	b.maybeSweep(now, len(ops))
	return res, nil
}

// Settle implements limits.Backend.
func (b *Backend) Settle(ctx context.Context, id string, now time.Time, ops []limits.Op) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, op := range ops {
		if op.TTL <= 0 {
			continue
		}
		e := b.get(op.Key, now)
		if op.Kind == limits.Lease {
			if e != nil {
				delete(e.leases, id)
			}
			continue
		}
		if e == nil {
			e = &entry{expires: now.Add(op.TTL)}
			b.m[op.Key] = e
		}
		e.val += op.Amount
	}
	b.maybeSweep(now, len(ops))
	return nil
}

// maybeSweep drops expired keys once enough writes have happened since the
// last sweep, keeping memory bounded by the live windows.
func (b *Backend) maybeSweep(now time.Time, n int) {
	b.writes += n
	if b.writes < b.sweepAt {
		return
	}
	b.writes = 0
	for k, e := range b.m {
		if !e.expires.IsZero() && !now.Before(e.expires) {
			delete(b.m, k)
		}
	}
	b.sweepAt = max(4096, 2*len(b.m))
}

// Len returns the number of stored keys (for tests and diagnostics).
func (b *Backend) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.m)
}
