package sqlstore

import (
	"context"
	"encoding/base64"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/relayhq/relay/core"
)

func TestCreateAndGetKey(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		w := mustCreateWorkspace(t, s, "acme")
		k := newKey(w.ID, "deploy bot")
		k.Role = core.RoleAdmin
		k.CreatedBy = core.NewID()
		if err := s.CreateKey(ctx, k, nil); err != nil {
			t.Fatalf("CreateKey: %v", err)
		}

		got, gotWS, err := s.KeyForAuth(ctx, k.ID)
		if err != nil {
			t.Fatalf("KeyForAuth: %v", err)
		}
		if !reflect.DeepEqual(got, k) {
			t.Errorf("KeyForAuth = %+v\nwant %+v", got, k)
		}
		if !reflect.DeepEqual(gotWS, w) {
			t.Errorf("KeyForAuth's workspace = %+v\nwant %+v", gotWS, w)
		}

		// Outside authentication the hash is never loaded.
		withoutHash := *k
		withoutHash.Hash = nil
		got, err = s.Key(ctx, w.ID, k.ID)
		if err != nil {
			t.Fatalf("Key: %v", err)
		}
		if !reflect.DeepEqual(got, &withoutHash) {
			t.Errorf("Key = %+v\nwant %+v", got, &withoutHash)
		}

		_, _, err = s.KeyForAuth(ctx, core.NewID())
		wantCode(t, err, core.ENotFound)
		_, err = s.Key(ctx, w.ID, core.NewID())
		wantCode(t, err, core.ENotFound)
	})
}

func TestCreateKeyRefuses(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		w := mustCreateWorkspace(t, s, "acme")
		taken := mustCreateKey(t, s, w.ID, "first")

		tests := []struct {
			name     string
			change   func(k *core.APIKey)
			wantCode string
		}{
			{"taken id", func(k *core.APIKey) { k.ID = taken.ID }, core.EConflict},
			{"unknown workspace", func(k *core.APIKey) { k.WorkspaceID = core.NewID() }, core.ENotFound},
			{"no workspace", func(k *core.APIKey) { k.WorkspaceID = "" }, core.ENotFound},
			{"bad role", func(k *core.APIKey) { k.Role = "owner" }, core.EInvalid},
			{"long name", func(k *core.APIKey) { k.Name = string(make([]byte, 101)) }, core.EInvalid},
			{"malformed id", func(k *core.APIKey) { k.ID = "key-1" }, core.EInvalid},
			{"no hash", func(k *core.APIKey) { k.Hash = nil }, core.EInvalid},
			{"no creation time", func(k *core.APIKey) { k.CreatedAt = time.Time{} }, core.EInvalid},
		}
		for _, tt := range tests {
			k := newKey(w.ID, "second")
			tt.change(k)
			err := s.CreateKey(ctx, k, nil)
			if got := core.ErrorCode(err); got != tt.wantCode {
				t.Errorf("%s: code %q (%v), want %q", tt.name, got, err, tt.wantCode)
			}
		}
		wantCode(t, s.CreateKey(ctx, nil, nil), core.EInvalid)

		keys, _, err := s.ListKeys(ctx, w.ID, core.Page{})
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != 1 {
			t.Fatalf("%d keys after refused creates, want 1", len(keys))
		}
	})
}

// Times come back equal to what was stored, to the microsecond and in UTC,
// whatever zone and precision they were given in.
func TestKeyTimesRoundTrip(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		w := mustCreateWorkspace(t, s, "acme")
		zone := time.FixedZone("UTC-7", -7*3600)
		created := time.Date(2031, 2, 3, 4, 5, 6, 123456789, zone)
		revoked := time.Date(2032, 12, 31, 23, 59, 59, 999999999, zone)

		k := newKey(w.ID, "timed")
		k.CreatedAt = created
		if err := s.CreateKey(ctx, k, nil); err != nil {
			t.Fatal(err)
		}
		wantCreated := time.Date(2031, 2, 3, 11, 5, 6, 123456000, time.UTC)
		if k.CreatedAt != wantCreated {
			t.Errorf("CreateKey left CreatedAt %v, want %v", k.CreatedAt, wantCreated)
		}
		got, _, err := s.KeyForAuth(ctx, k.ID)
		if err != nil {
			t.Fatal(err)
		}
		// == rather than Equal: the location must be UTC too.
		if got.CreatedAt != wantCreated {
			t.Errorf("CreatedAt read back %v, want %v", got.CreatedAt, wantCreated)
		}
		if got.RevokedAt != nil {
			t.Errorf("RevokedAt of an active key = %v", got.RevokedAt)
		}

		if err := s.RevokeKey(ctx, w.ID, k.ID, revoked, nil); err != nil {
			t.Fatal(err)
		}
		// No method returns a revoked key; read the column itself.
		var row struct {
			RevokedAt *time.Time `db:"revoked_at"`
		}
		if err := s.db.GetContext(ctx, &row, s.db.Rebind(`SELECT revoked_at FROM api_keys WHERE id = ?`), k.ID); err != nil {
			t.Fatal(err)
		}
		wantRevoked := time.Date(2033, 1, 1, 6, 59, 59, 999999000, time.UTC)
		if row.RevokedAt == nil || !row.RevokedAt.Equal(wantRevoked) {
			t.Errorf("revoked_at stored as %v, want %v", row.RevokedAt, wantRevoked)
		}
	})
}

func TestListKeysPages(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		w := mustCreateWorkspace(t, s, "acme")
		other := mustCreateWorkspace(t, s, "other")
		var want []string
		for range 5 {
			want = append(want, mustCreateKey(t, s, w.ID, "k").ID)
			mustCreateKey(t, s, other.ID, "noise")
		}
		// Ids order by creation only to the millisecond.
		slices.Sort(want)

		var got []string
		var sizes []int
		cursor := ""
		for page := 0; ; page++ {
			if page > 5 {
				t.Fatal("pagination does not end")
			}
			keys, next, err := s.ListKeys(ctx, w.ID, core.Page{Limit: 2, Cursor: cursor})
			if err != nil {
				t.Fatalf("page %d: %v", page, err)
			}
			sizes = append(sizes, len(keys))
			for _, k := range keys {
				if k.WorkspaceID != w.ID || k.Hash != nil {
					t.Fatalf("listed key %+v", k)
				}
				got = append(got, k.ID)
			}
			if next == "" {
				break
			}
			cursor = next
		}
		if !slices.Equal(sizes, []int{2, 2, 1}) {
			t.Errorf("page sizes %v, want [2 2 1]", sizes)
		}
		if !slices.Equal(got, want) {
			t.Errorf("listed ids %v\nwant in order %v", got, want)
		}

		// A page that ends exactly at the last key has no next page.
		keys, next, err := s.ListKeys(ctx, w.ID, core.Page{Limit: 5})
		if err != nil || len(keys) != 5 || next != "" {
			t.Errorf("ListKeys(limit 5) = %d keys, next %q, %v; want 5, \"\", nil", len(keys), next, err)
		}
	})
}

func TestListKeysLimits(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		w := mustCreateWorkspace(t, s, "acme")
		for range core.MaxPageLimit + 1 {
			mustCreateKey(t, s, w.ID, "k")
		}
		tests := []struct {
			limit    int
			wantLen  int
			wantNext bool
		}{
			{0, core.DefaultPageLimit, true},
			{-1, core.DefaultPageLimit, true},
			{1, 1, true},
			{core.MaxPageLimit, core.MaxPageLimit, true},
			{core.MaxPageLimit + 1, core.MaxPageLimit, true},
			{1 << 30, core.MaxPageLimit, true},
		}
		for _, tt := range tests {
			keys, next, err := s.ListKeys(ctx, w.ID, core.Page{Limit: tt.limit})
			if err != nil {
				t.Fatalf("limit %d: %v", tt.limit, err)
			}
			if len(keys) != tt.wantLen || (next != "") != tt.wantNext {
				t.Errorf("limit %d: %d keys, next %q; want %d keys, next set %v", tt.limit, len(keys), next, tt.wantLen, tt.wantNext)
			}
		}
	})
}

func TestListKeysMalformedCursor(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		w := mustCreateWorkspace(t, s, "acme")
		mustCreateKey(t, s, w.ID, "k")
		for _, cursor := range []string{
			"!!!",
			"not base64 at all?",
			base64.RawURLEncoding.EncodeToString([]byte("short")),
			base64.RawURLEncoding.EncodeToString([]byte("' OR 1=1 --")),
			base64.StdEncoding.EncodeToString([]byte(core.NewID())), // padded: not ours
		} {
			_, _, err := s.ListKeys(ctx, w.ID, core.Page{Cursor: cursor})
			if core.ErrorCode(err) != core.EInvalid {
				t.Errorf("cursor %q: %v, want %s", cursor, err, core.EInvalid)
			}
		}
	})
}

// A workspace never reaches another's keys, whatever ids it names.
func TestKeysTenantIsolation(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		a := mustCreateWorkspace(t, s, "a")
		b := mustCreateWorkspace(t, s, "b")
		mustCreateKey(t, s, a.ID, "a's")
		kb := mustCreateKey(t, s, b.ID, "b's")

		_, err := s.Key(ctx, a.ID, kb.ID)
		wantCode(t, err, core.ENotFound)
		wantCode(t, s.RevokeKey(ctx, a.ID, kb.ID, time.Now(), nil), core.ENotFound)
		keys, _, err := s.ListKeys(ctx, a.ID, core.Page{})
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if k.ID == kb.ID {
				t.Fatal("workspace a lists b's key")
			}
		}
		if len(keys) != 1 {
			t.Errorf("workspace a lists %d keys, want 1", len(keys))
		}
		keys, _, err = s.ListKeys(ctx, core.NewID(), core.Page{})
		if err != nil || len(keys) != 0 {
			t.Errorf("ListKeys of an unknown workspace = %d keys, %v", len(keys), err)
		}

		// The failed revoke from a left b's key alone.
		if _, _, err := s.KeyForAuth(ctx, kb.ID); err != nil {
			t.Errorf("b's key after a's revoke: %v", err)
		}
		if _, err := s.Key(ctx, b.ID, kb.ID); err != nil {
			t.Errorf("b's key in b: %v", err)
		}
	})
}

func TestRevokeKey(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		w := mustCreateWorkspace(t, s, "acme")
		keep := mustCreateKey(t, s, w.ID, "keep")
		k := mustCreateKey(t, s, w.ID, "revoke me")

		if err := s.RevokeKey(ctx, w.ID, k.ID, time.Now(), nil); err != nil {
			t.Fatalf("RevokeKey: %v", err)
		}
		_, _, err := s.KeyForAuth(ctx, k.ID)
		wantCode(t, err, core.ENotFound)
		_, err = s.Key(ctx, w.ID, k.ID)
		wantCode(t, err, core.ENotFound)
		keys, _, err := s.ListKeys(ctx, w.ID, core.Page{})
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != 1 || keys[0].ID != keep.ID {
			t.Errorf("ListKeys after revoke lists %d keys, want only %s", len(keys), keep.ID)
		}

		wantCode(t, s.RevokeKey(ctx, w.ID, k.ID, time.Now(), nil), core.ENotFound)
		wantCode(t, s.RevokeKey(ctx, w.ID, core.NewID(), time.Now(), nil), core.ENotFound)
		wantCode(t, s.RevokeKey(ctx, w.ID, keep.ID, time.Time{}, nil), core.EInvalid)
		if _, _, err := s.KeyForAuth(ctx, keep.ID); err != nil {
			t.Errorf("untouched key: %v", err)
		}
	})
}
