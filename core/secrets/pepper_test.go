package secrets

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"sync"
	"testing"

	"github.com/relayhq/relay/core"
)

func mustPepper(t *testing.T, master []byte, store core.ServerKeyStore) []byte {
	t.Helper()
	p, err := APIKeyPepper(context.Background(), master, store)
	if err != nil {
		t.Fatalf("APIKeyPepper: %v", err)
	}
	return p
}

func mustHasher(t *testing.T, pepper []byte) *core.KeyHasher {
	t.Helper()
	h, err := core.NewKeyHasherFromPepper(pepper)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// The first call stores the pepper, wrapped; later ones load the same.
func TestAPIKeyPepperRoundTrip(t *testing.T) {
	store := newMemDataKeyStore()
	master := newMasterKey(t)
	p1 := mustPepper(t, master, store)
	if len(p1) != core.PepperSize {
		t.Fatalf("pepper of %d bytes", len(p1))
	}
	wrapped, err := store.WrappedServerKey(context.Background(), APIKeyPepperName)
	if err != nil {
		t.Fatal(err)
	}
	if len(wrapped) != wrappedSize || wrapped[0] != formatV1 || bytes.Contains(wrapped, p1) {
		t.Fatalf("stored pepper is not wrapped: %x", wrapped)
	}
	if p2 := mustPepper(t, master, store); !bytes.Equal(p1, p2) {
		t.Fatal("a second call returned another pepper")
	}
	if got := mustPepper(t, master, store); !bytes.Equal(got, p1) {
		t.Fatal("the pepper changed")
	}
}

// A hash made by the derivation Relay used before the pepper was stored
// verifies with the pepper APIKeyPepper stores for such a store.
func TestAPIKeyPepperLegacy(t *testing.T) {
	master := newMasterKey(t)
	old, err := hkdf.Key(sha256.New, master, nil, "relay api-key pepper v1", 32)
	if err != nil {
		t.Fatal(err)
	}
	k, token, err := core.NewAPIKey(mustHasher(t, old), core.NewID(), "ci", core.RoleAdmin, "")
	if err != nil {
		t.Fatal(err)
	}
	id, secret, _ := core.ParseKey(token)

	store := newMemDataKeyStore()
	if !mustHasher(t, mustPepper(t, master, store)).Verify(id, secret, k.Hash) {
		t.Fatal("a key hashed under the derived pepper does not verify with the stored one")
	}
	// Once stored, the pepper is loaded, not derived.
	if !mustHasher(t, mustPepper(t, master, store)).Verify(id, secret, k.Hash) {
		t.Fatal("a key hashed under the derived pepper does not verify with the loaded one")
	}
}

// A rotation keeps the pepper: a key hashed before it verifies after it,
// with the pepper loaded under the new master key.
func TestAPIKeyPepperRotation(t *testing.T) {
	ctx := context.Background()
	store := newMemDataKeyStore()
	oldMaster, newMaster := newMasterKey(t), newMasterKey(t)
	sealSome(t, mustKeyring(t, oldMaster, store))
	pepper := mustPepper(t, oldMaster, store)
	k, token, _ := core.NewAPIKey(mustHasher(t, pepper), core.NewID(), "ci", core.RoleAdmin, "")
	id, secret, _ := core.ParseKey(token)
	before, _ := store.WrappedServerKey(ctx, APIKeyPepperName)

	n, err := RotateMaster(ctx, store, oldMaster, newMaster)
	if err != nil || n != 3 {
		t.Fatalf("rotate: %d, %v; want 3 data keys re-wrapped", n, err)
	}
	after, _ := store.WrappedServerKey(ctx, APIKeyPepperName)
	if bytes.Equal(before, after) {
		t.Fatal("the pepper was not re-wrapped")
	}
	got := mustPepper(t, newMaster, store)
	if !bytes.Equal(got, pepper) {
		t.Fatal("the rotation changed the pepper")
	}
	if !mustHasher(t, got).Verify(id, secret, k.Hash) {
		t.Fatal("a key made before the rotation does not verify after it")
	}
	// The old master key no longer unwraps it, and nothing is stored anew.
	if _, err := APIKeyPepper(ctx, oldMaster, store); !errors.Is(err, ErrUnwrap) {
		t.Fatalf("the old master key after rotation: %v, want ErrUnwrap", err)
	}
	if now, _ := store.WrappedServerKey(ctx, APIKeyPepperName); !bytes.Equal(now, after) {
		t.Fatal("a failed load changed the stored pepper")
	}
}

// A corrupt pepper aborts the whole rotation.
func TestRotateMasterCorruptPepper(t *testing.T) {
	ctx := context.Background()
	store := newMemDataKeyStore()
	oldMaster, newMaster := newMasterKey(t), newMasterKey(t)
	sealSome(t, mustKeyring(t, oldMaster, store))
	mustPepper(t, oldMaster, store)
	// The pepper's slot holds ws1's data key: a valid wrapping, but bound
	// to another name.
	store.set(core.ServerKeyScope+APIKeyPepperName, store.snapshot()["ws1"])
	before := store.snapshot()
	if n, err := RotateMaster(ctx, store, oldMaster, newMaster); err == nil || n != 0 || !errors.Is(err, ErrUnwrap) {
		t.Fatalf("rotation with a corrupt pepper: %d, %v", n, err)
	}
	if !mapsEqual(before, store.snapshot()) {
		t.Fatal("an aborted rotation changed the store")
	}
}

func TestAPIKeyPepperWrongMaster(t *testing.T) {
	store := newMemDataKeyStore()
	mustPepper(t, newMasterKey(t), store)
	before := store.snapshot()
	_, err := APIKeyPepper(context.Background(), newMasterKey(t), store)
	if !errors.Is(err, ErrUnwrap) {
		t.Fatalf("another master key: %v, want ErrUnwrap", err)
	}
	if !mapsEqual(before, store.snapshot()) {
		t.Fatal("a wrong master key changed the store")
	}
	for name, key := range map[string][]byte{"short": make([]byte, 16), "nil": nil} {
		if _, err := APIKeyPepper(context.Background(), key, store); err == nil {
			t.Errorf("%s master key accepted", name)
		}
	}
	if _, err := APIKeyPepper(context.Background(), newMasterKey(t), nil); err == nil {
		t.Error("nil store accepted")
	}
}

// Racing first callers all get the pepper that was stored.
func TestAPIKeyPepperRace(t *testing.T) {
	store := newMemDataKeyStore()
	master := newMasterKey(t)
	const n = 8
	got := make([][]byte, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			p, err := APIKeyPepper(context.Background(), master, store)
			if err != nil {
				t.Error(err)
			}
			got[i] = p
		})
	}
	wg.Wait()
	for i := range got {
		if !bytes.Equal(got[i], got[0]) {
			t.Fatalf("caller %d got another pepper", i)
		}
	}
}
