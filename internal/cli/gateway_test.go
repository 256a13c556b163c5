package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	"github.com/anthropics/anthropic-sdk-go/option"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	fakeanthropic "github.com/gatehouse-dev/gatehouse/internal/fake/anthropic"
)

func sdkClient(h *harness, token string) anthropic.Client {
	return anthropic.NewClient(
		option.WithBaseURL(h.base),
		option.WithAuthToken(token),
		option.WithAPIKey(""),
		option.WithMaxRetries(0),
	)
}

func userMessage(model string) anthropic.MessageNewParams {
	return anthropic.MessageNewParams{
		Model:     anthropic.Model(model),
		MaxTokens: 256,
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Hello, gateway"))},
	}
}

// assertOnlyInjectedKey checks what the upstream received: exactly the
// injected credential and none of the user's.
func assertOnlyInjectedKey(t *testing.T, h *harness, r fakeanthropic.Received, keyHeader string) {
	t.Helper()
	if got := r.Header.Get(keyHeader); got != h.upstreamKey {
		t.Errorf("upstream %s = %q, want the injected key", keyHeader, got)
	}
	for _, k := range []string{"Authorization", "Cookie", "Api-Key", "X-Api-Key", "Ocp-Apim-Subscription-Key", "Forwarded", "X-Forwarded-For", "X-Real-Ip"} {
		if k == http.CanonicalHeaderKey(keyHeader) {
			continue
		}
		if v := r.Header.Values(k); len(v) > 0 {
			t.Errorf("upstream received %s: %q", k, v)
		}
	}
	if r.Query != "" {
		t.Errorf("upstream received a query string %q", r.Query)
	}
}

func TestMessagesThroughSDK(t *testing.T) {
	for _, provider := range []string{"anthropic", "foundry"} {
		t.Run(provider, func(t *testing.T) {
			h := startGateway(t, harnessOptions{provider: provider})
			client := sdkClient(h, h.token(userAda))
			msg, err := client.Messages.New(context.Background(), userMessage("claude-sonnet-4-6"),
				option.WithHeader("anthropic-beta", "interleaved-thinking-2025-05-14,future-beta-2099-01-01"),
				option.WithHeader("X-Claude-Code-Session-Id", "sess-123"))
			if err != nil {
				t.Fatal(err)
			}
			if len(msg.Content) == 0 || !strings.Contains(msg.Content[0].Text, "stub model") {
				t.Fatalf("unexpected reply: %+v", msg.Content)
			}
			reqs := h.stub.Requests()
			if len(reqs) != 1 {
				t.Fatalf("upstream got %d requests", len(reqs))
			}
			keyHeader := map[string]string{"anthropic": "x-api-key", "foundry": "api-key"}[provider]
			assertOnlyInjectedKey(t, h, reqs[0], keyHeader)
			wantPath := "/v1/messages"
			if provider == "foundry" {
				wantPath = "/anthropic/v1/messages"
			}
			if reqs[0].Path != wantPath {
				t.Errorf("upstream path %q, want %q", reqs[0].Path, wantPath)
			}
			if got := reqs[0].Header.Get("anthropic-beta"); got != "interleaved-thinking-2025-05-14,future-beta-2099-01-01" {
				t.Errorf("anthropic-beta = %q", got)
			}
			var sent map[string]any
			json.Unmarshal(reqs[0].Body, &sent)
			if sent["model"] != "sonnet-deployment" {
				t.Errorf("upstream model = %v, want the mapped deployment name", sent["model"])
			}
			recs := h.records()
			if len(recs) != 1 {
				t.Fatalf("%d audit records", len(recs))
			}
			r := recs[0]
			if r.State != audit.StateCompleted || r.Status != 200 || r.TenantID != testTenant || r.ObjectID != userAda.OID ||
				r.UserName != userAda.Username || r.Model != "claude-sonnet-4-6" || r.UpstreamModel != "sonnet-deployment" ||
				r.Upstream != "primary" || r.SessionID != "sess-123" {
				t.Errorf("audit record: %+v", r)
			}
			if r.Usage.InputTokens <= 0 || r.Usage.OutputTokens != msg.Usage.OutputTokens || r.Usage.InputTokens != msg.Usage.InputTokens {
				t.Errorf("audit usage %+v, response usage %+v", r.Usage, msg.Usage)
			}
		})
	}
}

// TestStreamingIsNotBuffered holds each upstream event until the SDK client
// has received the previous one: a gateway that buffered would deadlock.
func TestStreamingIsNotBuffered(t *testing.T) {
	var received atomic.Int64
	gate := func(ctx context.Context, event int) error {
		// The stub's third event (index 2) is a ping, which the SDK consumes
		// without surfacing; every other event reaches the loop below.
		want := int64(event)
		if event > 2 {
			want--
		}
		deadline := time.Now().Add(10 * time.Second)
		for received.Load() < want {
			if time.Now().After(deadline) {
				return context.DeadlineExceeded
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Millisecond):
			}
		}
		return nil
	}
	h := startGateway(t, harnessOptions{stub: fakeanthropic.Options{Gate: gate, Deltas: 6}})
	client := sdkClient(h, h.token(userAda))
	stream := client.Messages.NewStreaming(context.Background(), userMessage("claude-haiku-4-5"))
	var text strings.Builder
	var types []string
	for stream.Next() {
		ev := stream.Current()
		types = append(types, ev.Type)
		if ev.Type == "content_block_delta" {
			text.WriteString(ev.Delta.Text)
		}
		received.Add(1)
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("stream: %v (events %v)", err, types)
	}
	if !strings.Contains(text.String(), "stub model") {
		t.Fatalf("text %q", text.String())
	}
	if types[0] != "message_start" || types[len(types)-1] != "message_stop" {
		t.Fatalf("event order %v", types)
	}
	recs := h.records()
	if len(recs) != 1 || !recs[0].Stream || recs[0].State != audit.StateCompleted || recs[0].Usage.OutputTokens == 0 || recs[0].Usage.InputTokens == 0 || recs[0].TTFBMS <= 0 {
		t.Fatalf("audit: %+v", recs)
	}
}

// TestStreamBytesPassThrough reads the raw stream: pings, comments and event
// types the gateway does not know reach the client byte for byte.
func TestStreamBytesPassThrough(t *testing.T) {
	const upstreamStream = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m1\",\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}\n\n" +
		": keep-alive comment\n\n" +
		"event: ping\ndata: {\"type\": \"ping\"}\n\n" +
		"event: brand_new_event\ndata: {\"type\":\"brand_new_event\",\"x\":1}\n\n" +
		"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":3}}\n\n" +
		"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		w.WriteHeader(200)
		for _, part := range strings.SplitAfter(upstreamStream, "\n\n") {
			io.WriteString(w, part)
			w.(http.Flusher).Flush()
		}
	}))
	defer up.Close()
	h := startGateway(t, harnessOptions{upstreamURL: up.URL})
	resp := h.post("/v1/messages", h.token(userAda), `{"model":"claude-sonnet-4-6","stream":true,"max_tokens":5,"messages":[]}`, nil)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != upstreamStream {
		t.Fatalf("stream changed:\n%q\nwant\n%q", b, upstreamStream)
	}
	if resp.Header.Get("Content-Length") != "" {
		t.Fatalf("stream carried Content-Length")
	}
	recs := h.records()
	if len(recs) != 1 || recs[0].Usage.InputTokens != 9 || recs[0].Usage.OutputTokens != 3 || recs[0].State != audit.StateCompleted {
		t.Fatalf("audit %+v", recs)
	}
}

func TestCountTokensAndModels(t *testing.T) {
	h := startGateway(t, harnessOptions{})
	client := sdkClient(h, h.token(userAda))
	ct, err := client.Messages.CountTokens(context.Background(), anthropic.MessageCountTokensParams{
		Model:    anthropic.Model("claude-sonnet-4-6"),
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("count me"))},
	})
	if err != nil || ct.InputTokens <= 0 {
		t.Fatalf("count_tokens: %v %+v", err, ct)
	}
	reqs := h.stub.Requests()
	if len(reqs) != 1 || reqs[0].Path != "/v1/messages/count_tokens" {
		t.Fatalf("upstream: %+v", reqs)
	}
	assertOnlyInjectedKey(t, h, reqs[0], "x-api-key")

	page, err := client.Models.List(context.Background(), anthropic.ModelListParams{Limit: anthropic.Int(1000)})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Data) != 2 || page.Data[0].ID != "claude-sonnet-4-6" || page.Data[0].DisplayName != "Claude Sonnet 4.6" || page.FirstID != "claude-sonnet-4-6" || page.LastID != "claude-haiku-4-5" || page.HasMore {
		t.Fatalf("models: %+v", page)
	}
	// Raw shape: the Desktop extension field and a non-redirect 200.
	req, _ := http.NewRequest("GET", h.base+"/v1/models?limit=1", nil)
	req.Header.Set("x-api-key", h.token(userAda))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var raw map[string]any
	json.Unmarshal(body, &raw)
	data := raw["data"].([]any)
	if resp.StatusCode != 200 || len(data) != 1 || raw["has_more"] != true || data[0].(map[string]any)["anthropic_family_tier"] != "sonnet" || data[0].(map[string]any)["type"] != "model" {
		t.Fatalf("raw models: %d %s", resp.StatusCode, body)
	}
	if h.stub.Count() != 1 {
		t.Fatalf("/v1/models reached the upstream")
	}
	// Unauthenticated: refused, no inventory.
	resp, _ = http.Get(h.base + "/v1/models")
	if resp.StatusCode != 401 {
		t.Fatalf("unauthenticated /v1/models: %d", resp.StatusCode)
	}
	resp.Body.Close()
}

// errorBody decodes the Anthropic envelope.
func errorBody(t *testing.T, resp *http.Response) (typ, msg, rid string) {
	t.Helper()
	defer resp.Body.Close()
	var e struct {
		Type  string `json:"type"`
		Error struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
		RequestID string `json:"request_id"`
	}
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &e); err != nil || e.Type != "error" || e.RequestID == "" || e.Error.Message == "" {
		t.Fatalf("not an Anthropic error envelope: %s", b)
	}
	if resp.Header.Get("request-id") != e.RequestID {
		t.Fatalf("request-id header %q != body %q", resp.Header.Get("request-id"), e.RequestID)
	}
	return e.Error.Type, e.Error.Message, e.RequestID
}

const okBody = `{"model":"claude-sonnet-4-6","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`

func TestRefusalsAreClearAndAudited(t *testing.T) {
	h := startGateway(t, harnessOptions{serverYAML: "max_body_bytes: 4096"})
	ada := h.token(userAda)
	tests := []struct {
		name    string
		path    string
		token   string
		body    string
		hdr     map[string]string
		status  int
		errType string
		msgHas  string
		reason  string
	}{
		{"no token", "/v1/messages", "", okBody, nil, 401, "authentication_error", "", "missing_credential"},
		{"garbage token", "/v1/messages", "not-a-jwt", okBody, nil, 401, "authentication_error", "", ""},
		{"valid user without the role", "/v1/messages", h.token(userNoRole), okBody, nil, 403, "permission_error", "", "missing_role"},
		{"body over the limit", "/v1/messages", ada, `{"model":"claude-sonnet-4-6","pad":"` + strings.Repeat("x", 5000) + `"}`, nil, 413, "request_too_large", "4096", "body_too_large"},
		{"not JSON", "/v1/messages", ada, `model=claude`, nil, 400, "invalid_request_error", "not valid JSON", "invalid_body"},
		{"model not offered", "/v1/messages", ada, `{"model":"claude-opus-9","max_tokens":5}`, nil, 404, "not_found_error", "claude-sonnet-4-6", "unknown_model"},
		{"count_tokens model not offered", "/v1/messages/count_tokens", ada, `{"model":"gpt-4"}`, nil, 404, "not_found_error", "", "unknown_model"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := h.post(tt.path, tt.token, tt.body, tt.hdr)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			typ, msg, _ := errorBody(t, resp)
			if typ != tt.errType || !strings.Contains(msg, tt.msgHas) {
				t.Fatalf("error %s %q", typ, msg)
			}
		})
	}
	// Unknown paths and methods answer in the envelope without auth work.
	for _, p := range []string{"/v1/messages/../admin", "/v1/files", "/v1/messages/batches", "//v1/messages"} {
		resp := h.post(p, ada, okBody, nil)
		if resp.StatusCode != 404 {
			t.Errorf("%s: %d", p, resp.StatusCode)
		}
		errorBody(t, resp)
	}
	resp, _ := http.Get(h.base + "/v1/messages")
	if resp.StatusCode != 405 {
		t.Errorf("GET /v1/messages: %d", resp.StatusCode)
	}
	resp.Body.Close()
	// Unauthenticated liveness endpoints.
	req, _ := http.NewRequest(http.MethodHead, h.base+"/api/hello", nil)
	resp, _ = http.DefaultClient.Do(req)
	if resp.StatusCode != 200 {
		t.Errorf("HEAD /api/hello: %d", resp.StatusCode)
	}
	if h.stub.Count() != 0 {
		t.Fatalf("the upstream received %d requests for refused calls", h.stub.Count())
	}
	recs := h.records()
	denied := map[string]int{}
	for _, r := range recs {
		if r.State != audit.StateDenied {
			t.Errorf("record not a denial: %+v", r)
		}
		denied[r.Reason]++
	}
	for _, tt := range tests {
		if tt.reason != "" && denied[tt.reason] == 0 {
			t.Errorf("no audited denial with reason %q (have %v)", tt.reason, denied)
		}
	}
	if len(recs) != len(tests) {
		t.Errorf("%d denial records, want %d", len(recs), len(tests))
	}
}

func TestUpstreamFaults(t *testing.T) {
	const overloaded = `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_up_1"}`
	const badThinking = `{"type":"error","error":{"type":"invalid_request_error","message":"messages.1.content.0.thinking.signature: Field required"}}`
	faulty := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		switch {
		case strings.Contains(r.Header.Get("anthropic-beta"), "want-529"):
			w.Header().Set("retry-after", "7")
			w.Header().Set("request-id", "req_up_1")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(529)
			io.WriteString(w, overloaded)
		case strings.Contains(r.Header.Get("anthropic-beta"), "want-400"):
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(400)
			io.WriteString(w, badThinking)
		case strings.Contains(r.Header.Get("anthropic-beta"), "want-slow"):
			time.Sleep(2 * time.Second)
		default:
			w.Header().Set("Set-Cookie", "upstream=1")
			w.Header().Set("anthropic-organization-id", "org-secret")
			w.Header().Set("WWW-Authenticate", "Bearer")
			w.WriteHeader(403)
			io.WriteString(w, `{"error":{"message":"key sk-echoed is not allowed"}}`)
		}
	}))
	defer faulty.Close()
	h := startGateway(t, harnessOptions{upstreamURL: faulty.URL, upstreamYAML: "response_header_timeout: 500ms"})
	tok := h.token(userAda)

	resp := h.post("/v1/messages", tok, okBody, nil)
	if resp.StatusCode != 502 || resp.Header.Get("Set-Cookie") != "" || resp.Header.Get("Www-Authenticate") != "" {
		t.Fatalf("upstream 403: %d %v", resp.StatusCode, resp.Header)
	}
	if typ, msg, _ := errorBody(t, resp); typ != "api_error" || strings.Contains(msg, "sk-echoed") || !strings.Contains(msg, "administrator") {
		t.Fatalf("upstream 403 mapped to %s %q", typ, msg)
	}

	resp = h.post("/v1/messages", tok, okBody, map[string]string{"anthropic-beta": "want-slow"})
	if resp.StatusCode != 504 {
		t.Fatalf("slow upstream: %d", resp.StatusCode)
	}
	if typ, _, _ := errorBody(t, resp); typ != "timeout_error" {
		t.Fatalf("slow upstream type %s", typ)
	}

	// Last: the 529's retry-after makes the router hold this upstream back.
	for _, tc := range []struct {
		beta   string
		status int
		body   string
	}{{"want-400", 400, badThinking}, {"want-529", 529, overloaded}} {
		resp = h.post("/v1/messages", tok, okBody, map[string]string{"anthropic-beta": tc.beta})
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || string(b) != tc.body {
			t.Fatalf("%s: relayed %d %s", tc.beta, resp.StatusCode, b)
		}
		if tc.status == 529 && (resp.Header.Get("retry-after") != "7" || resp.Header.Get("request-id") != "req_up_1") {
			t.Fatalf("upstream headers not kept: %v", resp.Header)
		}
	}

	recs := h.records()
	byStatus := map[int]audit.Record{}
	for _, r := range recs {
		byStatus[r.Status] = r
	}
	if r := byStatus[502]; r.Reason != "upstream_credential_rejected" {
		t.Errorf("502 record: %+v", r)
	}
	if r := byStatus[529]; r.ErrorType != "overloaded_error" || r.UpstreamRequestID != "req_up_1" {
		t.Errorf("529 record: %+v", r)
	}
	if r := byStatus[504]; r.Reason != "upstream_timeout" {
		t.Errorf("504 record: %+v", r)
	}
	if !strings.Contains(h.logs.String(), "upstream rejected the gateway's credential") {
		t.Errorf("no operator log line for the credential fault")
	}
}

func TestUpstreamUnreachable(t *testing.T) {
	h := startGateway(t, harnessOptions{upstreamURL: "http://127.0.0.1:1"})
	resp := h.post("/v1/messages", h.token(userAda), okBody, nil)
	if resp.StatusCode != 502 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if typ, _, _ := errorBody(t, resp); typ != "api_error" {
		t.Fatalf("type %s", typ)
	}
	if recs := h.records(); len(recs) != 1 || recs[0].Reason != "upstream_unreachable" {
		t.Fatalf("records %+v", recs)
	}
}

// TestSecretsNeverLeak drives success and failure paths and then searches
// every byte the gateway produced (responses, logs, audit database) for the
// upstream key and the user's token.
func TestSecretsNeverLeak(t *testing.T) {
	h := startGateway(t, harnessOptions{})
	tok := h.token(userAda)
	var seen strings.Builder
	for _, body := range []string{okBody, `{"model":"claude-sonnet-4-6","stream":true,"max_tokens":5,"messages":[]}`, `{"model":"nope"}`, `{`} {
		resp := h.post("/v1/messages", tok, body, map[string]string{"Cookie": "session=" + tok})
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for k, v := range resp.Header {
			seen.WriteString(k + ": " + strings.Join(v, ",") + "\n")
		}
		seen.Write(b)
	}
	h.records()
	db, _ := os.ReadFile(h.auditPath)
	wal, _ := os.ReadFile(h.auditPath + "-wal")
	for name, hay := range map[string]string{"responses": seen.String(), "logs": h.logs.String(), "audit db": string(db) + string(wal)} {
		if strings.Contains(hay, h.upstreamKey) {
			t.Errorf("the upstream key appears in %s", name)
		}
		if strings.Contains(hay, tok) || strings.Contains(hay, tok[len(tok)-40:]) {
			t.Errorf("the user's token appears in %s", name)
		}
	}
}

// TestFailoverIsAudited: the first route answers 529, the second serves;
// the client sees the answer and the audit record names both.
func TestFailoverIsAudited(t *testing.T) {
	overloaded := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(529)
		io.WriteString(w, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`)
	}))
	defer overloaded.Close()
	h := startGateway(t, harnessOptions{routingYAML: fmt.Sprintf(`upstreams:
  - name: east
    provider: anthropic
    base_url: %s
    api_key: ${env:TEST_UPSTREAM_KEY}
  - name: west
    provider: anthropic
    base_url: STUB
    api_key: ${env:TEST_UPSTREAM_KEY}
models:
  - id: claude-sonnet-4-6
    routes:
      - {upstream: east, upstream_model: sonnet-east}
      - {upstream: west, upstream_model: sonnet-west}`, overloaded.URL)})
	resp := h.post("/v1/messages", h.token(userAda), okBody, nil)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var sent map[string]any
	json.Unmarshal(h.stub.Requests()[0].Body, &sent)
	if sent["model"] != "sonnet-west" {
		t.Fatalf("west received model %v", sent["model"])
	}
	recs := h.records()
	if len(recs) != 1 || recs[0].Upstream != "west" || recs[0].UpstreamModel != "sonnet-west" ||
		len(recs[0].FailedUpstreams) != 1 || !strings.HasPrefix(recs[0].FailedUpstreams[0], "east") {
		t.Fatalf("audit: %+v", recs)
	}
}
