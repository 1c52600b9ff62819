package secrets

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
)

type sealedRow struct {
	ws, conn, field string
	plaintext, ct   []byte
}

// sealSome seals two secrets in each of three workspaces.
func sealSome(t *testing.T, k *Keyring) []sealedRow {
	t.Helper()
	var rows []sealedRow
	for _, ws := range []string{"ws1", "ws2", "ws3"} {
		for _, field := range []string{"password", "api_key"} {
			pt := fmt.Appendf(nil, "%s of %s", field, ws)
			rows = append(rows, sealedRow{ws, "conn1", field, pt, mustSeal(t, k, ws, "conn1", field, pt)})
		}
	}
	return rows
}

func opensAll(t *testing.T, k *Keyring, rows []sealedRow) {
	t.Helper()
	for _, r := range rows {
		got, err := k.Open(context.Background(), r.ws, r.conn, r.field, r.ct)
		if err != nil || !bytes.Equal(got, r.plaintext) {
			t.Fatalf("%s/%s/%s does not open: %v", r.ws, r.conn, r.field, err)
		}
	}
}

func TestRotateMaster(t *testing.T) {
	ctx := context.Background()
	store := newMemDataKeyStore()
	oldMaster, newMaster := newMasterKey(t), newMasterKey(t)
	rows := sealSome(t, mustKeyring(t, oldMaster, store))
	before := store.snapshot()

	n, err := RotateMaster(ctx, store, oldMaster, newMaster)
	if err != nil || n != 3 {
		t.Fatalf("rotate: %d, %v; want 3 re-wrapped", n, err)
	}
	after := store.snapshot()
	for ws := range before {
		if bytes.Equal(before[ws], after[ws]) {
			t.Fatalf("the data key of %s was not re-wrapped", ws)
		}
	}
	opensAll(t, mustKeyring(t, newMaster, store), rows)
	_, err = mustKeyring(t, oldMaster, store).Open(ctx, rows[0].ws, rows[0].conn, rows[0].field, rows[0].ct)
	if !errors.Is(err, ErrUnwrap) {
		t.Fatalf("the old master key still opens after rotation: %v", err)
	}
	// New workspaces get data keys under the new master key.
	k := mustKeyring(t, newMaster, store)
	ct := mustSeal(t, k, "ws4", "conn1", "password", []byte("new"))
	if _, err := mustKeyring(t, newMaster, store).Open(ctx, "ws4", "conn1", "password", ct); err != nil {
		t.Fatal(err)
	}
	// Rotating again from the now retired key fails and changes nothing.
	snap := store.snapshot()
	if _, err := RotateMaster(ctx, store, oldMaster, newMasterKey(t)); !errors.Is(err, ErrUnwrap) {
		t.Fatalf("rotation from a retired master key: %v, want ErrUnwrap", err)
	}
	if !mapsEqual(snap, store.snapshot()) {
		t.Fatal("a failed rotation changed the store")
	}
}

func TestRotateMasterAbortsWhole(t *testing.T) {
	ctx := context.Background()
	oldMaster, newMaster := newMasterKey(t), newMasterKey(t)
	// Each makes ws2's wrapped key bad, from what the store held.
	for name, corrupt := range map[string]func(stored map[string][]byte) []byte{
		"flipped byte":           func(s map[string][]byte) []byte { w := s["ws2"]; w[len(w)-1] ^= 1; return w },
		"truncated":              func(s map[string][]byte) []byte { return s["ws2"][:wrappedSize-1] },
		"from another workspace": func(s map[string][]byte) []byte { return s["ws1"] },
	} {
		t.Run(name, func(t *testing.T) {
			store := newMemDataKeyStore()
			rows := sealSome(t, mustKeyring(t, oldMaster, store))
			store.set("ws2", corrupt(store.snapshot()))
			before := store.snapshot()

			n, err := RotateMaster(ctx, store, oldMaster, newMaster)
			if err == nil || n != 0 {
				t.Fatalf("rotation with a corrupt key: %d, %v", n, err)
			}
			if !errors.Is(err, ErrUnwrap) {
				t.Fatalf("error %v does not wrap ErrUnwrap", err)
			}
			assertNoLeak(t, err, oldMaster, newMaster)
			if !mapsEqual(before, store.snapshot()) {
				t.Fatal("an aborted rotation changed the store")
			}
			// The intact workspaces still open under the old key only.
			var intact []sealedRow
			for _, r := range rows {
				if r.ws != "ws2" {
					intact = append(intact, r)
				}
			}
			opensAll(t, mustKeyring(t, oldMaster, store), intact)
			if _, err := mustKeyring(t, newMaster, store).Open(ctx, "ws1", "conn1", "password", rows[0].ct); !errors.Is(err, ErrUnwrap) {
				t.Fatalf("the new master key opens after an aborted rotation: %v", err)
			}
		})
	}
}

func TestRotateMasterRefusals(t *testing.T) {
	ctx := context.Background()
	store := newMemDataKeyStore()
	master := newMasterKey(t)
	sealSome(t, mustKeyring(t, master, store))
	before := store.snapshot()
	tests := map[string][2][]byte{
		"same key":        {master, bytes.Clone(master)},
		"short old key":   {master[:16], newMasterKey(t)},
		"short new key":   {master, master[:16]},
		"missing new key": {master, nil},
	}
	for name, keys := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := RotateMaster(ctx, store, keys[0], keys[1]); err == nil {
				t.Fatal("accepted")
			}
			if !mapsEqual(before, store.snapshot()) {
				t.Fatal("a refused rotation changed the store")
			}
		})
	}
	if _, err := RotateMaster(ctx, nil, master, newMasterKey(t)); err == nil {
		t.Fatal("a nil store was accepted")
	}
}

func TestRotateMasterEmptyStore(t *testing.T) {
	n, err := RotateMaster(context.Background(), newMemDataKeyStore(), newMasterKey(t), newMasterKey(t))
	if err != nil || n != 0 {
		t.Fatalf("rotate with no data keys: %d, %v", n, err)
	}
}
