// Package postgres stores revocations in PostgreSQL (pgx v5), the state
// store shared by gateway replicas: every change bumps a change counter and
// sends a NOTIFY in the same transaction, so every replica listening on the
// schema's channel reloads at once (revoke.Watcher).
package postgres

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gatehouse-dev/gatehouse/internal/revoke"
)

// Options configures Open.
type Options struct {
	// DSN is a PostgreSQL connection string (postgres://user@host/db?...).
	// Required. Never logged.
	DSN string
	// Schema holds the tables; created if missing. Default "public".
	Schema string
	// ConnectTimeout bounds each connection attempt. Default 5s.
	ConnectTimeout time.Duration
	// Now: nil is time.Now (creation and removal times).
	Now func() time.Time
}

// Store is a revoke.Store and revoke.Watcher on PostgreSQL. It keeps one
// connection for queries (revocation traffic is a few small queries a
// second), reconnecting after failures, and one per Watch.
type Store struct {
	opts    Options
	cfg     *pgx.ConnConfig
	table   string // quoted schema.revocations
	vtable  string // quoted schema.revocation_version
	channel string
	mu      sync.Mutex
	conn    *pgx.Conn
}

var (
	_ revoke.Store   = (*Store)(nil)
	_ revoke.Watcher = (*Store)(nil)
)

var schemaRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,39}$`)

// Open connects and creates the schema and tables if needed.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.DSN == "" {
		return nil, errors.New("revoke postgres: a DSN is required")
	}
	if opts.Schema == "" {
		opts.Schema = "public"
	}
	if !schemaRE.MatchString(opts.Schema) {
		return nil, fmt.Errorf("revoke postgres: schema %q must be lower-case letters, digits and _ (at most 40)", opts.Schema)
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 5 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	cfg, err := pgx.ParseConfig(opts.DSN)
	if err != nil {
		// The parse error may quote the DSN (and its password): don't wrap it.
		return nil, errors.New("revoke postgres: the connection string (state.postgres) cannot be parsed")
	}
	cfg.ConnectTimeout = opts.ConnectTimeout
	sch := pgx.Identifier{opts.Schema}.Sanitize()
	s := &Store{
		opts: opts, cfg: cfg,
		table:   sch + ".revocations",
		vtable:  sch + ".revocation_version",
		channel: "gatehouse_revocations_" + opts.Schema,
	}
	if err := s.with(ctx, s.migrate); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) migrate(ctx context.Context, c *pgx.Conn) error {
	sch := pgx.Identifier{s.opts.Schema}.Sanitize()
	return pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
		// Replicas starting together: one creates, the others wait.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, "gatehouse-revoke:"+s.opts.Schema); err != nil {
			return fmt.Errorf("revoke postgres: migrate: %w", err)
		}
		for _, q := range []string{
			`CREATE SCHEMA IF NOT EXISTS ` + sch,
			`CREATE TABLE IF NOT EXISTS ` + s.table + ` (
				id             BIGSERIAL PRIMARY KEY,
				kind           TEXT        NOT NULL,
				subject        TEXT        NOT NULL DEFAULT '',
				before_at      TIMESTAMPTZ,
				until_at       TIMESTAMPTZ,
				reason         TEXT        NOT NULL,
				actor          TEXT        NOT NULL DEFAULT '',
				source         TEXT        NOT NULL DEFAULT '',
				created_at     TIMESTAMPTZ NOT NULL,
				removed_at     TIMESTAMPTZ,
				removed_by     TEXT        NOT NULL DEFAULT '',
				removed_reason TEXT        NOT NULL DEFAULT '')`,
			`CREATE TABLE IF NOT EXISTS ` + s.vtable + ` (
				one     INTEGER PRIMARY KEY CHECK (one = 1),
				version BIGINT  NOT NULL)`,
			`INSERT INTO ` + s.vtable + ` (one, version) VALUES (1, 0) ON CONFLICT (one) DO NOTHING`,
		} {
			if _, err := tx.Exec(ctx, q); err != nil {
				return fmt.Errorf("revoke postgres: migrate: %w", err)
			}
		}
		return nil
	})
}

// with runs fn on the shared connection, (re)connecting first when needed
// and dropping the connection after any error that is not a server-side
// SQL error.
func (s *Store) with(ctx context.Context, fn func(context.Context, *pgx.Conn) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil || s.conn.IsClosed() {
		c, err := pgx.ConnectConfig(ctx, s.cfg)
		if err != nil {
			// pgx names host, user and database, never the password.
			return fmt.Errorf("revoke postgres: connect: %w", err)
		}
		s.conn = c
	}
	err := fn(ctx, s.conn)
	var pgErr *pgconn.PgError
	if err != nil && !errors.As(err, &pgErr) && !errors.Is(err, revoke.ErrNotFound) {
		s.conn.Close(context.Background())
		s.conn = nil
	}
	return err
}

func tz(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC()
}

func val(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

const cols = "id, kind, subject, before_at, until_at, reason, actor, source, created_at, removed_at, removed_by, removed_reason"

func scan(row pgx.Row) (revoke.Revocation, error) {
	var r revoke.Revocation
	var kind string
	var before, until, removed *time.Time
	if err := row.Scan(&r.ID, &kind, &r.Subject, &before, &until, &r.Reason, &r.Actor, &r.Source, &r.Created, &removed, &r.RemovedBy, &r.RemovedReason); err != nil {
		return r, err
	}
	r.Kind = revoke.Kind(kind)
	r.Before, r.Until, r.Removed, r.Created = val(before), val(until), val(removed), r.Created.UTC()
	return r, nil
}

// bump increments the change counter and notifies listeners, in tx.
func (s *Store) bump(ctx context.Context, tx pgx.Tx) error {
	var v int64
	if err := tx.QueryRow(ctx, `UPDATE `+s.vtable+` SET version = version + 1 WHERE one = 1 RETURNING version`).Scan(&v); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, s.channel, strconv.FormatInt(v, 10))
	return err
}

// Add implements revoke.Store.
func (s *Store) Add(ctx context.Context, r revoke.Revocation) (revoke.Revocation, error) {
	r, err := revoke.Normalize(r)
	if err != nil {
		return r, err
	}
	r.Created = s.opts.Now().UTC().Truncate(time.Microsecond)
	err = s.with(ctx, func(ctx context.Context, c *pgx.Conn) error {
		return pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
			if err := tx.QueryRow(ctx, `INSERT INTO `+s.table+` (kind, subject, before_at, until_at, reason, actor, source, created_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
				string(r.Kind), r.Subject, tz(r.Before), tz(r.Until), r.Reason, r.Actor, r.Source, r.Created).Scan(&r.ID); err != nil {
				return err
			}
			return s.bump(ctx, tx)
		})
	})
	if err != nil {
		return r, fmt.Errorf("revoke postgres: add: %w", err)
	}
	return r, nil
}

// Remove implements revoke.Store.
func (s *Store) Remove(ctx context.Context, id int64, actor, reason string) (revoke.Revocation, error) {
	var r revoke.Revocation
	err := s.with(ctx, func(ctx context.Context, c *pgx.Conn) error {
		return pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
			var err error
			r, err = scan(tx.QueryRow(ctx, `UPDATE `+s.table+` SET removed_at = $1, removed_by = $2, removed_reason = $3
				WHERE id = $4 AND removed_at IS NULL RETURNING `+cols, s.opts.Now().UTC(), actor, reason, id))
			if errors.Is(err, pgx.ErrNoRows) {
				return revoke.ErrNotFound
			}
			if err != nil {
				return err
			}
			return s.bump(ctx, tx)
		})
	})
	if errors.Is(err, revoke.ErrNotFound) {
		return r, revoke.ErrNotFound
	}
	if err != nil {
		return r, fmt.Errorf("revoke postgres: remove: %w", err)
	}
	return r, nil
}

// List implements revoke.Store.
func (s *Store) List(ctx context.Context, includeRemoved bool) ([]revoke.Revocation, error) {
	q := `SELECT ` + cols + ` FROM ` + s.table + ` WHERE removed_at IS NULL ORDER BY id`
	if includeRemoved {
		q = `SELECT ` + cols + ` FROM ` + s.table + ` ORDER BY id`
	}
	var out []revoke.Revocation
	err := s.with(ctx, func(ctx context.Context, c *pgx.Conn) error {
		rows, err := c.Query(ctx, q)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			r, err := scan(rows)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("revoke postgres: list: %w", err)
	}
	return out, nil
}

// Version implements revoke.Store.
func (s *Store) Version(ctx context.Context) (int64, error) {
	var v int64
	err := s.with(ctx, func(ctx context.Context, c *pgx.Conn) error {
		return c.QueryRow(ctx, `SELECT version FROM `+s.vtable+` WHERE one = 1`).Scan(&v)
	})
	if err != nil {
		return 0, fmt.Errorf("revoke postgres: version: %w", err)
	}
	return v, nil
}

// Watch implements revoke.Watcher: LISTEN on the schema's channel on a
// connection of its own.
func (s *Store) Watch(ctx context.Context, ready func(), changed func()) error {
	c, err := pgx.ConnectConfig(ctx, s.cfg)
	if err != nil {
		return fmt.Errorf("revoke postgres: listen: connect: %w", err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, `LISTEN `+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		return fmt.Errorf("revoke postgres: listen: %w", err)
	}
	if ready != nil {
		ready()
	}
	for {
		if _, err := c.WaitForNotification(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("revoke postgres: listen: %w", err)
		}
		changed()
	}
}

// Close implements revoke.Store.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil {
		err := s.conn.Close(context.Background())
		s.conn = nil
		return err
	}
	return nil
}
