package config

import (
	"maps"
	"math"
	"slices"
	"strings"
)

// DefaultServiceName is tracing.service_name when unset.
const DefaultServiceName = "gatehouse"

// Tracing sends OpenTelemetry traces over OTLP/HTTP. It is off unless
// otlp_endpoint is set.
type Tracing struct {
	// OTLPEndpoint is the collector's OTLP/HTTP base URL, e.g.
	// https://otel-collector.example:4318; spans go to <base>/v1/traces.
	// http:// is allowed for loopback hosts, and for others only with
	// insecure: true.
	OTLPEndpoint string `yaml:"otlp_endpoint,omitempty"`
	// Headers are sent with every export, typically the backend's API key
	// (Authorization, api-key, x-honeycomb-team, …). Each value is a secret
	// reference: ${env:NAME} or ${file:/path}.
	Headers map[string]Secret `yaml:"headers,omitempty"`
	// SampleRatio is the fraction of new traces recorded, 0 to 1. Default 1.
	// Requests whose caller sent a sampled traceparent are always recorded.
	SampleRatio *float64 `yaml:"sample_ratio,omitempty"`
	// ServiceName is the service.name of the spans. Default "gatehouse".
	ServiceName string `yaml:"service_name,omitempty"`
	// Insecure allows a plain http:// endpoint on a non-loopback host (a
	// collector on the same private network or pod). Spans, and the
	// configured headers, then travel unencrypted.
	Insecure bool `yaml:"insecure,omitempty"`
}

// Enabled reports whether tracing is configured.
func (t Tracing) Enabled() bool { return t.OTLPEndpoint != "" }

// Ratio is the sampling ratio with its default applied.
func (t Tracing) Ratio() float64 {
	if t.SampleRatio == nil {
		return 1
	}
	return *t.SampleRatio
}

// HeaderValues returns the resolved export headers (secret values: never
// log them).
func (t Tracing) HeaderValues() map[string]string {
	if len(t.Headers) == 0 {
		return nil
	}
	h := make(map[string]string, len(t.Headers))
	for k, s := range t.Headers {
		h[k] = s.Value()
	}
	return h
}

// reservedOTLPHeaders are set by the exporter itself.
var reservedOTLPHeaders = map[string]bool{
	"content-type": true, "content-length": true, "content-encoding": true, "transfer-encoding": true,
	"host": true, "connection": true, "keep-alive": true, "te": true, "trailer": true, "upgrade": true,
	"expect": true, "user-agent": true,
}

// applyDefaults fills tracing defaults when tracing is on; an unset section
// stays empty, so the redacted configuration shows no tracing block.
func (t *Tracing) applyDefaults() {
	if !t.Enabled() {
		return
	}
	if t.ServiceName == "" {
		t.ServiceName = DefaultServiceName
	}
	if t.SampleRatio == nil {
		one := 1.0
		t.SampleRatio = &one
	}
}

// validate checks the tracing section; v is at "tracing". Pure: nothing is
// dialled.
func (t *Tracing) validate(tv *validator) {
	if !t.Enabled() {
		if len(t.Headers) > 0 || t.SampleRatio != nil || t.Insecure || t.ServiceName != "" {
			tv.add("otlp_endpoint", "is required when other tracing keys are set (leave the whole section out to turn tracing off)")
		}
		return
	}
	if u, err := parseURL(t.OTLPEndpoint, true); err != nil {
		tv.add("otlp_endpoint", "%v", err)
	} else {
		switch {
		case u.Scheme == "http" && !t.Insecure && !IsLoopbackHost(u.Hostname()):
			tv.add("otlp_endpoint", "%q uses http://, which is allowed only for loopback hosts (127.0.0.1, ::1, localhost); use https://, or set tracing.insecure: true for a collector on a private network (spans and headers then travel unencrypted)", t.OTLPEndpoint)
		case u.Scheme == "https" && t.Insecure:
			tv.add("insecure", "applies only to http:// endpoints; remove it (https:// is always verified)")
		}
	}
	if t.SampleRatio != nil {
		if r := *t.SampleRatio; math.IsNaN(r) || r < 0 || r > 1 {
			tv.add("sample_ratio", "must be between 0 and 1 (1 records every request)")
		}
	}
	if len(t.ServiceName) > 255 || strings.ContainsFunc(t.ServiceName, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		tv.add("service_name", "must be at most 255 printable characters")
	}
	for _, name := range slices.Sorted(maps.Keys(t.Headers)) {
		val := t.Headers[name].Value()
		switch {
		case !headerNameRE.MatchString(name):
			tv.add("headers", "%q: header names may hold only letters, digits and '-'", name)
		case reservedOTLPHeaders[strings.ToLower(name)]:
			tv.add("headers", "%q is set by the OTLP exporter itself", name)
		case !t.Headers[name].IsSet():
			tv.add("headers."+name, "is empty (write the value as ${env:NAME} or ${file:/path})")
		case strings.ContainsAny(val, "\r\n\x00"):
			tv.add("headers."+name, "the resolved value must not contain line breaks or NUL")
		}
	}
}
