package sqlstore

import (
	"bytes"
	"context"
	"errors"
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
