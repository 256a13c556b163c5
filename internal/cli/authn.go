package cli

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/gatehouse-dev/gatehouse/internal/anthropic"
	"github.com/gatehouse-dev/gatehouse/internal/authn"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/metrics"
	"github.com/gatehouse-dev/gatehouse/internal/server"
)

// authAdapter presents authn.Authenticator as the server's Authenticator,
// turning authn's typed errors into Anthropic-shaped denials.
type authAdapter struct {
	a                *authn.Authenticator
	closeRevocations func() error // stops the revocation snapshot, closes the state store
}

func (ad *authAdapter) Authenticate(ctx context.Context, r *http.Request) (identity.Principal, *server.Denial) {
	p, err := ad.a.Authenticate(ctx, r)
	if err != nil {
		return authDenial(err)
	}
	return p, nil
}

// authDenial turns authn's error into the server's denial. (Out of
// Authenticate, a pointer method, so the path every request takes keeps
// small frames: see proxy.Exchange.)
func authDenial(err error) (identity.Principal, *server.Denial) {
	var ae *authn.Error
	if !errors.As(err, &ae) {
		return identity.Principal{}, &server.Denial{Status: http.StatusUnauthorized, ErrorType: anthropic.AuthenticationError,
			Reason: "invalid_token", Message: "Your sign-in token could not be verified. Sign in again.", Cause: err, Source: "auth"}
	}
	d := &server.Denial{Status: ae.Status, ErrorType: anthropic.TypeForStatus(ae.Status), Reason: ae.Reason, Message: ae.Message, Cause: ae.Cause, Source: "auth"}
	var who identity.Principal
	if ae.Principal != nil {
		who = *ae.Principal // named in the audit record of the refusal only
	}
	if ae.Status == http.StatusUnauthorized {
		// RFC 6750, without the internal reason: clients refresh and retry.
		d.Header = http.Header{"Www-Authenticate": {`Bearer error="invalid_token"`}}
	}
	return who, d
}

func (ad authAdapter) Ready(ctx context.Context) error { return ad.a.Ready(ctx) }
func (ad authAdapter) Close() {
	ad.a.Close()
	if ad.closeRevocations != nil {
		ad.closeRevocations()
	}
}

func buildAuthenticator(ctx context.Context, cfg *config.Config, log *slog.Logger, m *metrics.Metrics) (authAdapter, error) {
	id := cfg.Identity
	revocations, closeRevocations, err := startRevocations(ctx, cfg, log, m)
	if err != nil {
		return authAdapter{}, err
	}
	var ps []authn.Provider
	for _, p := range id.EffectiveProviders() {
		ap := authn.Provider{Name: p.Name, Type: p.Type, Issuer: p.Issuer, Audiences: p.Audiences,
			AllowedTenants: p.AllowedTenants, RequiredRoles: p.RequiredRoles, ClockSkew: p.ClockSkew,
			TokenMode: p.TokenMode, DiscoveryURL: p.DiscoveryURL, JWKSURL: p.JWKSURL,
			Algorithms: p.Algorithms, TokenVersions: p.TokenVersions, V1Issuer: p.V1Issuer,
			MaxLifetime: p.MaxLifetime, AllowedClients: p.AllowedClients, RequiredScopes: p.RequiredScopes,
			UserClaim: p.Claims.User, DisplayClaim: p.Claims.Display, GroupsClaim: p.Claims.Groups, RolesClaim: p.Claims.Roles,
			RequiredGroups: p.RequiredGroups, GroupOverage: p.GroupOverage, BlockGuests: p.BlockGuests}
		for _, r := range p.ClaimRules {
			ap.ClaimRules = append(ap.ClaimRules, authn.ClaimRule{Claim: r.Claim, AnyOf: r.AnyOf, AllOf: r.AllOf})
		}
		if g := p.Graph; g != nil {
			ap.Graph = authn.GraphOptions{BaseURL: g.BaseURL, TokenURL: g.TokenURL, ClientID: g.ClientID, ClientSecret: g.ClientSecret.Value(), Scope: g.Scope}
		}
		ps = append(ps, ap)
	}
	a, err := authn.New(ctx, authn.Options{
		Providers:          ps,
		Revocations:        revocations,
		Logger:             log,
		KeyRefreshCooldown: id.KeyRefreshCooldown,
		MaxTokenAge:        id.MaxTokenAge,
		CacheSize:          id.CacheSize,
	})
	if err != nil {
		closeRevocations()
		return authAdapter{}, err
	}
	return authAdapter{a: a, closeRevocations: closeRevocations}, nil
}
