package entra

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// GraphError is an error response from Microsoft Graph:
// {"error":{"code","message","innerError":{"request-id","date",...}}}.
type GraphError struct {
	Status    int
	Code      string
	Message   string
	RequestID string
	Method    string
	Path      string
}

func (e *GraphError) Error() string {
	msg := fmt.Sprintf("Microsoft Graph refused %s %s: HTTP %d %s: %s", e.Method, e.Path, e.Status, e.Code, firstLine(e.Message))
	if e.RequestID != "" {
		msg += " (request-id " + e.RequestID + ")"
	}
	return msg + hint(e)
}

// hint adds what an operator can do about the common failures.
func hint(e *GraphError) string {
	switch {
	case e.Status == http.StatusUnauthorized:
		return "; the Graph token is missing, expired or not for Graph: sign in again or pass a fresh --token"
	case e.Code == "Authorization_RequestDenied":
		return "; the signed-in account needs Application.ReadWrite.All (or the Application Administrator / Cloud Application Administrator role)"
	case e.Code == "CannotDeleteOrUpdateEnabledEntitlement":
		return "; an enabled app role or scope cannot be changed in place: disable it in the portal first"
	}
	return ""
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 400 {
		s = s[:400] + "…"
	}
	return s
}

// Graph is a minimal Microsoft Graph v1.0 client.
type Graph struct {
	base   string
	token  string
	client *http.Client
	log    *slog.Logger
	sleep  func(context.Context, time.Duration) error
	// maxWait caps a single Retry-After wait.
	maxWait time.Duration
}

// GraphOptions configures NewGraph.
type GraphOptions struct {
	// BaseURL is Graph's base URL without the version. Default
	// https://graph.microsoft.com.
	BaseURL string
	// Token is the bearer token (delegated Application.ReadWrite.All, or an
	// app-only token with that role). Required.
	Token string
	// HTTPClient: default a client with a 30 s timeout.
	HTTPClient *http.Client
	// Logger: default discard. Tokens are never logged.
	Logger *slog.Logger
	// Sleep waits between retries; default a context-aware timer.
	Sleep func(context.Context, time.Duration) error
}

// NewGraph returns a client.
func NewGraph(o GraphOptions) *Graph {
	g := &Graph{base: strings.TrimSuffix(o.BaseURL, "/"), token: o.Token, client: o.HTTPClient, log: o.Logger, sleep: o.Sleep, maxWait: 30 * time.Second}
	if g.base == "" {
		g.base = "https://graph.microsoft.com"
	}
	if g.client == nil {
		g.client = &http.Client{Timeout: 30 * time.Second}
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.sleep == nil {
		g.sleep = sleepCtx
	}
	return g
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// do sends one request to /v1.0+path and decodes a JSON answer into out.
// 429 and 503 are retried (up to 4 attempts) after Retry-After.
func (g *Graph) do(ctx context.Context, method, path string, body, out any) error {
	return g.doURL(ctx, method, g.base+"/v1.0"+path, path, body, out)
}

// list GETs a collection and follows @odata.nextLink to the end. A next link
// to another host is refused: the bearer token goes only to Graph.
func (g *Graph) list(ctx context.Context, path string) ([]map[string]any, error) {
	var all []map[string]any
	u := g.base + "/v1.0" + path
	for pages := 0; u != ""; pages++ {
		if pages >= 1000 {
			return nil, fmt.Errorf("Graph returned more than 1000 pages for %s", path)
		}
		if !strings.HasPrefix(u, g.base+"/") {
			return nil, fmt.Errorf("Graph's @odata.nextLink for %s points outside %s; refusing to send the token there", path, g.base)
		}
		var page struct {
			Value    []map[string]any `json:"value"`
			NextLink string           `json:"@odata.nextLink"`
		}
		if err := g.doURL(ctx, http.MethodGet, u, path, nil, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Value...)
		u = page.NextLink
	}
	return all, nil
}

func (g *Graph) doURL(ctx context.Context, method, fullURL, path string, body, out any) error {
	var data []byte
	if body != nil {
		var err error
		if data, err = json.Marshal(body); err != nil {
			return err
		}
	}
	for attempt := 1; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, fullURL, bytes.NewReader(data))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+g.token)
		req.Header.Set("Accept", "application/json")
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := g.client.Do(req)
		if err != nil {
			return fmt.Errorf("cannot reach Microsoft Graph at %s: %w", g.base, err)
		}
		raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("reading Graph's answer to %s %s: %w", method, path, err)
		}
		g.log.Debug("graph", "method", method, "path", path, "status", resp.StatusCode, "request_id", resp.Header.Get("request-id"))
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			if out != nil && len(raw) > 0 {
				if err := json.Unmarshal(raw, out); err != nil {
					return fmt.Errorf("Graph's answer to %s %s is not the expected JSON: %w", method, path, err)
				}
			}
			return nil
		}
		ge := &GraphError{Status: resp.StatusCode, Method: method, Path: path, RequestID: resp.Header.Get("request-id")}
		var eb struct {
			Error struct {
				Code       string `json:"code"`
				Message    string `json:"message"`
				InnerError struct {
					RequestID string `json:"request-id"`
				} `json:"innerError"`
			} `json:"error"`
		}
		if json.Unmarshal(raw, &eb) == nil && eb.Error.Code != "" {
			ge.Code, ge.Message = eb.Error.Code, eb.Error.Message
			if eb.Error.InnerError.RequestID != "" {
				ge.RequestID = eb.Error.InnerError.RequestID
			}
		} else {
			ge.Code, ge.Message = http.StatusText(resp.StatusCode), "(no Graph error body)"
		}
		if (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) && attempt < 4 {
			wait := 2 * time.Second
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
				wait = time.Duration(s) * time.Second
			}
			if wait > g.maxWait {
				return ge
			}
			g.log.Info("graph throttled; retrying", "after", wait, "code", ge.Code)
			if err := g.sleep(ctx, wait); err != nil {
				return err
			}
			continue
		}
		return ge
	}
}

// odataString quotes s as an OData string literal.
func odataString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
