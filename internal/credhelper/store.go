package credhelper

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"
)

// Tokens is what a sign-in leaves behind for one (issuer, client, scopes).
type Tokens struct {
	IDToken        string    `json:"id_token,omitempty"`
	IDTokenExpiry  time.Time `json:"id_token_expiry,omitzero"`
	AccessToken    string    `json:"access_token,omitempty"`
	AccessExpiry   time.Time `json:"access_token_expiry,omitzero"`
	RefreshToken   string    `json:"refresh_token,omitempty"`
	Scope          string    `json:"scope,omitempty"`
	ObtainedAt     time.Time `json:"obtained_at"`
	Username       string    `json:"username,omitempty"` // preferred_username, for `gatehouse login` output only
	SchemaRevision int       `json:"v"`
}

// ErrNotFound is returned by Store.Load when nothing is cached.
var ErrNotFound = errors.New("credhelper: no cached tokens")

// Store keeps tokens between runs. Implementations must keep them private
// to the user: a file readable only by its owner, or an OS keychain.
type Store interface {
	Load(key string) (*Tokens, error)
	Save(key string, t *Tokens) error
	Delete(key string) error
}

// CacheKey names the cache entry for a sign-in configuration.
func CacheKey(issuer, clientID, scopes, tokenType string) string {
	h := sha256.Sum256([]byte(issuer + "\x00" + clientID + "\x00" + scopes + "\x00" + tokenType))
	return hex.EncodeToString(h[:12])
}

// FileStore keeps each entry in Dir/tokens-<key>.json with mode 0600, in a
// directory with mode 0700. Writes are atomic (temporary file, then rename).
type FileStore struct {
	// Dir is the cache directory. Use DefaultCacheDir.
	Dir string
}

// DefaultCacheDir is the per-user cache directory: $XDG_CACHE_HOME/gatehouse
// (or ~/.cache/gatehouse) on Linux, ~/Library/Caches/gatehouse on macOS,
// %LocalAppData%\gatehouse on Windows.
func DefaultCacheDir(getenv func(string) string) (string, error) {
	var base string
	switch runtime.GOOS {
	case "windows":
		base = getenv("LocalAppData")
	case "darwin":
		if h := getenv("HOME"); h != "" {
			base = filepath.Join(h, "Library", "Caches")
		}
	default:
		base = getenv("XDG_CACHE_HOME")
		if base == "" && getenv("HOME") != "" {
			base = filepath.Join(getenv("HOME"), ".cache")
		}
	}
	if base == "" {
		return "", errors.New("credhelper: cannot find the user's cache directory (HOME is unset)")
	}
	return filepath.Join(base, "gatehouse"), nil
}

func (s FileStore) path(key string) string { return filepath.Join(s.Dir, "tokens-"+key+".json") }

// Load reads an entry. A file that other users could read is not trusted
// (someone may have planted or copied it): it is treated as absent, and the
// next Save replaces it with a private one.
func (s FileStore) Load(key string) (*Tokens, error) {
	p := s.path(key)
	st, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("credhelper: token cache: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("credhelper: token cache %s is not a regular file", p)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm()&0o077 != 0 {
		return nil, ErrNotFound
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("credhelper: token cache: %w", err)
	}
	var t Tokens
	if err := json.Unmarshal(data, &t); err != nil || t.SchemaRevision != 1 {
		return nil, ErrNotFound // corrupt or from another version: sign in again
	}
	return &t, nil
}

// Save writes an entry atomically with mode 0600.
func (s FileStore) Save(key string, t *Tokens) error {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("credhelper: token cache: %w", err)
	}
	if runtime.GOOS != "windows" {
		_ = os.Chmod(s.Dir, 0o700)
	}
	t.SchemaRevision = 1
	data, err := json.Marshal(t)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(s.Dir, ".tokens-*.tmp")
	if err != nil {
		return fmt.Errorf("credhelper: token cache: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := f.Chmod(0o600); err != nil && runtime.GOOS != "windows" {
		f.Close()
		return fmt.Errorf("credhelper: token cache: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("credhelper: token cache: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("credhelper: token cache: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("credhelper: token cache: %w", err)
	}
	if err := os.Rename(tmp, s.path(key)); err != nil {
		return fmt.Errorf("credhelper: token cache: %w", err)
	}
	return nil
}

// Delete removes an entry; a missing entry is not an error.
func (s FileStore) Delete(key string) error {
	err := os.Remove(s.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// MemoryStore is a Store in memory (tests, and callers that must not touch
// disk). The zero value is ready; it is safe for concurrent use.
type MemoryStore struct {
	mu sync.Mutex
	m  map[string]Tokens
}

// Load implements Store.
func (s *MemoryStore) Load(key string) (*Tokens, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.m[key]
	if !ok {
		return nil, ErrNotFound
	}
	return &t, nil
}

// Save implements Store.
func (s *MemoryStore) Save(key string, t *Tokens) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]Tokens{}
	}
	s.m[key] = *t
	return nil
}

// Delete implements Store.
func (s *MemoryStore) Delete(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
	return nil
}

// Locker is implemented by stores that can serialise sign-ins across
// processes: Claude Code may start several helpers at once, and only one of
// them should refresh or open a browser; the others wait and then read what
// it cached.
type Locker interface {
	Lock(ctx context.Context, key string) (unlock func(), err error)
}

// staleLock is the age after which a lock file is presumed abandoned (its
// process died mid sign-in).
const staleLock = 10 * time.Minute

// Lock takes Dir/tokens-<key>.lock, created exclusively; it waits (polling)
// while another process holds it, and removes a lock older than 10 minutes.
func (s FileStore) Lock(ctx context.Context, key string) (func(), error) {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("credhelper: token cache: %w", err)
	}
	p := filepath.Join(s.Dir, "tokens-"+key+".lock")
	for {
		f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err == nil {
			fmt.Fprintf(f, "%d\n", os.Getpid())
			f.Close()
			return func() { os.Remove(p) }, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("credhelper: token cache lock: %w", err)
		}
		if st, err := os.Stat(p); err == nil && time.Since(st.ModTime()) > staleLock {
			os.Remove(p)
			continue
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}
