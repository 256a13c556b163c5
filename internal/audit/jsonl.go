package audit

import (
	"bufio"
	"encoding/json"
	"io"
)

// WriteJSONL writes recs to w as JSON lines: one Record object per line in
// the documented schema (docs/audit.md), times in UTC RFC 3339.
func WriteJSONL(w io.Writer, recs []Record) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for i := range recs {
		rec := recs[i]
		rec.Time = rec.Time.UTC()
		if err := enc.Encode(&rec); err != nil {
			return err
		}
	}
	return bw.Flush()
}
