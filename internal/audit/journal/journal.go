// Package journal puts an append-only, checksummed write-ahead journal in
// front of an audit store, so the durable write that must happen before a
// request is forwarded costs one write(2) (and, at sync level "always", one
// fsync shared by every concurrent request) instead of a database commit.
//
// Records reach the inner store (SQLite) moments later, in the order they
// were journaled, from a background ingester. The journal survives a killed
// process (the kernel keeps what write(2) accepted) and, with fsync, a lost
// machine; at start-up every entry the inner store may not have is replayed.
// If the journal cannot be written, or the inner store falls too far behind
// (the high-water mark), Begin fails and the gateway fails closed.
//
// A segment is a file of entries (length uint32 | crc32c uint32 | kind byte
// | JSON record) after a 16-byte file header: magic, format version and a
// random nonce that seeds every entry's checksum. Segments wholly ingested
// are kept as spares (at most MaxSpares, for at most a minute) and reused
// for the next segments: overwriting pages the kernel still caches costs
// about half as much as growing a new file, which is most of a journal
// append. A reused file gets a fresh nonce, written and synced before it
// takes its new name, so entries left over from its earlier use never
// verify: replay stops at the first of them, as at a torn tail. Segments
// of format 1 (no file header, unseeded checksums) are still replayed.
package journal

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
)

// Sync levels (decisions D1).
const (
	SyncCrash  = "crash"  // write(2) before forwarding; fsync at least every SyncInterval
	SyncAlways = "always" // fsync before forwarding
)

// Options configure Open. Zero values are the documented defaults.
type Options struct {
	// Dir holds the journal segments. Required; created if missing.
	Dir string
	// Sync is SyncCrash (default) or SyncAlways.
	Sync string
	// SyncInterval bounds how long an entry stays un-fsynced at SyncCrash.
	// Default 100ms.
	SyncInterval time.Duration
	// SegmentBytes starts a new segment past this size. Default 16 MiB.
	SegmentBytes int64
	// MaxPendingBytes is the high-water mark: past this many journaled but
	// not yet ingested bytes, Begin fails. Default 256 MiB.
	MaxPendingBytes int64
	// MaxBatch caps records per inner-store call. Default 512.
	MaxBatch int
	// IngestDelay is how long the ingester gathers entries before writing
	// them to the inner store, so many records share one transaction.
	// Records are already durable in the journal. Default 100ms.
	IngestDelay time.Duration
	// FinishWindow is how long an entry stays in the journal before it is
	// ingested, so that a request finishing within it reaches the inner
	// store as one write of its final version instead of a begin and a
	// finish (half the store's work per request). Flush and Close do not
	// wait for it. Default 200ms: fast requests (denials, errors, short
	// answers) take far less, model calls mostly far more, and the queued
	// records it holds are most of the live heap the garbage collector
	// marks (at 10,000 requests/s, 500ms held 12 of 16 MB). Negative: no
	// window.
	FinishWindow time.Duration
	// Logger receives ingestion errors. Default: discard.
	Logger *slog.Logger
}

const (
	kindBegin  byte = 'B'
	kindFinish byte = 'F'
	headerLen       = 9 // length uint32 | crc32c uint32 | kind byte
	maxEntry        = 16 << 20

	// fileHeaderLen is the segment file header: fileMagic, then a
	// random nonce (8 bytes) that seeds the entries' checksums.
	fileHeaderLen = 16
	fileMagic     = "GHAJ\x02\x00\x00\x00" // "GHAJ", format version 2 (uint32 LE)

	// MaxSpares is how many ingested segment files are kept for reuse.
	MaxSpares = 2
	// spareMaxAge: an older spare is removed instead of reused, since the
	// kernel may no longer cache its pages (overwriting part of an
	// uncached page reads it from disk first).
	spareMaxAge = time.Minute
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ErrHighWater is returned when the inner store has fallen too far behind.
var ErrHighWater = errors.New("audit journal: the audit store is too far behind (high-water mark reached)")

type entry struct {
	kind byte
	rec  audit.Record // snapshot taken when journaled
	seg  int64
	end  int64 // offset just past this entry in seg
	size int64
	at   time.Time // when journaled
	n    uint64    // position in the journal since Open (queue[0].n == done)
	// applied marks a Finish already written to the inner store as part
	// of its coalesced Begin; the ingester skips it.
	applied bool
}

// Store is an audit.Store backed by a journal and an inner store. It also
// implements audit.Recoverer when the inner store does.
type Store struct {
	opts  Options
	inner audit.Store
	log   *slog.Logger

	mu      sync.Mutex // guards the writer side below
	f       *os.File
	seg     int64
	off     int64
	seed    uint32 // checksum seed of the current segment (from its nonce)
	dirty   bool
	queue   []*entry // pointers: the ingester drops the head and appends grow the tail, so only pointers get copied
	pending int64    // bytes journaled, not yet ingested
	written uint64
	wbuf    []byte
	closed  bool
	fatal   error

	firstSeg int64 // the first segment this process wrote
	kick     chan struct{}
	flushers int // Flush calls waiting: ingest without the finish window
	// lastFinish maps a request id to the position of its newest queued
	// Finish (see coalesceLocked).
	lastFinish map[string]uint64
	ingested   sync.Cond // signalled (with mu) when doneCount advances
	done       uint64    // entries ingested
	stop       chan struct{}
	wg         sync.WaitGroup
}

var (
	_ audit.Store      = (*Store)(nil)
	_ audit.Recoverer  = (*Store)(nil)
	_ audit.LocalStore = (*Store)(nil)
)

// LocalWrites marks Begin and Finish as never waiting on their context:
// they append to the journal and return.
func (s *Store) LocalWrites() {}

// Open replays whatever the inner store may lack, then starts a fresh
// segment and the background ingester and syncer.
func Open(ctx context.Context, inner audit.Store, opts Options) (*Store, error) {
	if opts.Dir == "" {
		return nil, errors.New("audit journal: Dir is required")
	}
	if opts.Sync == "" {
		opts.Sync = SyncCrash
	}
	if opts.Sync != SyncCrash && opts.Sync != SyncAlways {
		return nil, fmt.Errorf("audit journal: unknown sync level %q", opts.Sync)
	}
	if opts.SyncInterval <= 0 {
		opts.SyncInterval = 100 * time.Millisecond
	}
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = 16 << 20
	}
	if opts.MaxPendingBytes <= 0 {
		opts.MaxPendingBytes = 256 << 20
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 512
	}
	if opts.IngestDelay <= 0 {
		opts.IngestDelay = 100 * time.Millisecond
	}
	if opts.FinishWindow == 0 {
		opts.FinishWindow = 200 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(opts.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("audit journal: %w", err)
	}
	s := &Store{opts: opts, inner: inner, log: opts.Logger, kick: make(chan struct{}, 1), stop: make(chan struct{}), lastFinish: map[string]uint64{}}
	s.ingested.L = &s.mu
	last, err := s.replay(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.openSegment(last + 1); err != nil {
		return nil, err
	}
	s.firstSeg = s.seg
	s.wg.Add(2)
	go s.ingestLoop()
	go s.syncLoop()
	return s, nil
}

func (s *Store) segPath(n int64) string {
	return filepath.Join(s.opts.Dir, fmt.Sprintf("audit-%016d.journal", n))
}

func (s *Store) sparePath(n int64) string {
	return filepath.Join(s.opts.Dir, fmt.Sprintf("audit-%016d.spare", n))
}

func (s *Store) markerPath() string { return filepath.Join(s.opts.Dir, "ingested") }

// spares lists the spare segment files, oldest number first.
func (s *Store) spares() []string {
	names, _ := filepath.Glob(filepath.Join(s.opts.Dir, "audit-*.spare"))
	sort.Strings(names)
	return names
}

// retire disposes of segment n once everything in it is ingested: it
// becomes a spare while there are fewer than MaxSpares, else it is removed.
func (s *Store) retire(n int64) {
	path := s.segPath(n)
	if len(s.spares()) < MaxSpares && os.Rename(path, s.sparePath(n)) == nil {
		return
	}
	_ = os.Remove(path)
}

// removeSpares deletes every spare (at Close: a stopped gateway leaves no
// journal files behind).
func (s *Store) removeSpares() {
	for _, p := range s.spares() {
		_ = os.Remove(p)
	}
}

func (s *Store) segments() ([]int64, error) {
	names, err := filepath.Glob(filepath.Join(s.opts.Dir, "audit-*.journal"))
	if err != nil {
		return nil, err
	}
	var segs []int64
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(n), "audit-"), ".journal")
		if v, err := strconv.ParseInt(base, 10, 64); err == nil {
			segs = append(segs, v)
		}
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i] < segs[j] })
	return segs, nil
}

func (s *Store) readMarker() (seg, off int64) {
	b, err := os.ReadFile(s.markerPath())
	if err != nil {
		return 0, 0
	}
	if _, err := fmt.Sscanf(string(b), "%d %d", &seg, &off); err != nil {
		return 0, 0
	}
	return seg, off
}

func (s *Store) writeMarker(seg, off int64) error {
	tmp := s.markerPath() + ".tmp"
	if err := os.WriteFile(tmp, []byte(fmt.Sprintf("%d %d\n", seg, off)), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, s.markerPath())
}

// replay applies every entry after the ingested marker to the inner store,
// truncates a torn tail, removes the replayed segments and returns the
// highest segment number seen.
func (s *Store) replay(ctx context.Context) (int64, error) {
	segs, err := s.segments()
	if err != nil {
		return 0, fmt.Errorf("audit journal: %w", err)
	}
	mSeg, mOff := s.readMarker()
	var last int64
	replayed := 0
	for i, n := range segs {
		last = n
		if n < mSeg {
			continue
		}
		start := int64(0)
		if n == mSeg {
			start = mOff
		}
		entries, good, err := readSegment(s.segPath(n), start)
		if err != nil {
			return 0, err
		}
		if good >= 0 {
			if i != len(segs)-1 {
				s.log.Warn("audit journal: damaged entry inside a segment; replaying what precedes it", slog.Int64("segment", n), slog.Int64("offset", good))
			}
			if err := os.Truncate(s.segPath(n), good); err != nil {
				return 0, fmt.Errorf("audit journal: truncating torn tail: %w", err)
			}
		}
		if err := s.apply(ctx, entries); err != nil {
			return 0, fmt.Errorf("audit journal: replaying segment %d into the audit store: %w", n, err)
		}
		replayed += len(entries)
	}
	if replayed > 0 {
		s.log.Info("audit journal: replayed entries into the audit store", slog.Int("entries", replayed))
	}
	for _, n := range segs {
		s.retire(n)
	}
	if err := s.writeMarker(last+1, 0); err != nil {
		return 0, fmt.Errorf("audit journal: %w", err)
	}
	return last, nil
}

// readSegment decodes entries from start. good is the offset of the first
// bad or incomplete entry (-1 when the segment ends cleanly).
func readSegment(path string, start int64) ([]entry, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, -1, fmt.Errorf("audit journal: %w", err)
	}
	defer f.Close()
	// Format 2 starts with the file header; format 1 (no header, seed 0)
	// starts with an entry, whose length can never read as the magic.
	var seed uint32
	var fh [fileHeaderLen]byte
	n, _ := io.ReadFull(f, fh[:])
	magic := []byte(fileMagic[:4])
	switch {
	case n == fileHeaderLen && bytes.Equal(fh[:4], magic):
		if v := binary.LittleEndian.Uint32(fh[4:8]); v != 2 {
			return nil, -1, fmt.Errorf("audit journal: %s is in journal format %d, which this version cannot read; start the version that wrote it to drain the journal", path, v)
		}
		seed = nonceSeed(fh[len(fileMagic):])
		start = max(start, fileHeaderLen)
	case n > 0 && n < fileHeaderLen && bytes.HasPrefix(magic, fh[:min(n, 4)]):
		return nil, 0, nil // a torn file header: nothing in the file was acknowledged
	}
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		return nil, -1, err
	}
	r := bufio.NewReaderSize(f, 1<<20)
	off := start
	var out []entry
	hdr := make([]byte, headerLen)
	for {
		if _, err := io.ReadFull(r, hdr); err != nil {
			if errors.Is(err, io.EOF) {
				return out, -1, nil
			}
			return out, off, nil // partial header: torn tail
		}
		n := binary.LittleEndian.Uint32(hdr[0:4])
		sum := binary.LittleEndian.Uint32(hdr[4:8])
		if n > maxEntry {
			return out, off, nil
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(r, payload); err != nil {
			return out, off, nil
		}
		c := crc32.Update(crc32.Update(seed, crcTable, hdr[8:9]), crcTable, payload)
		if c != sum {
			return out, off, nil
		}
		var e entry
		e.kind = hdr[8]
		if (e.kind != kindBegin && e.kind != kindFinish) || json.Unmarshal(payload, &e.rec) != nil {
			return out, off, nil
		}
		off += headerLen + int64(n)
		out = append(out, e)
	}
}

// nonceSeed is the checksum seed of a segment with the given nonce.
func nonceSeed(nonce []byte) uint32 { return crc32.Update(0, crcTable, nonce) }

// newFileHeader returns a segment file header with a fresh nonce.
func newFileHeader() []byte {
	h := make([]byte, fileHeaderLen)
	copy(h, fileMagic)
	rand.Read(h[len(fileMagic):])
	return h
}

// openSegment makes segment n the one appended to: a recent spare when
// there is one, else a new file.
func (s *Store) openSegment(n int64) error {
	hdr := newFileHeader()
	f, err := s.reuseSpare(n, hdr)
	if err != nil {
		return err
	}
	if f == nil {
		if f, err = os.OpenFile(s.segPath(n), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600); err != nil {
			return fmt.Errorf("audit journal: %w", err)
		}
		if _, err := f.WriteAt(hdr, 0); err != nil {
			f.Close()
			return fmt.Errorf("audit journal: %w", err)
		}
	}
	// The segment's name must survive a power loss once an entry in it
	// has been fsynced (audit.sync: always): sync the directory entry,
	// once per segment. (Where directories cannot be synced, the
	// filesystem's own ordering has to do.)
	if d, err := os.Open(s.opts.Dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	s.f, s.seg, s.off, s.seed = f, n, fileHeaderLen, nonceSeed(hdr[len(fileMagic):])
	return nil
}

// reuseSpare turns the newest recent spare into segment n and returns it
// open for writing (nil when there is none). The new header, and so the
// new nonce, is on disk before the file takes the segment's name, so no
// replay can read the spare's old entries as segment n's. A spare that is
// too old, or cannot be restamped, is removed.
func (s *Store) reuseSpare(n int64, hdr []byte) (*os.File, error) {
	spares := s.spares()
	for i := len(spares) - 1; i >= 0; i-- {
		path := spares[i]
		if err := restamp(path, hdr); err != nil || os.Rename(path, s.segPath(n)) != nil {
			_ = os.Remove(path)
			continue
		}
		f, err := os.OpenFile(s.segPath(n), os.O_WRONLY, 0o600)
		if err != nil {
			return nil, fmt.Errorf("audit journal: %w", err)
		}
		prefetch(f)
		for _, older := range spares[:i] {
			_ = os.Remove(older) // only the newest is worth keeping warm
		}
		return f, nil
	}
	return nil, nil
}

// restamp writes hdr over a recent spare's file header and syncs it.
func restamp(path string, hdr []byte) error {
	if st, err := os.Stat(path); err != nil || time.Since(st.ModTime()) > spareMaxAge {
		return errors.New("stale spare")
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteAt(hdr, 0)
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

// Begin journals new records; they are durable (at the configured level)
// when it returns.
func (s *Store) Begin(ctx context.Context, recs []*audit.Record) error {
	return s.append(kindBegin, recs)
}

// Finish journals final versions of records.
func (s *Store) Finish(ctx context.Context, recs []*audit.Record) error {
	return s.append(kindFinish, recs)
}

func (s *Store) append(kind byte, recs []*audit.Record) error {
	if len(recs) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("audit journal: closed")
	}
	if s.fatal != nil {
		return s.fatal
	}
	if s.pending > s.opts.MaxPendingBytes {
		return ErrHighWater
	}
	buf := s.wbuf[:0]
	ents := make([]entry, 0, len(recs)) // one allocation for the call's entries; the queue points into it
	off := s.off
	now := time.Now()
	for _, r := range recs {
		start := len(buf)
		buf = append(buf, make([]byte, headerLen)...)
		var err error
		if buf, err = audit.AppendJSON(buf, r); err != nil {
			s.wbuf = buf[:0]
			return fmt.Errorf("audit journal: encoding: %w", err)
		}
		hdr, payload := buf[start:start+headerLen], buf[start+headerLen:]
		binary.LittleEndian.PutUint32(hdr[0:4], uint32(len(payload)))
		hdr[8] = kind
		binary.LittleEndian.PutUint32(hdr[4:8], crc32.Update(crc32.Update(s.seed, crcTable, hdr[8:9]), crcTable, payload))
		size := int64(headerLen + len(payload))
		off += size
		ents = append(ents, entry{kind: kind, rec: *r, seg: s.seg, end: off, size: size, at: now, n: s.written + uint64(len(ents))})
	}
	s.wbuf = buf
	if _, err := s.f.WriteAt(buf, s.off); err != nil {
		// A short write leaves a torn entry; replay truncates it. Nothing
		// was acknowledged, so the caller fails closed.
		return fmt.Errorf("audit journal: write: %w", err)
	}
	s.off = off
	if s.opts.Sync == SyncAlways {
		if err := s.f.Sync(); err != nil {
			s.fatal = fmt.Errorf("audit journal: fsync failed; the journal can no longer be trusted: %w", err)
			return s.fatal
		}
	} else {
		s.dirty = true
	}
	for i := range ents {
		s.queue = append(s.queue, &ents[i])
	}
	if kind == kindFinish {
		for _, e := range ents {
			s.lastFinish[e.rec.RequestID] = e.n
		}
	}
	s.pending += int64(len(buf))
	s.written += uint64(len(ents))
	if s.off >= s.opts.SegmentBytes {
		if err := s.rotateLocked(); err != nil {
			return err
		}
	}
	if len(s.queue) == len(ents) {
		// The queue was empty, so the ingester may be waiting without a
		// timer: wake it. Otherwise its timer is already set for the oldest.
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

func (s *Store) rotateLocked() error {
	// A reused file may extend past the last entry with what it held
	// before: cut that off, so a finished segment ends at its last entry.
	if err := s.f.Truncate(s.off); err != nil {
		s.fatal = fmt.Errorf("audit journal: truncating a finished segment: %w", err)
		return s.fatal
	}
	if err := s.f.Sync(); err != nil {
		s.fatal = fmt.Errorf("audit journal: fsync failed: %w", err)
		return s.fatal
	}
	old := s.f
	if err := s.openSegment(s.seg + 1); err != nil {
		return err
	}
	s.dirty = false
	return old.Close()
}

func (s *Store) syncLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.mu.Lock()
		if s.dirty && s.fatal == nil {
			if err := s.f.Sync(); err != nil {
				s.fatal = fmt.Errorf("audit journal: fsync failed; the journal can no longer be trusted: %w", err)
				s.log.Error("audit journal: fsync failed", slog.String("cause", err.Error()))
			}
			s.dirty = false
		}
		s.mu.Unlock()
	}
}

func (s *Store) ingestLoop() {
	defer s.wg.Done()
	backoff := 10 * time.Millisecond
	var markedAt time.Time
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	stopping := false
	removeFrom := s.firstSeg // segments before it went at replay
	for {
		s.mu.Lock()
		n, wait := s.readyLocked(time.Now(), stopping || s.flushers > 0)
		var batch []*entry
		var merged map[int]bool
		var final map[string]*audit.Record
		if n > 0 {
			batch = s.queue[:n]
			merged, final = s.coalesceLocked(n)
		}
		s.mu.Unlock()
		if n == 0 {
			if stopping {
				return
			}
			if wait > 0 {
				timer.Reset(wait)
			}
			select {
			case <-s.kick:
			case <-timer.C:
			case <-s.stop:
				stopping = true
			}
			timer.Stop()
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := s.applyLive(ctx, batch, merged, final)
		cancel()
		if err != nil {
			s.log.Error("audit journal: writing to the audit store failed; entries stay journaled and will be retried", slog.String("cause", err.Error()), slog.Int("entries", len(batch)))
			select {
			case <-time.After(backoff):
			case <-s.stop:
				if stopping {
					return // closing while the store still fails: entries stay journaled for replay
				}
				stopping = true
			}
			if backoff < 5*time.Second {
				backoff *= 2
			}
			continue
		}
		backoff = 10 * time.Millisecond
		lastE := batch[len(batch)-1]
		var bytes int64
		for _, e := range batch {
			bytes += e.size
		}
		s.mu.Lock()
		for j := range merged {
			if j >= n {
				s.queue[j].applied = true
			}
		}
		for i := range s.queue[:n] {
			if e := s.queue[i]; e.kind == kindFinish && s.lastFinish[e.rec.RequestID] == e.n {
				delete(s.lastFinish, e.rec.RequestID)
			}
		}
		clear(s.queue[:n]) // release the entries to the collector
		s.queue = s.queue[n:]
		if len(s.queue) == 0 {
			s.queue = nil
		}
		s.pending -= bytes
		s.done += uint64(n)
		cur := s.seg
		caughtUp := len(s.queue) == 0
		s.ingested.Broadcast()
		s.mu.Unlock()
		// Progress is recorded at most once a second (and at the end):
		// a stale marker only means a replay repeats entries, which
		// is idempotent.
		if now := time.Now(); now.Sub(markedAt) >= time.Second || caughtUp && stopping || lastE.seg < cur {
			markedAt = now
			if err := s.writeMarker(lastE.seg, lastE.end); err != nil {
				s.log.Warn("audit journal: recording progress failed (entries may be replayed twice)", slog.String("cause", err.Error()))
			}
		}
		// Segments wholly ingested are retired (kept as a spare or
		// removed) once, when ingestion moves past them.
		for ; removeFrom < lastE.seg && removeFrom < cur; removeFrom++ {
			s.retire(removeFrom)
		}
	}
}

// readyLocked returns how many entries at the head of the queue are due
// for ingestion (at most MaxBatch) and, when none is, how long until the
// oldest will be (0: the queue is empty). Entries are due once they are
// FinishWindow old, and a batch starts only when its oldest entry is
// FinishWindow+IngestDelay old, so each transaction carries a useful batch;
// force (Flush, Close) makes everything due.
func (s *Store) readyLocked(now time.Time, force bool) (int, time.Duration) {
	if len(s.queue) == 0 {
		return 0, 0
	}
	max := min(len(s.queue), s.opts.MaxBatch)
	if force || s.opts.FinishWindow < 0 {
		return max, 0
	}
	// The oldest entry waits the window plus IngestDelay, so a batch spans
	// at least IngestDelay's worth of entries: small batches would rewrite
	// the same partly filled pages in commit after commit.
	cutoff := now.Add(-s.opts.FinishWindow)
	if wait := s.queue[0].at.Sub(cutoff.Add(-s.opts.IngestDelay)); wait > 0 {
		return 0, wait
	}
	n := sort.Search(max, func(i int) bool { return s.queue[i].at.After(cutoff) })
	return n, 0
}

// coalesceLocked picks what the first n queued entries need not write: a
// Begin whose request has a Finish queued is written once, in the state of
// the last such Finish (returned in final), and that Finish is skipped; a
// Finish superseded by a later one of the same request is skipped. The
// returned set holds queue indexes to skip; those beyond n are marked
// applied once the batch is written. Durability is unaffected: every entry
// is in the journal already; replay never coalesces.
func (s *Store) coalesceLocked(n int) (skip map[int]bool, final map[string]*audit.Record) {
	for i := range s.queue[:n] {
		e := s.queue[i]
		last, ok := s.lastFinish[e.rec.RequestID]
		if !ok || last <= e.n {
			continue
		}
		if skip == nil {
			skip, final = map[int]bool{}, map[string]*audit.Record{}
		}
		if e.kind == kindFinish {
			skip[i] = true
			continue
		}
		j := int(last - s.done)
		skip[j] = true
		final[e.rec.RequestID] = &s.queue[j].rec // the Finish is skipped: its copy goes in the Begin's place
	}
	return skip, final
}

// applyLive writes one batch: each Begin in the final state of its last
// merged Finish, then the Finishes not merged, as (at most) two inner-store
// calls. The inner store gets the queued entries' own records (it may set
// their Seq): only the ingester reads them once they are queued. Writing
// the batch's Begins before its Finishes is safe: a Finish whose Begin is
// in the same batch is always merged into it.
func (s *Store) applyLive(ctx context.Context, batch []*entry, merged map[int]bool, final map[string]*audit.Record) error {
	var begins, finishes []*audit.Record
	for i, e := range batch {
		switch {
		case e.applied || merged[i]:
		case e.kind == kindBegin:
			if f, ok := final[e.rec.RequestID]; ok {
				begins = append(begins, f)
				continue
			}
			begins = append(begins, &e.rec)
		default:
			finishes = append(finishes, &e.rec)
		}
	}
	if len(begins) > 0 {
		if err := s.inner.Begin(ctx, begins); err != nil {
			return err
		}
	}
	if len(finishes) > 0 {
		return s.inner.Finish(ctx, finishes)
	}
	return nil
}

// apply replays entries to the inner store in order, grouping runs of the
// same kind. A Begin may repeat one the inner store already has; then the
// run is written with Finish, which upserts.
func (s *Store) apply(ctx context.Context, entries []entry) error {
	for i := 0; i < len(entries); {
		j := i
		for j < len(entries) && entries[j].kind == entries[i].kind && j-i < s.opts.MaxBatch {
			j++
		}
		recs := make([]*audit.Record, 0, j-i)
		for k := i; k < j; k++ {
			r := entries[k].rec
			recs = append(recs, &r)
		}
		var err error
		if entries[i].kind == kindBegin {
			err = s.inner.Begin(ctx, recs)
			if err != nil {
				err = s.inner.Finish(ctx, recs)
			}
		} else {
			err = s.inner.Finish(ctx, recs)
		}
		if err != nil {
			return err
		}
		i = j
	}
	return nil
}

// Flush waits until everything journaled so far has reached the inner
// store, or ctx ends.
func (s *Store) Flush(ctx context.Context) error {
	s.mu.Lock()
	target := s.written
	s.flushers++ // the ingester stops waiting out the finish window
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.flushers--
		s.mu.Unlock()
	}()
	select {
	case s.kick <- struct{}{}:
	default:
	}
	done := make(chan struct{})
	go func() {
		s.mu.Lock()
		for s.done < target && !s.closed && ctx.Err() == nil {
			s.ingested.Wait()
		}
		s.mu.Unlock()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		s.ingested.Broadcast()
		s.mu.Unlock()
		return ctx.Err()
	}
}

// List reads from the inner store after what was journaled before the call
// has reached it.
func (s *Store) List(ctx context.Context, f audit.Filter) ([]audit.Record, error) {
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_ = s.Flush(fctx)
	return s.inner.List(ctx, f)
}

// Recover closes records left begun by a crash, after the replay.
func (s *Store) Recover(ctx context.Context, instance string) (int, error) {
	r, ok := s.inner.(audit.Recoverer)
	if !ok {
		return 0, nil
	}
	if err := s.Flush(ctx); err != nil {
		return 0, err
	}
	return r.Recover(ctx, instance)
}

// Close drains the journal into the inner store, syncs, and closes both.
func (s *Store) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	flushErr := s.Flush(ctx)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.ingested.Broadcast()
	s.mu.Unlock()
	close(s.stop)
	s.wg.Wait()
	s.mu.Lock()
	syncErr := s.f.Sync()
	closeErr := s.f.Close()
	drained := len(s.queue) == 0
	s.mu.Unlock()
	if drained && flushErr == nil {
		// Everything reached the inner store: the journal is no longer needed.
		segs, _ := s.segments()
		for _, n := range segs {
			_ = os.Remove(s.segPath(n))
		}
		s.removeSpares()
		_ = s.writeMarker(s.seg+1, 0)
	}
	return errors.Join(flushErr, syncErr, closeErr, s.inner.Close())
}
