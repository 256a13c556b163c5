package proxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

// Credential injects an upstream credential into an outbound request. The
// upstream credential types (static key, bearer, Azure managed identity)
// satisfy it.
type Credential interface {
	Apply(ctx context.Context, r *http.Request) error
}

// HeaderCredential sets one header to a fixed value: x-api-key for the
// Anthropic API, api-key for Foundry.
type HeaderCredential struct {
	Name  string
	Value string
}

// Apply implements Credential.
func (c HeaderCredential) Apply(_ context.Context, r *http.Request) error {
	r.Header.Set(c.Name, c.Value)
	return nil
}

// Target is one upstream endpoint.
type Target struct {
	Name       string
	BaseURL    *url.URL // e.g. https://x.services.ai.azure.com/anthropic
	Credential Credential
	Client     *http.Client
}

// Route maps a client model to the target and upstream model serving it.
type Route struct {
	Target        *Target
	UpstreamModel string
}

// StaticDispatcher serves each model from one fixed route.
type StaticDispatcher struct {
	Routes map[string]Route // by client model id
}

// Dispatch implements Dispatcher.
func (d *StaticDispatcher) Dispatch(ctx context.Context, out Outbound) (*http.Response, Served, error) {
	rt, ok := d.Routes[out.Request.Model]
	if !ok {
		return nil, Served{}, fmt.Errorf("no route for model %q", out.Request.Model)
	}
	served := Served{Upstream: rt.Target.Name, UpstreamModel: rt.UpstreamModel}
	req, err := NewUpstreamRequest(ctx, rt.Target, out, rt.UpstreamModel)
	if err != nil {
		return nil, served, &UpstreamError{Kind: "credential", Served: served, Err: err}
	}
	resp, err := rt.Target.Client.Do(req)
	if err != nil {
		kind := "unreachable"
		if isTimeout(err) {
			kind = "timeout"
		}
		return nil, served, &UpstreamError{Kind: kind, Served: served, Err: err}
	}
	return resp, served, nil
}

// NewUpstreamRequest builds the outbound request for target: a fixed URL
// (base URL + path, no client query), allowlisted headers, the body with
// only the model value mapped, and the target's credential applied.
func NewUpstreamRequest(ctx context.Context, t *Target, out Outbound, upstreamModel string) (*http.Request, error) {
	body := out.Request.ReplaceModel(out.Body, upstreamModel)
	u := *t.BaseURL
	u.Path = t.BaseURL.Path + out.Path
	u.RawPath, u.RawQuery, u.Fragment = "", "", ""
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header = OutboundHeader(out.Header)
	req.Header.Set("Content-Length", strconv.Itoa(len(body)))
	req.ContentLength = int64(len(body))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	if t.Credential != nil {
		if err := t.Credential.Apply(ctx, req); err != nil {
			return nil, err
		}
	}
	return req, nil
}
