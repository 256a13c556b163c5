package content_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit/content"
)

func redactor(t testing.TB) *content.Redactor {
	r, err := content.NewRedactor(content.RedactorOptions{NationalIDPatterns: []string{`\b\d{3}-\d{2}-\d{4}\b`, `\b[A-Z]{2}\d{6}[A-D]\b`}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRedact(t *testing.T) {
	r := redactor(t)
	tests := []struct {
		name, in, kind string
		keep           string // must survive (not a finding)
	}{
		{"anthropic key", "use sk-ant-api03-AbCdEf0123456789_xyz please", "api_key", "please"},
		{"aws key", "AKIAIOSFODNN7EXAMPLE is mine", "api_key", "is mine"},
		{"github token", "token ghp_0123456789abcdefghijABCDEFGHIJ0123 ok", "api_key", "ok"},
		{"key=value", `config: api_key="s3cr3tvalue99"`, "api_key", "config:"},
		{"bearer", "Authorization: Bearer abc.def-ghi_jkl", "bearer_token", "Authorization:"},
		{"jwt", "id eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJlX2hlcmU end", "jwt", "end"},
		{"private key", "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADAN\nBgkqhkiG9w0B\n-----END PRIVATE KEY----- after", "private_key", "after"},
		{"rsa private key", "-----BEGIN RSA PRIVATE KEY-----\nabc\n-----END RSA PRIVATE KEY-----", "private_key", ""},
		{"visa with spaces", "card 4111 1111 1111 1111 exp", "card_number", "exp"},
		{"amex dashes", "pay 3782-822463-10005 now", "card_number", "now"},
		{"iban", "IBAN DE89 3704 0044 0532 0130 00 thanks", "iban", "thanks"},
		{"iban compact", "to GB82WEST12345698765432.", "iban", "to"},
		{"email", "mail ada.lovelace+x@contoso.example now", "email", "now"},
		{"ssn (configured)", "ssn 078-05-1120 end", "national_id", "end"},
		{"uk nino (configured)", "NI QQ123456C end", "national_id", "end"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, counts := r.Redact(tc.in)
			if counts[tc.kind] == 0 || !strings.Contains(out, "[REDACTED:"+tc.kind+"]") {
				t.Errorf("Redact(%q) = %q %v, want a %s finding", tc.in, out, counts, tc.kind)
			}
			if !strings.Contains(out, tc.keep) {
				t.Errorf("Redact(%q) = %q lost %q", tc.in, out, tc.keep)
			}
		})
	}
	negatives := []string{
		"order 4111 1111 1111 1112 shipped",             // fails Luhn
		"IBAN GB00WEST12345698765432 ok",                // fails mod 97
		"the year 2026 and 1234567",                     // short numbers
		"a bearer of good news",                         // "bearer" prose... followed by word
		"just text about keys and passwords in general", // no value
	}
	for _, in := range negatives[:3] {
		if out, c := r.Redact(in); out != in {
			t.Errorf("Redact(%q) = %q %v; want unchanged", in, out, c)
		}
	}
	if out, _ := r.Redact(negatives[4]); out != negatives[4] {
		t.Errorf("prose changed: %q", out)
	}
}

func TestBadNationalIDPattern(t *testing.T) {
	if _, err := content.NewRedactor(content.RedactorOptions{NationalIDPatterns: []string{"("}}); err == nil || !strings.Contains(err.Error(), "national_id_patterns[0]") {
		t.Fatalf("err = %v", err)
	}
}

func FuzzRedact(f *testing.F) {
	for _, s := range []string{"sk-ant-api03-AbCdEf0123456789", "4111 1111 1111 1111", "DE89 3704 0044 0532 0130 00", "a@b.co", "Bearer x", "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----"} {
		f.Add(s)
	}
	r := redactor(f)
	f.Fuzz(func(t *testing.T, s string) {
		out, counts := r.Redact(s)
		again, counts2 := r.Redact(out)
		if again != out {
			t.Errorf("not idempotent: %q → %q → %q (%v %v)", s, out, again, counts, counts2)
		}
	})
}

func key(id string, b byte) content.Key {
	return content.Key{ID: id, Secret: bytes.Repeat([]byte{b}, 32)}
}

func TestKeyringRotation(t *testing.T) {
	old, err := content.NewKeyring([]content.Key{key("k1", 1)}, "k1")
	if err != nil {
		t.Fatal(err)
	}
	id, sealed, err := old.Seal([]byte("prompt"), []byte("req_1"))
	if err != nil || id != "k1" || bytes.Contains(sealed, []byte("prompt")) {
		t.Fatalf("seal: %v %q", err, id)
	}
	rotated, err := content.NewKeyring([]content.Key{key("k1", 1), key("k2", 2)}, "k2")
	if err != nil {
		t.Fatal(err)
	}
	if p, err := rotated.Open(id, sealed, []byte("req_1")); err != nil || string(p) != "prompt" {
		t.Fatalf("old ciphertext after rotation: %q %v", p, err)
	}
	if id2, _, _ := rotated.Seal([]byte("x"), nil); id2 != "k2" {
		t.Errorf("rotated ring seals with %s", id2)
	}
	if _, err := rotated.Open(id, sealed, []byte("req_2")); err == nil {
		t.Error("ciphertext opened under another request id (AAD not bound)")
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := rotated.Open(id, sealed, []byte("req_1")); err == nil {
		t.Error("altered ciphertext opened")
	}
	gone, _ := content.NewKeyring([]content.Key{key("k2", 2)}, "k2")
	if _, err := gone.Open("k1", sealed, nil); !errors.Is(err, content.ErrUnknownKey) {
		t.Errorf("retired key: %v", err)
	}
	for _, bad := range [][]content.Key{{{ID: "", Secret: make([]byte, 32)}}, {{ID: "a", Secret: make([]byte, 16)}}, {key("a", 1), key("a", 2)}} {
		if _, err := content.NewKeyring(bad, "a"); err == nil {
			t.Errorf("NewKeyring(%v) succeeded", bad[0].ID)
		}
	}
}

type memStore struct{ m map[string]*content.Entry }

func (s *memStore) PutContent(_ context.Context, e *content.Entry) error {
	s.m[e.RequestID] = e
	return nil
}
func (s *memStore) GetContent(_ context.Context, id string) (*content.Entry, error) {
	if e, ok := s.m[id]; ok {
		return e, nil
	}
	return nil, content.ErrNotFound
}
func (s *memStore) PurgeContent(context.Context, string, time.Time) (int, error) { return 0, nil }

func TestCapturerModes(t *testing.T) {
	kr, _ := content.NewKeyring([]content.Key{key("k1", 1)}, "k1")
	req := []byte(`{"messages":[{"role":"user","content":"my key is sk-ant-api03-SECRETSECRET123 mail me at ada@contoso.example"}]}`)
	resp := []byte("Sure, ada@contoso.example")
	for _, mode := range []string{content.ModeOff, content.ModeMetadata, content.ModeRedacted, content.ModeFull} {
		t.Run(mode, func(t *testing.T) {
			st := &memStore{m: map[string]*content.Entry{}}
			c, err := content.NewCapturer(content.Options{Mode: mode, Redactor: redactor(t), Keyring: kr, Store: st})
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Capture(context.Background(), "req_1", time.Now(), "tid/oid", req, resp); err != nil {
				t.Fatal(err)
			}
			e, err := st.GetContent(context.Background(), "req_1")
			if mode == content.ModeOff {
				if !errors.Is(err, content.ErrNotFound) {
					t.Fatalf("off stored %+v", e)
				}
				return
			}
			if e.RequestBytes != int64(len(req)) || len(e.RequestSHA256) != 64 || e.UserKey != "tid/oid" {
				t.Errorf("metadata %+v", e)
			}
			txt, err := content.Open(kr, e)
			if err != nil {
				t.Fatal(err)
			}
			switch mode {
			case content.ModeMetadata:
				if txt != nil || len(e.Sealed) != 0 {
					t.Error("metadata mode kept text")
				}
			case content.ModeRedacted:
				if strings.Contains(txt.Request, "SECRETSECRET") || strings.Contains(txt.Response, "ada@") || e.Redactions["api_key"] != 1 || e.Redactions["email"] != 2 {
					t.Errorf("redacted: %+v %v", txt, e.Redactions)
				}
			case content.ModeFull:
				if txt.Request != string(req) || txt.Response != string(resp) {
					t.Errorf("full: %+v", txt)
				}
			}
		})
	}
	if _, err := content.NewCapturer(content.Options{Mode: "everything"}); err == nil {
		t.Error("bad mode accepted")
	}
	if _, err := content.NewCapturer(content.Options{Mode: content.ModeFull, Store: &memStore{}}); err == nil {
		t.Error("full without keys accepted")
	}
}

// A 30 MB prompt and a multi-MB answer are captured whole; the hashes
// match the bytes and the text opens intact.
func TestLargeContent(t *testing.T) {
	if testing.Short() {
		t.Skip("large bodies")
	}
	kr, _ := content.NewKeyring([]content.Key{key("k1", 1)}, "k1")
	c, err := content.NewCapturer(content.Options{Mode: content.ModeFull, Keyring: kr, Store: &memStore{m: map[string]*content.Entry{}}})
	if err != nil {
		t.Fatal(err)
	}
	req := bytes.Repeat([]byte("0123456789abcdef"), 30<<20/16)
	resp := bytes.Repeat([]byte("z"), 3<<20)
	e, err := c.Build("big", time.Now(), "u", req, resp)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(req)
	if e.RequestBytes != 30<<20 || e.RequestSHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("metadata %d %s", e.RequestBytes, e.RequestSHA256)
	}
	txt, err := content.Open(kr, e)
	if err != nil || len(txt.Request) != len(req) || txt.Request[len(req)-1] != 'f' || len(txt.Response) != len(resp) {
		t.Fatalf("open: %v", err)
	}
}
