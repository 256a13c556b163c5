package cli

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/gatehouse-dev/gatehouse/internal/anthropic"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/limits"
	"github.com/gatehouse-dev/gatehouse/internal/metrics"
	"github.com/gatehouse-dev/gatehouse/internal/server"
)

// admitAdapter presents the limits engine as the server's Admitter.
type admitAdapter struct {
	e   *limits.Engine
	m   *metrics.Metrics
	log *slog.Logger
}

func (a *admitAdapter) Admit(ctx context.Context, p identity.Principal, req server.AdmitRequest) (server.Admission, *server.Denial) {
	r, err := a.e.Admit(ctx, p, limits.Request{
		Model: req.Model, Upstream: req.Upstream, MaxTokens: req.MaxTokens, Stream: req.Stream,
		EstimatedInputTokens: limits.EstimateInputTokens(req.BodyBytes),
	})
	if err != nil {
		return nil, a.denial(err)
	}
	if sd := r.ShadowDenial(); sd != nil {
		a.m.LimitDenial(sd.Rule, sd.Policy, "shadow")
	}
	return r, nil
}

// denial turns the engine's refusal into the server's (out of Admit so the
// path every request takes keeps small frames: see proxy.Exchange).
func (a *admitAdapter) denial(err error) *server.Denial {
	var d *limits.Denial
	if !errors.As(err, &d) {
		return &server.Denial{Status: http.StatusServiceUnavailable, ErrorType: anthropic.APIError, Reason: "limits_unavailable",
			Message: "The gateway cannot check usage limits right now. Please retry shortly.", Cause: err}
	}
	a.m.LimitDenial(d.Rule, d.Policy, "enforce")
	return &server.Denial{Status: d.Status, ErrorType: d.ErrorType, Reason: "limit_" + d.Rule, Message: d.Message, Header: d.Headers, Policy: d.Policy}
}

func (a *admitAdapter) AllowedModels(p identity.Principal, all []string) []string {
	return a.e.AllowedModels(p, all)
}

var _ server.Admission = (*limits.Reservation)(nil)
