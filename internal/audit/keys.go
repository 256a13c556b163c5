package audit

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// ParseSigningKey reads an Ed25519 private key written as PEM (PKCS #8,
// "PRIVATE KEY", as `openssl genpkey -algorithm ed25519` writes) or as the
// base64 of its 32-byte seed. Errors never include the key material.
func ParseSigningKey(s string) (ed25519.PrivateKey, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "-----BEGIN") {
		b, _ := pem.Decode([]byte(s))
		if b == nil {
			return nil, errors.New("signing key: malformed PEM")
		}
		k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
		if err != nil {
			return nil, errors.New("signing key: not a PKCS #8 private key")
		}
		ed, ok := k.(ed25519.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("signing key: a %T, not Ed25519", k)
		}
		return ed, nil
	}
	seed, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, errors.New("signing key: neither PEM nor the base64 of a 32-byte Ed25519 seed")
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// ParseVerifyKey reads an Ed25519 public key written as PEM ("PUBLIC
// KEY", PKIX) or as base64 of its 32 bytes.
func ParseVerifyKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "-----BEGIN") {
		b, _ := pem.Decode([]byte(s))
		if b == nil {
			return nil, errors.New("verify key: malformed PEM")
		}
		k, err := x509.ParsePKIXPublicKey(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("verify key: %v", err)
		}
		ed, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("verify key: a %T, not Ed25519", k)
		}
		return ed, nil
	}
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, errors.New("verify key: neither PEM nor the base64 of a 32-byte Ed25519 public key")
	}
	return ed25519.PublicKey(raw), nil
}

// EncodeKeys renders a key pair the way ParseSigningKey and
// ParseVerifyKey read them: PKCS #8 PEM and base64 public key.
func EncodeKeys(priv ed25519.PrivateKey) (privPEM, pubB64 string, err error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", "", err
	}
	privPEM = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	return privPEM, base64.StdEncoding.EncodeToString(priv.Public().(ed25519.PublicKey)), nil
}
