package upstream_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/upstream"
)

func BenchmarkCandidatesWeighted(b *testing.B) {
	var targets []*upstream.Target
	var routes []upstream.Route
	for i := range 4 {
		name := fmt.Sprintf("u%d", i)
		tg, _ := upstream.NewTarget(upstream.TargetOptions{Name: name, BaseURL: "https://" + name + ".example.com", Credential: &headerCred{key: "k"}})
		targets = append(targets, tg)
		routes = append(routes, upstream.Route{Upstream: name, UpstreamModel: "m", Weight: i + 1})
	}
	rt, _ := upstream.NewRouter(upstream.RouterOptions{Targets: targets, Models: map[string][]upstream.Route{"m": routes}})
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		rt.Candidates("m", "session-0123456789abcdef")
	}
}

// BenchmarkSend compares Send (routing, breaker, credential, headers) with
// a bare RoundTrip on the same transport and stub.
func BenchmarkSend(b *testing.B) {
	stub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, `{"type":"message"}`)
	}))
	defer stub.Close()
	tg, _ := upstream.NewTarget(upstream.TargetOptions{Name: "s", BaseURL: stub.URL, Credential: &headerCred{key: "k"}, Headers: map[string]string{"X-Team": "a"}})
	rt, _ := upstream.NewRouter(upstream.RouterOptions{Targets: []*upstream.Target{tg}, Models: map[string][]upstream.Route{"m": {{Upstream: "s", UpstreamModel: "m"}}}})
	newReq := func(c upstream.Candidate) (*http.Request, error) {
		return http.NewRequest(http.MethodPost, c.Target.URL("/v1/messages").String(), strings.NewReader(`{"model":"m"}`))
	}
	b.Run("bare-roundtrip", func(b *testing.B) {
		for b.Loop() {
			req, _ := newReq(upstream.Candidate{Target: tg})
			resp, err := tg.Transport().RoundTrip(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	b.Run("send", func(b *testing.B) {
		for b.Loop() {
			cands, _ := rt.Candidates("m", "k")
			resp, _, _, err := rt.Send(context.Background(), cands, newReq)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}
