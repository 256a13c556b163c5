package upstream

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultKeepAliveInterval is how long an SSE stream may be silent before a
// ping is injected. Claude Code gives up after 300 s of silence; load
// balancers often after 60 s.
const DefaultKeepAliveInterval = 15 * time.Second

// PingEvent is the SSE event KeepAlive injects, byte for byte what the
// Anthropic API sends.
const PingEvent = "event: ping\ndata: {\"type\": \"ping\"}\n\n"

// IsEventStream reports whether resp carries an SSE stream.
func IsEventStream(resp *http.Response) bool {
	ct := strings.ToLower(resp.Header.Get("Content-Type"))
	return strings.HasPrefix(strings.TrimSpace(ct), "text/event-stream")
}

// KeepAlive wraps an upstream SSE body. Reads pass the upstream's bytes
// through unchanged and as soon as they arrive; when the upstream has been
// silent for the interval and the bytes delivered so far end on an event
// boundary (a blank line, or nothing yet), Read returns PingEvent instead of
// waiting. It never injects inside a partially received event. It is safe
// for one reader plus a concurrent Close.
type KeepAlive struct {
	src      io.ReadCloser
	interval time.Duration

	chunks chan chunk
	ack    chan struct{}
	done   chan struct{}
	once   sync.Once

	pending    []byte // rest of the current chunk
	pendingErr error
	boundary   sseBoundary
	pings      atomic.Int64
	started    bool
	finished   bool
	timer      *time.Timer
}

type chunk struct {
	b   []byte
	err error
}

// NewKeepAlive wraps body; interval <= 0 means DefaultKeepAliveInterval.
func NewKeepAlive(body io.ReadCloser, interval time.Duration) *KeepAlive {
	if interval <= 0 {
		interval = DefaultKeepAliveInterval
	}
	return &KeepAlive{
		src: body, interval: interval,
		chunks: make(chan chunk), ack: make(chan struct{}), done: make(chan struct{}),
		boundary: sseBoundary{atStart: true},
	}
}

// Pings returns how many pings were injected.
func (k *KeepAlive) Pings() int { return int(k.pings.Load()) }

func (k *KeepAlive) pump() {
	buf := make([]byte, 8<<10) // SSE events are small; a long-lived stream should hold little
	for {
		n, err := k.src.Read(buf)
		select {
		case k.chunks <- chunk{buf[:n], err}:
		case <-k.done:
			return
		}
		if err != nil {
			return
		}
		// Wait until the reader has copied the chunk out of buf.
		select {
		case <-k.ack:
		case <-k.done:
			return
		}
	}
}

// Read implements io.Reader.
func (k *KeepAlive) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(k.pending) > 0 {
		n := copy(p, k.pending)
		k.boundary.feed(p[:n])
		k.pending = k.pending[n:]
		if len(k.pending) == 0 {
			if k.pendingErr == nil {
				k.ackChunk()
			}
		}
		return n, nil
	}
	if k.pendingErr != nil {
		return 0, k.pendingErr
	}
	if !k.started {
		k.started = true
		go k.pump()
		k.timer = time.NewTimer(k.interval)
	} else {
		k.timer.Reset(k.interval)
	}
	for {
		select {
		case c := <-k.chunks:
			k.timer.Stop()
			n := copy(p, c.b)
			k.boundary.feed(p[:n])
			if n < len(c.b) {
				k.pending = c.b[n:]
				k.pendingErr = c.err
				return n, nil
			}
			if c.err != nil {
				k.pendingErr = c.err
				if n > 0 {
					return n, nil
				}
				return 0, c.err
			}
			k.ackChunk()
			if n == 0 {
				k.timer.Reset(k.interval)
				continue
			}
			return n, nil
		case <-k.timer.C:
			if !k.boundary.at() || len(p) < len(PingEvent) {
				// Mid-event: wait for the upstream to finish it.
				k.timer.Reset(k.interval)
				continue
			}
			k.pings.Add(1)
			return copy(p, PingEvent), nil
		case <-k.done:
			return 0, errClosed
		}
	}
}

func (k *KeepAlive) ackChunk() {
	select {
	case k.ack <- struct{}{}:
	case <-k.done:
	}
}

var errClosed = errors.New("upstream: keep-alive body closed")

// Close closes the upstream body and stops the pump.
func (k *KeepAlive) Close() error {
	var err error
	k.once.Do(func() {
		close(k.done)
		err = k.src.Close()
	})
	return err
}

// sseBoundary tracks whether a byte stream ends on an SSE event boundary:
// at the start, or right after a blank line. Line ends are LF, CRLF or CR.
type sseBoundary struct {
	atStart  bool
	endsLine bool // the last byte ended a line
	blank    bool // the last completed line was empty
	lastCR   bool
}

func (s *sseBoundary) feed(b []byte) {
	for _, c := range b {
		s.atStart = false
		switch c {
		case '\n':
			if s.lastCR { // CRLF: the CR already ended the line
				s.lastCR = false
				continue
			}
			s.endLine()
		case '\r':
			s.endLine()
			s.lastCR = true
			continue
		default:
			s.endsLine = false
		}
		s.lastCR = false
	}
}

func (s *sseBoundary) endLine() {
	if s.endsLine {
		// An empty line: the previous line end was followed directly by this one.
		s.blank = true
	} else {
		s.blank = false
	}
	s.endsLine = true
}

func (s *sseBoundary) at() bool { return s.atStart || (s.endsLine && s.blank) }
