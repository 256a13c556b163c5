// Package profile generates the managed configuration that points Claude
// Desktop and Claude Code at the gateway: macOS .mobileconfig, Windows .reg
// and JSON, as pure functions of an Options value (contract §1.3–§1.7, §2.7).
//
// A profile is non-secret metadata. Generate refuses any input that looks
// like a credential (API keys, JWTs, client secrets, URLs with passwords or
// key-bearing query strings) and any issuer a client would fail on (an Entra
// issuer that does not end at /v2.0, or one carrying a /.well-known path).
package profile

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Client is the application a profile configures.
type Client string

const (
	// Desktop is Claude Desktop (domain com.anthropic.claudefordesktop,
	// HKLM\SOFTWARE\Policies\Claude). Every value is a string.
	Desktop Client = "desktop"
	// Code is Claude Code (domain com.anthropic.claudecode, value Settings
	// under HKLM\SOFTWARE\Policies\ClaudeCode, managed-settings.json).
	Code Client = "code"
)

// Format is the file format of a profile.
type Format string

const (
	// MobileConfig is an Apple configuration profile (XML plist) for Jamf,
	// Intune for macOS or any MDM.
	MobileConfig Format = "mobileconfig"
	// Reg is a regedit-importable .reg file (UTF-16LE with BOM, CRLF).
	Reg Format = "reg"
	// JSON is, for Desktop, the flat key/value set with string values (what
	// Intune or a script writes into the registry or plist, and the Linux
	// /etc/claude-desktop/managed-settings.json); for Code, managed-settings.json.
	JSON Format = "json"
)

// Options is everything a profile depends on. Generate is a pure function of
// it: the same Options always yield the same bytes.
type Options struct {
	// GatewayURL is the gateway's public base URL (https; http only for
	// loopback hosts). Required. No credentials, query or fragment.
	GatewayURL string
	// ClientID is the public-client app registration's client ID. Required.
	// For an Entra issuer it must be a GUID.
	ClientID string
	// Issuer is the OIDC issuer base URL, e.g.
	// https://login.microsoftonline.com/<tenant-id>/v2.0. Required.
	Issuer string
	// Models lists model IDs; the first is the default. Empty: Desktop
	// discovers models through the gateway's /v1/models and Claude Code keeps
	// its own model choice.
	Models []string

	// BearerTokenType selects which token the clients send: "" or "id_token"
	// (Desktop's default; aud = ClientID) or "access_token" (then Scopes is
	// required and must name the gateway API's delegated scope).
	BearerTokenType string
	// Scopes is the space-separated scope list for access-token mode. Empty in
	// id_token mode means the client's default "openid profile email
	// offline_access", which the profile then leaves out.
	Scopes string
	// Broker selects Desktop's OS identity broker flow (WAM, Company Portal)
	// instead of the system browser. Entra only; not supported on Linux.
	Broker bool
	// KeepDeploymentModeChooser leaves Desktop's "sign in to Claude.ai"
	// option visible. Zero value: the profile hides it
	// (disableDeploymentModeChooser=true) so users cannot leave the gateway.
	KeepDeploymentModeChooser bool
	// CustomHeaders are extra non-secret headers on every request
	// (Desktop inferenceCustomHeaders, Claude Code ANTHROPIC_CUSTOM_HEADERS).
	// Credential-bearing header names are refused.
	CustomHeaders map[string]string

	// DesktopHelper, if set, is the absolute path of an executable Claude
	// Desktop runs for its credential (inferenceCredentialKind=helper-script,
	// inferenceCredentialHelper) instead of its own OIDC sign-in. Desktop
	// passes no arguments, so the executable reads its settings from the
	// machine-wide client.json (see docs/profiles.md). Empty: Desktop signs
	// in itself through inferenceGatewayOidc.
	DesktopHelper string

	// HelperCommand is Claude Code's apiKeyHelper: the shell command that
	// prints the user's token. Empty: DefaultHelperCommand for the format.
	HelperCommand string
	// HelperTTLMillis is CLAUDE_CODE_API_KEY_HELPER_TTL_MS. Zero: 300000
	// (5 minutes; the helper caches and refreshes on its own).
	HelperTTLMillis int

	// MCX writes the .mobileconfig in the Jamf "Custom Settings" (MCX) form:
	// a com.apple.ManagedClient.preferences payload holding
	// <domain> → Forced[0] → mcx_preference_settings. Zero value: the settings
	// sit at the top level of a payload whose PayloadType is the domain. Both
	// end up in /Library/Managed Preferences.
	MCX bool

	// RegKeepExisting makes a .reg file add its values to whatever the key
	// already holds. Zero value: the .reg first deletes the key
	// ([-HKEY_LOCAL_MACHINE\...]) so stale values, such as a static API key
	// from an earlier set-up, do not survive.
	RegKeepExisting bool

	// Identifier is the outer PayloadIdentifier of a .mobileconfig. Empty:
	// "dev.gatehouse.profile.<client>".
	Identifier string
	// Organization is PayloadOrganization of a .mobileconfig. Empty: none.
	Organization string
}

// DefaultHelperCommand is the apiKeyHelper command written when
// Options.HelperCommand is empty; the .reg profile uses the Windows path.
func DefaultHelperCommand(f Format, issuer, clientID string) string {
	bin := "/usr/local/bin/gatehouse"
	if f == Reg {
		bin = `"C:\Program Files\Gatehouse\gatehouse.exe"`
	}
	return fmt.Sprintf("%s token --issuer %s --client-id %s", bin, issuer, clientID)
}

// Error is a refusal to generate a profile. Message is safe to show the
// operator; it never repeats a suspected secret.
type Error struct {
	Field   string
	Message string
}

func (e *Error) Error() string {
	if e.Field == "" {
		return "profile: " + e.Message
	}
	return "profile: " + e.Field + ": " + e.Message
}

func refuse(field, format string, args ...any) error {
	return &Error{Field: field, Message: fmt.Sprintf(format, args...)}
}

// Generate renders the profile for client c in format f.
func Generate(c Client, f Format, o Options) ([]byte, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	switch c {
	case Desktop:
		vals, err := desktopValues(o)
		if err != nil {
			return nil, err
		}
		if err := scanSecrets(vals); err != nil {
			return nil, err
		}
		switch f {
		case MobileConfig:
			return mobileconfig(o, c, "com.anthropic.claudefordesktop", vals), nil
		case Reg:
			return reg(`HKEY_LOCAL_MACHINE\SOFTWARE\Policies\Claude`, vals, !o.RegKeepExisting), nil
		case JSON:
			return vals.json(true), nil
		}
	case Code:
		doc, err := codeSettings(o, f)
		if err != nil {
			return nil, err
		}
		if err := scanSecrets(doc); err != nil {
			return nil, err
		}
		switch f {
		case MobileConfig:
			return mobileconfig(o, c, "com.anthropic.claudecode", doc), nil
		case Reg:
			// The whole managed-settings document, compact, in one REG_SZ.
			return reg(`HKEY_LOCAL_MACHINE\SOFTWARE\Policies\ClaudeCode`,
				&dict{keys: []string{"Settings"}, vals: []any{string(doc.json(false))}}, !o.RegKeepExisting), nil
		case JSON:
			return doc.json(true), nil
		}
	default:
		return nil, refuse("client", "unknown client %q (want desktop or code)", c)
	}
	return nil, refuse("format", "unknown format %q (want mobileconfig, reg or json)", f)
}

// FileName is the conventional output name for a profile.
func FileName(c Client, f Format) string {
	switch {
	case c == Code && f == JSON:
		return "managed-settings.json"
	case c == Desktop && f == JSON:
		return "claude-desktop.json"
	case c == Code:
		return "claude-code." + string(f)
	default:
		return "claude-desktop." + string(f)
	}
}

var (
	// safeRE is what may go unquoted into a shell command or a plist.
	safeRE   = regexp.MustCompile(`^[A-Za-z0-9._~:/%+@=-]+$`)
	scopesRE = regexp.MustCompile(`^[A-Za-z0-9._~:/ -]+$`)
	// absPathRE: a Unix absolute path or a Windows drive path, no quotes.
	absPathRE = regexp.MustCompile(`^(/|[A-Za-z]:\\)[^"'\x00-\x1f]*$`)
)

var guidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// IsEntraIssuer reports whether issuer is hosted by Entra ID.
func IsEntraIssuer(issuer string) bool {
	u, err := url.Parse(issuer)
	return err == nil && strings.EqualFold(u.Hostname(), "login.microsoftonline.com")
}

// Validate reports every problem with o at once.
func (o Options) Validate() error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	add(checkURL("gateway-url", o.GatewayURL))
	add(CheckIssuer(o.Issuer))
	switch {
	case strings.TrimSpace(o.ClientID) == "":
		add(refuse("client-id", "is required (the app registration's Application (client) ID)"))
	case looksSecret(o.ClientID):
		add(refuse("client-id", "looks like a secret, not a client ID; a profile carries no secrets"))
	case IsEntraIssuer(o.Issuer) && !guidRE.MatchString(o.ClientID):
		add(refuse("client-id", "an Entra client ID is a GUID (Application (client) ID on the app's Overview page)"))
	case !safeRE.MatchString(o.ClientID):
		add(refuse("client-id", "may contain only letters, digits and . _ ~ : / %% + @ = -"))
	}
	if o.Issuer != "" && !safeRE.MatchString(o.Issuer) {
		// The issuer is written into the apiKeyHelper shell command.
		add(refuse("issuer", "may contain only letters, digits and . _ ~ : / %% + @ = -"))
	}
	seen := map[string]bool{}
	for i, m := range o.Models {
		switch {
		case !safeRE.MatchString(m):
			add(refuse(fmt.Sprintf("model[%d]", i), "must be a model ID without spaces or quotes"))
		case seen[m]:
			add(refuse(fmt.Sprintf("model[%d]", i), "%q is listed twice", m))
		}
		seen[m] = true
	}
	switch o.BearerTokenType {
	case "", "id_token":
	case "access_token":
		if strings.TrimSpace(o.Scopes) == "" {
			add(refuse("scopes", "access_token mode needs the gateway API's scope, e.g. api://<api-app-id>/access_as_user"))
		}
	default:
		add(refuse("bearer-token-type", "must be id_token or access_token"))
	}
	if o.Broker && !IsEntraIssuer(o.Issuer) {
		add(refuse("broker", "the broker flow works only with an Entra issuer"))
	}
	if o.HelperTTLMillis < 0 {
		add(refuse("helper-ttl", "must not be negative"))
	}
	for name, v := range o.CustomHeaders {
		if err := checkHeader(name, v); err != nil {
			add(err)
		}
	}
	if o.DesktopHelper != "" && !absPathRE.MatchString(o.DesktopHelper) {
		add(refuse("desktop-helper", "must be the absolute path of an executable (Desktop passes no arguments), e.g. /usr/local/bin/gatehouse-token"))
	}
	if o.Scopes != "" && !scopesRE.MatchString(o.Scopes) {
		add(refuse("scopes", "may contain only letters, digits, spaces and . _ ~ : / -"))
	}
	for _, s := range []struct{ field, v string }{{"scopes", o.Scopes}, {"helper", o.HelperCommand}, {"desktop-helper", o.DesktopHelper}, {"identifier", o.Identifier}, {"organization", o.Organization}} {
		if looksSecret(s.v) {
			add(refuse(s.field, "contains what looks like a secret; a profile carries no secrets"))
		}
		if !utf8.ValidString(s.v) || strings.IndexFunc(s.v, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
			add(refuse(s.field, "must not contain control characters"))
		}
	}

	return errors.Join(errs...)
}

// CheckIssuer refuses issuers the clients fail on: not an absolute https URL
// (http only on loopback), a /.well-known metadata path, a query, or an Entra
// issuer that does not end at /v2.0.
func CheckIssuer(issuer string) error {
	if err := checkURL("issuer", issuer); err != nil {
		return err
	}
	u, _ := url.Parse(issuer)
	if i := strings.Index(u.Path, "/.well-known"); i >= 0 {
		return refuse("issuer", "must be the issuer base URL, not the metadata URL: remove %q (the client appends /.well-known/openid-configuration itself; pasting it gives \"OIDC discovery failed (HTTP 404)\")", u.Path[i:])
	}
	if IsEntraIssuer(issuer) {
		tid, tail, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
		if tail != "v2.0" {
			return refuse("issuer", "an Entra issuer must end at /v2.0: https://login.microsoftonline.com/<tenant-id>/v2.0")
		}
		switch strings.ToLower(tid) {
		case "common", "organizations", "consumers":
			return refuse("issuer", "use the tenant ID, not %q: tokens carry iss https://login.microsoftonline.com/<tenant-id>/v2.0", tid)
		}
	}
	return nil
}

func checkURL(field, raw string) error {
	if strings.TrimSpace(raw) == "" {
		return refuse(field, "is required")
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return refuse(field, "must be an absolute URL such as https://host/path")
	}
	if u.User != nil {
		return refuse(field, "must not carry a user name or password; a profile carries no secrets")
	}
	if u.RawQuery != "" || u.Fragment != "" || strings.Contains(raw, "?") || strings.Contains(raw, "#") {
		return refuse(field, "must not carry a query or fragment (keys in URLs end up in every log)")
	}
	if strings.ContainsAny(raw, " \t\r\n\"\\<>") {
		return refuse(field, "must not contain spaces, quotes, backslashes or angle brackets")
	}
	if strings.IndexFunc(raw, func(r rune) bool { return r < 0x21 || r > 0x7e }) >= 0 {
		// Profiles are written as XML, registry files and JSON; a URL there
		// is plain ASCII (international host names go in punycode).
		return refuse(field, "must be plain ASCII (write an international host name as punycode, xn--...)")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return refuse(field, "must use https (http is accepted only for 127.0.0.1, ::1 and localhost)")
		}
	default:
		return refuse(field, "must use https")
	}
	return nil
}

func isLoopback(h string) bool {
	return h == "127.0.0.1" || h == "::1" || strings.EqualFold(h, "localhost")
}

var (
	jwtRE    = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.`)
	keyRE    = regexp.MustCompile(`(?i)\b(sk-ant-|sk-[a-z0-9]{16,}|xox[abp]-|ghp_|AKIA[0-9A-Z]{12})`)
	hexKeyRE = regexp.MustCompile(`\b[0-9a-fA-F]{32}\b`) // Azure/APIM keys are 32 hex digits
	// Entra client secrets: 40 characters with a "~" at position 4 (xxx8Q~...).
	entraSecretRE = regexp.MustCompile(`\b[A-Za-z0-9_.\-]{3}8Q~[A-Za-z0-9_.~\-]{34}`)
)

// looksSecret reports whether s carries something shaped like a credential.
func looksSecret(s string) bool {
	return jwtRE.MatchString(s) || keyRE.MatchString(s) || hexKeyRE.MatchString(s) || entraSecretRE.MatchString(s)
}

var headerNameRE = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+.^_`|~-]+$") // RFC 9110 token

var secretHeaders = map[string]bool{
	"authorization": true, "proxy-authorization": true, "x-api-key": true, "api-key": true,
	"ocp-apim-subscription-key": true, "cookie": true, "x-functions-key": true,
}

func checkHeader(name, v string) error {
	field := "header " + name
	ln := strings.ToLower(strings.TrimSpace(name))
	switch {
	case !headerNameRE.MatchString(name):
		return refuse(field, "is not a valid header name")
	case secretHeaders[ln] || strings.Contains(ln, "secret") || strings.Contains(ln, "token") || strings.Contains(ln, "password"):
		return refuse(field, "carries a credential; a profile carries no secrets (users authenticate with their own Entra token)")
	case !utf8.ValidString(v) || strings.IndexFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0:
		return refuse(field, "value must be one line of text without control characters")
	case looksSecret(v):
		return refuse(field, "value looks like a secret; a profile carries no secrets")
	}
	return nil
}

// scanSecrets is the last line of defence: no generated string may look like
// a credential, whatever path it came in by.
func scanSecrets(d *dict) error {
	var buf bytes.Buffer
	d.walkStrings(func(s string) { buf.WriteString(s); buf.WriteByte('\n') })
	if looksSecret(buf.String()) {
		return refuse("", "refusing to write a profile containing what looks like a secret")
	}
	return nil
}
