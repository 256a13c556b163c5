package cli

import (
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from the golden file (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// TestMetricsExposition drives known traffic and compares the exposition:
// every gatehouse_* family's HELP and TYPE, and the deterministic series.
func TestMetricsExposition(t *testing.T) {
	h := startGateway(t, harnessOptions{})
	ada := h.token(userAda)
	// Each response is read to its end: a client that hangs up early is a
	// different, interrupted request with whatever usage it saw.
	post := func(token, body string) {
		resp := h.post("/v1/messages", token, body, nil)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	for i := 0; i < 3; i++ {
		post(ada, okBody)
	}
	post(ada, `{"model":"claude-haiku-4-5","stream":true,"max_tokens":5,"messages":[]}`)
	post("", okBody)
	post(h.token(userNoRole), okBody)
	post(ada, `{"model":"gpt-9","max_tokens":1}`)

	resp, err := http.Get(h.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("/metrics: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var keep []string
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "# HELP gatehouse_"), strings.HasPrefix(line, "# TYPE gatehouse_"),
			strings.HasPrefix(line, "gatehouse_requests_total"), strings.HasPrefix(line, "gatehouse_tokens_total"),
			strings.HasPrefix(line, "gatehouse_auth_failures_total"), strings.HasPrefix(line, "gatehouse_request_duration_seconds_count"),
			strings.HasPrefix(line, "gatehouse_keyset_refreshes_total "):
			keep = append(keep, line)
		}
	}
	sort.Strings(keep)
	out := strings.Join(keep, "\n") + "\n"
	for _, forbidden := range []string{userAda.OID, userAda.Username, h.upstreamKey} {
		if strings.Contains(string(b), forbidden) {
			t.Fatalf("metrics expose %q", forbidden)
		}
	}
	golden(t, "metrics.golden", out)
}
