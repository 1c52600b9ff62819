package secrets

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"golang.org/x/crypto/chacha20poly1305"
)

// What this package stores, byte by byte. Both formats start with a version
// byte so that a later algorithm can be told apart from this one; version 1
// is XChaCha20-Poly1305 (24-byte random nonce, 16-byte tag). Random 192-bit
// nonces make collisions negligible however many secrets one key seals.
//
// A wrapped data key (what core.DataKeyStore keeps, 73 bytes):
//
//	0x01 | nonce (24) | XChaCha20-Poly1305(wrapKey, nonce, dataKey (32), ad) (32+16)
//	wrapKey = HKDF-SHA256(master key, no salt, info "relay data-key wrap v1", 32 bytes)
//	ad      = 0x01 | lp("relay data key") | lp(workspace id)
//
// A wrapped server key (what core.ServerKeyStore keeps, such as the API key
// pepper, 73 bytes) is the same but for its associated data:
//
//	0x01 | nonce (24) | XChaCha20-Poly1305(wrapKey, nonce, key (32), ad) (32+16)
//	ad      = 0x01 | lp("relay server key") | lp(name)
//
// A sealed secret (core.SealedSecret.Ciphertext, 41 bytes + the plaintext):
//
//	0x01 | nonce (24) | XChaCha20-Poly1305(dataKey, nonce, plaintext, ad) (len+16)
//	ad      = 0x01 | lp("relay connection secret") | lp(workspace id) | lp(connection id) | lp(field)
//
// lp(s) is len(s) as a 4-byte big-endian integer followed by the bytes of s,
// so no two tuples encode alike ("a","bc" and "ab","c" differ). The version
// byte is in the associated data too, so it cannot be swapped on its own.
// testdata/golden-v1.json holds a sample of each; it must keep opening.
const (
	formatV1     = 0x01
	dataKeySize  = chacha20poly1305.KeySize
	nonceSize    = chacha20poly1305.NonceSizeX
	tagSize      = chacha20poly1305.Overhead
	headerSize   = 1 + nonceSize
	wrappedSize  = headerSize + dataKeySize + tagSize
	wrapKeyInfo  = "relay data-key wrap v1"
	dataKeyLabel = "relay data key"
	serverLabel  = "relay server key"
	secretLabel  = "relay connection secret"
)

// Overhead is how many bytes Seal adds to a plaintext.
const Overhead = headerSize + tagSize

var (
	// ErrNotAuthentic: a ciphertext did not open. It was tampered with or
	// truncated, or it was sealed for another workspace, connection or field.
	ErrNotAuthentic = errors.New("ciphertext does not authenticate: it was altered, or sealed for another workspace, connection or field")
	// ErrUnwrap: a workspace's wrapped data key (or a wrapped server key,
	// such as the API key pepper) did not open under the master key. The
	// master key is the wrong one, or the wrapped key was altered or copied
	// from another workspace or name.
	ErrUnwrap = errors.New("data key does not unwrap: wrong master key, or the wrapped key was altered or belongs to another workspace")
	// ErrNoDataKey: Open was asked for a workspace that never sealed a secret.
	ErrNoDataKey = errors.New("workspace has no data key")
	// ErrUnsupportedVersion: the stored bytes start with a version byte this
	// build does not know (written by a newer Relay, or not ours at all).
	ErrUnsupportedVersion = errors.New("unsupported format version")
)

// newWrapAEAD derives the key-wrapping cipher from the master key. Only the
// derived key is kept: the master key itself never encrypts anything.
func newWrapAEAD(masterKey []byte) (cipher.AEAD, error) {
	if len(masterKey) != MasterKeySize {
		return nil, fmt.Errorf("master key must be %d bytes, got %d", MasterKeySize, len(masterKey))
	}
	wrapKey, err := hkdf.Key(sha256.New, masterKey, nil, wrapKeyInfo, dataKeySize)
	if err != nil {
		return nil, err
	}
	defer clear(wrapKey)
	return chacha20poly1305.NewX(wrapKey)
}

// appendLP appends lp(s): s's length as 4 bytes big-endian, then s.
func appendLP(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func dataKeyAD(workspaceID string) []byte {
	b := make([]byte, 0, 1+4+len(dataKeyLabel)+4+len(workspaceID))
	b = append(b, formatV1)
	b = appendLP(b, dataKeyLabel)
	return appendLP(b, workspaceID)
}

func serverKeyAD(name string) []byte {
	b := make([]byte, 0, 1+4+len(serverLabel)+4+len(name))
	b = append(b, formatV1)
	b = appendLP(b, serverLabel)
	return appendLP(b, name)
}

func secretAD(workspaceID, connectionID, field string) []byte {
	b := make([]byte, 0, 1+4*4+len(secretLabel)+len(workspaceID)+len(connectionID)+len(field))
	b = append(b, formatV1)
	b = appendLP(b, secretLabel)
	b = appendLP(b, workspaceID)
	b = appendLP(b, connectionID)
	return appendLP(b, field)
}

// checkBinding refuses what the associated data cannot encode or what can
// only be a caller's mistake: an empty part would bind a secret to no row.
func checkBinding(workspaceID, connectionID, field string) error {
	for _, p := range [...]struct{ name, v string }{
		{"workspace id", workspaceID}, {"connection id", connectionID}, {"field", field},
	} {
		if p.v == "" {
			return fmt.Errorf("empty %s", p.name)
		}
		if uint64(len(p.v)) > math.MaxUint32 {
			return fmt.Errorf("%s too long", p.name)
		}
	}
	return nil
}

// sealV1 returns version | nonce | aead.Seal(plaintext) with a fresh random nonce.
func sealV1(aead cipher.AEAD, plaintext, ad []byte) []byte {
	out := make([]byte, headerSize, headerSize+len(plaintext)+tagSize)
	out[0] = formatV1
	rand.Read(out[1:headerSize])
	return aead.Seal(out, out[1:headerSize], plaintext, ad)
}

// openV1 opens what sealV1 made. Its errors carry no byte of the input.
func openV1(aead cipher.AEAD, sealed, ad []byte) ([]byte, error) {
	if len(sealed) == 0 {
		return nil, ErrNotAuthentic
	}
	if sealed[0] != formatV1 {
		return nil, fmt.Errorf("%w %d", ErrUnsupportedVersion, sealed[0])
	}
	if len(sealed) < headerSize+tagSize {
		return nil, ErrNotAuthentic
	}
	pt, err := aead.Open(nil, sealed[1:headerSize], sealed[headerSize:], ad)
	if err != nil {
		return nil, ErrNotAuthentic
	}
	return pt, nil
}

// wrapDataKey encrypts a data key under the wrapping cipher, bound to its
// workspace.
func wrapDataKey(wrap cipher.AEAD, workspaceID string, dataKey []byte) []byte {
	return sealV1(wrap, dataKey, dataKeyAD(workspaceID))
}

// unwrapDataKey returns the raw data key; the caller clears it after use.
func unwrapDataKey(wrap cipher.AEAD, workspaceID string, wrapped []byte) ([]byte, error) {
	return unwrapKey(wrap, dataKeyAD(workspaceID), wrapped)
}

// wrapServerKey encrypts a server key under the wrapping cipher, bound to
// its name.
func wrapServerKey(wrap cipher.AEAD, name string, key []byte) []byte {
	return sealV1(wrap, key, serverKeyAD(name))
}

// unwrapServerKey returns the raw server key; the caller clears it after use.
func unwrapServerKey(wrap cipher.AEAD, name string, wrapped []byte) ([]byte, error) {
	return unwrapKey(wrap, serverKeyAD(name), wrapped)
}

func unwrapKey(wrap cipher.AEAD, ad, wrapped []byte) ([]byte, error) {
	if len(wrapped) > 0 && wrapped[0] != formatV1 {
		return nil, fmt.Errorf("wrapped key: %w %d", ErrUnsupportedVersion, wrapped[0])
	}
	if len(wrapped) != wrappedSize {
		return nil, ErrUnwrap
	}
	key, err := openV1(wrap, wrapped, ad)
	if err != nil {
		return nil, ErrUnwrap
	}
	return key, nil
}

// dataKeyCipher unwraps a data key into the cipher that seals secrets.
func dataKeyCipher(wrap cipher.AEAD, workspaceID string, wrapped []byte) (cipher.AEAD, error) {
	dataKey, err := unwrapDataKey(wrap, workspaceID, wrapped)
	if err != nil {
		return nil, err
	}
	defer clear(dataKey)
	return chacha20poly1305.NewX(dataKey)
}
