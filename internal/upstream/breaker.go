package upstream

import (
	"sync"
	"time"
)

// State is a circuit breaker state.
type State int

// Breaker states.
const (
	Closed   State = iota // requests flow
	Open                  // requests skip the target until the open period ends
	HalfOpen              // one probe request is let through; its outcome decides
)

func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case Open:
		return "open"
	case HalfOpen:
		return "half-open"
	}
	return "unknown"
}

// BreakerOptions tunes the per-target circuit breaker. Zero values: 5
// consecutive failures open the circuit for 30s; each failed half-open probe
// doubles the open period, up to 5m; a successful probe closes it.
type BreakerOptions struct {
	FailureThreshold int
	OpenDuration     time.Duration
	MaxOpenDuration  time.Duration
	// Strict makes Send answer 503 when every route's circuit is open.
	// Default (false): it then tries the first route anyway ("panic
	// mode"), so the client sees the upstream's own answer.
	Strict bool
}

func (o *BreakerOptions) normalize() {
	if o.FailureThreshold <= 0 {
		o.FailureThreshold = 5
	}
	if o.OpenDuration <= 0 {
		o.OpenDuration = 30 * time.Second
	}
	if o.MaxOpenDuration < o.OpenDuration {
		o.MaxOpenDuration = max(5*time.Minute, o.OpenDuration)
	}
}

// breaker is one target's health: a consecutive-failure circuit breaker
// plus a retry-after cool-down.
type breaker struct {
	o        BreakerOptions
	onChange func(from, to State)

	mu            sync.Mutex
	state         State
	failures      int
	openFor       time.Duration
	openUntil     time.Time
	probing       bool
	cooldownUntil time.Time
}

func newBreaker(o BreakerOptions, onChange func(from, to State)) *breaker {
	return &breaker{o: o, openFor: o.OpenDuration, onChange: onChange}
}

// admission is the result of allow.
type admission struct {
	ok       bool
	probe    bool
	forced   bool // panic mode: sent although the circuit is open
	cooldown bool // refused for retry-after
	reason   string
	until    time.Time // when the target may be tried again (ok == false)
}

func (b *breaker) setLocked(s State) {
	if b.state == s {
		return
	}
	from := b.state
	b.state = s
	if b.onChange != nil {
		b.onChange(from, s)
	}
}

func (b *breaker) allow(now time.Time) admission {
	b.mu.Lock()
	defer b.mu.Unlock()
	if now.Before(b.cooldownUntil) {
		return admission{reason: "rate limited: retry-after not yet passed", until: b.cooldownUntil, cooldown: true}
	}
	switch b.state {
	case Open:
		if now.Before(b.openUntil) {
			return admission{reason: "circuit open", until: b.openUntil}
		}
		b.setLocked(HalfOpen)
		b.probing = true
		return admission{ok: true, probe: true}
	case HalfOpen:
		if b.probing {
			return admission{reason: "circuit half-open: probe in flight", until: now.Add(time.Second)}
		}
		b.probing = true
		return admission{ok: true, probe: true}
	}
	return admission{ok: true}
}

// success records a response that shows the target healthy.
func (b *breaker) success(a admission) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if a.probe {
		b.probing = false
	}
	if a.probe || a.forced || b.state == Closed {
		b.failures = 0
		b.openFor = b.o.OpenDuration
		b.setLocked(Closed)
	}
}

// failure records a connection error, timeout or 5xx/529.
func (b *breaker) failure(now time.Time, a admission) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case a.probe:
		b.probing = false
		b.openFor = min(b.openFor*2, b.o.MaxOpenDuration)
		b.openUntil = now.Add(b.openFor)
		b.setLocked(Open)
	case b.state == Closed:
		b.failures++
		if b.failures >= b.o.FailureThreshold {
			b.openFor = b.o.OpenDuration
			b.openUntil = now.Add(b.openFor)
			b.setLocked(Open)
		}
	}
}

// release gives back a probe slot without a verdict (the caller went away,
// or the target answered 429).
func (b *breaker) release(a admission) {
	if !a.probe {
		return
	}
	b.mu.Lock()
	b.probing = false
	b.mu.Unlock()
}

// cooldown skips the target until t (retry-after).
func (b *breaker) cooldown(t time.Time) {
	b.mu.Lock()
	if t.After(b.cooldownUntil) {
		b.cooldownUntil = t
	}
	b.mu.Unlock()
}

func (b *breaker) snapshot() State {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}

// TargetStatus is a target's health, for readiness checks and metrics.
type TargetStatus struct {
	Name  string
	State State
	// ConsecutiveFailures counts failures since the last success (closed).
	ConsecutiveFailures int
	// OpenUntil is when an open circuit admits a probe (zero when closed).
	OpenUntil time.Time
	// CooldownUntil is when a retry-after ends (zero or past: none).
	CooldownUntil time.Time
}

// Health reports every target's breaker and retry-after state, in
// configuration order.
func (rt *Router) Health() []TargetStatus {
	out := make([]TargetStatus, 0, len(rt.order))
	for _, t := range rt.order {
		b := t.health
		b.mu.Lock()
		st := TargetStatus{Name: t.name, State: b.state, ConsecutiveFailures: b.failures, CooldownUntil: b.cooldownUntil}
		if b.state != Closed {
			st.OpenUntil = b.openUntil
		}
		b.mu.Unlock()
		out = append(out, st)
	}
	return out
}
