package secrets

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"

	"github.com/relayhq/relay/core"
)

// Keyring seals and opens connection secrets by envelope encryption. Each
// workspace has a random 256-bit data key that seals its secrets; the store
// holds that key only wrapped (encrypted) under a key derived from the
// master key (HKDF-SHA256, info "relay data-key wrap v1"). The formats are
// described in format.go. A Keyring is safe for concurrent use.
//
// Errors name the workspace, connection and field but never carry key or
// plaintext bytes. Failures to open wrap ErrNotAuthentic, ErrUnwrap,
// ErrNoDataKey or ErrUnsupportedVersion; they are plain errors, not
// *core.Error: what the caller tells its own caller is the caller's choice.
type Keyring struct {
	store core.DataKeyStore
	wrap  cipher.AEAD // under the key derived from the master key

	// keys maps a workspace id to the cipher under its unwrapped data key.
	// It is never evicted: workspaces are few and an entry is a few dozen
	// bytes, and a data key never changes (RotateMaster re-wraps it), so an
	// entry never goes stale. The price is that unwrapped data keys of every
	// workspace this process touched stay in its memory.
	keys sync.Map
}

// NewKeyring returns a Keyring whose data keys are wrapped by masterKey
// (MasterKeySize bytes) and kept in store. A wrong master key is noticed on
// the first Seal or Open of a workspace that already has a data key.
func NewKeyring(masterKey []byte, store core.DataKeyStore) (*Keyring, error) {
	if store == nil {
		return nil, errors.New("secrets: keyring: no data key store")
	}
	wrap, err := newWrapAEAD(masterKey)
	if err != nil {
		return nil, fmt.Errorf("secrets: keyring: %w", err)
	}
	return &Keyring{store: store, wrap: wrap}, nil
}

// Seal encrypts the secret field of a connection. The result opens only with
// the same workspace id, connection id and field; it is Overhead bytes longer
// than plaintext and different at every call. The workspace's first Seal
// creates its data key.
func (k *Keyring) Seal(ctx context.Context, workspaceID, connectionID, field string, plaintext []byte) ([]byte, error) {
	if err := checkBinding(workspaceID, connectionID, field); err != nil {
		return nil, fmt.Errorf("secrets: seal: %w", err)
	}
	aead, err := k.dataKey(ctx, workspaceID, true)
	if err != nil {
		return nil, fmt.Errorf("secrets: seal field %q of connection %q in workspace %q: %w", field, connectionID, workspaceID, err)
	}
	return sealV1(aead, plaintext, secretAD(workspaceID, connectionID, field)), nil
}

// Open decrypts what Seal returned for the same workspace, connection and
// field. Anything else fails: ErrNotAuthentic for a ciphertext altered or
// sealed for another row, ErrNoDataKey for a workspace that never sealed,
// ErrUnwrap for a wrong master key, or a store error.
func (k *Keyring) Open(ctx context.Context, workspaceID, connectionID, field string, ciphertext []byte) ([]byte, error) {
	if err := checkBinding(workspaceID, connectionID, field); err != nil {
		return nil, fmt.Errorf("secrets: open: %w", err)
	}
	aead, err := k.dataKey(ctx, workspaceID, false)
	if err == nil {
		var pt []byte
		if pt, err = openV1(aead, ciphertext, secretAD(workspaceID, connectionID, field)); err == nil {
			return pt, nil
		}
	}
	return nil, fmt.Errorf("secrets: open field %q of connection %q in workspace %q: %w", field, connectionID, workspaceID, err)
}

// Forget drops the workspace's unwrapped data key from memory: after its
// erasure, this process holds no key that opens its secrets.
func (k *Keyring) Forget(workspaceID string) { k.keys.Delete(workspaceID) }

// dataKey returns the cipher under the workspace's data key: from the cache,
// else unwrapped from the store, else (when create is set) a new one.
func (k *Keyring) dataKey(ctx context.Context, workspaceID string, create bool) (cipher.AEAD, error) {
	if a, ok := k.keys.Load(workspaceID); ok {
		return a.(cipher.AEAD), nil
	}
	wrapped, err := k.store.WrappedDataKey(ctx, workspaceID)
	switch {
	case err == nil:
	case core.ErrorCode(err) == core.ENotFound && create:
		if wrapped, err = k.createDataKey(ctx, workspaceID); err != nil {
			return nil, err
		}
	case core.ErrorCode(err) == core.ENotFound:
		// The store's not_found is not passed on: to an API caller it would
		// read as "no such connection", but a sealed secret without its
		// data key is broken storage.
		return nil, ErrNoDataKey
	default:
		return nil, fmt.Errorf("loading the data key: %w", err)
	}
	aead, err := dataKeyCipher(k.wrap, workspaceID, wrapped)
	if err != nil {
		return nil, err
	}
	actual, _ := k.keys.LoadOrStore(workspaceID, aead)
	return actual.(cipher.AEAD), nil
}

// createDataKey makes, wraps and stores a fresh data key and returns the
// wrapped key the store kept: when another process or goroutine created
// one first, that one wins and ours is dropped.
func (k *Keyring) createDataKey(ctx context.Context, workspaceID string) ([]byte, error) {
	dataKey := make([]byte, dataKeySize)
	rand.Read(dataKey)
	wrapped := wrapDataKey(k.wrap, workspaceID, dataKey)
	clear(dataKey)
	kept, err := k.store.CreateWrappedDataKey(ctx, workspaceID, wrapped)
	if err != nil {
		return nil, fmt.Errorf("storing a new data key: %w", err)
	}
	return kept, nil
}
