package authn

import (
	"crypto"
	"crypto/rsa"
	"strings"
)

// checkPSSSalt enforces RFC 7518 §3.5 for PS256/PS384/PS512: the PSS salt
// is exactly as long as the hash output. go-jose verifies PSS with
// rsa.PSSSaltLengthAuto, which accepts any salt length (Wycheproof
// json_web_signature tcId 281–286, "SaltLenChanged"). It runs after
// go-jose has verified the signature, so it only ever narrows acceptance.
func checkPSSSalt(t *token, k *verificationKey) *Error {
	var h crypto.Hash
	switch t.alg {
	case "PS256":
		h = crypto.SHA256
	case "PS384":
		h = crypto.SHA384
	case "PS512":
		h = crypto.SHA512
	default:
		return nil
	}
	pub, ok := k.key.(*rsa.PublicKey)
	if !ok {
		return fail(ReasonBadSignature, "key %s is not an RSA key", k.kid)
	}
	i := strings.LastIndexByte(t.raw, '.')
	if i < 0 {
		return fail(ReasonMalformedToken, "not a compact JWS")
	}
	sig, err := b64decode(t.raw[i+1:])
	if err != nil {
		return fail(ReasonMalformedToken, "signature: %v", err)
	}
	d := h.New()
	d.Write([]byte(t.raw[:i]))
	if err := rsa.VerifyPSS(pub, h, d.Sum(nil), sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}); err != nil {
		return fail(ReasonBadSignature, "signature with key %s: PSS salt length is not the hash length", k.kid)
	}
	return nil
}
