package credhelper

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/fake/idp"
)

// clock is a settable test clock shared by the fake IdP and the helper.
type clock struct{ ns atomic.Int64 }

func newClock() *clock          { c := &clock{}; c.ns.Store(time.Now().UnixNano()); return c }
func (c *clock) Now() time.Time { return time.Unix(0, c.ns.Load()) }
func (c *clock) Add(d time.Duration) {
	c.ns.Add(int64(d))
}

type env struct {
	idp    *idp.Server
	tid    string
	client string
	clk    *clock
}

func start(t *testing.T) *env {
	t.Helper()
	clk := newClock()
	client := idp.NewGUID()
	s, err := idp.Start(idp.Options{
		Now:     clk.Now,
		Clients: []idp.Client{{ID: client, RedirectURIs: []string{"http://127.0.0.1/callback"}}},
		Users:   []idp.User{{OID: idp.NewGUID(), Name: "Grace", Username: "grace@contoso.example"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &env{idp: s, tid: s.Tenants()[0], client: client, clk: clk}
}

// browser plays the system browser: it follows the IdP's redirects to the
// loopback callback. tamper may rewrite the authorize URL first.
type browser struct {
	mu     sync.Mutex
	opened int
	tamper func(u *url.URL)
	status chan int // status of the final (callback) response
}

func (b *browser) open(_ context.Context, raw string) error {
	b.mu.Lock()
	b.opened++
	b.mu.Unlock()
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if b.tamper != nil {
		b.tamper(u)
	}
	go func() {
		resp, err := http.Get(u.String())
		if err != nil {
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if b.status != nil {
			b.status <- resp.StatusCode
		}
	}()
	return nil
}

func (b *browser) count() int { b.mu.Lock(); defer b.mu.Unlock(); return b.opened }

func (e *env) options(b *browser, store Store) Options {
	o := Options{
		Issuer:       e.idp.Issuer(e.tid),
		ClientID:     e.client,
		Store:        store,
		Now:          e.clk.Now,
		LoginTimeout: 10 * time.Second,
	}
	if b != nil {
		o.OpenBrowser = b.open
	}
	return o
}

func claims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestLoginTokenRefreshEndToEnd(t *testing.T) {
	e := start(t)
	b := &browser{}
	store := FileStore{Dir: filepath.Join(t.TempDir(), "cache")}
	h, err := New(e.options(b, store))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	tok, err := h.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := claims(t, tok)
	if c["aud"] != e.client || c["iss"] != e.idp.Issuer(e.tid) || c["nonce"] == nil {
		t.Fatalf("ID token claims: %v", c)
	}
	if b.count() != 1 || e.idp.TokenRequests() != 1 {
		t.Fatalf("browser opened %d times, %d token requests", b.count(), e.idp.TokenRequests())
	}

	// A new process (new Helper) reads the cache: no browser, no IdP call.
	h2, _ := New(e.options(nil, store))
	tok2, err := h2.Token(ctx)
	if err != nil || tok2 != tok {
		t.Fatalf("cached token: %v (same=%v)", err, tok2 == tok)
	}
	if e.idp.TokenRequests() != 1 {
		t.Fatalf("cache miss: %d token requests", e.idp.TokenRequests())
	}

	// Near expiry the helper refreshes silently, even without a browser.
	e.clk.Add(55 * time.Minute)
	tok3, err := h2.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if tok3 == tok || e.idp.TokenRequests() != 2 || b.count() != 1 {
		t.Fatalf("refresh: same=%v tokenRequests=%d browser=%d", tok3 == tok, e.idp.TokenRequests(), b.count())
	}
	if exp := int64(claims(t, tok3)["exp"].(float64)); exp <= e.clk.Now().Unix() {
		t.Fatal("refreshed token already expired")
	}

	// Revocation at the IdP: the refresh fails and, with no browser, the
	// helper says what to do in one line.
	e.clk.Add(55 * time.Minute)
	e.idp.RevokeSignInSessions(e.idp.DefaultUser().OID)
	_, err = h2.Token(ctx)
	if !errors.Is(err, ErrInteractionRequired) {
		t.Fatalf("after revocation: %v", err)
	}
	if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, "gatehouse login") {
		t.Errorf("message %q is not one actionable line", msg)
	}
	if _, err := store.Load(h2.key); !errors.Is(err, ErrNotFound) {
		t.Errorf("rejected session still cached: %v", err)
	}
}

func TestNoBrowserNoCache(t *testing.T) {
	e := start(t)
	h, _ := New(e.options(nil, nil))
	_, err := h.Token(context.Background())
	if !errors.Is(err, ErrInteractionRequired) {
		t.Fatalf("err = %v", err)
	}
	if e.idp.AuthorizeRequests() != 0 {
		t.Error("contacted the IdP's authorize endpoint without a browser")
	}
}

func TestAccessTokenMode(t *testing.T) {
	e := start(t)
	b := &browser{}
	o := e.options(b, nil)
	o.TokenType = "access_token"
	o.Scopes = "api://" + e.client + "/access_as_user"
	h, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := h.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c := claims(t, tok)
	if c["aud"] != e.client || c["scp"] != "access_as_user" || c["azp"] != e.client {
		t.Fatalf("access token claims: %v", c)
	}
	if h.scopes != "openid api://"+e.client+"/access_as_user offline_access" {
		t.Errorf("scopes = %q", h.scopes)
	}
}

func TestNonceMismatchRejected(t *testing.T) {
	e := start(t)
	b := &browser{tamper: func(u *url.URL) {
		q := u.Query()
		q.Set("nonce", "attacker-chosen-nonce")
		u.RawQuery = q.Encode()
	}}
	h, _ := New(e.options(b, nil))
	_, err := h.Token(context.Background())
	if err == nil || !strings.Contains(err.Error(), "nonce") {
		t.Fatalf("err = %v", err)
	}
}

func TestStateMismatchIgnored(t *testing.T) {
	e := start(t)
	forged := make(chan int, 1)
	b := &browser{}
	b.tamper = func(u *url.URL) {
		// Before the real browser returns, a forged callback with a wrong
		// state arrives at the loopback listener.
		redirect := u.Query().Get("redirect_uri")
		resp, err := http.Get(redirect + "?code=forged&state=wrong")
		if err != nil {
			t.Error(err)
			return
		}
		resp.Body.Close()
		forged <- resp.StatusCode
	}
	h, _ := New(e.options(b, nil))
	tok, err := h.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st := <-forged; st != http.StatusBadRequest {
		t.Errorf("forged callback answered %d", st)
	}
	if claims(t, tok)["aud"] != e.client {
		t.Error("wrong token")
	}
}

func TestStateOnlyForgedTimesOut(t *testing.T) {
	e := start(t)
	b := &browser{}
	b.tamper = func(u *url.URL) {
		q := u.Query()
		q.Set("state", "not-the-helpers-state")
		u.RawQuery = q.Encode()
	}
	o := e.options(b, nil)
	o.LoginTimeout = 300 * time.Millisecond
	h, _ := New(o)
	_, err := h.Token(context.Background())
	if err == nil || !strings.Contains(err.Error(), "did not complete") {
		t.Fatalf("err = %v", err)
	}
	if e.idp.TokenRequests() != 0 {
		t.Error("redeemed a code that came back with the wrong state")
	}
}

func TestIdPErrorRedirect(t *testing.T) {
	e := start(t)
	o := e.options(&browser{}, nil)
	o.LoginHint = "nobody@contoso.example"
	h, _ := New(o)
	_, err := h.Token(context.Background())
	if err == nil || !strings.Contains(err.Error(), "AADSTS50034") || strings.Contains(err.Error(), "Trace ID") {
		t.Fatalf("err = %v", err)
	}
}

func TestLoginHintSelectsUser(t *testing.T) {
	e := start(t)
	o := e.options(&browser{}, nil)
	o.LoginHint = "grace@contoso.example"
	h, _ := New(o)
	tok, err := h.Login(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if tok.Username != "grace@contoso.example" {
		t.Errorf("username = %q", tok.Username)
	}
}

func TestDiscoveryIssuerMismatch(t *testing.T) {
	e := start(t)
	o := e.options(&browser{}, nil)
	o.Issuer = e.idp.URL() + "/" + e.tid + "/v2.0/" // trailing slash: not the issuer
	h, _ := New(o)
	_, err := h.Token(context.Background())
	if err == nil || !strings.Contains(err.Error(), "discovery") {
		t.Fatalf("err = %v", err)
	}
}

func TestNewRejects(t *testing.T) {
	for _, o := range []Options{
		{},
		{Issuer: "https://login.microsoftonline.com/t/v2.0/.well-known/openid-configuration", ClientID: "c"},
		{Issuer: "https://i", ClientID: "c", TokenType: "jwt"},
		{Issuer: "https://i", ClientID: "c", TokenType: "access_token"},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}

func TestFileStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "gatehouse")
	s := FileStore{Dir: dir}
	if _, err := s.Load("k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("empty load: %v", err)
	}
	in := &Tokens{IDToken: "a.b.c", RefreshToken: "r", IDTokenExpiry: time.Unix(1e9, 0).UTC()}
	if err := s.Save("k", in); err != nil {
		t.Fatal(err)
	}
	out, err := s.Load("k")
	if err != nil || out.IDToken != "a.b.c" || out.RefreshToken != "r" || !out.IDTokenExpiry.Equal(in.IDTokenExpiry) {
		t.Fatalf("round trip: %+v %v", out, err)
	}
	if runtime.GOOS != "windows" {
		st, _ := os.Stat(s.path("k"))
		if st.Mode().Perm() != 0o600 {
			t.Errorf("file mode %v, want 0600", st.Mode().Perm())
		}
		dst, _ := os.Stat(dir)
		if dst.Mode().Perm() != 0o700 {
			t.Errorf("dir mode %v, want 0700", dst.Mode().Perm())
		}
		// A cache file others can read is not trusted.
		os.Chmod(s.path("k"), 0o644)
		if _, err := s.Load("k"); !errors.Is(err, ErrNotFound) {
			t.Errorf("group-readable cache used: %v", err)
		}
		if err := s.Save("k", in); err != nil {
			t.Fatal(err)
		}
		st, _ = os.Stat(s.path("k"))
		if st.Mode().Perm() != 0o600 {
			t.Errorf("after re-save mode %v", st.Mode().Perm())
		}
	}
	os.WriteFile(s.path("bad"), []byte("{not json"), 0o600)
	if _, err := s.Load("bad"); !errors.Is(err, ErrNotFound) {
		t.Errorf("corrupt cache: %v", err)
	}
	if err := s.Delete("k"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("k"); err != nil {
		t.Errorf("second delete: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	for _, en := range entries {
		if strings.HasSuffix(en.Name(), ".tmp") {
			t.Errorf("temporary file left behind: %s", en.Name())
		}
	}
}

func TestCacheKeySeparatesConfigurations(t *testing.T) {
	a := CacheKey("https://i", "c", DefaultScopes, "id_token")
	for _, b := range []string{
		CacheKey("https://i2", "c", DefaultScopes, "id_token"),
		CacheKey("https://i", "c2", DefaultScopes, "id_token"),
		CacheKey("https://i", "c", "openid", "id_token"),
		CacheKey("https://i", "c", DefaultScopes, "access_token"),
	} {
		if a == b {
			t.Error("two configurations share a cache entry")
		}
	}
}

func FuzzParseIDToken(f *testing.F) {
	f.Add("eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwczovL2kiLCJhdWQiOlsiYSIsImIiXSwiZXhwIjoxfQ.c2ln")
	f.Add("a.b.c")
	f.Add("..")
	f.Add("x.eyJhdWQiOjF9.y")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := parseIDToken(tok)
		if err != nil {
			return
		}
		if c == nil {
			t.Fatal("nil claims without error")
		}
	})
}

func TestSystemBrowserHeadless(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("headless detection is Linux-specific")
	}
	get := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	if SystemBrowser(get(nil)) != nil {
		t.Error("an opener without DISPLAY or WAYLAND_DISPLAY")
	}
	if SystemBrowser(get(map[string]string{"DISPLAY": ":0", "GATEHOUSE_NO_BROWSER": "1"})) != nil {
		t.Error("GATEHOUSE_NO_BROWSER ignored")
	}
}

// BenchmarkTokenFromCache is the cost of one apiKeyHelper run that finds a
// valid token in the file cache (no network).
func BenchmarkTokenFromCache(b *testing.B) {
	store := FileStore{Dir: b.TempDir()}
	h, err := New(Options{Issuer: "https://idp.example", ClientID: "c", Store: store})
	if err != nil {
		b.Fatal(err)
	}
	store.Save(h.key, &Tokens{IDToken: strings.Repeat("x", 1500), IDTokenExpiry: time.Now().Add(time.Hour), RefreshToken: strings.Repeat("r", 1000)})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := h.Token(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

func TestRefreshOutageUsesCachedTokenWhileValid(t *testing.T) {
	e := start(t)
	store := &MemoryStore{}
	h, _ := New(e.options(&browser{}, store))
	tok, err := h.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	e.idp.Close() // the IdP becomes unreachable
	e.clk.Add(55 * time.Minute)
	h2, _ := New(e.options(nil, store))
	got, err := h2.Token(context.Background())
	if err != nil || got != tok {
		t.Fatalf("with 5 minutes left: %v", err)
	}
	e.clk.Add(4*time.Minute + 30*time.Second)
	if _, err := h2.Token(context.Background()); err == nil || errors.Is(err, ErrInteractionRequired) {
		t.Fatalf("with 30 s left and no IdP: %v", err)
	}
}

func TestRefreshInteractionRequired(t *testing.T) {
	var iss string
	srv := httptestServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			json.NewEncoder(w).Encode(map[string]string{"issuer": iss, "authorization_endpoint": iss + "/authorize", "token_endpoint": iss + "/token"})
		case "/token":
			w.WriteHeader(400)
			io.WriteString(w, `{"error":"interaction_required","error_description":"AADSTS50076: Due to a configuration change made by your administrator, you must use multi-factor authentication.\r\nTrace ID: x","error_codes":[50076]}`)
		}
	})
	iss = srv
	store := &MemoryStore{}
	h, _ := New(Options{Issuer: iss, ClientID: "c", Store: store})
	store.Save(h.key, &Tokens{IDToken: "a.b.c", IDTokenExpiry: time.Now().Add(time.Minute), RefreshToken: "rt"})
	_, err := h.Token(context.Background())
	if !errors.Is(err, ErrInteractionRequired) {
		t.Fatalf("err = %v", err)
	}
	if _, err := store.Load(h.key); !errors.Is(err, ErrNotFound) {
		t.Error("session kept after interaction_required")
	}
}

// TestConcurrentHelpersSignInOnce: Claude Code may start several helpers at
// once; with a shared file cache only one opens the browser.
func TestConcurrentHelpersSignInOnce(t *testing.T) {
	e := start(t)
	b := &browser{}
	store := FileStore{Dir: t.TempDir()}
	const n = 4
	toks := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			h, _ := New(e.options(b, store))
			toks[i], errs[i] = h.Token(context.Background())
		}(i)
	}
	wg.Wait()
	for i := 0; i < n; i++ {
		if errs[i] != nil || toks[i] != toks[0] {
			t.Fatalf("helper %d: %v (same token: %v)", i, errs[i], toks[i] == toks[0])
		}
	}
	if b.count() != 1 || e.idp.TokenRequests() != 1 {
		t.Errorf("browser opened %d times, %d token requests", b.count(), e.idp.TokenRequests())
	}
	if m, _ := filepath.Glob(filepath.Join(store.Dir, "*.lock")); len(m) != 0 {
		t.Errorf("lock left behind: %v", m)
	}
}

func TestStaleLockIsBroken(t *testing.T) {
	store := FileStore{Dir: t.TempDir()}
	p := filepath.Join(store.Dir, "tokens-k.lock")
	os.WriteFile(p, []byte("1\n"), 0o600)
	old := time.Now().Add(-time.Hour)
	os.Chtimes(p, old, old)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	unlock, err := store.Lock(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	unlock()
	// A fresh lock held by someone else is waited for until the context ends.
	os.WriteFile(p, []byte("1\n"), 0o600)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	if _, err := store.Lock(ctx2, "k"); err == nil {
		t.Error("took a lock another process holds")
	}
}
