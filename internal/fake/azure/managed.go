package azure

import (
	"log/slog"
	"net/http"
	"strconv"
	"strings"
)

// imdsError is IMDS's documented error body.
type imdsError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

func imdsDefaultBody(status int) any {
	switch status {
	case http.StatusNotFound:
		return imdsError{"not_found", "The requested resource was not found (IMDS is updating; retry)."}
	case http.StatusGone:
		return imdsError{"gone", "IMDS is being updated; retry with exponential back-off."}
	case http.StatusTooManyRequests:
		return imdsError{"too_many_requests", "Too many requests: the IMDS rate limit was reached."}
	case http.StatusBadRequest:
		return imdsError{"invalid_request", "Identity not found"}
	}
	return imdsError{"unknown", "Failed to retrieve token from the Active directory. For details see logs in C:\\WindowsAzure\\Logs\\Plugins\\Microsoft.Identity.MSI\\"}
}

// selectIdentity applies IMDS's rules: an explicit client_id must be
// attached; otherwise the system-assigned identity, or the only
// user-assigned one.
func (s *Server) selectIdentity(clientID, resourceID string) (string, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if clientID != "" && resourceID != "" {
		return "", "Only one of client_id, object_id or msi_res_id may be specified"
	}
	if clientID != "" {
		if _, ok := s.userMI[clientID]; ok || clientID == s.systemMI {
			return clientID, ""
		}
		return "", "Identity not found"
	}
	if resourceID != "" {
		for id, res := range s.userMI {
			if res != "" && strings.EqualFold(res, resourceID) {
				return id, ""
			}
		}
		return "", "Identity not found"
	}
	if s.systemMI != "" {
		return s.systemMI, ""
	}
	switch len(s.userMI) {
	case 0:
		return "", "Identity not found"
	case 1:
		for id := range s.userMI {
			return id, ""
		}
	}
	return "", "Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request"
}

// handleIMDS serves GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=...
func (s *Server) handleIMDS(w http.ResponseWriter, r *http.Request) {
	if s.begin(IMDS, w, r, imdsDefaultBody) {
		return
	}
	bad := func(desc string) { writeJSON(w, http.StatusBadRequest, imdsError{"invalid_request", desc}) }
	switch {
	case r.Method != http.MethodGet:
		writeJSON(w, http.StatusMethodNotAllowed, imdsError{"invalid_request", "The requested method is not allowed."})
		return
	case r.Header.Get("Metadata") != "true":
		bad("Required metadata header not specified")
		return
	case r.Header.Get("X-Forwarded-For") != "":
		bad("Request contains X-Forwarded-For header; requests through a proxy are refused")
		return
	}
	q := r.URL.Query()
	if q.Get("api-version") == "" {
		bad("Required query variable 'api-version' is missing")
		return
	}
	if q.Get("api-version") != "2018-02-01" && q.Get("api-version") != "2019-08-01" {
		bad("Invalid api-version '" + q.Get("api-version") + "'")
		return
	}
	resource := q.Get("resource")
	if resource == "" {
		bad("Required audience variable missing.")
		return
	}
	id, why := s.selectIdentity(q.Get("client_id"), q.Get("msi_res_id"))
	if id == "" {
		bad(why)
		return
	}
	res := strings.TrimRight(resource, "/")
	tok, exp := s.issue(Grant{Method: "imds", ClientID: id, Resource: res})
	now := s.o.Now()
	in := strconv.FormatInt(int64(exp.Sub(now).Seconds()), 10)
	s.o.Logger.Info("fake azure: IMDS token issued", slog.String("client_id", id), slog.String("resource", res))
	// IMDS sends every number as a string.
	writeJSON(w, http.StatusOK, map[string]string{
		"access_token":   tok,
		"refresh_token":  "",
		"client_id":      id,
		"expires_in":     in,
		"expires_on":     strconv.FormatInt(exp.Unix(), 10),
		"ext_expires_in": in,
		"not_before":     strconv.FormatInt(now.Unix(), 10),
		"resource":       resource,
		"token_type":     "Bearer",
	})
}

// appServiceError is the App Service identity endpoint's error body.
type appServiceError struct {
	StatusCode    int    `json:"statusCode"`
	Message       string `json:"message"`
	CorrelationID string `json:"correlationId"`
}

func appServiceDefaultBody(status int) any {
	msg := "An unexpected error occured while fetching the AAD Token."
	switch status {
	case http.StatusTooManyRequests:
		msg = "Too many requests."
	case http.StatusBadRequest:
		msg = "Unable to load the proper Managed Identity."
	}
	return appServiceError{status, msg, randomHex(8)}
}

// handleAppService serves GET $IDENTITY_ENDPOINT?resource=...&api-version=2019-08-01
// with X-IDENTITY-HEADER.
func (s *Server) handleAppService(w http.ResponseWriter, r *http.Request) {
	if s.begin(AppService, w, r, appServiceDefaultBody) {
		return
	}
	fail := func(status int, msg string) {
		writeJSON(w, status, appServiceError{status, msg, randomHex(8)})
	}
	if r.Method != http.MethodGet {
		fail(http.StatusMethodNotAllowed, "The requested method is not allowed.")
		return
	}
	if h := r.Header.Get("X-IDENTITY-HEADER"); h == "" || h != s.IdentityHeader() {
		fail(http.StatusUnauthorized, "The X-IDENTITY-HEADER header is missing or does not match IDENTITY_HEADER.")
		return
	}
	q := r.URL.Query()
	if q.Get("api-version") != "2019-08-01" {
		fail(http.StatusBadRequest, "The api-version '"+q.Get("api-version")+"' is not supported; use 2019-08-01.")
		return
	}
	resource := q.Get("resource")
	if resource == "" {
		fail(http.StatusBadRequest, "The resource parameter is required.")
		return
	}
	id, why := s.selectIdentity(q.Get("client_id"), q.Get("mi_res_id"))
	if id == "" {
		fail(http.StatusBadRequest, why)
		return
	}
	res := strings.TrimRight(resource, "/")
	tok, exp := s.issue(Grant{Method: "app_service", ClientID: id, Resource: res})
	s.o.Logger.Info("fake azure: App Service token issued", slog.String("client_id", id), slog.String("resource", res))
	writeJSON(w, http.StatusOK, map[string]string{
		"access_token": tok,
		"expires_on":   strconv.FormatInt(exp.Unix(), 10),
		"resource":     resource,
		"token_type":   "Bearer",
		"client_id":    id,
	})
}
