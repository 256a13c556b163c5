// Package sqlite stores revocations in an embedded SQLite database
// (modernc.org/sqlite, WAL): the single-machine default state store. Every
// process on the machine (the gateway, the revoke commands) opens the same
// file; readers learn about changes by polling a one-row change counter.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // database/sql driver "sqlite"

	"github.com/gatehouse-dev/gatehouse/internal/revoke"
)

// Options configures Open.
type Options struct {
	// Path of the database file. Required. Its directory is created.
	Path string
	// Now: nil is time.Now (the creation and removal times).
	Now func() time.Time
}

// Store is a revoke.Store on SQLite.
type Store struct {
	db  *sql.DB
	now func() time.Time
}

var _ revoke.Store = (*Store)(nil)

const schema = `
CREATE TABLE IF NOT EXISTS revocations (
	id             INTEGER PRIMARY KEY AUTOINCREMENT,
	kind           TEXT    NOT NULL,
	subject        TEXT    NOT NULL DEFAULT '',
	before_us      INTEGER NOT NULL DEFAULT 0,
	until_us       INTEGER NOT NULL DEFAULT 0,
	reason         TEXT    NOT NULL,
	actor          TEXT    NOT NULL DEFAULT '',
	source         TEXT    NOT NULL DEFAULT '',
	created_us     INTEGER NOT NULL,
	removed_us     INTEGER NOT NULL DEFAULT 0,
	removed_by     TEXT    NOT NULL DEFAULT '',
	removed_reason TEXT    NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS revocation_version (
	one     INTEGER PRIMARY KEY CHECK (one = 1),
	version INTEGER NOT NULL
);
INSERT OR IGNORE INTO revocation_version (one, version) VALUES (1, 0);
`

// cacheSize is each connection's page cache: 256 KiB.
const cacheSize = "cache_size(-256)"

// Open opens (creating if needed) the database at opts.Path.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.Path == "" {
		return nil, errors.New("revoke sqlite: a path is required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if dir := filepath.Dir(opts.Path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("revoke sqlite: %w", err)
		}
	}
	// The list is small, and so is each connection's page cache: modernc
	// builds SQLite with SQLITE_ENABLE_MEMORY_MANAGEMENT, so every
	// connection in the process shares one page budget (the sum of their
	// cache_size, in pages), and what these connections are allowed but do
	// not use, the audit store's writer takes, 16 KiB a page, polls by
	// poll: with SQLite's default here the gateway's RSS rose by about
	// 15 MB over the first eight minutes of load (docs/benchmarks.md).
	db, err := sql.Open("sqlite", opts.Path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma="+cacheSize+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("revoke sqlite: %w", err)
	}
	db.SetMaxOpenConns(2)
	if _, err := db.ExecContext(ctx, schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("revoke sqlite: open %s: %w", opts.Path, err)
	}
	return &Store{db: db, now: opts.Now}, nil
}

func us(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromUS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

const cols = "id, kind, subject, before_us, until_us, reason, actor, source, created_us, removed_us, removed_by, removed_reason"

type scanner interface{ Scan(...any) error }

func scan(sc scanner) (revoke.Revocation, error) {
	var r revoke.Revocation
	var kind string
	var before, until, created, removed int64
	if err := sc.Scan(&r.ID, &kind, &r.Subject, &before, &until, &r.Reason, &r.Actor, &r.Source, &created, &removed, &r.RemovedBy, &r.RemovedReason); err != nil {
		return r, err
	}
	r.Kind = revoke.Kind(kind)
	r.Before, r.Until, r.Created, r.Removed = fromUS(before), fromUS(until), fromUS(created), fromUS(removed)
	return r, nil
}

// Add implements revoke.Store.
func (s *Store) Add(ctx context.Context, r revoke.Revocation) (revoke.Revocation, error) {
	r, err := revoke.Normalize(r)
	if err != nil {
		return r, err
	}
	r.Created = s.now().UTC().Truncate(time.Microsecond)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return r, fmt.Errorf("revoke sqlite: %w", err)
	}
	defer tx.Rollback()
	if err := tx.QueryRowContext(ctx, `INSERT INTO revocations (kind, subject, before_us, until_us, reason, actor, source, created_us)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		string(r.Kind), r.Subject, us(r.Before), us(r.Until), r.Reason, r.Actor, r.Source, us(r.Created)).Scan(&r.ID); err != nil {
		return r, fmt.Errorf("revoke sqlite: add: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE revocation_version SET version = version + 1 WHERE one = 1`); err != nil {
		return r, fmt.Errorf("revoke sqlite: add: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return r, fmt.Errorf("revoke sqlite: add: %w", err)
	}
	return r, nil
}

// Remove implements revoke.Store.
func (s *Store) Remove(ctx context.Context, id int64, actor, reason string) (revoke.Revocation, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return revoke.Revocation{}, fmt.Errorf("revoke sqlite: %w", err)
	}
	defer tx.Rollback()
	r, err := scan(tx.QueryRowContext(ctx, `UPDATE revocations SET removed_us = ?, removed_by = ?, removed_reason = ?
		WHERE id = ? AND removed_us = 0 RETURNING `+cols, us(s.now().UTC()), actor, reason, id))
	if errors.Is(err, sql.ErrNoRows) {
		return r, revoke.ErrNotFound
	}
	if err != nil {
		return r, fmt.Errorf("revoke sqlite: remove: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE revocation_version SET version = version + 1 WHERE one = 1`); err != nil {
		return r, fmt.Errorf("revoke sqlite: remove: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return r, fmt.Errorf("revoke sqlite: remove: %w", err)
	}
	return r, nil
}

// List implements revoke.Store.
func (s *Store) List(ctx context.Context, includeRemoved bool) ([]revoke.Revocation, error) {
	q := `SELECT ` + cols + ` FROM revocations WHERE removed_us = 0 ORDER BY id`
	if includeRemoved {
		q = `SELECT ` + cols + ` FROM revocations ORDER BY id`
	}
	rows, err := s.db.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("revoke sqlite: list: %w", err)
	}
	defer rows.Close()
	var out []revoke.Revocation
	for rows.Next() {
		r, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("revoke sqlite: list: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("revoke sqlite: list: %w", err)
	}
	return out, nil
}

// Version implements revoke.Store.
func (s *Store) Version(ctx context.Context) (int64, error) {
	var v int64
	if err := s.db.QueryRowContext(ctx, `SELECT version FROM revocation_version WHERE one = 1`).Scan(&v); err != nil {
		return 0, fmt.Errorf("revoke sqlite: version: %w", err)
	}
	return v, nil
}

// Close implements revoke.Store.
func (s *Store) Close() error { return s.db.Close() }
