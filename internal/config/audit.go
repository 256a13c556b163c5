package config

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Audit configures the audit store (docs/audit.md).
type Audit struct {
	// SQLite is the path of the embedded audit database (the default store).
	SQLite string `yaml:"sqlite,omitempty"`
	// Postgres, when set, selects the PostgreSQL store instead of SQLite:
	// a postgres:// URL. Put the password in PGPASSWORD or ~/.pgpass, not
	// in the file.
	Postgres string `yaml:"postgres,omitempty"`
	// Sync is the durability level: crash (default) or always (decisions D1).
	Sync string `yaml:"sync,omitempty"`
	// FailMode is closed (default: refuse requests with 503 when the audit
	// store cannot be written) or open (serve and count the gap).
	FailMode string `yaml:"fail_mode,omitempty"`
	// FlushInterval bounds how long a completed record waits before its
	// batch is written. Default 100ms.
	FlushInterval time.Duration `yaml:"flush_interval,omitempty"`
	// Instance names this gateway process in records and, with PostgreSQL,
	// its hash chain. Default: the host name. Must be unique per replica.
	Instance string `yaml:"instance,omitempty"`
	// SigningKey is the Ed25519 private key that signs checkpoints of the
	// hash chain: PKCS #8 PEM or base64 of the 32-byte seed, always as a
	// secret reference. Unset: no checkpoints (truncation undetectable).
	SigningKey Secret `yaml:"signing_key,omitempty"`
	// VerifyKey is the matching public key (base64 or PEM) for auditors who
	// run `gatehouse audit verify` without the private key.
	VerifyKey string `yaml:"verify_key,omitempty"`
	// CheckpointInterval is how often a signed checkpoint is written.
	// Default 10s.
	CheckpointInterval time.Duration `yaml:"checkpoint_interval,omitempty"`
	// Retention, with PostgreSQL, drops monthly partitions older than this.
	// Zero (default) keeps records forever.
	Retention time.Duration `yaml:"retention,omitempty"`
	// Content configures capture of prompts and responses.
	Content AuditContent `yaml:"content,omitempty"`
	// Export streams the audit trail to other systems, at least once.
	Export []AuditExport `yaml:"export,omitempty"`
}

// AuditExport is one exporter (docs/audit.md).
type AuditExport struct {
	// Name identifies the exporter in logs and its spool directory.
	// Default: "<type>-<index>".
	Name string `yaml:"name,omitempty"`
	// Type is jsonl, webhook, splunk_hec or otlp.
	Type string `yaml:"type"`
	// Path is the jsonl file ("-" for standard output).
	Path string `yaml:"path,omitempty"`
	// URL receives webhook, splunk_hec (…/services/collector/event) or
	// otlp (…/v1/logs) POSTs.
	URL string `yaml:"url,omitempty"`
	// Headers are added to each HTTP request; values are secret references.
	Headers map[string]Secret `yaml:"headers,omitempty"`
	// Token is the Splunk HEC token (secret reference).
	Token Secret `yaml:"token,omitempty"`
	// Index is the Splunk index (optional).
	Index string `yaml:"index,omitempty"`
	// SpoolDir holds the bounded on-disk spool. Default: next to the audit
	// database, "<sqlite>.export/<name>" (required with postgres).
	SpoolDir string `yaml:"spool_dir,omitempty"`
	// MaxSpoolBytes bounds the spool. Default 256 MiB.
	MaxSpoolBytes int64 `yaml:"max_spool_bytes,omitempty"`
}

// AuditContent configures content capture (docs/audit.md).
type AuditContent struct {
	// Capture is off (default), metadata, redacted or full.
	Capture string `yaml:"capture,omitempty"`
	// Keys encrypt captured text (AES-256-GCM); each key is a secret
	// reference to the base64 of 32 bytes. Required for redacted and full.
	Keys []AuditContentKey `yaml:"keys,omitempty"`
	// ActiveKey names the key that encrypts new content. Default: the
	// last key listed. Older keys still decrypt (rotation).
	ActiveKey string `yaml:"active_key,omitempty"`
	// NationalIDPatterns are extra regular expressions the redactor
	// removes, e.g. "\\b\\d{3}-\\d{2}-\\d{4}\\b".
	NationalIDPatterns []string `yaml:"national_id_patterns,omitempty"`
	// Retention deletes captured content older than this (records stay).
	// Zero keeps it.
	Retention time.Duration `yaml:"retention,omitempty"`
}

// AuditContentKey is one content encryption key.
type AuditContentKey struct {
	ID  string `yaml:"id"`
	Key Secret `yaml:"key"`
}

func (a *Audit) applyDefaults() {
	if a.SQLite == "" && a.Postgres == "" {
		a.SQLite = "./gatehouse-audit.db"
	}
	if a.Sync == "" {
		a.Sync = "crash"
	}
	if a.FailMode == "" {
		a.FailMode = "closed"
	}
	if a.FlushInterval == 0 {
		a.FlushInterval = 100 * time.Millisecond
	}
	if a.CheckpointInterval == 0 {
		a.CheckpointInterval = 10 * time.Second
	}
	for i := range a.Export {
		if a.Export[i].Name == "" {
			a.Export[i].Name = fmt.Sprintf("%s-%d", a.Export[i].Type, i)
		}
	}
	if a.Content.Capture == "" {
		a.Content.Capture = "off"
	}
	if a.Content.ActiveKey == "" && len(a.Content.Keys) > 0 {
		a.Content.ActiveKey = a.Content.Keys[len(a.Content.Keys)-1].ID
	}
}

func (a *Audit) validate(v *validator) {
	switch a.Sync {
	case "crash", "always":
	default:
		v.add("sync", "%q is not crash or always", a.Sync)
	}
	switch a.FailMode {
	case "closed", "open":
	default:
		v.add("fail_mode", "%q is not closed or open", a.FailMode)
	}
	if a.FlushInterval < 0 || a.FlushInterval > 10*time.Second {
		v.add("flush_interval", "must be between 0 and 10s")
	}
	if a.SQLite != "" && a.Postgres != "" {
		v.add("", "set sqlite or postgres, not both")
	}
	if a.Postgres != "" {
		u, err := url.Parse(a.Postgres)
		switch {
		case err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql"):
			v.add("postgres", "must be a postgres:// URL")
		default:
			if _, hasPass := u.User.Password(); hasPass {
				v.add("postgres", "must not carry a password; use PGPASSWORD or ~/.pgpass")
			}
		}
	}
	if a.SigningKey.IsSet() && a.SigningKey.Value() != "" && !validSigningKey(a.SigningKey.Value()) {
		v.add("signing_key", "is neither a PKCS #8 PEM Ed25519 private key nor the base64 of a 32-byte seed")
	}
	if a.VerifyKey != "" && !validVerifyKey(a.VerifyKey) {
		v.add("verify_key", "is neither a PEM nor a base64 Ed25519 public key")
	}
	if a.CheckpointInterval < time.Second || a.CheckpointInterval > time.Hour {
		v.add("checkpoint_interval", "must be between 1s and 1h")
	}
	if a.Retention < 0 || (a.Retention > 0 && a.Retention < 24*time.Hour) {
		v.add("retention", "must be 0 (keep forever) or at least 24h")
	}
	if a.Retention > 0 && a.Postgres == "" {
		v.add("retention", "is supported with postgres only (SQLite keeps everything)")
	}
	a.Content.validate(v.at("content"))
	names := map[string]bool{}
	for i := range a.Export {
		x := &a.Export[i]
		xv := v.index("export", i)
		switch x.Type {
		case "jsonl":
			if x.Path == "" {
				xv.add("path", "is required for jsonl (\"-\" for standard output)")
			}
		case "webhook", "splunk_hec", "otlp":
			if x.URL == "" {
				xv.add("url", "is required for %s", x.Type)
			} else if _, err := parseURL(x.URL, false); err != nil {
				xv.add("url", "%v", err)
			}
			if x.Type == "splunk_hec" && !x.Token.IsSet() {
				xv.add("token", "is required for splunk_hec")
			}
		default:
			xv.add("type", "%q is not jsonl, webhook, splunk_hec or otlp", x.Type)
		}
		if names[x.Name] {
			xv.add("name", "%q is used twice", x.Name)
		}
		names[x.Name] = true
		if x.SpoolDir == "" && a.SQLite == "" {
			xv.add("spool_dir", "is required with postgres")
		}
		if x.MaxSpoolBytes < 0 {
			xv.add("max_spool_bytes", "must not be negative")
		}
	}
}

func (c *AuditContent) validate(v *validator) {
	switch c.Capture {
	case "off", "metadata":
	case "redacted", "full":
		if len(c.Keys) == 0 {
			v.add("keys", "at least one encryption key is required to capture %s content", c.Capture)
		}
	default:
		v.add("capture", "%q is not off, metadata, redacted or full", c.Capture)
	}
	ids := map[string]bool{}
	for i, k := range c.Keys {
		kv := v.index("keys", i)
		if k.ID == "" {
			kv.add("id", "is required")
		} else if ids[k.ID] {
			kv.add("id", "%q is listed twice", k.ID)
		}
		ids[k.ID] = true
		if !k.Key.IsSet() {
			kv.add("key", "is required (a secret reference to base64 of 32 bytes)")
		} else if k.Key.Value() != "" {
			if raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(k.Key.Value())); err != nil || len(raw) != 32 {
				kv.add("key", "must be the base64 of 32 random bytes (AES-256)")
			}
		}
	}
	if c.ActiveKey != "" && !ids[c.ActiveKey] {
		v.add("active_key", "%q is not one of the keys", c.ActiveKey)
	}
	for i, p := range c.NationalIDPatterns {
		if _, err := regexp.Compile(p); err != nil {
			v.index("national_id_patterns", i).add("", "%v", err)
		}
	}
	if c.Retention < 0 {
		v.add("retention", "must not be negative")
	}
}

func validSigningKey(s string) bool {
	s = strings.TrimSpace(s)
	if b, _ := pem.Decode([]byte(s)); b != nil {
		k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
		_, ok := k.(ed25519.PrivateKey)
		return err == nil && ok
	}
	seed, err := base64.StdEncoding.DecodeString(s)
	return err == nil && len(seed) == ed25519.SeedSize
}

func validVerifyKey(s string) bool {
	s = strings.TrimSpace(s)
	if b, _ := pem.Decode([]byte(s)); b != nil {
		k, err := x509.ParsePKIXPublicKey(b.Bytes)
		_, ok := k.(ed25519.PublicKey)
		return err == nil && ok
	}
	raw, err := base64.StdEncoding.DecodeString(s)
	return err == nil && len(raw) == ed25519.PublicKeySize
}
