package upstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/anthropic"
	"github.com/gatehouse-dev/gatehouse/internal/proxy"
)

// Dispatcher implements proxy.Dispatcher on a Router: it routes by the
// request's model and affinity key, builds each attempt's request (fixed
// URL, allowlisted headers via proxy.OutboundHeader, body with only the
// model value replaced) and sends it with failover. (Keep-alive pings on
// silent streams are the proxy's: proxy.Options.KeepAlive.)
type Dispatcher struct {
	Router *Router
}

var _ proxy.Dispatcher = (*Dispatcher)(nil)

// Dispatch implements proxy.Dispatcher. Failures map onto
// proxy.UpstreamError kinds "timeout", "credential" and "unreachable". When
// every route is skipped (retry-after pending, or every circuit open with
// Breaker.Strict), it answers itself with an Anthropic-shaped 429
// rate_limit_error or 503 overloaded_error carrying retry-after, which the
// proxy relays like an upstream answer.
func (d *Dispatcher) Dispatch(ctx context.Context, out proxy.Outbound) (*http.Response, proxy.Served, error) {
	cands, ok := d.Router.Candidates(out.Request.Model, out.Affinity)
	if !ok {
		return nil, proxy.Served{}, &proxy.UpstreamError{Kind: "unreachable", Err: fmt.Errorf("no route for model %q", out.Request.Model)}
	}
	resp, c, fails, err := d.Router.Send(ctx, cands, func(c Candidate) (*http.Request, error) {
		body := out.Request.ReplaceModel(out.Body, c.UpstreamModel)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Target.URL(out.Path).String(), bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header = proxy.OutboundHeader(out.Header)
		req.ContentLength = int64(len(body))
		req.Header.Set("Content-Length", strconv.Itoa(len(body)))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		return req, nil
	})
	served := proxy.Served{Failed: FailureSummary(fails)}
	if c.Target != nil {
		served.Upstream, served.UpstreamModel = c.Target.Name(), c.UpstreamModel
	}
	if err != nil {
		var se *SendError
		if !errors.As(err, &se) {
			return nil, served, err // the client went away, or a request could not be built
		}
		switch se.Kind {
		case KindUnavailable:
			return unavailableResponse(se), served, nil
		case KindTimeout:
			return nil, served, &proxy.UpstreamError{Kind: "timeout", Served: served, Err: err}
		case KindCredential:
			return nil, served, &proxy.UpstreamError{Kind: "credential", Served: served, Err: err}
		}
		return nil, served, &proxy.UpstreamError{Kind: "unreachable", Served: served, Err: err}
	}
	return resp, served, nil
}

// FailureSummary renders failures for audit and logs: "name: 529",
// "name: timeout (connect or first byte)", "name: circuit open".
func FailureSummary(fails []Failure) []string {
	if len(fails) == 0 {
		return nil
	}
	out := make([]string, len(fails))
	for i, f := range fails {
		if f.Status != 0 {
			out[i] = f.Upstream + ": " + strconv.Itoa(f.Status)
		} else {
			out[i] = f.Upstream + ": " + f.Reason
		}
	}
	return out
}

func unavailableResponse(se *SendError) *http.Response {
	status, typ := se.Status()
	msg := "All upstream model providers are temporarily unavailable. Please retry shortly."
	if se.RateLimited {
		msg = "The upstream model providers are rate limiting this gateway. Please retry after the indicated time."
	}
	body := anthropic.MarshalError(typ, msg, "")
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if se.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int((se.RetryAfter+time.Second-1)/time.Second)))
	}
	return &http.Response{
		Status: strconv.Itoa(status) + " " + http.StatusText(status), StatusCode: status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)),
	}
}
