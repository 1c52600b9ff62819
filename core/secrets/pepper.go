package secrets

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/relayhq/relay/core"
)

// APIKeyPepperName is the server key (core.ServerKeyStore) that holds the
// API key pepper.
const APIKeyPepperName = "api-key-pepper"

// legacyPepperInfo is the HKDF info under which Relay derived the pepper
// from the master key before it was stored.
const legacyPepperInfo = "relay api-key pepper v1"

// APIKeyPepper returns the pepper of API key hashes (see core.KeyHasher):
// the one stored in store, unwrapped with masterKey. When none is stored
// yet it stores one: the pepper that Relay used to derive from the master
// key (HKDF-SHA256, info "relay api-key pepper v1"), so that keys made
// before the pepper was stored still verify. The pepper is kept wrapped by
// the master key and RotateMaster re-wraps it, so it outlives a rotation.
//
// A stored pepper that does not unwrap is ErrUnwrap: the master key is not
// the one the store was wrapped with. Call it with the master key the
// servers run on: a pepper stored from another derives no key's hash.
func APIKeyPepper(ctx context.Context, masterKey []byte, store core.ServerKeyStore) ([]byte, error) {
	if store == nil {
		return nil, errors.New("secrets: API key pepper: no server key store")
	}
	wrap, err := newWrapAEAD(masterKey)
	if err != nil {
		return nil, fmt.Errorf("secrets: API key pepper: %w", err)
	}
	wrapped, err := store.WrappedServerKey(ctx, APIKeyPepperName)
	if core.ErrorCode(err) == core.ENotFound {
		pepper, err := legacyAPIKeyPepper(masterKey)
		if err != nil {
			return nil, fmt.Errorf("secrets: API key pepper: %w", err)
		}
		w := wrapServerKey(wrap, APIKeyPepperName, pepper)
		clear(pepper)
		// When another process stored one first, that one is used.
		if wrapped, err = store.CreateWrappedServerKey(ctx, APIKeyPepperName, w); err != nil {
			return nil, fmt.Errorf("secrets: API key pepper: storing it: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("secrets: API key pepper: loading it: %w", err)
	}
	pepper, err := unwrapServerKey(wrap, APIKeyPepperName, wrapped)
	if err != nil {
		return nil, fmt.Errorf("secrets: API key pepper: %w", err)
	}
	return pepper, nil
}

// legacyAPIKeyPepper is the pepper Relay derived from the master key before
// it stored one.
func legacyAPIKeyPepper(masterKey []byte) ([]byte, error) {
	return hkdf.Key(sha256.New, masterKey, nil, legacyPepperInfo, core.PepperSize)
}
