package anthropic

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

const streamToolUse = "event: message_start\n" +
	`data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-6","content":[],"stop_reason":null,"usage":{"input_tokens":472,"output_tokens":2,"cache_creation_input_tokens":100,"cache_read_input_tokens":2000,"cache_creation":{"ephemeral_5m_input_tokens":60,"ephemeral_1h_input_tokens":40}}}}` + "\n\n" +
	"event: ping\ndata: {\"type\": \"ping\"}\n\n" +
	"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"get_weather\",\"input\":{}}}\n\n" +
	"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"location\\\": \\\"San Fra\"}}\n\n" +
	": a comment line\n\n" +
	"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n" +
	"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":89}}\n\n" +
	"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"

func TestSSETapUsage(t *testing.T) {
	want := Usage{InputTokens: 472, OutputTokens: 89, CacheCreationInputTokens: 100, CacheReadInputTokens: 2000, CacheCreation5m: 60, CacheCreation1h: 40}
	// The same stream cut into every chunk size must give the same answer:
	// the network delivers events in arbitrary pieces.
	// Every line ending the SSE grammar allows: LF, CRLF and CR.
	streams := map[string]string{
		"lf":   streamToolUse,
		"crlf": strings.ReplaceAll(streamToolUse, "\n", "\r\n"),
		"cr":   strings.ReplaceAll(streamToolUse, "\n", "\r"),
	}
	for ending, stream := range streams {
		for _, size := range []int{1, 2, 3, 7, 64, 1 << 20} {
			tap := NewSSETap()
			s := stream
			for len(s) > 0 {
				n := min(size, len(s))
				tap.Write([]byte(s[:n]))
				s = s[n:]
			}
			if got := tap.Usage(); got != want {
				t.Errorf("%s, chunk %d: usage = %+v, want %+v", ending, size, got, want)
			}
			if !tap.Complete() || tap.StopReason() != "tool_use" || tap.Model() != "claude-sonnet-4-6" {
				t.Errorf("chunk %d: complete=%v stop=%q model=%q", size, tap.Complete(), tap.StopReason(), tap.Model())
			}
			if !tap.AtEventBoundary() {
				t.Errorf("%s, chunk %d: not at an event boundary after a whole stream", ending, size)
			}
		}
	}
}

func TestSSETapCases(t *testing.T) {
	tests := []struct {
		name      string
		stream    string
		want      Usage
		complete  bool
		errorType string
	}{
		{
			name: "usage revised in message_delta overrides input and cache counts",
			stream: "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":10,\"output_tokens\":1}}}\n\n" +
				"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"input_tokens\":12,\"cache_read_input_tokens\":5,\"output_tokens\":30}}\n\n" +
				"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
			want: Usage{InputTokens: 12, OutputTokens: 30, CacheReadInputTokens: 5}, complete: true,
		},
		{
			name: "interrupted stream reports what was seen",
			stream: "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":50,\"output_tokens\":1}}}\n\n" +
				"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel",
			want: Usage{InputTokens: 50, OutputTokens: 1},
		},
		{
			name: "error event after a 200",
			stream: "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":7,\"output_tokens\":1}}}\n\n" +
				"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
			want: Usage{InputTokens: 7, OutputTokens: 1}, errorType: "overloaded_error",
		},
		{
			name:   "CRLF line endings",
			stream: "event: message_start\r\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\r\n\r\nevent: message_stop\r\ndata: {\"type\":\"message_stop\"}\r\n\r\n",
			want:   Usage{InputTokens: 3, OutputTokens: 1}, complete: true,
		},
		{
			name:   "unknown events and garbage pass without effect",
			stream: "event: future_event\ndata: {\"whatever\":1}\n\nevent: message_delta\ndata: not json\n\ndata\n\n",
			want:   Usage{},
		},
		{
			name:   "negative counts are ignored",
			stream: "event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":-5}}\n\n",
			want:   Usage{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tap := NewSSETap()
			tap.Write([]byte(tt.stream))
			if got := tap.Usage(); got != tt.want {
				t.Errorf("usage = %+v, want %+v", got, tt.want)
			}
			if tap.Complete() != tt.complete {
				t.Errorf("complete = %v, want %v", tap.Complete(), tt.complete)
			}
			if tap.ErrorType() != tt.errorType {
				t.Errorf("error type = %q, want %q", tap.ErrorType(), tt.errorType)
			}
		})
	}
}

func TestSSETapBoundary(t *testing.T) {
	tap := NewSSETap()
	tap.Write([]byte("event: content_block_delta\ndata: {\"x\":"))
	if tap.AtEventBoundary() {
		t.Fatal("mid-event reported as a boundary")
	}
	tap.Write([]byte("1}\n\n"))
	if !tap.AtEventBoundary() {
		t.Fatal("end of event not reported as a boundary")
	}
}

func TestSSETapBoundsMemory(t *testing.T) {
	tap := NewSSETap()
	huge := "event: message_start\ndata: " + strings.Repeat("x", 4<<20) + "\n\n"
	tap.Write([]byte(huge))
	if cap(tap.line) > maxEventData+(1<<20) || cap(tap.data) > maxEventData+(1<<20) {
		t.Fatalf("tap kept %d/%d bytes for one oversized event", cap(tap.line), cap(tap.data))
	}
}

func TestUsageFromJSON(t *testing.T) {
	body := []byte(`{"id":"msg_1","type":"message","model":"claude-sonnet-4-6","content":[{"type":"text","text":"hi"}],"usage":{"input_tokens":11,"output_tokens":22,"cache_creation_input_tokens":3,"cache_read_input_tokens":4}}`)
	u, model, ok := UsageFromJSON(body)
	want := Usage{InputTokens: 11, OutputTokens: 22, CacheCreationInputTokens: 3, CacheReadInputTokens: 4}
	if !ok || u != want || model != "claude-sonnet-4-6" {
		t.Fatalf("got %+v %q %v", u, model, ok)
	}
	if u.TotalInput() != 18 || u.Total() != 40 {
		t.Fatalf("totals %d %d", u.TotalInput(), u.Total())
	}
	if _, _, ok := UsageFromJSON([]byte(`{"type":"error"}`)); ok {
		t.Fatal("usage found in an error body")
	}
}

func FuzzSSETap(f *testing.F) {
	f.Add([]byte(streamToolUse), 3)
	f.Add([]byte("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"x\"}}\n\n"), 1)
	f.Add([]byte("data:\ndata:\n\n\r\n:::\n"), 2)
	f.Fuzz(func(t *testing.T, stream []byte, chunk int) {
		if chunk < 1 {
			chunk = 1
		}
		whole := NewSSETap()
		whole.Write(stream)
		parts := NewSSETap()
		for s := stream; len(s) > 0; {
			n := min(chunk, len(s))
			parts.Write(s[:n])
			s = s[n:]
		}
		if whole.Usage() != parts.Usage() || whole.Complete() != parts.Complete() {
			t.Fatalf("chunking changed the result: %+v vs %+v", whole.Usage(), parts.Usage())
		}
	})
}

func FuzzUsageFromJSON(f *testing.F) {
	f.Add([]byte(`{"id":"m","model":"claude-sonnet-4-6","content":[{"type":"text","text":"}\\"usage\\""}],"usage":{"input_tokens":3,"output_tokens":4}}`))
	f.Add([]byte(`{"usage":{"input_tokens":1},"usage":{"output_tokens":2}}`))
	f.Add([]byte(`{"a":{"usage":{"input_tokens":9}}}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, body []byte) {
		u, _, ok := UsageFromJSON(body) // must not panic or hang on any input
		var ref struct {
			Usage *usageJSON `json:"usage"`
		}
		if !json.Valid(body) || json.Unmarshal(body, &ref) != nil || bytes.Count(body, []byte(`"usage"`)) > 1 {
			return
		}
		var want Usage
		want.merge(ref.Usage)
		if ok != (ref.Usage != nil) || (ok && u != want) {
			// A map decode matches keys exactly, like the scanner; a struct
			// decode is case-insensitive, so only compare exact-key bodies.
			var m map[string]json.RawMessage
			if json.Unmarshal(body, &m) == nil {
				if _, exact := m["usage"]; exact != ok {
					t.Fatalf("usage found=%v, exact key present=%v", ok, exact)
				}
			}
		}
	})
}

func TestSSETapCapturesContent(t *testing.T) {
	const stream = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n" +
		"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\n\n" +
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"Let me look.\"}}\n\n" +
		"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n" +
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello, \"}}\n\n" +
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"world\"}}\n\n" +
		"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"get_weather\",\"input\":{}}}\n\n" +
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\": \"}}\n\n" +
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"Oslo\\\"}\"}}\n\n"
	tap := NewSSETap()
	tap.CaptureContent(1 << 20)
	for i := 0; i < len(stream); i += 7 {
		tap.Write([]byte(stream[i:min(i+7, len(stream))]))
	}
	got, truncated := tap.Content()
	want := []ContentBlock{{Type: "thinking", Text: "Let me look."}, {Type: "text", Text: "Hello, world"}, {Type: "tool_use", ID: "toolu_1", Name: "get_weather", Input: `{"city": "Oslo"}`}}
	if truncated || len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("content %+v (truncated %v)", got, truncated)
	}
	if tap.Usage().InputTokens != 5 {
		t.Fatalf("usage lost while capturing: %+v", tap.Usage())
	}
	small := NewSSETap()
	small.CaptureContent(8)
	small.Write([]byte(stream))
	if _, truncated := small.Content(); !truncated {
		t.Fatal("capture past the cap not marked truncated")
	}
	off := NewSSETap()
	off.Write([]byte(stream))
	if c, _ := off.Content(); len(c) != 0 {
		t.Fatal("content assembled without CaptureContent")
	}
}

// FuzzDecodeUsage: decodeUsage agrees with json.Unmarshal into a usageJSON
// on every valid JSON input: same success, same fields present, same
// values.
func FuzzDecodeUsage(f *testing.F) {
	for _, s := range []string{
		`{"input_tokens":3,"output_tokens":4,"cache_creation_input_tokens":0,"cache_read_input_tokens":9,"cache_creation":{"ephemeral_5m_input_tokens":1,"ephemeral_1h_input_tokens":2},"service_tier":"standard","server_tool_use":{"web_search_requests":1}}`,
		`null`, `[]`, `5`, `"x"`, `{}`, `{"input_tokens":null}`, `{"input_tokens":1,"input_tokens":null}`,
		`{"INPUT_TOKENS":7}`, `{"input_tokenſ":7}`, `{"input\u005ftokens":8}`, `{"input_tokens":1.5}`, `{"input_tokens":1e3}`,
		`{"input_tokens":-4}`, `{"input_tokens":9223372036854775807}`, `{"input_tokens":9223372036854775808}`,
		`{"input_tokens":-9223372036854775808}`, `{"input_tokens":-9223372036854775809}`, `{"input_tokens":"5"}`,
		`{"cache_creation":null}`, `{"cache_creation":{"ephemeral_5m_input_tokens":3},"cache_creation":{"ephemeral_1h_input_tokens":4}}`,
		`{"cache_creation":{"ephemeral_5m_input_tokens":3},"cache_creation":null,"cache_creation":{}}`, `{"cache_creation":[1]}`,
		`{"output_tokens":true}`, ` { "output_tokens" : 12 , "x" : [ {"input_tokens":5} ] } `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) {
			return
		}
		var j usageJSON
		err := json.Unmarshal(data, &j)
		var v usageVals
		ok := decodeUsage(data, &v)
		if ok != (err == nil) {
			t.Fatalf("decodeUsage ok=%v, json.Unmarshal err=%v", ok, err)
		}
		if !ok {
			return
		}
		check := func(name string, p *int64, bit uint8, got int64) {
			if (p != nil) != (v.has&bit != 0) || p != nil && *p != got {
				t.Fatalf("%s: json %v, decodeUsage present=%v value=%d", name, p, v.has&bit != 0, got)
			}
		}
		check("input_tokens", j.InputTokens, hasIn, v.in)
		check("output_tokens", j.OutputTokens, hasOut, v.out)
		check("cache_creation_input_tokens", j.CacheCreationInputTokens, hasCCIn, v.ccIn)
		check("cache_read_input_tokens", j.CacheReadInputTokens, hasCRIn, v.crIn)
		if (j.CacheCreation != nil) != v.hasCC {
			t.Fatalf("cache_creation: json %v, decodeUsage %v", j.CacheCreation != nil, v.hasCC)
		}
		if j.CacheCreation != nil {
			check("ephemeral_5m_input_tokens", j.CacheCreation.Ephemeral5m, hasE5m, v.e5m)
			check("ephemeral_1h_input_tokens", j.CacheCreation.Ephemeral1h, hasE1h, v.e1h)
		}
	})
}

// BenchmarkUsageFromJSON: the usage scan of a non-streamed response body;
// the sub-benchmarks compare the usage object's decoding with
// json.Unmarshal (what UsageFromJSON did before) and decodeUsage.
func BenchmarkUsageFromJSON(b *testing.B) {
	body := []byte(`{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-6","content":[{"type":"text","text":"Hello! How can I help you today?"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0},"output_tokens":9,"service_tier":"standard"}}`)
	usage := body[bytes.Index(body, []byte(`{"input_tokens"`)) : len(body)-1]
	b.Run("body", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, ok := UsageFromJSON(body); !ok {
				b.Fatal("no usage")
			}
		}
	})
	b.Run("usage/json.Unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var j usageJSON
			if json.Unmarshal(usage, &j) != nil {
				b.Fatal("bad")
			}
		}
	})
	b.Run("usage/decodeUsage", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var v usageVals
			if !json.Valid(usage) || !decodeUsage(usage, &v) {
				b.Fatal("bad")
			}
		}
	})
}

// FuzzStringValue: stringValue agrees with json.Unmarshal into a string.
func FuzzStringValue(f *testing.F) {
	for _, s := range []string{`"claude-sonnet-4-6"`, `"a\"b"`, `"\u00e9"`, "\"\x01\"", "\"\xff\"", `5`, `null`, `"`, `""`, `"é"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, val []byte) {
		var want string
		if json.Unmarshal(val, &want) != nil {
			want = ""
		}
		if got := stringValue(val); got != want {
			t.Fatalf("stringValue(%q) = %q, json.Unmarshal: %q", val, got, want)
		}
	})
}
