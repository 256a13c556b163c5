package upstream_test

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/anthropic"
	"github.com/gatehouse-dev/gatehouse/internal/proxy"
	"github.com/gatehouse-dev/gatehouse/internal/upstream"
)

// TestDispatcherWithProxy runs the lead's proxy.Proxy on the Dispatcher:
// failover, per-upstream model mapping, header allowlist, credential, pings
// through the proxy's SSE relay and the Served record for audit.
func TestDispatcherWithProxy(t *testing.T) {
	clk := newClock()
	east, west := newFakeUpstream(t, "east"), newFakeUpstream(t, "west")
	tEast := newTarget(t, "east", east.srv.URL+"/anthropic", &headerCred{key: "key-east"}, upstream.TargetOptions{})
	tWest := newTarget(t, "west", west.srv.URL+"/anthropic", &headerCred{key: "key-west"}, upstream.TargetOptions{})
	rt, err := upstream.NewRouter(upstream.RouterOptions{
		Targets: []*upstream.Target{tEast, tWest},
		Models: map[string][]upstream.Route{"claude-sonnet-4-6": {
			{Upstream: "east", UpstreamModel: "sonnet-east"}, {Upstream: "west", UpstreamModel: "sonnet-west"}}},
		Now: clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	p := proxy.New(proxy.Options{Dispatcher: &upstream.Dispatcher{Router: rt}, KeepAlive: 50 * time.Millisecond})
	results := make(chan proxy.Result, 10)
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req, err := anthropic.PeekRequest(body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		out := proxy.Outbound{Path: "/v1/messages", Header: r.Header, Body: body, Request: req, Affinity: "session-1"}
		results <- p.Forward(w, r, out, func(w http.ResponseWriter, status int, typ, msg string) {
			anthropic.WriteError(w, status, typ, msg, "req_gw")
		})
	}))
	defer gw.Close()
	do := func(gate bool) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodPost, gw.URL+"/v1/messages?beta=true", strings.NewReader(`{"model":"claude-sonnet-4-6","stream":true,"max_tokens":5}`))
		req.Header.Set("Authorization", "Bearer user-token")
		req.Header.Set("anthropic-version", "2023-06-01")
		if gate {
			req.Header.Set("anthropic-test-gate", "1") // forwarded by the allowlist (anthropic-*)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
		}
		return resp, b.String()
	}

	// east overloaded: west serves, the client never sees east's 529.
	east.mode.Store(mode529)
	close(west.gate)
	resp, body := do(false)
	res := <-results
	if resp.StatusCode != 200 || !strings.Contains(body, `"served_by":"west"`) || !strings.Contains(body, "message_stop") {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	if res.Served.Upstream != "west" || res.Served.UpstreamModel != "sonnet-west" || len(res.Served.Failed) != 1 || res.Served.Failed[0] != "east: 529" {
		t.Errorf("served = %+v", res.Served)
	}
	if m := west.lastModel(); m != `{"model":"sonnet-west","stream":true,"max_tokens":5}` {
		t.Errorf("west body = %s (only the model value may change)", m)
	}
	west.mu.Lock()
	if k := west.keys[len(west.keys)-1]; k != "key-west" {
		t.Errorf("west api-key = %q", k)
	}
	west.mu.Unlock()

	// A stream that falls silent at an event boundary gets pings through
	// the proxy's relay; the user's credential never reaches the upstream.
	east.mode.Store(modeOK)
	go func() { time.Sleep(300 * time.Millisecond); close(east.gate) }()
	resp, body = do(true)
	res = <-results
	if res.Served.Upstream != "east" || len(res.Served.Failed) != 0 {
		t.Errorf("served = %+v", res.Served)
	}
	iPing, iDelta, iStop := strings.Index(body, proxy.PingEvent), strings.Index(body, "content_block_delta"), strings.Index(body, "message_stop")
	if iPing < iDelta || iStop < iPing || iDelta < 0 {
		t.Errorf("want delta, ping, stop in order: %q", body)
	}
	if res.Interrupted || res.Status != 200 {
		t.Errorf("result = %+v", res)
	}
	east.mu.Lock()
	if k := east.keys[len(east.keys)-1]; k != "key-east" {
		t.Errorf("east api-key = %q", k)
	}
	east.mu.Unlock()

	// Retry-after pending on every route: the dispatcher answers 429 itself.
	east.mode.Store(mode429)
	west.mode.Store(mode429)
	resp, _ = do(false)
	<-results
	if resp.StatusCode != 429 {
		t.Fatalf("status = %d", resp.StatusCode)
	}
	resp, body = do(false)
	res = <-results
	if resp.StatusCode != 429 || !strings.Contains(body, "rate_limit_error") || resp.Header.Get("Retry-After") != "60" {
		t.Errorf("all cooling down: %d %q retry-after %q", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	if len(res.Served.Failed) != 2 || !strings.Contains(res.Served.Failed[0], "rate limited") {
		t.Errorf("served = %+v", res.Served)
	}
}
