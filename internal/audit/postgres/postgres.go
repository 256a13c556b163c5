// Package postgres is the scale-out audit store: PostgreSQL through pgx v5,
// with versioned embedded migrations, records partitioned by month (so
// retention drops whole partitions), and one hash chain per writer
// instance so several gateway replicas can write at once.
//
// Multi-writer chain: each Store owns the chain named by its Instance and
// holds a session advisory lock on it for its whole life, so exactly one
// process appends to a chain; replicas never contend on a shared head.
// Every chain has its own signed checkpoints; Verify checks all of them.
// Records are globally ordered by a sequence (seq).
package postgres

import (
	"context"
	"crypto/ed25519"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/audit/content"
	"github.com/gatehouse-dev/gatehouse/internal/audit/internal/sqlrow"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Options configures Open. Zero values are the documented defaults.
type Options struct {
	// DSN is a postgres:// URL. Required.
	DSN string
	// Schema holds the tables; created if missing. Default: the DSN's
	// search_path parameter, else "public".
	Schema string
	// Instance names this writer's hash chain. Required for writing; two
	// live stores with the same Instance are refused.
	Instance string
	// SigningKey signs checkpoints of this instance's chain. Nil: none.
	SigningKey ed25519.PrivateKey
	// CheckpointEvery is how often a signed checkpoint is written when the
	// chain has grown. Default 10s. Close writes a final one.
	CheckpointEvery time.Duration
	// Retention drops monthly partitions whose newest possible record is
	// older than this. Zero keeps everything.
	Retention time.Duration
	// MaintenanceEvery is how often partitions are created ahead and
	// retention is applied. Default 1h.
	MaintenanceEvery time.Duration
	// ReadOnly opens for List and Verify only: no chain lock, no writes.
	ReadOnly bool
	// Logger receives background errors. Default: discard.
	Logger *slog.Logger
	// Now is the clock for partitions and retention. Default time.Now.
	Now func() time.Time
}

// ErrReadOnly is returned by writes to a store opened ReadOnly.
var ErrReadOnly = errors.New("audit postgres: store opened read-only")

// Store implements audit.Store, audit.Recoverer and audit.Verifier.
type Store struct {
	opts Options
	log  *slog.Logger
	pool *pgxpool.Pool
	lock *pgxpool.Conn // holds the chain's advisory lock

	mu       sync.Mutex // one writer per chain: serialises the head
	headSeq  int64
	head     []byte
	signedAt int64

	pmu    sync.Mutex
	months map[int64]bool // partitions known to exist (by month start ns)

	stop chan struct{}
	done chan struct{}
}

var (
	_ audit.Store     = (*Store)(nil)
	_ audit.Recoverer = (*Store)(nil)
	_ audit.Verifier  = (*Store)(nil)
)

var identRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Open connects, migrates (under an advisory lock, so replicas starting
// together do not collide), locks this instance's chain and starts the
// background checkpoint and maintenance loop.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.DSN == "" {
		return nil, errors.New("audit postgres: DSN is required")
	}
	if !opts.ReadOnly && opts.Instance == "" {
		return nil, errors.New("audit postgres: Instance is required for writing")
	}
	if opts.CheckpointEvery <= 0 {
		opts.CheckpointEvery = 10 * time.Second
	}
	if opts.MaintenanceEvery <= 0 {
		opts.MaintenanceEvery = time.Hour
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	cfg, err := pgxpool.ParseConfig(opts.DSN)
	if err != nil {
		return nil, errors.New("audit postgres: the DSN is not a valid postgres:// URL")
	}
	if opts.Schema == "" {
		opts.Schema = cfg.ConnConfig.RuntimeParams["search_path"] // ?search_path=… in the DSN
	}
	if opts.Schema == "" {
		opts.Schema = "public"
	}
	if !identRE.MatchString(opts.Schema) {
		return nil, fmt.Errorf("audit postgres: schema %q must be a lower-case identifier", opts.Schema)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = opts.Schema
	cfg.ConnConfig.RuntimeParams["application_name"] = "gatehouse-audit"
	s := &Store{opts: opts, log: opts.Logger, months: map[int64]bool{}, head: audit.GenesisHash(),
		stop: make(chan struct{}), done: make(chan struct{})}
	if s.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return nil, fmt.Errorf("audit postgres: %w", err)
	}
	if err := s.init(ctx); err != nil {
		s.pool.Close()
		return nil, err
	}
	if opts.ReadOnly {
		close(s.done)
		return s, nil
	}
	go s.background()
	return s, nil
}

func (s *Store) init(ctx context.Context) error {
	if !s.opts.ReadOnly {
		if _, err := s.pool.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+s.opts.Schema); err != nil {
			return fmt.Errorf("audit postgres: create schema: %w", err)
		}
		if err := s.migrate(ctx); err != nil {
			return err
		}
		var err error
		if s.lock, err = s.pool.Acquire(ctx); err != nil {
			return fmt.Errorf("audit postgres: %w", err)
		}
		var ok bool
		if err := s.lock.QueryRow(ctx, "SELECT pg_try_advisory_lock(hashtextextended($1, 0))", "gatehouse-audit-chain/"+s.opts.Schema+"/"+s.opts.Instance).Scan(&ok); err != nil {
			s.lock.Release()
			return fmt.Errorf("audit postgres: chain lock: %w", err)
		}
		if !ok {
			s.lock.Release()
			return fmt.Errorf("audit postgres: instance %q is already writing its audit chain in another process; give every replica a unique audit.instance", s.opts.Instance)
		}
		err = s.pool.QueryRow(ctx, "SELECT seq, hash FROM audit_chain WHERE chain = $1 ORDER BY seq DESC LIMIT 1", s.opts.Instance).Scan(&s.headSeq, &s.head)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("audit postgres: chain head: %w", err)
		}
		if err := s.pool.QueryRow(ctx, "SELECT COALESCE(MAX(size), 0) FROM audit_checkpoints WHERE chain = $1", s.opts.Instance).Scan(&s.signedAt); err != nil {
			return fmt.Errorf("audit postgres: checkpoints: %w", err)
		}
		now := s.opts.Now()
		for _, t := range []time.Time{now, now.AddDate(0, 1, 0)} {
			if err := s.ensurePartition(ctx, t); err != nil {
				s.log.Warn("audit postgres: creating a partition failed; records go to the default partition", slog.Any("err", err))
			}
		}
		return nil
	}
	return s.pool.Ping(ctx)
}

func (s *Store) migrate(ctx context.Context) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("audit postgres: migrate: %w", err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", "gatehouse-audit-migrate/"+s.opts.Schema); err != nil {
		return fmt.Errorf("audit postgres: migrate lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version integer PRIMARY KEY, name text NOT NULL, applied_ns bigint NOT NULL)`); err != nil {
		return fmt.Errorf("audit postgres: migrations table: %w", err)
	}
	var current int
	if err := tx.QueryRow(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&current); err != nil {
		return fmt.Errorf("audit postgres: schema version: %w", err)
	}
	migrations, latest, err := sqlrow.Migrations(migrationFS, "migrations")
	if err != nil {
		return fmt.Errorf("audit postgres: %w", err)
	}
	for _, m := range migrations {
		if m.Version <= current {
			continue
		}
		if _, err := tx.Exec(ctx, m.Body); err != nil {
			return fmt.Errorf("audit postgres: migration %s: %w", m.Name, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name, applied_ns) VALUES ($1, $2, $3)", m.Version, m.Name, time.Now().UnixNano()); err != nil {
			return fmt.Errorf("audit postgres: migration %s: %w", m.Name, err)
		}
	}
	if current > latest {
		return fmt.Errorf("audit postgres: database schema version %d is newer than this binary's %d; upgrade gatehouse", current, latest)
	}
	return tx.Commit(ctx)
}

// monthStart returns the first instant (UTC) of t's month.
func monthStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

func partitionName(m time.Time) string {
	return fmt.Sprintf("audit_records_%04d%02d", m.Year(), int(m.Month()))
}

// ensurePartition creates the monthly partition holding t if it does not
// exist. If the default partition already holds rows of that month the
// creation fails and those records stay in the default partition.
func (s *Store) ensurePartition(ctx context.Context, t time.Time) error {
	m := monthStart(t)
	s.pmu.Lock()
	known := s.months[m.UnixNano()]
	s.pmu.Unlock()
	if known {
		return nil
	}
	next := m.AddDate(0, 1, 0)
	_, err := s.pool.Exec(ctx, fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s PARTITION OF audit_records FOR VALUES FROM (%d) TO (%d)",
		partitionName(m), m.UnixNano(), next.UnixNano()))
	var pgErr *pgconn.PgError
	if err != nil && errors.As(err, &pgErr) && (pgErr.Code == "42P07" || pgErr.Code == "23505") {
		err = nil // created concurrently by another replica
	}
	if err != nil {
		return fmt.Errorf("audit postgres: partition %s: %w", partitionName(m), err)
	}
	s.pmu.Lock()
	s.months[m.UnixNano()] = true
	s.pmu.Unlock()
	return nil
}

// Begin inserts recs and their chain entries in one transaction.
func (s *Store) Begin(ctx context.Context, recs []*audit.Record) error {
	return s.write(ctx, recs, true)
}

// Finish upserts the final state of recs (inserting never-begun ones) and
// chains each, in one transaction. Time must be the one given to Begin.
func (s *Store) Finish(ctx context.Context, recs []*audit.Record) error {
	return s.write(ctx, recs, false)
}

var (
	insertSQL = func() string {
		cols := strings.Join(sqlrow.Columns, ", ")
		var ph []string
		for i := range sqlrow.Columns {
			ph = append(ph, "$"+strconv.Itoa(i+1))
		}
		return "INSERT INTO audit_records (" + cols + ") VALUES (" + strings.Join(ph, ", ") + ")"
	}()
	upsertSQL = func() string {
		var sets []string
		for _, c := range sqlrow.Columns {
			if c != "request_id" && c != "time_ns" {
				sets = append(sets, c+" = excluded."+c)
			}
		}
		return insertSQL + " ON CONFLICT (request_id, time_ns) DO UPDATE SET " + strings.Join(sets, ", ") + " RETURNING seq"
	}()
)

const chainInsertSQL = "INSERT INTO audit_chain (chain, seq, kind, request_id, payload, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7)"

func (s *Store) write(ctx context.Context, recs []*audit.Record, begin bool) (err error) {
	if len(recs) == 0 {
		return nil
	}
	if s.opts.ReadOnly {
		return ErrReadOnly
	}
	for _, r := range recs {
		if r.RequestID == "" {
			return errors.New("audit postgres: record without request_id")
		}
		if err := s.ensurePartition(ctx, r.Time); err != nil {
			s.log.Warn("audit postgres: partition", slog.Any("err", err))
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("audit postgres: begin: %w", err)
	}
	defer tx.Rollback(context.Background())

	// Round trip 1: the rows (seq assigned), pipelined.
	seqs := make([]int64, len(recs))
	b := &pgx.Batch{}
	for _, r := range recs {
		if begin {
			b.Queue(insertSQL+" RETURNING seq", sqlrow.Args(r)...)
		} else {
			b.Queue(upsertSQL, sqlrow.Args(r)...)
		}
	}
	br := tx.SendBatch(ctx, b)
	for i, r := range recs {
		if err := br.QueryRow().Scan(&seqs[i]); err != nil {
			br.Close()
			return fmt.Errorf("audit postgres: write %s: %w", r.RequestID, err)
		}
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("audit postgres: write: %w", err)
	}
	// Round trip 2: the chain entries.
	kind := audit.EntryFinish
	if begin {
		kind = audit.EntryBegin
	}
	headSeq, head := s.headSeq, s.head
	b = &pgx.Batch{}
	for i, r := range recs {
		cp := *r
		cp.Seq = seqs[i]
		if err := s.queueChain(b, kind, &cp); err != nil {
			s.headSeq, s.head = headSeq, head
			return err
		}
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		s.headSeq, s.head = headSeq, head
		return fmt.Errorf("audit postgres: chain: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		s.headSeq, s.head = headSeq, head
		return fmt.Errorf("audit postgres: commit: %w", err)
	}
	if begin {
		for i, r := range recs {
			r.Seq = seqs[i]
		}
	}
	return nil
}

// queueChain queues the entry for rec and advances the in-memory head;
// s.mu is held and the caller restores the head if the transaction fails.
func (s *Store) queueChain(b *pgx.Batch, kind string, rec *audit.Record) error {
	payload, err := audit.RecordPayload(rec)
	if err != nil {
		return fmt.Errorf("audit postgres: %w", err)
	}
	s.queueRaw(b, kind, rec.RequestID, payload)
	return nil
}

// queueRaw queues one entry under key and advances the in-memory head.
func (s *Store) queueRaw(b *pgx.Batch, kind, key string, payload []byte) {
	seq := s.headSeq + 1
	h := audit.HashEntry(s.head, seq, kind, key, payload)
	b.Queue(chainInsertSQL, s.opts.Instance, seq, kind, key, payload, s.head, h)
	s.headSeq, s.head = seq, h
}

// List returns the records matching f in seq order.
func (s *Store) List(ctx context.Context, f audit.Filter) ([]audit.Record, error) {
	where, args := sqlrow.Where(f, func(n int) string { return "$" + strconv.Itoa(n) })
	rows, err := s.pool.Query(ctx, "SELECT "+sqlrow.SelectList()+" FROM audit_records"+where+" ORDER BY seq"+sqlrow.Limit(f), args...)
	if err != nil {
		return nil, fmt.Errorf("audit postgres: list: %w", err)
	}
	defer rows.Close()
	out, err := sqlrow.AllRecords(rows)
	if err != nil {
		return nil, fmt.Errorf("audit postgres: list: %w", err)
	}
	return out, nil
}

// Recover marks records left begun by instance (all instances when empty
// — only safe when no replica is running) as unfinished and chains each
// change on this store's chain.
func (s *Store) Recover(ctx context.Context, instance string) (int, error) {
	if s.opts.ReadOnly {
		return 0, ErrReadOnly
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("audit postgres: recover: %w", err)
	}
	defer tx.Rollback(context.Background())
	rows, err := tx.Query(ctx, `UPDATE audit_records SET state = $1,
		reason = CASE WHEN reason = '' THEN 'crash_recovered' ELSE reason END
		WHERE state = $2 AND ($3 = '' OR instance = $3) RETURNING `+sqlrow.SelectList(),
		string(audit.StateUnfinished), string(audit.StateBegun), instance)
	if err != nil {
		return 0, fmt.Errorf("audit postgres: recover: %w", err)
	}
	done, err := sqlrow.AllRecords(rows)
	rows.Close()
	if err != nil {
		return 0, fmt.Errorf("audit postgres: recover: %w", err)
	}
	if len(done) == 0 {
		return 0, nil
	}
	sort.Slice(done, func(i, j int) bool { return done[i].Seq < done[j].Seq })
	headSeq, head := s.headSeq, s.head
	b := &pgx.Batch{}
	for i := range done {
		if err := s.queueChain(b, audit.EntryRecover, &done[i]); err != nil {
			s.headSeq, s.head = headSeq, head
			return 0, err
		}
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		s.headSeq, s.head = headSeq, head
		return 0, fmt.Errorf("audit postgres: recover: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		s.headSeq, s.head = headSeq, head
		return 0, fmt.Errorf("audit postgres: recover: %w", err)
	}
	return len(done), nil
}

// Checkpoint writes a signed checkpoint of this instance's chain if it grew.
func (s *Store) Checkpoint(ctx context.Context) error {
	if s.opts.SigningKey == nil || s.opts.ReadOnly {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.headSeq == s.signedAt {
		return nil
	}
	c := audit.SignCheckpoint(s.opts.SigningKey, s.opts.Instance, s.headSeq, s.head, time.Now())
	if _, err := s.pool.Exec(ctx, "INSERT INTO audit_checkpoints (chain, size, head, time_ns, key_id, note, signature) VALUES ($1, $2, $3, $4, $5, $6, $7)",
		c.Chain, c.Size, c.Head, c.Time.UnixNano(), c.KeyID, c.Note, c.Signature); err != nil {
		return fmt.Errorf("audit postgres: checkpoint: %w", err)
	}
	s.signedAt = c.Size
	return nil
}

// ApplyRetention creates next month's partition and drops every monthly
// partition that ends before now - Retention, logging the horizon so
// Verify does not report the dropped records as deleted.
func (s *Store) ApplyRetention(ctx context.Context) ([]string, error) {
	now := s.opts.Now()
	if err := s.ensurePartition(ctx, now.AddDate(0, 1, 0)); err != nil {
		s.log.Warn("audit postgres: partition", slog.Any("err", err))
	}
	if s.opts.Retention <= 0 {
		return nil, nil
	}
	horizon := now.Add(-s.opts.Retention)
	rows, err := s.pool.Query(ctx, `SELECT c.relname FROM pg_inherits i
		JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
		JOIN pg_namespace n ON n.oid = p.relnamespace
		WHERE p.relname = 'audit_records' AND n.nspname = $1`, s.opts.Schema)
	if err != nil {
		return nil, fmt.Errorf("audit postgres: retention: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("audit postgres: retention: %w", err)
	}
	sort.Strings(names)
	var dropped []string
	for _, n := range names {
		var y, m int
		if _, err := fmt.Sscanf(n, "audit_records_%04d%02d", &y, &m); err != nil {
			continue // the default partition
		}
		end := time.Date(y, time.Month(m), 1, 0, 0, 0, 0, time.UTC).AddDate(0, 1, 0)
		if !end.Before(horizon) && !end.Equal(horizon) {
			continue
		}
		tx, err := s.pool.Begin(ctx)
		if err != nil {
			return dropped, err
		}
		if _, err := tx.Exec(ctx, "DROP TABLE "+n); err == nil {
			_, err = tx.Exec(ctx, "INSERT INTO audit_retention (partition, horizon_ns, dropped_ns) VALUES ($1, $2, $3)", n, end.UnixNano(), now.UnixNano())
			if err == nil {
				err = tx.Commit(ctx)
			}
		}
		tx.Rollback(context.Background())
		if err != nil {
			return dropped, fmt.Errorf("audit postgres: dropping %s: %w", n, err)
		}
		s.pmu.Lock()
		delete(s.months, time.Date(y, time.Month(m), 1, 0, 0, 0, 0, time.UTC).UnixNano())
		s.pmu.Unlock()
		dropped = append(dropped, n)
		s.log.Info("audit postgres: retention dropped a partition", slog.String("partition", n))
	}
	return dropped, nil
}

func (s *Store) background() {
	defer close(s.done)
	ck := time.NewTicker(s.opts.CheckpointEvery)
	defer ck.Stop()
	mt := time.NewTicker(s.opts.MaintenanceEvery)
	defer mt.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-ck.C:
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := s.Checkpoint(ctx); err != nil {
				s.log.Warn("audit postgres: signed checkpoint failed", slog.Any("err", err))
			}
			cancel()
		case <-mt.C:
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if _, err := s.ApplyRetention(ctx); err != nil {
				s.log.Warn("audit postgres: maintenance failed", slog.Any("err", err))
			}
			cancel()
		}
	}
}

// Verify checks every chain, its checkpoints (with pub), and every record,
// in one repeatable-read snapshot. Records older than the retention
// horizon may be missing.
func (s *Store) Verify(ctx context.Context, pub ed25519.PublicKey) (*audit.VerifyReport, error) {
	return s.VerifyAnchored(ctx, pub, nil)
}

// VerifyAnchored is Verify plus checkpoints kept outside the store (the
// exporters' checkpoint events).
func (s *Store) VerifyAnchored(ctx context.Context, pub ed25519.PublicKey, anchors []audit.Checkpoint) (*audit.VerifyReport, error) {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("audit postgres: verify: %w", err)
	}
	defer tx.Rollback(context.Background())
	fetch := func(chain string, seq int64) (*audit.ChainEntry, error) {
		e := &audit.ChainEntry{}
		// Only to describe a finding; on the pool, as tx may be streaming rows.
		err := s.pool.QueryRow(ctx, "SELECT chain, seq, kind, request_id, payload, prev_hash, hash FROM audit_chain WHERE chain = $1 AND seq = $2", chain, seq).
			Scan(&e.Chain, &e.Seq, &e.Kind, &e.RequestID, &e.Payload, &e.PrevHash, &e.Hash)
		return e, err
	}
	v := audit.NewChainVerifier(pub, fetch)
	var horizonNS int64
	if err := tx.QueryRow(ctx, "SELECT COALESCE(MAX(horizon_ns), 0) FROM audit_retention").Scan(&horizonNS); err != nil {
		return nil, fmt.Errorf("audit postgres: verify: %w", err)
	}
	if horizonNS > 0 {
		v.SetHorizon(time.Unix(0, horizonNS))
	}
	rows, err := tx.Query(ctx, "SELECT chain, seq, kind, request_id, payload, prev_hash, hash FROM audit_chain ORDER BY chain, seq")
	if err != nil {
		return nil, fmt.Errorf("audit postgres: verify: %w", err)
	}
	for rows.Next() {
		e := &audit.ChainEntry{}
		if err := rows.Scan(&e.Chain, &e.Seq, &e.Kind, &e.RequestID, &e.Payload, &e.PrevHash, &e.Hash); err != nil {
			rows.Close()
			return nil, fmt.Errorf("audit postgres: verify: %w", err)
		}
		v.Entry(e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit postgres: verify: %w", err)
	}
	rows, err = tx.Query(ctx, "SELECT chain, size, head, time_ns, key_id, note, signature FROM audit_checkpoints ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("audit postgres: verify: %w", err)
	}
	for rows.Next() {
		c := &audit.Checkpoint{}
		var ns int64
		if err := rows.Scan(&c.Chain, &c.Size, &c.Head, &ns, &c.KeyID, &c.Note, &c.Signature); err != nil {
			rows.Close()
			return nil, fmt.Errorf("audit postgres: verify: %w", err)
		}
		c.Time = time.Unix(0, ns).UTC()
		v.Checkpoint(c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit postgres: verify: %w", err)
	}
	for i := range anchors {
		v.Anchor(&anchors[i])
	}
	rows, err = tx.Query(ctx, "SELECT "+sqlrow.SelectList()+" FROM audit_records ORDER BY seq")
	if err != nil {
		return nil, fmt.Errorf("audit postgres: verify: %w", err)
	}
	err = sqlrow.EachRecord(rows, v.Record)
	rows.Close()
	if err != nil {
		return nil, fmt.Errorf("audit postgres: verify: %w", err)
	}
	rows, err = tx.Query(ctx, "SELECT "+sqlrow.ContentColumns+" FROM audit_content ORDER BY request_id")
	if err != nil {
		return nil, fmt.Errorf("audit postgres: verify: %w", err)
	}
	for rows.Next() {
		e, err := sqlrow.ScanContent(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("audit postgres: verify: %w", err)
		}
		v.Content(e.RequestID, content.MetaPayload(e))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit postgres: verify: %w", err)
	}
	return v.Report(), nil
}

// Close stops the background loop, writes a final checkpoint, releases the
// chain lock and closes the pool.
func (s *Store) Close() error {
	if !s.opts.ReadOnly {
		close(s.stop)
		<-s.done
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := s.Checkpoint(ctx); err != nil {
			s.log.Warn("audit postgres: final checkpoint failed", slog.Any("err", err))
		}
		cancel()
		if s.lock != nil {
			_, _ = s.lock.Exec(context.Background(), "SELECT pg_advisory_unlock_all()")
			s.lock.Release()
		}
	}
	s.pool.Close()
	return nil
}

// Chains lists the store's hash chains (one per writer instance).
func (s *Store) Chains(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, "SELECT DISTINCT chain FROM audit_chain ORDER BY chain")
	if err != nil {
		return nil, fmt.Errorf("audit postgres: chains: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// ChainAfter returns up to limit entries of chain after position after,
// in order (the exporters' source).
func (s *Store) ChainAfter(ctx context.Context, chain string, after int64, limit int) ([]audit.ChainEntry, error) {
	rows, err := s.pool.Query(ctx, "SELECT chain, seq, kind, request_id, payload, prev_hash, hash FROM audit_chain WHERE chain = $1 AND seq > $2 ORDER BY seq LIMIT $3", chain, after, limit)
	if err != nil {
		return nil, fmt.Errorf("audit postgres: chain: %w", err)
	}
	defer rows.Close()
	var out []audit.ChainEntry
	for rows.Next() {
		var e audit.ChainEntry
		if err := rows.Scan(&e.Chain, &e.Seq, &e.Kind, &e.RequestID, &e.Payload, &e.PrevHash, &e.Hash); err != nil {
			return nil, fmt.Errorf("audit postgres: chain: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// CheckpointsAfter returns up to limit signed checkpoints (all chains)
// with row id greater than after.
func (s *Store) CheckpointsAfter(ctx context.Context, after int64, limit int) ([]audit.Checkpoint, error) {
	rows, err := s.pool.Query(ctx, "SELECT id, chain, size, head, time_ns, key_id, note, signature FROM audit_checkpoints WHERE id > $1 ORDER BY id LIMIT $2", after, limit)
	if err != nil {
		return nil, fmt.Errorf("audit postgres: checkpoints: %w", err)
	}
	defer rows.Close()
	var out []audit.Checkpoint
	for rows.Next() {
		var c audit.Checkpoint
		var ns int64
		if err := rows.Scan(&c.ID, &c.Chain, &c.Size, &c.Head, &ns, &c.KeyID, &c.Note, &c.Signature); err != nil {
			return nil, fmt.Errorf("audit postgres: checkpoints: %w", err)
		}
		c.Time = time.Unix(0, ns).UTC()
		out = append(out, c)
	}
	return out, rows.Err()
}
