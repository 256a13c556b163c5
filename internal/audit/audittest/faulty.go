package audittest

import (
	"context"
	"sync/atomic"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
)

// Faulty wraps a Store and fails writes on demand, for fail-closed and
// fail-open tests.
type Faulty struct {
	audit.Store
	FailBegin  atomic.Bool // Begin returns ErrInjected while set
	FailFinish atomic.Bool // Finish returns ErrInjected while set
	Begins     atomic.Int64
	Finishes   atomic.Int64
	// BeginHook, when set, runs at the start of every Begin (before the
	// failure check); tests use it to hold writes.
	BeginHook func(recs []*audit.Record)
}

// Begin implements audit.Store.
func (f *Faulty) Begin(ctx context.Context, recs []*audit.Record) error {
	if f.BeginHook != nil {
		f.BeginHook(recs)
	}
	f.Begins.Add(1)
	if f.FailBegin.Load() {
		return ErrInjected
	}
	return f.Store.Begin(ctx, recs)
}

// Finish implements audit.Store.
func (f *Faulty) Finish(ctx context.Context, recs []*audit.Record) error {
	f.Finishes.Add(1)
	if f.FailFinish.Load() {
		return ErrInjected
	}
	return f.Store.Finish(ctx, recs)
}
