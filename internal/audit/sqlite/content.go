package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/audit/content"
	"github.com/gatehouse-dev/gatehouse/internal/audit/internal/sqlrow"
)

var _ content.Store = (*Store)(nil)

// PutContent stores (or replaces) one request's captured content.
func (s *Store) PutContent(ctx context.Context, e *content.Entry) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.checkFatal(); err != nil {
		return err
	}
	ctx = context.WithoutCancel(ctx)
	return s.chainTx(ctx, func(ctx context.Context) error {
		e := *e
		e.Time = time.Unix(0, e.Time.UnixNano()).UTC() // as stored
		if _, err := s.conn.ExecContext(ctx, "INSERT INTO audit_content ("+sqlrow.ContentColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (request_id) DO UPDATE SET "+sqlrow.ContentUpdate,
			sqlrow.ContentArgs(&e)...); err != nil {
			return fmt.Errorf("audit sqlite: content: %w", err)
		}
		return s.appendRaw(ctx, audit.EntryContent, audit.ContentKey(e.RequestID), content.MetaPayload(&e))
	})
}

// GetContent returns one request's captured content or content.ErrNotFound.
func (s *Store) GetContent(ctx context.Context, requestID string) (*content.Entry, error) {
	e, err := sqlrow.ScanContent(s.reader.QueryRowContext(ctx, "SELECT "+sqlrow.ContentColumns+" FROM audit_content WHERE request_id = ?", requestID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, content.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("audit sqlite: content: %w", err)
	}
	return e, nil
}

// PurgeContent deletes captured content of userKey (everyone when empty)
// recorded before before (any time when zero). Records stay: only content
// is erased.
func (s *Store) PurgeContent(ctx context.Context, userKey string, before time.Time) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.checkFatal(); err != nil {
		return 0, err
	}
	var bound int64 = 1<<63 - 1
	if !before.IsZero() {
		bound = before.UnixNano()
	}
	ctx = context.WithoutCancel(ctx)
	var n int
	err := s.chainTx(ctx, func(ctx context.Context) error {
		rows, err := s.conn.QueryContext(ctx, "DELETE FROM audit_content WHERE (? = '' OR user_key = ?) AND time_ns < ? RETURNING request_id", userKey, userKey, bound)
		if err != nil {
			return fmt.Errorf("audit sqlite: purge: %w", err)
		}
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return fmt.Errorf("audit sqlite: purge: %w", err)
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("audit sqlite: purge: %w", err)
		}
		sort.Strings(ids)
		for _, id := range ids {
			if err := s.appendRaw(ctx, audit.EntryPurge, audit.ContentKey(id), []byte(`{}`)); err != nil {
				return err
			}
		}
		n = len(ids)
		return nil
	})
	return n, err
}
