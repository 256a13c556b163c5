package doctor

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// NewHTTPClient returns the client checks use when none is given: TLS 1.2 or
// later with verified certificates (roots nil: the system's), no proxy from
// the environment (a proxy must never see the upstream key or a user's
// token by accident), no redirects followed (a redirect is itself a finding)
// and a 10 s connect bound. Overall time is bounded by each check's context.
func NewHTTPClient(tlsConfig *tls.Config) *http.Client {
	if tlsConfig == nil {
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         dialer.DialContext,
			TLSClientConfig:     tlsConfig,
			TLSHandshakeTimeout: 10 * time.Second,
			ForceAttemptHTTP2:   true,
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     30 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func clientOr(c *http.Client) *http.Client {
	if c != nil {
		return c
	}
	return NewHTTPClient(nil)
}

// response is a bounded read of an HTTP answer.
type response struct {
	status  int
	header  http.Header
	body    []byte
	elapsed time.Duration
}

const maxBody = 1 << 20

func do(ctx context.Context, c *http.Client, req *http.Request) (*response, error) {
	start := time.Now()
	resp, err := c.Do(req.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, err
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: body, elapsed: time.Since(start)}, nil
}

func get(ctx context.Context, c *http.Client, url string, hdr http.Header) (*response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", userAgent)
	return do(ctx, c, req)
}

const userAgent = "gatehouse-doctor"

var (
	ctrlRE   = regexp.MustCompile(`[\x00-\x1f\x7f]+`)
	secretRE = regexp.MustCompile(`(?i)(sk-ant-[a-z0-9_-]*|\beyJ[a-z0-9_-]{10,}\.[a-z0-9_.-]+|\b[0-9a-f]{32}\b|bearer\s+\S+)`)
)

// sanitize makes text from a remote server safe to print: control
// characters collapsed, anything shaped like a key or token redacted,
// length bounded.
func sanitize(s string, n int) string {
	s = ctrlRE.ReplaceAllString(s, " ")
	s = secretRE.ReplaceAllString(s, "[redacted]")
	s = strings.TrimSpace(s)
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

// errorMessage extracts the message of an Anthropic error envelope
// ({"type":"error","error":{"type","message"}}), an Azure one
// ({"error":{"code","message"}}) or an OAuth one ({"error",
// "error_description"}), sanitised; "" when the body is none of them.
func errorMessage(body []byte) string {
	var e struct {
		Error       json.RawMessage `json:"error"`
		Description string          `json:"error_description"`
	}
	if json.Unmarshal(body, &e) != nil || len(e.Error) == 0 {
		return ""
	}
	var code string
	if json.Unmarshal(e.Error, &code) == nil {
		return sanitize(strings.TrimSpace(code+": "+e.Description), 240)
	}
	var obj struct {
		Type    string `json:"type"`
		Code    any    `json:"code"`
		Message string `json:"message"`
	}
	if json.Unmarshal(e.Error, &obj) != nil {
		return ""
	}
	var parts []string
	if obj.Type != "" {
		parts = append(parts, obj.Type)
	}
	if c, ok := obj.Code.(string); ok && c != "" {
		parts = append(parts, c)
	}
	msg := strings.Join(parts, "/")
	if obj.Message != "" {
		if msg != "" {
			msg += ": "
		}
		msg += obj.Message
	}
	return sanitize(msg, 240)
}

// describeErr shortens a transport error for a message.
func describeErr(err error) string {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timed out: " + sanitize(err.Error(), 200)
	}
	return sanitize(err.Error(), 240)
}

func roundMS(d time.Duration) time.Duration {
	if d < time.Millisecond {
		return d.Round(time.Microsecond)
	}
	return d.Round(time.Millisecond)
}
