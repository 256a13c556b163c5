package cli

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
)

const governanceYAML = `policies:
  - name: haiku-only
    match: {users: ["00000000-0000-4000-8000-00000000a0a0"]}
    models: [claude-haiku-4-5]
    max_output_tokens: 1000
    limits:
      requests_per_minute: 2
`

// TestGovernanceThroughGateway: model access, output cap, rate limit with
// retry-after and rate-limit headers, the filtered model list and cost on
// the audit record, all through the real gateway.
func TestGovernanceThroughGateway(t *testing.T) {
	h := startGateway(t, harnessOptions{extraYAML: governanceYAML})
	ada := h.token(userAda)

	resp := h.post("/v1/messages", ada, okBody, nil) // sonnet: not in the policy
	if resp.StatusCode != 403 {
		t.Fatalf("model outside the policy: %d", resp.StatusCode)
	}
	if typ, msg, _ := errorBody(t, resp); typ != "permission_error" || !containsAll(msg, "haiku-only") {
		t.Fatalf("model denial: %s %q", typ, msg)
	}

	resp = h.post("/v1/messages", ada, `{"model":"claude-haiku-4-5","max_tokens":64000,"messages":[]}`, nil)
	if resp.StatusCode != 400 {
		t.Fatalf("over max_output_tokens: %d", resp.StatusCode)
	}
	if typ, msg, _ := errorBody(t, resp); typ != "invalid_request_error" || !containsAll(msg, "64000", "1000", "haiku-only") {
		t.Fatalf("output cap message %q", msg)
	}

	haiku := `{"model":"claude-haiku-4-5","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`
	for i := 0; i < 2; i++ {
		resp = h.post("/v1/messages", ada, haiku, nil)
		io.Copy(io.Discard, resp.Body) // read it all: closing early is (correctly) audited as interrupted
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %d", i, resp.StatusCode)
		}
	}
	resp = h.post("/v1/messages", ada, haiku, nil)
	if resp.StatusCode != 429 || resp.Header.Get("retry-after") == "" {
		t.Fatalf("third request in a minute: %d retry-after=%q", resp.StatusCode, resp.Header.Get("retry-after"))
	}
	if typ, _, _ := errorBody(t, resp); typ != "rate_limit_error" {
		t.Fatalf("rate limit type %s", typ)
	}
	// Counting tokens spends nothing: it works with the minute's requests
	// used up, and is refused for a model outside the policy.
	resp = h.post("/v1/messages/count_tokens", ada, `{"model":"claude-haiku-4-5","messages":[]}`, nil)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("count_tokens after the rate limit: %d", resp.StatusCode)
	}
	if resp = h.post("/v1/messages/count_tokens", ada, `{"model":"claude-sonnet-4-6","messages":[]}`, nil); resp.StatusCode != 403 {
		t.Fatalf("count_tokens for a model outside the policy: %d", resp.StatusCode)
	}
	resp.Body.Close()

	client := sdkClient(h, ada)
	page, err := client.Models.List(context.Background(), anthropic.ModelListParams{})
	if err != nil || len(page.Data) != 1 || page.Data[0].ID != "claude-haiku-4-5" {
		t.Fatalf("models for a haiku-only user: %v %+v", err, page)
	}
	if h.stub.Count() != 3 { // two messages and one count_tokens
		t.Fatalf("upstream received %d requests, want 3", h.stub.Count())
	}

	recs := h.records()
	var completed, limited int
	for _, r := range recs {
		switch {
		case r.State == audit.StateCompleted && r.Path == "/v1/messages":
			completed++
			if r.CostUSD <= 0 || r.Policy != "haiku-only" {
				t.Errorf("completed record without cost or policy: %+v", r)
			}
		case r.Reason == "limit_requests_per_minute" || (r.Status == 429 && r.State == audit.StateDenied):
			limited++
		}
	}
	if completed != 2 || limited != 1 {
		t.Fatalf("completed %d, rate-limited %d:\n%+v", completed, limited, recs)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, x := range subs {
		if !strings.Contains(s, x) {
			return false
		}
	}
	return true
}
