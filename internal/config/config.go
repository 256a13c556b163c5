// Package config is the gateway's one configuration schema: it reads a YAML
// file strictly (unknown keys are errors), resolves secret references, fills
// defaults and validates everything at once, reporting each problem with its
// path (for example "identity.issuer: ...").
//
// Only internal/cli imports this package; it maps sections onto each
// package's own Options. Validate is pure: it never touches the network.
// Network checks belong to `gatehouse doctor`.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Config is the whole file. Section types live in one file each.
type Config struct {
	Version   int    `yaml:"version,omitempty"`
	Listen    string `yaml:"listen"`
	PublicURL string `yaml:"public_url,omitempty"`
	// MetricsListen moves /metrics off the main listener to this address.
	MetricsListen string `yaml:"metrics_listen,omitempty"`
	// DebugListen serves Go's runtime profiles (/debug/pprof/) on this
	// address. Loopback only: profiles expose the process's internals.
	DebugListen string     `yaml:"debug_listen,omitempty"`
	Identity    Identity   `yaml:"identity"`
	Upstreams   []Upstream `yaml:"upstreams"`
	Models      []Model    `yaml:"models"`
	Audit       Audit      `yaml:"audit"`

	Policies    []Policy     `yaml:"policies,omitempty"`
	GroupLimits []GroupLimit `yaml:"group_limits,omitempty"`
	Limits      Limits       `yaml:"limits,omitempty"`
	Pricing     []Price      `yaml:"pricing,omitempty"`

	State      State      `yaml:"state,omitempty"`
	Revocation Revocation `yaml:"revocation,omitempty"`
	Tracing    Tracing    `yaml:"tracing,omitempty"`

	Server Server `yaml:"server,omitempty"`
	Log    Log    `yaml:"log,omitempty"`
}

// Getenv looks up an environment variable; the CLI passes its injected env.
type Getenv func(string) string

// Load reads, decodes, resolves, defaults and validates the file at path.
func Load(path string, getenv Getenv) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(data, getenv)
}

// Parse is Load for bytes already read.
func Parse(data []byte, getenv Getenv) (*Config, error) {
	cfg, err := Decode(data)
	if err != nil {
		return nil, err
	}
	var problems []error
	problems = append(problems, resolveSecrets(cfg, getenv)...)
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		problems = append(problems, err)
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	return cfg, nil
}

// Decode strictly decodes YAML into a Config without resolving secrets,
// defaulting or validating. Unknown keys and duplicate documents are errors.
func Decode(data []byte) (*Config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	cfg := &Config{}
	if err := dec.Decode(cfg); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("config: the file is empty")
		}
		return nil, fmt.Errorf("config: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("config: the file holds more than one YAML document")
	}
	return cfg, nil
}

// ApplyDefaults fills every unset field that has a default. It is idempotent.
func (c *Config) ApplyDefaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8080"
	}
	c.Identity.applyDefaults()
	for i := range c.Upstreams {
		c.Upstreams[i].applyDefaults()
	}
	for i := range c.Models {
		c.Models[i].applyDefaults(c.Upstreams)
	}
	c.Audit.applyDefaults()
	c.Server.applyDefaults()
	c.Log.applyDefaults()
	c.applyPolicyDefaults()
	c.applyStateDefaults(&c.State, &c.Revocation)
	c.Tracing.applyDefaults()
}

// Validate reports every problem at once, each prefixed with its path.
func (c *Config) Validate() error {
	v := &validator{}
	if c.Version != 0 && c.Version != 1 {
		v.add("version", "must be 1 (the only schema version)")
	}
	if c.Listen == "" {
		v.add("listen", "is required")
	} else if _, _, err := splitHostPort(c.Listen); err != nil {
		v.add("listen", "%v", err)
	}
	if c.MetricsListen != "" {
		if _, _, err := splitHostPort(c.MetricsListen); err != nil {
			v.add("metrics_listen", "%v", err)
		} else if c.MetricsListen == c.Listen {
			v.add("metrics_listen", "must differ from listen (leave it empty to serve /metrics on the main listener)")
		}
	}
	if c.DebugListen != "" {
		if host, _, err := splitHostPort(c.DebugListen); err != nil {
			v.add("debug_listen", "%v", err)
		} else if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			v.add("debug_listen", "must be a loopback address such as 127.0.0.1:6060 (profiles expose the process's memory layout and timing; reach it with kubectl port-forward or ssh)")
		} else if c.DebugListen == c.Listen || c.DebugListen == c.MetricsListen {
			v.add("debug_listen", "must differ from listen and metrics_listen")
		}
	}
	if c.PublicURL != "" {
		if _, err := parseURL(c.PublicURL, false); err != nil {
			v.add("public_url", "%v", err)
		}
	}
	c.Identity.validate(v.at("identity"))
	c.validateUpstreams(v)
	c.validateModels(v)
	c.Audit.validate(v.at("audit"))
	c.Server.validate(v.at("server"))
	c.Log.validate(v.at("log"))
	c.validatePolicies(v)
	c.validateState(v, &c.State, &c.Revocation)
	c.Tracing.validate(v.at("tracing"))
	return v.err()
}

// Redacted renders the configuration as YAML with every secret replaced by
// its reference (for example ${env:FOUNDRY_API_KEY}); resolved values never
// appear.
func (c *Config) Redacted() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// UpstreamByName returns the named upstream, or nil.
func (c *Config) UpstreamByName(name string) *Upstream {
	for i := range c.Upstreams {
		if c.Upstreams[i].Name == name {
			return &c.Upstreams[i]
		}
	}
	return nil
}
