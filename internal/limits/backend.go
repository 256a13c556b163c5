package limits

import (
	"context"
	"time"
)

// Kind says how a backend stores one counter.
type Kind uint8

const (
	// Counter is an integer that expires as a whole (a fixed window:
	// requests, tokens or nano-dollars in one minute, day or month).
	Counter Kind = iota
	// Lease is a set of reservation IDs, each expiring on its own after
	// the op's TTL; its value is the number of live members (concurrent
	// requests). A crashed gateway's slots free themselves.
	Lease
)

// Op is one counter touched by a reservation. The engine builds the keys
// (window included) and the backend applies the ops atomically.
type Op struct {
	Key  string
	Kind Kind
	// Amount to add on Reserve (1 for a Lease). On Settle: the correction
	// to add to a Counter (may be negative); a Lease member is removed.
	Amount int64
	// Limit: Reserve admits only if value+Amount <= Limit. A negative
	// Limit never refuses (count only).
	Limit int64
	// Soft ops are counted but never refuse (shadow mode); the engine
	// finds out from Values whether they went over.
	Soft bool
	// TTL: how long a Counter key lives after this write (its window end
	// plus the longest request), or a Lease member's lifetime.
	TTL time.Duration
}

// Result is the outcome of Reserve.
type Result struct {
	// OK is false when some non-soft op would exceed its limit; then
	// nothing was changed.
	OK bool
	// Values holds, per op, the value before the reservation when !OK and
	// after it when OK.
	Values []int64
}

// Backend stores counters. Implementations: limits/memory (one process),
// limits/redis (shared by replicas). Both are verified by limits/limitstest.
//
// Reserve must be atomic across all ops of one call: either every op is
// applied or (when a non-soft op would exceed its limit) none is, and no
// concurrent Reserve can observe or interleave with a partial state. That
// is what makes overspending impossible.
type Backend interface {
	// Reserve applies ops for reservation id at time now.
	Reserve(ctx context.Context, id string, now time.Time, ops []Op) (Result, error)
	// Settle adds each Counter op's Amount (creating the key with the op's
	// TTL if it has expired or never existed) and removes id from each
	// Lease op's key. Ops with a non-positive TTL are skipped.
	Settle(ctx context.Context, id string, now time.Time, ops []Op) error
}

// LocalBackend is implemented by backends that answer in-process without
// waiting on I/O (memory). The engine settles on them without a deadline
// of its own, which saves a timer per request.
type LocalBackend interface {
	Backend
	LocalCounters()
}
