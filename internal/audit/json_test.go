package audit

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/anthropic"
)

func fullRecord() *Record {
	return &Record{
		Seq: 42, RequestID: "gh_0123456789abcdefghijklmn", Time: time.Date(2026, 11, 24, 12, 0, 0, 123456000, time.UTC),
		State: StateCompleted, Method: "POST", Path: "/v1/messages",
		UserKey: "tid/oid", TenantID: "tid", ObjectID: "oid", Subject: "sub", Issuer: "https://login.microsoftonline.com/tid/v2.0",
		UserName: "ada@contoso.example", UserAgent: "claude-cli/2.1.300 (external, cli)", SessionID: "s-1", ClientIP: "192.0.2.1",
		Model: "claude-sonnet-4-6", UpstreamModel: "dep", Upstream: "foundry", Stream: true,
		Status: 200, ErrorType: "overloaded_error", Reason: "upstream_5xx", LatencyMS: 812.5, TTFBMS: 0.000001, UpstreamRequestID: "req_1",
		Usage:   anthropic.Usage{InputTokens: 1, OutputTokens: 2, CacheCreationInputTokens: 3, CacheReadInputTokens: 4, CacheCreation5m: 5, CacheCreation1h: 6},
		CostUSD: 1e-7, Policy: "everyone", Groups: []string{"g1", "g<2>"}, FailedUpstreams: []string{"a: 529"}, Instance: "gw-a",
	}
}

// TestAppendJSONMatchesEncodingJSON: the hand encoder is byte-identical to
// json.Marshal (the hash chain and the journal depend on it).
func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	paris := time.FixedZone("CET", 3600)
	cases := map[string]*Record{
		"zero":  {},
		"full":  fullRecord(),
		"begun": {RequestID: "gh_x", Time: time.Unix(0, 1).UTC(), State: StateBegun, Method: "POST", Path: "/v1/messages"},
	}
	odd := fullRecord()
	odd.UserName = "Zoë \"quoted\" \\ <script>&\u2028\x01\n\t\xff"
	odd.Time = time.Date(2026, 1, 2, 3, 4, 5, 0, paris)
	odd.LatencyMS, odd.TTFBMS, odd.CostUSD = 1e21, -2.5e-9, 123456789.125
	odd.Groups = []string{}
	cases["odd"] = odd
	for name, rec := range cases {
		t.Run(name, func(t *testing.T) {
			want, err := json.Marshal(rec)
			if err != nil {
				t.Fatal(err)
			}
			got, err := AppendJSON([]byte("prefix"), rec)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, append([]byte("prefix"), want...)) {
				t.Fatalf("AppendJSON\n got %s\nwant prefix%s", got, want)
			}
		})
	}
	bad := fullRecord()
	bad.CostUSD = math.NaN()
	if _, err := AppendJSON(nil, bad); err == nil {
		t.Fatal("NaN encoded")
	}
	bad = fullRecord()
	bad.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := AppendJSON(nil, bad); err == nil {
		t.Fatal("year 10000 encoded")
	}
}

func FuzzAppendJSON(f *testing.F) {
	f.Add("gh_1", "ada@contoso.example", "claude-cli/2.1", "g1", int64(1764000000123456789), 812.5, 0.0125, int64(7), true)
	f.Add("\xff<>&\u2028", "\x00\x1f\"\\", "", "", int64(-1), 1e-7, 1e21, int64(-3), false)
	f.Fuzz(func(t *testing.T, id, user, agent, group string, ns int64, lat, cost float64, tokens int64, stream bool) {
		rec := fullRecord()
		rec.RequestID, rec.UserName, rec.UserAgent, rec.Groups = id, user, agent, []string{group}
		rec.Time = time.Unix(0, ns).UTC()
		rec.LatencyMS, rec.CostUSD, rec.Usage.OutputTokens, rec.Stream = lat, cost, tokens, stream
		want, werr := json.Marshal(rec)
		got, gerr := AppendJSON(nil, rec)
		if (werr != nil) != (gerr != nil) {
			t.Fatalf("json.Marshal error %v, AppendJSON error %v", werr, gerr)
		}
		if werr == nil && !bytes.Equal(got, want) {
			t.Fatalf("AppendJSON\n got %s\nwant %s", got, want)
		}
	})
}

func BenchmarkRecordJSON(b *testing.B) {
	rec := fullRecord()
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = json.Marshal(rec)
		}
	})
	b.Run("AppendJSON", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf, _ = AppendJSON(buf[:0], rec)
		}
	})
}
