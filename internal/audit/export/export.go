// Package export streams the audit trail to where security teams look
// (a JSON-lines file or stdout, a generic webhook, Splunk HEC, OTLP/HTTP
// logs) at least once: it tails the store's append-only hash chains,
// queues events in a bounded on-disk spool, and delivers them with
// retries, exponential backoff and idempotency keys. The spool's cursor
// advances only when the receiver acknowledges, so a receiver outage (or
// a gateway restart) loses nothing; when the spool is full the exporter
// stops reading the store, which keeps everything, until it drains.
package export

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
)

// Source is where events come from: a store's hash chains
// (audit/sqlite and audit/postgres implement it).
type Source interface {
	Chains(ctx context.Context) ([]string, error)
	ChainAfter(ctx context.Context, chain string, after int64, limit int) ([]audit.ChainEntry, error)
}

// CheckpointSource is implemented by sources that keep signed
// checkpoints; the exporter then ships each checkpoint too (kind
// "checkpoint"), anchoring the chain heads outside the store.
type CheckpointSource interface {
	CheckpointsAfter(ctx context.Context, after int64, limit int) ([]audit.Checkpoint, error)
}

// checkpointCursor is the sources key of the checkpoint position.
const checkpointCursor = "#checkpoints"

// CheckpointJSON is the "record" of a checkpoint event.
type CheckpointJSON struct {
	Chain     string    `json:"chain"`
	Size      int64     `json:"size"`
	Head      []byte    `json:"head"` // base64
	Time      time.Time `json:"time"`
	KeyID     string    `json:"key_id"`
	Note      string    `json:"note"`
	Signature []byte    `json:"signature"` // base64, Ed25519 over note
}

// Event is one exported audit event: a chain entry with its record, or
// (kind "checkpoint") a signed checkpoint.
type Event struct {
	// IdempotencyKey is "<chain>/<seq>": unique per event and stable across
	// retries and restarts, so receivers can drop duplicates.
	IdempotencyKey string          `json:"idempotency_key"`
	Chain          string          `json:"chain"`
	ChainSeq       int64           `json:"chain_seq"`
	Kind           string          `json:"kind"` // begin, finish, recover, checkpoint
	Record         json.RawMessage `json:"record"`
}

// Time returns the record's time, for receivers that index on it.
func (e *Event) Time() time.Time {
	var r struct {
		Time time.Time `json:"time"`
	}
	_ = json.Unmarshal(e.Record, &r)
	return r.Time
}

// Sink delivers one batch. It returns nil only once the receiver has
// acknowledged every event of the batch.
type Sink interface {
	Name() string
	Send(ctx context.Context, batch []Event) error
}

// Options configures an Exporter. Zero values are the documented defaults.
type Options struct {
	Source Source // required
	Sink   Sink   // required
	// Dir holds the spool and cursors; required, created if missing. Use a
	// separate directory per sink.
	Dir string
	// MaxSpoolBytes bounds the spool on disk. Default 256 MiB.
	MaxSpoolBytes int64
	// BatchSize caps events per Send. Default 500.
	BatchSize int
	// PollInterval is how often the store is read for new entries.
	// Default 1s.
	PollInterval time.Duration
	// AttemptTimeout bounds one Send (a stalled receiver). Default 10s.
	AttemptTimeout time.Duration
	// MinBackoff and MaxBackoff bound the retry delay (exponential with
	// jitter). Defaults 100ms and 30s.
	MinBackoff, MaxBackoff time.Duration
	// Logger receives delivery failures. Default: discard.
	Logger *slog.Logger
}

// Stats are the exporter's counters.
type Stats struct {
	Delivered  uint64 // events acknowledged
	Failures   uint64 // failed Send attempts
	SpoolBytes int64  // bytes not yet acknowledged
	SpoolFull  uint64 // times reading paused because the spool was full
}

// Exporter runs one sink.
type Exporter struct {
	opts Options
	log  *slog.Logger

	mu      sync.Mutex // guards the spool writer and reader positions
	wseg    int64      // segment being appended
	wf      *os.File
	rseg    int64 // delivery cursor: segment and offset
	roff    int64
	pending int64
	sources map[string]int64 // chain → last seq spooled

	delivered, failures, full atomic.Uint64
	wake                      chan struct{}
}

// New opens (or resumes) the spool in opts.Dir.
func New(opts Options) (*Exporter, error) {
	if opts.Source == nil || opts.Sink == nil || opts.Dir == "" {
		return nil, errors.New("export: Source, Sink and Dir are required")
	}
	if opts.MaxSpoolBytes <= 0 {
		opts.MaxSpoolBytes = 256 << 20
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 500
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Second
	}
	if opts.AttemptTimeout <= 0 {
		opts.AttemptTimeout = 10 * time.Second
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 100 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	x := &Exporter{opts: opts, log: opts.Logger.With(slog.String("sink", opts.Sink.Name())), sources: map[string]int64{}, wake: make(chan struct{}, 1)}
	if err := x.load(); err != nil {
		return nil, err
	}
	return x, nil
}

type cursorFile struct {
	Segment int64            `json:"segment"`
	Offset  int64            `json:"offset"`
	Sources map[string]int64 `json:"sources,omitempty"`
}

func (x *Exporter) segPath(n int64) string {
	return filepath.Join(x.opts.Dir, fmt.Sprintf("spool-%012d.jsonl", n))
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// writeJSON replaces path atomically and durably.
func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func (x *Exporter) segments() ([]int64, error) {
	ents, err := os.ReadDir(x.opts.Dir)
	if err != nil {
		return nil, err
	}
	var out []int64
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, "spool-") && strings.HasSuffix(name, ".jsonl") {
			if n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(name, "spool-"), ".jsonl"), 10, 64); err == nil {
				out = append(out, n)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

// load restores the delivery cursor ("cursor"), the source positions
// ("sources", written after each spool append) and the spool size.
func (x *Exporter) load() error {
	var c cursorFile
	if err := readJSON(filepath.Join(x.opts.Dir, "cursor"), &c); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("export: cursor: %w", err)
	}
	var src cursorFile
	if err := readJSON(filepath.Join(x.opts.Dir, "sources"), &src); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("export: sources: %w", err)
	}
	if src.Sources != nil {
		x.sources = src.Sources
	}
	x.rseg, x.roff = c.Segment, c.Offset
	segs, err := x.segments()
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	for _, n := range segs {
		if n < x.rseg {
			_ = os.Remove(x.segPath(n))
			continue
		}
		fi, err := os.Stat(x.segPath(n))
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		x.pending += fi.Size()
		if n == x.rseg {
			x.pending -= x.roff
		}
		x.wseg = n
	}
	// Append to a fresh segment: a torn tail of the old one is skipped by
	// the reader (it stops at an incomplete line).
	x.wseg = max(x.wseg, x.rseg) + 1
	if len(segs) == 0 {
		x.rseg, x.roff = x.wseg, 0
	}
	return nil
}

// Run tails the source and delivers until ctx ends. Delivery continues
// where the previous run stopped.
func (x *Exporter) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); x.deliverLoop(ctx) }()
	t := time.NewTicker(x.opts.PollInterval)
	defer t.Stop()
	for {
		if err := x.pull(ctx); err != nil && ctx.Err() == nil {
			x.log.Warn("audit export: reading the store failed", slog.Any("err", err))
		}
		select {
		case <-ctx.Done():
			wg.Wait()
			x.mu.Lock()
			if x.wf != nil {
				x.wf.Close()
				x.wf = nil
			}
			x.mu.Unlock()
			return nil
		case <-t.C:
		}
	}
}

// pull copies new chain entries into the spool while it has room.
func (x *Exporter) pull(ctx context.Context) error {
	chains, err := x.opts.Source.Chains(ctx)
	if err != nil {
		return err
	}
	if cs, ok := x.opts.Source.(CheckpointSource); ok {
		if err := x.pullCheckpoints(ctx, cs); err != nil {
			return err
		}
	}
	for _, ch := range chains {
		for {
			x.mu.Lock()
			room := x.pending < x.opts.MaxSpoolBytes
			after := x.sources[ch]
			x.mu.Unlock()
			if !room {
				x.full.Add(1)
				return nil
			}
			ents, err := x.opts.Source.ChainAfter(ctx, ch, after, x.opts.BatchSize)
			if err != nil {
				return err
			}
			if len(ents) == 0 {
				break
			}
			if err := x.spool(ents); err != nil {
				return err
			}
			if len(ents) < x.opts.BatchSize {
				break
			}
		}
	}
	return nil
}

func (x *Exporter) pullCheckpoints(ctx context.Context, cs CheckpointSource) error {
	for {
		x.mu.Lock()
		room := x.pending < x.opts.MaxSpoolBytes
		after := x.sources[checkpointCursor]
		x.mu.Unlock()
		if !room {
			x.full.Add(1)
			return nil
		}
		cps, err := cs.CheckpointsAfter(ctx, after, x.opts.BatchSize)
		if err != nil || len(cps) == 0 {
			return err
		}
		evs := make([]Event, len(cps))
		for i, c := range cps {
			b, err := json.Marshal(CheckpointJSON{Chain: c.Chain, Size: c.Size, Head: c.Head, Time: c.Time, KeyID: c.KeyID, Note: c.Note, Signature: c.Signature})
			if err != nil {
				return err
			}
			evs[i] = Event{IdempotencyKey: "checkpoint/" + c.Chain + "/" + strconv.FormatInt(c.Size, 10), Chain: c.Chain, ChainSeq: c.Size, Kind: "checkpoint", Record: b}
		}
		if err := x.spoolEvents(evs, checkpointCursor, cps[len(cps)-1].ID); err != nil {
			return err
		}
		if len(cps) < x.opts.BatchSize {
			return nil
		}
	}
}

// spool appends chain entries durably, then records the source position.
func (x *Exporter) spool(ents []audit.ChainEntry) error {
	evs := make([]Event, len(ents))
	for i, e := range ents {
		evs[i] = Event{IdempotencyKey: e.Chain + "/" + strconv.FormatInt(e.Seq, 10), Chain: e.Chain, ChainSeq: e.Seq, Kind: e.Kind, Record: e.Payload}
	}
	last := ents[len(ents)-1]
	return x.spoolEvents(evs, last.Chain, last.Seq)
}

// spoolEvents appends events durably, then sets sources[key] = pos.
func (x *Exporter) spoolEvents(evs []Event, key string, pos int64) error {
	var buf bytes.Buffer
	for i := range evs {
		b, err := json.Marshal(&evs[i])
		if err != nil {
			return err
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.wf == nil {
		f, err := os.OpenFile(x.segPath(x.wseg), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("export: spool: %w", err)
		}
		x.wf = f
	}
	if _, err := x.wf.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("export: spool: %w", err)
	}
	if err := x.wf.Sync(); err != nil {
		return fmt.Errorf("export: spool: %w", err)
	}
	x.pending += int64(buf.Len())
	x.sources[key] = pos
	if err := writeJSON(filepath.Join(x.opts.Dir, "sources"), cursorFile{Sources: x.sources}); err != nil {
		return fmt.Errorf("export: sources: %w", err)
	}
	// Start a new segment past 16 MiB so acknowledged data can be deleted.
	if fi, err := x.wf.Stat(); err == nil && fi.Size() > 16<<20 {
		x.wf.Close()
		x.wf = nil
		x.wseg++
	}
	select {
	case x.wake <- struct{}{}:
	default:
	}
	return nil
}

// readBatch reads up to BatchSize complete events at the cursor and
// returns them with the cursor position after them.
func (x *Exporter) readBatch() ([]Event, int64, int64, error) {
	x.mu.Lock()
	seg, off, wseg := x.rseg, x.roff, x.wseg
	x.mu.Unlock()
	for seg <= wseg {
		f, err := os.Open(x.segPath(seg))
		if errors.Is(err, os.ErrNotExist) {
			if seg == wseg {
				return nil, seg, off, nil
			}
			seg, off = seg+1, 0
			continue
		}
		if err != nil {
			return nil, 0, 0, err
		}
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			f.Close()
			return nil, 0, 0, err
		}
		r := bufio.NewReaderSize(f, 64<<10)
		var evs []Event
		pos := off
		for len(evs) < x.opts.BatchSize {
			line, err := r.ReadBytes('\n')
			if err != nil { // EOF or a torn line: stop before it
				break
			}
			var ev Event
			if jerr := json.Unmarshal(line, &ev); jerr != nil {
				x.log.Error("audit export: skipping a damaged spool line", slog.Int64("segment", seg), slog.Int64("offset", pos))
			} else {
				evs = append(evs, ev)
			}
			pos += int64(len(line))
		}
		f.Close()
		if len(evs) > 0 || pos > off {
			return evs, seg, pos, nil
		}
		if seg == wseg {
			return nil, seg, off, nil
		}
		seg, off = seg+1, 0 // this segment is exhausted
	}
	return nil, seg, off, nil
}

func (x *Exporter) deliverLoop(ctx context.Context) {
	backoff := time.Duration(0)
	for ctx.Err() == nil {
		evs, seg, off, err := x.readBatch()
		if err != nil {
			x.log.Error("audit export: reading the spool", slog.Any("err", err))
		}
		if len(evs) == 0 {
			if err == nil {
				x.mu.Lock()
				moved := seg != x.rseg || off != x.roff
				x.mu.Unlock()
				if moved { // skipped exhausted segments or damaged lines
					x.ack(seg, off, 0)
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-x.wake:
			case <-time.After(x.opts.PollInterval):
			}
			continue
		}
		actx, cancel := context.WithTimeout(ctx, x.opts.AttemptTimeout)
		err = x.opts.Sink.Send(actx, evs)
		cancel()
		if err != nil {
			x.failures.Add(1)
			backoff = min(max(2*backoff, x.opts.MinBackoff), x.opts.MaxBackoff)
			d := backoff/2 + rand.N(backoff/2+1)
			x.log.Warn("audit export: delivery failed; retrying", slog.Int("events", len(evs)), slog.Duration("in", d), slog.Any("err", err))
			select {
			case <-ctx.Done():
				return
			case <-time.After(d):
			}
			continue
		}
		backoff = 0
		x.ack(seg, off, len(evs))
	}
}

// ack advances the delivery cursor durably and deletes finished segments.
func (x *Exporter) ack(seg, off int64, n int) {
	x.mu.Lock()
	defer x.mu.Unlock()
	consumed := off - x.roff
	if seg != x.rseg {
		// The rest of the earlier segments, then off bytes of seg.
		consumed = off
		for s := x.rseg; s < seg; s++ {
			if fi, err := os.Stat(x.segPath(s)); err == nil {
				consumed += fi.Size()
			}
			if s == x.rseg {
				consumed -= x.roff
			}
		}
	}
	if err := writeJSON(filepath.Join(x.opts.Dir, "cursor"), cursorFile{Segment: seg, Offset: off}); err != nil {
		x.log.Error("audit export: saving the cursor (events may be sent twice)", slog.Any("err", err))
	}
	for s := x.rseg; s < seg; s++ {
		_ = os.Remove(x.segPath(s))
	}
	x.rseg, x.roff = seg, off
	x.pending -= consumed
	x.delivered.Add(uint64(n))
}

// Stats returns the counters.
func (x *Exporter) Stats() Stats {
	x.mu.Lock()
	p := x.pending
	x.mu.Unlock()
	return Stats{Delivered: x.delivered.Load(), Failures: x.failures.Load(), SpoolBytes: p, SpoolFull: x.full.Load()}
}

// ReadCheckpoints reads exported events (JSON lines, as the jsonl sink
// writes them) and returns the checkpoints among them, for `audit verify
// --anchors`. Other kinds are skipped; a malformed line is an error.
func ReadCheckpoints(r io.Reader) ([]audit.Checkpoint, error) {
	var out []audit.Checkpoint
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var ev Event
		if err := json.Unmarshal(b, &ev); err != nil {
			return nil, fmt.Errorf("line %d: not an exported event: %v", line, err)
		}
		if ev.Kind != "checkpoint" {
			continue
		}
		var c CheckpointJSON
		if err := json.Unmarshal(ev.Record, &c); err != nil {
			return nil, fmt.Errorf("line %d: malformed checkpoint: %v", line, err)
		}
		out = append(out, audit.Checkpoint{Chain: c.Chain, Size: c.Size, Head: c.Head, Time: c.Time, KeyID: c.KeyID, Note: c.Note, Signature: c.Signature})
	}
	return out, sc.Err()
}
