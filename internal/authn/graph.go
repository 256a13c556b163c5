package authn

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// GraphOptions configures group-overage resolution through Microsoft
// Graph with the gateway's own app-only credentials (client credentials
// grant). The URL in a token's _claim_sources is never used.
type GraphOptions struct {
	// BaseURL of Microsoft Graph. Default "https://graph.microsoft.com/v1.0".
	BaseURL string
	// TokenURL is the client-credentials token endpoint; "{tenantid}" is
	// replaced by the user's tid. Default
	// "https://login.microsoftonline.com/{tenantid}/oauth2/v2.0/token".
	TokenURL string
	// ClientID and ClientSecret of the gateway's app registration (needs
	// the GroupMember.Read.All or Directory.Read.All application permission).
	ClientID, ClientSecret string
	// Scope requested for the app token. Default
	// "https://graph.microsoft.com/.default".
	Scope string
}

const maxGraphBody = 4 << 20

type graphClient struct {
	opts   GraphOptions
	client *http.Client
	now    func() time.Time

	mu     sync.Mutex
	tokens map[string]appToken // by tenant
}

type appToken struct {
	value string
	until time.Time
}

func newGraphClient(o GraphOptions, c *http.Client, now func() time.Time) *graphClient {
	if o.BaseURL == "" {
		o.BaseURL = "https://graph.microsoft.com/v1.0"
	}
	o.BaseURL = strings.TrimRight(o.BaseURL, "/")
	if o.TokenURL == "" {
		o.TokenURL = "https://login.microsoftonline.com/{tenantid}/oauth2/v2.0/token"
	}
	if o.Scope == "" {
		o.Scope = "https://graph.microsoft.com/.default"
	}
	return &graphClient{opts: o, client: c, now: now, tokens: map[string]appToken{}}
}

func (g *graphClient) appToken(ctx context.Context, tid string) (string, error) {
	g.mu.Lock()
	t, ok := g.tokens[tid]
	g.mu.Unlock()
	if ok && g.now().Before(t.until) {
		return t.value, nil
	}
	form := url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {g.opts.ClientID},
		"client_secret": {g.opts.ClientSecret},
		"scope":         {g.opts.Scope},
	}
	u := strings.ReplaceAll(g.opts.TokenURL, "{tenantid}", url.PathEscape(tid))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	var out struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
		Error       string `json:"error"`
	}
	status, err := g.do(req, &out)
	if err != nil {
		return "", fmt.Errorf("graph app token: %w", err)
	}
	if status != http.StatusOK || out.AccessToken == "" {
		return "", fmt.Errorf("graph app token: status %d error %q", status, out.Error)
	}
	ttl := time.Duration(out.ExpiresIn)*time.Second - time.Minute
	if ttl < time.Minute {
		ttl = time.Minute
	}
	g.mu.Lock()
	g.tokens[tid] = appToken{value: out.AccessToken, until: g.now().Add(ttl)}
	g.mu.Unlock()
	return out.AccessToken, nil
}

// memberObjects calls POST /users/{oid}/getMemberObjects and returns the
// IDs of every group (and directory role) the user is a member of,
// transitively.
func (g *graphClient) memberObjects(ctx context.Context, tid, oid string) ([]string, error) {
	tok, err := g.appToken(ctx, tid)
	if err != nil {
		return nil, err
	}
	u := g.opts.BaseURL + "/users/" + url.PathEscape(oid) + "/getMemberObjects"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader([]byte(`{"securityEnabledOnly":false}`)))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	var out struct {
		Value []string `json:"value"`
		Error *struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	status, err := g.do(req, &out)
	if err != nil {
		return nil, fmt.Errorf("graph getMemberObjects: %w", err)
	}
	if status == http.StatusUnauthorized {
		g.mu.Lock()
		delete(g.tokens, tid)
		g.mu.Unlock()
	}
	if status != http.StatusOK {
		code := ""
		if out.Error != nil {
			code = out.Error.Code
		}
		return nil, fmt.Errorf("graph getMemberObjects: status %d %s", status, code)
	}
	return out.Value, nil
}

func (g *graphClient) do(req *http.Request, v any) (int, error) {
	req.Header.Set("Accept", "application/json")
	resp, err := g.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxGraphBody+1))
	if err != nil {
		return resp.StatusCode, err
	}
	if len(b) > maxGraphBody {
		return resp.StatusCode, errTooLarge
	}
	if len(b) > 0 {
		_ = json.Unmarshal(b, v) // error bodies may not be JSON; status decides
	}
	return resp.StatusCode, nil
}
