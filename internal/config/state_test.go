package config

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// stateDoc is the shape the root Config gives these sections.
type stateDoc struct {
	Audit      Audit      `yaml:"audit,omitempty"`
	State      State      `yaml:"state,omitempty"`
	Revocation Revocation `yaml:"revocation,omitempty"`
}

func parseState(t *testing.T, src string, env map[string]string) (State, Revocation, error) {
	t.Helper()
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	var d stateDoc
	if err := dec.Decode(&d); err != nil {
		return d.State, d.Revocation, err
	}
	var errs []string
	walkSecrets(reflect.ValueOf(&d).Elem(), "", func(path string, s *Secret) {
		if s.ref == "" {
			return
		}
		v, err := resolve(s.ref, func(k string) string { return env[k] })
		if err != nil {
			errs = append(errs, path+": "+err.Error())
			return
		}
		s.value = v
	})
	c := &Config{Audit: d.Audit}
	c.Identity.Issuer = "https://login.microsoftonline.com/11111111-2222-4333-8444-555555555555/v2.0"
	c.Audit.applyDefaults()
	c.applyStateDefaults(&d.State, &d.Revocation)
	v := &validator{}
	c.validateState(v, &d.State, &d.Revocation)
	if err := v.err(); err != nil {
		errs = append(errs, err.Error())
	}
	if len(errs) > 0 {
		return d.State, d.Revocation, errorString(strings.Join(errs, "\n"))
	}
	return d.State, d.Revocation, nil
}

type errorString string

func (e errorString) Error() string { return string(e) }

func TestStateSections(t *testing.T) {
	env := map[string]string{"PG": "postgres://gh:s3cret@db.internal:5432/gatehouse?sslmode=require", "GRAPH_SECRET": "shh"}
	for _, tc := range []struct {
		name, yaml string
		err        string
		check      func(t *testing.T, s State, r Revocation)
	}{
		{name: "defaults", yaml: "audit:\n  sqlite: /var/lib/gatehouse/audit.db\n", check: func(t *testing.T, s State, r Revocation) {
			if s.SQLite != "/var/lib/gatehouse/gatehouse-state.db" || s.Postgres.IsSet() || s.PostgresSchema != "public" {
				t.Errorf("state %+v", s)
			}
			if r.PollInterval != time.Second || r.ReloadInterval != time.Minute || r.FailClosedAfter != 0 || r.EntraSync.Enabled {
				t.Errorf("revocation %+v", r)
			}
		}},
		{name: "postgres secret", yaml: "state:\n  postgres: ${env:PG}\n  postgres_schema: gh_prod\nrevocation:\n  reload_interval: 30s\n", check: func(t *testing.T, s State, r Revocation) {
			if s.Postgres.Value() != env["PG"] || s.PostgresSchema != "gh_prod" || r.ReloadInterval != 30*time.Second {
				t.Errorf("state %+v revocation %+v", s, r)
			}
			out, _ := yaml.Marshal(stateDoc{State: s})
			if strings.Contains(string(out), "s3cret") || !strings.Contains(string(out), "${env:PG}") {
				t.Errorf("marshalled state shows the secret or hides the reference:\n%s", out)
			}
		}},
		{name: "postgres literal without password", yaml: "state:\n  postgres: postgres://gh@127.0.0.1:5432/test?sslmode=disable\n", check: func(t *testing.T, s State, r Revocation) {
			if s.Postgres.Value() != "postgres://gh@127.0.0.1:5432/test?sslmode=disable" {
				t.Errorf("dsn %q", s.Postgres.Value())
			}
		}},
		{name: "postgres literal with password", yaml: "state:\n  postgres: postgres://gh:pw@127.0.0.1/test\n", err: "state.postgres: holds a password"},
		{name: "postgres key=value with password", yaml: "state:\n  postgres: host=db user=gh password=pw\n", err: "state.postgres: holds a password"},
		{name: "postgres env missing", yaml: "state:\n  postgres: ${env:NOPE}\n", err: "state.postgres"},
		{name: "bad schema", yaml: "state:\n  postgres_schema: Bad-Schema\n", err: "state.postgres_schema"},
		{name: "unknown key", yaml: "state:\n  redis: x\n", err: "redis"},
		{name: "poll too slow", yaml: "revocation:\n  poll_interval: 10s\n", err: "revocation.poll_interval"},
		{name: "negative fail closed", yaml: "revocation:\n  fail_closed_after: -1h\n", err: "revocation.fail_closed_after"},
		{name: "entra sync", yaml: "revocation:\n  entra_sync:\n    enabled: true\n    client_id: c1\n    client_secret: ${env:GRAPH_SECRET}\n", check: func(t *testing.T, s State, r Revocation) {
			es := r.EntraSync
			if es.TenantID != "11111111-2222-4333-8444-555555555555" || es.ClientSecret.Value() != "shh" || es.GraphURL != "https://graph.microsoft.com" || es.Interval != time.Minute || es.ForgetAfter != 24*time.Hour {
				t.Errorf("entra sync %+v", es)
			}
		}},
		{name: "entra sync fail closed too tight", yaml: "revocation:\n  entra_sync:\n    enabled: true\n    client_id: c1\n    client_secret: ${env:GRAPH_SECRET}\n    fail_closed_after: 1m\n    app_id: nope\n", err: "revocation.entra_sync.fail_closed_after"},
		{name: "entra sync bad app id", yaml: "revocation:\n  entra_sync:\n    enabled: true\n    client_id: c1\n    client_secret: ${env:GRAPH_SECRET}\n    app_id: nope\n", err: "revocation.entra_sync.app_id"},
		{name: "entra sync incomplete", yaml: "revocation:\n  entra_sync:\n    enabled: true\n    interval: 1s\n", err: "revocation.entra_sync.client_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, r, err := parseState(t, tc.yaml, env)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				if strings.Contains(err.Error(), "pw") && strings.Contains(tc.yaml, ":pw@") {
					t.Errorf("error repeats the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, s, r)
		})
	}
}

func TestRedactDSN(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:pw@h/db":             "postgres://u:REDACTED@h/db",
		"postgres://u@h/db?password=pw":    "postgres://u@h/db?password=REDACTED",
		"host=h user=u password=pw dbname": "host=h user=u password=REDACTED dbname",
		"postgres://u@h/db":                "postgres://u@h/db",
	} {
		if got := redactDSN(in); got != want {
			t.Errorf("redactDSN(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestStateSettingsDefaults(t *testing.T) {
	c := &Config{Audit: Audit{SQLite: "/data/audit.db"}}
	s, r, err := c.StateSettings()
	if err != nil {
		t.Fatal(err)
	}
	if s.SQLite != "/data/gatehouse-state.db" || r.PollInterval != time.Second {
		t.Errorf("StateSettings() = %+v, %+v", s, r)
	}
}
