package config

import (
	"fmt"
	"os"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Secret is a credential written in the file as a reference, ${env:NAME} or
// ${file:/path}, and resolved at load. Its value is never printed: String,
// GoString, MarshalYAML and MarshalJSON all show only the reference.
type Secret struct {
	ref   string
	value string
}

// NewSecret builds a resolved secret (for tests and the demo).
func NewSecret(ref, value string) Secret { return Secret{ref: ref, value: value} }

// Value returns the resolved secret.
func (s Secret) Value() string { return s.value }

// Ref returns the reference as written, e.g. ${env:FOUNDRY_API_KEY}.
func (s Secret) Ref() string { return s.ref }

// IsZero lets omitempty drop unset secrets (and only those).
func (s Secret) IsZero() bool { return s.ref == "" }

// IsSet reports whether the secret was configured.
func (s Secret) IsSet() bool { return s.ref != "" }

func (s Secret) String() string   { return s.ref }
func (s Secret) GoString() string { return fmt.Sprintf("config.Secret(%s)", s.ref) }

// MarshalYAML shows the reference, never the value.
func (s Secret) MarshalYAML() (any, error) { return s.ref, nil }

// MarshalJSON shows the reference, never the value.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(fmt.Sprintf("%q", s.ref)), nil }

// UnmarshalYAML keeps the reference; resolution happens in resolveSecrets.
func (s *Secret) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: a secret must be a string such as ${env:NAME} or ${file:/path}", n.Line)
	}
	s.ref = strings.TrimSpace(n.Value)
	return nil
}

var secretType = reflect.TypeOf(Secret{})

// ResolveSecrets resolves every secret reference in a decoded (not yet
// resolved) configuration and reports the ones that failed, with paths.
// Load does this itself; doctor uses it to check a file whose other
// problems it also wants to report.
func (c *Config) ResolveSecrets(getenv Getenv) []error { return resolveSecrets(c, getenv) }

// resolveSecrets walks the config and resolves every Secret field, reporting
// problems with their YAML paths.
func resolveSecrets(cfg *Config, getenv Getenv) []error {
	var errs []error
	walkSecrets(reflect.ValueOf(cfg).Elem(), "", func(path string, s *Secret) {
		if s.ref == "" {
			return
		}
		v, err := resolve(s.ref, getenv)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %v", path, err))
			return
		}
		s.value = v
	})
	return errs
}

func resolve(ref string, getenv Getenv) (string, error) {
	if !strings.HasPrefix(ref, "${") || !strings.HasSuffix(ref, "}") {
		return "", fmt.Errorf("write secrets as ${env:NAME} or ${file:/path}, never literally in the file")
	}
	inner := ref[2 : len(ref)-1]
	kind, arg, ok := strings.Cut(inner, ":")
	if !ok || arg == "" {
		return "", fmt.Errorf("%s is not ${env:NAME} or ${file:/path}", ref)
	}
	switch kind {
	case "env":
		if getenv == nil {
			return "", fmt.Errorf("environment variable %s is not set", arg)
		}
		v := getenv(arg)
		if v == "" {
			return "", fmt.Errorf("environment variable %s is not set or empty", arg)
		}
		return v, nil
	case "file":
		b, err := os.ReadFile(arg)
		if err != nil {
			return "", fmt.Errorf("cannot read secret file %s: %v", arg, unwrapPathErr(err))
		}
		v := strings.TrimRight(string(b), "\r\n")
		if v == "" {
			return "", fmt.Errorf("secret file %s is empty", arg)
		}
		return v, nil
	}
	return "", fmt.Errorf("%s: unknown secret source %q (use env or file)", ref, kind)
}

func unwrapPathErr(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

func walkSecrets(v reflect.Value, path string, fn func(string, *Secret)) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			walkSecrets(v.Elem(), path, fn)
		}
	case reflect.Struct:
		if v.Type() == secretType {
			fn(path, v.Addr().Interface().(*Secret))
			return
		}
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			if name == "-" {
				continue
			}
			p := name
			if path != "" {
				p = path + "." + name
			}
			if strings.Contains(f.Tag.Get("yaml"), ",inline") {
				p = path
			}
			walkSecrets(v.Field(i), p, fn)
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			walkSecrets(v.Index(i), fmt.Sprintf("%s[%d]", path, i), fn)
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(v.MapIndex(k))
			walkSecrets(e, fmt.Sprintf("%s.%v", path, k.Interface()), fn)
			v.SetMapIndex(k, e)
		}
	}
}
