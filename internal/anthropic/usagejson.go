package anthropic

import (
	"bytes"
	"encoding/json"
)

// usageVals is what json.Unmarshal would put in a usageJSON, without its
// allocations: has marks the fields present with a number (JSON null
// clears a field, as it sets a pointer to nil), hasCC the cache_creation
// object.
type usageVals struct {
	in, out, ccIn, crIn, e5m, e1h int64
	has                           uint8
	hasCC                         bool
}

const (
	hasIn uint8 = 1 << iota
	hasOut
	hasCCIn
	hasCRIn
	hasE5m
	hasE1h
)

// Keys of a usage object and of its cache_creation object, by their bit
// in usageVals.has (fieldCC: cache_creation itself).
const fieldCC uint8 = 1 << 7

var usageKeys = []struct {
	name string
	bit  uint8
}{
	{"input_tokens", hasIn}, {"output_tokens", hasOut},
	{"cache_creation_input_tokens", hasCCIn}, {"cache_read_input_tokens", hasCRIn},
	{"cache_creation", fieldCC},
}

var cacheCreationKeys = []struct {
	name string
	bit  uint8
}{{"ephemeral_5m_input_tokens", hasE5m}, {"ephemeral_1h_input_tokens", hasE1h}}

// decodeUsage decodes a usage object exactly as json.Unmarshal into a
// usageJSON does (FuzzDecodeUsage compares the two): val must be valid
// JSON (the caller checks json.Valid), null decodes to nothing, keys match
// case-insensitively, a repeated key's last value wins, and a known key
// holding anything but an integer in int64 range (or null) is an error.
// It reports false on error.
func decodeUsage(val []byte, v *usageVals) bool {
	s := scanner{b: val}
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == 'n' {
		return true // null
	}
	return s.members(func(key []byte, s *scanner) bool {
		var bit uint8
		for _, k := range usageKeys {
			if fieldMatches(key, k.name) {
				bit = k.bit
				break
			}
		}
		switch bit {
		case 0:
			s.skipValue()
			return true
		case fieldCC:
			if s.i < len(s.b) && s.b[s.i] == 'n' {
				s.skipValue()
				v.hasCC, v.has = false, v.has&^(hasE5m|hasE1h)
				return true
			}
			v.hasCC = true // a repeated object decodes into the same struct
			return s.members(func(key []byte, s *scanner) bool {
				for _, k := range cacheCreationKeys {
					if fieldMatches(key, k.name) {
						return s.int64Field(v.field(k.bit), &v.has, k.bit)
					}
				}
				s.skipValue()
				return true
			})
		}
		return s.int64Field(v.field(bit), &v.has, bit)
	})
}

// field returns the value that bit marks.
func (v *usageVals) field(bit uint8) *int64 {
	switch bit {
	case hasIn:
		return &v.in
	case hasOut:
		return &v.out
	case hasCCIn:
		return &v.ccIn
	case hasCRIn:
		return &v.crIn
	case hasE5m:
		return &v.e5m
	default:
		return &v.e1h
	}
}

// merge applies v to u as Usage.merge applies a usageJSON.
func (u *Usage) mergeVals(v *usageVals) {
	set := func(dst *int64, bit uint8, x int64) {
		if v.has&bit != 0 && x >= 0 {
			*dst = x
		}
	}
	set(&u.InputTokens, hasIn, v.in)
	set(&u.OutputTokens, hasOut, v.out)
	set(&u.CacheCreationInputTokens, hasCCIn, v.ccIn)
	set(&u.CacheReadInputTokens, hasCRIn, v.crIn)
	if v.hasCC {
		set(&u.CacheCreation5m, hasE5m, v.e5m)
		set(&u.CacheCreation1h, hasE1h, v.e1h)
	}
}

// members calls fn for each member of the object at s (valid JSON), with
// the key's name (see keyName) and s at the value; fn consumes the value.
// Anything but an object is an error.
func (s *scanner) members(fn func(key []byte, s *scanner) bool) bool {
	s.ws()
	if !s.eat('{') {
		return false
	}
	for {
		s.ws()
		if s.eat('}') {
			return true
		}
		kStart := s.i
		s.skipString()
		key := keyName(s.b[kStart:s.i])
		s.ws()
		s.eat(':')
		s.ws()
		if !fn(key, s) {
			return false
		}
		s.ws()
		s.eat(',')
	}
}

// int64Field decodes the value at s into *dst as json.Unmarshal decodes
// into a *int64: null clears bit, an integer sets it, anything else fails.
func (s *scanner) int64Field(dst *int64, has *uint8, bit uint8) bool {
	start := s.i
	s.skipValue()
	tok := s.b[start:s.i]
	if len(tok) > 0 && tok[0] == 'n' {
		*has &^= bit
		return true
	}
	n, ok := parseInt64(tok)
	if !ok {
		return false
	}
	*dst, *has = n, *has|bit
	return true
}

// parseInt64 is strconv.ParseInt(string(b), 10, 64) for a JSON number
// token, without the string.
func parseInt64(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if n > (1<<63)/10 {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	if neg {
		if n > 1<<63 {
			return 0, false
		}
		return -int64(n), true
	}
	if n > 1<<63-1 {
		return 0, false
	}
	return int64(n), true
}

// keyName returns the name a raw JSON object key (quotes included)
// decodes to: the bytes between the quotes, unescaped when they hold an
// escape (then newly allocated; nil if the key is malformed).
func keyName(raw []byte) []byte {
	if len(raw) < 2 {
		return nil
	}
	k := raw[1 : len(raw)-1]
	if bytes.IndexByte(k, '\\') < 0 {
		return k
	}
	var u string
	if json.Unmarshal(raw, &u) != nil {
		return nil
	}
	return []byte(u)
}

// fieldMatches reports whether a key name selects struct field name as
// encoding/json matches them: exactly or case-insensitively (Unicode
// simple folding).
func fieldMatches(key []byte, name string) bool {
	return string(key) == name || bytes.EqualFold(key, []byte(name))
}

// stringValue is json.Unmarshal of a JSON string into a string ("" when
// val is not a string), with a fast path for printable ASCII without
// escapes (a model name), which decodes to itself.
func stringValue(val []byte) string {
	if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
		plain := true
		for _, c := range val[1 : len(val)-1] {
			if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
				plain = false
				break
			}
		}
		if plain {
			return string(val[1 : len(val)-1])
		}
	}
	var v string
	if json.Unmarshal(val, &v) != nil {
		return ""
	}
	return v
}
