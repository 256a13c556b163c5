package anthropic

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// Error types of the Anthropic error envelope (contract §7.1).
const (
	InvalidRequestError = "invalid_request_error" // 400
	AuthenticationError = "authentication_error"  // 401
	BillingError        = "billing_error"         // 402
	PermissionError     = "permission_error"      // 403
	NotFoundError       = "not_found_error"       // 404
	RequestTooLarge     = "request_too_large"     // 413
	RateLimitError      = "rate_limit_error"      // 429
	APIError            = "api_error"             // 500, 502, 503
	NotSupportedError   = "not_supported"         // 501
	TimeoutError        = "timeout_error"         // 504
	OverloadedError     = "overloaded_error"      // 529
)

// ErrorBody is the Anthropic error envelope:
//
//	{"type":"error","error":{"type":"...","message":"..."},"request_id":"..."}
type ErrorBody struct {
	Type      string      `json:"type"`
	Error     ErrorDetail `json:"error"`
	RequestID string      `json:"request_id,omitempty"`
}

// ErrorDetail is the inner object of ErrorBody.
type ErrorDetail struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

// TypeForStatus returns the conventional error type for an HTTP status.
func TypeForStatus(status int) string {
	switch status {
	case http.StatusBadRequest:
		return InvalidRequestError
	case http.StatusUnauthorized:
		return AuthenticationError
	case http.StatusPaymentRequired:
		return BillingError
	case http.StatusForbidden:
		return PermissionError
	case http.StatusNotFound:
		return NotFoundError
	case http.StatusRequestEntityTooLarge:
		return RequestTooLarge
	case http.StatusTooManyRequests:
		return RateLimitError
	case http.StatusNotImplemented:
		return NotSupportedError
	case http.StatusGatewayTimeout:
		return TimeoutError
	case 529:
		return OverloadedError
	}
	if status >= 500 {
		return APIError
	}
	return InvalidRequestError
}

// MarshalError renders the envelope. It never fails.
func MarshalError(errType, message, requestID string) []byte {
	b, _ := json.Marshal(ErrorBody{Type: "error", Error: ErrorDetail{Type: errType, Message: message}, RequestID: requestID})
	return b
}

// WriteError writes the envelope with the given status. The request id is
// also sent as the request-id header so users can quote it.
func WriteError(w http.ResponseWriter, status int, errType, message, requestID string) {
	body := MarshalError(errType, message, requestID)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if requestID != "" {
		h.Set("request-id", requestID)
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
