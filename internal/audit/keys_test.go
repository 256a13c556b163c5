package audit_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
)

func TestKeysRoundTrip(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	privPEM, pubB64, err := audit.EncodeKeys(priv)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{privPEM, base64.StdEncoding.EncodeToString(priv.Seed())} {
		got, err := audit.ParseSigningKey(in)
		if err != nil || !got.Equal(priv) {
			t.Fatalf("ParseSigningKey: %v", err)
		}
	}
	pub, err := audit.ParseVerifyKey(pubB64)
	if err != nil || !pub.Equal(priv.Public()) {
		t.Fatalf("ParseVerifyKey: %v", err)
	}
	for _, bad := range []string{"", "nope", base64.StdEncoding.EncodeToString([]byte("short")), "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"} {
		if _, err := audit.ParseSigningKey(bad); err == nil {
			t.Errorf("ParseSigningKey(%q) succeeded", bad)
		} else if strings.Contains(err.Error(), bad) && bad != "" {
			t.Errorf("error echoes the input: %v", err)
		}
	}
}
