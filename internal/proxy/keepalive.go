package proxy

import (
	"errors"
	"sync"
	"time"
)

// DefaultKeepAlive is how long a relayed SSE stream may be silent before a
// ping is written to the client. Claude Code gives up after 300 s of
// silence; load balancers often after 60 s.
const DefaultKeepAlive = 15 * time.Second

// PingEvent is the event written into a silent stream, byte for byte what
// the Anthropic API itself sends.
const PingEvent = "event: ping\ndata: {\"type\": \"ping\"}\n\n"

// Pinger serialises the writes to one client's event stream and, when the
// stream has been silent for the interval and what was written so far ends
// on an event boundary, writes PingEvent itself. It never writes inside a
// partly relayed event. It owns no goroutine: one timer wakes it, checks
// how long the stream has been quiet and re-arms for the remainder, so a
// busy stream costs a clock read per write and an idle one a timer.
type Pinger struct {
	mu       sync.Mutex
	write    func([]byte) error
	onFail   func()
	interval time.Duration
	timer    *time.Timer
	last     time.Time // the last write
	boundary bool      // the bytes written so far end on an event boundary
	stopped  bool
	err      error // the first failed write: the client is gone or stuck
	pings    int
}

// NewPinger starts a Pinger over write (which writes and flushes to the
// client). onFail, if set, runs once when a ping cannot be written, so the
// caller can stop waiting on a silent upstream (for example by closing its
// body). interval 0 means DefaultKeepAlive; a negative interval never pings
// (the Pinger then only serialises writes and remembers a failure).
func NewPinger(interval time.Duration, write func([]byte) error, onFail func()) *Pinger {
	if interval == 0 {
		interval = DefaultKeepAlive
	}
	p := &Pinger{write: write, onFail: onFail, interval: interval, last: time.Now(), boundary: true}
	if interval > 0 {
		p.mu.Lock() // fire reads p.timer under mu
		p.timer = time.AfterFunc(interval, p.fire)
		p.mu.Unlock()
	}
	return p
}

func (p *Pinger) fire() {
	p.mu.Lock()
	if p.stopped || p.err != nil {
		p.mu.Unlock()
		return
	}
	if quiet := time.Since(p.last); quiet < p.interval {
		p.timer.Reset(p.interval - quiet)
		p.mu.Unlock()
		return
	}
	if !p.boundary {
		// Mid-event: wait for the upstream to finish it.
		p.timer.Reset(p.interval)
		p.mu.Unlock()
		return
	}
	err := p.write([]byte(PingEvent))
	if err != nil {
		p.err = err
		p.mu.Unlock()
		if p.onFail != nil {
			p.onFail()
		}
		return
	}
	p.pings++
	p.last = time.Now()
	p.timer.Reset(p.interval)
	p.mu.Unlock()
}

// Write writes b and records whether the stream now ends on an event
// boundary. After a failed write (its own or a ping's) it returns that
// error without writing.
func (p *Pinger) Write(b []byte, atBoundary bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return p.err
	}
	if p.stopped {
		return errPingerStopped
	}
	p.err = p.write(b)
	p.last = time.Now()
	p.boundary = atBoundary
	return p.err
}

// Err returns the first failed write's error, if any.
func (p *Pinger) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Stop ends the pinging; once it returns no ping is being or will be
// written. It reports how many pings were written.
func (p *Pinger) Stop() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopped = true
	if p.timer != nil {
		p.timer.Stop()
	}
	return p.pings
}

var errPingerStopped = errors.New("proxy: stream writer stopped")
