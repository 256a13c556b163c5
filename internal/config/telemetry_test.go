package config

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// parseTracing runs the tracing section through the same steps as Parse:
// strict decode, secret resolution, defaults, validation.
func parseTracing(t *testing.T, src string, envs map[string]string) (Tracing, error) {
	t.Helper()
	var doc struct {
		Tracing Tracing `yaml:"tracing"`
	}
	dec := yaml.NewDecoder(bytes.NewReader([]byte(src)))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		return Tracing{}, err
	}
	var errs []string
	walkSecrets(reflect.ValueOf(&doc).Elem(), "", func(path string, s *Secret) {
		v, err := resolve(s.ref, env(envs))
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", path, err))
			return
		}
		s.value = v
	})
	if len(errs) > 0 {
		return doc.Tracing, fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	doc.Tracing.applyDefaults()
	doc.Tracing.applyDefaults() // idempotent
	v := &validator{}
	doc.Tracing.validate(v.at("tracing"))
	return doc.Tracing, v.err()
}

func TestTracingValid(t *testing.T) {
	tr, err := parseTracing(t, `
tracing:
  otlp_endpoint: https://otel.example.com:4318
  headers:
    Authorization: ${env:OTLP_AUTH}
  sample_ratio: 0.25
  service_name: gatehouse-eu
`, map[string]string{"OTLP_AUTH": "Bearer otlp-secret-123"})
	if err != nil {
		t.Fatal(err)
	}
	if !tr.Enabled() || tr.Ratio() != 0.25 || tr.ServiceName != "gatehouse-eu" {
		t.Fatalf("got %+v", tr)
	}
	if got := tr.HeaderValues()["Authorization"]; got != "Bearer otlp-secret-123" {
		t.Fatalf("header = %q", got)
	}
	out, err := yaml.Marshal(tr)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "otlp-secret-123") || !strings.Contains(string(out), "${env:OTLP_AUTH}") {
		t.Fatalf("marshalled tracing leaks the header value or loses its reference:\n%s", out)
	}
}

func TestTracingDefaults(t *testing.T) {
	tr, err := parseTracing(t, "tracing:\n  otlp_endpoint: http://127.0.0.1:4318\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	if tr.ServiceName != "gatehouse" || tr.SampleRatio == nil || *tr.SampleRatio != 1 {
		t.Fatalf("defaults: %+v", tr)
	}
	zero, err := parseTracing(t, "tracing:\n  otlp_endpoint: http://localhost:4318\n  sample_ratio: 0\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	if zero.Ratio() != 0 {
		t.Fatalf("explicit sample_ratio 0 became %v", zero.Ratio())
	}
	off, err := parseTracing(t, "tracing: {}\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	if off.Enabled() || off.ServiceName != "" || off.SampleRatio != nil {
		t.Fatalf("an empty section must stay empty (no defaults shown): %+v", off)
	}
}

func TestTracingInvalid(t *testing.T) {
	envs := map[string]string{"TOK": "abc", "BAD": "a\nb"}
	tests := []struct {
		name, yaml, want string
	}{
		{"http non-loopback", "otlp_endpoint: http://otel-collector:4318", "tracing.otlp_endpoint: \"http://otel-collector:4318\" uses http://"},
		{"insecure with https", "otlp_endpoint: https://otel:4318\n  insecure: true", "tracing.insecure: applies only to http://"},
		{"not a URL", "otlp_endpoint: otel:4318", "tracing.otlp_endpoint:"},
		{"credentials in URL", "otlp_endpoint: https://u:p@otel:4318", "tracing.otlp_endpoint: must not carry credentials"},
		{"query", "otlp_endpoint: https://otel:4318/?x=1", "must not have a query"},
		{"ratio above 1", "otlp_endpoint: https://otel:4318\n  sample_ratio: 1.5", "tracing.sample_ratio: must be between 0 and 1"},
		{"ratio negative", "otlp_endpoint: https://otel:4318\n  sample_ratio: -0.1", "tracing.sample_ratio:"},
		{"ratio NaN", "otlp_endpoint: https://otel:4318\n  sample_ratio: .nan", "tracing.sample_ratio:"},
		{"keys without endpoint", "sample_ratio: 0.5", "tracing.otlp_endpoint: is required when"},
		{"bad header name", "otlp_endpoint: https://otel:4318\n  headers:\n    \"X Bad\": ${env:TOK}", "tracing.headers: \"X Bad\": header names"},
		{"reserved header", "otlp_endpoint: https://otel:4318\n  headers:\n    Content-Type: ${env:TOK}", "tracing.headers: \"Content-Type\" is set by the OTLP exporter"},
		{"header line break", "otlp_endpoint: https://otel:4318\n  headers:\n    X-Key: ${env:BAD}", "tracing.headers.X-Key: the resolved value must not contain line breaks"},
		{"literal header value", "otlp_endpoint: https://otel:4318\n  headers:\n    X-Key: literal", "tracing.headers.X-Key: write secrets as"},
		{"unset env", "otlp_endpoint: https://otel:4318\n  headers:\n    X-Key: ${env:NOPE}", "tracing.headers.X-Key: environment variable NOPE"},
		{"service name control char", "otlp_endpoint: https://otel:4318\n  service_name: \"a\\tb\"", "tracing.service_name:"},
		{"unknown key", "otlp_endpoint: https://otel:4318\n  endpoint: x", "field endpoint not found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseTracing(t, "tracing:\n  "+tc.yaml+"\n", envs)
			if err == nil {
				t.Fatalf("accepted; want an error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %q\nwant it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "a\nb") {
				t.Fatalf("error shows a resolved header value: %q", err)
			}
		})
	}
}

func TestTracingInsecureAllowsPrivateHTTP(t *testing.T) {
	if _, err := parseTracing(t, "tracing:\n  otlp_endpoint: http://otel-collector:4318\n  insecure: true\n", nil); err != nil {
		t.Fatal(err)
	}
}
