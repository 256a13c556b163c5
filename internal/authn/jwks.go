package authn

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"fmt"
	"math/big"
	"strings"

	"github.com/go-jose/go-jose/v4"
	josejson "github.com/go-jose/go-jose/v4/json"
)

const (
	maxJWKSBytes   = 64 << 10 // security.md §2 row 8
	maxJWKSKeys    = 100
	minRSABits     = 2048
	maxRSABits     = 8192
	maxDiscoverySz = 64 << 10
)

// verificationKey is one usable public key from a key set.
type verificationKey struct {
	kid string
	alg string // the JWK's alg member, "" when absent
	key any    // *rsa.PublicKey or *ecdsa.PublicKey
	fp  string // material fingerprint for duplicate detection
}

// keyMap is an immutable snapshot of a key set.
type keyMap struct {
	keys      map[string]*verificationKey
	ambiguous map[string]bool
}

// jwksFilter selects the keys a provider may use.
type jwksFilter struct {
	algs map[string]bool // allowed token algs; a key's alg member must be one of them
	// keyIssuer, when set, is the issuer a key's Entra "issuer" member must
	// name (tenant-specific, or the "{tenantid}" template substituted).
	keyIssuer string
	tenantID  string
}

// skippedKey explains why a key was ignored (for logs and tests).
type skippedKey struct {
	KID    string
	Reason string
}

// ParseJWKS parses a JWK Set tolerantly: one bad or unsupported key is
// skipped, never fatal, and only keys that pass every filter are kept:
// kty RSA (2048–8192 bits, e = 65537, no ROCA fingerprint) or EC (P-256,
// P-384, P-521); use absent or "sig"; key_ops absent or containing
// "verify"; alg absent or allowed; a well-formed kid; for Entra, the key's
// issuer member matching the tenant. A kid that appears twice with
// different material is ambiguous and unusable. The set as a whole fails
// only if it is not a JSON object with a "keys" array, or is too large.
func parseJWKS(body []byte, f jwksFilter) (*keyMap, []skippedKey, error) {
	if len(body) > maxJWKSBytes {
		return nil, nil, fmt.Errorf("key set larger than %d bytes", maxJWKSBytes)
	}
	var set struct {
		Keys []josejson.RawMessage `json:"keys"`
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return nil, nil, fmt.Errorf("key set is not a JSON object")
	}
	if err := josejson.Unmarshal(body, &set); err != nil {
		return nil, nil, fmt.Errorf("key set: %v", err)
	}
	if set.Keys == nil {
		return nil, nil, fmt.Errorf("key set has no keys array")
	}
	if len(set.Keys) > maxJWKSKeys {
		return nil, nil, fmt.Errorf("key set has %d keys (max %d)", len(set.Keys), maxJWKSKeys)
	}
	km := &keyMap{keys: map[string]*verificationKey{}, ambiguous: map[string]bool{}}
	var skipped []skippedKey
	for _, raw := range set.Keys {
		k, err := parseKey(raw, f)
		if err != nil {
			skipped = append(skipped, skippedKey{KID: k.kid, Reason: err.Error()})
			continue
		}
		if prev, dup := km.keys[k.kid]; dup {
			if prev.fp != k.fp || prev.alg != k.alg {
				km.ambiguous[k.kid] = true
				skipped = append(skipped, skippedKey{KID: k.kid, Reason: "kid appears twice with different keys"})
			}
			continue
		}
		if km.ambiguous[k.kid] {
			continue
		}
		km.keys[k.kid] = k
	}
	for kid := range km.ambiguous {
		delete(km.keys, kid)
	}
	return km, skipped, nil
}

func parseKey(raw []byte, f jwksFilter) (*verificationKey, error) {
	var meta struct {
		Kty    string   `json:"kty"`
		Use    string   `json:"use"`
		Kid    string   `json:"kid"`
		Alg    string   `json:"alg"`
		KeyOps []string `json:"key_ops"`
		Issuer string   `json:"issuer"`
		D      string   `json:"d"`
	}
	vk := &verificationKey{}
	if err := josejson.Unmarshal(raw, &meta); err != nil {
		return vk, fmt.Errorf("not a JWK object: %v", err)
	}
	vk.kid = truncate(meta.Kid, maxKIDLen)
	if !validKID(meta.Kid) {
		return vk, fmt.Errorf("kid missing or malformed")
	}
	if meta.Use != "" && meta.Use != "sig" {
		return vk, fmt.Errorf("use %q is not sig", truncate(meta.Use, 16))
	}
	if meta.KeyOps != nil {
		ok := false
		for _, op := range meta.KeyOps {
			ok = ok || op == "verify"
		}
		if !ok {
			return vk, fmt.Errorf("key_ops lacks verify")
		}
	}
	if meta.D != "" {
		return vk, fmt.Errorf("key set publishes private key material")
	}
	switch meta.Kty {
	case "RSA", "EC":
	default:
		return vk, fmt.Errorf("kty %q not supported", truncate(meta.Kty, 16))
	}
	if meta.Alg != "" && !f.algs[meta.Alg] {
		return vk, fmt.Errorf("alg %q not allowed", truncate(meta.Alg, 16))
	}
	if f.keyIssuer != "" && meta.Issuer != "" {
		iss := strings.ReplaceAll(meta.Issuer, "{tenantid}", f.tenantID)
		if iss != f.keyIssuer {
			return vk, fmt.Errorf("key issuer %q is not the tenant's issuer", truncate(meta.Issuer, 128))
		}
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(raw); err != nil {
		return vk, fmt.Errorf("invalid %s key: %v", meta.Kty, err)
	}
	vk.alg = meta.Alg
	switch k := jwk.Key.(type) {
	case *rsa.PublicKey:
		if meta.Alg != "" && !strings.HasPrefix(meta.Alg, "RS") && !strings.HasPrefix(meta.Alg, "PS") {
			return vk, fmt.Errorf("alg %s does not match an RSA key", meta.Alg)
		}
		if n := k.N.BitLen(); n < minRSABits || n > maxRSABits {
			return vk, fmt.Errorf("RSA key of %d bits (need %d-%d)", n, minRSABits, maxRSABits)
		}
		if k.E != 65537 {
			return vk, fmt.Errorf("RSA public exponent %d (need 65537)", k.E)
		}
		if rocaVulnerable(k.N) {
			return vk, fmt.Errorf("RSA key has the ROCA fingerprint (CVE-2017-15361)")
		}
		vk.key = k
		vk.fp = "RSA:" + k.N.Text(16)
	case *ecdsa.PublicKey:
		want := map[string]elliptic.Curve{"ES256": elliptic.P256(), "ES384": elliptic.P384(), "ES512": elliptic.P521()}
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
		default:
			return vk, fmt.Errorf("unsupported curve")
		}
		if meta.Alg != "" && want[meta.Alg] != k.Curve {
			return vk, fmt.Errorf("alg %s does not match the key's curve", meta.Alg)
		}
		vk.key = k
		vk.fp = "EC:" + k.Curve.Params().Name + ":" + k.X.Text(16) + ":" + k.Y.Text(16)
	default:
		return vk, fmt.Errorf("unsupported key material %T", jwk.Key)
	}
	return vk, nil
}

// keyFitsAlg reports whether a token alg may be verified with k.
func keyFitsAlg(k *verificationKey, alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch pub := k.key.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return pub.Curve == elliptic.P256()
		case "ES384":
			return pub.Curve == elliptic.P384()
		case "ES512":
			return pub.Curve == elliptic.P521()
		}
	}
	return false
}

// rocaPrimes and the test below implement the published ROCA detection
// (Nemec et al., CCS 2017): vulnerable moduli N satisfy, for each small
// prime p, that N mod p lies in the subgroup generated by 65537 mod p.
var rocaPrimes = []int64{3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97, 101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167}

func rocaVulnerable(n *big.Int) bool {
	var m big.Int
	for _, p := range rocaPrimes {
		r := m.Mod(n, big.NewInt(p)).Int64()
		g := 65537 % p
		in := false
		for x, i := int64(1), int64(0); i < p; i++ {
			if x == r {
				in = true
				break
			}
			x = x * g % p
		}
		if !in {
			return false
		}
	}
	return true
}
