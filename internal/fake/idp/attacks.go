package idp

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Attack is one request of the security.md §2 catalogue, expressed as the
// credential headers (and optional query string) to send.
type Attack struct {
	Name       string
	Row        int         // security.md §2 row
	Header     http.Header // the credential headers to send
	Query      string      // raw query to append to the URL ("" = none)
	WantStatus int         // 401 or 403
	WantReason string      // authn reason code
}

// Attacks returns the attack catalogue against a gateway configured with
// one identity provider: type entra (required: the fake's loopback issuer
// is not recognised as Entra by host), issuer s.Issuer(tid), audiences
// [audience], token_mode id_token, required_roles ["Claude.User"],
// everything else at its default (RS256 only, v1 refused, clock skew 60s,
// max lifetime 12h, group overage deny, no max_token_age). The gateway's
// keys must be loaded (readyz) before replaying. Every request must be
// refused with WantStatus and WantReason, and must reach no upstream.
// Tokens are minted now, so replay them promptly (within their 1h
// lifetime). In YAML:
//
//	identity:
//	  type: entra
//	  issuer: <s.Issuer(tid)>
//	  audiences: [<audience>]
//	  required_roles: [Claude.User]
func Attacks(s *Server, tid, audience string) []Attack {
	var out []Attack
	add := func(row int, name string, status int, reason string, h http.Header) {
		out = append(out, Attack{Name: name, Row: row, Header: h, WantStatus: status, WantReason: reason})
	}
	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }
	u := s.DefaultUser()
	if len(u.Roles) == 0 {
		u.Roles = []string{"Claude.User"}
	}
	base := func() map[string]any { return s.Claims(tid, audience, u, time.Hour) }
	with := func(edit func(c map[string]any)) map[string]any {
		c := base()
		edit(c)
		return c
	}
	k := s.CurrentKey(tid)
	hdr := func(extra map[string]any) map[string]any {
		h := map[string]any{"typ": "JWT", "alg": "RS256", "kid": k.KID}
		for n, v := range extra {
			h[n] = v
		}
		return h
	}
	good := s.Sign(tid, nil, base())
	parts := strings.Split(good, ".")
	now := s.opts.Now()

	// Row 1: alg none in every casing, with an empty or bogus signature.
	for _, alg := range []string{"none", "None", "NONE", "nOnE"} {
		unsigned := b64(mustJSON(hdr(map[string]any{"alg": alg}))) + "." + parts[1]
		add(1, "alg "+alg+" with empty signature", 401, "malformed_token", bearer(unsigned+"."))
		add(1, "alg "+alg+" with signature", 401, "unsupported_algorithm", bearer(unsigned+"."+parts[2]))
	}
	add(1, "alg none without trailing dot", 401, "malformed_token", bearer(b64(mustJSON(hdr(map[string]any{"alg": "none"})))+"."+parts[1]))

	// Row 2: HS256 keyed with the public key in several encodings.
	pub := &k.Private.PublicKey
	der, _ := x509.MarshalPKIXPublicKey(pub)
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	jwkBytes, _ := json.Marshal(PublicJWK(pub, k.KID))
	for name, secret := range map[string][]byte{
		"n||e": append(pub.N.Bytes(), 1, 0, 1), "PEM": pemBytes, "DER": der, "JWK": jwkBytes,
		"pkcs1": x509.MarshalPKCS1PublicKey(pub),
	} {
		add(2, "HS256 keyed with the RSA public key ("+name+")", 401, "unsupported_algorithm",
			bearer(SignWith("HS256", secret, hdr(map[string]any{"alg": "HS256"}), base())))
	}

	// Row 3: strong but unexpected algorithms, by an attacker key and by the real key.
	atk, _ := rsa.GenerateKey(rand.Reader, 2048)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for _, alg := range []string{"PS256", "RS512", "RS384", "PS512"} {
		add(3, alg+" signed by an attacker key", 401, "unsupported_algorithm", bearer(SignWith(alg, atk, hdr(map[string]any{"alg": alg}), base())))
		add(3, alg+" signed by the issuer's key", 401, "unsupported_algorithm", bearer(SignWith(alg, k.Private, hdr(map[string]any{"alg": alg}), base())))
	}
	add(3, "ES256 signed by an attacker key", 401, "unsupported_algorithm", bearer(SignWith("ES256", ec, hdr(map[string]any{"alg": "ES256"}), base())))
	add(3, "RS256 signed by an attacker key with the issuer's kid", 401, "bad_signature", bearer(SignWith("RS256", atk, hdr(nil), base())))

	// Row 4: kid injection.
	for name, kid := range map[string]string{
		"path traversal": "../../../../dev/null", "SQL": "' OR '1'='1' --", "10 KB": strings.Repeat("k", 10<<10),
		"unicode": "ключ\u202e", "empty": "", "url": "https://evil.example/keys", "number": "",
	} {
		h := hdr(map[string]any{"kid": kid})
		if name == "number" {
			h["kid"] = 42
		}
		add(4, "kid "+name, 401, "malformed_token", bearer(SignWith("RS256", k.Private, h, base())))
	}
	noKid := hdr(nil)
	delete(noKid, "kid")
	add(4, "kid absent", 401, "malformed_token", bearer(SignWith("RS256", k.Private, noKid, base())))

	// Rows 5, 6, 17, 23: header members that are never accepted.
	atkJWK := PublicJWK(&atk.PublicKey, "attacker")
	atkCert, _ := KeyFrom(atk)
	for name, extra := range map[string]map[string]any{
		"jku":      {"jku": "http://127.0.0.1:1/attacker-keys"},
		"x5u":      {"x5u": "http://127.0.0.1:1/attacker.pem"},
		"jwk":      {"jwk": atkJWK, "kid": "attacker"},
		"x5c":      {"x5c": []string{base64.StdEncoding.EncodeToString(atkCert.CertDER)}},
		"nonce":    {"nonce": "graph-style-nonce"},
		"crit":     {"crit": []string{"exp"}},
		"b64":      {"b64": false, "crit": []string{"b64"}},
		"zip":      {"zip": "DEF"},
		"enc":      {"enc": "A128GCM"},
		"cty":      {"cty": "JWT"},
		"unknown":  {"foo": "bar"},
		"typ JOSE": {"typ": "JOSE"},
	} {
		key := k.Private
		if name == "jwk" || name == "x5c" || name == "jku" || name == "x5u" {
			key = atk
		}
		add(map[bool]int{true: 5, false: 23}[name == "jku" || name == "x5u"], "header "+name, 401, "forbidden_header",
			bearer(SignWith("RS256", key, hdr(extra), base())))
	}
	add(17, "Microsoft Graph token (header nonce)", 401, "forbidden_header", bearer(s.GraphToken(tid, audience, u, time.Hour)))

	// Row 7: unknown kid with otherwise valid claims.
	add(7, "unknown kid", 401, "unknown_key", bearer(SignWith("RS256", atk, hdr(map[string]any{"kid": "unknown-" + randomID(8)}), base())))

	// Row 10: time claims.
	add(10, "expired", 401, "token_expired", bearer(s.Sign(tid, nil, with(func(c map[string]any) {
		c["iat"], c["nbf"], c["exp"] = now.Add(-2*time.Hour).Unix(), now.Add(-2*time.Hour).Unix(), now.Add(-61*time.Second).Unix()
	}))))
	add(10, "nbf in the future", 401, "token_not_yet_valid", bearer(s.Sign(tid, nil, with(func(c map[string]any) { c["nbf"] = now.Add(5 * time.Minute).Unix() }))))
	add(10, "iat in the future", 401, "token_not_yet_valid", bearer(s.Sign(tid, nil, with(func(c map[string]any) { c["iat"] = now.Add(5 * time.Minute).Unix() }))))
	add(10, "exp missing", 401, "token_expired", bearer(s.Sign(tid, nil, with(func(c map[string]any) { delete(c, "exp") }))))

	// Row 11: over-long lifetimes.
	for _, d := range []time.Duration{24 * time.Hour, 28 * time.Hour} {
		add(11, fmt.Sprintf("lifetime %s", d), 401, "token_too_old", bearer(s.Sign(tid, nil, with(func(c map[string]any) { c["exp"] = now.Add(d).Unix() }))))
	}

	// Row 12: issuer variants.
	iss := s.Issuer(tid)
	for name, v := range map[string]string{
		"trailing slash": iss + "/",
		"https scheme":   strings.Replace(iss, "http://", "https://", 1),
		"upper case":     strings.ToUpper(iss),
		"template":       s.URL() + "/{tenantid}/v2.0",
		"common":         s.URL() + "/common/v2.0",
		"other IdP":      "https://evil.example/" + tid + "/v2.0",
	} {
		add(12, "iss "+name, 401, "wrong_issuer", bearer(s.Sign(tid, nil, with(func(c map[string]any) { c["iss"] = v }))))
	}

	// Row 13: v1 token from the real v1 issuer.
	v1 := claimsFromToken(s.V1Token(tid, audience, "client", u, time.Hour))
	v1["iss"] = "https://sts.windows.net/" + tid + "/"
	add(13, "v1 token (sts.windows.net, ver 1.0)", 401, "unsupported_version", bearer(s.Sign(tid, map[string]any{"typ": "JWT", "x5t": k.X5T}, v1)))
	add(13, "ver 1.0 with the v2 issuer", 401, "unsupported_version", bearer(s.Sign(tid, nil, with(func(c map[string]any) { c["ver"] = "1.0" }))))

	// Row 14: tenants.
	other := NewGUID()
	add(14, "other tenant (issuer and tid)", 401, "tenant_not_allowed", bearer(s.Sign(tid, nil, with(func(c map[string]any) {
		c["iss"], c["tid"] = s.URL()+"/"+other+"/v2.0", other
	}))))
	add(14, "consumer tenant", 401, "tenant_not_allowed", bearer(s.Sign(tid, nil, with(func(c map[string]any) {
		c["iss"], c["tid"] = s.URL()+"/"+ConsumerTenant+"/v2.0", ConsumerTenant
	}))))
	add(14, "tid differs from the issuer's tenant", 401, "tenant_not_allowed", bearer(s.Sign(tid, nil, with(func(c map[string]any) { c["tid"] = other }))))
	add(14, "tid missing", 401, "tenant_not_allowed", bearer(s.Sign(tid, nil, with(func(c map[string]any) { delete(c, "tid") }))))

	// Row 15: audiences.
	for name, v := range map[string]any{
		"other app":                  NewGUID(),
		"Microsoft Graph":            GraphAppID,
		"api URI":                    "api://" + audience,
		"case variant":               strings.ToUpper(audience),
		"array without ours":         []string{NewGUID(), GraphAppID},
		"array with ours, no azp":    []string{audience, NewGUID()},
		"array with ours, azp other": []string{audience, GraphAppID},
	} {
		c := with(func(c map[string]any) { c["aud"] = v })
		if name == "array with ours, azp other" {
			c["azp"] = GraphAppID
		}
		add(15, "aud "+name, 401, "wrong_audience", bearer(s.Sign(tid, nil, c)))
	}
	add(15, "aud missing", 401, "wrong_audience", bearer(s.Sign(tid, nil, with(func(c map[string]any) { delete(c, "aud") }))))

	// Row 16: an access token where ID tokens are expected.
	add(16, "access token in id_token mode", 401, "wrong_token_type", bearer(s.AccessToken(tid, audience, NewGUID(), u, []string{"access"}, time.Hour)))
	add(16, "typ at+jwt in id_token mode", 401, "wrong_token_type", bearer(s.Sign(tid, hdr(map[string]any{"typ": "at+jwt"}), base())))
	add(16, "app-only token (idtyp app)", 401, "wrong_token_type", bearer(s.Sign(tid, nil, with(func(c map[string]any) { c["idtyp"] = "app" }))))

	// Row 18: stripping, truncation, extra segments, tampering.
	add(18, "two segments", 401, "malformed_token", bearer(parts[0]+"."+parts[1]))
	add(18, "empty signature", 401, "malformed_token", bearer(parts[0]+"."+parts[1]+"."))
	add(18, "four segments", 401, "malformed_token", bearer(good+"."+parts[2]))
	add(18, "padded base64", 401, "malformed_token", bearer(parts[0]+"."+parts[1]+"."+parts[2]+"=="))
	add(18, "truncated signature", 401, "bad_signature", bearer(parts[0]+"."+parts[1]+"."+truncSig(parts[2])))
	tampered := with(func(c map[string]any) { c["oid"] = NewGUID() })
	add(18, "payload swapped", 401, "bad_signature", bearer(parts[0]+"."+b64(mustJSON(tampered))+"."+parts[2]))
	add(18, "header swapped", 401, "bad_signature", bearer(b64(mustJSON(map[string]any{"alg": "RS256", "kid": k.KID}))+"."+parts[1]+"."+parts[2]))
	add(18, "signature flipped", 401, "bad_signature", bearer(parts[0]+"."+parts[1]+"."+flip(parts[2])))

	// Row 19: JSON serialization.
	js, _ := json.Marshal(map[string]any{"payload": parts[1], "protected": parts[0], "signature": parts[2]})
	add(19, "JWS JSON serialization", 401, "malformed_token", bearer(string(js)))
	add(19, "JWS JSON serialization in x-api-key", 401, "malformed_token", http.Header{"X-Api-Key": {string(js)}})

	// Row 20: duplicate and case-variant members (signed by the issuer).
	payload := string(mustJSON(base()))
	hjson := string(mustJSON(hdr(nil)))
	add(20, "duplicate aud", 401, "malformed_token", bearer(s.SignRaw(tid, []byte(hjson), []byte(`{"aud":"evil",`+payload[1:]))))
	add(20, "duplicate tid", 401, "malformed_token", bearer(s.SignRaw(tid, []byte(hjson), []byte(`{"tid":"`+other+`",`+payload[1:]))))
	add(20, "duplicate roles", 401, "malformed_token", bearer(s.SignRaw(tid, []byte(hjson), []byte(`{"roles":["Admin"],`+payload[1:]))))
	add(20, "case-variant Iss", 401, "malformed_token", bearer(s.SignRaw(tid, []byte(hjson), []byte(`{"Iss":"https://evil.example",`+payload[1:]))))
	add(20, "case-variant AUD", 401, "malformed_token", bearer(s.SignRaw(tid, []byte(hjson), []byte(`{"AUD":"evil",`+payload[1:]))))
	add(20, "duplicate header alg", 401, "malformed_token", bearer(s.SignRaw(tid, []byte(`{"alg":"none",`+hjson[1:]), []byte(payload))))

	// Row 21: claim types.
	for name, edit := range map[string]func(c map[string]any){
		"exp string":    func(c map[string]any) { c["exp"] = fmt.Sprint(now.Add(time.Hour).Unix()) },
		"exp float":     func(c map[string]any) { c["exp"] = float64(now.Add(time.Hour).Unix()) + 0.5 },
		"exp huge":      func(c map[string]any) { c["exp"] = 1e30 },
		"exp negative":  func(c map[string]any) { c["exp"] = -1 },
		"iat string":    func(c map[string]any) { c["iat"] = "yesterday" },
		"aud integer":   func(c map[string]any) { c["aud"] = 42 },
		"aud object":    func(c map[string]any) { c["aud"] = map[string]any{"x": audience} },
		"roles object":  func(c map[string]any) { c["roles"] = map[string]any{"Claude.User": true} },
		"payload array": nil,
	} {
		if edit == nil {
			add(21, name, 401, "malformed_token", bearer(s.SignRaw(tid, []byte(hjson), []byte(`["a"]`))))
			continue
		}
		add(21, name, 401, "malformed_token", bearer(s.Sign(tid, nil, with(edit))))
	}

	// Row 22: oversize input (small enough to pass HTTP header limits).
	add(22, "20 KiB of dots", 401, "malformed_token", bearer(strings.Repeat(".", 20<<10)))
	add(22, "20 KiB payload", 401, "malformed_token", bearer(s.Sign(tid, nil, with(func(c map[string]any) { c["pad"] = strings.Repeat("A", 20<<10) }))))
	add(22, "deeply nested payload", 401, "malformed_token", bearer(s.SignRaw(tid, []byte(hjson), []byte(`{"x":`+strings.Repeat("[", 5000)+strings.Repeat("]", 5000)+`,`+payload[1:]))))

	// Row 27: credential-header confusion.
	other2 := s.Sign(tid, nil, base())
	add(27, "two Authorization headers", 401, "ambiguous_credential", http.Header{"Authorization": {"Bearer " + good, "Bearer " + good}})
	add(27, "two x-api-key headers", 401, "ambiguous_credential", http.Header{"X-Api-Key": {good, good}})
	add(27, "different tokens in Authorization and x-api-key", 401, "ambiguous_credential", http.Header{"Authorization": {"Bearer " + good}, "X-Api-Key": {other2}})
	add(27, "no credential", 401, "missing_credential", http.Header{})
	add(27, "placeholder only", 401, "malformed_token", bearer("dummy"))
	add(27, "Basic scheme", 401, "malformed_token", http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("u:p"))}})
	out = append(out, Attack{Name: "token in the query string only", Row: 27, Header: http.Header{}, Query: "access_token=" + good + "&code=" + good,
		WantStatus: 401, WantReason: "missing_credential"})

	// Row 28: authorisation claims.
	noRole := u
	noRole.Roles = nil
	add(28, "no app role", 403, "missing_role", bearer(s.IDToken(tid, audience, noRole, time.Hour)))
	wrongRole := u
	wrongRole.Roles = []string{"Claude.Admin.Lookalike"}
	add(28, "other app role", 403, "missing_role", bearer(s.IDToken(tid, audience, wrongRole, time.Hour)))
	add(28, "group overage", 403, "group_overage", bearer(s.Sign(tid, nil, with(func(c map[string]any) {
		delete(c, "groups")
		c["_claim_names"] = map[string]any{"groups": "src1"}
		c["_claim_sources"] = map[string]any{"src1": map[string]any{"endpoint": "http://127.0.0.1:1/evil/getMemberObjects"}}
	}))))
	add(29, "oid missing (email of an admin)", 401, "missing_claim", bearer(s.Sign(tid, nil, with(func(c map[string]any) {
		delete(c, "oid")
		c["email"], c["preferred_username"] = "admin@contoso.example", "admin@contoso.example"
	}))))

	// Row 31: expired and badly signed: the signature is what is reported.
	exp := with(func(c map[string]any) {
		c["exp"] = now.Add(-time.Hour).Unix()
		c["iat"] = now.Add(-2 * time.Hour).Unix()
	})
	expTok := s.Sign(tid, nil, exp)
	ep := strings.Split(expTok, ".")
	add(31, "expired and badly signed", 401, "bad_signature", bearer(ep[0]+"."+ep[1]+"."+flip(ep[2])))
	return out
}

func flip(sig string) string {
	b, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || len(b) == 0 {
		return sig
	}
	b[len(b)/2] ^= 0x01
	return base64.RawURLEncoding.EncodeToString(b)
}

func truncSig(sig string) string {
	b, _ := base64.RawURLEncoding.DecodeString(sig)
	if len(b) > 3 {
		b = b[:len(b)-3]
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func claimsFromToken(tok string) map[string]any {
	parts := strings.Split(tok, ".")
	b, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}
