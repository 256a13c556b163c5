package audit

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendJSON appends rec's JSON to dst: byte for byte what json.Marshal(rec)
// produces (a test and a fuzz target hold it to that), without reflection.
// Every request's record is encoded several times (the journal's begin and
// finish entries, the hash chain's payload), so this is on the hot path.
func AppendJSON(dst []byte, rec *Record) ([]byte, error) {
	b := dst
	b = append(b, '{')
	if rec.Seq != 0 {
		b = append(b, `"seq":`...)
		b = strconv.AppendInt(b, rec.Seq, 10)
		b = append(b, ',')
	}
	b = append(b, `"request_id":`...)
	b = appendString(b, rec.RequestID)
	b = append(b, `,"time":`...)
	if y := rec.Time.Year(); rec.Time.Location() == time.UTC && y >= 0 && y <= 9999 {
		b = append(b, '"')
		b = rec.Time.AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	} else { // rare: let the time package apply its own rules
		t, err := rec.Time.MarshalJSON()
		if err != nil {
			return dst, err
		}
		b = append(b, t...)
	}
	b = append(b, `,"state":`...)
	b = appendString(b, string(rec.State))
	b = append(b, `,"method":`...)
	b = appendString(b, rec.Method)
	b = append(b, `,"path":`...)
	b = appendString(b, rec.Path)
	b = appendOptString(b, `,"user_key":`, rec.UserKey)
	b = appendOptString(b, `,"tenant_id":`, rec.TenantID)
	b = appendOptString(b, `,"object_id":`, rec.ObjectID)
	b = appendOptString(b, `,"subject":`, rec.Subject)
	b = appendOptString(b, `,"issuer":`, rec.Issuer)
	b = appendOptString(b, `,"user_name":`, rec.UserName)
	b = appendOptString(b, `,"user_agent":`, rec.UserAgent)
	b = appendOptString(b, `,"session_id":`, rec.SessionID)
	b = appendOptString(b, `,"client_ip":`, rec.ClientIP)
	b = appendOptString(b, `,"model":`, rec.Model)
	b = appendOptString(b, `,"upstream_model":`, rec.UpstreamModel)
	b = appendOptString(b, `,"upstream":`, rec.Upstream)
	if rec.Stream {
		b = append(b, `,"stream":true`...)
	}
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(rec.Status), 10)
	b = appendOptString(b, `,"error_type":`, rec.ErrorType)
	b = appendOptString(b, `,"reason":`, rec.Reason)
	var err error
	b = append(b, `,"latency_ms":`...)
	if b, err = appendFloat(b, rec.LatencyMS); err != nil {
		return dst, err
	}
	if rec.TTFBMS != 0 {
		b = append(b, `,"ttfb_ms":`...)
		if b, err = appendFloat(b, rec.TTFBMS); err != nil {
			return dst, err
		}
	}
	b = appendOptString(b, `,"upstream_request_id":`, rec.UpstreamRequestID)
	u := &rec.Usage
	b = append(b, `,"usage":{"input_tokens":`...)
	b = strconv.AppendInt(b, u.InputTokens, 10)
	b = append(b, `,"output_tokens":`...)
	b = strconv.AppendInt(b, u.OutputTokens, 10)
	b = append(b, `,"cache_creation_input_tokens":`...)
	b = strconv.AppendInt(b, u.CacheCreationInputTokens, 10)
	b = append(b, `,"cache_read_input_tokens":`...)
	b = strconv.AppendInt(b, u.CacheReadInputTokens, 10)
	if u.CacheCreation5m != 0 {
		b = append(b, `,"cache_creation_5m_input_tokens":`...)
		b = strconv.AppendInt(b, u.CacheCreation5m, 10)
	}
	if u.CacheCreation1h != 0 {
		b = append(b, `,"cache_creation_1h_input_tokens":`...)
		b = strconv.AppendInt(b, u.CacheCreation1h, 10)
	}
	b = append(b, '}')
	if rec.CostUSD != 0 {
		b = append(b, `,"cost_usd":`...)
		if b, err = appendFloat(b, rec.CostUSD); err != nil {
			return dst, err
		}
	}
	b = appendOptString(b, `,"policy":`, rec.Policy)
	b = appendStrings(b, `,"groups":`, rec.Groups)
	b = appendStrings(b, `,"failed_upstreams":`, rec.FailedUpstreams)
	b = appendOptString(b, `,"instance":`, rec.Instance)
	return append(b, '}'), nil
}

func appendOptString(b []byte, key, s string) []byte {
	if s == "" {
		return b
	}
	return appendString(append(b, key...), s)
}

func appendStrings(b []byte, key string, ss []string) []byte {
	if len(ss) == 0 {
		return b
	}
	b = append(b, key...)
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}

// appendString quotes s as encoding/json does (HTML-safe escaping,
// invalid UTF-8 replaced). Plain printable ASCII, by far the common case,
// is copied as is; anything else goes through encoding/json itself.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendFloat formats f as encoding/json does for float64.
func appendFloat(b []byte, f float64) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return b, errors.New("audit: record has a non-finite number")
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// Clean up e-09 to e-9, as encoding/json does.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, nil
}
