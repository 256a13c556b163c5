package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit/content"
	"github.com/gatehouse-dev/gatehouse/internal/audit/internal/sqlrow"
	"github.com/jackc/pgx/v5"
)

var _ content.Store = (*Store)(nil)

// PutContent stores (or replaces) one request's captured content.
func (s *Store) PutContent(ctx context.Context, e *content.Entry) error {
	if s.opts.ReadOnly {
		return ErrReadOnly
	}
	_, err := s.pool.Exec(ctx, "INSERT INTO audit_content ("+sqlrow.ContentColumns+") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (request_id) DO UPDATE SET "+sqlrow.ContentUpdate,
		sqlrow.ContentArgs(e)...)
	if err != nil {
		return fmt.Errorf("audit postgres: content: %w", err)
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
	tag, err := s.pool.Exec(ctx, "DELETE FROM audit_content WHERE ($1 = '' OR user_key = $1) AND time_ns < $2", userKey, bound)
	if err != nil {
		return 0, fmt.Errorf("audit postgres: purge: %w", err)
	}
	return int(tag.RowsAffected()), nil
}
