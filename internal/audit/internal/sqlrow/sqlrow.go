// Package sqlrow maps audit.Record onto the SQL column layout shared by the
// SQLite and PostgreSQL stores, and builds List queries for both dialects.
package sqlrow

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
)

// Columns are the record columns after seq, in Args/Scan order.
var Columns = []string{
	"request_id", "time_ns", "state", "method", "path",
	"user_key", "tenant_id", "object_id", "subject", "issuer", "user_name",
	"user_agent", "session_id", "client_ip",
	"model", "upstream_model", "upstream", "stream",
	"status", "error_type", "reason", "latency_ms", "ttfb_ms", "upstream_request_id",
	"input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
	"cache_creation_5m_input_tokens", "cache_creation_1h_input_tokens",
	"cost_usd", "instance",
	"policy", "groups", "failed_upstreams",
}

// Args returns rec's values in Columns order.
func Args(r *audit.Record) []any { return AppendArgs(make([]any, 0, len(Columns)), r) }

// AppendArgs appends rec's values in Columns order to dst. Every value is
// already of a database/sql/driver.Value type (string, int64, float64,
// bool), so a store may bind them without database/sql's conversion.
func AppendArgs(dst []any, r *audit.Record) []any {
	return append(dst,
		r.RequestID, r.Time.UnixNano(), string(r.State), r.Method, r.Path,
		r.UserKey, r.TenantID, r.ObjectID, r.Subject, r.Issuer, r.UserName,
		r.UserAgent, r.SessionID, r.ClientIP,
		r.Model, r.UpstreamModel, r.Upstream, r.Stream,
		int64(r.Status), r.ErrorType, r.Reason, r.LatencyMS, r.TTFBMS, r.UpstreamRequestID,
		r.Usage.InputTokens, r.Usage.OutputTokens, r.Usage.CacheCreationInputTokens, r.Usage.CacheReadInputTokens,
		r.Usage.CacheCreation5m, r.Usage.CacheCreation1h,
		r.CostUSD, r.Instance,
		r.Policy, joinList(r.Groups), joinList(r.FailedUpstreams),
	)
}

// joinList stores a string list as JSON text ("" when empty).
func joinList(l []string) string {
	if len(l) == 0 {
		return ""
	}
	b, _ := json.Marshal(l)
	return string(b)
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	var l []string
	_ = json.Unmarshal([]byte(s), &l)
	return l
}

// Scanner is *sql.Rows or pgx.Rows.
type Scanner interface{ Scan(dest ...any) error }

// Rows is the part of a result set both drivers offer (database/sql's
// *Rows and pgx's Rows).
type Rows interface {
	Scanner
	Next() bool
	Err() error
}

// EachRecord scans every remaining row of rows as a record and passes it
// to fn. The caller closes rows.
func EachRecord(rows Rows, fn func(*audit.Record)) error {
	for rows.Next() {
		r, err := Scan(rows)
		if err != nil {
			return err
		}
		fn(&r)
	}
	return rows.Err()
}

// AllRecords scans every remaining row of rows. The caller closes rows.
func AllRecords(rows Rows) ([]audit.Record, error) {
	var out []audit.Record
	err := EachRecord(rows, func(r *audit.Record) { out = append(out, *r) })
	return out, err
}

// Scan reads "seq, Columns..." into a Record.
func Scan(s Scanner) (audit.Record, error) {
	var r audit.Record
	var ns int64
	var state, groups, failed string
	err := s.Scan(&r.Seq,
		&r.RequestID, &ns, &state, &r.Method, &r.Path,
		&r.UserKey, &r.TenantID, &r.ObjectID, &r.Subject, &r.Issuer, &r.UserName,
		&r.UserAgent, &r.SessionID, &r.ClientIP,
		&r.Model, &r.UpstreamModel, &r.Upstream, &r.Stream,
		&r.Status, &r.ErrorType, &r.Reason, &r.LatencyMS, &r.TTFBMS, &r.UpstreamRequestID,
		&r.Usage.InputTokens, &r.Usage.OutputTokens, &r.Usage.CacheCreationInputTokens, &r.Usage.CacheReadInputTokens,
		&r.Usage.CacheCreation5m, &r.Usage.CacheCreation1h,
		&r.CostUSD, &r.Instance,
		&r.Policy, &groups, &failed)
	r.Groups, r.FailedUpstreams = splitList(groups), splitList(failed)
	r.Time = time.Unix(0, ns).UTC()
	r.State = audit.State(state)
	return r, err
}

// SelectList is "seq, Columns..." joined for a SELECT.
func SelectList() string { return "seq, " + strings.Join(Columns, ", ") }

// Where builds the WHERE clause (with leading " WHERE " when non-empty) and
// its arguments for f. ph(n) renders the n-th placeholder (1-based).
func Where(f audit.Filter, ph func(int) string) (string, []any) {
	var conds []string
	var args []any
	add := func(cond string, vals ...any) {
		parts := strings.Split(cond, "?")
		var b strings.Builder
		for i, p := range parts {
			b.WriteString(p)
			if i < len(parts)-1 {
				args = append(args, vals[i])
				b.WriteString(ph(len(args)))
			}
		}
		conds = append(conds, b.String())
	}
	if f.UserKey != "" {
		add("(user_key = ? OR object_id = ? OR user_name = ?)", f.UserKey, f.UserKey, f.UserKey)
	}
	if !f.Since.IsZero() {
		add("time_ns >= ?", f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		add("time_ns < ?", f.Until.UnixNano())
	}
	if f.Model != "" {
		add("model = ?", f.Model)
	}
	if f.Status != 0 {
		add("status = ?", f.Status)
	}
	if f.RequestID != "" {
		add("request_id = ?", f.RequestID)
	}
	if f.State != "" {
		add("state = ?", string(f.State))
	}
	if f.DeniedOnly {
		add("state = ?", string(audit.StateDenied))
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// Limit renders " LIMIT n" or "".
func Limit(f audit.Filter) string {
	if f.Limit <= 0 {
		return ""
	}
	return fmt.Sprintf(" LIMIT %d", f.Limit)
}
