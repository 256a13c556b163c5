package cli

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
)

// The gateway's cost, measured against the floor: a bare
// httputil.ReverseProxy in front of the same stub upstream (decisions D2:
// identity on with real RS256 tokens and the verified-token cache, audit on
// at the default durability level).
//
//	go test ./internal/cli -run '^$' -bench 'Proxy' -benchtime 3s -cpu 2
func BenchmarkProxy(b *testing.B) {
	for _, stream := range []bool{false, true} {
		name := "json"
		body := okBody
		if stream {
			name = "stream"
			body = `{"model":"claude-sonnet-4-6","stream":true,"max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`
		}
		b.Run(name+"/bare", func(b *testing.B) {
			h := startGateway(b, harnessOptions{logLevel: "warn"})
			u, _ := url.Parse(h.stub.URL())
			rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(u) }, FlushInterval: -1}
			srv := httptest.NewServer(rp)
			defer srv.Close()
			drive(b, srv.URL, http.Header{"X-Api-Key": {h.upstreamKey}}, body)
		})
		b.Run(name+"/gatehouse", func(b *testing.B) {
			h := startGateway(b, harnessOptions{logLevel: "warn"})
			drive(b, h.base, http.Header{"Authorization": {"Bearer " + h.token(userAda)}}, body)
		})
	}
}

func drive(b *testing.B, base string, hdr http.Header, body string) {
	tr := &http.Transport{MaxIdleConnsPerHost: 256}
	client := &http.Client{Transport: tr}
	defer tr.CloseIdleConnections()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 32<<10)
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, base+"/v1/messages", strings.NewReader(body))
			for k, v := range hdr {
				req.Header[k] = v
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			for {
				if _, err := resp.Body.Read(buf); err != nil {
					if err != io.EOF {
						b.Fatal(err)
					}
					break
				}
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	})
}
