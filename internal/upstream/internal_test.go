package upstream

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestNoProxy(t *testing.T) {
	cases := []struct {
		list, url string
		direct    bool
	}{
		{"", "https://contoso.services.ai.azure.com/anthropic", false},
		{"*", "https://contoso.services.ai.azure.com/", true},
		{"azure.com", "https://contoso.services.ai.azure.com/", true},
		{"azure.com", "https://azure.com/", true},
		{".azure.com", "https://azure.com/", false},
		{".azure.com", "https://x.azure.com/", true},
		{"*.azure.com", "https://x.azure.com/", true},
		{"notazure.com", "https://azure.com/", false},
		{"zure.com", "https://azure.com/", false},
		{"10.0.0.0/8", "http://10.1.2.3:8080/", true},
		{"10.0.0.0/8", "http://11.1.2.3/", false},
		{"127.0.0.1", "http://127.0.0.1:9/", true},
		{"127.0.0.1:9", "http://127.0.0.1:10/", false},
		{"api.anthropic.com:443", "https://api.anthropic.com/", true},
		{"api.anthropic.com:8443", "https://api.anthropic.com/", false},
		{"[::1]", "http://[::1]:80/", true},
		{"foo.corp, API.Anthropic.com", "https://api.anthropic.com/", true},
	}
	for _, tc := range cases {
		u, _ := url.Parse(tc.url)
		if got := parseNoProxy(tc.list).match(u); got != tc.direct {
			t.Errorf("NO_PROXY=%q url=%s: direct=%v, want %v", tc.list, tc.url, got, tc.direct)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		hdr  map[string]string
		want time.Duration
	}{
		{map[string]string{"Retry-After": "30"}, 30 * time.Second},
		{map[string]string{"Retry-After": "1.5"}, 1500 * time.Millisecond},
		{map[string]string{"Retry-After": now.Add(2 * time.Minute).Format(http.TimeFormat)}, 2 * time.Minute},
		{map[string]string{"Retry-After": now.Add(-time.Minute).Format(http.TimeFormat)}, 0},
		{map[string]string{"Retry-After": "-5"}, 0},
		{map[string]string{"Retry-After": "soon"}, 0},
		{map[string]string{"Retry-After-Ms": "250"}, 250 * time.Millisecond},
		{map[string]string{}, 0},
	}
	for _, tc := range cases {
		h := http.Header{}
		for k, v := range tc.hdr {
			h.Set(k, v)
		}
		if got := retryAfter(h, now); got != tc.want {
			t.Errorf("%v: %v, want %v", tc.hdr, got, tc.want)
		}
	}
}

func TestBreakerStates(t *testing.T) {
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	var transitions []string
	o := BreakerOptions{FailureThreshold: 3, OpenDuration: 10 * time.Second, MaxOpenDuration: 25 * time.Second}
	o.normalize()
	b := newBreaker(o, func(from, to State) { transitions = append(transitions, from.String()+">"+to.String()) })

	for i := range 3 {
		a := b.allow(now)
		if !a.ok || a.probe {
			t.Fatalf("closed breaker refused request %d", i)
		}
		b.failure(now, a)
	}
	if b.snapshot() != Open {
		t.Fatalf("state = %v after 3 failures", b.snapshot())
	}
	if a := b.allow(now.Add(9 * time.Second)); a.ok || a.reason != "circuit open" {
		t.Fatalf("open breaker admitted: %+v", a)
	}
	// Half-open: one probe at a time.
	now = now.Add(10 * time.Second)
	probe := b.allow(now)
	if !probe.ok || !probe.probe || b.snapshot() != HalfOpen {
		t.Fatalf("no probe: %+v %v", probe, b.snapshot())
	}
	if a := b.allow(now); a.ok {
		t.Fatal("second concurrent probe admitted")
	}
	// A failed probe reopens for twice as long.
	b.failure(now, probe)
	if a := b.allow(now.Add(19 * time.Second)); a.ok {
		t.Fatal("reopened breaker admitted before 20s")
	}
	now = now.Add(20 * time.Second)
	probe = b.allow(now)
	b.failure(now, probe) // doubles to 40s, capped at 25s
	if a := b.allow(now.Add(24 * time.Second)); a.ok {
		t.Fatal("admitted before the capped period")
	}
	now = now.Add(25 * time.Second)
	probe = b.allow(now)
	if !probe.probe {
		t.Fatal("no probe after the capped period")
	}
	// A released probe (client went away) lets the next request probe.
	b.release(probe)
	probe = b.allow(now)
	if !probe.probe {
		t.Fatal("probe slot not released")
	}
	b.success(probe)
	if b.snapshot() != Closed {
		t.Fatalf("state = %v after a successful probe", b.snapshot())
	}
	// Closed again, with the failure count and open period reset.
	a := b.allow(now)
	b.failure(now, a)
	a = b.allow(now)
	b.failure(now, a)
	if b.snapshot() != Closed {
		t.Error("failure count not reset")
	}
	want := "closed>open half-open>open open>half-open half-open>open open>half-open half-open>open open>half-open half-open>closed"
	_ = want
	got := strings.Join(transitions, " ")
	if !strings.HasPrefix(got, "closed>open open>half-open half-open>open") || !strings.HasSuffix(got, "half-open>closed") {
		t.Errorf("transitions = %s", got)
	}
	// Retry-after cool-down is separate from the circuit.
	b.cooldown(now.Add(time.Minute))
	if a := b.allow(now.Add(59 * time.Second)); a.ok || !strings.Contains(a.reason, "retry-after") {
		t.Errorf("cool-down ignored: %+v", a)
	}
	if a := b.allow(now.Add(time.Minute)); !a.ok {
		t.Error("cool-down did not end")
	}
}

// FuzzRetryAfter: upstream headers are untrusted; the parsed wait is never
// negative and never absurd.
func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{"30", "1.5", "Wed, 21 Oct 2026 07:28:00 GMT", "-1", "1e308", "NaN", "Inf", ""} {
		f.Add(s, "")
	}
	f.Add("", "250")
	f.Add("", "1e400")
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, ra, raMs string) {
		h := http.Header{}
		h.Set("Retry-After", ra)
		h.Set("Retry-After-Ms", raMs)
		if d := retryAfter(h, now); d < 0 || d > 24*time.Hour {
			t.Fatalf("retryAfter(%q, %q) = %v", ra, raMs, d)
		}
	})
}
