package credential

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

// DefaultAuthorityHost is Entra ID's public-cloud authority.
const DefaultAuthorityHost = "https://login.microsoftonline.com/"

var tenantRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.-]{0,253}$`)

// TokenEndpoint returns {authority}/{tenant}/oauth2/v2.0/token.
func TokenEndpoint(authorityHost, tenantID string) (string, error) {
	if authorityHost == "" {
		authorityHost = DefaultAuthorityHost
	}
	u, err := url.Parse(authorityHost)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "", fmt.Errorf("authority host %q is not an absolute https URL", authorityHost)
	}
	if !tenantRE.MatchString(tenantID) {
		return "", fmt.Errorf("tenant id %q is not a GUID or domain name", tenantID)
	}
	return strings.TrimRight(u.String(), "/") + "/" + tenantID + "/oauth2/v2.0/token", nil
}

// entraClientCredentials posts a client_credentials grant; auth adds the
// client authentication (client_secret or client_assertion) per attempt.
func entraClientCredentials(o *TokenOptions, kind, endpoint, clientID, scope string, auth func(form url.Values) error) func(context.Context) (Token, error) {
	source := "Entra token endpoint"
	return func(ctx context.Context) (Token, error) {
		build := func(ctx context.Context) (*http.Request, error) {
			form := url.Values{}
			form.Set("grant_type", "client_credentials")
			form.Set("client_id", clientID)
			form.Set("scope", scope)
			if err := auth(form); err != nil {
				return nil, err
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
			if err != nil {
				return nil, err
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Accept", "application/json")
			return req, nil
		}
		return exchange(ctx, o, kind, source, build, retryEntra)
	}
}

// clientAssertionType is RFC 7523's JWT bearer client assertion type.
const clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
