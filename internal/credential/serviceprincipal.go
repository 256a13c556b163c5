package credential

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"time"
)

// ServicePrincipalOptions configures NewServicePrincipal. Exactly one of
// ClientSecret, CertificatePEM and CertificateFile is set.
type ServicePrincipalOptions struct {
	TokenOptions
	// Scope is the OAuth scope. Empty: DefaultScope.
	Scope string
	// TenantID is the Entra tenant (GUID or verified domain). Required.
	TenantID string
	// ClientID is the app registration's application (client) id. Required.
	ClientID string
	// ClientSecret authenticates with a client secret.
	ClientSecret string
	// CertificatePEM holds the certificate and its RSA private key (PEM,
	// PKCS#1 or PKCS#8, unencrypted), for a client assertion signed with
	// the key (RS256, x5t header = SHA-1 thumbprint of the certificate).
	CertificatePEM []byte
	// CertificateFile is read at construction instead of CertificatePEM.
	CertificateFile string
	// AuthorityHost overrides the Entra authority (sovereign clouds, tests).
	// Empty: DefaultAuthorityHost.
	AuthorityHost string
}

// NewServicePrincipal returns a credential for an Entra app registration
// using the client_credentials grant at {authority}/{tenant}/oauth2/v2.0/token.
func NewServicePrincipal(o ServicePrincipalOptions) (*TokenCredential, error) {
	o.normalize(3)
	if o.Scope == "" {
		o.Scope = DefaultScope
	}
	if o.ClientID == "" {
		return nil, errors.New("credential: service principal: client id is required")
	}
	endpoint, err := TokenEndpoint(o.AuthorityHost, o.TenantID)
	if err != nil {
		return nil, fmt.Errorf("credential: service principal: %v", err)
	}
	n := 0
	for _, set := range []bool{o.ClientSecret != "", len(o.CertificatePEM) > 0, o.CertificateFile != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		return nil, errors.New("credential: service principal: set exactly one of a client secret and a certificate")
	}
	var auth func(url.Values) error
	if o.ClientSecret != "" {
		secret := o.ClientSecret
		auth = func(f url.Values) error { f.Set("client_secret", secret); return nil }
	} else {
		pemBytes := o.CertificatePEM
		if o.CertificateFile != "" {
			b, err := os.ReadFile(o.CertificateFile)
			if err != nil {
				return nil, fmt.Errorf("credential: service principal: cannot read certificate file: %w", err)
			}
			pemBytes = b
		}
		cert, key, err := ParseCertificatePEM(pemBytes)
		if err != nil {
			return nil, fmt.Errorf("credential: service principal: %v", err)
		}
		x5t := Thumbprint(cert)
		auth = func(f url.Values) error {
			a, err := SignAssertion(key, x5t, o.ClientID, endpoint, o.Now())
			if err != nil {
				return err
			}
			f.Set("client_assertion_type", clientAssertionType)
			f.Set("client_assertion", a)
			return nil
		}
	}
	fetch := entraClientCredentials(&o.TokenOptions, KindServicePrincipal, endpoint, o.ClientID, o.Scope, auth)
	return newTokenCredential(KindServicePrincipal, "Entra token endpoint", o.TokenOptions, fetch), nil
}

// ParseCertificatePEM finds the first certificate and the RSA private key
// in a PEM bundle and checks that they belong together.
func ParseCertificatePEM(b []byte) (*x509.Certificate, *rsa.PrivateKey, error) {
	var cert *x509.Certificate
	var key *rsa.PrivateKey
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		switch blk.Type {
		case "CERTIFICATE":
			if cert == nil {
				c, err := x509.ParseCertificate(blk.Bytes)
				if err != nil {
					return nil, nil, fmt.Errorf("certificate: %v", err)
				}
				cert = c
			}
		case "RSA PRIVATE KEY":
			k, err := x509.ParsePKCS1PrivateKey(blk.Bytes)
			if err != nil {
				return nil, nil, fmt.Errorf("private key: %v", err)
			}
			key = k
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
			if err != nil {
				return nil, nil, fmt.Errorf("private key: %v", err)
			}
			rk, ok := k.(*rsa.PrivateKey)
			if !ok {
				return nil, nil, errors.New("private key: Entra client assertions need an RSA key")
			}
			key = rk
		case "ENCRYPTED PRIVATE KEY":
			return nil, nil, errors.New("private key: encrypted keys are not supported; store the PEM unencrypted in a protected file")
		}
	}
	if cert == nil {
		return nil, nil, errors.New("no CERTIFICATE block in the PEM data")
	}
	if key == nil {
		return nil, nil, errors.New("no RSA private key block in the PEM data")
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok || !pub.Equal(&key.PublicKey) {
		return nil, nil, errors.New("the private key does not belong to the first certificate")
	}
	return cert, key, nil
}

// Thumbprint is the x5t value for cert: base64url(SHA-1(DER)).
func Thumbprint(cert *x509.Certificate) string {
	sum := sha1.Sum(cert.Raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// SignAssertion builds the client assertion JWT Entra expects for
// certificate credentials: RS256, header x5t; claims aud = the token
// endpoint, iss = sub = client id, a random jti, nbf/iat = now, exp = now+10m.
func SignAssertion(key *rsa.PrivateKey, x5t, clientID, audience string, now time.Time) (string, error) {
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", err
	}
	hdr, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "x5t": x5t})
	claims, _ := json.Marshal(map[string]any{
		"aud": audience, "iss": clientID, "sub": clientID,
		"jti": hex.EncodeToString(jti),
		"nbf": now.Unix(), "iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
	})
	signing := base64.RawURLEncoding.EncodeToString(hdr) + "." + base64.RawURLEncoding.EncodeToString(claims)
	digest := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		return "", err
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}
