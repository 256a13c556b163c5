package authn

import (
	"net/http"
	"strings"
)

// MaxTokenBytes caps a credential before any parsing (security.md §2 row 22).
const MaxTokenBytes = 16 << 10

// ExtractCredential returns the one credential a request carries, following
// contract §2.3 and decision D4:
//
//   - It reads "Authorization: Bearer <token>" (scheme case-insensitive) and
//     "x-api-key: <token>". The query string is never read.
//   - A header sent more than once is refused (ambiguous_credential).
//   - Both headers with the same value are one credential (Claude Code's
//     apiKeyHelper sends both).
//   - A value that is not JWT-shaped (a placeholder such as "dummy", or a
//     non-Bearer Authorization scheme) is ignored when the other header
//     holds a JWT-shaped value.
//   - Two different JWT-shaped values are refused (ambiguous_credential).
//   - No value at all is missing_credential; only non-JWT values (the
//     first non-empty one is reported) is malformed_token.
func ExtractCredential(h http.Header) (string, *Error) {
	authz := h.Values("Authorization")
	keys := h.Values("X-Api-Key")
	if len(authz) > 1 || len(keys) > 1 {
		return "", fail(ReasonAmbiguousCredential, "header sent more than once (Authorization %d, x-api-key %d)", len(authz), len(keys))
	}
	var bearer, apiKey string
	bearerIsToken := true
	if len(authz) == 1 {
		v := strings.TrimSpace(authz[0])
		scheme, rest, ok := strings.Cut(v, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			bearer = strings.TrimLeft(rest, " ")
		} else if v != "" {
			// Another scheme (Basic, Negotiate) or a bare value: never a
			// token we accept, but it must not block a valid x-api-key.
			bearer, bearerIsToken = v, false
		}
	}
	if len(keys) == 1 {
		apiKey = strings.TrimSpace(keys[0])
	}
	if len(bearer) > MaxTokenBytes || len(apiKey) > MaxTokenBytes {
		return "", fail(ReasonMalformedToken, "credential longer than %d bytes", MaxTokenBytes)
	}
	switch {
	case bearer == "" && apiKey == "":
		return "", fail(ReasonMissingCredential, "no Authorization: Bearer or x-api-key header")
	case bearerIsToken && bearer == apiKey:
		return bearer, nil
	case apiKey == "" && bearerIsToken:
		return bearer, nil // the only credential; the parser judges it
	case bearer == "":
		return apiKey, nil
	}
	// Two different values: prefer the JWT-shaped one.
	bj := bearerIsToken && jwtShaped(bearer)
	kj := jwtShaped(apiKey)
	switch {
	case bj && kj:
		return "", fail(ReasonAmbiguousCredential, "Authorization and x-api-key carry different tokens")
	case bj:
		return bearer, nil
	case kj:
		return apiKey, nil
	case !bearerIsToken && apiKey != "":
		return apiKey, nil // not JWT-shaped: the parser reports malformed_token
	}
	return "", fail(ReasonMalformedToken, "no JWT-shaped credential in Authorization or x-api-key")
}

// jwtShaped reports whether s looks like a compact JWS: three non-empty
// base64url segments separated by exactly two dots. It is a cheap structural
// test used only to choose between headers, never to accept anything.
func jwtShaped(s string) bool {
	if len(s) < 5 || len(s) > MaxTokenBytes {
		return false
	}
	dots, seg := 0, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.':
			if seg == 0 {
				return false
			}
			dots++
			seg = 0
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
			seg++
		default:
			return false
		}
	}
	return dots == 2 && seg > 0
}
