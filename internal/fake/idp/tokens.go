package idp

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash"
	"math/big"
	"time"
)

// Claims returns the claims of an Entra v2 ID token for u, issued now by
// tid for audience (the client ID). Callers may edit the map and pass it to
// Sign to build variants.
func (s *Server) Claims(tid, audience string, u User, ttl time.Duration) map[string]any {
	now := s.opts.Now()
	c := map[string]any{
		"aud":                audience,
		"iss":                s.Issuer(tid),
		"iat":                now.Unix(),
		"nbf":                now.Unix(),
		"exp":                now.Add(ttl).Unix(),
		"aio":                randomID(48),
		"name":               u.Name,
		"oid":                u.OID,
		"preferred_username": u.Username,
		"rh":                 "1.AAAA" + randomID(24) + ".",
		"sid":                NewGUID(),
		"sub":                pairwiseSub(u.OID, audience),
		"tid":                tid,
		"uti":                randomID(16),
		"ver":                "2.0",
	}
	if u.Email != "" {
		c["email"] = u.Email
	}
	if len(u.Roles) > 0 {
		c["roles"] = append([]string(nil), u.Roles...)
	}
	if len(u.Groups) > 0 {
		c["groups"] = append([]string(nil), u.Groups...)
	}
	if tid == OktaTenant {
		c = s.oktaClaims(audience, u, ttl)
	}
	return c
}

func (s *Server) oktaClaims(audience string, u User, ttl time.Duration) map[string]any {
	now := s.opts.Now()
	c := map[string]any{
		"sub":                u.OID,
		"name":               u.Name,
		"email":              u.Email,
		"ver":                1,
		"iss":                s.Issuer(OktaTenant),
		"aud":                audience,
		"iat":                now.Unix(),
		"exp":                now.Add(ttl).Unix(),
		"jti":                "ID." + randomID(32),
		"amr":                []string{"pwd", "mfa"},
		"idp":                "00o" + randomID(12),
		"preferred_username": u.Username,
		"auth_time":          now.Unix(),
		"at_hash":            randomID(16),
	}
	if len(u.Groups) > 0 {
		c["groups"] = append([]string(nil), u.Groups...)
	}
	return c
}

// IDToken mints an Entra-shaped v2 ID token (for OktaTenant: an Okta-shaped
// one) signed with tid's current key.
func (s *Server) IDToken(tid, audience string, u User, ttl time.Duration) string {
	return s.Sign(tid, nil, s.Claims(tid, audience, u, ttl))
}

// AccessTokenClaims returns the claims of an Entra v2 access token for the
// API audience (its app ID GUID), requested by client clientID with the
// delegated scopes scp (space-separated in the token).
func (s *Server) AccessTokenClaims(tid, audience, clientID string, u User, scp []string, ttl time.Duration) map[string]any {
	c := s.Claims(tid, audience, u, ttl)
	if tid == OktaTenant {
		c["jti"] = "AT." + randomID(32)
		c["cid"] = clientID
		c["uid"] = u.OID
		c["scp"] = append([]string(nil), scp...)
		c["sub"] = u.Username
		delete(c, "at_hash")
		delete(c, "amr")
		delete(c, "idp")
		return c
	}
	delete(c, "email")
	c["azp"] = clientID
	c["azpacr"] = "0"
	if len(scp) > 0 {
		c["scp"] = joinSpace(scp)
	}
	return c
}

// AccessToken mints an Entra-shaped v2 access token (see AccessTokenClaims).
func (s *Server) AccessToken(tid, audience, clientID string, u User, scp []string, ttl time.Duration) string {
	return s.Sign(tid, nil, s.AccessTokenClaims(tid, audience, clientID, u, scp, ttl))
}

// V1Token mints an Entra v1 access token: iss IssuerV1(tid), ver "1.0",
// appid instead of azp, upn/unique_name, and x5t in the header.
func (s *Server) V1Token(tid, audience, clientID string, u User, ttl time.Duration) string {
	now := s.opts.Now()
	c := map[string]any{
		"aud":         audience,
		"iss":         s.IssuerV1(tid),
		"iat":         now.Unix(),
		"nbf":         now.Unix(),
		"exp":         now.Add(ttl).Unix(),
		"acr":         "1",
		"aio":         randomID(48),
		"amr":         []string{"pwd", "mfa"},
		"appid":       clientID,
		"appidacr":    "0",
		"name":        u.Name,
		"oid":         u.OID,
		"scp":         "user_impersonation",
		"sub":         pairwiseSub(u.OID, audience),
		"tid":         tid,
		"unique_name": u.Username,
		"upn":         u.Username,
		"uti":         randomID(16),
		"ver":         "1.0",
	}
	if len(u.Roles) > 0 {
		c["roles"] = append([]string(nil), u.Roles...)
	}
	k := s.CurrentKey(tid)
	return s.Sign(tid, map[string]any{"typ": "JWT", "alg": "RS256", "x5t": k.X5T, "kid": k.KID}, c)
}

// GraphToken mints a token shaped like a Microsoft Graph access token: aud
// Graph, and a "nonce" member in the header (which makes it unverifiable by
// anyone but Graph).
func (s *Server) GraphToken(tid, clientID string, u User, ttl time.Duration) string {
	c := s.AccessTokenClaims(tid, GraphAppID, clientID, u, []string{"openid", "profile", "email", "User.Read"}, ttl)
	c["aud"] = GraphAppID
	c["ver"] = "1.0"
	c["iss"] = "https://sts.windows.net/" + tid + "/"
	k := s.CurrentKey(tid)
	return s.Sign(tid, map[string]any{"typ": "JWT", "nonce": randomID(32), "alg": "RS256", "x5t": k.X5T, "kid": k.KID}, c)
}

// Sign signs arbitrary claims with tid's current key. The header defaults
// to {"typ":"JWT","alg":"RS256","kid":<current kid>}; a given header gets
// "alg" and "kid" added unless it already has them (set a member to nil to
// leave it out). The signature is RS256 whatever "alg" says.
func (s *Server) Sign(tid string, header, claims map[string]any) string {
	k := s.CurrentKey(tid)
	h := map[string]any{"typ": "JWT", "alg": "RS256", "kid": k.KID}
	if header != nil {
		h = map[string]any{}
		for n, v := range header {
			h[n] = v
		}
		if _, ok := h["alg"]; !ok {
			h["alg"] = "RS256"
		}
		if _, ok := h["kid"]; !ok {
			h["kid"] = k.KID
		}
		for n, v := range h {
			if v == nil {
				delete(h, n)
			}
		}
	}
	return SignBytes("RS256", k.Private, mustJSON(h), mustJSON(claims))
}

// SignRaw signs exact header and payload JSON bytes with tid's current key
// (RS256), for duplicate-member and parser-differential tests.
func (s *Server) SignRaw(tid string, headerJSON, payloadJSON []byte) string {
	return SignBytes("RS256", s.CurrentKey(tid).Private, headerJSON, payloadJSON)
}

// SignWith signs header and claims with any key and algorithm: alg is one
// of HS256/384/512 (key []byte), RS256/384/512 and PS256/384/512 (key
// *rsa.PrivateKey), ES256/384/512 (key *ecdsa.PrivateKey), EdDSA (key
// ed25519.PrivateKey) or "none" (empty signature). The header is used as
// given (nothing is added).
func SignWith(alg string, key any, header, claims map[string]any) string {
	return SignBytes(alg, key, mustJSON(header), mustJSON(claims))
}

// SignBytes is SignWith on exact JSON bytes.
func SignBytes(alg string, key any, headerJSON, payloadJSON []byte) string {
	in := b64(headerJSON) + "." + b64(payloadJSON)
	sig, err := signInput(alg, key, []byte(in))
	if err != nil {
		panic("idp: " + err.Error())
	}
	return in + "." + b64(sig)
}

func signInput(alg string, key any, in []byte) ([]byte, error) {
	hashOf := func(h crypto.Hash) []byte {
		var hh hash.Hash
		switch h {
		case crypto.SHA256:
			hh = sha256.New()
		case crypto.SHA384:
			hh = sha512.New384()
		default:
			hh = sha512.New()
		}
		hh.Write(in)
		return hh.Sum(nil)
	}
	hashFor := map[string]crypto.Hash{"256": crypto.SHA256, "384": crypto.SHA384, "512": crypto.SHA512}
	if alg == "none" {
		return nil, nil
	}
	if alg == "EdDSA" {
		k, ok := key.(ed25519.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("EdDSA needs ed25519.PrivateKey")
		}
		return ed25519.Sign(k, in), nil
	}
	if len(alg) != 5 {
		return nil, fmt.Errorf("unsupported alg %q", alg)
	}
	h, ok := hashFor[alg[2:]]
	if !ok {
		return nil, fmt.Errorf("unsupported alg %q", alg)
	}
	switch alg[:2] {
	case "HS":
		k, ok := key.([]byte)
		if !ok {
			return nil, fmt.Errorf("%s needs []byte key", alg)
		}
		var m hash.Hash
		switch h {
		case crypto.SHA256:
			m = hmac.New(sha256.New, k)
		case crypto.SHA384:
			m = hmac.New(sha512.New384, k)
		default:
			m = hmac.New(sha512.New, k)
		}
		m.Write(in)
		return m.Sum(nil), nil
	case "RS":
		k, ok := key.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("%s needs *rsa.PrivateKey", alg)
		}
		return rsa.SignPKCS1v15(rand.Reader, k, h, hashOf(h))
	case "PS":
		k, ok := key.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("%s needs *rsa.PrivateKey", alg)
		}
		return rsa.SignPSS(rand.Reader, k, h, hashOf(h), &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	case "ES":
		k, ok := key.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("%s needs *ecdsa.PrivateKey", alg)
		}
		r, sv, err := ecdsa.Sign(rand.Reader, k, hashOf(h))
		if err != nil {
			return nil, err
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		out := make([]byte, 2*size)
		r.FillBytes(out[:size])
		sv.FillBytes(out[size:])
		return out, nil
	}
	return nil, fmt.Errorf("unsupported alg %q", alg)
}

// PublicJWK returns the public JWK of an RSA key (n, e, kty, plus kid).
func PublicJWK(pub *rsa.PublicKey, kid string) map[string]any {
	return map[string]any{
		"kty": "RSA", "kid": kid, "use": "sig",
		"n": b64(pub.N.Bytes()),
		"e": b64(big.NewInt(int64(pub.E)).Bytes()),
	}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("idp: " + err.Error())
	}
	return b
}

func joinSpace(ss []string) string {
	out := ""
	for i, s := range ss {
		if i > 0 {
			out += " "
		}
		out += s
	}
	return out
}
