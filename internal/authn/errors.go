package authn

import (
	"fmt"
	"net/http"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

// Error is an authentication or authorisation failure. Status and Reason
// are for the HTTP layer and the audit record; Message is safe to show the
// user (it says what to do and reveals nothing about the gateway); Cause is
// the detailed error for logs. Neither Message nor Cause ever contains the
// raw token.
type Error struct {
	// Status is 401 (the credential is missing, invalid or revoked: clients
	// refresh and retry), 403 (a valid user who is not allowed), or 503 for
	// the two reasons that are the gateway's fault: keys_unavailable and
	// groups_unavailable.
	Status  int
	Reason  string // one of the Reason* constants
	Message string
	Cause   error
	// Principal is the verified identity when the token itself was good
	// but access is refused (revoked), so the denial can name the user in
	// the audit trail. It never authorises anything.
	Principal *identity.Principal
	// TokenSHA256 is the hex SHA-256 of the refused token when one was
	// extracted ("" otherwise): log a prefix of it, never the token.
	TokenSHA256 string
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("authn: %s: %v", e.Reason, e.Cause)
	}
	return "authn: " + e.Reason
}

func (e *Error) Unwrap() error { return e.Cause }

// The closed set of reasons. Every Error carries exactly one.
const (
	ReasonMissingCredential   = "missing_credential"    // 401 no Authorization: Bearer / x-api-key
	ReasonAmbiguousCredential = "ambiguous_credential"  // 401 two different tokens, or a header sent twice
	ReasonMalformedToken      = "malformed_token"       // 401 not a compact JWS/JWT, oversize, bad base64/JSON, duplicate or case-variant members, wrong claim types
	ReasonUnsupportedAlg      = "unsupported_algorithm" // 401 alg not allowed (none, HS*, unexpected algs)
	ReasonForbiddenHeader     = "forbidden_header"      // 401 jku, x5u, jwk, x5c, crit, b64, zip, enc, cty, nonce, unknown members, wrong typ
	ReasonWrongIssuer         = "wrong_issuer"          // 401 iss is not a configured issuer (exact match)
	ReasonWrongAudience       = "wrong_audience"        // 401 aud not ours, or an aud array without azp = ours
	ReasonWrongTokenType      = "wrong_token_type"      // 401 ID token where an access token is required or vice versa
	ReasonUnsupportedVersion  = "unsupported_version"   // 401 Entra ver not accepted (v1 unless configured)
	ReasonTenantNotAllowed    = "tenant_not_allowed"    // 401 tid not allowed, not a GUID, not the issuer's, or the consumer tenant
	ReasonTokenExpired        = "token_expired"         // 401 exp passed (beyond clock skew) or missing
	ReasonTokenNotYetValid    = "token_not_yet_valid"   // 401 nbf or iat in the future
	ReasonTokenTooOld         = "token_too_old"         // 401 now - iat above the maximum token age, or exp - iat above the maximum lifetime
	ReasonMissingClaim        = "missing_claim"         // 401 a claim the user key needs (oid, tid, sub, iat) is missing or empty
	ReasonUnknownKey          = "unknown_key"           // 401 kid not in the issuer's key set (after a permitted refresh), or ambiguous
	ReasonBadSignature        = "bad_signature"         // 401 signature does not verify with the issuer's key
	ReasonRevoked             = "revoked"               // 401 the Revocations hook refused the user or token
	ReasonMissingRole         = "missing_role"          // 403 none of the required app roles
	ReasonMissingScope        = "missing_scope"         // 403 access-token mode: none of the required scopes
	ReasonPolicyNotSatisfied  = "policy_not_satisfied"  // 403 a claim requirement (amr mfa, acrs, device) failed
	ReasonGuestNotAllowed     = "guest_not_allowed"     // 403 guest account while guests are blocked
	ReasonGroupOverage        = "group_overage"         // 403 too many groups to fit in the token and overage is set to deny
	ReasonMissingGroup        = "missing_group"         // 403 none of the required groups
	ReasonKeysUnavailable     = "keys_unavailable"      // 503 the issuer's keys could not be loaded yet
	ReasonGroupsUnavailable   = "groups_unavailable"    // 503 the Graph lookup for an overage token failed
)

// Reasons lists every reason code, for documentation and tests.
var Reasons = []string{
	ReasonMissingCredential, ReasonAmbiguousCredential, ReasonMalformedToken, ReasonUnsupportedAlg,
	ReasonForbiddenHeader, ReasonWrongIssuer, ReasonWrongAudience, ReasonWrongTokenType,
	ReasonUnsupportedVersion, ReasonTenantNotAllowed, ReasonTokenExpired, ReasonTokenNotYetValid,
	ReasonTokenTooOld, ReasonMissingClaim, ReasonUnknownKey, ReasonBadSignature, ReasonRevoked,
	ReasonMissingRole, ReasonMissingScope, ReasonPolicyNotSatisfied, ReasonGuestNotAllowed,
	ReasonGroupOverage, ReasonMissingGroup, ReasonKeysUnavailable, ReasonGroupsUnavailable,
}

const (
	msgSignIn  = "Your sign-in token was not accepted. Sign in again; if this keeps happening, ask your administrator to check the gateway's identity settings."
	msgExpired = "Your sign-in has expired. Sign in again."
)

var reasonInfo = map[string]struct {
	status int
	msg    string
}{
	ReasonMissingCredential:   {401, "No credential was sent. Sign in with your organisation account and send the token as 'Authorization: Bearer <token>' (or 'x-api-key')."},
	ReasonAmbiguousCredential: {401, "The request carried more than one different credential. Send exactly one token, in 'Authorization: Bearer' or 'x-api-key'."},
	ReasonMalformedToken:      {401, "The credential is not a valid sign-in token. Sign in with your organisation account and send the token it issues."},
	ReasonUnsupportedAlg:      {401, msgSignIn},
	ReasonForbiddenHeader:     {401, msgSignIn},
	ReasonWrongIssuer:         {401, "The sign-in token comes from an identity provider this gateway does not trust. Sign in with your organisation account."},
	ReasonWrongAudience:       {401, "The sign-in token was issued for a different application. Sign in to this gateway's application and try again."},
	ReasonWrongTokenType:      {401, "This kind of token is not accepted here. Ask your administrator which token the gateway expects (ID token or access token)."},
	ReasonUnsupportedVersion:  {401, "The sign-in token version is not accepted. Ask your administrator to check the app registration's token version."},
	ReasonTenantNotAllowed:    {401, "Your organisation (tenant) is not allowed to use this gateway. Sign in with an account from an allowed organisation."},
	ReasonTokenExpired:        {401, msgExpired},
	ReasonTokenNotYetValid:    {401, "Your sign-in token is not valid yet. Check your computer's clock, then sign in again."},
	ReasonTokenTooOld:         {401, msgExpired},
	ReasonMissingClaim:        {401, "The sign-in token lacks required user information. Ask your administrator to check the app registration (the token must identify the user)."},
	ReasonUnknownKey:          {401, msgSignIn},
	ReasonBadSignature:        {401, msgSignIn},
	ReasonRevoked:             {401, "Your access has been revoked. Contact your administrator."},
	ReasonMissingRole:         {403, "You are signed in, but you are not assigned a role that allows using Claude through this gateway. Ask your administrator for access."},
	ReasonMissingScope:        {403, "Your token does not carry the permission (scope) this gateway requires. Sign in again so the client requests it, or ask your administrator."},
	ReasonPolicyNotSatisfied:  {403, "Your sign-in does not meet your organisation's access policy (for example multi-factor authentication or a compliant device). Sign in again meeting the policy."},
	ReasonGuestNotAllowed:     {403, "Guest accounts are not allowed to use this gateway. Sign in with an account of the organisation."},
	ReasonGroupOverage:        {403, "You are a member of too many groups for the gateway to check your access. Ask your administrator to assign access by app role."},
	ReasonMissingGroup:        {403, "You are signed in, but not a member of a group that allows using Claude through this gateway. Ask your administrator for access."},
	ReasonKeysUnavailable:     {503, "The gateway cannot verify sign-ins right now. Try again in a minute."},
	ReasonGroupsUnavailable:   {503, "The gateway cannot check your group membership right now. Try again in a minute."},
}

// fail builds an Error for reason with a formatted cause.
func fail(reason string, format string, args ...any) *Error {
	info, ok := reasonInfo[reason]
	if !ok {
		panic("authn: unknown reason " + reason)
	}
	return &Error{Status: info.status, Reason: reason, Message: info.msg, Cause: fmt.Errorf(format, args...)}
}

// StatusText returns the Anthropic error type for an Error's status:
// authentication_error (401), permission_error (403), api_error (503).
func (e *Error) StatusText() string {
	switch e.Status {
	case http.StatusUnauthorized:
		return "authentication_error"
	case http.StatusForbidden:
		return "permission_error"
	}
	return "api_error"
}
