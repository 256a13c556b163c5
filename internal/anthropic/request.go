package anthropic

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// Request is what the gateway needs to know about a Messages request body.
// The body itself is forwarded byte for byte; only the model value may be
// replaced, in place (see ReplaceModel).
type Request struct {
	Model     string
	Stream    bool
	MaxTokens int64

	modelStart, modelEnd int // byte span of the model value, including quotes
}

// Errors returned by PeekRequest; their text is safe to show to clients.
var (
	ErrNotJSON        = errors.New("the request body is not valid JSON")
	ErrNotObject      = errors.New("the request body must be a JSON object")
	ErrDuplicateField = errors.New("the request body repeats a top-level field")
	ErrAmbiguousField = errors.New("the request body has a top-level field that differs from model, stream or max_tokens only in letter case")
)

// PeekRequest validates that body is a JSON object and reads its top-level
// model, stream and max_tokens without decoding the rest. So that the
// gateway and the upstream cannot read different values, keys are compared
// after unescaping ("mod\u0065l" is model), a repeated model, stream or
// max_tokens is refused, and so is a key that differs from one of them only
// in letter case ("Model"), which a case-insensitive decoder upstream
// would take for it.
func PeekRequest(body []byte) (Request, error) {
	var r Request
	if !json.Valid(body) {
		return r, ErrNotJSON
	}
	s := scanner{b: body}
	s.ws()
	if !s.eat('{') {
		return r, ErrNotObject
	}
	seen := 0
	s.ws()
	if s.eat('}') {
		return r, nil
	}
	for {
		s.ws()
		kStart := s.i
		s.skipString()
		key, err := governedKey(body[kStart:s.i])
		if err != nil {
			return r, err
		}
		s.ws()
		s.eat(':')
		s.ws()
		vStart := s.i
		s.skipValue()
		val := body[vStart:s.i]
		switch key {
		case `"model"`:
			if seen&1 != 0 {
				return r, fmt.Errorf("%w: model", ErrDuplicateField)
			}
			seen |= 1
			if len(val) == 0 || val[0] != '"' {
				return r, fmt.Errorf("model must be a string")
			}
			r.Model = stringValue(val) // the body is valid JSON: a string value decodes
			r.modelStart, r.modelEnd = vStart, s.i
		case `"stream"`:
			if seen&2 != 0 {
				return r, fmt.Errorf("%w: stream", ErrDuplicateField)
			}
			seen |= 2
			if string(val) == "true" {
				r.Stream = true
			}
		case `"max_tokens"`:
			if seen&4 != 0 {
				return r, fmt.Errorf("%w: max_tokens", ErrDuplicateField)
			}
			seen |= 4
			if n, err := strconv.ParseInt(string(val), 10, 64); err == nil {
				r.MaxTokens = n
			}
		}
		s.ws()
		if s.eat(',') {
			continue
		}
		break
	}
	return r, nil
}

// governedKey returns the raw top-level key in its canonical quoted form
// when it names model, stream or max_tokens (escaped or not), "" for any
// other key; a key equal to one of them but for letter case is an error.
func governedKey(raw []byte) (string, error) {
	switch string(raw) {
	case `"model"`, `"stream"`, `"max_tokens"`:
		return string(raw), nil
	}
	k := keyName(raw)
	if n := len(k); n != len("model") && n != len("stream") && n != len("max_tokens") && isASCII(k) {
		return "", nil // the common case: another field (ASCII letters fold only to the same length)
	}
	for _, f := range governedFields {
		if string(k) == f {
			return `"` + f + `"`, nil
		}
		if fieldMatches(k, f) {
			return "", fmt.Errorf("%w: %q", ErrAmbiguousField, k)
		}
	}
	return "", nil
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

var governedFields = []string{"model", "stream", "max_tokens"}

// ReplaceModel returns body with the model value replaced by model. Every
// other byte is unchanged. body must be the slice PeekRequest read.
func (r Request) ReplaceModel(body []byte, model string) []byte {
	if r.modelEnd == 0 || r.Model == model {
		return body
	}
	q, _ := json.Marshal(model)
	out := make([]byte, 0, len(body)-(r.modelEnd-r.modelStart)+len(q))
	out = append(out, body[:r.modelStart]...)
	out = append(out, q...)
	return append(out, body[r.modelEnd:]...)
}

// scanner skips over already-validated JSON.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) eat(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *scanner) skipString() {
	if s.i >= len(s.b) {
		return
	}
	s.i++ // opening quote
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case '\\':
			s.i += 2
		case '"':
			s.i++
			return
		default:
			s.i++
		}
	}
	if s.i > len(s.b) { // an escape at the very end of malformed input
		s.i = len(s.b)
	}
}

func (s *scanner) skipValue() {
	if s.i >= len(s.b) {
		return
	}
	switch s.b[s.i] {
	case '"':
		s.skipString()
	case '{', '[':
		depth := 0
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case '"':
				s.skipString()
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					s.i++
					return
				}
			}
			s.i++
		}
	default: // number, true, false, null
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return
			}
			s.i++
		}
	}
}
