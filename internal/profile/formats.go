package profile

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// mobileconfig renders an Apple configuration profile whose single payload
// has PayloadType = domain and carries the settings at its top level
// (contract §1.4). UUIDs are derived from the content identity (client,
// gateway URL, client ID), so regenerating a profile for the same deployment
// yields the same UUIDs and MDMs treat it as an update, not a new profile.
func mobileconfig(o Options, c Client, domain string, settings *dict) []byte {
	ident := o.Identifier
	if ident == "" {
		ident = "dev.gatehouse.profile." + string(c)
	}
	name := "Claude Desktop: Gatehouse gateway"
	if c == Code {
		name = "Claude Code: Gatehouse gateway"
	}
	seed := string(c) + "\x00" + ident + "\x00" + o.GatewayURL + "\x00" + o.ClientID

	inner := &dict{}
	inner.set("PayloadDisplayName", name)
	if o.MCX {
		seed += "\x00mcx"
		inner.set("PayloadIdentifier", ident+".mcx")
		inner.set("PayloadType", "com.apple.ManagedClient.preferences")
		inner.set("PayloadUUID", stableUUID("payload\x00"+seed))
		inner.set("PayloadVersion", 1)
		forced := &dict{}
		forced.set("mcx_preference_settings", settings)
		dom := &dict{}
		dom.set("Forced", []any{forced})
		content := &dict{}
		content.set(domain, dom)
		inner.set("PayloadContent", content)
	} else {
		inner.set("PayloadIdentifier", ident+"."+domain)
		inner.set("PayloadType", domain)
		inner.set("PayloadUUID", stableUUID("payload\x00"+seed))
		inner.set("PayloadVersion", 1)
		for i, k := range settings.keys {
			inner.set(k, settings.vals[i])
		}
	}

	outer := &dict{}
	outer.set("PayloadContent", []any{inner})
	outer.set("PayloadDescription", "Routes "+strings.TrimSuffix(name, ": Gatehouse gateway")+" through the Gatehouse gateway at "+o.GatewayURL+" with Entra ID sign-in. Contains no secrets.")
	outer.set("PayloadDisplayName", name)
	outer.set("PayloadIdentifier", ident)
	if o.Organization != "" {
		outer.set("PayloadOrganization", o.Organization)
	}
	outer.set("PayloadScope", "System")
	outer.set("PayloadType", "Configuration")
	outer.set("PayloadUUID", stableUUID("profile\x00"+seed))
	outer.set("PayloadVersion", 1)

	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">` + "\n")
	b.WriteString(`<plist version="1.0">` + "\n")
	writePlist(&b, outer, "")
	b.WriteString("</plist>\n")
	return b.Bytes()
}

func writePlist(b *bytes.Buffer, v any, ind string) {
	switch v := v.(type) {
	case string:
		b.WriteString(ind + "<string>" + plistEscape(v) + "</string>\n")
	case bool:
		b.WriteString(ind + "<" + strconv.FormatBool(v) + "/>\n")
	case int:
		b.WriteString(ind + "<integer>" + strconv.Itoa(v) + "</integer>\n")
	case []any:
		b.WriteString(ind + "<array>\n")
		for _, e := range v {
			writePlist(b, e, ind+"\t")
		}
		b.WriteString(ind + "</array>\n")
	case *dict:
		b.WriteString(ind + "<dict>\n")
		for i, k := range v.keys {
			b.WriteString(ind + "\t<key>" + plistEscape(k) + "</key>\n")
			writePlist(b, v.vals[i], ind+"\t")
		}
		b.WriteString(ind + "</dict>\n")
	default:
		panic("profile: unsupported value type")
	}
}

// plistEscape escapes XML text the way Apple's plist writer does: only &, <
// and > (quotes stay literal, so JSON-in-a-string stays readable).
func plistEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// stableUUID derives an RFC 4122 version-5-shaped UUID from s.
func stableUUID(s string) string {
	h := sha256.Sum256([]byte("gatehouse-profile\x00" + s))
	h[6] = (h[6] & 0x0f) | 0x50
	h[8] = (h[8] & 0x3f) | 0x80
	return strings.ToUpper(fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16]))
}

// reg renders a regedit import file: "Windows Registry Editor Version 5.00",
// one key, REG_SZ values directly under it (contract §1.2, §1.4), CRLF line
// endings, encoded UTF-16LE with a byte-order mark as regedit itself exports
// (so non-ASCII text survives whatever the machine's code page).
//
// With replace, the file first deletes the key ("[-KEY]"), so that values an
// earlier profile or a hand edit left behind (a static API key, another
// provider) do not survive: the profile is the whole policy, as a
// .mobileconfig is.
func reg(key string, vals *dict, replace bool) []byte {
	var s strings.Builder
	s.WriteString("Windows Registry Editor Version 5.00\r\n\r\n")
	if replace {
		s.WriteString("[-" + key + "]\r\n\r\n")
	}
	s.WriteString("[" + key + "]\r\n")
	for i, k := range vals.keys {
		v, _ := vals.vals[i].(string) // every registry value here is REG_SZ
		s.WriteString(regQuote(k) + "=" + regQuote(v) + "\r\n")
	}
	s.WriteString("\r\n")
	return utf16LE(s.String())
}

// regQuote quotes a .reg string: backslash and double quote are escaped with
// a backslash. Values never contain line breaks (validated).
func regQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func utf16LE(s string) []byte {
	u := utf16.Encode([]rune(s))
	out := make([]byte, 2+2*len(u))
	out[0], out[1] = 0xFF, 0xFE
	for i, r := range u {
		out[2+2*i] = byte(r)
		out[3+2*i] = byte(r >> 8)
	}
	return out
}

// DecodeReg decodes a .reg file produced by Generate (UTF-16LE with BOM, or
// UTF-8) into its key and values. It exists so tests and `gatehouse doctor`
// can read a profile back; it understands only REG_SZ "name"="value" lines.
func DecodeReg(data []byte) (key string, values map[string]string, err error) {
	text, err := decodeRegText(data)
	if err != nil {
		return "", nil, err
	}
	lines := strings.Split(text, "\r\n")
	if len(lines) < 3 || lines[0] != "Windows Registry Editor Version 5.00" {
		return "", nil, fmt.Errorf("profile: not a version 5.00 .reg file with CRLF line endings")
	}
	values = map[string]string{}
	var deleted string
	for n, line := range lines[1:] {
		switch {
		case line == "":
		case strings.HasPrefix(line, "[-") && strings.HasSuffix(line, "]"):
			// A key deletion; it must precede the key it deletes.
			if key != "" || deleted != "" {
				return "", nil, fmt.Errorf("profile: line %d: unexpected key deletion", n+2)
			}
			deleted = line[2 : len(line)-1]
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			if key != "" {
				return "", nil, fmt.Errorf("profile: line %d: more than one key", n+2)
			}
			key = line[1 : len(line)-1]
		case strings.HasPrefix(line, `"`):
			name, rest, err := regUnquote(line)
			if err != nil || !strings.HasPrefix(rest, "=") {
				return "", nil, fmt.Errorf("profile: line %d: malformed value line", n+2)
			}
			val, rest, err := regUnquote(rest[1:])
			if err != nil || rest != "" {
				return "", nil, fmt.Errorf("profile: line %d: only REG_SZ string values are supported", n+2)
			}
			if _, dup := values[name]; dup {
				return "", nil, fmt.Errorf("profile: line %d: value %q set twice", n+2, name)
			}
			values[name] = val
		default:
			return "", nil, fmt.Errorf("profile: line %d: unexpected content", n+2)
		}
	}
	if key == "" {
		return "", nil, fmt.Errorf("profile: no registry key")
	}
	if deleted != "" && !strings.EqualFold(deleted, key) {
		return "", nil, fmt.Errorf("profile: deletes %s but sets %s", deleted, key)
	}
	return key, values, nil
}

func decodeRegText(data []byte) (string, error) {
	if len(data) >= 2 && data[0] == 0xFF && data[1] == 0xFE {
		if len(data)%2 != 0 {
			return "", fmt.Errorf("profile: odd-length UTF-16 data")
		}
		u := make([]uint16, 0, len(data)/2-1)
		for i := 2; i < len(data); i += 2 {
			u = append(u, uint16(data[i])|uint16(data[i+1])<<8)
		}
		return string(utf16.Decode(u)), nil
	}
	if !utf8.Valid(data) {
		return "", fmt.Errorf("profile: the .reg file is neither UTF-16 LE (as regedit writes it) nor valid UTF-8")
	}
	return strings.TrimPrefix(string(data), "\uFEFF"), nil
}

func regUnquote(s string) (val, rest string, err error) {
	if !strings.HasPrefix(s, `"`) {
		return "", "", fmt.Errorf("missing quote")
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if i+1 >= len(s) || (s[i+1] != '\\' && s[i+1] != '"') {
				return "", "", fmt.Errorf("bad escape")
			}
			i++
			b.WriteByte(s[i])
		case '"':
			return b.String(), s[i+1:], nil
		default:
			b.WriteByte(s[i])
		}
	}
	return "", "", fmt.Errorf("unterminated string")
}
