package secrets

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/relayhq/relay/core"
)

// memDataKeyStore is a test-only core.DataKeyStore: a map under a mutex,
// with the contract of the real one (core/sqlstore) and nothing more. It
// copies bytes in and out as a database would, so that a caller keeping or
// altering a slice cannot go unnoticed.
type memDataKeyStore struct {
	mu      sync.Mutex
	keys    map[string][]byte // by workspace id, and by core.ServerKeyScope + name for server keys
	created int               // how many CreateWrappedDataKey calls stored a key
}

var (
	_ core.DataKeyStore   = (*memDataKeyStore)(nil)
	_ core.ServerKeyStore = (*memDataKeyStore)(nil)
)

func newMemDataKeyStore() *memDataKeyStore {
	return &memDataKeyStore{keys: map[string][]byte{}}
}

func (s *memDataKeyStore) WrappedServerKey(ctx context.Context, name string) ([]byte, error) {
	return s.WrappedDataKey(ctx, core.ServerKeyScope+name)
}

func (s *memDataKeyStore) CreateWrappedServerKey(_ context.Context, name string, wrapped []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w, ok := s.keys[core.ServerKeyScope+name]; ok {
		return bytes.Clone(w), nil
	}
	s.keys[core.ServerKeyScope+name] = bytes.Clone(wrapped)
	return bytes.Clone(wrapped), nil
}

func (s *memDataKeyStore) WrappedDataKey(_ context.Context, workspaceID string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, ok := s.keys[workspaceID]
	if !ok {
		return nil, core.Errorf(core.ENotFound, "no data key")
	}
	return bytes.Clone(w), nil
}

func (s *memDataKeyStore) CreateWrappedDataKey(_ context.Context, workspaceID string, wrapped []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w, ok := s.keys[workspaceID]; ok {
		return bytes.Clone(w), nil
	}
	s.keys[workspaceID] = bytes.Clone(wrapped)
	s.created++
	return bytes.Clone(wrapped), nil
}

// RewrapDataKeys rewraps a copy and swaps it in only when every key
// rewrapped: all or none, as the transaction of the real store. Like it, it
// counts only data keys.
func (s *memDataKeyStore) RewrapDataKeys(_ context.Context, rewrap func(workspaceID string, wrapped []byte) ([]byte, error)) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := make(map[string][]byte, len(s.keys))
	n := 0
	for _, ws := range slices.Sorted(maps.Keys(s.keys)) {
		w, err := rewrap(ws, bytes.Clone(s.keys[ws]))
		if err != nil {
			return 0, err
		}
		if len(w) == 0 {
			return 0, errors.New("rewrap returned nothing")
		}
		next[ws] = bytes.Clone(w)
		if !strings.HasPrefix(ws, core.ServerKeyScope) {
			n++
		}
	}
	s.keys = next
	return n, nil
}

// snapshot returns a deep copy of what is stored, to compare before and after.
func (s *memDataKeyStore) snapshot() map[string][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][]byte, len(s.keys))
	for ws, w := range s.keys {
		out[ws] = bytes.Clone(w)
	}
	return out
}

// set overwrites a stored wrapped key, to simulate corruption or a copy.
func (s *memDataKeyStore) set(workspaceID string, wrapped []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[workspaceID] = bytes.Clone(wrapped)
}

func (s *memDataKeyStore) createdCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.created
}
