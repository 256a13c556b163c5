package upstream_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/anthropic"
	"github.com/gatehouse-dev/gatehouse/internal/proxy"
	"github.com/gatehouse-dev/gatehouse/internal/upstream"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)} }
func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// headerCred is a test credential: it sets api-key, or fails.
type headerCred struct {
	key         string
	fail        atomic.Bool
	invalidated atomic.Int32
}

func (c *headerCred) Apply(_ context.Context, r *http.Request) error {
	if c.fail.Load() {
		return errors.New("credential test: no token (IMDS answered 500)")
	}
	r.Header.Set("api-key", c.key)
	return nil
}
func (c *headerCred) Invalidate() { c.invalidated.Add(1) }

// Upstream modes.
const (
	modeOK = iota
	mode429
	mode500
	mode529
	modeStall
	mode401
)

// fakeUpstream is an Anthropic-compatible upstream whose behaviour the
// test switches at run time.
type fakeUpstream struct {
	name string
	srv  *httptest.Server
	mode atomic.Int32
	hits atomic.Int32
	gate chan struct{} // a request with x-test-gate waits on it mid-stream

	mu     sync.Mutex
	models []string
	keys   []string
	extra  []string
}

func newFakeUpstream(t *testing.T, name string) *fakeUpstream {
	f := &fakeUpstream{name: name, gate: make(chan struct{})}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeUpstream) serve(w http.ResponseWriter, r *http.Request) {
	f.hits.Add(1)
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.models = append(f.models, string(body))
	f.keys = append(f.keys, r.Header.Get("api-key"))
	f.extra = append(f.extra, r.Header.Get("X-Tenant-Route"))
	f.mu.Unlock()
	w.Header().Set("request-id", "req_"+f.name)
	switch f.mode.Load() {
	case mode429:
		w.Header().Set("retry-after", "60")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(429)
		fmt.Fprintf(w, `{"type":"error","error":{"type":"rate_limit_error","message":"%s: rate limited"}}`, f.name)
		return
	case mode500:
		w.WriteHeader(500)
		fmt.Fprintf(w, `{"type":"error","error":{"type":"api_error","message":"%s: internal"}}`, f.name)
		return
	case mode529:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(529)
		fmt.Fprintf(w, `{"type":"error","error":{"type":"overloaded_error","message":"%s: Overloaded"}}`, f.name)
		return
	case mode401:
		w.WriteHeader(401)
		fmt.Fprint(w, `{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}`)
		return
	case modeStall:
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(200)
	fl := w.(http.Flusher)
	fmt.Fprintf(w, "event: message_start\ndata: {\"type\":\"message_start\",\"served_by\":%q}\n\n", f.name)
	fl.Flush()
	if r.Header.Get("X-Test-Gate") != "" || r.Header.Get("Anthropic-Test-Gate") != "" {
		// Half an event, a silence, the rest; then a silence at a boundary.
		fmt.Fprint(w, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",")
		fl.Flush()
		time.Sleep(200 * time.Millisecond)
		fmt.Fprint(w, "\"delta\":{\"text\":\"hi\"}}\n\n")
		fl.Flush()
		select {
		case <-f.gate:
		case <-r.Context().Done():
			return
		}
	}
	fmt.Fprint(w, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
}

func (f *fakeUpstream) lastModel() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.models[len(f.models)-1]
}

// gateway is the minimal proxy the lead's code implements around Send:
// route, send with failover, relay headers and body, keep-alive pings.
func gateway(t *testing.T, rt *upstream.Router, keepAlive time.Duration) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		cands, ok := rt.Candidates("claude-sonnet-4-6", r.Header.Get("x-claude-code-session-id"))
		if !ok {
			http.Error(w, "no model", 404)
			return
		}
		resp, served, failures, err := rt.Send(r.Context(), cands, func(c upstream.Candidate) (*http.Request, error) {
			b := bytes.Replace(body, []byte("claude-sonnet-4-6"), []byte(c.UpstreamModel), 1)
			req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, c.Target.URL("/v1/messages").String(), bytes.NewReader(b))
			if err != nil {
				return nil, err
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("api-key", "user-smuggled") // must be replaced by the credential
			if g := r.Header.Get("X-Test-Gate"); g != "" {
				req.Header.Set("X-Test-Gate", g)
			}
			return req, nil
		})
		var fs []string
		for _, f := range failures {
			fs = append(fs, f.Upstream+":"+f.Reason)
		}
		w.Header().Set("X-Failures", strings.Join(fs, ","))
		if err != nil {
			var se *upstream.SendError
			if !errors.As(err, &se) {
				http.Error(w, err.Error(), 500)
				return
			}
			st, typ := se.Status()
			if se.RetryAfter > 0 {
				w.Header().Set("retry-after", fmt.Sprint(int(se.RetryAfter.Seconds()+0.999)))
			}
			w.WriteHeader(st)
			fmt.Fprintf(w, `{"type":"error","error":{"type":%q,"message":"upstream unavailable"}}`, typ)
			return
		}
		w.Header().Set("X-Served-By", served.Target.Name())
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		defer resp.Body.Close()
		rc := http.NewResponseController(w)
		flushed := func(b []byte) error {
			if _, err := w.Write(b); err != nil {
				return err
			}
			return rc.Flush()
		}
		write := func(b []byte, _ bool) error { return flushed(b) }
		tap := anthropic.NewSSETap()
		if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			pinger := proxy.NewPinger(keepAlive, flushed, nil)
			defer pinger.Stop()
			write = pinger.Write
		}
		buf := make([]byte, 32<<10)
		for {
			n, err := resp.Body.Read(buf)
			if n > 0 {
				tap.Write(buf[:n])
				if werr := write(buf[:n], tap.AtEventBoundary()); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func newTarget(t *testing.T, name, base string, cred upstream.Credential, o upstream.TargetOptions) *upstream.Target {
	t.Helper()
	o.Name, o.Provider, o.BaseURL, o.Credential = name, "foundry", base, cred
	tg, err := upstream.NewTarget(o)
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

type result struct {
	status   int
	servedBy string
	failures string
	body     string
	header   http.Header
}

func post(t *testing.T, gw string, hdr map[string]string) result {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, gw+"/v1/messages", strings.NewReader(`{"model":"claude-sonnet-4-6","stream":true}`))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return result{resp.StatusCode, resp.Header.Get("X-Served-By"), resp.Header.Get("X-Failures"), string(b), resp.Header}
}

// TestFailoverWhileStreaming drives several fake upstreams that rate-limit,
// stall, fail and recover while a streaming client stays connected.
func TestFailoverWhileStreaming(t *testing.T) {
	clk := newClock()
	a, b, c := newFakeUpstream(t, "east"), newFakeUpstream(t, "west"), newFakeUpstream(t, "central")
	credA, credB, credC := &headerCred{key: "key-east"}, &headerCred{key: "key-west"}, &headerCred{key: "key-central"}
	tA := newTarget(t, "east", a.srv.URL+"/anthropic", credA, upstream.TargetOptions{Headers: map[string]string{"X-Tenant-Route": "east"}})
	tB := newTarget(t, "west", b.srv.URL+"/anthropic", credB, upstream.TargetOptions{FirstByteTimeout: 150 * time.Millisecond})
	tC := newTarget(t, "central", c.srv.URL+"/anthropic", credC, upstream.TargetOptions{})
	rt, err := upstream.NewRouter(upstream.RouterOptions{
		Targets: []*upstream.Target{tA, tB, tC},
		Models: map[string][]upstream.Route{"claude-sonnet-4-6": {
			{Upstream: "east", UpstreamModel: "sonnet-east"},
			{Upstream: "west", UpstreamModel: "sonnet-west"},
			{Upstream: "central", UpstreamModel: "sonnet-central"},
		}},
		Breaker: upstream.BreakerOptions{FailureThreshold: 2, OpenDuration: 30 * time.Second},
		Now:     clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	gw := gateway(t, rt, 50*time.Millisecond)

	// 1. east rate-limits (retry-after 60), west stalls past its first-byte
	// timeout: central serves a long stream, which stays connected.
	a.mode.Store(mode429)
	b.mode.Store(modeStall)
	req, _ := http.NewRequest(http.MethodPost, gw.URL+"/v1/messages", strings.NewReader(`{"model":"claude-sonnet-4-6","stream":true}`))
	req.Header.Set("X-Test-Gate", "1")
	resp1, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp1.Body.Close()
	if got := resp1.Header.Get("X-Served-By"); got != "central" {
		t.Fatalf("stream 1 served by %q (failures %s)", got, resp1.Header.Get("X-Failures"))
	}
	if got := resp1.Header.Get("X-Failures"); got != "east:status 429,west:timeout (connect or first byte)" {
		t.Errorf("stream 1 failures = %q", got)
	}
	if m := c.lastModel(); !strings.Contains(m, `"sonnet-central"`) {
		t.Errorf("central received model %s", m)
	}
	events := make(chan string, 100)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp1.Body)
		var ev strings.Builder
		for sc.Scan() {
			if sc.Text() == "" {
				events <- ev.String()
				ev.Reset()
				continue
			}
			ev.WriteString(sc.Text() + "\n")
		}
	}()
	first := <-events
	if !strings.Contains(first, "message_start") {
		t.Fatalf("first event = %q", first)
	}

	// 2. With stream 1 connected: east is skipped without a request (its
	// retry-after has not passed); west times out again and opens.
	hitsA := a.hits.Load()
	r2 := post(t, gw.URL, nil)
	if r2.status != 200 || r2.servedBy != "central" || a.hits.Load() != hitsA {
		t.Fatalf("request 2: %+v, east hits %d→%d", r2, hitsA, a.hits.Load())
	}
	if !strings.HasPrefix(r2.failures, "east:rate limited") || !strings.Contains(r2.failures, "west:timeout") {
		t.Errorf("request 2 failures = %q", r2.failures)
	}
	if tB.State() != upstream.Open {
		t.Errorf("west state = %v after 2 timeouts", tB.State())
	}
	h := rt.Health()
	if len(h) != 3 || h[0].Name != "east" || !h[0].CooldownUntil.Equal(clk.Now().Add(60*time.Second)) ||
		h[1].State != upstream.Open || !h[1].OpenUntil.Equal(clk.Now().Add(30*time.Second)) || h[2].State != upstream.Closed {
		t.Errorf("health = %+v", h)
	}

	// 3. east recovers after its retry-after.
	clk.Advance(61 * time.Second)
	a.mode.Store(modeOK)
	if r := post(t, gw.URL, nil); r.servedBy != "east" || r.failures != "" {
		t.Fatalf("request 3: %+v", r)
	}
	if m := a.lastModel(); !strings.Contains(m, `"sonnet-east"`) {
		t.Errorf("east received %s", m)
	}

	// 4-5. east fails twice: its circuit opens. west (half-open) probes and
	// stalls again.
	a.mode.Store(mode500)
	r4 := post(t, gw.URL, nil)
	if r4.servedBy != "central" || r4.failures != "east:status 500,west:timeout (connect or first byte)" {
		t.Errorf("request 4: served %s failures %q", r4.servedBy, r4.failures)
	}
	r5 := post(t, gw.URL, nil)
	if r5.servedBy != "central" || r5.failures != "east:status 500,west:circuit open" {
		t.Errorf("request 5: served %s failures %q", r5.servedBy, r5.failures)
	}
	if tA.State() != upstream.Open {
		t.Fatalf("east state = %v", tA.State())
	}
	// 6. Open circuits are skipped without a request.
	hitsA, hitsB := a.hits.Load(), b.hits.Load()
	r6 := post(t, gw.URL, nil)
	if r6.servedBy != "central" || a.hits.Load() != hitsA || b.hits.Load() != hitsB {
		t.Errorf("request 6: %+v (east hits %d→%d)", r6, hitsA, a.hits.Load())
	}
	// 7. After the open period east gets a half-open probe, succeeds and closes.
	a.mode.Store(modeOK)
	clk.Advance(31 * time.Second)
	if r := post(t, gw.URL, nil); r.servedBy != "east" {
		t.Errorf("request 7 (probe) served by %s, failures %q", r.servedBy, r.failures)
	}
	if tA.State() != upstream.Closed {
		t.Errorf("east state = %v after a successful probe", tA.State())
	}

	// Stream 1 is still connected: it got pings at event boundaries only,
	// never inside the delta the upstream split with a silence.
	var got []string
	deadline := time.After(5 * time.Second)
	for len(got) < 3 {
		select {
		case ev := <-events:
			got = append(got, ev)
		case <-deadline:
			t.Fatalf("stream 1 events so far: %q", got)
		}
	}
	close(c.gate)
	for ev := range events {
		got = append(got, ev)
	}
	var kinds []string
	for _, ev := range got {
		switch {
		case strings.HasPrefix(ev, "event: ping\ndata: {\"type\": \"ping\"}\n") && strings.Count(ev, "\n") == 2:
			if len(kinds) == 0 || kinds[len(kinds)-1] != "ping" {
				kinds = append(kinds, "ping")
			}
		case strings.HasPrefix(ev, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"text\":\"hi\"}}\n"):
			kinds = append(kinds, "delta")
		case strings.HasPrefix(ev, "event: message_stop\n"):
			kinds = append(kinds, "stop")
		default:
			t.Errorf("malformed event (ping injected mid-event?): %q", ev)
		}
	}
	if k := strings.TrimPrefix(strings.Join(kinds, ","), "ping,"); k != "delta,ping,stop" {
		t.Errorf("stream 1 after message_start: %v", kinds)
	}

	// 8. Everything fails: east 529, west still open, central down. The
	// last upstream error is relayed unchanged, with its headers.
	a.mode.Store(mode529)
	c.srv.Close()
	r8 := post(t, gw.URL, nil)
	if r8.status != 529 || r8.body != `{"type":"error","error":{"type":"overloaded_error","message":"east: Overloaded"}}` || r8.header.Get("request-id") != "req_east" {
		t.Errorf("request 8: %d %q %v", r8.status, r8.body, r8.header)
	}
	if !strings.Contains(r8.failures, "central:connection error") {
		t.Errorf("request 8 failures = %q", r8.failures)
	}

	// Credentials and static headers: each upstream got its own key, never
	// the client's, and only east got its static header.
	for _, f := range []*fakeUpstream{a, b, c} {
		f.mu.Lock()
		for i, k := range f.keys {
			if k != "key-"+f.name {
				t.Errorf("%s request %d carried api-key %q", f.name, i, k)
			}
			if want := map[bool]string{true: "east"}[f.name == "east"]; f.extra[i] != want {
				t.Errorf("%s request %d: X-Tenant-Route = %q", f.name, i, f.extra[i])
			}
		}
		f.mu.Unlock()
	}
}

func TestSendErrors(t *testing.T) {
	stall := newFakeUpstream(t, "stall")
	stall.mode.Store(modeStall)
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()
	ok := newFakeUpstream(t, "ok")

	cases := []struct {
		name       string
		build      func() []*upstream.Target
		wantStatus int
		wantType   string
		wantServed string
	}{
		{"connection refused only → 502", func() []*upstream.Target {
			return []*upstream.Target{newTarget(t, "down", downURL, &headerCred{key: "k"}, upstream.TargetOptions{})}
		}, 502, "api_error", ""},
		{"first-byte timeout last → 504", func() []*upstream.Target {
			return []*upstream.Target{
				newTarget(t, "down", downURL, &headerCred{key: "k"}, upstream.TargetOptions{}),
				newTarget(t, "stall", stall.srv.URL, &headerCred{key: "k"}, upstream.TargetOptions{FirstByteTimeout: 100 * time.Millisecond}),
			}
		}, 504, "timeout_error", ""},
		{"credential failure fails over", func() []*upstream.Target {
			bad := &headerCred{key: "k"}
			bad.fail.Store(true)
			return []*upstream.Target{
				newTarget(t, "nocred", ok.srv.URL, bad, upstream.TargetOptions{}),
				newTarget(t, "ok", ok.srv.URL, &headerCred{key: "key-ok"}, upstream.TargetOptions{}),
			}
		}, 200, "", "ok"},
		{"credential failure everywhere → 502", func() []*upstream.Target {
			bad := &headerCred{key: "k"}
			bad.fail.Store(true)
			return []*upstream.Target{newTarget(t, "nocred", ok.srv.URL, bad, upstream.TargetOptions{})}
		}, 502, "api_error", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			targets := tc.build()
			var routes []upstream.Route
			for _, tg := range targets {
				routes = append(routes, upstream.Route{Upstream: tg.Name(), UpstreamModel: "m"})
			}
			rt, err := upstream.NewRouter(upstream.RouterOptions{Targets: targets, Models: map[string][]upstream.Route{"claude-sonnet-4-6": routes}})
			if err != nil {
				t.Fatal(err)
			}
			r := post(t, gateway(t, rt, time.Second).URL, nil)
			if r.status != tc.wantStatus || (tc.wantType != "" && !strings.Contains(r.body, tc.wantType)) || r.servedBy != tc.wantServed {
				t.Errorf("got %d %q served by %q (failures %q)", r.status, r.body, r.servedBy, r.failures)
			}
		})
	}
}

func TestSendCredentialErrorUnwraps(t *testing.T) {
	type credErr struct{ error }
	cred := credFunc(func(context.Context, *http.Request) error { return &credErr{errors.New("IMDS 500")} })
	tg := newTarget(t, "x", "http://127.0.0.1:1", cred, upstream.TargetOptions{})
	rt, _ := upstream.NewRouter(upstream.RouterOptions{Targets: []*upstream.Target{tg}, Models: map[string][]upstream.Route{"m": {{Upstream: "x", UpstreamModel: "m"}}}})
	cands, _ := rt.Candidates("m", "")
	_, _, fails, err := rt.Send(context.Background(), cands, func(c upstream.Candidate) (*http.Request, error) {
		return http.NewRequest(http.MethodPost, c.Target.URL("/v1/messages").String(), nil)
	})
	var se *upstream.SendError
	var ce *credErr
	if !errors.As(err, &se) || se.Kind != upstream.KindCredential || !errors.As(err, &ce) || len(fails) != 1 {
		t.Fatalf("err = %v, fails = %v", err, fails)
	}
}

type credFunc func(context.Context, *http.Request) error

func (f credFunc) Apply(ctx context.Context, r *http.Request) error { return f(ctx, r) }

func TestSend401InvalidatesAndIsNotFailedOver(t *testing.T) {
	u1, u2 := newFakeUpstream(t, "one"), newFakeUpstream(t, "two")
	u1.mode.Store(mode401)
	cred := &headerCred{key: "k"}
	rt, _ := upstream.NewRouter(upstream.RouterOptions{
		Targets: []*upstream.Target{newTarget(t, "one", u1.srv.URL, cred, upstream.TargetOptions{}), newTarget(t, "two", u2.srv.URL, &headerCred{key: "k"}, upstream.TargetOptions{})},
		Models:  map[string][]upstream.Route{"claude-sonnet-4-6": {{Upstream: "one", UpstreamModel: "m"}, {Upstream: "two", UpstreamModel: "m"}}},
	})
	r := post(t, gateway(t, rt, time.Second).URL, nil)
	if r.status != 401 || r.servedBy != "one" || u2.hits.Load() != 0 {
		t.Errorf("got %d served by %s; two hits %d", r.status, r.servedBy, u2.hits.Load())
	}
	if cred.invalidated.Load() != 1 {
		t.Errorf("Invalidate called %d times", cred.invalidated.Load())
	}
}

func TestSendClientGoneIsNotAFailure(t *testing.T) {
	u := newFakeUpstream(t, "slow")
	u.mode.Store(modeStall)
	tg := newTarget(t, "slow", u.srv.URL, &headerCred{key: "k"}, upstream.TargetOptions{})
	rt, _ := upstream.NewRouter(upstream.RouterOptions{Targets: []*upstream.Target{tg},
		Models: map[string][]upstream.Route{"m": {{Upstream: "slow", UpstreamModel: "m"}}}, Breaker: upstream.BreakerOptions{FailureThreshold: 1}})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	cands, _ := rt.Candidates("m", "")
	_, _, _, err := rt.Send(ctx, cands, func(c upstream.Candidate) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodPost, c.Target.URL("/v1/messages").String(), nil)
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if tg.State() != upstream.Closed {
		t.Error("a client disconnect opened the circuit")
	}
}

func TestSendRefusesForeignURL(t *testing.T) {
	tg := newTarget(t, "x", "https://contoso.services.ai.azure.com/anthropic", &headerCred{key: "k"}, upstream.TargetOptions{})
	rt, _ := upstream.NewRouter(upstream.RouterOptions{Targets: []*upstream.Target{tg}, Models: map[string][]upstream.Route{"m": {{Upstream: "x", UpstreamModel: "m"}}}})
	cands, _ := rt.Candidates("m", "")
	_, _, _, err := rt.Send(context.Background(), cands, func(upstream.Candidate) (*http.Request, error) {
		return http.NewRequest(http.MethodPost, "https://attacker.example/v1/messages", nil)
	})
	if err == nil || !strings.Contains(err.Error(), "base URL") {
		t.Fatalf("err = %v", err)
	}
	if got := tg.URL("/v1/messages").String(); got != "https://contoso.services.ai.azure.com/anthropic/v1/messages" {
		t.Errorf("URL = %s", got)
	}
}

func TestAllRoutesUnavailable(t *testing.T) {
	cases := []struct {
		name       string
		strict     bool
		firstMode  int32
		wantStatus int
		wantHits   int32 // upstream hits for the second request
		wantBody   string
	}{
		{"panic mode: open circuit still tried, success closes it", false, mode500, 200, 1, "message_stop"},
		{"strict: open circuit answers 503", true, mode500, 503, 0, "overloaded_error"},
		{"retry-after pending answers 429", false, mode429, 429, 0, "rate_limit_error"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			u := newFakeUpstream(t, "only")
			tg := newTarget(t, "only", u.srv.URL, &headerCred{key: "key-only"}, upstream.TargetOptions{})
			rt, err := upstream.NewRouter(upstream.RouterOptions{Targets: []*upstream.Target{tg},
				Models:  map[string][]upstream.Route{"claude-sonnet-4-6": {{Upstream: "only", UpstreamModel: "m"}}},
				Breaker: upstream.BreakerOptions{FailureThreshold: 1, Strict: tc.strict}, Now: clk.Now})
			if err != nil {
				t.Fatal(err)
			}
			gw := gateway(t, rt, time.Second).URL
			u.mode.Store(tc.firstMode)
			if r := post(t, gw, nil); r.status != map[int32]int{mode500: 500, mode429: 429}[tc.firstMode] {
				t.Fatalf("first request: %d %s (the upstream's own answer is relayed)", r.status, r.body)
			}
			u.mode.Store(modeOK)
			clk.Advance(time.Second)
			before := u.hits.Load()
			r := post(t, gw, nil)
			if r.status != tc.wantStatus || u.hits.Load()-before != tc.wantHits || !strings.Contains(r.body, tc.wantBody) {
				t.Fatalf("second request: %d %q, upstream hits %d", r.status, r.body, u.hits.Load()-before)
			}
			if tc.wantStatus == 429 && r.header.Get("retry-after") != "59" {
				t.Errorf("retry-after = %q, want the remaining 59s", r.header.Get("retry-after"))
			}
			if tc.wantStatus == 200 && tg.State() != upstream.Closed {
				t.Errorf("state = %v after a successful panic-mode attempt", tg.State())
			}
		})
	}
}

func TestStreamCutCountsAgainstBreaker(t *testing.T) {
	cut := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		fmt.Fprint(w, "event: message_start\ndata: {}\n\n")
		w.(http.Flusher).Flush()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close() // no terminating chunk: the client sees an unexpected EOF
		}
	}))
	defer cut.Close()
	tg := newTarget(t, "cut", cut.URL, &headerCred{key: "k"}, upstream.TargetOptions{})
	rt, _ := upstream.NewRouter(upstream.RouterOptions{Targets: []*upstream.Target{tg},
		Models: map[string][]upstream.Route{"m": {{Upstream: "cut", UpstreamModel: "m"}}}, Breaker: upstream.BreakerOptions{FailureThreshold: 1}})
	cands, _ := rt.Candidates("m", "")
	resp, _, _, err := rt.Send(context.Background(), cands, func(c upstream.Candidate) (*http.Request, error) {
		return http.NewRequest(http.MethodPost, c.Target.URL("/v1/messages").String(), strings.NewReader("{}"))
	})
	if err != nil {
		t.Fatal(err)
	}
	b, rerr := io.ReadAll(resp.Body)
	resp.Body.Close()
	if rerr == nil || !strings.Contains(string(b), "message_start") {
		t.Fatalf("read %q, err %v; want the first event then an error", b, rerr)
	}
	if tg.State() != upstream.Open {
		t.Errorf("state = %v after a cut stream (threshold 1)", tg.State())
	}
}
