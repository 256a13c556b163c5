package postgres

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/audit/content"
	"github.com/gatehouse-dev/gatehouse/internal/audit/internal/sqlrow"
	"github.com/jackc/pgx/v5"
)

var _ content.Store = (*Store)(nil)

// PutContent stores (or replaces) one request's captured content and
// chains its metadata.
func (s *Store) PutContent(ctx context.Context, e *content.Entry) error {
	if s.opts.ReadOnly {
		return ErrReadOnly
	}
	cp := *e
	cp.Time = time.Unix(0, e.Time.UnixNano()).UTC() // as stored
	return s.chainTx(ctx, func(tx pgx.Tx, b *pgx.Batch) error {
		if _, err := tx.Exec(ctx, "INSERT INTO audit_content ("+sqlrow.ContentColumns+") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (request_id) DO UPDATE SET "+sqlrow.ContentUpdate,
			sqlrow.ContentArgs(&cp)...); err != nil {
			return fmt.Errorf("audit postgres: content: %w", err)
		}
		s.queueRaw(b, audit.EntryContent, audit.ContentKey(cp.RequestID), content.MetaPayload(&cp))
		return nil
	})
}

// chainTx runs fn in a transaction, then sends the chain entries fn
// queued and commits; s.mu serialises this instance's chain head.
func (s *Store) chainTx(ctx context.Context, fn func(tx pgx.Tx, b *pgx.Batch) error) (err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	headSeq, head := s.headSeq, s.head
	defer func() {
		if err != nil {
			s.headSeq, s.head = headSeq, head
		}
	}()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("audit postgres: begin: %w", err)
	}
	defer tx.Rollback(context.Background())
	b := &pgx.Batch{}
	if err := fn(tx, b); err != nil {
		return err
	}
	if b.Len() > 0 {
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("audit postgres: chain: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("audit postgres: commit: %w", err)
	}
	return nil
}

// GetContent returns one request's captured content or content.ErrNotFound.
func (s *Store) GetContent(ctx context.Context, requestID string) (*content.Entry, error) {
	e, err := sqlrow.ScanContent(s.pool.QueryRow(ctx, "SELECT "+sqlrow.ContentColumns+" FROM audit_content WHERE request_id = $1", requestID))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, content.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("audit postgres: content: %w", err)
	}
	return e, nil
}

// PurgeContent deletes captured content of userKey (everyone when empty)
// recorded before before (any time when zero).
func (s *Store) PurgeContent(ctx context.Context, userKey string, before time.Time) (int, error) {
	if s.opts.ReadOnly {
		return 0, ErrReadOnly
	}
	var bound int64 = 1<<63 - 1
	if !before.IsZero() {
		bound = before.UnixNano()
	}
	var n int
	err := s.chainTx(ctx, func(tx pgx.Tx, b *pgx.Batch) error {
		rows, err := tx.Query(ctx, "DELETE FROM audit_content WHERE ($1 = '' OR user_key = $1) AND time_ns < $2 RETURNING request_id", userKey, bound)
		if err != nil {
			return fmt.Errorf("audit postgres: purge: %w", err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("audit postgres: purge: %w", err)
		}
		sort.Strings(ids)
		for _, id := range ids {
			s.queueRaw(b, audit.EntryPurge, audit.ContentKey(id), []byte(`{}`))
		}
		n = len(ids)
		return nil
	})
	return n, err
}
