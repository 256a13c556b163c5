// Package content captures prompts and responses for the audit trail
// according to a policy (off, metadata, redacted, full): it redacts secrets
// and personal data, encrypts what it keeps with AES-256-GCM under a
// rotatable key ring, and hands the result to a store.
package content

import (
	"fmt"
	"math/big"
	"regexp"
	"strings"
)

// RedactorOptions configures NewRedactor.
type RedactorOptions struct {
	// NationalIDPatterns are extra regular expressions (RE2) whose matches
	// are replaced with [REDACTED:national_id], e.g. `\b\d{3}-\d{2}-\d{4}\b`
	// for US SSNs. Default none.
	NationalIDPatterns []string
}

// Redactor removes secrets and common personal data from text. It is safe
// for concurrent use.
type Redactor struct {
	rules []rule
}

type rule struct {
	kind  string
	re    *regexp.Regexp
	check func(string) bool // optional validator of a match
}

// NewRedactor compiles the built-in rules plus opts' national-ID patterns.
func NewRedactor(opts RedactorOptions) (*Redactor, error) {
	r := &Redactor{rules: []rule{
		// PEM private keys, whole block.
		{kind: "private_key", re: regexp.MustCompile(`-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z0-9 ]*PRIVATE KEY-----`)},
		// Bearer tokens and JWTs.
		{kind: "bearer_token", re: regexp.MustCompile(`(?i)\bbearer\s+[A-Za-z0-9\-._~+/]+=*`)},
		{kind: "jwt", re: regexp.MustCompile(`\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}`)},
		// Provider API keys with recognisable prefixes.
		{kind: "api_key", re: regexp.MustCompile(`\b(?:sk-ant-[A-Za-z0-9_-]{10,}|sk-(?:proj-)?[A-Za-z0-9_-]{20,}|AKIA[0-9A-Z]{16}|ASIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}|xox[abprs]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35}|glpat-[A-Za-z0-9_-]{20,})`)},
		// key=value / "api_key": "value" style secrets.
		{kind: "api_key", re: regexp.MustCompile(`(?i)\b(?:api[_-]?key|secret|password|passwd|access[_-]?token|client[_-]?secret)\b["']?\s*[:=]\s*["']?[^\s"',;]{8,}`)},
		// Card numbers in the printed layouts (4-4-4-4[-3], Amex 4-6-5) or
		// 13-19 contiguous digits, Luhn-valid.
		{kind: "card_number", re: regexp.MustCompile(`\b(?:\d{4}[ -]){3}\d{4}(?:[ -]?\d{3})?\b|\b\d{4}[ -]\d{6}[ -]\d{5}\b|\b\d{13,19}\b`), check: luhnOK},
		// IBAN: country, check digits, up to 30 alphanumerics (spaces every 4 allowed), mod-97 valid.
		{kind: "iban", re: regexp.MustCompile(`\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b`), check: ibanOK},
		{kind: "email", re: regexp.MustCompile(`\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b`)},
	}}
	for i, p := range opts.NationalIDPatterns {
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, fmt.Errorf("national_id_patterns[%d]: %v", i, err)
		}
		r.rules = append(r.rules, rule{kind: "national_id", re: re})
	}
	return r, nil
}

// Redact returns s with every finding replaced by [REDACTED:<kind>] and
// the number of replacements per kind.
func (r *Redactor) Redact(s string) (string, map[string]int) {
	counts := map[string]int{}
	for _, ru := range r.rules {
		s = ru.re.ReplaceAllStringFunc(s, func(m string) string {
			if ru.check != nil && !ru.check(m) {
				return m
			}
			counts[ru.kind]++
			return "[REDACTED:" + ru.kind + "]"
		})
	}
	return s, counts
}

func digitsOnly(s string) string {
	var b strings.Builder
	for _, c := range s {
		if c >= '0' && c <= '9' {
			b.WriteRune(c)
		}
	}
	return b.String()
}

// luhnOK reports whether the digits of s (13–19 of them) pass Luhn.
func luhnOK(s string) bool {
	d := digitsOnly(s)
	if len(d) < 13 || len(d) > 19 {
		return false
	}
	sum := 0
	for i := range len(d) {
		n := int(d[len(d)-1-i] - '0')
		if i%2 == 1 {
			n *= 2
			if n > 9 {
				n -= 9
			}
		}
		sum += n
	}
	return sum%10 == 0
}

// ibanOK checks an IBAN's ISO 13616 mod-97 checksum.
func ibanOK(s string) bool {
	s = strings.ReplaceAll(s, " ", "")
	if len(s) < 15 || len(s) > 34 {
		return false
	}
	re := s[4:] + s[:4]
	var b strings.Builder
	for _, c := range re {
		switch {
		case c >= '0' && c <= '9':
			b.WriteRune(c)
		case c >= 'A' && c <= 'Z':
			fmt.Fprintf(&b, "%d", c-'A'+10)
		default:
			return false
		}
	}
	n, ok := new(big.Int).SetString(b.String(), 10)
	return ok && new(big.Int).Mod(n, big.NewInt(97)).Int64() == 1
}
