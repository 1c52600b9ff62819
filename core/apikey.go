package core

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"strings"
	"time"
)

// An API key reads rly_<id>_<secret>: the id names the stored key and the
// secret is 256 random bits in lower-case base32. Only an HMAC of the secret
// is stored.
const (
	KeyPrefix    = "rly_"
	keySecretLen = 52 // base32 of 32 bytes, unpadded
	// KeyLen is the length of every well-formed API key.
	KeyLen = len(KeyPrefix) + IDLen + 1 + keySecretLen
)

var keyEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// APIKey is a stored API key. Hash is never shown to a caller.
type APIKey struct {
	ID          string     `json:"id" db:"id"`
	WorkspaceID string     `json:"workspace_id" db:"workspace_id"`
	Name        string     `json:"name" db:"name"`
	Role        Role       `json:"role" db:"role"`
	Hash        []byte     `json:"-" db:"secret_hash"`
	CreatedAt   time.Time  `json:"created_at" db:"created_at"`
	CreatedBy   string     `json:"created_by,omitempty" db:"created_by"` // id of the key that made it; empty for the CLI
	RevokedAt   *time.Time `json:"revoked_at,omitempty" db:"revoked_at"`
}

// Validate checks the fields a caller chooses.
func (k *APIKey) Validate() error {
	if !k.Role.Valid() {
		return Errorf(EInvalid, "role must be one of viewer, developer, admin")
	}
	if len(k.Name) > 100 {
		return Errorf(EInvalid, "name must be at most 100 characters")
	}
	return nil
}

// ParseKey splits a presented API key into its id and secret. It checks the
// exact shape (prefix, lengths, alphabets) so that a malformed key is refused
// before any storage lookup.
func ParseKey(token string) (id, secret string, err error) {
	bad := Errorf(EUnauthenticated, "malformed API key")
	if len(token) != KeyLen || !strings.HasPrefix(token, KeyPrefix) {
		return "", "", bad
	}
	rest := token[len(KeyPrefix):]
	id, secret = rest[:IDLen], rest[IDLen+1:]
	if rest[IDLen] != '_' || !ValidID(id) {
		return "", "", bad
	}
	for i := 0; i < len(secret); i++ {
		c := secret[i]
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return "", "", bad
		}
	}
	// The last digit carries 2 bits of padding that must be zero, so that
	// exactly one string encodes each secret.
	if raw, err := keyEncoding.DecodeString(secret); err != nil || keyEncoding.EncodeToString(raw) != secret {
		return "", "", bad
	}
	return id, secret, nil
}

// NewKeyToken returns a fresh API key for the stored key id, and its secret.
func NewKeyToken(id string) (token, secret string) {
	var raw [32]byte
	rand.Read(raw[:])
	secret = keyEncoding.EncodeToString(raw[:])
	return KeyPrefix + id + "_" + secret, secret
}

// KeyHasher computes the stored form of key secrets: HMAC-SHA256 under a
// secret pepper. The pepper is kept in the store wrapped by the master key
// (see secrets.APIKeyPepper), so without the master key a stolen database
// does not let anyone test guesses offline, and rotating the master key
// re-wraps the pepper without changing it.
type KeyHasher struct {
	pepper []byte
}

// PepperSize is the length of an API key pepper in bytes.
const PepperSize = 32

// NewKeyHasherFromPepper returns a hasher under pepper (PepperSize bytes),
// which it copies.
func NewKeyHasherFromPepper(pepper []byte) (*KeyHasher, error) {
	if len(pepper) != PepperSize {
		return nil, fmt.Errorf("API key pepper must be %d bytes, got %d", PepperSize, len(pepper))
	}
	return &KeyHasher{pepper: bytes.Clone(pepper)}, nil
}

// Hash returns the stored form of the secret of key id. The id is bound into
// the MAC so that a hash copied onto another key row does not verify.
func (h *KeyHasher) Hash(id, secret string) []byte {
	m := hmac.New(sha256.New, h.pepper)
	m.Write([]byte(id))
	m.Write([]byte{0})
	m.Write([]byte(secret))
	return m.Sum(nil)
}

// Verify reports, in constant time, whether secret matches the stored hash.
func (h *KeyHasher) Verify(id, secret string, hash []byte) bool {
	return hmac.Equal(h.Hash(id, secret), hash)
}

// NewAPIKey makes a key for a workspace: a fresh id and secret, the stored
// hash, and the token to hand out once. createdBy is the id of the key that
// asked for it, or empty.
func NewAPIKey(h *KeyHasher, workspaceID, name string, role Role, createdBy string) (*APIKey, string, error) {
	k := &APIKey{
		ID:          NewID(),
		WorkspaceID: workspaceID,
		Name:        name,
		Role:        role,
		CreatedAt:   time.Now().UTC().Truncate(time.Microsecond),
		CreatedBy:   createdBy,
	}
	if err := k.Validate(); err != nil {
		return nil, "", err
	}
	token, secret := NewKeyToken(k.ID)
	k.Hash = h.Hash(k.ID, secret)
	return k, token, nil
}
