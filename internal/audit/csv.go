package audit

import (
	"encoding/csv"
	"io"
	"strconv"
	"time"
)

// CSVHeader is the header row of WriteCSV: the JSON field names, with
// usage flattened.
var CSVHeader = []string{
	"seq", "request_id", "time", "state", "method", "path",
	"user_key", "tenant_id", "object_id", "subject", "issuer", "user_name",
	"user_agent", "session_id", "client_ip",
	"model", "upstream_model", "upstream", "stream",
	"status", "error_type", "reason", "latency_ms", "ttfb_ms", "upstream_request_id",
	"input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
	"cost_usd", "instance",
}

// WriteCSV writes recs as CSV with CSVHeader (RFC 4180; times in UTC
// RFC 3339). Cells that a spreadsheet would run as a formula are prefixed
// with a single quote.
func WriteCSV(w io.Writer, recs []Record) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	i64 := func(n int64) string { return strconv.FormatInt(n, 10) }
	f64 := func(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
	for i := range recs {
		r := &recs[i]
		row := []string{
			i64(r.Seq), r.RequestID, r.Time.UTC().Format(time.RFC3339Nano), string(r.State), r.Method, r.Path,
			r.UserKey, r.TenantID, r.ObjectID, r.Subject, r.Issuer, r.UserName,
			r.UserAgent, r.SessionID, r.ClientIP,
			r.Model, r.UpstreamModel, r.Upstream, strconv.FormatBool(r.Stream),
			strconv.Itoa(r.Status), r.ErrorType, r.Reason, f64(r.LatencyMS), f64(r.TTFBMS), r.UpstreamRequestID,
			i64(r.Usage.InputTokens), i64(r.Usage.OutputTokens), i64(r.Usage.CacheCreationInputTokens), i64(r.Usage.CacheReadInputTokens),
			f64(r.CostUSD), r.Instance,
		}
		for j, c := range row {
			if c != "" && (c[0] == '=' || c[0] == '+' || c[0] == '-' || c[0] == '@') && j != 0 {
				if _, err := strconv.ParseFloat(c, 64); err != nil {
					row[j] = "'" + c
				}
			}
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
