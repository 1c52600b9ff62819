package secrets

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/relayhq/relay/core"
)

func newMasterKey(t testing.TB) []byte {
	t.Helper()
	k := make([]byte, MasterKeySize)
	rand.Read(k)
	return k
}

func mustKeyring(t testing.TB, master []byte, store core.DataKeyStore) *Keyring {
	t.Helper()
	k, err := NewKeyring(master, store)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustSeal(t testing.TB, k *Keyring, ws, conn, field string, pt []byte) []byte {
	t.Helper()
	ct, err := k.Seal(context.Background(), ws, conn, field, pt)
	if err != nil {
		t.Fatalf("seal %s/%s/%s: %v", ws, conn, field, err)
	}
	return ct
}

// assertNoLeak fails when an error message carries the plaintext or a key.
func assertNoLeak(t *testing.T, err error, secrets ...[]byte) {
	t.Helper()
	msg := err.Error()
	for _, s := range secrets {
		if len(s) >= 4 && (strings.Contains(msg, string(s)) || strings.Contains(msg, hex.EncodeToString(s))) {
			t.Fatalf("error %q leaks secret bytes", msg)
		}
	}
}

func TestSealOpenRoundTrip(t *testing.T) {
	ctx := context.Background()
	store := newMemDataKeyStore()
	master := newMasterKey(t)
	k := mustKeyring(t, master, store)
	big := make([]byte, 1<<16)
	rand.Read(big)
	tests := map[string][]byte{
		"empty":   {},
		"token":   []byte("xoxb-123-secret"),
		"binary":  {0, 1, 2, 0xff, 0},
		"unicode": []byte("pässwörd ✓"),
		"64 KiB":  big,
	}
	for name, pt := range tests {
		t.Run(name, func(t *testing.T) {
			ct := mustSeal(t, k, "ws1", "conn1", "password", pt)
			if len(ct) != len(pt)+Overhead {
				t.Fatalf("ciphertext is %d bytes, want %d", len(ct), len(pt)+Overhead)
			}
			if ct[0] != formatV1 {
				t.Fatalf("version byte %#x", ct[0])
			}
			got, err := k.Open(ctx, "ws1", "conn1", "password", ct)
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("open: %v, same plaintext %v", err, bytes.Equal(got, pt))
			}
			// A fresh Keyring has nothing cached: it unwraps from the store.
			got, err = mustKeyring(t, master, store).Open(ctx, "ws1", "conn1", "password", ct)
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("open with a fresh keyring: %v", err)
			}
		})
	}
	if n := store.createdCount(); n != 1 {
		t.Fatalf("%d data keys created for one workspace, want 1", n)
	}
}

func TestOpenRefusesMovedCiphertext(t *testing.T) {
	ctx := context.Background()
	store := newMemDataKeyStore()
	k := mustKeyring(t, newMasterKey(t), store)
	pt := []byte("hunter2-very-secret")
	ct := mustSeal(t, k, "ws1", "conn1", "password", pt)
	mustSeal(t, k, "ws2", "conn1", "password", []byte("gives ws2 a data key"))

	tests := []struct {
		name            string
		ws, conn, field string
		want            error
	}{
		{"other connection", "ws1", "conn2", "password", ErrNotAuthentic},
		{"other field", "ws1", "conn1", "api_key", ErrNotAuthentic},
		{"other workspace, same ids", "ws2", "conn1", "password", ErrNotAuthentic},
		{"workspace without a data key", "ws3", "conn1", "password", ErrNoDataKey},
		// Without length prefixes these would encode as the original.
		{"boundary shifted left", "ws1", "conn", "1password", ErrNotAuthentic},
		{"boundary shifted right", "ws1", "conn1p", "assword", ErrNotAuthentic},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := k.Open(ctx, tt.ws, tt.conn, tt.field, ct)
			if !errors.Is(err, tt.want) {
				t.Fatalf("open = %q, %v; want %v", got, err, tt.want)
			}
			if got != nil {
				t.Fatal("a failed open returned bytes")
			}
			if code := core.ErrorCode(err); code != core.EInternal {
				t.Fatalf("error code %q: a broken secret must not look like a caller's error", code)
			}
			for _, part := range []string{tt.ws, tt.conn, tt.field} {
				if !strings.Contains(err.Error(), part) {
					t.Fatalf("error %q does not name %q", err, part)
				}
			}
			assertNoLeak(t, err, pt)
		})
	}
	if got, err := k.Open(ctx, "ws1", "conn1", "password", ct); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("the original row no longer opens: %v", err)
	}
}

func TestOpenRefusesAlteredCiphertext(t *testing.T) {
	ctx := context.Background()
	k := mustKeyring(t, newMasterKey(t), newMemDataKeyStore())
	pt := []byte("s3cr3t-value")
	ct := mustSeal(t, k, "ws1", "conn1", "token", pt)
	open := func(b []byte) error {
		got, err := k.Open(ctx, "ws1", "conn1", "token", b)
		if err == nil {
			return fmt.Errorf("opened to %q", got)
		}
		assertNoLeak(t, err, pt)
		return err
	}
	for i := range ct {
		for _, bit := range []byte{0x01, 0x80} {
			b := bytes.Clone(ct)
			b[i] ^= bit
			err := open(b)
			want := ErrNotAuthentic
			if i == 0 {
				want = ErrUnsupportedVersion
			}
			if !errors.Is(err, want) {
				t.Fatalf("byte %d ^ %#x: %v, want %v", i, bit, err, want)
			}
		}
	}
	for n := range len(ct) {
		if err := open(ct[:n]); !errors.Is(err, ErrNotAuthentic) {
			t.Fatalf("truncated to %d bytes: %v", n, err)
		}
	}
	if err := open(append(bytes.Clone(ct), 0)); !errors.Is(err, ErrNotAuthentic) {
		t.Fatalf("one byte appended: %v", err)
	}
}

func TestWrongMasterKey(t *testing.T) {
	ctx := context.Background()
	store := newMemDataKeyStore()
	right, wrong := newMasterKey(t), newMasterKey(t)
	ct := mustSeal(t, mustKeyring(t, right, store), "ws1", "conn1", "password", []byte("pw"))
	before := store.snapshot()

	k := mustKeyring(t, wrong, store)
	_, err := k.Open(ctx, "ws1", "conn1", "password", ct)
	if !errors.Is(err, ErrUnwrap) {
		t.Fatalf("open under the wrong master key: %v, want ErrUnwrap", err)
	}
	assertNoLeak(t, err, right, wrong)
	// Seal must not paper over it with a new data key.
	if _, err := k.Seal(ctx, "ws1", "conn2", "password", []byte("x")); !errors.Is(err, ErrUnwrap) {
		t.Fatalf("seal under the wrong master key: %v, want ErrUnwrap", err)
	}
	if !mapsEqual(before, store.snapshot()) {
		t.Fatal("the wrong master key changed the store")
	}
}

func TestWrappedKeyBoundToWorkspace(t *testing.T) {
	ctx := context.Background()
	store := newMemDataKeyStore()
	master := newMasterKey(t)
	k := mustKeyring(t, master, store)
	ctA := mustSeal(t, k, "wsA", "conn1", "password", []byte("a's secret"))
	// wsB's row is given a copy of wsA's wrapped key, and wsA's ciphertext
	// too: with a workspace-blind wrapping both would open.
	store.set("wsB", store.snapshot()["wsA"])
	_, err := mustKeyring(t, master, store).Open(ctx, "wsB", "conn1", "password", ctA)
	if !errors.Is(err, ErrUnwrap) {
		t.Fatalf("a wrapped key copied to another workspace: %v, want ErrUnwrap", err)
	}
}

func TestOpenWithCorruptWrappedKey(t *testing.T) {
	ctx := context.Background()
	master := newMasterKey(t)
	for name, wrapped := range map[string][]byte{
		"empty":       {},
		"short":       {formatV1, 1, 2, 3},
		"long":        append(bytes.Repeat([]byte{formatV1}, wrappedSize), 0),
		"bad version": append([]byte{0x7f}, make([]byte, wrappedSize-1)...),
		"zeros":       append([]byte{formatV1}, make([]byte, wrappedSize-1)...),
	} {
		t.Run(name, func(t *testing.T) {
			store := newMemDataKeyStore()
			store.set("ws1", wrapped)
			_, err := mustKeyring(t, master, store).Open(ctx, "ws1", "conn1", "f", make([]byte, 64))
			if !errors.Is(err, ErrUnwrap) && !errors.Is(err, ErrUnsupportedVersion) {
				t.Fatalf("open: %v", err)
			}
		})
	}
}

// failingStore fails every call with a store error.
type failingStore struct{ err error }

func (s failingStore) WrappedDataKey(context.Context, string) ([]byte, error) { return nil, s.err }
func (s failingStore) CreateWrappedDataKey(context.Context, string, []byte) ([]byte, error) {
	return nil, s.err
}
func (s failingStore) RewrapDataKeys(context.Context, func(string, []byte) ([]byte, error)) (int, error) {
	return 0, s.err
}

func TestStoreErrorsPassThrough(t *testing.T) {
	ctx := context.Background()
	master := newMasterKey(t)
	down := failingStore{core.Errorf(core.EUnavailable, "database is down")}
	k := mustKeyring(t, master, down)
	if _, err := k.Seal(ctx, "ws1", "c", "f", []byte("x")); core.ErrorCode(err) != core.EUnavailable {
		t.Fatalf("seal with the store down: %v", err)
	}
	if _, err := k.Open(ctx, "ws1", "c", "f", []byte("x")); core.ErrorCode(err) != core.EUnavailable {
		t.Fatalf("open with the store down: %v", err)
	}
	// The first Seal of a workspace: the lookup says not found, the insert fails.
	store := &createFails{memDataKeyStore: newMemDataKeyStore(), err: down.err}
	if _, err := mustKeyring(t, master, store).Seal(ctx, "ws1", "c", "f", []byte("x")); core.ErrorCode(err) != core.EUnavailable {
		t.Fatalf("seal with the insert failing: %v", err)
	}
}

type createFails struct {
	*memDataKeyStore
	err error
}

func (s *createFails) CreateWrappedDataKey(context.Context, string, []byte) ([]byte, error) {
	return nil, s.err
}

func TestConcurrentFirstSealCreatesOneDataKey(t *testing.T) {
	ctx := context.Background()
	store := newMemDataKeyStore()
	master := newMasterKey(t)
	shared := mustKeyring(t, master, store)
	const n = 20
	cts := make([][]byte, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		// Half share one Keyring (one cache), half have their own, as
		// separate replicas would.
		k := shared
		if i%2 == 1 {
			k = mustKeyring(t, master, store)
		}
		wg.Go(func() {
			<-start
			cts[i], errs[i] = k.Seal(ctx, "ws1", fmt.Sprintf("conn%d", i), "password", fmt.Appendf(nil, "secret %d", i))
		})
	}
	close(start)
	wg.Wait()
	if c := store.createdCount(); c != 1 {
		t.Fatalf("%d data keys stored, want 1", c)
	}
	fresh := mustKeyring(t, master, store)
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("seal %d: %v", i, errs[i])
		}
		got, err := fresh.Open(ctx, "ws1", fmt.Sprintf("conn%d", i), "password", cts[i])
		if err != nil || string(got) != fmt.Sprintf("secret %d", i) {
			t.Fatalf("secret %d does not open under the stored data key: %v", i, err)
		}
	}
}

func TestSealIsRandomized(t *testing.T) {
	k := mustKeyring(t, newMasterKey(t), newMemDataKeyStore())
	seen := map[string]bool{}
	nonces := map[string]bool{}
	for range 100 {
		ct := mustSeal(t, k, "ws1", "conn1", "password", []byte("same plaintext"))
		if seen[string(ct)] || nonces[string(ct[1:headerSize])] {
			t.Fatal("two seals of one plaintext gave the same ciphertext or nonce")
		}
		seen[string(ct)], nonces[string(ct[1:headerSize])] = true, true
	}
}

// TestNothingPlainAtRest looks for the plaintext, the data key and the
// master key in everything that gets stored.
func TestNothingPlainAtRest(t *testing.T) {
	store := newMemDataKeyStore()
	master := newMasterKey(t)
	k := mustKeyring(t, master, store)
	pt := []byte("correct horse battery staple")
	ct := mustSeal(t, k, "ws1", "conn1", "password", pt)
	wrapped := store.snapshot()["ws1"]
	if len(wrapped) != wrappedSize || wrapped[0] != formatV1 {
		t.Fatalf("wrapped key: %d bytes, version %#x", len(wrapped), wrapped[0])
	}
	wrap, err := newWrapAEAD(master)
	if err != nil {
		t.Fatal(err)
	}
	dataKey, err := unwrapDataKey(wrap, "ws1", wrapped)
	if err != nil {
		t.Fatal(err)
	}
	for _, stored := range [][]byte{ct, wrapped} {
		for name, secret := range map[string][]byte{"plaintext": pt, "data key": dataKey, "master key": master} {
			// Even its first 8 bytes stored would be a leak.
			if bytes.Contains(stored, secret[:8]) {
				t.Fatalf("stored bytes contain the %s", name)
			}
		}
	}
}

func TestRefusals(t *testing.T) {
	ctx := context.Background()
	store := newMemDataKeyStore()
	for _, key := range [][]byte{nil, make([]byte, MasterKeySize-1), make([]byte, MasterKeySize+1)} {
		if _, err := NewKeyring(key, store); err == nil {
			t.Fatalf("a %d-byte master key was accepted", len(key))
		}
	}
	if _, err := NewKeyring(newMasterKey(t), nil); err == nil {
		t.Fatal("a nil store was accepted")
	}
	k := mustKeyring(t, newMasterKey(t), store)
	for _, b := range [][3]string{{"", "c", "f"}, {"w", "", "f"}, {"w", "c", ""}} {
		if _, err := k.Seal(ctx, b[0], b[1], b[2], []byte("x")); err == nil {
			t.Fatalf("seal bound to %q was accepted", b)
		}
		if _, err := k.Open(ctx, b[0], b[1], b[2], []byte("x")); err == nil {
			t.Fatalf("open bound to %q was accepted", b)
		}
	}
	if n := store.createdCount(); n != 0 {
		t.Fatal("a refused seal created a data key")
	}
}

func mapsEqual(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !bytes.Equal(v, w) {
			return false
		}
	}
	return true
}

func benchmarkKeyring(b *testing.B) *Keyring {
	k := mustKeyring(b, newMasterKey(b), newMemDataKeyStore())
	mustSeal(b, k, "ws1", "conn1", "password", nil) // creates and caches the data key
	return k
}

func BenchmarkSeal(b *testing.B) {
	for _, size := range []int{64, 4096} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			k := benchmarkKeyring(b)
			pt := make([]byte, size)
			ctx := context.Background()
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := k.Seal(ctx, "ws1", "conn1", "password", pt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	for _, size := range []int{64, 4096} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			k := benchmarkKeyring(b)
			ct := mustSeal(b, k, "ws1", "conn1", "password", make([]byte, size))
			ctx := context.Background()
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := k.Open(ctx, "ws1", "conn1", "password", ct); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
