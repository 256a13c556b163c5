package entra

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// GraphCLIClientID is Microsoft's "Microsoft Graph Command Line Tools"
// public client (the one Connect-MgGraph uses), which may request delegated
// Graph scopes such as Application.ReadWrite.All with user or admin consent.
const GraphCLIClientID = "14d82eec-204b-4c2f-b7e8-296a70dab67e"

// GraphScope is the delegated permission app registration needs.
const GraphScope = "https://graph.microsoft.com/Application.ReadWrite.All"

// DeviceCodeOptions configures DeviceCodeToken.
type DeviceCodeOptions struct {
	// LoginURL is the Entra authority host. Default https://login.microsoftonline.com.
	LoginURL string
	// TenantID is the directory to sign in to. Required.
	TenantID string
	// ClientID is the public client used to sign in. Default GraphCLIClientID.
	ClientID string
	// Scope requested. Default GraphScope.
	Scope string
	// Prompt receives the "go to … and enter the code …" instruction.
	Prompt io.Writer
	// HTTPClient: default a client with a 30 s timeout.
	HTTPClient *http.Client
	// Sleep waits between polls. Default a context-aware timer.
	Sleep func(context.Context, time.Duration) error
}

// DeviceCodeToken signs in with the OAuth 2.0 device authorization grant
// (RFC 8628) at the tenant's v2 endpoints and returns the access token.
func DeviceCodeToken(ctx context.Context, o DeviceCodeOptions) (string, error) {
	if o.LoginURL == "" {
		o.LoginURL = "https://login.microsoftonline.com"
	}
	if o.ClientID == "" {
		o.ClientID = GraphCLIClientID
	}
	if o.Scope == "" {
		o.Scope = GraphScope
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if o.Sleep == nil {
		o.Sleep = sleepCtx
	}
	if o.Prompt == nil {
		o.Prompt = io.Discard
	}
	base := strings.TrimSuffix(o.LoginURL, "/") + "/" + url.PathEscape(o.TenantID) + "/oauth2/v2.0"
	var dc struct {
		DeviceCode      string `json:"device_code"`
		UserCode        string `json:"user_code"`
		VerificationURI string `json:"verification_uri"`
		ExpiresIn       int    `json:"expires_in"`
		Interval        int    `json:"interval"`
		Message         string `json:"message"`
	}
	if err := postForm(ctx, o.HTTPClient, base+"/devicecode", url.Values{"client_id": {o.ClientID}, "scope": {o.Scope}}, &dc); err != nil {
		return "", err
	}
	if dc.DeviceCode == "" || dc.UserCode == "" {
		return "", errors.New("the device code response has no device_code or user_code")
	}
	if dc.Message != "" {
		fmt.Fprintln(o.Prompt, dc.Message)
	} else {
		fmt.Fprintf(o.Prompt, "To sign in to Microsoft Graph, open %s and enter the code %s\n", dc.VerificationURI, dc.UserCode)
	}
	interval := time.Duration(dc.Interval) * time.Second
	if interval <= 0 {
		interval = 5 * time.Second
	}
	if dc.ExpiresIn <= 0 {
		dc.ExpiresIn = 900
	}
	polls := int(time.Duration(dc.ExpiresIn)*time.Second/interval) + 1
	for i := 0; i < polls; i++ {
		if err := o.Sleep(ctx, interval); err != nil {
			return "", err
		}
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		err := postForm(ctx, o.HTTPClient, base+"/token", url.Values{
			"grant_type":  {"urn:ietf:params:oauth:grant-type:device_code"},
			"client_id":   {o.ClientID},
			"device_code": {dc.DeviceCode},
		}, &tok)
		var oe *OAuthError
		switch {
		case err == nil && tok.AccessToken != "":
			return tok.AccessToken, nil
		case err == nil:
			return "", errors.New("the token response has no access_token")
		case errors.As(err, &oe) && oe.Code == "authorization_pending":
			continue
		case errors.As(err, &oe) && oe.Code == "slow_down":
			interval += 5 * time.Second
			continue
		default:
			return "", err
		}
	}
	return "", errors.New("the device code expired before sign-in completed")
}

// OAuthError is an RFC 6749 error response ({"error","error_description"}).
type OAuthError struct {
	Status      int
	Code        string `json:"error"`
	Description string `json:"error_description"`
}

func (e *OAuthError) Error() string {
	d, _, _ := strings.Cut(e.Description, "\r\n")
	d, _, _ = strings.Cut(d, " Trace ID:")
	return "Entra sign-in failed: " + e.Code + ": " + firstLine(d)
}

func postForm(ctx context.Context, c *http.Client, u string, form url.Values, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach Entra ID at %s: %w", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		oe := &OAuthError{Status: resp.StatusCode}
		if json.Unmarshal(body, oe) != nil || oe.Code == "" {
			return fmt.Errorf("Entra ID answered HTTP %d at %s", resp.StatusCode, u)
		}
		return oe
	}
	return json.Unmarshal(body, out)
}
