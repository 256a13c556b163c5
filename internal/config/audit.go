package config

import "time"

// Audit configures the audit store.
type Audit struct {
	// SQLite is the path of the embedded audit database (the default store).
	SQLite string `yaml:"sqlite,omitempty"`
	// Sync is the durability level: crash (default) or always (decisions D1).
	Sync string `yaml:"sync,omitempty"`
	// FailMode is closed (default: refuse requests with 503 when the audit
	// store cannot be written) or open (serve and count the gap).
	FailMode string `yaml:"fail_mode,omitempty"`
	// FlushInterval bounds how long a completed record waits before its
	// batch is written. Default 100ms.
	FlushInterval time.Duration `yaml:"flush_interval,omitempty"`
}

func (a *Audit) applyDefaults() {
	if a.SQLite == "" {
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
}
