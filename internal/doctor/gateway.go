package doctor

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// GatewayOptions describes the running gateway to probe.
type GatewayOptions struct {
	// Candidates are base URLs tried in order (public_url, then the listen
	// address); the first that answers /healthz is probed.
	Candidates []string
	// Required makes an unreachable gateway a failure (--url); otherwise
	// the gateway checks are skipped (--config with no gateway running).
	Required bool
	// Token is a user token for the authenticated checks (--token). Empty:
	// token-accepted is skipped.
	Token string
	// Model is a model ID placed in probe bodies. Empty: claude-sonnet-4-6.
	Model string
	// ModelsDeadline is how fast /v1/models must answer. Zero: 3s (Claude
	// Desktop delays its launch by up to 10 s on a hanging /v1/models).
	ModelsDeadline time.Duration
	// Client sends the probes. Nil: NewHTTPClient(nil).
	Client *http.Client
}

// Gateway holds the gateway checks; the base URL is resolved once.
type Gateway struct {
	o    GatewayOptions
	once sync.Once
	base string
	miss Result
}

// NewGateway returns the gateway checks' shared state.
func NewGateway(o GatewayOptions) *Gateway {
	o.Client = clientOr(o.Client)
	if o.Model == "" {
		o.Model = "claude-sonnet-4-6"
	}
	if o.ModelsDeadline <= 0 {
		o.ModelsDeadline = 3 * time.Second
	}
	return &Gateway{o: o}
}

// Checks returns gateway-health, models-endpoint, no-token-refused,
// api-key-refused, subscription-key-refused and token-accepted.
func (g *Gateway) Checks() []Check {
	return []Check{
		CheckFunc("gateway-health", g.health),
		CheckFunc("models-endpoint", g.models),
		CheckFunc("no-token-refused", g.noToken),
		CheckFunc("api-key-refused", g.apiKey),
		CheckFunc("subscription-key-refused", g.subscriptionKey),
		CheckFunc("token-accepted", g.tokenAccepted),
	}
}

// resolve finds the first candidate answering /healthz (any status).
func (g *Gateway) resolve(ctx context.Context) (string, Result) {
	g.once.Do(func() {
		var tried []string
		for _, c := range g.o.Candidates {
			if c == "" {
				continue
			}
			c = strings.TrimRight(c, "/")
			cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			_, err := get(cctx, g.o.Client, c+"/healthz", nil)
			cancel()
			if err == nil {
				g.base = c
				return
			}
			tried = append(tried, c+" ("+describeErr(err)+")")
		}
		if len(tried) == 0 {
			g.miss = Skipf("no gateway URL: set public_url or pass --url")
			return
		}
		if g.o.Required {
			g.miss = Failf("check the URL, DNS and that the gateway is running and exposed (ingress, Service, firewall)", "gateway not reachable: %s", strings.Join(tried, "; "))
			return
		}
		g.miss = Skipf("no gateway answered at %s; start it (gatehouse serve) and re-run, or use --url", strings.Join(tried, ", "))
	})
	return g.base, g.miss
}

func (g *Gateway) health(ctx context.Context) Result {
	base, r := g.resolve(ctx)
	if base == "" {
		return r
	}
	return g.healthAt(ctx, base)
}

// target is resolve for every check but gateway-health, which alone
// explains a missing gateway.
func (g *Gateway) target(ctx context.Context) (string, Result) {
	base, r := g.resolve(ctx)
	if base == "" {
		r.Message = "no gateway to probe (see gateway-health)"
		r.Fix = "see gateway-health"
	}
	return base, r
}

func (g *Gateway) healthAt(ctx context.Context, base string) Result {
	h, err := get(ctx, g.o.Client, base+"/healthz", nil)
	if err != nil {
		return Failf("check that the gateway is running", "GET %s/healthz: %s", base, describeErr(err))
	}
	if h.status != http.StatusOK {
		return Failf("put the gateway itself at this URL (a proxy in front may be answering), and serve /healthz unauthenticated", "GET %s/healthz answered %d", base, h.status)
	}
	rd, err := get(ctx, g.o.Client, base+"/readyz", nil)
	if err != nil {
		return Failf("check the gateway log", "GET %s/readyz: %s", base, describeErr(err))
	}
	if rd.status != http.StatusOK {
		return Failf("fix what /readyz lists (see the gateway log): usually the identity provider's keys or the audit store",
			"%s/readyz answered %d: %s", base, rd.status, sanitize(string(rd.body), 300))
	}
	return Okf("%s/healthz and /readyz answer 200", base)
}

func (g *Gateway) models(ctx context.Context) Result {
	base, r := g.target(ctx)
	if base == "" {
		return r
	}
	hdr := http.Header{}
	if g.o.Token != "" {
		hdr.Set("Authorization", "Bearer "+g.o.Token)
	}
	cctx, cancel := context.WithTimeout(ctx, g.o.ModelsDeadline)
	defer cancel()
	start := time.Now()
	resp, err := get(cctx, g.o.Client, base+"/v1/models?limit=1000", hdr)
	if err != nil {
		if cctx.Err() != nil && ctx.Err() == nil {
			return Failf("find what makes /v1/models slow (the gateway serves it from its configuration; a proxy or WAF in front may be holding it); Claude Desktop delays its launch by up to 10 s while it waits",
				"GET /v1/models did not answer within %s", g.o.ModelsDeadline)
		}
		return Failf("check that the gateway is running", "GET %s/v1/models: %s", base, describeErr(err))
	}
	took := roundMS(time.Since(start))
	switch {
	case resp.status == http.StatusNotFound:
		return Failf("serve /v1/models (Gatehouse does, from models:), or turn model discovery off in the profiles and list full model IDs",
			"GET /v1/models answered 404 in %s: Claude Desktop logs \"Gateway /v1/models returned HTTP 404\" at each launch", took)
	case g.o.Token == "" && resp.status == http.StatusUnauthorized:
		return Okf("GET /v1/models answered 401 (no token) in %s, within %s; pass --token to check the list", took, g.o.ModelsDeadline)
	case g.o.Token == "":
		return Okf("GET /v1/models answered %d (no token) in %s, within %s", resp.status, took, g.o.ModelsDeadline)
	case resp.status != http.StatusOK:
		return Failf("see token-accepted", "GET /v1/models with the token answered %d in %s%s", resp.status, took, bodyHint(resp.body))
	}
	ids, err := modelIDs(resp.body)
	if err != nil {
		return Failf("serve the Anthropic list shape {\"data\":[{\"type\":\"model\",\"id\":...}]}", "GET /v1/models: %v", err)
	}
	var hidden []string
	for _, id := range ids {
		l := strings.ToLower(id)
		if !strings.Contains(l, "claude") && !strings.Contains(l, "anthropic") {
			hidden = append(hidden, id)
		}
	}
	if len(ids) == 0 {
		return Failf("list at least one model under models:", "GET /v1/models answered 200 in %s with no models", took)
	}
	if len(hidden) > 0 {
		return Warnf("give these models IDs containing \"claude\", or list them in the profiles' inferenceModels", "Claude Code keeps only IDs containing \"claude\" or \"anthropic\"; it would hide %s", strings.Join(hidden, ", "))
	}
	return Okf("GET /v1/models answered 200 in %s with %d models: %s", took, len(ids), strings.Join(ids, ", "))
}

func modelIDs(body []byte) ([]string, error) {
	var l struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &l); err != nil || l.Data == nil {
		return nil, fmt.Errorf("the body is not a model list")
	}
	ids := make([]string, 0, len(l.Data))
	for _, m := range l.Data {
		ids = append(ids, sanitize(m.ID, 80))
	}
	return ids, nil
}

// probe is one request a gateway must refuse.
type probe struct {
	method, path string
	header       http.Header
	note         string // shown after the request, e.g. "(x-api-key)"
}

func (g *Gateway) body(path string) string {
	if strings.HasSuffix(path, "count_tokens") || strings.Contains(path, "count_tokens?") {
		return fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"gatehouse doctor probe"}]}`, g.o.Model)
	}
	return fmt.Sprintf(`{"model":%q,"max_tokens":1,"messages":[{"role":"user","content":"gatehouse doctor probe"}]}`, g.o.Model)
}

// refused sends every probe and requires 401 from each: a 2xx means the
// request was served without our token (a bypass), anything else that the
// gateway did not refuse it for the right reason.
func (g *Gateway) refused(ctx context.Context, what string, probes []probe, fix string) Result {
	base, r := g.target(ctx)
	if base == "" {
		return r
	}
	var served, other, forbidden, ok []string
	for _, p := range probes {
		var body *strings.Reader
		if p.method == http.MethodPost {
			body = strings.NewReader(g.body(p.path))
		} else {
			body = strings.NewReader("")
		}
		req, err := http.NewRequestWithContext(ctx, p.method, base+p.path, body)
		if err != nil {
			return Failf("pass a valid gateway URL", "%v", err)
		}
		req.Header.Set("User-Agent", userAgent)
		req.Header.Set("anthropic-version", "2023-06-01")
		if p.method == http.MethodPost {
			req.Header.Set("Content-Type", "application/json")
		}
		for k, v := range p.header {
			req.Header[k] = v
		}
		resp, err := do(ctx, g.o.Client, req)
		shown, _, _ := strings.Cut(p.path, "?")
		label := p.method + " " + shown
		if p.note != "" {
			label += " (" + p.note + ")"
		}
		if err != nil {
			other = append(other, fmt.Sprintf("%s: %s", label, describeErr(err)))
			continue
		}
		switch {
		case resp.status == http.StatusUnauthorized:
			ok = append(ok, label)
		case resp.status == http.StatusForbidden:
			forbidden = append(forbidden, label)
		case resp.status < 300:
			served = append(served, fmt.Sprintf("%s answered %d", label, resp.status))
		default:
			other = append(other, fmt.Sprintf("%s answered %d%s", label, resp.status, bodyHint(resp.body)))
		}
	}
	switch {
	case len(served) > 0:
		return Failf(fix, "BYPASS: a request %s was served: %s", what, strings.Join(served, "; "))
	case len(other) > 0:
		return Failf(fix, "a request %s was not refused with 401: %s", what, strings.Join(other, "; "))
	case len(forbidden) > 0:
		return Warnf("answer 401 (not 403) when the token is missing or invalid: Claude Code and Desktop refresh their token only on 401",
			"a request %s was refused, but with 403: %s", what, strings.Join(forbidden, ", "))
	}
	return Okf("a request %s is refused with 401 (%s)", what, strings.Join(ok, ", "))
}

func (g *Gateway) noToken(ctx context.Context) Result {
	probes := []probe{{method: http.MethodGet, path: "/v1/models"}}
	for _, p := range []string{"/v1/messages", "/v1/messages/count_tokens"} {
		probes = append(probes, probe{method: http.MethodPost, path: p})
	}
	return g.refused(ctx, "without a token", probes,
		"the gateway must validate a token on every model route: remove any auth bypass, and make sure the URL reaches Gatehouse and not the upstream directly")
}

// Probe credentials: well-formed, obviously not real.
const (
	probeAPIKey          = "sk-ant-api03-gatehouse-doctor-probe-not-a-real-key-000000000000000000000000AA"
	probeSubscriptionKey = "0123456789abcdef0123456789abcdef"
)

func (g *Gateway) apiKey(ctx context.Context) Result {
	probes := []probe{
		{method: http.MethodPost, path: "/v1/messages", header: http.Header{"X-Api-Key": {probeAPIKey}}, note: "x-api-key"},
		{method: http.MethodPost, path: "/v1/messages", header: http.Header{"Authorization": {"Bearer " + probeAPIKey}}, note: "Bearer"},
		{method: http.MethodGet, path: "/v1/models", header: http.Header{"X-Api-Key": {probeAPIKey}}, note: "x-api-key"},
	}
	return g.refused(ctx, "with a plain API key (sk-ant-…)", probes,
		"the gateway must accept only tokens from your identity provider and never pass a client's API key upstream")
}

func (g *Gateway) subscriptionKey(ctx context.Context) Result {
	probes := []probe{
		{method: http.MethodPost, path: "/v1/messages", header: http.Header{"Ocp-Apim-Subscription-Key": {probeSubscriptionKey}}, note: "Ocp-Apim-Subscription-Key"},
		{method: http.MethodPost, path: "/v1/messages?subscription-key=" + probeSubscriptionKey, note: "subscription-key query"},
		{method: http.MethodGet, path: "/v1/models", header: http.Header{"Ocp-Apim-Subscription-Key": {probeSubscriptionKey}}, note: "Ocp-Apim-Subscription-Key"},
	}
	return g.refused(ctx, "with an APIM-style subscription key", probes,
		"no subscription-key path may lead to the models: in API Management turn \"Subscription required\" off and validate the Entra token; with Gatehouse, make sure the URL reaches Gatehouse")
}

func (g *Gateway) tokenAccepted(ctx context.Context) Result {
	if g.o.Token == "" {
		return Skipf("no --token given (or GATEHOUSE_DOCTOR_TOKEN); pass a user's token, e.g. from `gatehouse token`, to check an authenticated request")
	}
	base, r := g.target(ctx)
	if base == "" {
		return r
	}
	resp, err := get(ctx, g.o.Client, base+"/v1/models", http.Header{"Authorization": {"Bearer " + g.o.Token}})
	if err != nil {
		return Failf("check that the gateway is running", "GET %s/v1/models: %s", base, describeErr(err))
	}
	switch resp.status {
	case http.StatusOK:
		return Okf("a request with the token is accepted (GET /v1/models answered 200)")
	case http.StatusUnauthorized:
		return Failf("get a fresh token (gatehouse token); if it still fails, compare the token's iss and aud with identity.issuer and identity.audiences (see the gateway log for the reason)",
			"the token was refused with 401%s", bodyHint(resp.body))
	case http.StatusForbidden:
		return Failf("assign the user an app role listed in identity.required_roles (Entra: Enterprise applications → Users and groups), or check the policies",
			"the token was accepted but the user is not allowed (403)%s", bodyHint(resp.body))
	}
	return Failf("see the gateway log", "GET /v1/models with the token answered %d%s", resp.status, bodyHint(resp.body))
}
