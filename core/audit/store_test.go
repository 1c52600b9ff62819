package audit

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/relayhq/relay/core"
)

// memStore is a core.AuditStore in a slice, for tests. Its fields are
// what a table's rows are: tests tamper with them as an intruder with
// write access to the database would.
type memStore struct {
	mu      sync.Mutex
	records []*core.AuditRecord
	// order sorts the scan: by workspace and seq when nil, as
	// ORDER BY workspace_id, seq does. Set it to keep slice order or to
	// interleave workspaces.
	order   func(a, b *core.AuditRecord) int
	keepRaw bool // scan in slice order
	// last is each workspace's last appended record; tampering does not
	// update it, so tests append only before they tamper.
	last    map[string]*core.AuditRecord
	scanErr error
}

var _ core.AuditStore = (*memStore)(nil)

var epoch = time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)

func (s *memStore) AppendAudit(_ context.Context, r *core.AuditRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.Seq, r.PrevHash = 1, nil
	if last := s.last[r.WorkspaceID]; last != nil {
		r.Seq, r.PrevHash = last.Seq+1, bytes.Clone(last.Hash)
	}
	r.Hash = r.ChainHash(r.PrevHash)
	cp := *r
	s.records = append(s.records, &cp)
	if s.last == nil {
		s.last = map[string]*core.AuditRecord{}
	}
	s.last[r.WorkspaceID] = &cp
	return nil
}

func (s *memStore) ListAudit(ctx context.Context, workspaceID string, _ core.Page) ([]*core.AuditRecord, string, error) {
	var out []*core.AuditRecord
	err := s.ScanAudit(ctx, workspaceID, func(r *core.AuditRecord) error {
		out = append(out, r)
		return nil
	})
	return out, "", err
}

func (s *memStore) ScanAudit(ctx context.Context, workspaceID string, fn func(*core.AuditRecord) error) error {
	s.mu.Lock()
	rows := slices.Clone(s.records)
	s.mu.Unlock()
	switch {
	case s.keepRaw:
	case s.order != nil:
		slices.SortStableFunc(rows, s.order)
	default:
		slices.SortStableFunc(rows, func(a, b *core.AuditRecord) int {
			return cmp.Or(cmp.Compare(a.WorkspaceID, b.WorkspaceID), cmp.Compare(a.Seq, b.Seq))
		})
	}
	for _, r := range rows {
		if workspaceID != "" && r.WorkspaceID != workspaceID {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		cp := *r
		if err := fn(&cp); err != nil {
			return err
		}
	}
	return s.scanErr
}

// newStore returns a store with n records in each workspace, appended in
// turns; record i of workspace w has id "w-i".
func newStore(n int, workspaces ...string) *memStore {
	s := &memStore{}
	for i := 1; i <= n; i++ {
		for _, ws := range workspaces {
			r := record(ws, fmt.Sprintf("%s-%d", ws, i), i)
			if err := s.AppendAudit(context.Background(), r); err != nil {
				panic(err)
			}
		}
	}
	return s
}

func record(ws, id string, i int) *core.AuditRecord {
	return &core.AuditRecord{
		WorkspaceID: ws, ID: id, Time: epoch.Add(time.Duration(i) * time.Second),
		KeyID: "key_1", Role: "admin", IP: "192.0.2.1", RequestID: "req-" + id,
		Action: "action.execute", Target: "echo.echo", Outcome: "success",
		Details: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i)),
	}
}

// at returns the stored record of ws with that seq (the first, if several).
func (s *memStore) at(ws string, seq int64) *core.AuditRecord {
	for _, r := range s.records {
		if r.WorkspaceID == ws && r.Seq == seq {
			return r
		}
	}
	panic(fmt.Sprintf("no record %s/%d", ws, seq))
}

// remove deletes the records of ws with those seqs.
func (s *memStore) remove(ws string, seqs ...int64) {
	s.records = slices.DeleteFunc(s.records, func(r *core.AuditRecord) bool {
		return r.WorkspaceID == ws && slices.Contains(seqs, r.Seq)
	})
}

// renumber adds delta to the seq of every record of ws from seq from on.
func (s *memStore) renumber(ws string, from, delta int64) {
	for _, r := range s.records {
		if r.WorkspaceID == ws && r.Seq >= from {
			r.Seq += delta
		}
	}
}

// forge returns a well-hashed record of ws with that seq, linked to prev.
func forge(ws, id string, seq int64, prev []byte) *core.AuditRecord {
	r := record(ws, id, 1000)
	r.Seq, r.PrevHash, r.Action = seq, prev, "key.create"
	r.Hash = r.ChainHash(r.PrevHash)
	return r
}

func rehash(r *core.AuditRecord) { r.Hash = r.ChainHash(r.PrevHash) }
