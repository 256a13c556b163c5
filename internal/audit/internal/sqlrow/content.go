package sqlrow

import (
	"encoding/json"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit/content"
)

// ContentColumns are audit_content's columns in ContentArgs order.
const ContentColumns = "request_id, time_ns, user_key, mode, request_sha256, response_sha256, request_bytes, response_bytes, redactions, key_id, sealed"

// ContentUpdate is the SET list of an upsert on request_id.
const ContentUpdate = "time_ns = excluded.time_ns, user_key = excluded.user_key, mode = excluded.mode, request_sha256 = excluded.request_sha256, response_sha256 = excluded.response_sha256, request_bytes = excluded.request_bytes, response_bytes = excluded.response_bytes, redactions = excluded.redactions, key_id = excluded.key_id, sealed = excluded.sealed"

// ContentArgs returns e's values in ContentColumns order.
func ContentArgs(e *content.Entry) []any {
	red := ""
	if len(e.Redactions) > 0 {
		b, _ := json.Marshal(e.Redactions)
		red = string(b)
	}
	return []any{e.RequestID, e.Time.UnixNano(), e.UserKey, e.Mode, e.RequestSHA256, e.ResponseSHA256,
		e.RequestBytes, e.ResponseBytes, red, e.KeyID, e.Sealed}
}

// ScanContent reads a row of ContentColumns.
func ScanContent(s Scanner) (*content.Entry, error) {
	e := &content.Entry{}
	var ns int64
	var red string
	if err := s.Scan(&e.RequestID, &ns, &e.UserKey, &e.Mode, &e.RequestSHA256, &e.ResponseSHA256,
		&e.RequestBytes, &e.ResponseBytes, &red, &e.KeyID, &e.Sealed); err != nil {
		return nil, err
	}
	e.Time = time.Unix(0, ns).UTC()
	if red != "" {
		_ = json.Unmarshal([]byte(red), &e.Redactions)
	}
	return e, nil
}
