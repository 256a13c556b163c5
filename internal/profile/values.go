package profile

import (
	"bytes"
	"encoding/json"
	"sort"
	"strconv"
	"strings"
)

// dict is an ordered map: the order of keys is the order in every output
// format, so generated files are stable and diff well. Values are string,
// bool, int, []any or *dict.
type dict struct {
	keys []string
	vals []any
}

func (d *dict) set(k string, v any) {
	for i, kk := range d.keys {
		if kk == k {
			d.vals[i] = v
			return
		}
	}
	d.keys = append(d.keys, k)
	d.vals = append(d.vals, v)
}

func (d *dict) walkStrings(fn func(string)) {
	for i, k := range d.keys {
		fn(k)
		walkValue(d.vals[i], fn)
	}
}

func walkValue(v any, fn func(string)) {
	switch v := v.(type) {
	case string:
		fn(v)
	case []any:
		for _, e := range v {
			walkValue(e, fn)
		}
	case *dict:
		v.walkStrings(fn)
	}
}

// json renders d; indent selects two-space indentation with a final newline.
func (d *dict) json(indent bool) []byte {
	var buf bytes.Buffer
	writeJSON(&buf, d, indent, "")
	if indent {
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

func writeJSON(buf *bytes.Buffer, v any, indent bool, prefix string) {
	nl := func(p string) {
		if indent {
			buf.WriteByte('\n')
			buf.WriteString(p)
		}
	}
	switch v := v.(type) {
	case string:
		buf.Write(jsonString(v))
	case bool:
		buf.WriteString(strconv.FormatBool(v))
	case int:
		buf.WriteString(strconv.Itoa(v))
	case []any:
		if len(v) == 0 {
			buf.WriteString("[]")
			return
		}
		buf.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				buf.WriteByte(',')
			}
			nl(prefix + "  ")
			writeJSON(buf, e, indent, prefix+"  ")
		}
		nl(prefix)
		buf.WriteByte(']')
	case *dict:
		if len(v.keys) == 0 {
			buf.WriteString("{}")
			return
		}
		buf.WriteByte('{')
		for i, k := range v.keys {
			if i > 0 {
				buf.WriteByte(',')
			}
			nl(prefix + "  ")
			buf.Write(jsonString(k))
			buf.WriteByte(':')
			if indent {
				buf.WriteByte(' ')
			}
			writeJSON(buf, v.vals[i], indent, prefix+"  ")
		}
		nl(prefix)
		buf.WriteByte('}')
	default:
		panic("profile: unsupported value type")
	}
}

// jsonString encodes s as a JSON string without HTML escaping, so that URLs
// and "<" ">" "&" stay readable in MDM consoles.
func jsonString(s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return bytes.TrimRight(buf.Bytes(), "\n")
}

// compactJSON renders a value as compact JSON (for JSON-in-a-string values).
func compactJSON(v any) string {
	var buf bytes.Buffer
	writeJSON(&buf, v, false, "")
	return buf.String()
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// desktopValues is the Claude Desktop key set, every value a string
// (contract §1.3): booleans "true"/"false", objects and arrays as JSON text.
func desktopValues(o Options) (*dict, error) {
	d := &dict{}
	d.set("inferenceProvider", "gateway")
	d.set("inferenceGatewayBaseUrl", o.GatewayURL)
	if o.DesktopHelper != "" {
		// The helper (gatehouse token) signs in and caches; Desktop re-runs
		// it when the cached output is 5 minutes old and on a 401.
		d.set("inferenceCredentialKind", "helper-script")
		d.set("inferenceCredentialHelper", o.DesktopHelper)
		d.set("inferenceCredentialHelperTtlSec", "300")
	} else {
		d.set("inferenceCredentialKind", "interactive")
		oidc := &dict{}
		oidc.set("issuer", o.Issuer)
		oidc.set("clientId", o.ClientID)
		if o.BearerTokenType == "access_token" {
			oidc.set("bearerTokenType", "access_token")
		}
		if o.Scopes != "" {
			oidc.set("scopes", o.Scopes)
		}
		d.set("inferenceGatewayOidc", compactJSON(oidc))
		if o.Broker {
			d.set("inferenceGatewayOidcAuthFlow", "broker")
		}
	}
	if len(o.Models) > 0 {
		d.set("inferenceModels", compactJSON(anyStrings(o.Models)))
	}
	if len(o.CustomHeaders) > 0 {
		h := &dict{}
		for _, k := range sortedKeys(o.CustomHeaders) {
			h.set(k, o.CustomHeaders[k])
		}
		d.set("inferenceCustomHeaders", compactJSON(h))
	}
	if !o.KeepDeploymentModeChooser {
		d.set("disableDeploymentModeChooser", "true")
	}
	return d, nil
}

// codeSettings is the Claude Code managed-settings document, nested types
// kept (contract §2.7).
func codeSettings(o Options, f Format) (*dict, error) {
	helper := o.HelperCommand
	if helper == "" {
		helper = DefaultHelperCommand(f, o.Issuer, o.ClientID)
		if o.BearerTokenType == "access_token" {
			helper += " --token-type access_token --scopes '" + o.Scopes + "'"
			if f == Reg {
				helper = strings.ReplaceAll(helper, "'", `"`)
			}
		}
	}
	ttl := o.HelperTTLMillis
	if ttl == 0 {
		ttl = 300000
	}
	d := &dict{}
	d.set("apiKeyHelper", helper)
	env := &dict{}
	env.set("ANTHROPIC_BASE_URL", o.GatewayURL)
	env.set("CLAUDE_CODE_API_KEY_HELPER_TTL_MS", strconv.Itoa(ttl))
	// The gateway serves /v1/models; availableModels (below) still filters.
	env.set("CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY", "1")
	if len(o.CustomHeaders) > 0 {
		var lines []string
		for _, k := range sortedKeys(o.CustomHeaders) {
			lines = append(lines, k+": "+o.CustomHeaders[k])
		}
		env.set("ANTHROPIC_CUSTOM_HEADERS", strings.Join(lines, "\n"))
	}
	d.set("env", env)
	if len(o.Models) > 0 {
		d.set("model", o.Models[0])
		d.set("availableModels", anyStrings(o.Models))
	}
	return d, nil
}

func anyStrings(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
