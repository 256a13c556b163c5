// Package anthropic is a local, faithful stand-in for an Anthropic-compatible
// Messages upstream: the Anthropic API (x-api-key) or Microsoft Foundry's
// /anthropic surface (api-key or Authorization: Bearer). It serves real HTTP
// with the documented JSON and SSE shapes and error envelopes, records what
// it received, and lets tests gate each streamed event.
//
// It is shared by the tests and by `gatehouse demo`, so it never imports
// net/http/httptest.
package anthropic

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Options configure the stub. Zero values give an open Anthropic-style stub.
type Options struct {
	// Addr to listen on; default 127.0.0.1:0.
	Addr string
	// Provider is "anthropic" (key in x-api-key) or "foundry" (key in
	// api-key, or a bearer token). Default anthropic.
	Provider string
	// Key is the credential the stub accepts; empty accepts anything.
	Key string
	// Bearer is an Entra token a foundry stub accepts as Authorization: Bearer.
	Bearer string
	// Deltas is how many text deltas a response streams; default 5.
	Deltas int
	// EventDelay is slept between streamed events.
	EventDelay time.Duration
	// Gate, when set, is called before each streamed event after the first
	// with the index of the event about to be produced; it blocks to hold
	// the stream (tests use it to prove the gateway does not buffer).
	Gate func(ctx context.Context, event int) error
	// Reply is the assistant text; default a short greeting.
	Reply string
}

// Received is one request as the stub saw it.
type Received struct {
	Method string
	Path   string
	Query  string
	Header http.Header
	Body   []byte
}

// Server is a running stub.
type Server struct {
	opts Options
	ln   net.Listener
	srv  *http.Server

	mu       sync.Mutex
	received []Received
}

// Start listens and serves until Close.
func Start(opts Options) (*Server, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.Provider == "" {
		opts.Provider = "anthropic"
	}
	if opts.Deltas == 0 {
		opts.Deltas = 5
	}
	if opts.Reply == "" {
		opts.Reply = "Hello from the Gatehouse stub model. Your request reached the upstream through the gateway."
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts, ln: ln}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// URL is the base URL (http://127.0.0.1:port).
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Close stops the server.
func (s *Server) Close() error { return s.srv.Close() }

// Requests returns a copy of everything received so far.
func (s *Server) Requests() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Received(nil), s.received...)
}

// Count returns how many requests were received.
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.received)
}

// Reset forgets recorded requests.
func (s *Server) Reset() {
	s.mu.Lock()
	s.received = nil
	s.mu.Unlock()
}

func writeErr(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("request-id", newID("req_stub"))
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"type":"error","error":{"type":%q,"message":%q},"request_id":%q}`, typ, msg, w.Header().Get("request-id"))
}

func (s *Server) authorized(r *http.Request) bool {
	if s.opts.Key == "" && s.opts.Bearer == "" {
		return true
	}
	eq := func(a, b string) bool { return b != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
	switch s.opts.Provider {
	case "foundry":
		if eq(r.Header.Get("api-key"), s.opts.Key) || eq(r.Header.Get("x-api-key"), s.opts.Key) {
			return true
		}
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		return ok && eq(tok, s.opts.Bearer)
	default:
		return eq(r.Header.Get("x-api-key"), s.opts.Key)
	}
}

// ServeHTTP implements the Messages surface.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	s.mu.Lock()
	s.received = append(s.received, Received{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: body})
	s.mu.Unlock()

	path := strings.TrimPrefix(r.URL.Path, "/anthropic")
	if !s.authorized(r) {
		if s.opts.Provider == "foundry" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":{"code":"401","message":"Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."}}`)
			return
		}
		writeErr(w, http.StatusUnauthorized, "authentication_error", "invalid x-api-key")
		return
	}
	switch {
	case r.Method == http.MethodPost && path == "/v1/messages":
		s.messages(w, r, body)
	case r.Method == http.MethodPost && path == "/v1/messages/count_tokens":
		var req struct {
			Model string `json:"model"`
		}
		if json.Unmarshal(body, &req) != nil || req.Model == "" {
			writeErr(w, http.StatusBadRequest, "invalid_request_error", "model: field required")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"input_tokens":%d}`, estimateTokens(body))
	default:
		writeErr(w, http.StatusNotFound, "not_found_error", "Not Found")
	}
}

func estimateTokens(body []byte) int {
	n := len(body) / 4
	if n < 1 {
		n = 1
	}
	return n
}

func newID(prefix string) string {
	return fmt.Sprintf("%s_%016x", prefix, time.Now().UnixNano())
}

func (s *Server) messages(w http.ResponseWriter, r *http.Request, body []byte) {
	var req struct {
		Model     string `json:"model"`
		MaxTokens int    `json:"max_tokens"`
		Stream    bool   `json:"stream"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeErr(w, http.StatusBadRequest, "invalid_request_error", "The request body is not valid JSON: "+err.Error())
		return
	}
	if req.Model == "" {
		writeErr(w, http.StatusBadRequest, "invalid_request_error", "model: Field required")
		return
	}
	if req.MaxTokens <= 0 {
		writeErr(w, http.StatusBadRequest, "invalid_request_error", "max_tokens: Field required")
		return
	}
	words := strings.Fields(s.opts.Reply)
	input := estimateTokens(body)
	output := len(words)
	msgID := newID("msg_stub")
	w.Header().Set("request-id", newID("req_stub"))
	if !req.Stream {
		resp := map[string]any{
			"id": msgID, "type": "message", "role": "assistant", "model": req.Model,
			"content":       []any{map[string]any{"type": "text", "text": s.opts.Reply}},
			"stop_reason":   "end_turn",
			"stop_sequence": nil,
			"usage":         map[string]any{"input_tokens": input, "output_tokens": output, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
		}
		b, _ := json.Marshal(resp)
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	ctx := r.Context()
	n := 0
	emit := func(event string, data any) error {
		if n > 0 {
			if s.opts.Gate != nil {
				if err := s.opts.Gate(ctx, n); err != nil {
					return err
				}
			}
			if s.opts.EventDelay > 0 {
				select {
				case <-time.After(s.opts.EventDelay):
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
		b, _ := json.Marshal(data)
		var buf bytes.Buffer
		fmt.Fprintf(&buf, "event: %s\ndata: %s\n\n", event, b)
		if _, err := w.Write(buf.Bytes()); err != nil {
			return err
		}
		n++
		return rc.Flush()
	}
	chunks := splitWords(words, s.opts.Deltas)
	steps := []func() error{
		func() error {
			return emit("message_start", map[string]any{"type": "message_start", "message": map[string]any{
				"id": msgID, "type": "message", "role": "assistant", "model": req.Model, "content": []any{},
				"stop_reason": nil, "stop_sequence": nil,
				"usage": map[string]any{"input_tokens": input, "output_tokens": 1, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}})
		},
		func() error {
			return emit("content_block_start", map[string]any{"type": "content_block_start", "index": 0, "content_block": map[string]any{"type": "text", "text": ""}})
		},
		func() error { return emit("ping", map[string]any{"type": "ping"}) },
	}
	for _, c := range chunks {
		c := c
		steps = append(steps, func() error {
			return emit("content_block_delta", map[string]any{"type": "content_block_delta", "index": 0, "delta": map[string]any{"type": "text_delta", "text": c}})
		})
	}
	steps = append(steps,
		func() error {
			return emit("content_block_stop", map[string]any{"type": "content_block_stop", "index": 0})
		},
		func() error {
			return emit("message_delta", map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": "end_turn", "stop_sequence": nil}, "usage": map[string]any{"output_tokens": output}})
		},
		func() error { return emit("message_stop", map[string]any{"type": "message_stop"}) },
	)
	for _, step := range steps {
		if err := step(); err != nil {
			if !errors.Is(err, context.Canceled) {
				return
			}
			return
		}
	}
}

// splitWords groups words into n roughly equal chunks (each keeps its
// trailing space so the concatenation is the reply).
func splitWords(words []string, n int) []string {
	if n > len(words) {
		n = len(words)
	}
	if n <= 0 {
		return nil
	}
	out := make([]string, n)
	for i, w := range words {
		sep := " "
		if i == len(words)-1 {
			sep = ""
		}
		out[i*n/len(words)] += w + sep
	}
	return out
}
