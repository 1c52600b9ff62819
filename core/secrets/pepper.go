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
	pepper, err := ServerKey(ctx, masterKey, store, APIKeyPepperName, func() ([]byte, error) {
		return legacyAPIKeyPepper(masterKey)
	})
	if err != nil {
		return nil, fmt.Errorf("secrets: API key pepper: %w", err)
	}
	return pepper, nil
}

// ServerKey returns the server key named name (core.ServerKeyStore), kept
// wrapped by masterKey: the one stored, or, when none is stored yet, the
// one make returns, stored first. When several processes store one at
// once, every one of them gets the first stored. ErrUnwrap when the stored
// key does not unwrap with masterKey.
func ServerKey(ctx context.Context, masterKey []byte, store core.ServerKeyStore, name string, make func() ([]byte, error)) ([]byte, error) {
	if store == nil {
		return nil, errors.New("no server key store")
	}
	wrap, err := newWrapAEAD(masterKey)
	if err != nil {
		return nil, err
	}
	wrapped, err := store.WrappedServerKey(ctx, name)
	if core.ErrorCode(err) == core.ENotFound {
		key, err := make()
		if err != nil {
			return nil, err
		}
		w := wrapServerKey(wrap, name, key)
		clear(key)
		if wrapped, err = store.CreateWrappedServerKey(ctx, name, w); err != nil {
			return nil, fmt.Errorf("storing it: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("loading it: %w", err)
	}
	return unwrapServerKey(wrap, name, wrapped)
}

// legacyAPIKeyPepper is the pepper Relay derived from the master key before
// it stored one.
func legacyAPIKeyPepper(masterKey []byte) ([]byte, error) {
	return hkdf.Key(sha256.New, masterKey, nil, legacyPepperInfo, core.PepperSize)
}
