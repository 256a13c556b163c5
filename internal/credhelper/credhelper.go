// Package credhelper signs a user in to the identity provider and hands out
// the token Claude Code's apiKeyHelper and Claude Desktop's
// inferenceCredentialHelper send to the gateway (`gatehouse login`,
// `gatehouse token`).
//
// Sign-in is the OAuth 2.0 authorization code flow with PKCE (S256) for a
// public client, in the system browser, with a loopback redirect on
// http://127.0.0.1:<port>/callback (RFC 8252 §7.3); state and nonce are
// checked and the ID token is verified against the issuer's keys. Tokens are
// cached per user in a Store and refreshed silently with the refresh token.
// When a sign-in is needed but no browser can be opened, Token fails with
// ErrInteractionRequired, whose message is one line a user can act on.
package credhelper

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultScopes is requested when Options.Scopes is empty.
const DefaultScopes = "openid profile email offline_access"

// Options configures a Helper. Issuer and ClientID are required.
type Options struct {
	// Issuer is the OIDC issuer base URL (discovery is at
	// Issuer+"/.well-known/openid-configuration").
	Issuer string
	// ClientID is the public client's ID (no secret).
	ClientID string
	// Scopes is the space-separated scope list. Empty: DefaultScopes. In
	// access-token mode it must name the gateway API's scope; "openid" and
	// "offline_access" are added when missing.
	Scopes string
	// TokenType is the token handed out: "" or "id_token" (aud = ClientID,
	// what Claude Desktop sends by default) or "access_token".
	TokenType string
	// Store caches tokens. Nil: nothing survives the process.
	Store Store
	// OpenBrowser opens a URL in the user's browser. Nil: interactive
	// sign-in is impossible and Token fails with ErrInteractionRequired.
	OpenBrowser func(ctx context.Context, url string) error
	// HTTPClient talks to the identity provider. Nil: a client with a 30 s
	// timeout.
	HTTPClient *http.Client
	// Now is the clock. Nil: time.Now.
	Now func() time.Time
	// MinValidity is how long a handed-out token must still be valid; a
	// cached token closer to expiry is refreshed. Zero: 10 minutes (Claude
	// Code caches a helper's output for 5 minutes).
	MinValidity time.Duration
	// LoginTimeout bounds the wait for the browser to come back. Zero: 5 min.
	LoginTimeout time.Duration
	// RedirectPort fixes the loopback port. Zero: a free port (Entra ignores
	// the port of loopback redirect URIs).
	RedirectPort int
	// LoginHint pre-fills the account at the sign-in page. Optional.
	LoginHint string
	// Logger receives diagnostics; never tokens. Nil: discard.
	Logger *slog.Logger
}

// Error is a failure with a one-line message for the user and the
// underlying cause for logs.
type Error struct {
	Msg   string
	Cause error
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Cause }

// ErrInteractionRequired means the user must sign in interactively and this
// process cannot open a browser; errors.Is matches it.
var ErrInteractionRequired = errors.New("interactive sign-in required")

// Helper hands out tokens. It is not safe for concurrent use; each process
// runs one operation.
type Helper struct {
	o        Options
	key      string
	scopes   string
	provider *discovery
}

// New checks o and returns a Helper. It does not touch the network.
func New(o Options) (*Helper, error) {
	if o.Issuer == "" || o.ClientID == "" {
		return nil, &Error{Msg: "the issuer and the client ID are required (--issuer, --client-id)"}
	}
	if strings.Contains(o.Issuer, "/.well-known") {
		return nil, &Error{Msg: "the issuer must be the base URL, without /.well-known/openid-configuration"}
	}
	switch o.TokenType {
	case "":
		o.TokenType = "id_token"
	case "id_token", "access_token":
	default:
		return nil, &Error{Msg: "the token type must be id_token or access_token"}
	}
	scopes := o.Scopes
	if scopes == "" {
		scopes = DefaultScopes
	}
	if o.TokenType == "access_token" && o.Scopes == "" {
		return nil, &Error{Msg: "access-token mode needs --scopes naming the gateway API's scope (e.g. api://<api-app-id>/access_as_user)"}
	}
	scopes = ensureScopes(scopes, "openid", "offline_access")
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MinValidity == 0 {
		o.MinValidity = 10 * time.Minute
	}
	if o.LoginTimeout == 0 {
		o.LoginTimeout = 5 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Store == nil {
		o.Store = &MemoryStore{}
	}
	return &Helper{o: o, scopes: scopes, key: CacheKey(o.Issuer, o.ClientID, scopes, o.TokenType)}, nil
}

func ensureScopes(scopes string, want ...string) string {
	f := strings.Fields(scopes)
	for _, w := range want {
		found := false
		for _, s := range f {
			if s == w {
				found = true
			}
		}
		if !found {
			if w == "openid" {
				f = append([]string{w}, f...)
			} else {
				f = append(f, w)
			}
		}
	}
	return strings.Join(f, " ")
}

// Token returns a token valid for at least MinValidity: from the cache, by
// silent refresh, or (if a browser can be opened) by interactive sign-in.
func (h *Helper) Token(ctx context.Context) (string, error) {
	t, err := h.o.Store.Load(h.key)
	if err != nil && !errors.Is(err, ErrNotFound) {
		h.o.Logger.Warn("token cache unreadable; signing in again", "err", err)
	}
	if t != nil {
		if tok, ok := h.usable(t, h.o.MinValidity); ok {
			return tok, nil
		}
	}
	// Refreshing or signing in: one process at a time. Whoever waited
	// re-reads the cache, which the holder has probably just filled.
	if l, ok := h.o.Store.(Locker); ok {
		lctx, cancel := context.WithTimeout(ctx, h.o.LoginTimeout+time.Minute)
		unlock, err := l.Lock(lctx, h.key)
		cancel()
		if err != nil {
			return "", &Error{Msg: "another gatehouse process is signing in and did not finish; try again", Cause: err}
		}
		defer unlock()
		if t2, err := h.o.Store.Load(h.key); err == nil {
			t = t2
			if tok, ok := h.usable(t, h.o.MinValidity); ok {
				return tok, nil
			}
		}
	}
	if t != nil && t.RefreshToken != "" {
		nt, err := h.refresh(ctx, t)
		if err == nil {
			// A fresh token is handed out even if the IdP's lifetime is
			// shorter than MinValidity.
			if tok, ok := h.usable(nt, lastMinute); ok {
				return tok, nil
			}
			err = &Error{Msg: "the identity provider's refresh returned no usable " + h.o.TokenType}
		}
		var ie *idpError
		if !errors.As(err, &ie) || !needsInteraction(ie.Code) {
			// A network or server failure: keep the session, and hand out
			// the cached token while it is still valid.
			if tok, ok := h.usable(t, lastMinute); ok {
				h.o.Logger.Warn("refresh failed; using the cached token until it expires", "err", err)
				return tok, nil
			}
			return "", err
		}
		h.o.Logger.Info("refresh token rejected; interactive sign-in needed", "error", ie.Code, "aadsts", ie.aadsts())
		_ = h.o.Store.Delete(h.key)
	}
	if h.o.OpenBrowser == nil {
		return "", &Error{Msg: "sign-in required: run `gatehouse login` (no browser can be opened here)", Cause: ErrInteractionRequired}
	}
	nt, err := h.Login(ctx)
	if err != nil {
		return "", err
	}
	tok, ok := h.usable(nt, lastMinute)
	if !ok {
		return "", &Error{Msg: "the identity provider returned no usable " + h.o.TokenType}
	}
	return tok, nil
}

// lastMinute is the least validity a token handed out may have.
const lastMinute = time.Minute

// needsInteraction reports token endpoint errors that only a new
// interactive sign-in can fix (RFC 6749 invalid_grant; OpenID Connect
// interaction_required, login_required, consent_required, which Entra uses
// for MFA and Conditional Access step-up).
func needsInteraction(code string) bool {
	switch code {
	case "invalid_grant", "interaction_required", "login_required", "consent_required":
		return true
	}
	return false
}

// usable returns the configured token if it is valid for at least min.
func (h *Helper) usable(t *Tokens, min time.Duration) (string, bool) {
	tok, exp := t.IDToken, t.IDTokenExpiry
	if h.o.TokenType == "access_token" {
		tok, exp = t.AccessToken, t.AccessExpiry
	}
	if tok == "" || !h.o.Now().Add(min).Before(exp) {
		return "", false
	}
	return tok, true
}

// Cached returns the cached tokens without touching the network.
func (h *Helper) Cached() (*Tokens, error) { return h.o.Store.Load(h.key) }

// Logout forgets the cached tokens.
func (h *Helper) Logout() error { return h.o.Store.Delete(h.key) }

// discovery is the part of the OpenID Provider metadata the helper uses.
type discovery struct {
	Issuer                string `json:"issuer"`
	AuthorizationEndpoint string `json:"authorization_endpoint"`
	TokenEndpoint         string `json:"token_endpoint"`
}

func (h *Helper) discover(ctx context.Context) (*discovery, error) {
	if h.provider != nil {
		return h.provider, nil
	}
	where := strings.TrimSuffix(h.o.Issuer, "/") + "/.well-known/openid-configuration"
	fail := func(cause error) error {
		return &Error{Msg: "cannot read the identity provider's discovery document at " + where, Cause: cause}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, where, nil)
	if err != nil {
		return nil, fail(err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := h.o.HTTPClient.Do(req)
	if err != nil {
		return nil, fail(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fail(fmt.Errorf("HTTP %d", resp.StatusCode))
	}
	var d discovery
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&d); err != nil {
		return nil, fail(err)
	}
	if d.Issuer != h.o.Issuer {
		return nil, &Error{Msg: fmt.Sprintf("the discovery document names issuer %q, not %q; fix the issuer", d.Issuer, h.o.Issuer)}
	}
	for _, e := range []string{d.AuthorizationEndpoint, d.TokenEndpoint} {
		u, err := url.Parse(e)
		if e == "" || err != nil || !(u.Scheme == "https" || (u.Scheme == "http" && isLoopback(u.Hostname()))) {
			return nil, &Error{Msg: "the discovery document lacks an https authorization or token endpoint"}
		}
	}
	h.provider = &d
	return &d, nil
}

func isLoopback(host string) bool {
	return host == "127.0.0.1" || host == "::1" || strings.EqualFold(host, "localhost")
}

// Login runs the interactive sign-in and caches the result.
func (h *Helper) Login(ctx context.Context) (*Tokens, error) {
	if h.o.OpenBrowser == nil {
		return nil, &Error{Msg: "sign-in required but no browser can be opened here", Cause: ErrInteractionRequired}
	}
	p, err := h.discover(ctx)
	if err != nil {
		return nil, err
	}
	verifier := randomString(64)
	challenge := s256(verifier)
	state := randomString(32)
	nonce := randomString(32)

	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(h.o.RedirectPort))
	if err != nil {
		return nil, &Error{Msg: "cannot listen on 127.0.0.1 for the sign-in redirect", Cause: err}
	}
	redirectURI := "http://" + ln.Addr().String() + "/callback"
	done := make(chan callbackResult, 1)
	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.callback(w, r, state, done) }),
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	q := url.Values{
		"client_id":             {h.o.ClientID},
		"response_type":         {"code"},
		"redirect_uri":          {redirectURI},
		"scope":                 {h.scopes},
		"state":                 {state},
		"nonce":                 {nonce},
		"code_challenge":        {challenge},
		"code_challenge_method": {"S256"},
		"response_mode":         {"query"},
	}
	if h.o.LoginHint != "" {
		q.Set("login_hint", h.o.LoginHint)
	}
	authURL := p.AuthorizationEndpoint
	if strings.Contains(authURL, "?") {
		authURL += "&" + q.Encode()
	} else {
		authURL += "?" + q.Encode()
	}
	lctx, cancel := context.WithTimeout(ctx, h.o.LoginTimeout)
	defer cancel()
	if err := h.o.OpenBrowser(lctx, authURL); err != nil {
		return nil, &Error{Msg: "cannot open a browser for sign-in; run `gatehouse login` where one is available", Cause: errors.Join(err, ErrInteractionRequired)}
	}
	var code string
	select {
	case r := <-done:
		if r.err != nil {
			return nil, r.err
		}
		code = r.code
	case <-lctx.Done():
		return nil, &Error{Msg: "sign-in did not complete in time; try `gatehouse login` again", Cause: lctx.Err()}
	}

	form := url.Values{
		"grant_type":    {"authorization_code"},
		"client_id":     {h.o.ClientID},
		"code":          {code},
		"redirect_uri":  {redirectURI},
		"code_verifier": {verifier},
		"scope":         {h.scopes},
	}
	tr, err := h.tokenRequest(ctx, p.TokenEndpoint, form)
	if err != nil {
		return nil, err
	}
	t, err := h.accept(p, tr, nonce, nil)
	if err != nil {
		return nil, err
	}
	if err := h.o.Store.Save(h.key, t); err != nil {
		h.o.Logger.Warn("cannot cache tokens; the next run signs in again", "err", err)
	}
	return t, nil
}

// callbackResult is what the loopback listener hands back to Login.
type callbackResult struct {
	code string
	err  error
}

// callback handles the browser's return to the loopback listener. Only a
// request on /callback with the right state counts; anything else is
// answered and ignored, so a stray or forged request cannot end the wait.
func (h *Helper) callback(w http.ResponseWriter, r *http.Request, state string, done chan<- callbackResult) {
	if r.URL.Path != "/callback" || r.Method != http.MethodGet {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(state)) != 1 {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, "Sign-in response rejected: state does not match. Close this window and try again.\n")
		h.o.Logger.Warn("loopback callback with a wrong state ignored")
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	var res callbackResult
	if e := q.Get("error"); e != "" {
		desc := firstLine(q.Get("error_description"))
		res.err = &Error{Msg: "sign-in failed at the identity provider: " + e + ": " + desc}
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, "<!DOCTYPE html><title>Gatehouse</title><p>Sign-in failed. You can close this window and check the terminal.</p>\n")
	} else if c := q.Get("code"); c == "" {
		res.err = &Error{Msg: "sign-in failed: the identity provider returned no authorization code"}
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, "<!DOCTYPE html><title>Gatehouse</title><p>Sign-in failed. You can close this window.</p>\n")
	} else {
		res.code = c
		io.WriteString(w, "<!DOCTYPE html><title>Gatehouse</title><p>Signed in. You can close this window and return to Claude.</p>\n")
	}
	select {
	case done <- res:
	default: // a second valid callback: the first one wins
	}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	s, _, _ = strings.Cut(s, " Trace ID:")
	if len(s) > 300 {
		s = s[:300]
	}
	return s
}

// tokenResponse is the token endpoint's success body (RFC 6749 §5.1, plus
// id_token).
type tokenResponse struct {
	AccessToken  string          `json:"access_token"`
	TokenType    string          `json:"token_type"`
	ExpiresIn    json.RawMessage `json:"expires_in"`
	RefreshToken string          `json:"refresh_token"`
	IDToken      string          `json:"id_token"`
	Scope        string          `json:"scope"`
}

// idpError is the token endpoint's error body (RFC 6749 §5.2; Entra adds
// error_codes).
type idpError struct {
	Status      int
	Code        string `json:"error"`
	Description string `json:"error_description"`
	ErrorCodes  []int  `json:"error_codes"`
}

func (e *idpError) aadsts() string {
	if len(e.ErrorCodes) > 0 {
		return "AADSTS" + strconv.Itoa(e.ErrorCodes[0])
	}
	return ""
}

func (e *idpError) Error() string {
	msg := "the identity provider refused the token request: " + e.Code
	if d := firstLine(e.Description); d != "" {
		msg += ": " + d
	}
	return msg
}

func (h *Helper) tokenRequest(ctx context.Context, tokenURL string, form url.Values) (*tokenResponse, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, &Error{Msg: "bad token endpoint URL", Cause: err}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := h.o.HTTPClient.Do(req)
	if err != nil {
		return nil, &Error{Msg: "cannot reach the identity provider's token endpoint", Cause: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, &Error{Msg: "reading the token response failed", Cause: err}
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/json" {
		return nil, &Error{Msg: fmt.Sprintf("the token endpoint answered HTTP %d with %q, not JSON", resp.StatusCode, mt)}
	}
	if resp.StatusCode != http.StatusOK {
		ie := &idpError{Status: resp.StatusCode}
		if err := json.Unmarshal(body, ie); err != nil || ie.Code == "" {
			return nil, &Error{Msg: fmt.Sprintf("the token endpoint answered HTTP %d", resp.StatusCode)}
		}
		return nil, ie
	}
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		return nil, &Error{Msg: "the token response is not valid JSON", Cause: err}
	}
	if tr.TokenType != "" && !strings.EqualFold(tr.TokenType, "Bearer") {
		return nil, &Error{Msg: "the token endpoint returned token_type " + tr.TokenType + ", not Bearer"}
	}
	return &tr, nil
}

// accept checks the ID token and turns a token response into cached
// Tokens. prev supplies the refresh token and user name when a refresh
// response does not repeat them.
//
// The ID token arrives directly from the token endpoint over TLS, so, as
// OpenID Connect Core §3.1.3.7 allows, the helper validates its claims (iss,
// aud, azp, exp, nonce) and relies on TLS for its origin; the gateway
// verifies the signature of every token it receives.
func (h *Helper) accept(p *discovery, tr *tokenResponse, nonce string, prev *Tokens) (*Tokens, error) {
	now := h.o.Now()
	t := &Tokens{ObtainedAt: now, Scope: tr.Scope, RefreshToken: tr.RefreshToken}
	if t.RefreshToken == "" && prev != nil {
		t.RefreshToken = prev.RefreshToken
	}
	if tr.IDToken == "" {
		if h.o.TokenType == "id_token" {
			return nil, &Error{Msg: "the token response has no id_token (the scopes must include openid)"}
		}
	} else {
		c, err := parseIDToken(tr.IDToken)
		if err != nil {
			return nil, &Error{Msg: "the identity provider returned a malformed ID token", Cause: err}
		}
		switch {
		case c.Issuer != p.Issuer:
			return nil, &Error{Msg: fmt.Sprintf("the ID token was issued by %q, not %q", c.Issuer, p.Issuer)}
		case !c.Audience.contains(h.o.ClientID):
			return nil, &Error{Msg: "the ID token is for another application (aud does not contain the client ID)"}
		case len(c.Audience) > 1 && c.AZP != h.o.ClientID:
			return nil, &Error{Msg: "the ID token's azp is not this client"}
		case c.Expiry == 0 || !now.Before(time.Unix(c.Expiry, 0)):
			return nil, &Error{Msg: "the identity provider returned an expired ID token; check this machine's clock"}
		// On refresh Entra's new ID token carries no nonce; on sign-in it
		// must echo ours.
		case nonce != "" && subtle.ConstantTimeCompare([]byte(c.Nonce), []byte(nonce)) != 1:
			return nil, &Error{Msg: "the ID token's nonce does not match this sign-in (possible replay); sign in again"}
		}
		t.IDToken, t.IDTokenExpiry, t.Username = tr.IDToken, time.Unix(c.Expiry, 0), c.PreferredUsername
	}
	if prev != nil && t.Username == "" {
		t.Username = prev.Username
	}
	if tr.AccessToken != "" {
		t.AccessToken = tr.AccessToken
		if secs, err := strconv.Atoi(strings.Trim(string(tr.ExpiresIn), `"`)); err == nil && secs > 0 {
			t.AccessExpiry = now.Add(time.Duration(secs) * time.Second)
		}
	}
	h.o.Logger.Debug("tokens obtained", "id_token_sha256", hashPrefix(t.IDToken), "access_token_sha256", hashPrefix(t.AccessToken), "refresh", t.RefreshToken != "")
	return t, nil
}

// idClaims are the ID token claims the helper checks.
type idClaims struct {
	Issuer            string   `json:"iss"`
	Audience          audience `json:"aud"`
	AZP               string   `json:"azp"`
	Expiry            int64    `json:"exp"`
	Nonce             string   `json:"nonce"`
	PreferredUsername string   `json:"preferred_username"`
}

// audience is aud: a string or an array of strings.
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*a = audience{s}
		return nil
	}
	var ss []string
	if err := json.Unmarshal(b, &ss); err != nil {
		return errors.New("aud is neither a string nor an array of strings")
	}
	*a = ss
	return nil
}

func (a audience) contains(s string) bool {
	for _, x := range a {
		if x == s {
			return true
		}
	}
	return false
}

// parseIDToken decodes a compact JWS's payload (no signature check; see
// accept).
func parseIDToken(tok string) (*idClaims, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, errors.New("not a compact JWS")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	var c idClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, fmt.Errorf("claims: %w", err)
	}
	return &c, nil
}

func (h *Helper) refresh(ctx context.Context, old *Tokens) (*Tokens, error) {
	p, err := h.discover(ctx)
	if err != nil {
		return nil, err
	}
	form := url.Values{
		"grant_type":    {"refresh_token"},
		"client_id":     {h.o.ClientID},
		"refresh_token": {old.RefreshToken},
		"scope":         {h.scopes},
	}
	tr, err := h.tokenRequest(ctx, p.TokenEndpoint, form)
	if err != nil {
		return nil, err
	}
	t, err := h.accept(p, tr, "", old)
	if err != nil {
		return nil, err
	}
	if err := h.o.Store.Save(h.key, t); err != nil {
		h.o.Logger.Warn("cannot cache refreshed tokens", "err", err)
	}
	return t, nil
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead)
	return base64.RawURLEncoding.EncodeToString(b)[:n]
}

func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func hashPrefix(s string) string {
	if s == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(s))
	return fmt.Sprintf("%x", sum[:6])
}
