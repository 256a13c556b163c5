// Package doctor diagnoses a Gatehouse deployment: it runs named,
// independent checks (configuration, identity provider, upstreams, stores,
// clock, certificates, and the running gateway's refusal of unauthenticated
// and bypassing requests) concurrently, each under its own timeout, keeps
// going past failures and reports every result with the fix, as text or
// JSON.
//
// It knows nothing of the configuration file: internal/cli builds the checks
// from it through the constructors here.
package doctor

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Status is the outcome of one check.
type Status string

// Statuses, from best to worst (skip is neither good nor bad: the check did
// not apply or could not run for a reason outside it).
const (
	OK   Status = "ok"
	Warn Status = "warn"
	Fail Status = "fail"
	Skip Status = "skip"
)

// Result is what a check found. Message says what was seen; Fix says what to
// do about a warning or failure (empty when there is nothing to do).
type Result struct {
	Status  Status `json:"status"`
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"`
}

// Check is one named diagnostic. Name is lower-kebab-case and stable (it is
// what scripts and --skip match). Run must honour ctx and make as much
// progress as it can in error conditions; it reports problems in its Result
// instead of returning errors.
type Check interface {
	Name() string
	Run(ctx context.Context) Result
}

type funcCheck struct {
	name string
	fn   func(ctx context.Context) Result
}

func (c funcCheck) Name() string                   { return c.name }
func (c funcCheck) Run(ctx context.Context) Result { return c.fn(ctx) }

// CheckFunc adapts a function to a Check.
func CheckFunc(name string, fn func(ctx context.Context) Result) Check {
	return funcCheck{name: name, fn: fn}
}

// Fixed is a check whose result is already known (for example the
// configuration's validity, decided before any check runs).
func Fixed(name string, r Result) Check {
	return CheckFunc(name, func(context.Context) Result { return r })
}

// Okf, Warnf, Failf and Skipf build results; fix may be empty.
func Okf(format string, args ...any) Result {
	return Result{Status: OK, Message: fmt.Sprintf(format, args...)}
}

// Warnf builds a warning with its fix.
func Warnf(fix, format string, args ...any) Result {
	return Result{Status: Warn, Message: fmt.Sprintf(format, args...), Fix: fix}
}

// Failf builds a failure with its fix.
func Failf(fix, format string, args ...any) Result {
	return Result{Status: Fail, Message: fmt.Sprintf(format, args...), Fix: fix}
}

// Skipf builds a skipped result.
func Skipf(format string, args ...any) Result {
	return Result{Status: Skip, Message: fmt.Sprintf(format, args...)}
}

// Entry is one check's result in a report.
type Entry struct {
	Name string `json:"name"`
	Result
	// Duration is how long the check ran.
	Duration time.Duration `json:"-"`
}

// Report holds every result, in the order the checks were given.
type Report struct {
	Entries []Entry
}

// Count returns how many entries have status s.
func (r Report) Count(s Status) int {
	n := 0
	for _, e := range r.Entries {
		if e.Status == s {
			n++
		}
	}
	return n
}

// Failed reports whether any check failed.
func (r Report) Failed() bool { return r.Count(Fail) > 0 }

// RunOptions configures Run. Zero values are documented per field.
type RunOptions struct {
	// Timeout bounds each check. Zero: 10s. A check still running at its
	// deadline is reported as failed ("timed out"); its goroutine is left
	// to notice the cancelled context.
	Timeout time.Duration
	// Concurrency bounds how many checks run at once. Zero: 8.
	Concurrency int
	// Now is the clock used for durations. Nil: time.Now.
	Now func() time.Time
}

var nameRE = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// Run runs every check concurrently, each under its own timeout, and returns
// all results in the order given. A check that panics is reported as failed.
// Names must be lower-kebab-case and unique; a violation is reported as a
// failed entry rather than silently accepted.
func Run(ctx context.Context, checks []Check, o RunOptions) Report {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	entries := make([]Entry, len(checks))
	seen := map[string]bool{}
	sem := make(chan struct{}, o.Concurrency)
	var wg sync.WaitGroup
	for i, c := range checks {
		name := c.Name()
		entries[i].Name = name
		if !nameRE.MatchString(name) || seen[name] {
			entries[i].Result = Failf("this is a bug in gatehouse doctor; please report it", "check name %q is not unique lower-kebab-case", name)
			continue
		}
		seen[name] = true
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			start := o.Now()
			entries[i].Result = runOne(ctx, c, o.Timeout)
			entries[i].Duration = o.Now().Sub(start)
		}()
	}
	wg.Wait()
	return Report{Entries: entries}
}

func runOne(ctx context.Context, c Check, timeout time.Duration) Result {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	done := make(chan Result, 1)
	go func() {
		defer func() {
			if v := recover(); v != nil {
				done <- Failf("this is a bug in gatehouse doctor; please report it with the message", "the check panicked: %v", v)
			}
		}()
		done <- c.Run(cctx)
	}()
	select {
	case r := <-done:
		if r.Status == "" {
			r.Status = Fail
			r.Message = strings.TrimSpace("the check returned no status. " + r.Message)
		}
		return r
	case <-cctx.Done():
		if ctx.Err() != nil {
			return Skipf("interrupted before the check finished")
		}
		return Failf("find what is slow or hanging (a firewall that drops packets, a stalled service), or raise --timeout", "timed out after %s", timeout)
	}
}
