package revoke

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

// Options configures Start. Zero values are documented per field.
type Options struct {
	// Store is where revocations live. Required. The Snapshot does not
	// close it.
	Store Store
	// Logger: nil discards.
	Logger *slog.Logger
	// Now: nil is time.Now.
	Now func() time.Time
	// PollInterval is how often the store's change counter is read (one
	// small query). Default 1s. With a Watcher store (PostgreSQL) changes
	// normally arrive at once by notification; the poll is the fallback.
	PollInterval time.Duration
	// ReloadInterval is how often the whole list is reloaded whatever the
	// counter says (the safety net). Default 1m.
	ReloadInterval time.Duration
	// FailClosedAfter: when the store could not be read for this long,
	// every request is refused until it can. 0 (default): keep enforcing
	// the last revocations loaded, however old.
	FailClosedAfter time.Duration
	// Observe, when set, is called with every principal Check lets
	// through (the Entra sync uses it to learn which users to poll). It
	// must be cheap and must not block.
	Observe func(identity.Principal)
	// Guard, when set, is one more refusal rule consulted for principals
	// no revocation covers (the Entra sync's staleness bound). A non-nil
	// error refuses the request. It must be cheap.
	Guard func(identity.Principal) error
	// OnChange, when set, is called after a new set of revocations (a new
	// change counter) is in force.
	OnChange func(version int64)
	// OnPropagated, when set, receives for each revocation that arrived
	// with a reload how long after its creation it took effect here (the
	// gatehouse_revocation_propagation_seconds metric).
	OnPropagated func(delay time.Duration)
}

// Snapshot is the in-memory copy of the revocations in force. Check is a
// lock-free lookup; background work keeps the copy current. It implements
// authn.Revocations.
type Snapshot struct {
	opts   Options
	log    *slog.Logger
	now    func() time.Time
	view   atomic.Pointer[view]
	lastOK atomic.Int64 // unix ns of the last successful read of the store
	kick   chan struct{}
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed sync.Once
}

// Start loads the revocations once (an error here means the store cannot
// be read: the gateway must not start without them) and keeps them
// current in the background until Close.
func Start(ctx context.Context, opts Options) (*Snapshot, error) {
	if opts.Store == nil {
		return nil, errors.New("revoke: Options.Store is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Second
	}
	if opts.ReloadInterval <= 0 {
		opts.ReloadInterval = time.Minute
	}
	s := &Snapshot{opts: opts, log: opts.Logger, now: opts.Now, kick: make(chan struct{}, 1)}
	s.view.Store(&view{version: -1})
	if err := s.Refresh(ctx); err != nil {
		return nil, err
	}
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	s.wg.Add(1)
	go s.run(bg)
	if w, ok := opts.Store.(Watcher); ok {
		s.wg.Add(1)
		go s.watch(bg, w)
	}
	return s, nil
}

// Check returns a *RevokedError when p is revoked, nil otherwise. It does
// no I/O.
func (s *Snapshot) Check(_ context.Context, p identity.Principal) error {
	clk := clock{f: s.now}
	if s.opts.FailClosedAfter > 0 && clk.now()-s.lastOK.Load() > int64(s.opts.FailClosedAfter) {
		return &RevokedError{Kind: "state_unavailable"}
	}
	if id, kind, ok := s.view.Load().match(&p, &clk); ok {
		return &RevokedError{ID: id, Kind: kind}
	}
	if s.opts.Guard != nil {
		if err := s.opts.Guard(p); err != nil {
			return err
		}
	}
	if s.opts.Observe != nil {
		s.opts.Observe(p)
	}
	return nil
}

// Version is the change counter of the revocations in force.
func (s *Snapshot) Version() int64 { return s.view.Load().version }

// Active is the number of revocations in force when last loaded.
func (s *Snapshot) Active() int { return s.view.Load().count }

// Refresh reloads the whole list from the store now.
func (s *Snapshot) Refresh(ctx context.Context) error {
	ver, err := s.opts.Store.Version(ctx)
	if err != nil {
		return fmt.Errorf("revoke: reading the change counter: %w", err)
	}
	list, err := s.opts.Store.List(ctx, false)
	if err != nil {
		return fmt.Errorf("revoke: loading revocations: %w", err)
	}
	now := s.now()
	s.lastOK.Store(now.UnixNano())
	nv := buildView(ver, list, now)
	old := s.view.Swap(nv)
	if old.version != ver {
		s.log.Info("revocations loaded", slog.Int64("version", ver), slog.Int("active", nv.count))
		if s.opts.OnChange != nil {
			s.opts.OnChange(ver)
		}
		if s.opts.OnPropagated != nil && !old.loaded.IsZero() {
			for _, r := range list {
				if r.Created.After(old.loaded) {
					s.opts.OnPropagated(now.Sub(r.Created))
				}
			}
		}
	}
	return nil
}

// Changed asks the background loop to reload soon (coalesced).
func (s *Snapshot) Changed() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *Snapshot) run(ctx context.Context) {
	defer s.wg.Done()
	poll := time.NewTicker(s.opts.PollInterval)
	defer poll.Stop()
	reload := time.NewTicker(s.opts.ReloadInterval)
	defer reload.Stop()
	failing := false
	for {
		var err error
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
			err = s.Refresh(ctx)
		case <-reload.C:
			err = s.Refresh(ctx)
		case <-poll.C:
			var ver int64
			if ver, err = s.opts.Store.Version(ctx); err == nil {
				if ver != s.Version() {
					err = s.Refresh(ctx)
				} else {
					s.lastOK.Store(s.now().UnixNano())
				}
			}
		}
		if ctx.Err() != nil {
			return
		}
		switch {
		case err != nil && !failing:
			failing = true
			s.log.Error("revocations: cannot read the state store; enforcing the last revocations loaded", slog.Any("error", err), slog.Int64("version", s.Version()))
		case err == nil && failing:
			failing = false
			s.log.Info("revocations: state store readable again", slog.Int64("version", s.Version()))
		}
	}
}

// watch keeps a push subscription open, reloading after every
// notification and after every (re)connection.
func (s *Snapshot) watch(ctx context.Context, w Watcher) {
	defer s.wg.Done()
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := w.Watch(ctx, func() { s.Changed(); backoff = 100 * time.Millisecond }, s.Changed)
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("revocations: change notifications interrupted; reconnecting (polling continues)", slog.Any("error", err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// Close stops the background work. It does not close the store.
func (s *Snapshot) Close() error {
	s.closed.Do(func() {
		if s.cancel != nil {
			s.cancel()
		}
		s.wg.Wait()
	})
	return nil
}
