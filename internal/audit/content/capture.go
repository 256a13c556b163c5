package content

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Capture modes (audit.content.capture).
const (
	ModeOff      = "off"      // nothing is kept (default)
	ModeMetadata = "metadata" // sizes and SHA-256 of request and response only
	ModeRedacted = "redacted" // text with secrets and personal data removed, encrypted
	ModeFull     = "full"     // text as sent and received, encrypted
)

// Entry is what is stored for one request's content.
type Entry struct {
	RequestID      string
	Time           time.Time // the record's time
	UserKey        string    // for erasure requests
	Mode           string
	RequestSHA256  string // hex, of the raw request body
	ResponseSHA256 string // hex, of the raw response (assembled for streams)
	RequestBytes   int64
	ResponseBytes  int64
	Redactions     map[string]int // redacted mode: findings per kind
	KeyID          string         // redacted/full: key that sealed Sealed
	Sealed         []byte         // redacted/full: AES-GCM of the Text JSON
}

// Text is the plaintext sealed into Entry.Sealed.
type Text struct {
	Request  string `json:"request"`
	Response string `json:"response"`
}

// Store keeps content entries; implemented by audit/sqlite and
// audit/postgres.
type Store interface {
	PutContent(ctx context.Context, e *Entry) error
	GetContent(ctx context.Context, requestID string) (*Entry, error)
	// PurgeContent deletes the content of userKey's requests (all users
	// when empty) older than before (any age when zero) and returns how
	// many entries it deleted.
	PurgeContent(ctx context.Context, userKey string, before time.Time) (int, error)
}

// ErrNotFound is returned by GetContent when nothing was captured.
var ErrNotFound = errors.New("content: nothing captured for this request")

// Options configures a Capturer.
type Options struct {
	Mode     string    // ModeOff (default) … ModeFull
	Redactor *Redactor // required for ModeRedacted
	Keyring  *Keyring  // required for ModeRedacted and ModeFull
	Store    Store     // required unless ModeOff
}

// Capturer applies the capture policy to one request's content.
type Capturer struct{ opts Options }

// NewCapturer validates opts.
func NewCapturer(opts Options) (*Capturer, error) {
	if opts.Mode == "" {
		opts.Mode = ModeOff
	}
	switch opts.Mode {
	case ModeOff:
	case ModeMetadata:
		if opts.Store == nil {
			return nil, errors.New("content: capture needs a store")
		}
	case ModeRedacted, ModeFull:
		if opts.Store == nil || opts.Keyring == nil {
			return nil, errors.New("content: capture of text needs a store and encryption keys")
		}
		if opts.Mode == ModeRedacted && opts.Redactor == nil {
			return nil, errors.New("content: redacted capture needs a redactor")
		}
	default:
		return nil, fmt.Errorf("content: capture %q is not off, metadata, redacted or full", opts.Mode)
	}
	return &Capturer{opts: opts}, nil
}

// Mode returns the configured mode.
func (c *Capturer) Mode() string { return c.opts.Mode }

// Build turns raw request and response bytes into the Entry the policy
// allows (nil for ModeOff). It does not store it.
func (c *Capturer) Build(requestID string, t time.Time, userKey string, request, response []byte) (*Entry, error) {
	if c.opts.Mode == ModeOff {
		return nil, nil
	}
	rs, ps := sha256.Sum256(request), sha256.Sum256(response)
	e := &Entry{RequestID: requestID, Time: t.UTC(), UserKey: userKey, Mode: c.opts.Mode,
		RequestSHA256: hex.EncodeToString(rs[:]), ResponseSHA256: hex.EncodeToString(ps[:]),
		RequestBytes: int64(len(request)), ResponseBytes: int64(len(response))}
	if c.opts.Mode == ModeMetadata {
		return e, nil
	}
	txt := Text{Request: string(request), Response: string(response)}
	if c.opts.Mode == ModeRedacted {
		var rc, pc map[string]int
		txt.Request, rc = c.opts.Redactor.Redact(txt.Request)
		txt.Response, pc = c.opts.Redactor.Redact(txt.Response)
		e.Redactions = map[string]int{}
		for _, m := range []map[string]int{rc, pc} {
			for k, n := range m {
				e.Redactions[k] += n
			}
		}
	}
	plain, err := json.Marshal(txt)
	if err != nil {
		return nil, err
	}
	if e.KeyID, e.Sealed, err = c.opts.Keyring.Seal(plain, []byte(requestID)); err != nil {
		return nil, fmt.Errorf("content: sealing: %w", err)
	}
	return e, nil
}

// Capture builds and stores the entry for one request.
func (c *Capturer) Capture(ctx context.Context, requestID string, t time.Time, userKey string, request, response []byte) error {
	e, err := c.Build(requestID, t, userKey, request, response)
	if err != nil || e == nil {
		return err
	}
	return c.opts.Store.PutContent(ctx, e)
}

// Open decrypts an entry's text with kr.
func Open(kr *Keyring, e *Entry) (*Text, error) {
	if len(e.Sealed) == 0 {
		return nil, nil
	}
	plain, err := kr.Open(e.KeyID, e.Sealed, []byte(e.RequestID))
	if err != nil {
		return nil, err
	}
	var t Text
	if err := json.Unmarshal(plain, &t); err != nil {
		return nil, fmt.Errorf("content: %w", err)
	}
	return &t, nil
}

// PurgeLoop deletes content older than retention every interval until
// ctx ends (the retention job). It logs each run through report.
func PurgeLoop(ctx context.Context, st Store, retention, every time.Duration, now func() time.Time, report func(n int, err error)) {
	if retention <= 0 {
		return
	}
	if every <= 0 {
		every = time.Hour
	}
	if now == nil {
		now = time.Now
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		n, err := st.PurgeContent(ctx, "", now().Add(-retention))
		if report != nil {
			report(n, err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// MetaPayload is the canonical chain payload of a stored entry: its
// metadata and the SHA-256 of the ciphertext, so the chain commits to the
// sealed text without holding it.
func MetaPayload(e *Entry) []byte {
	var sealed string
	if len(e.Sealed) > 0 {
		sum := sha256.Sum256(e.Sealed)
		sealed = hex.EncodeToString(sum[:])
	}
	b, _ := json.Marshal(struct {
		RequestID      string         `json:"request_id"`
		Time           time.Time      `json:"time"`
		UserKey        string         `json:"user_key"`
		Mode           string         `json:"mode"`
		RequestSHA256  string         `json:"request_sha256"`
		ResponseSHA256 string         `json:"response_sha256"`
		RequestBytes   int64          `json:"request_bytes"`
		ResponseBytes  int64          `json:"response_bytes"`
		Redactions     map[string]int `json:"redactions,omitempty"`
		KeyID          string         `json:"key_id,omitempty"`
		SealedSHA256   string         `json:"sealed_sha256,omitempty"`
	}{e.RequestID, e.Time.UTC(), e.UserKey, e.Mode, e.RequestSHA256, e.ResponseSHA256, e.RequestBytes, e.ResponseBytes,
		e.Redactions, e.KeyID, sealed})
	return b
}
