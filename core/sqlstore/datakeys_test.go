package sqlstore

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/relayhq/relay/core"
)

func TestDataKeys(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		a := mustCreateWorkspace(t, s, "a")
		b := mustCreateWorkspace(t, s, "b")

		_, err := s.WrappedDataKey(ctx, a.ID)
		wantCode(t, err, core.ENotFound)

		got, err := s.CreateWrappedDataKey(ctx, a.ID, []byte("a-1"))
		if err != nil || string(got) != "a-1" {
			t.Fatalf("CreateWrappedDataKey = %q, %v", got, err)
		}
		// The first key stays.
		got, err = s.CreateWrappedDataKey(ctx, a.ID, []byte("a-2"))
		if err != nil || string(got) != "a-1" {
			t.Fatalf("second CreateWrappedDataKey = %q, %v; want the first", got, err)
		}
		got, err = s.WrappedDataKey(ctx, a.ID)
		if err != nil || string(got) != "a-1" {
			t.Fatalf("WrappedDataKey = %q, %v", got, err)
		}
		// Each workspace has its own.
		_, err = s.WrappedDataKey(ctx, b.ID)
		wantCode(t, err, core.ENotFound)

		_, err = s.CreateWrappedDataKey(ctx, core.NewID(), []byte("x"))
		wantCode(t, err, core.ENotFound)
		_, err = s.CreateWrappedDataKey(ctx, b.ID, nil)
		wantCode(t, err, core.EInvalid)
	})
}

// Racing creators of one workspace's key all get the one that was stored.
func TestCreateWrappedDataKeyRace(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		w := mustCreateWorkspace(t, s, "acme")
		const n = 10
		results := make([][]byte, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				got, err := s.CreateWrappedDataKey(ctx, w.ID, []byte{byte(i)})
				if err != nil {
					t.Errorf("CreateWrappedDataKey: %v", err)
				}
				results[i] = got
			})
		}
		wg.Wait()
		stored, err := s.WrappedDataKey(ctx, w.ID)
		if err != nil {
			t.Fatal(err)
		}
		for i, got := range results {
			if !bytes.Equal(got, stored) {
				t.Errorf("caller %d got %v, stored %v", i, got, stored)
			}
		}
	})
}

func TestRewrapDataKeys(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		want := map[string]string{}
		for _, name := range []string{"a", "b", "c"} {
			w := mustCreateWorkspace(t, s, name)
			if _, err := s.CreateWrappedDataKey(ctx, w.ID, []byte("old-"+name)); err != nil {
				t.Fatal(err)
			}
			want[w.ID] = "new-" + name
		}
		mustCreateWorkspace(t, s, "no-key")

		n, err := s.RewrapDataKeys(ctx, func(workspaceID string, wrapped []byte) ([]byte, error) {
			return append([]byte("new-"), bytes.TrimPrefix(wrapped, []byte("old-"))...), nil
		})
		if err != nil || n != 3 {
			t.Fatalf("RewrapDataKeys = %d, %v; want 3", n, err)
		}
		for id, w := range want {
			got, err := s.WrappedDataKey(ctx, id)
			if err != nil || string(got) != w {
				t.Errorf("key of %s = %q, %v; want %q", id, got, err, w)
			}
		}
	})
}

// One key that does not re-wrap leaves every key as it was.
func TestRewrapDataKeysAllOrNothing(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		var ids []string
		for _, name := range []string{"a", "b", "c"} {
			w := mustCreateWorkspace(t, s, name)
			if _, err := s.CreateWrappedDataKey(ctx, w.ID, []byte("old-"+name)); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, w.ID)
		}
		boom := errors.New("does not unwrap")
		for _, failing := range []func(calls int) ([]byte, error){
			func(calls int) ([]byte, error) {
				if calls == 3 { // the last, after two rows were updated
					return nil, boom
				}
				return []byte("new"), nil
			},
			func(calls int) ([]byte, error) {
				if calls == 2 {
					return nil, nil // an empty key would lose the data key
				}
				return []byte("new"), nil
			},
		} {
			calls := 0
			n, err := s.RewrapDataKeys(ctx, func(string, []byte) ([]byte, error) {
				calls++
				return failing(calls)
			})
			if err == nil || n != 0 {
				t.Fatalf("RewrapDataKeys = %d, %v; want an error", n, err)
			}
			for i, id := range ids {
				got, err := s.WrappedDataKey(ctx, id)
				if err != nil || string(got) != "old-"+[]string{"a", "b", "c"}[i] {
					t.Errorf("after a failed rewrap, key of %s = %q, %v", id, got, err)
				}
			}
		}
		// The rewrap's own error is kept for the caller to inspect.
		_, err := s.RewrapDataKeys(ctx, func(string, []byte) ([]byte, error) { return nil, boom })
		if !errors.Is(err, boom) {
			t.Errorf("RewrapDataKeys error %v does not wrap the rewrap's", err)
		}
	})
}

func TestServerKeys(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		_, err := s.WrappedServerKey(ctx, "pepper")
		wantCode(t, err, core.ENotFound)

		got, err := s.CreateWrappedServerKey(ctx, "pepper", []byte("p-1"))
		if err != nil || string(got) != "p-1" {
			t.Fatalf("CreateWrappedServerKey = %q, %v", got, err)
		}
		// The first key stays.
		got, err = s.CreateWrappedServerKey(ctx, "pepper", []byte("p-2"))
		if err != nil || string(got) != "p-1" {
			t.Fatalf("second CreateWrappedServerKey = %q, %v; want the first", got, err)
		}
		got, err = s.WrappedServerKey(ctx, "pepper")
		if err != nil || string(got) != "p-1" {
			t.Fatalf("WrappedServerKey = %q, %v", got, err)
		}
		_, err = s.WrappedServerKey(ctx, "other")
		wantCode(t, err, core.ENotFound)
		_, err = s.CreateWrappedServerKey(ctx, "other", nil)
		wantCode(t, err, core.EInvalid)
		_, err = s.CreateWrappedServerKey(ctx, "", []byte("x"))
		wantCode(t, err, core.EInvalid)
	})
}

// Racing creators of one server key all get the one that was stored.
func TestCreateWrappedServerKeyRace(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		const n = 10
		results := make([][]byte, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				got, err := s.CreateWrappedServerKey(ctx, "pepper", []byte{byte(i)})
				if err != nil {
					t.Errorf("CreateWrappedServerKey: %v", err)
				}
				results[i] = got
			})
		}
		wg.Wait()
		stored, err := s.WrappedServerKey(ctx, "pepper")
		if err != nil {
			t.Fatal(err)
		}
		for i, got := range results {
			if !bytes.Equal(got, stored) {
				t.Errorf("caller %d got %v, stored %v", i, got, stored)
			}
		}
	})
}

// RewrapDataKeys re-wraps the server keys too, under their scoped ids, in
// the same transaction, and counts only the data keys.
func TestRewrapServerKeys(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		w := mustCreateWorkspace(t, s, "a")
		if _, err := s.CreateWrappedDataKey(ctx, w.ID, []byte("old-a")); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"pepper", "other"} {
			if _, err := s.CreateWrappedServerKey(ctx, name, []byte("old-"+name)); err != nil {
				t.Fatal(err)
			}
		}
		var seen []string
		n, err := s.RewrapDataKeys(ctx, func(id string, wrapped []byte) ([]byte, error) {
			seen = append(seen, id)
			return append([]byte("new-"), bytes.TrimPrefix(wrapped, []byte("old-"))...), nil
		})
		if err != nil || n != 1 {
			t.Fatalf("RewrapDataKeys = %d, %v; want 1", n, err)
		}
		if want := []string{w.ID, core.ServerKeyScope + "other", core.ServerKeyScope + "pepper"}; !slices.Equal(seen, want) {
			t.Errorf("rewrap saw %v, want %v", seen, want)
		}
		for _, name := range []string{"pepper", "other"} {
			if got, err := s.WrappedServerKey(ctx, name); err != nil || string(got) != "new-"+name {
				t.Errorf("server key %s = %q, %v", name, got, err)
			}
		}
		if got, _ := s.WrappedDataKey(ctx, w.ID); string(got) != "new-a" {
			t.Errorf("data key = %q", got)
		}

		// A server key that does not re-wrap, after the data key did,
		// leaves every key as it was; so does a data key that does not,
		// before the server keys.
		boom := errors.New("does not unwrap")
		for _, failOn := range []string{core.ServerKeyScope + "pepper", w.ID} {
			_, err := s.RewrapDataKeys(ctx, func(id string, wrapped []byte) ([]byte, error) {
				if id == failOn {
					return nil, boom
				}
				return []byte("newer"), nil
			})
			if !errors.Is(err, boom) {
				t.Fatalf("failing on %s: %v", failOn, err)
			}
			if got, _ := s.WrappedDataKey(ctx, w.ID); string(got) != "new-a" {
				t.Errorf("failing on %s: data key = %q", failOn, got)
			}
			for _, name := range []string{"pepper", "other"} {
				if got, _ := s.WrappedServerKey(ctx, name); string(got) != "new-"+name {
					t.Errorf("failing on %s: server key %s = %q", failOn, name, got)
				}
			}
		}
		// An empty result for a server key is refused too.
		_, err = s.RewrapDataKeys(ctx, func(id string, wrapped []byte) ([]byte, error) {
			if strings.HasPrefix(id, core.ServerKeyScope) {
				return nil, nil
			}
			return []byte("newer"), nil
		})
		if err == nil {
			t.Fatal("an empty server key was stored")
		}
		if got, _ := s.WrappedServerKey(ctx, "pepper"); string(got) != "new-pepper" {
			t.Errorf("after an empty result: server key = %q", got)
		}
	})
}
