package content

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
)

// Key is one AES-256 key of the ring.
type Key struct {
	ID     string // short, stable name stored next to each ciphertext
	Secret []byte // 32 bytes
}

// Keyring seals with its active key and opens with any key it holds, so
// keys can be rotated: add the new key, make it active, keep the old ones
// until everything sealed with them is re-sealed or purged.
type Keyring struct {
	active string
	aeads  map[string]cipher.AEAD
}

// NewKeyring builds a ring; active must name one of keys.
func NewKeyring(keys []Key, active string) (*Keyring, error) {
	k := &Keyring{active: active, aeads: map[string]cipher.AEAD{}}
	for i, key := range keys {
		if key.ID == "" {
			return nil, fmt.Errorf("content key %d: empty id", i)
		}
		if len(key.Secret) != 32 {
			return nil, fmt.Errorf("content key %q: must be 32 bytes (AES-256), not %d", key.ID, len(key.Secret))
		}
		if _, dup := k.aeads[key.ID]; dup {
			return nil, fmt.Errorf("content key %q: duplicate id", key.ID)
		}
		block, err := aes.NewCipher(key.Secret)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		k.aeads[key.ID] = aead
	}
	if _, ok := k.aeads[active]; !ok {
		return nil, fmt.Errorf("active content key %q is not in the key list", active)
	}
	return k, nil
}

// Active returns the id of the key that seals.
func (k *Keyring) Active() string { return k.active }

// Seal encrypts plain with the active key; aad binds the ciphertext to its
// record (the request id). The result is nonce ‖ ciphertext ‖ tag.
func (k *Keyring) Seal(plain, aad []byte) (keyID string, sealed []byte, err error) {
	aead := k.aeads[k.active]
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", nil, err
	}
	return k.active, aead.Seal(nonce, nonce, plain, aad), nil
}

// ErrUnknownKey means the ciphertext was sealed with a key no longer in
// the ring.
var ErrUnknownKey = errors.New("content: sealed with a key that is not configured")

// Open decrypts sealed (from Seal) with key keyID.
func (k *Keyring) Open(keyID string, sealed, aad []byte) ([]byte, error) {
	aead, ok := k.aeads[keyID]
	if !ok {
		return nil, fmt.Errorf("%w (%q)", ErrUnknownKey, keyID)
	}
	if len(sealed) < aead.NonceSize()+aead.Overhead() {
		return nil, errors.New("content: ciphertext too short")
	}
	n := aead.NonceSize()
	plain, err := aead.Open(nil, sealed[:n], sealed[n:], aad)
	if err != nil {
		return nil, errors.New("content: decryption failed (wrong key or altered ciphertext)")
	}
	return plain, nil
}
