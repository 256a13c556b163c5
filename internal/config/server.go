package config

import "time"

// Server holds listener limits and timeouts.
type Server struct {
	// MaxBodyBytes caps request bodies (413 above). Default 32 MiB, the
	// Anthropic API's own limit.
	MaxBodyBytes int64 `yaml:"max_body_bytes,omitempty"`
	// ReadHeaderTimeout cuts clients slow to send headers. Default 10s.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout,omitempty"`
	// ReadTimeout cuts clients slow to send the body. Default 60s.
	ReadTimeout time.Duration `yaml:"read_timeout,omitempty"`
	// IdleTimeout closes idle keep-alive connections. Default 120s.
	IdleTimeout time.Duration `yaml:"idle_timeout,omitempty"`
	// WriteIdleTimeout cuts a response when the client has accepted no
	// bytes for this long. Long streams are never cut while they progress.
	// Default 5m.
	WriteIdleTimeout time.Duration `yaml:"write_idle_timeout,omitempty"`
	// MaxRequestDuration is the hard ceiling on one request. Default 60m.
	MaxRequestDuration time.Duration `yaml:"max_request_duration,omitempty"`
	// MaxHeaderBytes caps request headers (431 above). Default 64 KiB.
	MaxHeaderBytes int `yaml:"max_header_bytes,omitempty"`
	// ShutdownTimeout is how long in-flight requests (streams) may finish
	// after SIGTERM before connections are closed. Default 30s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout,omitempty"`
	// TLS serves HTTPS (TLS 1.2 minimum, HTTP/2) when set.
	TLS *TLS `yaml:"tls,omitempty"`
}

// TLS names the certificate and key files; new files are picked up without
// a restart.
type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

func (s *Server) applyDefaults() {
	if s.MaxBodyBytes == 0 {
		s.MaxBodyBytes = 32 << 20
	}
	if s.ReadHeaderTimeout == 0 {
		s.ReadHeaderTimeout = 10 * time.Second
	}
	if s.ReadTimeout == 0 {
		s.ReadTimeout = 60 * time.Second
	}
	if s.IdleTimeout == 0 {
		s.IdleTimeout = 120 * time.Second
	}
	if s.WriteIdleTimeout == 0 {
		s.WriteIdleTimeout = 5 * time.Minute
	}
	if s.MaxRequestDuration == 0 {
		s.MaxRequestDuration = 60 * time.Minute
	}
	if s.MaxHeaderBytes == 0 {
		s.MaxHeaderBytes = 64 << 10
	}
	if s.ShutdownTimeout == 0 {
		s.ShutdownTimeout = 30 * time.Second
	}
}

func (s *Server) validate(v *validator) {
	if s.MaxBodyBytes < 1024 {
		v.add("max_body_bytes", "must be at least 1024")
	}
	for _, d := range []struct {
		name string
		val  time.Duration
	}{
		{"read_header_timeout", s.ReadHeaderTimeout},
		{"read_timeout", s.ReadTimeout},
		{"idle_timeout", s.IdleTimeout},
		{"write_idle_timeout", s.WriteIdleTimeout},
		{"max_request_duration", s.MaxRequestDuration},
		{"shutdown_timeout", s.ShutdownTimeout},
	} {
		if d.val < 0 {
			v.add(d.name, "must not be negative")
		}
	}
	if s.MaxHeaderBytes < 4096 {
		v.add("max_header_bytes", "must be at least 4096")
	}
	if s.TLS != nil {
		if s.TLS.CertFile == "" {
			v.add("tls.cert_file", "is required with tls")
		}
		if s.TLS.KeyFile == "" {
			v.add("tls.key_file", "is required with tls")
		}
	}
}

// Log configures the operator log.
type Log struct {
	Level  string `yaml:"level,omitempty"`  // debug | info (default) | warn | error
	Format string `yaml:"format,omitempty"` // json (default) | text
}

func (l *Log) applyDefaults() {
	if l.Level == "" {
		l.Level = "info"
	}
	if l.Format == "" {
		l.Format = "json"
	}
}

func (l *Log) validate(v *validator) {
	switch l.Level {
	case "debug", "info", "warn", "error":
	default:
		v.add("level", "%q is not debug, info, warn or error", l.Level)
	}
	switch l.Format {
	case "json", "text":
	default:
		v.add("format", "%q is not json or text", l.Format)
	}
}
