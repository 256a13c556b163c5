// Package sqlite is the embedded audit store: one SQLite file in WAL mode
// (modernc.org/sqlite, no cgo) with versioned, embedded migrations and the
// durability levels of decision D1.
//
// Writes go through one dedicated writer connection with prepared
// statements; reads use a separate read-only pool so `audit list` and the
// verifier never block the gateway. At sync level "crash" commits run with
// synchronous=NORMAL (a killed process loses nothing) and a background loop
// fsyncs the WAL at least every SyncInterval after a commit; at "always"
// every commit is fsynced (synchronous=FULL).
package sqlite

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/audit/content"
	"github.com/gatehouse-dev/gatehouse/internal/audit/internal/sqlrow"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// chainName names the SQLite store's single chain (one writer).
const chainName = "main"

// Sync levels (decisions D1).
const (
	SyncCrash  = "crash"
	SyncAlways = "always"
)

// Options configures Open.
type Options struct {
	// Path of the database file. Required. Its directory must exist.
	Path string
	// Sync is the durability level: "crash" (default) or "always".
	Sync string
	// SyncInterval is, at level crash, the longest a commit stays in the
	// WAL without an fsync. Default 100ms.
	SyncInterval time.Duration
	// WALCheckpointInterval is how often the WAL is checkpointed into the
	// database file in the background. Default 1s.
	WALCheckpointInterval time.Duration
	// SigningKey signs checkpoints of the hash chain (decisions: issue 5).
	// Nil: no checkpoints are written, so truncation of the chain's tail
	// cannot be detected.
	SigningKey ed25519.PrivateKey
	// CheckpointEvery is how often a signed checkpoint is written when the
	// chain has grown. Default 10s. One is also written by Close.
	CheckpointEvery time.Duration
	// Logger receives background errors. Default: discard.
	Logger *slog.Logger
	// ReadOnly opens an existing database for List and Verify only (the
	// CLI, while a gateway may be running): no migrations, no background
	// work, every write fails.
	ReadOnly bool
}

// ErrReadOnly is returned by writes to a store opened ReadOnly.
var ErrReadOnly = errors.New("audit sqlite: store opened read-only")

// Store is the SQLite audit store. It implements audit.Store and
// audit.Recoverer.
type Store struct {
	opts   Options
	log    *slog.Logger
	writer *sql.DB
	conn   *sql.Conn // the one writer connection
	reader *sql.DB   // read-only pool

	wmu      sync.Mutex // serialises use of conn
	stBegin  *sql.Stmt
	stCommit *sql.Stmt
	stHead   *sql.Stmt

	// The write path's statements, prepared on the writer's driver
	// connection and run only inside s.conn.Raw with wmu held: for a
	// 35-column row, database/sql's per-argument conversion and
	// bookkeeping cost a third as much as SQLite's own insert.
	dInsert, dUpsert, dChain driverStmt
	args                     []any               // a record's column values, reused under wmu
	nv                       []driver.NamedValue // arguments as the driver takes them, reused under wmu

	// Chain head, guarded by wmu.
	headSeq  int64
	head     []byte
	signedAt int64  // chain size covered by the last checkpoint
	pbuf     []byte // chain payload buffer, reused under wmu

	dirty atomic.Bool  // a commit since the last WAL fsync
	fatal atomic.Value // error: the WAL cannot be trusted any more
	walMu sync.Mutex
	wal   *os.File
	syncs atomic.Uint64
	fsync func(*os.File) error // (*os.File).Sync; tests inject failures

	stop chan struct{}
	done chan struct{}
}

var (
	_ audit.Store     = (*Store)(nil)
	_ audit.Recoverer = (*Store)(nil)
	_ audit.Verifier  = (*Store)(nil)
)

// Open opens (creating if needed) the database at opts.Path, applies
// pending migrations and starts the background sync and checkpoint loop.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.Path == "" {
		return nil, errors.New("audit sqlite: Path is required")
	}
	if strings.ContainsAny(opts.Path, "?#") {
		return nil, fmt.Errorf("audit sqlite: path %q must not contain ? or #", opts.Path)
	}
	switch opts.Sync {
	case "":
		opts.Sync = SyncCrash
	case SyncCrash, SyncAlways:
	default:
		return nil, fmt.Errorf("audit sqlite: sync %q is not crash or always", opts.Sync)
	}
	if opts.SyncInterval <= 0 {
		opts.SyncInterval = 100 * time.Millisecond
	}
	if opts.WALCheckpointInterval <= 0 {
		opts.WALCheckpointInterval = time.Second
	}
	if opts.CheckpointEvery <= 0 {
		opts.CheckpointEvery = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{opts: opts, log: opts.Logger, stop: make(chan struct{}), done: make(chan struct{}), fsync: (*os.File).Sync}
	if opts.ReadOnly {
		if _, err := os.Stat(opts.Path); err != nil {
			return nil, fmt.Errorf("audit sqlite: no audit database: %w", err)
		}
		var err error
		if s.reader, err = sql.Open("sqlite", opts.Path+"?_pragma=busy_timeout(10000)&_pragma=query_only(1)"); err != nil {
			return nil, fmt.Errorf("audit sqlite: %w", err)
		}
		s.reader.SetMaxOpenConns(4)
		if err := s.reader.PingContext(ctx); err != nil {
			s.reader.Close()
			return nil, fmt.Errorf("audit sqlite: open %s: %w", opts.Path, err)
		}
		s.fatal.Store(ErrReadOnly)
		close(s.done)
		return s, nil
	}
	if err := s.open(ctx); err != nil {
		s.closeDBs()
		return nil, err
	}
	go s.background()
	return s, nil
}

func (s *Store) open(ctx context.Context) error {
	syncMode := "NORMAL"
	if s.opts.Sync == SyncAlways {
		syncMode = "FULL"
	}
	// page_size only takes effect when the file is created, before WAL is
	// switched on (the driver runs _journal_mode after the _pragma list):
	// 16 KiB pages cut the frames, and the write(2)s, of each group commit
	// to a quarter.
	base := s.opts.Path + "?_pragma=busy_timeout(10000)&_pragma=page_size(16384)&_journal_mode=WAL"
	var err error
	s.writer, err = sql.Open("sqlite", base+
		"&_pragma=synchronous("+syncMode+")&_pragma=wal_autocheckpoint(0)"+
		"&_pragma=journal_size_limit(67108864)&_pragma=temp_store(MEMORY)")
	if err != nil {
		return fmt.Errorf("audit sqlite: %w", err)
	}
	s.writer.SetMaxOpenConns(1)
	s.writer.SetMaxIdleConns(1)
	s.writer.SetConnMaxLifetime(0)
	s.writer.SetConnMaxIdleTime(0)
	if s.conn, err = s.writer.Conn(ctx); err != nil {
		return fmt.Errorf("audit sqlite: open %s: %w", s.opts.Path, err)
	}
	if err := migrate(ctx, s.conn); err != nil {
		return err
	}
	cols := strings.Join(sqlrow.Columns, ", ")
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(sqlrow.Columns)), ", ")
	var sets []string
	for _, c := range sqlrow.Columns {
		if c != "request_id" && c != "time_ns" {
			sets = append(sets, c+" = excluded."+c)
		}
	}
	for _, p := range []struct {
		st  **sql.Stmt
		sql string
	}{
		{&s.stBegin, "BEGIN IMMEDIATE"},
		{&s.stCommit, "COMMIT"},
	} {
		if *p.st, err = s.conn.PrepareContext(ctx, p.sql); err != nil {
			return fmt.Errorf("audit sqlite: prepare: %w", err)
		}
	}
	err = s.conn.Raw(func(dc any) error {
		pc, ok := dc.(driver.ConnPrepareContext)
		if !ok {
			return fmt.Errorf("driver connection %T cannot prepare with a context", dc)
		}
		for _, p := range []struct {
			st  *driverStmt
			sql string
		}{
			{&s.dInsert, "INSERT INTO audit_records (" + cols + ") VALUES (" + marks + ")"},
			{&s.dUpsert, "INSERT INTO audit_records (" + cols + ") VALUES (" + marks + ") ON CONFLICT (request_id) DO UPDATE SET " + strings.Join(sets, ", ") + " RETURNING seq, time_ns"},
			{&s.dChain, "INSERT INTO audit_chain (seq, kind, request_id, payload, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?)"},
		} {
			st, err := pc.PrepareContext(ctx, p.sql)
			if err != nil {
				return err
			}
			ds, ok := st.(driverStmt)
			if !ok {
				st.Close()
				return fmt.Errorf("driver statement %T cannot execute with a context", st)
			}
			*p.st = ds
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("audit sqlite: prepare: %w", err)
	}
	if s.stHead, err = s.conn.PrepareContext(ctx, "SELECT seq, hash FROM audit_chain ORDER BY seq DESC LIMIT 1"); err != nil {
		return fmt.Errorf("audit sqlite: prepare: %w", err)
	}
	if err := s.loadHead(ctx); err != nil {
		return err
	}
	if err = s.conn.QueryRowContext(ctx, "SELECT COALESCE(MAX(size), 0) FROM audit_checkpoints").Scan(&s.signedAt); err != nil {
		return fmt.Errorf("audit sqlite: checkpoints: %w", err)
	}
	// SQLite's page cache is 2,000 KiB per connection by default, and
	// modernc builds SQLite with SQLITE_ENABLE_MEMORY_MANAGEMENT: every
	// connection in the process shares one page budget (the sum of their
	// cache_size, in pages), and the writer, touching new pages all the
	// time, grows into whatever the others are allowed and do not use.
	// So every other connection in the process keeps a small cache
	// (readers serve occasional queries and the revocation store's list
	// is small); the writer keeps the default for the indexes it inserts
	// into.
	if s.reader, err = sql.Open("sqlite", base+"&_pragma=query_only(1)&_pragma=cache_size(-512)"); err != nil {
		return fmt.Errorf("audit sqlite: %w", err)
	}
	s.reader.SetMaxOpenConns(4)
	return nil
}

// migrate applies the embedded migrations not yet recorded in
// schema_migrations, each in its own transaction.
func migrate(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_ns INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("audit sqlite: migrations table: %w", err)
	}
	var current int
	if err := conn.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&current); err != nil {
		return fmt.Errorf("audit sqlite: schema version: %w", err)
	}
	migrations, latest, err := sqlrow.Migrations(migrationFS, "migrations")
	if err != nil {
		return fmt.Errorf("audit sqlite: %w", err)
	}
	for _, m := range migrations {
		if m.Version <= current {
			continue
		}
		if err := applyMigration(ctx, conn, m.Version, m.Name, m.Body); err != nil {
			return err
		}
	}
	if current > latest {
		return fmt.Errorf("audit sqlite: database schema version %d is newer than this binary's %d; upgrade gatehouse", current, latest)
	}
	return nil
}

func applyMigration(ctx context.Context, conn *sql.Conn, v int, name, body string) (err error) {
	if _, err = conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("audit sqlite: migration %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			_, _ = conn.ExecContext(context.Background(), "ROLLBACK")
		}
	}()
	if _, err = conn.ExecContext(ctx, body); err != nil {
		return fmt.Errorf("audit sqlite: migration %s: %w", name, err)
	}
	if _, err = conn.ExecContext(ctx, "INSERT INTO schema_migrations (version, name, applied_ns) VALUES (?, ?, ?)",
		v, name, time.Now().UnixNano()); err != nil {
		return fmt.Errorf("audit sqlite: migration %s: %w", name, err)
	}
	if _, err = conn.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("audit sqlite: migration %s: %w", name, err)
	}
	return nil
}

func (s *Store) checkFatal() error {
	if err, _ := s.fatal.Load().(error); err != nil {
		return err
	}
	return nil
}

// Begin inserts recs in one transaction and assigns their Seq. It returns
// once the commit is in the WAL (crash) or fsynced (always).
func (s *Store) Begin(ctx context.Context, recs []*audit.Record) error {
	return s.write(ctx, recs, true)
}

// Finish writes the final state of recs in one transaction. A record that
// was never begun (its Begin failed in fail-open mode) is inserted, so the
// gap closes once the store is back.
func (s *Store) Finish(ctx context.Context, recs []*audit.Record) error {
	return s.write(ctx, recs, false)
}

func (s *Store) write(ctx context.Context, recs []*audit.Record, begin bool) error {
	if len(recs) == 0 {
		return nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.checkFatal(); err != nil {
		return err
	}
	// The driver watches a cancellable context with one goroutine per
	// statement, which doubles the cost of a small commit. Local writes
	// are bounded by busy_timeout instead; a cancelled caller still gets
	// its answer from the Recorder without waiting.
	ctx = context.WithoutCancel(ctx)
	var seqs []int64
	err := s.chainTx(ctx, func(ctx context.Context) error {
		var err error
		seqs, err = s.writeRecords(ctx, recs, begin)
		return err
	})
	if err != nil {
		return err
	}
	for i, seq := range seqs {
		recs[i].Seq = seq
	}
	return nil
}

// chainTx runs fn in a write transaction that may append to the chain;
// wmu is held. If another process appended meanwhile, it retries once from
// the new head.
func (s *Store) chainTx(ctx context.Context, fn func(context.Context) error) error {
	err := s.chainTxOnce(ctx, fn)
	if errors.Is(err, errChainMoved) {
		if err := s.loadHead(ctx); err != nil {
			return err
		}
		err = s.chainTxOnce(ctx, fn)
	}
	return err
}

func (s *Store) chainTxOnce(ctx context.Context, fn func(context.Context) error) (err error) {
	if _, err := s.stBegin.ExecContext(ctx); err != nil {
		return fmt.Errorf("audit sqlite: begin: %w", err)
	}
	headSeq, head := s.headSeq, s.head
	defer func() {
		if err != nil {
			s.headSeq, s.head = headSeq, head
			_, _ = s.conn.ExecContext(context.Background(), "ROLLBACK")
		}
	}()
	if err := fn(ctx); err != nil {
		return err
	}
	if _, err := s.stCommit.ExecContext(ctx); err != nil {
		return fmt.Errorf("audit sqlite: commit: %w", err)
	}
	s.dirty.Store(true)
	return nil
}

// errChainMoved marks a chain insert that collided with an entry another
// process wrote; the transaction is retried from the new head.
var errChainMoved = errors.New("audit sqlite: chain head moved")

// driverStmt is a statement prepared on the driver connection.
type driverStmt interface {
	driver.Stmt
	driver.StmtExecContext
	driver.StmtQueryContext
}

// bind returns args as the driver's arguments, in a buffer reused under
// wmu.
func (s *Store) bind(args ...any) []driver.NamedValue {
	s.nv = s.nv[:0]
	for i, a := range args {
		s.nv = append(s.nv, driver.NamedValue{Ordinal: i + 1, Value: a})
	}
	return s.nv
}

// writeRecords writes recs and their chain entries inside chainTx and
// returns the seqs assigned by Begin.
func (s *Store) writeRecords(ctx context.Context, recs []*audit.Record, begin bool) (seqs []int64, err error) {
	if begin {
		seqs = make([]int64, len(recs))
	}
	err = s.conn.Raw(func(any) error {
		defer func() { clear(s.args); clear(s.nv) }() // keep no record alive
		for i, r := range recs {
			if r.RequestID == "" {
				return errors.New("audit sqlite: record without request_id")
			}
			cp := *r
			kind := audit.EntryFinish
			s.args = sqlrow.AppendArgs(s.args[:0], r)
			if begin {
				kind = audit.EntryBegin
				res, err := s.dInsert.ExecContext(ctx, s.bind(s.args...))
				if err != nil {
					return fmt.Errorf("audit sqlite: insert %s: %w", r.RequestID, err)
				}
				if seqs[i], err = res.LastInsertId(); err != nil {
					return err
				}
				cp.Seq = seqs[i]
			} else {
				seq, ns, err := s.upsert(ctx)
				if err != nil {
					return fmt.Errorf("audit sqlite: finish %s: %w", r.RequestID, err)
				}
				cp.Seq, cp.Time = seq, time.Unix(0, ns)
			}
			if err := s.appendChain(ctx, kind, &cp); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return seqs, nil
}

// upsert runs dUpsert with s.args and returns the row's seq and time_ns.
func (s *Store) upsert(ctx context.Context) (seq, ns int64, err error) {
	rows, err := s.dUpsert.QueryContext(ctx, s.bind(s.args...))
	if err != nil {
		return 0, 0, err
	}
	var dest [2]driver.Value
	err = rows.Next(dest[:])
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	if err == io.EOF {
		err = errors.New("upsert returned no row")
	}
	if err != nil {
		return 0, 0, err
	}
	seq, ok1 := dest[0].(int64)
	ns, ok2 := dest[1].(int64)
	if !ok1 || !ok2 {
		return 0, 0, fmt.Errorf("upsert returned %T, %T", dest[0], dest[1])
	}
	return seq, ns, nil
}

// loadHead reads the chain head; inside a write transaction this picks up
// entries another process (for example `gatehouse audit purge`) appended.
func (s *Store) loadHead(ctx context.Context) error {
	err := s.stHead.QueryRowContext(ctx).Scan(&s.headSeq, &s.head)
	if errors.Is(err, sql.ErrNoRows) {
		s.headSeq, s.head = 0, audit.GenesisHash()
		return nil
	}
	if err != nil {
		return fmt.Errorf("audit sqlite: chain head: %w", err)
	}
	return nil
}

// appendChain adds the chain entry for rec (as now stored) inside the
// current transaction; wmu is held and it runs inside s.conn.Raw.
func (s *Store) appendChain(ctx context.Context, kind string, rec *audit.Record) error {
	payload, err := audit.AppendPayload(s.pbuf[:0], rec)
	if err != nil {
		return fmt.Errorf("audit sqlite: %w", err)
	}
	s.pbuf = payload // reused: the driver copies what it binds
	return s.appendEntry(ctx, kind, rec.RequestID, payload)
}

// appendRaw appends one entry under key (a request id, or
// audit.ContentKey for captured content) inside the current transaction;
// wmu is held.
func (s *Store) appendRaw(ctx context.Context, kind, key string, payload []byte) error {
	return s.conn.Raw(func(any) error { return s.appendEntry(ctx, kind, key, payload) })
}

// appendEntry is appendRaw inside s.conn.Raw.
func (s *Store) appendEntry(ctx context.Context, kind, key string, payload []byte) error {
	seq := s.headSeq + 1
	h := audit.HashEntry(s.head, seq, kind, key, payload)
	if _, err := s.dChain.ExecContext(ctx, s.bind(seq, kind, key, payload, s.head, h)); err != nil {
		if strings.Contains(err.Error(), "UNIQUE constraint failed: audit_chain.seq") {
			return fmt.Errorf("%w: %w", errChainMoved, err)
		}
		return fmt.Errorf("audit sqlite: chain: %w", err)
	}
	s.headSeq, s.head = seq, h
	return nil
}

// Checkpoint writes a signed checkpoint of the chain's current head if
// the chain grew since the last one. Without a SigningKey it does nothing.
func (s *Store) Checkpoint(ctx context.Context) error {
	if s.opts.SigningKey == nil {
		return nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.checkFatal(); err != nil {
		return err
	}
	if err := s.loadHead(ctx); err != nil {
		return err
	}
	if err := s.conn.QueryRowContext(ctx, "SELECT COALESCE(MAX(size), 0) FROM audit_checkpoints").Scan(&s.signedAt); err != nil {
		return fmt.Errorf("audit sqlite: checkpoints: %w", err)
	}
	if s.headSeq == s.signedAt {
		return nil
	}
	c := audit.SignCheckpoint(s.opts.SigningKey, chainName, s.headSeq, s.head, time.Now())
	if _, err := s.conn.ExecContext(ctx, "INSERT INTO audit_checkpoints (size, head, time_ns, key_id, note, signature) VALUES (?, ?, ?, ?, ?, ?)",
		c.Size, c.Head, c.Time.UnixNano(), c.KeyID, c.Note, c.Signature); err != nil {
		return fmt.Errorf("audit sqlite: checkpoint: %w", err)
	}
	s.dirty.Store(true)
	s.signedAt = c.Size
	return nil
}

// List returns the records matching f in Seq order.
func (s *Store) List(ctx context.Context, f audit.Filter) ([]audit.Record, error) {
	where, args := sqlrow.Where(f, func(int) string { return "?" })
	rows, err := s.reader.QueryContext(ctx,
		"SELECT "+sqlrow.SelectList()+" FROM audit_records"+where+" ORDER BY seq"+sqlrow.Limit(f), args...)
	if err != nil {
		return nil, fmt.Errorf("audit sqlite: list: %w", err)
	}
	defer rows.Close()
	out, err := sqlrow.AllRecords(rows)
	if err != nil {
		return nil, fmt.Errorf("audit sqlite: list: %w", err)
	}
	return out, nil
}

// Recover marks records left begun (by instance, or by anyone when
// instance is empty) as unfinished, with reason crash_recovered, and chains
// each change.
func (s *Store) Recover(ctx context.Context, instance string) (n int, err error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.checkFatal(); err != nil {
		return 0, err
	}
	rows, err := s.conn.QueryContext(ctx, "SELECT "+sqlrow.SelectList()+" FROM audit_records WHERE state = ? AND (? = '' OR instance = ?) ORDER BY seq",
		string(audit.StateBegun), instance, instance)
	if err != nil {
		return 0, fmt.Errorf("audit sqlite: recover: %w", err)
	}
	open, err := sqlrow.AllRecords(rows)
	rows.Close()
	if err != nil {
		return 0, fmt.Errorf("audit sqlite: recover: %w", err)
	}
	if len(open) == 0 {
		return 0, nil
	}
	if err := s.loadHead(ctx); err != nil {
		return 0, err
	}
	err = s.chainTx(ctx, func(ctx context.Context) error {
		for i := range open {
			r := &open[i]
			r.State = audit.StateUnfinished
			if r.Reason == "" {
				r.Reason = "crash_recovered"
			}
			if _, err := s.conn.ExecContext(ctx, "UPDATE audit_records SET state = ?, reason = ? WHERE seq = ?", string(r.State), r.Reason, r.Seq); err != nil {
				return fmt.Errorf("audit sqlite: recover: %w", err)
			}
			if err := s.conn.Raw(func(any) error { return s.appendChain(ctx, audit.EntryRecover, r) }); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return len(open), nil
}

// Verify re-computes the hash chain, checks the signed checkpoints with
// pub (nil: signatures unchecked, tail truncation undetectable) and
// compares every record with its last chain entry. It reads through the
// read-only pool, so the gateway keeps running.
func (s *Store) Verify(ctx context.Context, pub ed25519.PublicKey) (*audit.VerifyReport, error) {
	return s.VerifyAnchored(ctx, pub, nil)
}

// VerifyAnchored is Verify plus checkpoints kept outside the store (the
// exporters' checkpoint events).
func (s *Store) VerifyAnchored(ctx context.Context, pub ed25519.PublicKey, anchors []audit.Checkpoint) (*audit.VerifyReport, error) {
	fetch := func(_ string, seq int64) (*audit.ChainEntry, error) {
		e := &audit.ChainEntry{Chain: chainName}
		err := s.reader.QueryRowContext(ctx, "SELECT seq, kind, request_id, payload, prev_hash, hash FROM audit_chain WHERE seq = ?", seq).
			Scan(&e.Seq, &e.Kind, &e.RequestID, &e.Payload, &e.PrevHash, &e.Hash)
		return e, err
	}
	v := audit.NewChainVerifier(pub, fetch)
	// One read transaction: a consistent snapshot of all three tables.
	tx, err := s.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("audit sqlite: verify: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, "SELECT seq, kind, request_id, payload, prev_hash, hash FROM audit_chain ORDER BY seq")
	if err != nil {
		return nil, fmt.Errorf("audit sqlite: verify: %w", err)
	}
	for rows.Next() {
		e := &audit.ChainEntry{Chain: chainName}
		if err := rows.Scan(&e.Seq, &e.Kind, &e.RequestID, &e.Payload, &e.PrevHash, &e.Hash); err != nil {
			rows.Close()
			return nil, fmt.Errorf("audit sqlite: verify: %w", err)
		}
		v.Entry(e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit sqlite: verify: %w", err)
	}
	rows, err = tx.QueryContext(ctx, "SELECT size, head, time_ns, key_id, note, signature FROM audit_checkpoints ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("audit sqlite: verify: %w", err)
	}
	for rows.Next() {
		c := &audit.Checkpoint{Chain: chainName}
		var ns int64
		if err := rows.Scan(&c.Size, &c.Head, &ns, &c.KeyID, &c.Note, &c.Signature); err != nil {
			rows.Close()
			return nil, fmt.Errorf("audit sqlite: verify: %w", err)
		}
		c.Time = time.Unix(0, ns).UTC()
		v.Checkpoint(c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit sqlite: verify: %w", err)
	}
	for i := range anchors {
		v.Anchor(&anchors[i])
	}
	rows, err = tx.QueryContext(ctx, "SELECT "+sqlrow.SelectList()+" FROM audit_records ORDER BY seq")
	if err != nil {
		return nil, fmt.Errorf("audit sqlite: verify: %w", err)
	}
	defer rows.Close()
	if err := sqlrow.EachRecord(rows, v.Record); err != nil {
		return nil, fmt.Errorf("audit sqlite: verify: %w", err)
	}
	rows.Close()
	crows, err := tx.QueryContext(ctx, "SELECT "+sqlrow.ContentColumns+" FROM audit_content ORDER BY request_id")
	if err != nil {
		return nil, fmt.Errorf("audit sqlite: verify: %w", err)
	}
	defer crows.Close()
	for crows.Next() {
		e, err := sqlrow.ScanContent(crows)
		if err != nil {
			return nil, fmt.Errorf("audit sqlite: verify: %w", err)
		}
		v.Content(e.RequestID, content.MetaPayload(e))
	}
	if err := crows.Err(); err != nil {
		return nil, fmt.Errorf("audit sqlite: verify: %w", err)
	}
	return v.Report(), nil
}

// background fsyncs the WAL after commits (level crash) and checkpoints it
// periodically, until Close.
func (s *Store) background() {
	defer close(s.done)
	syncT := time.NewTicker(s.opts.SyncInterval)
	defer syncT.Stop()
	ckptT := time.NewTicker(s.opts.WALCheckpointInterval)
	signT := time.NewTicker(s.opts.CheckpointEvery)
	defer signT.Stop()
	defer ckptT.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-syncT.C:
			if s.opts.Sync == SyncCrash {
				s.syncWAL()
			}
		case <-signT.C:
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := s.Checkpoint(ctx); err != nil {
				s.log.Warn("audit sqlite: signed checkpoint failed", slog.Any("err", err))
			}
			cancel()
		case <-ckptT.C:
			if s.checkFatal() != nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := s.checkpointWAL(ctx); err != nil {
				s.log.Warn("audit sqlite: WAL checkpoint failed", slog.Any("err", err))
			}
			cancel()
		}
	}
}

// checkpointWAL copies the WAL into the database file. It runs on the
// writer connection between write transactions (wmu held), so no commit
// lands while it runs: it always copies the whole WAL, and the next write
// starts the WAL again from its beginning, over pages the kernel already
// holds. Run from a second connection while the ingester keeps writing,
// a checkpoint almost never catches up, and the WAL grew by every byte
// written (over 100 MB in 20 seconds of load) instead of staying at about
// one checkpoint interval's worth. A checkpoint that another process's
// write keeps from completing is retried on the next tick.
func (s *Store) checkpointWAL(ctx context.Context) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.checkFatal(); err != nil {
		return err
	}
	if _, err := s.conn.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)"); err != nil {
		return fmt.Errorf("audit sqlite: WAL checkpoint: %w", err)
	}
	return nil
}

// syncWAL fsyncs the WAL file if anything was committed since the last
// fsync. An fsync error is fatal (the kernel may have dropped the pages):
// every later write fails until the process restarts.
func (s *Store) syncWAL() {
	if !s.dirty.Swap(false) {
		return
	}
	s.walMu.Lock()
	defer s.walMu.Unlock()
	if s.wal == nil {
		f, err := os.OpenFile(s.opts.Path+"-wal", os.O_RDWR, 0)
		if err != nil {
			s.dirty.Store(true)
			s.log.Error("audit sqlite: open WAL for fsync", slog.Any("err", err))
			return
		}
		s.wal = f
	}
	if err := s.fsync(s.wal); err != nil {
		s.fatal.Store(fmt.Errorf("audit sqlite: WAL fsync failed, store unusable until restart: %w", err))
		s.log.Error("audit sqlite: WAL fsync failed; refusing further writes", slog.Any("err", err))
		return
	}
	s.syncs.Add(1)
}

// Close stops the background loop, writes a final signed checkpoint,
// fsyncs outstanding commits and closes the database.
func (s *Store) Close() error {
	if s.opts.ReadOnly {
		return s.reader.Close()
	}
	close(s.stop)
	<-s.done
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if err := s.Checkpoint(ctx); err != nil {
		s.log.Warn("audit sqlite: final checkpoint failed", slog.Any("err", err))
	}
	cancel()
	if s.opts.Sync == SyncCrash {
		s.syncWAL()
	}
	err := s.closeDBs()
	s.walMu.Lock()
	if s.wal != nil {
		_ = s.wal.Close()
		s.wal = nil
	}
	s.walMu.Unlock()
	return err
}

func (s *Store) closeDBs() error {
	var errs []error
	if s.conn != nil {
		errs = append(errs, s.conn.Raw(func(any) error {
			for _, st := range []driverStmt{s.dInsert, s.dUpsert, s.dChain} {
				if st != nil {
					errs = append(errs, st.Close())
				}
			}
			return nil
		}))
	}
	for _, st := range []*sql.Stmt{s.stBegin, s.stCommit, s.stHead} {
		if st != nil {
			_ = st.Close()
		}
	}
	if s.conn != nil {
		errs = append(errs, s.conn.Close())
	}
	for _, db := range []*sql.DB{s.reader, s.writer} {
		if db != nil {
			errs = append(errs, db.Close())
		}
	}
	return errors.Join(errs...)
}

// Chains lists the store's hash chains (SQLite has one).
func (s *Store) Chains(ctx context.Context) ([]string, error) { return []string{chainName}, nil }

// ChainAfter returns up to limit entries of chain after position after,
// in order (the exporters' source).
func (s *Store) ChainAfter(ctx context.Context, chain string, after int64, limit int) ([]audit.ChainEntry, error) {
	if chain != chainName {
		return nil, nil
	}
	rows, err := s.reader.QueryContext(ctx, "SELECT seq, kind, request_id, payload, prev_hash, hash FROM audit_chain WHERE seq > ? ORDER BY seq LIMIT ?", after, limit)
	if err != nil {
		return nil, fmt.Errorf("audit sqlite: chain: %w", err)
	}
	defer rows.Close()
	var out []audit.ChainEntry
	for rows.Next() {
		e := audit.ChainEntry{Chain: chainName}
		if err := rows.Scan(&e.Seq, &e.Kind, &e.RequestID, &e.Payload, &e.PrevHash, &e.Hash); err != nil {
			return nil, fmt.Errorf("audit sqlite: chain: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// CheckpointsAfter returns up to limit signed checkpoints with row id
// greater than after (the exporters anchor them off the machine).
func (s *Store) CheckpointsAfter(ctx context.Context, after int64, limit int) ([]audit.Checkpoint, error) {
	rows, err := s.reader.QueryContext(ctx, "SELECT id, size, head, time_ns, key_id, note, signature FROM audit_checkpoints WHERE id > ? ORDER BY id LIMIT ?", after, limit)
	if err != nil {
		return nil, fmt.Errorf("audit sqlite: checkpoints: %w", err)
	}
	defer rows.Close()
	var out []audit.Checkpoint
	for rows.Next() {
		c := audit.Checkpoint{Chain: chainName}
		var ns int64
		if err := rows.Scan(&c.ID, &c.Size, &c.Head, &ns, &c.KeyID, &c.Note, &c.Signature); err != nil {
			return nil, fmt.Errorf("audit sqlite: checkpoints: %w", err)
		}
		c.Time = time.Unix(0, ns).UTC()
		out = append(out, c)
	}
	return out, rows.Err()
}

// WALSyncs returns how many background WAL fsyncs the store has done
// (sync level crash), for metrics and tests.
func (s *Store) WALSyncs() uint64 { return s.syncs.Load() }
