package upstream_test

import (
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/upstream"
)

func weightedRouter(t *testing.T, weights map[string]int) *upstream.Router {
	t.Helper()
	var targets []*upstream.Target
	var routes []upstream.Route
	for _, name := range []string{"east", "west", "north"} {
		w, ok := weights[name]
		if !ok {
			continue
		}
		targets = append(targets, newTarget(t, name, "https://"+name+".services.ai.azure.com/anthropic", &headerCred{key: "k"}, upstream.TargetOptions{}))
		routes = append(routes, upstream.Route{Upstream: name, UpstreamModel: "dep-" + name, Weight: w})
	}
	rt, err := upstream.NewRouter(upstream.RouterOptions{Targets: targets, Models: map[string][]upstream.Route{"m": routes}})
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

func order(cs []upstream.Candidate) string {
	var s []string
	for _, c := range cs {
		s = append(s, c.Target.Name()+"/"+c.UpstreamModel)
	}
	return strings.Join(s, ",")
}

func TestAffinityStable(t *testing.T) {
	w := map[string]int{"east": 2, "west": 1, "north": 1}
	rt1, rt2 := weightedRouter(t, w), weightedRouter(t, w)
	firsts := map[string]int{}
	for i := range 200 {
		key := fmt.Sprintf("session-%d", i)
		c1, _ := rt1.Candidates("m", key)
		for range 5 {
			again, _ := rt1.Candidates("m", key)
			if order(again) != order(c1) {
				t.Fatalf("%s: order changed between calls", key)
			}
		}
		// Another replica (another Router) routes the session the same way.
		if c2, _ := rt2.Candidates("m", key); order(c2) != order(c1) {
			t.Fatalf("%s: replicas disagree: %s vs %s", key, order(c1), order(c2))
		}
		if len(c1) != 3 {
			t.Fatalf("candidates = %s", order(c1))
		}
		firsts[c1[0].Target.Name()]++
	}
	if len(firsts) != 3 {
		t.Errorf("sessions did not spread: %v", firsts)
	}
	// Removing an upstream moves only the sessions it served (rendezvous).
	rt3 := weightedRouter(t, map[string]int{"east": 2, "west": 1})
	for i := range 200 {
		key := fmt.Sprintf("session-%d", i)
		c1, _ := rt1.Candidates("m", key)
		c3, _ := rt3.Candidates("m", key)
		if c1[0].Target.Name() != "north" && c1[0].Target.Name() != c3[0].Target.Name() {
			t.Fatalf("%s moved from %s to %s although %s still exists", key, c1[0].Target.Name(), c3[0].Target.Name(), c1[0].Target.Name())
		}
	}
}

func TestWeightedDistribution(t *testing.T) {
	rt := weightedRouter(t, map[string]int{"east": 1, "west": 3})
	const n = 20000
	for _, mode := range []string{"keyed", "no key"} {
		count := map[string]int{}
		for i := range n {
			key := ""
			if mode == "keyed" {
				key = fmt.Sprintf("user-%d", i)
			}
			c, _ := rt.Candidates("m", key)
			count[c[0].Target.Name()]++
		}
		share := float64(count["west"]) / n
		if math.Abs(share-0.75) > 0.02 {
			t.Errorf("%s: west share = %.3f, want 0.75±0.02 (%v)", mode, share, count)
		}
	}
}

func TestOrderedRoutes(t *testing.T) {
	rt := weightedRouter(t, map[string]int{"east": 0, "west": 0, "north": 0})
	for _, key := range []string{"", "a", "b", "c"} {
		c, ok := rt.Candidates("m", key)
		if !ok || order(c) != "east/dep-east,west/dep-west,north/dep-north" {
			t.Errorf("key %q: %s", key, order(c))
		}
	}
	if _, ok := rt.Candidates("unknown", ""); ok {
		t.Error("unknown model has candidates")
	}
}

func TestRouterValidation(t *testing.T) {
	mk := func(name string) *upstream.Target {
		return newTarget(t, name, "https://"+name+".example.com", &headerCred{key: "k"}, upstream.TargetOptions{})
	}
	cases := []struct {
		name    string
		targets []*upstream.Target
		routes  []upstream.Route
		want    string
	}{
		{"unknown upstream", []*upstream.Target{mk("a")}, []upstream.Route{{Upstream: "b", UpstreamModel: "m"}}, "unknown upstream"},
		{"mixed weights", []*upstream.Target{mk("a"), mk("b")}, []upstream.Route{{Upstream: "a", UpstreamModel: "m", Weight: 1}, {Upstream: "b", UpstreamModel: "m"}}, "weight"},
		{"duplicate route", []*upstream.Target{mk("a")}, []upstream.Route{{Upstream: "a", UpstreamModel: "m"}, {Upstream: "a", UpstreamModel: "n"}}, "used twice"},
		{"duplicate target", []*upstream.Target{mk("a"), mk("a")}, []upstream.Route{{Upstream: "a", UpstreamModel: "m"}}, "listed twice"},
		{"empty model", []*upstream.Target{mk("a")}, []upstream.Route{{Upstream: "a"}}, "upstream model is empty"},
	}
	for _, tc := range cases {
		_, err := upstream.NewRouter(upstream.RouterOptions{Targets: tc.targets, Models: map[string][]upstream.Route{"m": tc.routes}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
	shared := mk("s")
	if _, err := upstream.NewRouter(upstream.RouterOptions{Targets: []*upstream.Target{shared}}); err != nil {
		t.Fatal(err)
	}
	if _, err := upstream.NewRouter(upstream.RouterOptions{Targets: []*upstream.Target{shared}}); err == nil {
		t.Error("a target joined two routers")
	}
}

func TestTargetValidation(t *testing.T) {
	cred := &headerCred{key: "k"}
	cases := []struct {
		name string
		o    upstream.TargetOptions
		want string
	}{
		{"reserved authorization", upstream.TargetOptions{Headers: map[string]string{"Authorization": "Bearer x"}}, "reserved"},
		{"reserved api-key any case", upstream.TargetOptions{Headers: map[string]string{"API-KEY": "x"}}, "reserved"},
		{"reserved x-forwarded", upstream.TargetOptions{Headers: map[string]string{"X-Forwarded-For": "1.2.3.4"}}, "reserved"},
		{"reserved anthropic-version", upstream.TargetOptions{Headers: map[string]string{"anthropic-version": "2023-06-01"}}, "reserved"},
		{"underscore alias", upstream.TargetOptions{Headers: map[string]string{"X_Api_Key": "x"}}, "only letters"},
		{"CRLF value", upstream.TargetOptions{Headers: map[string]string{"X-Team": "a\r\nX-Evil: 1"}}, "CR"},
		{"bad proxy", upstream.TargetOptions{Proxy: upstream.ProxyOptions{URL: "socks5://p:1080"}}, "proxy"},
	}
	for _, tc := range cases {
		tc.o.Name, tc.o.BaseURL, tc.o.Credential = "x", "https://x.example.com", cred
		_, err := upstream.NewTarget(tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
	for _, bad := range []string{"", "ftp://x", "https://u:p@x.example.com", "https://x.example.com/?q=1", "x.example.com"} {
		if _, err := upstream.NewTarget(upstream.TargetOptions{Name: "x", BaseURL: bad, Credential: cred}); err == nil {
			t.Errorf("base URL %q accepted", bad)
		}
	}
	tg, err := upstream.NewTarget(upstream.TargetOptions{Name: "x", BaseURL: "https://x.example.com/anthropic/", Credential: cred, Headers: map[string]string{"X-Team": "ml"}})
	if err != nil {
		t.Fatal(err)
	}
	tr := tg.Transport()
	if tr.Proxy != nil {
		t.Error("Proxy set although none configured")
	}
	if tr.TLSClientConfig.MinVersion != tls.VersionTLS12 || tr.TLSClientConfig.InsecureSkipVerify {
		t.Error("TLS not verified with minimum 1.2")
	}
	if tg.ConnectTimeout() != upstream.DefaultConnectTimeout || tr.ResponseHeaderTimeout != upstream.DefaultFirstByteTimeout {
		t.Errorf("timeouts: %v %v", tg.ConnectTimeout(), tr.ResponseHeaderTimeout)
	}
}

// connectProxy is a minimal HTTP proxy: CONNECT tunnels and absolute-form
// forwarding. It counts what it carried.
type connectProxy struct {
	srv  *httptest.Server
	hits atomic.Int32
}

func newConnectProxy(t *testing.T) *connectProxy {
	p := &connectProxy{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.hits.Add(1)
		if r.Method == http.MethodConnect {
			dst, err := net.Dial("tcp", r.Host)
			if err != nil {
				http.Error(w, err.Error(), 502)
				return
			}
			w.WriteHeader(200)
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(dst, brw); dst.Close() }()
			_, _ = io.Copy(conn, dst)
			conn.Close()
			return
		}
		out, _ := http.NewRequest(r.Method, r.URL.String(), r.Body)
		out.Header = r.Header.Clone()
		resp, err := http.DefaultTransport.RoundTrip(out)
		if err != nil {
			http.Error(w, err.Error(), 502)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func send(t *testing.T, tg *upstream.Target) (*http.Response, error) {
	t.Helper()
	rt, err := upstream.NewRouter(upstream.RouterOptions{Targets: []*upstream.Target{tg}, Models: map[string][]upstream.Route{"m": {{Upstream: tg.Name(), UpstreamModel: "m"}}}})
	if err != nil {
		t.Fatal(err)
	}
	cands, _ := rt.Candidates("m", "")
	resp, _, _, err := rt.Send(t.Context(), cands, func(c upstream.Candidate) (*http.Request, error) {
		return http.NewRequest(http.MethodPost, c.Target.URL("/v1/messages").String(), strings.NewReader(`{}`))
	})
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return resp, err
}

func TestProxyOnlyWhenConfigured(t *testing.T) {
	up := newFakeUpstream(t, "up")
	proxy := newConnectProxy(t)
	// The process environment names a proxy; it must be ignored unless the
	// operator configures one.
	t.Setenv("HTTPS_PROXY", proxy.srv.URL)
	t.Setenv("HTTP_PROXY", proxy.srv.URL)
	t.Setenv("NO_PROXY", "")

	cases := []struct {
		name      string
		proxy     upstream.ProxyOptions
		wantProxy bool
	}{
		{"not configured: direct despite HTTPS_PROXY", upstream.ProxyOptions{}, false},
		{"configured", upstream.ProxyOptions{URL: proxy.srv.URL}, true},
		{"configured without scheme", upstream.ProxyOptions{URL: strings.TrimPrefix(proxy.srv.URL, "http://")}, true},
		{"NO_PROXY matches", upstream.ProxyOptions{URL: proxy.srv.URL, NoProxy: "example.com, 127.0.0.1"}, false},
		{"from injected env", upstream.ProxyFromEnv(envMap{"https_proxy": proxy.srv.URL, "no_proxy": "example.com"}.Get), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := proxy.hits.Load()
			tg := newTarget(t, "up", up.srv.URL, &headerCred{key: "k"}, upstream.TargetOptions{Proxy: tc.proxy})
			// Go's environment proxy skips loopback hosts, so also check the
			// transport itself: no proxy function at all unless configured.
			if (tg.Transport().Proxy != nil) != (tc.proxy.URL != "") {
				t.Fatalf("transport proxy set = %v", tg.Transport().Proxy != nil)
			}
			resp, err := send(t, tg)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("send: %v", err)
			}
			if got := proxy.hits.Load() > before; got != tc.wantProxy {
				t.Errorf("went through proxy = %v, want %v", got, tc.wantProxy)
			}
		})
	}
}

type envMap map[string]string

func (m envMap) Get(k string) string { return m[k] }

func TestCustomCATrusted(t *testing.T) {
	tlsUp := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"type":"message"}`)
	}))
	t.Cleanup(tlsUp.Close)
	caFile := filepath.Join(t.TempDir(), "corp-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsUp.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool, err := upstream.LoadCABundle(caFile, true)
	if err != nil {
		t.Fatal(err)
	}

	// Without the bundle: verification fails (never skipped).
	_, err = send(t, newTarget(t, "tls", tlsUp.URL, &headerCred{key: "k"}, upstream.TargetOptions{}))
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted certificate accepted: %v", err)
	}
	// With it: trusted, directly and through a CONNECT proxy.
	if resp, err := send(t, newTarget(t, "tls", tlsUp.URL, &headerCred{key: "k"}, upstream.TargetOptions{RootCAs: pool})); err != nil || resp.StatusCode != 200 {
		t.Fatalf("custom CA: %v", err)
	}
	proxy := newConnectProxy(t)
	if resp, err := send(t, newTarget(t, "tls", tlsUp.URL, &headerCred{key: "k"}, upstream.TargetOptions{RootCAs: pool, Proxy: upstream.ProxyOptions{URL: proxy.srv.URL}})); err != nil || resp.StatusCode != 200 {
		t.Fatalf("custom CA via proxy: %v", err)
	}
	if proxy.hits.Load() != 1 {
		t.Errorf("CONNECT proxy hits = %d", proxy.hits.Load())
	}
	if _, err := upstream.LoadCABundle(filepath.Join(t.TempDir(), "none.pem"), false); err == nil {
		t.Error("missing bundle accepted")
	}
}
