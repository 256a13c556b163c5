package config

import (
	"fmt"
	"net/url"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// State configures the gateway's shared state store (revocations today):
// an embedded SQLite file on one machine, or PostgreSQL shared by every
// replica. See docs/revocation.md.
type State struct {
	// SQLite is the database file used when Postgres is not set. Default:
	// gatehouse-state.db next to audit.sqlite.
	SQLite string `yaml:"sqlite,omitempty"`
	// Postgres is a PostgreSQL connection string, written as a secret
	// reference (${env:NAME} or ${file:/path}) or literally when it holds
	// no password. Setting it makes PostgreSQL the state store.
	Postgres DSN `yaml:"postgres,omitempty"`
	// PostgresSchema holds the tables (created if missing). Default public.
	PostgresSchema string `yaml:"postgres_schema,omitempty"`
}

// Revocation configures revocation enforcement (docs/revocation.md). The
// maximum token age is identity.max_token_age.
type Revocation struct {
	// PollInterval: how often each gateway reads the store's change
	// counter. Default 1s (with PostgreSQL, changes also arrive at once by
	// LISTEN/NOTIFY).
	PollInterval time.Duration `yaml:"poll_interval,omitempty"`
	// ReloadInterval: how often the whole list is reloaded regardless.
	// Default 1m.
	ReloadInterval time.Duration `yaml:"reload_interval,omitempty"`
	// FailClosedAfter: refuse every request when the state store has been
	// unreadable for this long. 0 (default): keep enforcing the
	// revocations last loaded.
	FailClosedAfter time.Duration `yaml:"fail_closed_after,omitempty"`
	// EntraSync copies users' accountEnabled and
	// signInSessionsValidFromDateTime from Microsoft Graph into revocations.
	EntraSync EntraSync `yaml:"entra_sync,omitempty"`
}

// EntraSync configures the optional Microsoft Graph sync (app-only,
// client-credentials; the app needs the User.Read.All application
// permission).
type EntraSync struct {
	// Enabled turns the sync on.
	Enabled bool `yaml:"enabled,omitempty"`
	// TenantID is the directory whose users are polled. Default: the
	// tenant in identity.issuer.
	TenantID string `yaml:"tenant_id,omitempty"`
	// ClientID of the app registration the gateway signs in as.
	ClientID string `yaml:"client_id,omitempty"`
	// ClientSecret of that app (a secret reference).
	ClientSecret Secret `yaml:"client_secret,omitempty"`
	// AuthorityHost: default https://login.microsoftonline.com.
	AuthorityHost string `yaml:"authority_host,omitempty"`
	// GraphURL: default https://graph.microsoft.com.
	GraphURL string `yaml:"graph_url,omitempty"`
	// Interval between two polls of every recently seen user. Default 1m.
	Interval time.Duration `yaml:"interval,omitempty"`
	// ForgetAfter: users not seen for this long are no longer polled.
	// Default 24h.
	ForgetAfter time.Duration `yaml:"forget_after,omitempty"`
	// AppID: the gateway's app (client) ID. When set, its service
	// principal's accountEnabled is polled too and false refuses everyone
	// (needs Application.Read.All). Default: off.
	AppID string `yaml:"app_id,omitempty"`
	// FailClosedAfter: refuse the tenant's users when Graph has not been
	// read successfully for this long. 0 (default): off.
	FailClosedAfter time.Duration `yaml:"fail_closed_after,omitempty"`
}

// DSN is a connection string: a secret reference resolved at load like
// every Secret, or a literal without a password.
type DSN struct {
	Secret  `yaml:",inline"`
	literal string
}

// NewDSN builds a literal DSN (tests, the demo).
func NewDSN(literal string) DSN { return DSN{literal: literal} }

// Value is the connection string to use.
func (d DSN) Value() string {
	if d.literal != "" {
		return d.literal
	}
	return d.Secret.Value()
}

// IsZero reports an unset DSN.
func (d DSN) IsZero() bool { return d.literal == "" && d.Secret.IsZero() }

// IsSet reports a configured DSN.
func (d DSN) IsSet() bool { return !d.IsZero() }

func (d DSN) String() string {
	if d.literal != "" {
		return redactDSN(d.literal)
	}
	return d.Secret.String()
}

// MarshalYAML shows the reference, or the literal with any password
// redacted.
func (d DSN) MarshalYAML() (any, error) { return d.String(), nil }

// MarshalJSON like MarshalYAML.
func (d DSN) MarshalJSON() ([]byte, error) { return []byte(fmt.Sprintf("%q", d.String())), nil }

// UnmarshalYAML takes ${env:NAME}/${file:/path} as a secret reference and
// anything else as a literal DSN.
func (d *DSN) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: a connection string must be a string", n.Line)
	}
	v := strings.TrimSpace(n.Value)
	if strings.HasPrefix(v, "${") {
		return d.Secret.UnmarshalYAML(n)
	}
	d.literal = v
	return nil
}

// dsnHasPassword reports a password in a URL (postgres://u:p@h) or
// key=value (password=...) connection string.
func dsnHasPassword(s string) bool {
	if u, err := url.Parse(s); err == nil && u.Scheme != "" {
		if _, ok := u.User.Password(); ok {
			return true
		}
		return u.Query().Get("password") != ""
	}
	return regexp.MustCompile(`(?i)(^|\s)password\s*=`).MatchString(s)
}

func redactDSN(s string) string {
	if u, err := url.Parse(s); err == nil && u.Scheme != "" {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "REDACTED")
		}
		if q := u.Query(); q.Get("password") != "" {
			q.Set("password", "REDACTED")
			u.RawQuery = q.Encode()
		}
		return u.String()
	}
	return regexp.MustCompile(`(?i)(password\s*=\s*)\S+`).ReplaceAllString(s, "${1}REDACTED")
}

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,39}$`)

// applyStateDefaults fills state: and revocation: defaults. Idempotent.
func (c *Config) applyStateDefaults(s *State, r *Revocation) {
	if s.SQLite == "" {
		dir := "."
		if c.Audit.SQLite != "" {
			dir = filepath.Dir(c.Audit.SQLite)
		}
		s.SQLite = filepath.Join(dir, "gatehouse-state.db")
	}
	if s.PostgresSchema == "" {
		s.PostgresSchema = "public"
	}
	if r.PollInterval == 0 {
		r.PollInterval = time.Second
	}
	if r.ReloadInterval == 0 {
		r.ReloadInterval = time.Minute
	}
	es := &r.EntraSync
	if es.Enabled {
		if es.TenantID == "" {
			es.TenantID = EntraTenantFromIssuer(c.Identity.Issuer)
		}
		if es.AuthorityHost == "" {
			es.AuthorityHost = "https://login.microsoftonline.com"
		}
		if es.GraphURL == "" {
			es.GraphURL = "https://graph.microsoft.com"
		}
		if es.Interval == 0 {
			es.Interval = time.Minute
		}
		if es.ForgetAfter == 0 {
			es.ForgetAfter = 24 * time.Hour
		}
	}
}

func (s *State) validate(v *validator) {
	if s.Postgres.literal != "" {
		if dsnHasPassword(s.Postgres.literal) {
			v.add("postgres", "holds a password: write it as ${env:NAME} or ${file:/path}, never literally in the file")
		} else if u, err := url.Parse(s.Postgres.literal); err == nil && u.Scheme != "" && u.Scheme != "postgres" && u.Scheme != "postgresql" {
			v.add("postgres", "must be a postgres:// URL or key=value connection string")
		}
	}
	if !schemaName.MatchString(s.PostgresSchema) {
		v.add("postgres_schema", "%q must be lower-case letters, digits and _ (at most 40)", s.PostgresSchema)
	}
}

func (r *Revocation) validate(v *validator) {
	if r.PollInterval < 100*time.Millisecond || r.PollInterval > 5*time.Second {
		v.add("poll_interval", "must be between 100ms and 5s (revocations must take effect within 5s)")
	}
	if r.ReloadInterval < time.Second || r.ReloadInterval > time.Hour {
		v.add("reload_interval", "must be between 1s and 1h")
	}
	if r.FailClosedAfter < 0 {
		v.add("fail_closed_after", "must not be negative")
	}
	es := r.EntraSync
	if !es.Enabled {
		return
	}
	ev := v.at("entra_sync")
	if es.TenantID == "" {
		ev.add("tenant_id", "is required (or use an Entra issuer in identity.issuer)")
	}
	if es.ClientID == "" {
		ev.add("client_id", "is required (the app registration with the User.Read.All application permission)")
	}
	if !es.ClientSecret.IsSet() {
		ev.add("client_secret", "is required, as ${env:NAME} or ${file:/path}")
	}
	for _, f := range []struct{ name, val string }{{"authority_host", es.AuthorityHost}, {"graph_url", es.GraphURL}} {
		if _, err := parseURL(f.val, false); err != nil {
			ev.add(f.name, "%v", err)
		}
	}
	if es.Interval < 10*time.Second && es.Interval != 0 {
		ev.add("interval", "must be at least 10s (Graph throttles)")
	}
	if es.ForgetAfter < es.Interval {
		ev.add("forget_after", "must be at least the interval")
	}
	if es.FailClosedAfter != 0 && es.FailClosedAfter < 2*es.Interval {
		ev.add("fail_closed_after", "must be 0 (off) or at least twice the interval")
	}
	if es.AppID != "" && !isGUIDString(es.AppID) {
		ev.add("app_id", "%q is not an application (client) ID", es.AppID)
	}
}

// validateState reports state: and revocation: problems.
func (c *Config) validateState(v *validator, s *State, r *Revocation) {
	s.validate(v.at("state"))
	r.validate(v.at("revocation"))
}

// StateSettings returns the state: and revocation: sections with defaults
// applied, and their problems. It reads the Config fields State and
// Revocation when the schema carries them (otherwise: defaults, i.e.
// SQLite next to the audit database and no Entra sync).
func (c *Config) StateSettings() (State, Revocation, error) {
	var s State
	var r Revocation
	cv := reflect.ValueOf(c).Elem()
	if f := cv.FieldByName("State"); f.IsValid() && f.Type() == reflect.TypeOf(s) {
		s = f.Interface().(State)
	}
	if f := cv.FieldByName("Revocation"); f.IsValid() && f.Type() == reflect.TypeOf(r) {
		r = f.Interface().(Revocation)
	}
	c.applyStateDefaults(&s, &r)
	v := &validator{}
	c.validateState(v, &s, &r)
	return s, r, v.err()
}

func isGUIDString(s string) bool {
	return regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`).MatchString(s)
}
