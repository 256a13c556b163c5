package authn

import (
	"bytes"
	"encoding/base64"
	"strconv"
	"strings"

	josejson "github.com/go-jose/go-jose/v4/json"
)

const (
	maxHeaderJSON = 4 << 10 // decoded JOSE header cap
	maxKIDLen     = 128
	maxNumericDay = 99999999999 // NumericDate upper bound (year 5138)
)

// supportedAlgs is every alg any provider may be configured with. HS*,
// none and EdDSA are never accepted.
var supportedAlgs = map[string]bool{
	"RS256": true, "RS384": true, "RS512": true,
	"PS256": true, "PS384": true, "PS512": true,
	"ES256": true, "ES384": true, "ES512": true,
}

// allowedHeader is the closed set of JOSE header members a token may carry.
// Everything else is refused, in particular jku, x5u, jwk, x5c (key-source
// injection), crit, b64, zip, enc, cty (unsupported semantics) and nonce
// (Microsoft Graph tokens, unverifiable by third parties).
var allowedHeader = map[string]bool{"alg": true, "kid": true, "typ": true, "x5t": true, "x5t#S256": true}

// token is a structurally valid, not yet verified compact JWS whose header
// passed the gateway's rules and whose payload is a strict JSON object.
type token struct {
	raw     string
	alg     string
	kid     string
	typ     string
	payload []byte
	claims  map[string]josejson.RawMessage

	iss      string
	aud      []string
	audArray bool
	exp      int64
	nbf      int64
	iat      int64
	hasExp   bool
	hasNbf   bool
	hasIat   bool
}

// ParseToken is the pre-parser: it checks the token's shape and header
// before any key lookup or network I/O, and decodes the payload claims
// strictly (duplicate members, case-variant member names, wrong claim
// types and oversize input are refused). It verifies nothing
// cryptographically.
func parseToken(raw string) (*token, *Error) {
	t, p, err := parseJWS(raw)
	if err != nil {
		return nil, err
	}
	if err := t.parsePayload(p); err != nil {
		return nil, err
	}
	return t, nil
}

// parseJWS checks the compact JWS shape and the header; it leaves the
// payload segment p undecoded.
func parseJWS(raw string) (t *token, p string, e *Error) {
	if len(raw) > MaxTokenBytes {
		return nil, "", fail(ReasonMalformedToken, "token longer than %d bytes", MaxTokenBytes)
	}
	if raw == "" || raw[0] == '{' {
		return nil, "", fail(ReasonMalformedToken, "not a compact JWS")
	}
	h, rest, ok1 := strings.Cut(raw, ".")
	p, s, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.IndexByte(s, '.') >= 0 {
		return nil, "", fail(ReasonMalformedToken, "compact JWS must have exactly three segments")
	}
	if h == "" || p == "" || s == "" {
		return nil, "", fail(ReasonMalformedToken, "empty JWS segment")
	}
	if base64.RawURLEncoding.DecodedLen(len(h)) > maxHeaderJSON {
		return nil, "", fail(ReasonMalformedToken, "header longer than %d bytes", maxHeaderJSON)
	}
	hb, err := b64decode(h)
	if err != nil {
		return nil, "", fail(ReasonMalformedToken, "header: %v", err)
	}
	if _, err := b64decode(s); err != nil {
		return nil, "", fail(ReasonMalformedToken, "signature: %v", err)
	}
	var hdr map[string]josejson.RawMessage
	if err := strictObject(hb, &hdr); err != nil {
		return nil, "", fail(ReasonMalformedToken, "header: %v", err)
	}
	for name := range hdr {
		if !allowedHeader[name] {
			return nil, "", fail(ReasonForbiddenHeader, "header member %q is not allowed", truncate(name, 32))
		}
	}
	t = &token{raw: raw}
	alg, ok, err := rawString(hdr, "alg")
	if err != nil || !ok {
		return nil, "", fail(ReasonUnsupportedAlg, "header alg missing or not a string")
	}
	if !supportedAlgs[alg] {
		return nil, "", fail(ReasonUnsupportedAlg, "alg %q not accepted", truncate(alg, 16))
	}
	t.alg = alg
	kid, ok, err := rawString(hdr, "kid")
	if err != nil || !ok || !validKID(kid) {
		return nil, "", fail(ReasonMalformedToken, "header kid missing or not [A-Za-z0-9_-]{1,%d}", maxKIDLen)
	}
	t.kid = kid
	typ, ok, err := rawString(hdr, "typ")
	if err != nil {
		return nil, "", fail(ReasonForbiddenHeader, "header typ is not a string")
	}
	if ok {
		switch strings.ToLower(typ) {
		case "jwt", "at+jwt", "application/at+jwt":
			t.typ = strings.ToLower(typ)
		default:
			return nil, "", fail(ReasonForbiddenHeader, "header typ %q not accepted", truncate(typ, 32))
		}
	}
	return t, p, nil
}

// parsePayload decodes the payload segment strictly and reads the
// registered claims every check needs.
func (t *token) parsePayload(p string) *Error {
	pb, err := b64decode(p)
	if err != nil {
		return fail(ReasonMalformedToken, "payload: %v", err)
	}
	t.payload = pb
	if err := strictObject(pb, &t.claims); err != nil {
		return fail(ReasonMalformedToken, "payload: %v", err)
	}
	var ok bool
	if t.iss, ok, err = rawString(t.claims, "iss"); err != nil || !ok || t.iss == "" {
		return fail(ReasonWrongIssuer, "iss missing or not a string")
	}
	if err := t.parseAud(); err != nil {
		return err
	}
	for _, d := range []struct {
		name string
		v    *int64
		has  *bool
	}{{"exp", &t.exp, &t.hasExp}, {"nbf", &t.nbf, &t.hasNbf}, {"iat", &t.iat, &t.hasIat}} {
		v, ok, err := rawNumericDate(t.claims, d.name)
		if err != nil {
			return fail(ReasonMalformedToken, "%s: %v", d.name, err)
		}
		*d.v, *d.has = v, ok
	}
	return nil
}

func (t *token) parseAud() *Error {
	raw, ok := t.claims["aud"]
	if !ok {
		return fail(ReasonWrongAudience, "aud missing")
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '[' {
		var a []string
		if err := josejson.Unmarshal(raw, &a); err != nil || len(a) == 0 {
			return fail(ReasonMalformedToken, "aud is not a non-empty array of strings")
		}
		for _, s := range a {
			if s == "" {
				return fail(ReasonMalformedToken, "aud array holds an empty string")
			}
		}
		t.aud, t.audArray = a, true
		return nil
	}
	var s string
	if err := josejson.Unmarshal(raw, &s); err != nil || s == "" {
		return fail(ReasonMalformedToken, "aud is not a string or array of strings")
	}
	t.aud = []string{s}
	return nil
}

// str returns a string claim; ok is false when absent; a non-string value
// is an error.
func (t *token) str(name string) (string, bool, *Error) {
	v, ok, err := rawString(t.claims, name)
	if err != nil {
		return "", false, fail(ReasonMalformedToken, "claim %s is not a string", name)
	}
	return v, ok, nil
}

// strs returns a claim that is an array of strings or a space-separated
// string (scp in Entra, amr-like lists elsewhere).
func (t *token) strs(name string) ([]string, *Error) {
	raw, ok := t.claims[name]
	if !ok {
		return nil, nil
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := josejson.Unmarshal(raw, &s); err != nil {
			return nil, fail(ReasonMalformedToken, "claim %s: %v", name, err)
		}
		return strings.Fields(s), nil
	}
	if string(raw) == "null" {
		return nil, nil
	}
	var a []string
	if err := josejson.Unmarshal(raw, &a); err != nil {
		return nil, fail(ReasonMalformedToken, "claim %s is not a string or an array of strings", name)
	}
	return a, nil
}

// scalar returns a claim as text for claim requirements: strings as they
// are, numbers and booleans in their JSON form, arrays element-wise.
func (t *token) scalar(name string) []string {
	raw, ok := t.claims[name]
	if !ok {
		return nil
	}
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0:
		return nil
	case raw[0] == '"':
		var s string
		if josejson.Unmarshal(raw, &s) == nil {
			return []string{s}
		}
	case raw[0] == '[':
		var a []josejson.RawMessage
		if josejson.Unmarshal(raw, &a) != nil {
			return nil
		}
		var out []string
		for _, e := range a {
			var s string
			if josejson.Unmarshal(e, &s) == nil {
				out = append(out, s)
			} else if e = bytes.TrimSpace(e); len(e) > 0 && e[0] != '{' && e[0] != '[' {
				out = append(out, string(e))
			}
		}
		return out
	case raw[0] == '{':
		return nil
	default:
		return []string{string(raw)} // number, true, false, null
	}
	return nil
}

func strictObject(b []byte, v *map[string]josejson.RawMessage) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return errNotObject
	}
	if !shallow(b, maxJSONDepth) {
		return errTooDeep
	}
	if err := josejson.Unmarshal(b, v); err != nil {
		return err
	}
	// Member names that differ only in case would be merged by
	// case-insensitive JSON decoders (encoding/json): refuse them.
	seen := make(map[string]struct{}, len(*v))
	for k := range *v {
		l := strings.ToLower(k)
		if _, dup := seen[l]; dup {
			return errCaseVariant
		}
		seen[l] = struct{}{}
	}
	return nil
}

type parseError string

func (e parseError) Error() string { return string(e) }

const (
	errNotObject   = parseError("not a JSON object")
	errCaseVariant = parseError("member names differ only in case")
	errBase64      = parseError("not unpadded base64url")
	errTooDeep     = parseError("JSON nested too deeply")
)

// maxJSONDepth bounds nesting in headers and payloads; real tokens use 3.
const maxJSONDepth = 16

// shallow reports whether the JSON text b nests arrays and objects at most
// max deep (strings are skipped, escapes honoured). It runs before any
// decoding so deep input costs O(n) and no recursion.
func shallow(b []byte, max int) bool {
	depth, inStr, esc := 0, false, false
	for _, c := range b {
		switch {
		case inStr:
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
		case c == '"':
			inStr = true
		case c == '[' || c == '{':
			depth++
			if depth > max {
				return false
			}
		case c == ']' || c == '}':
			depth--
		}
	}
	return true
}

func b64decode(s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return nil, errBase64
		}
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, errBase64
	}
	return b, nil
}

func rawString(m map[string]josejson.RawMessage, name string) (string, bool, error) {
	raw, ok := m[name]
	if !ok {
		return "", false, nil
	}
	var s string
	if err := josejson.Unmarshal(raw, &s); err != nil {
		return "", false, err
	}
	return s, true, nil
}

// rawNumericDate reads an integer NumericDate in (0, maxNumericDay].
// Strings, fractions, exponents, negatives and huge values are refused.
func rawNumericDate(m map[string]josejson.RawMessage, name string) (int64, bool, error) {
	raw, ok := m[name]
	if !ok {
		return 0, false, nil
	}
	s := string(bytes.TrimSpace(raw))
	if s == "" || len(s) > 11 {
		return 0, false, parseError("not an integer NumericDate in range")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false, parseError("not an integer NumericDate")
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v <= 0 || v > maxNumericDay {
		return 0, false, parseError("NumericDate out of range")
	}
	return v, true, nil
}

func validKID(k string) bool {
	if k == "" || len(k) > maxKIDLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
