package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// ErrUnavailable is returned by Recorder.Begin when the record could not be
// written durably and the recorder fails closed. The gateway answers
// 503 api_error and does not forward the request. The store's error is
// wrapped for logging; it is never shown to clients.
var ErrUnavailable = errors.New("audit store unavailable")

// ErrNoRequestID is returned by Begin for a record without a request id
// (a programming error, not a store failure).
var ErrNoRequestID = errors.New("audit record has no request_id")

// ErrClosed is wrapped (together with ErrUnavailable) by Begin after Close.
var ErrClosed = errors.New("audit recorder closed")

// RecorderOptions configures a Recorder. Zero values are the documented
// defaults.
type RecorderOptions struct {
	// Store is where records are written. Required. The Recorder does not
	// close it.
	Store Store
	// FailOpen serves requests when the store cannot be written: Begin
	// returns nil, the gap is counted in Stats().Gaps and logged. Default
	// false: fail closed (Begin returns ErrUnavailable).
	FailOpen bool
	// FlushInterval bounds how long a finished record waits before its batch
	// is written. Default 100ms.
	FlushInterval time.Duration
	// MaxBatch caps the records written in one store transaction.
	// Default 512.
	MaxBatch int
	// WriteTimeout bounds one store call (detached from request contexts).
	// Default 5s. Not applied to a LocalStore.
	WriteTimeout time.Duration
	// Logger receives one line per failed write. Default: discard.
	Logger *slog.Logger
	// Now stamps Record.Time when the caller left it zero. Default time.Now.
	Now Clock
}

// RecorderStats is a snapshot of the Recorder's counters, for metrics.
type RecorderStats struct {
	BeginQueue  int // Begin calls waiting for the writer
	FinishQueue int // finished records not yet written

	BeginBatches  uint64 // store Begin transactions that succeeded
	BeginRecords  uint64 // records written by Begin
	FinishBatches uint64 // store Finish transactions that succeeded
	FinishRecords uint64 // records written by Finish

	WriteSeconds     float64       // total time spent in successful store writes
	LastWriteLatency time.Duration // duration of the last store write
	MaxWriteLatency  time.Duration // longest store write so far

	Failures uint64 // store writes that failed (begin and finish, per attempt)
	Refused  uint64 // fail-closed: Begin calls answered with ErrUnavailable
	Gaps     uint64 // fail-open: requests served without a durable begin record
	Dropped  uint64 // finished records without a request id, discarded
}

// Recorder writes audit records through a Store with group commit: concurrent
// Begin calls share one transaction, finished records are batched. It is
// safe for concurrent use.
type Recorder struct {
	store      Store
	failOpen   bool
	interval   time.Duration
	maxBatch   int
	timeout    time.Duration // per store write; 0: none (a LocalStore)
	log        *slog.Logger
	now        Clock
	kick       chan struct{} // wakes the finish loop early
	beginKick  chan struct{} // hands queued begins to the begin loop
	quitBegin  chan struct{}
	quitFinish chan struct{}
	beginDone  chan struct{}
	finishDone chan struct{}

	// Begin group commit: at most one writer (the "leader") at a time;
	// callers arriving meanwhile queue in begins and are written together
	// in the next transaction.
	qmu     sync.Mutex
	idle    *sync.Cond // signalled when writing turns false
	begins  []*beginReq
	writing bool
	closed  bool

	fmu      sync.Mutex
	pending  []*Record
	closeCtx context.Context
	closeErr error

	beginBatches, beginRecords, finishBatches, finishRecords atomic.Uint64
	failures, refused, gaps, dropped                         atomic.Uint64
	writeNanos, lastWrite, maxWrite                          atomic.Int64
	beginQueue                                               atomic.Int64
}

type beginReq struct {
	rec  *Record
	done chan error
}

// NewRecorder starts a Recorder's writer goroutines. Call Close to flush
// and stop them.
func NewRecorder(opts RecorderOptions) *Recorder {
	if opts.Store == nil {
		panic("audit: RecorderOptions.Store is nil")
	}
	r := &Recorder{
		store:      opts.Store,
		failOpen:   opts.FailOpen,
		interval:   opts.FlushInterval,
		maxBatch:   opts.MaxBatch,
		timeout:    opts.WriteTimeout,
		log:        opts.Logger,
		now:        opts.Now,
		kick:       make(chan struct{}, 1),
		beginKick:  make(chan struct{}, 1),
		quitBegin:  make(chan struct{}),
		quitFinish: make(chan struct{}),
		beginDone:  make(chan struct{}),
		finishDone: make(chan struct{}),
	}
	if r.interval <= 0 {
		r.interval = 100 * time.Millisecond
	}
	if r.maxBatch <= 0 {
		r.maxBatch = 512
	}
	if r.timeout <= 0 {
		r.timeout = 5 * time.Second
	}
	if _, ok := r.store.(LocalStore); ok {
		r.timeout = 0
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.now == nil {
		r.now = time.Now
	}
	r.idle = sync.NewCond(&r.qmu)
	go r.beginLoop()
	go r.finishLoop()
	return r
}

// Begin durably writes rec (State begun before forwarding, or a complete
// denied record) and returns once the store has committed it at its
// durability level. Concurrent calls share one transaction.
//
// On success rec.Seq is set. If the store fails, Begin returns an error
// wrapping ErrUnavailable (fail-closed) or nil with the gap counted
// (fail-open). If ctx ends while the record waits for another caller's
// transaction, Begin returns ctx.Err(): the request must not be forwarded,
// though the record may still be written. A caller that finds no
// transaction in progress writes inline and returns when that write ends
// (bounded by WriteTimeout). Nothing keeps rec once Begin returns (a
// queued record is copied first); the caller keeps ownership of it.
func (r *Recorder) Begin(ctx context.Context, rec *Record) error {
	if rec.RequestID == "" {
		return ErrNoRequestID
	}
	if rec.Time.IsZero() {
		rec.Time = r.now().UTC()
	}
	if rec.State == "" {
		rec.State = StateBegun
	}
	req := &beginReq{rec: rec, done: make(chan error, 1)}

	r.qmu.Lock()
	if r.closed {
		r.qmu.Unlock()
		return r.unavailable(fmt.Errorf("%w: %w", ErrUnavailable, ErrClosed), 1)
	}
	inline := !r.writing
	if !inline {
		// Queued behind another write: this Begin may return (ctx) before
		// its record is written, and the caller keeps its record, so the
		// write uses a copy. Inline, the caller waits for its own write.
		cp := *rec
		req.rec = &cp
	}
	r.begins = append(r.begins, req)
	r.beginQueue.Add(1)
	if inline {
		// Nobody is writing: this caller writes its own record inline
		// (no goroutine hand-off at low concurrency) and leaves whatever
		// queued meanwhile to the begin loop.
		r.writing = true
		r.qmu.Unlock()
		r.drainBegins(true)
	} else {
		r.qmu.Unlock()
	}

	select {
	case err := <-req.done:
		if err == nil {
			rec.Seq = req.rec.Seq
		}
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// drainBegins writes queued begins in batches while the caller holds the
// writing flag. Inline (a Begin caller) it writes one batch and hands the
// rest to the begin loop; otherwise it writes until the queue is empty.
func (r *Recorder) drainBegins(inline bool) {
	for {
		r.qmu.Lock()
		if len(r.begins) == 0 {
			r.writing = false
			r.idle.Broadcast()
			r.qmu.Unlock()
			return
		}
		n := min(len(r.begins), r.maxBatch)
		batch := r.begins[:n:n]
		r.begins = r.begins[n:]
		if len(r.begins) == 0 {
			r.begins = nil
		}
		r.qmu.Unlock()
		r.writeBegins(batch)
		if inline {
			r.qmu.Lock()
			if len(r.begins) == 0 {
				r.writing = false
				r.idle.Broadcast()
				r.qmu.Unlock()
				return
			}
			r.qmu.Unlock()
			r.beginKick <- struct{}{} // writing stays true: the loop owns it now
			return
		}
	}
}

// unavailable applies the fail mode to a failed begin of n records.
func (r *Recorder) unavailable(err error, n int) error {
	if r.failOpen {
		r.gaps.Add(uint64(n))
		return nil
	}
	r.refused.Add(uint64(n))
	return err
}

func (r *Recorder) beginLoop() {
	defer close(r.beginDone)
	for {
		select {
		case <-r.beginKick:
			r.drainBegins(false)
		case <-r.quitBegin:
			return
		}
	}
}

func (r *Recorder) writeBegins(batch []*beginReq) {
	r.beginQueue.Add(-int64(len(batch)))
	recs := make([]*Record, len(batch))
	for i, req := range batch {
		recs[i] = req.rec
	}
	err := r.write(true, recs)
	if err != nil && len(batch) > 1 {
		// Isolate a bad record so it cannot fail its neighbours.
		for _, req := range batch {
			req.done <- r.beginResult(r.write(true, []*Record{req.rec}))
		}
		return
	}
	res := r.beginResult(err)
	for _, req := range batch {
		req.done <- res
	}
}

func (r *Recorder) beginResult(err error) error {
	if err == nil {
		return nil
	}
	return r.unavailable(fmt.Errorf("%w: %w", ErrUnavailable, err), 1)
}

// write performs one store call with a detached, bounded context and keeps
// the counters.
func (r *Recorder) write(begin bool, recs []*Record) error {
	ctx := context.Background()
	if r.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.timeout)
		defer cancel()
	}
	t0 := time.Now()
	var err error
	if begin {
		err = r.store.Begin(ctx, recs)
	} else {
		err = r.store.Finish(ctx, recs)
	}
	d := time.Since(t0)
	r.lastWrite.Store(int64(d))
	for {
		m := r.maxWrite.Load()
		if int64(d) <= m || r.maxWrite.CompareAndSwap(m, int64(d)) {
			break
		}
	}
	if err != nil {
		r.failures.Add(1)
		op := "finish"
		if begin {
			op = "begin"
		}
		attrs := []any{slog.String("op", op), slog.Int("records", len(recs)), slog.Any("err", err)}
		if begin && r.failOpen {
			attrs = append(attrs, slog.Uint64("gaps_total", r.gaps.Load()+uint64(len(recs))))
			r.log.Error("audit write failed; fail-open: serving without a durable record", attrs...)
		} else {
			r.log.Error("audit write failed", attrs...)
		}
		return err
	}
	r.writeNanos.Add(int64(d))
	if begin {
		r.beginBatches.Add(1)
		r.beginRecords.Add(uint64(len(recs)))
	} else {
		r.finishBatches.Add(1)
		r.finishRecords.Add(uint64(len(recs)))
	}
	return nil
}

// Finish queues rec, whose State, Status, Usage and timings the caller has
// set, to be written asynchronously in a batch. The Recorder owns rec from
// now on: the caller must not touch it again. A failed write is retried
// with backoff; Close flushes what is left.
func (r *Recorder) Finish(rec *Record) {
	if rec.RequestID == "" {
		// It could never be written and would block the queue behind it.
		r.dropped.Add(1)
		r.log.Error("audit finish without request_id dropped (a gateway bug)")
		return
	}
	if rec.Time.IsZero() {
		rec.Time = r.now().UTC()
	}
	r.qmu.Lock()
	closed := r.closed
	r.qmu.Unlock()
	if closed {
		// Late finish after Close: write it directly, best effort.
		if err := r.write(false, []*Record{rec}); err != nil {
			r.log.Error("audit finish after close lost", slog.String("request_id", rec.RequestID))
		}
		return
	}
	r.fmu.Lock()
	r.pending = append(r.pending, rec)
	n := len(r.pending)
	r.fmu.Unlock()
	if n >= r.maxBatch {
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
}

func (r *Recorder) finishLoop() {
	defer close(r.finishDone)
	t := time.NewTicker(r.interval)
	defer t.Stop()
	backoff := time.Duration(0)
	var retryAt time.Time
	for {
		select {
		case <-t.C:
		case <-r.kick:
		case <-r.quitFinish:
			r.finalFlush()
			return
		}
		if !retryAt.IsZero() && time.Now().Before(retryAt) {
			continue
		}
		if err := r.flushFinishes(); err != nil {
			backoff = min(max(2*backoff, r.interval), 5*time.Second)
			retryAt = time.Now().Add(backoff)
		} else {
			backoff, retryAt = 0, time.Time{}
		}
	}
}

// flushFinishes writes everything pending in MaxBatch chunks. A failed
// chunk and everything after it go back to the front of the queue.
func (r *Recorder) flushFinishes() error {
	r.fmu.Lock()
	todo := r.pending
	r.pending = nil
	r.fmu.Unlock()
	for len(todo) > 0 {
		n := min(len(todo), r.maxBatch)
		if err := r.write(false, todo[:n]); err != nil {
			r.fmu.Lock()
			r.pending = append(todo, r.pending...)
			r.fmu.Unlock()
			return err
		}
		todo = todo[n:]
	}
	return nil
}

func (r *Recorder) finalFlush() {
	backoff := 10 * time.Millisecond
	for {
		err := r.flushFinishes()
		if err == nil {
			return
		}
		select {
		case <-r.closeCtx.Done():
			r.fmu.Lock()
			n := len(r.pending)
			r.fmu.Unlock()
			r.closeErr = fmt.Errorf("audit: %d finished records not written: %w", n, err)
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// Close stops accepting Begin calls, writes every queued record and stops
// the writers. It retries failed finish writes until ctx ends, then reports
// how many records it could not write. It does not close the Store.
func (r *Recorder) Close(ctx context.Context) error {
	r.qmu.Lock()
	if r.closed {
		r.qmu.Unlock()
		return nil
	}
	r.closed = true
	// Wait for the current writer, then write whatever is still queued.
	for r.writing || len(r.begins) > 0 {
		if r.writing {
			r.idle.Wait()
			continue
		}
		r.writing = true
		r.qmu.Unlock()
		r.drainBegins(false)
		r.qmu.Lock()
	}
	r.qmu.Unlock()
	close(r.quitBegin)
	<-r.beginDone
	r.closeCtx = ctx
	close(r.quitFinish)
	<-r.finishDone
	return r.closeErr
}

// Stats returns a snapshot of the counters.
func (r *Recorder) Stats() RecorderStats {
	r.fmu.Lock()
	fq := len(r.pending)
	r.fmu.Unlock()
	return RecorderStats{
		BeginQueue:       int(max(r.beginQueue.Load(), 0)),
		FinishQueue:      fq,
		BeginBatches:     r.beginBatches.Load(),
		BeginRecords:     r.beginRecords.Load(),
		FinishBatches:    r.finishBatches.Load(),
		FinishRecords:    r.finishRecords.Load(),
		WriteSeconds:     time.Duration(r.writeNanos.Load()).Seconds(),
		LastWriteLatency: time.Duration(r.lastWrite.Load()),
		MaxWriteLatency:  time.Duration(r.maxWrite.Load()),
		Failures:         r.failures.Load(),
		Refused:          r.refused.Load(),
		Gaps:             r.gaps.Load(),
		Dropped:          r.dropped.Load(),
	}
}
