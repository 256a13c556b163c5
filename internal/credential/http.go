package credential

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// DefaultScope is the Entra scope for Microsoft Foundry (contract §5.2).
const DefaultScope = "https://ai.azure.com/.default"

// ResourceFromScope turns an OAuth v2 scope into the v1 resource the managed
// identity endpoints want: "https://ai.azure.com/.default" → "https://ai.azure.com".
func ResourceFromScope(scope string) string {
	return strings.TrimSuffix(scope, "/.default")
}

func tlsConfig() *tls.Config { return &tls.Config{MinVersion: tls.VersionTLS12} }

// maxBody bounds what is read from a token endpoint.
const maxBody = 64 << 10

// flexInt decodes a JSON number or a string holding one (IMDS sends
// "expires_in":"3599"; Entra sends 3599).
type flexInt int64

func (f *flexInt) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*f = 0
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		fl, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil {
			return fmt.Errorf("not a number: %q", s)
		}
		n = int64(fl)
	}
	*f = flexInt(n)
	return nil
}

// tokenResponse covers IMDS, App Service and Entra v2 successes and errors.
type tokenResponse struct {
	AccessToken string  `json:"access_token"`
	TokenType   string  `json:"token_type"`
	ExpiresIn   flexInt `json:"expires_in"`
	ExpiresOn   flexInt `json:"expires_on"`

	// OAuth / IMDS errors.
	ErrorCode   string  `json:"error"`
	Description string  `json:"error_description"`
	ErrorCodes  []int64 `json:"error_codes"`
	// App Service errors.
	Message string `json:"message"`
}

// reason renders an error body for logs: the OAuth error, the first line of
// the description (Entra appends trace and correlation ids on later lines).
func (t *tokenResponse) reason() (code, text string) {
	code = t.ErrorCode
	text = t.Description
	if text == "" {
		text = t.Message
	}
	if i := strings.IndexAny(text, "\r\n"); i >= 0 {
		text = text[:i]
	}
	if len(text) > 300 {
		text = text[:300] + "…"
	}
	if code == "" && len(t.ErrorCodes) > 0 {
		code = "AADSTS" + strconv.FormatInt(t.ErrorCodes[0], 10)
	}
	return code, text
}

// exchange runs one token request with retries. build makes a fresh request
// per attempt; retryable says which statuses are retried.
func exchange(ctx context.Context, o *TokenOptions, kind, source string, build func(context.Context) (*http.Request, error), retryable func(int) bool) (Token, error) {
	delay := o.RetryDelay
	var last error
	for attempt := 1; ; attempt++ {
		tok, retry, wait, err := exchangeOnce(ctx, o, kind, source, build, retryable)
		if err == nil {
			return tok, nil
		}
		last = err
		if !retry || attempt >= o.MaxAttempts {
			return Token{}, last
		}
		if wait <= 0 || wait > 4*delay {
			wait = delay
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return Token{}, last
		case <-t.C:
		}
		delay *= 2
	}
}

func exchangeOnce(ctx context.Context, o *TokenOptions, kind, source string, build func(context.Context) (*http.Request, error), retryable func(int) bool) (tok Token, retry bool, wait time.Duration, err error) {
	req, err := build(ctx)
	if err != nil {
		return Token{}, false, 0, &Error{Kind: kind, Source: source, Reason: "cannot build the token request", Err: err}
	}
	start := o.Now()
	resp, err := o.HTTPClient.Do(req)
	if err != nil {
		return Token{}, ctx.Err() == nil, 0, &Error{Kind: kind, Source: source, Reason: "token endpoint unreachable", Err: stripURL(err)}
	}
	defer resp.Body.Close()
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	var tr tokenResponse
	jerr := json.Unmarshal(body, &tr)
	if resp.StatusCode != http.StatusOK {
		e := &Error{Kind: kind, Source: source, Status: resp.StatusCode}
		if jerr == nil {
			code, text := tr.reason()
			e.Code = code
			e.Reason = fmt.Sprintf("token endpoint answered %d %s: %s", resp.StatusCode, code, text)
		} else {
			e.Reason = fmt.Sprintf("token endpoint answered %d with a body that is not JSON", resp.StatusCode)
		}
		if s, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && s > 0 {
			wait = time.Duration(s) * time.Second
		}
		return Token{}, retryable(resp.StatusCode), wait, e
	}
	if rerr != nil {
		return Token{}, true, 0, &Error{Kind: kind, Source: source, Reason: "reading the token response failed", Err: rerr}
	}
	if jerr != nil {
		return Token{}, false, 0, &Error{Kind: kind, Source: source, Reason: "the token response is not JSON", Err: jerr}
	}
	if tr.AccessToken == "" {
		return Token{}, false, 0, &Error{Kind: kind, Source: source, Reason: "the token response has no access_token"}
	}
	if tt := tr.TokenType; tt != "" && !strings.EqualFold(tt, "Bearer") {
		return Token{}, false, 0, &Error{Kind: kind, Source: source, Reason: fmt.Sprintf("unexpected token_type %q", tt)}
	}
	var exp time.Time
	switch {
	case tr.ExpiresIn > 0:
		exp = start.Add(time.Duration(tr.ExpiresIn) * time.Second)
	case tr.ExpiresOn > 0:
		exp = time.Unix(int64(tr.ExpiresOn), 0)
	default:
		return Token{}, false, 0, &Error{Kind: kind, Source: source, Reason: "the token response has neither expires_in nor expires_on"}
	}
	return Token{Value: tr.AccessToken, ExpiresAt: exp}, false, 0, nil
}

// stripURL keeps a *url.Error's cause without the URL (which may carry a
// query with a client id; never a secret, but keep logs short).
func stripURL(err error) error {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			return inner
		}
	}
	return err
}

// retryManagedIdentity: IMDS documents retrying 404, 410 (updating, up to
// 70 s), 429 and 5xx.
func retryManagedIdentity(status int) bool {
	return status == http.StatusNotFound || status == http.StatusGone || status == http.StatusTooManyRequests || status >= 500
}

// retryEntra: throttling and server errors. 4xx answers (bad secret,
// unknown app, bad scope) are configuration faults: retrying cannot help.
func retryEntra(status int) bool {
	return status == http.StatusTooManyRequests || status >= 500
}
