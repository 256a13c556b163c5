package profile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"howett.net/plist"
)

// Summary is what a deployed profile says about the gateway and sign-in,
// for checks such as `gatehouse doctor`'s "audiences consistent with the
// client ID in the profiles".
type Summary struct {
	Client     Client
	Format     Format
	GatewayURL string
	Issuer     string // empty when the profile does not name one
	ClientID   string // empty when the profile does not name one
	TokenType  string // "id_token" or "access_token"
}

// Inspect reads a profile in any format Generate writes (and hand-written
// ones of the same shape) and reports its gateway URL, issuer and client ID.
// For Claude Code the issuer and client ID come from the apiKeyHelper's
// --issuer and --client-id arguments when present. The input is untrusted.
func Inspect(data []byte) (*Summary, error) {
	switch {
	case bytes.HasPrefix(data, []byte{0xFF, 0xFE}) || bytes.HasPrefix(bytes.TrimPrefix(data, []byte("\uFEFF")), []byte("Windows Registry Editor")):
		key, vals, err := DecodeReg(data)
		if err != nil {
			return nil, err
		}
		switch {
		case strings.EqualFold(key, `HKEY_LOCAL_MACHINE\SOFTWARE\Policies\Claude`), strings.EqualFold(key, `HKEY_CURRENT_USER\SOFTWARE\Policies\Claude`):
			m := map[string]any{}
			for k, v := range vals {
				m[k] = v
			}
			return desktopSummary(m, Reg)
		case strings.EqualFold(key, `HKEY_LOCAL_MACHINE\SOFTWARE\Policies\ClaudeCode`), strings.EqualFold(key, `HKEY_CURRENT_USER\SOFTWARE\Policies\ClaudeCode`):
			var m map[string]any
			if err := json.Unmarshal([]byte(vals["Settings"]), &m); err != nil {
				return nil, errors.New("profile: the Settings value is not one JSON document")
			}
			return codeSummary(m, Reg)
		}
		return nil, fmt.Errorf("profile: registry key %q is neither Policies\\Claude nor Policies\\ClaudeCode", key)
	case bytes.HasPrefix(bytes.TrimSpace(data), []byte("<?xml")) || bytes.HasPrefix(bytes.TrimSpace(data), []byte("<plist")) || bytes.HasPrefix(data, []byte("bplist")):
		var p struct {
			PayloadType    string
			PayloadContent []map[string]any
		}
		if _, err := plist.Unmarshal(data, &p); err != nil {
			return nil, fmt.Errorf("profile: not a property list: %v", err)
		}
		for _, in := range p.PayloadContent {
			switch in["PayloadType"] {
			case "com.anthropic.claudefordesktop":
				return desktopSummary(in, MobileConfig)
			case "com.anthropic.claudecode":
				return codeSummary(in, MobileConfig)
			case "com.apple.ManagedClient.preferences":
				content, _ := in["PayloadContent"].(map[string]any)
				for dom, v := range content {
					d, _ := v.(map[string]any)
					forced, _ := d["Forced"].([]any)
					if len(forced) == 0 {
						continue
					}
					f, _ := forced[0].(map[string]any)
					settings, _ := f["mcx_preference_settings"].(map[string]any)
					switch dom {
					case "com.anthropic.claudefordesktop":
						return desktopSummary(settings, MobileConfig)
					case "com.anthropic.claudecode":
						return codeSummary(settings, MobileConfig)
					}
				}
			}
		}
		return nil, errors.New("profile: no com.anthropic.claudefordesktop or com.anthropic.claudecode payload")
	default:
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			return nil, errors.New("profile: not a .reg file, a property list or a JSON object")
		}
		if _, ok := m["inferenceProvider"]; ok {
			return desktopSummary(m, JSON)
		}
		return codeSummary(m, JSON)
	}
}

func desktopSummary(m map[string]any, f Format) (*Summary, error) {
	s := &Summary{Client: Desktop, Format: f, TokenType: "id_token"}
	s.GatewayURL, _ = m["inferenceGatewayBaseUrl"].(string)
	if p, _ := m["inferenceProvider"].(string); p != "gateway" {
		return nil, fmt.Errorf("profile: inferenceProvider is %q, not gateway", p)
	}
	switch v := m["inferenceGatewayOidc"].(type) {
	case nil:
	case string:
		var oidc struct {
			Issuer          string `json:"issuer"`
			ClientID        string `json:"clientId"`
			BearerTokenType string `json:"bearerTokenType"`
		}
		if err := json.Unmarshal([]byte(v), &oidc); err != nil {
			return nil, errors.New("profile: inferenceGatewayOidc is not JSON in a string")
		}
		s.Issuer, s.ClientID = oidc.Issuer, oidc.ClientID
		if oidc.BearerTokenType == "access_token" {
			s.TokenType = "access_token"
		}
	default:
		return nil, errors.New("profile: inferenceGatewayOidc must be one string holding JSON, not a dictionary (Desktop ignores it)")
	}
	return s, nil
}

func codeSummary(m map[string]any, f Format) (*Summary, error) {
	s := &Summary{Client: Code, Format: f, TokenType: "id_token"}
	env, _ := m["env"].(map[string]any)
	s.GatewayURL, _ = env["ANTHROPIC_BASE_URL"].(string)
	if s.GatewayURL == "" {
		return nil, errors.New("profile: no env.ANTHROPIC_BASE_URL: this is not a Claude Code gateway profile")
	}
	helper, _ := m["apiKeyHelper"].(string)
	args := strings.Fields(helper)
	for i := 0; i+1 < len(args); i++ {
		v := strings.Trim(args[i+1], `"'`)
		switch args[i] {
		case "--issuer":
			s.Issuer = v
		case "--client-id":
			s.ClientID = v
		case "--token-type":
			s.TokenType = v
		}
	}
	return s, nil
}
