package doctor

import (
	"context"
	"fmt"
	"net/http"
	"strings"
)

// Credential sets an upstream credential on an outbound request; the
// internal/credential types satisfy it.
type Credential interface {
	Apply(ctx context.Context, r *http.Request) error
}

// UpstreamOptions describes one configured upstream.
type UpstreamOptions struct {
	// Name is the upstream's name; the check is "upstream-<name>".
	Name string
	// Provider is "foundry" or "anthropic" (it picks the fixes offered).
	Provider string
	// BaseURL, e.g. https://<resource>.services.ai.azure.com/anthropic.
	BaseURL string
	// Model is the model (Foundry: deployment) name sent in the probe. It
	// should be one the upstream serves. Empty: claude-sonnet-4-6.
	Model string
	// Credential authenticates the probe. Nil: the check is skipped with
	// CredentialProblem as the reason.
	Credential Credential
	// CredentialKind names the credential in messages: api_key, bearer,
	// managed_identity, workload_identity or service_principal.
	CredentialKind string
	// CredentialProblem says why there is no credential (for example an
	// unresolved ${env:...} reference).
	CredentialProblem string
	// Client sends the probes. Nil: NewHTTPClient(nil).
	Client *http.Client
}

// CheckName turns a name into a check name suffix (lower-kebab-case).
func CheckName(prefix, name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	s := strings.Trim(b.String(), "-")
	for strings.Contains(s, "--") {
		s = strings.ReplaceAll(s, "--", "-")
	}
	if s == "" {
		return prefix
	}
	return prefix + "-" + s
}

// Upstream is "upstream-<name>": the upstream answers and accepts the
// gateway's credential. The probe is POST {base}/v1/messages/count_tokens,
// which generates nothing and costs nothing on the Anthropic API; when it
// answers 404 (Foundry may not serve count_tokens) the check retries with a
// one-token POST {base}/v1/messages (max_tokens 1), so that a 404 there
// means the path or the deployment is wrong. 401/403 mean the credential
// was rejected; network errors mean the upstream is unreachable.
func Upstream(o UpstreamOptions) Check {
	o.Client = clientOr(o.Client)
	if o.Model == "" {
		o.Model = "claude-sonnet-4-6"
	}
	return CheckFunc(CheckName("upstream", o.Name), func(ctx context.Context) Result { return probeUpstream(ctx, o) })
}

func probeUpstream(ctx context.Context, o UpstreamOptions) Result {
	if o.Credential == nil {
		if o.CredentialProblem == "" {
			o.CredentialProblem = "no credential configured"
		}
		return Skipf("not probed: %s", o.CredentialProblem)
	}
	base := strings.TrimRight(o.BaseURL, "/")
	count := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"ping"}]}`, o.Model)
	one := fmt.Sprintf(`{"model":%q,"max_tokens":1,"messages":[{"role":"user","content":"ping"}]}`, o.Model)

	resp, what, r := sendProbe(ctx, o, base+"/v1/messages/count_tokens", count)
	if resp == nil {
		return r
	}
	if resp.status == http.StatusNotFound {
		first := errorMessage(resp.body)
		resp2, what2, r2 := sendProbe(ctx, o, base+"/v1/messages", one)
		if resp2 == nil {
			return r2
		}
		if resp2.status < 300 {
			return Okf("reachable, credential (%s) accepted, model %q served: %s answered %d in %s (count_tokens is not served here: %s)",
				o.CredentialKind, o.Model, what2, resp2.status, roundMS(resp2.elapsed), orNone(first))
		}
		resp, what = resp2, what2
	}
	return classify(o, resp, what)
}

func orNone(s string) string {
	if s == "" {
		return "404"
	}
	return s
}

func sendProbe(ctx context.Context, o UpstreamOptions, url, body string) (*response, string, Result) {
	what := "POST " + url
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return nil, what, Failf("set a valid base_url", "upstream %s: %v", o.Name, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("anthropic-version", "2023-06-01")
	req.Header.Set("User-Agent", userAgent)
	if err := o.Credential.Apply(ctx, req); err != nil {
		return nil, what, Failf(credentialFix(o, 0), "could not obtain the %s credential: %s", o.CredentialKind, sanitize(err.Error(), 300))
	}
	resp, err := do(ctx, o.Client, req)
	if err != nil {
		return nil, what, Failf("check base_url's host name, DNS, the firewall/egress rules (and upstreams[].proxy if egress needs a proxy)",
			"unreachable: %s: %s", what, describeErr(err))
	}
	return resp, what, Result{}
}

func classify(o UpstreamOptions, resp *response, what string) Result {
	msg := errorMessage(resp.body)
	detail := ""
	if msg != "" {
		detail = " (" + msg + ")"
	}
	switch s := resp.status; {
	case s < 300:
		return Okf("reachable, credential (%s) accepted, model %q served: %s answered %d in %s", o.CredentialKind, o.Model, what, s, roundMS(resp.elapsed))
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		return Failf(credentialFix(o, s), "credential rejected: %s answered %d%s", what, s, detail)
	case s == http.StatusNotFound:
		return Failf(notFoundFix(o), "deployment/path not found: %s answered 404%s", what, detail)
	case s == http.StatusTooManyRequests || s == 529:
		return Warnf("nothing to fix in the gateway; the upstream is rate limiting or overloaded right now", "credential (%s) accepted, but %s answered %d%s", o.CredentialKind, what, s, detail)
	case s >= 300 && s < 400:
		return Failf("base_url must be the final URL: the gateway does not follow redirects", "%s redirected (%d) to %s", what, s, sanitize(resp.header.Get("Location"), 200))
	case s < 500:
		return Warnf("the credential works; check the model/deployment name ("+o.Model+") and the upstream's message", "credential (%s) accepted, but %s answered %d%s", o.CredentialKind, what, s, detail)
	default:
		return Warnf("the upstream is failing; retry later, or check its status page", "credential not confirmed: %s answered %d%s", what, s, detail)
	}
}

func credentialFix(o UpstreamOptions, status int) string {
	const role = "grant the gateway's identity the \"Cognitive Services User\" (or \"Foundry User\"/\"Azure AI User\") role on the Foundry resource; Owner and Contributor do not allow inference (role assignments take a few minutes to apply)"
	switch o.CredentialKind {
	case "managed_identity", "workload_identity", "service_principal":
		switch {
		case status == http.StatusForbidden:
			return role
		case status != 0:
			return "check azure.scope (https://ai.azure.com/.default; older resources: https://cognitiveservices.azure.com/.default), then " + role
		case o.CredentialKind == "managed_identity":
			return "enable a managed identity on the VM or container app (set client_id for a user-assigned one); the gateway must reach IDENTITY_ENDPOINT or IMDS (169.254.169.254) directly, not through a proxy"
		case o.CredentialKind == "workload_identity":
			return "label the pod azure.workload.identity/use: \"true\", annotate its service account with azure.workload.identity/client-id, and add a federated credential for the service account to the identity"
		default:
			return "check tenant_id, client_id and the secret or certificate of the service principal"
		}
	case "bearer":
		return "renew the bearer token in upstreams[].auth.bearer"
	}
	if o.Provider == "foundry" {
		return "set api_key to a key of this Foundry resource (Keys and Endpoint page), or switch to azure: managed_identity; a resource with local auth disabled accepts only Entra tokens"
	}
	return "set api_key to a valid Anthropic API key (console.anthropic.com, API keys) and check it has not been revoked"
}

func notFoundFix(o UpstreamOptions) string {
	if o.Provider == "foundry" {
		return fmt.Sprintf("base_url must be https://<resource>.services.ai.azure.com/anthropic (not the project endpoint or cognitiveservices.azure.com), and %q must be the name of a deployment on that resource (upstream_model)", o.Model)
	}
	return fmt.Sprintf("base_url must be the API root (https://api.anthropic.com, without /v1), and %q a model the key may use", o.Model)
}
