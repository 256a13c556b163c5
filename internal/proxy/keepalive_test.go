package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/anthropic"
)

// sink is a client stream: every write arrives on a channel.
type sink struct {
	mu     sync.Mutex
	writes chan string
	fail   error
}

func newSink() *sink { return &sink{writes: make(chan string, 64)} }

func (s *sink) write(b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.writes <- string(b)
	return nil
}

func (s *sink) next(t *testing.T) string {
	t.Helper()
	select {
	case w := <-s.writes:
		return w
	case <-time.After(5 * time.Second):
		t.Fatal("nothing written within 5s")
	}
	return ""
}

func (s *sink) quiet(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case w := <-s.writes:
		t.Fatalf("wrote %q while it should have stayed quiet", w)
	case <-time.After(d):
	}
}

func TestPingerPingsOnlyAtBoundaries(t *testing.T) {
	s := newSink()
	p := NewPinger(30*time.Millisecond, s.write, nil)
	// Silent from the start: a ping.
	if w := s.next(t); w != PingEvent {
		t.Fatalf("first write %q, want a ping", w)
	}
	ev := "event: message_start\ndata: {\"type\":\"message_start\"}\n\n"
	if err := p.Write([]byte(ev), true); err != nil {
		t.Fatal(err)
	}
	for w := s.next(t); w != ev; w = s.next(t) {
		if w != PingEvent {
			t.Fatalf("got %q", w)
		}
	}
	// Half an event, then silence: nothing may be written inside it.
	half := "event: content_block_delta\ndata: {\"type\":\"content_bl"
	if err := p.Write([]byte(half), false); err != nil {
		t.Fatal(err)
	}
	for w := s.next(t); w != half; w = s.next(t) {
		if w != PingEvent {
			t.Fatalf("got %q", w)
		}
	}
	s.quiet(t, 150*time.Millisecond) // five intervals
	rest := "ock_delta\"}\n\n"
	if err := p.Write([]byte(rest), true); err != nil {
		t.Fatal(err)
	}
	if w := s.next(t); w != rest {
		t.Fatalf("got %q", w)
	}
	// At a boundary again: pings resume, spaced by the interval.
	if w := s.next(t); w != PingEvent {
		t.Fatalf("got %q, want a ping", w)
	}
	n := p.Stop()
	if n < 2 {
		t.Errorf("Stop reported %d pings", n)
	}
	s.quiet(t, 100*time.Millisecond)
	if err := p.Write([]byte("x"), true); err == nil {
		t.Error("Write after Stop succeeded")
	}
}

// TestPingerBusyStreamIsNotPinged: writes more often than the interval keep
// pings away entirely.
func TestPingerBusyStreamIsNotPinged(t *testing.T) {
	s := newSink()
	p := NewPinger(40*time.Millisecond, s.write, nil)
	defer p.Stop()
	for i := 0; i < 20; i++ {
		if err := p.Write([]byte("event: x\ndata: {}\n\n"), true); err != nil {
			t.Fatal(err)
		}
		if w := s.next(t); w == PingEvent {
			t.Fatalf("ping on a busy stream at write %d", i)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestPingerOff: a negative interval never pings; writes pass through.
func TestPingerOff(t *testing.T) {
	s := newSink()
	p := NewPinger(-1, s.write, nil)
	if err := p.Write([]byte("data: x"), false); err != nil {
		t.Fatal(err)
	}
	if w := s.next(t); w != "data: x" {
		t.Fatalf("got %q", w)
	}
	s.quiet(t, 100*time.Millisecond)
	if n := p.Stop(); n != 0 {
		t.Fatalf("%d pings with keep-alive off", n)
	}
}

// TestPingerFailedPing: a ping that cannot be written runs onFail once and
// every later write reports the failure.
func TestPingerFailedPing(t *testing.T) {
	s := newSink()
	gone := errors.New("client gone")
	s.fail = gone
	failed := make(chan struct{}, 2)
	p := NewPinger(20*time.Millisecond, s.write, func() { failed <- struct{}{} })
	defer p.Stop()
	select {
	case <-failed:
	case <-time.After(5 * time.Second):
		t.Fatal("onFail never ran")
	}
	if err := p.Write([]byte("data"), true); !errors.Is(err, gone) {
		t.Fatalf("Write after a failed ping = %v", err)
	}
	if !errors.Is(p.Err(), gone) {
		t.Fatalf("Err = %v", p.Err())
	}
	select {
	case <-failed:
		t.Fatal("onFail ran twice")
	case <-time.After(100 * time.Millisecond):
	}
}

// pipeDispatcher answers with an SSE body the test writes to.
type pipeDispatcher struct{ body io.ReadCloser }

func (d pipeDispatcher) Dispatch(ctx context.Context, out Outbound) (*http.Response, Served, error) {
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}}, Body: d.body}, Served{Upstream: "pipe"}, nil
}

// TestRelayPassesBytesThroughWithPings: through Forward, a stream with CRLF
// line ends split at odd places and silent spells reaches the client byte
// for byte, plus whole ping events between its events, and its usage is
// read.
func TestRelayPassesBytesThroughWithPings(t *testing.T) {
	stream := "event: message_start\r\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\r\n\r\n" +
		"event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\r\n\r\n" +
		"event: message_delta\r\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":7}}\r\n\r\n" +
		"event: message_stop\r\ndata: {\"type\":\"message_stop\"}\r\n\r\n"
	pr, pw := io.Pipe()
	go func() {
		// Each event in 7-byte pieces; a silence inside the first event
		// (no ping may land there) and after every event (pings may).
		for k, ev := range strings.SplitAfter(stream, "\r\n\r\n") {
			for i := 0; i < len(ev); i += 7 {
				_, _ = pw.Write([]byte(ev[i:min(i+7, len(ev))]))
				if k == 0 && i == 14 {
					time.Sleep(45 * time.Millisecond)
				}
			}
			time.Sleep(45 * time.Millisecond)
		}
		_ = pw.Close()
	}()
	p := New(Options{Dispatcher: pipeDispatcher{body: pr}, KeepAlive: 20 * time.Millisecond})
	results := make(chan Result, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		results <- p.Forward(w, r, Outbound{Path: "/v1/messages"}, nil)
	}))
	defer srv.Close()
	resp, err := http.Post(srv.URL, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	res := <-results
	pings := strings.Count(string(got), PingEvent)
	if pings == 0 {
		t.Error("no pings written during the silences")
	}
	if s := strings.ReplaceAll(string(got), PingEvent, ""); s != stream {
		t.Fatalf("stream altered:\n got %q\nwant %q", s, stream)
	}
	if res.Interrupted || res.Usage.InputTokens != 3 || res.Usage.OutputTokens != 7 {
		t.Fatalf("result %+v", res)
	}
}

// sseEvents parses an event stream as a browser would (WHATWG HTML
// §9.2.6: lines end at CRLF, LF or CR; "event" and "data" fields; a blank
// line dispatches when data was given) and returns "type:data" per event.
func sseEvents(s string) []string {
	var out []string
	var typ, data string
	hasData := false
	for len(s) > 0 {
		end := strings.IndexAny(s, "\r\n")
		var line string
		if end < 0 {
			break // an unterminated last line is never processed
		}
		line, s = s[:end], s[end:]
		if strings.HasPrefix(s, "\r\n") {
			s = s[2:]
		} else {
			s = s[1:]
		}
		if line == "" {
			if hasData {
				if typ == "" {
					typ = "message"
				}
				out = append(out, typ+":"+data)
			}
			typ, data, hasData = "", "", false
			continue
		}
		name, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch name {
		case "event":
			typ = value
		case "data":
			if hasData {
				data += "\n"
			}
			data += value
			hasData = true
		}
	}
	return out
}

// FuzzPingPlacement: wherever the SSE tap reports an event boundary,
// inserting a ping changes nothing about the events a client parses except
// the ping itself; and after every complete event there is a boundary.
func FuzzPingPlacement(f *testing.F) {
	f.Add("event: ping\ndata: {}\n\n", uint8(3))
	f.Add("data: x\r\n\r\n", uint8(5))
	f.Add("data: x\r\rdata", uint8(1))
	f.Add("a\r", uint8(2))
	f.Add("0\n", uint8(2))
	f.Add("event: a\ndata: 1\n\nevent: b\ndata: 2\ndata: 3\r\n\r\n", uint8(4))
	f.Fuzz(func(t *testing.T, s string, split uint8) {
		want := sseEvents(s)
		tap := anthropic.NewSSETap()
		step := int(split%7) + 1
		for i := 0; i < len(s); i += step {
			j := min(i+step, len(s))
			tap.Write([]byte(s[i:j]))
			prefix := strings.ReplaceAll(strings.ReplaceAll(s[:j], "\r\n", "\n"), "\r", "\n")
			if !tap.AtEventBoundary() {
				if strings.HasSuffix(prefix, "\n\n") {
					t.Fatalf("%q: no boundary after a complete event at %d", s, j)
				}
				continue
			}
			var got []string
			for _, ev := range sseEvents(s[:j] + PingEvent + s[j:]) {
				if ev != "ping:{\"type\": \"ping\"}" {
					got = append(got, ev)
				}
			}
			if strings.Join(got, "|") != strings.Join(want, "|") {
				t.Fatalf("%q with a ping at %d: events %q, want %q", s, j, got, want)
			}
		}
	})
}

// BenchmarkPingerWrite is the keep-alive's cost on a busy stream: one
// mutex and one clock read per relayed chunk.
//
//	go test ./internal/proxy -run '^$' -bench PingerWrite
func BenchmarkPingerWrite(b *testing.B) {
	ev := []byte("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n")
	p := NewPinger(time.Hour, func([]byte) error { return nil }, nil)
	defer p.Stop()
	b.SetBytes(int64(len(ev)))
	b.ReportAllocs()
	for b.Loop() {
		_ = p.Write(ev, true)
	}
}
