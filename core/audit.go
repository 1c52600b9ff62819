package core

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"time"
)

// AuditRecord is one entry of a workspace's audit log. Records form a hash
// chain per workspace: each Hash covers the record and the previous Hash,
// so an edited, inserted, deleted or reordered record breaks the chain.
type AuditRecord struct {
	WorkspaceID string          `json:"workspace_id" db:"workspace_id"`
	Seq         int64           `json:"seq" db:"seq"` // 1, 2, 3, … per workspace
	ID          string          `json:"id" db:"id"`
	Time        time.Time       `json:"time" db:"time"`
	KeyID       string          `json:"key_id,omitempty" db:"key_id"`
	Role        string          `json:"role,omitempty" db:"role"`
	IP          string          `json:"ip,omitempty" db:"ip"`
	RequestID   string          `json:"request_id,omitempty" db:"request_id"`
	Action      string          `json:"action" db:"action"` // e.g. key.create, action.execute
	Target      string          `json:"target,omitempty" db:"target"`
	Outcome     string          `json:"outcome" db:"outcome"` // success, failure, denied
	Details     json.RawMessage `json:"details,omitempty" db:"details"`
	PrevHash    []byte          `json:"prev_hash" db:"prev_hash"`
	Hash        []byte          `json:"hash" db:"hash"`
}

// ChainHash computes the record's hash from prev and every field but Hash.
// Each field is length-prefixed, so no two different records encode alike.
func (r *AuditRecord) ChainHash(prev []byte) []byte {
	h := sha256.New()
	var n [8]byte
	put := func(b []byte) {
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	put([]byte("relay audit v1"))
	put(prev)
	put([]byte(r.WorkspaceID))
	var seq [8]byte // not n: put writes the length into n first
	binary.BigEndian.PutUint64(seq[:], uint64(r.Seq))
	put(seq[:])
	put([]byte(r.ID))
	put([]byte(r.Time.UTC().Format(time.RFC3339Nano)))
	for _, s := range []string{r.KeyID, r.Role, r.IP, r.RequestID, r.Action, r.Target, r.Outcome} {
		put([]byte(s))
	}
	put(r.Details)
	return h.Sum(nil)
}

// AuditCheckpointAction is the action of a checkpoint record, which
// takes the place of a workspace's purged audit records (core/audit).
const AuditCheckpointAction = "audit.checkpoint"

// AuditSeal makes the checkpoint record that takes the place of prefix,
// a workspace's oldest audit records in seq order (a checkpoint first, if
// the chain begins with one), when retention purges them; an error when
// their chain is not whole (core/audit.Signer.Seal).
type AuditSeal func(prefix []*AuditRecord) (*AuditRecord, error)

// AuditStore keeps the audit log.
type AuditStore interface {
	// AppendAudit sets r's Seq, PrevHash and Hash from the workspace's
	// last record and stores it.
	AppendAudit(ctx context.Context, r *AuditRecord) error
	// ListAudit lists a workspace's records in order, after the cursor.
	ListAudit(ctx context.Context, workspaceID string, p Page) ([]*AuditRecord, string, error)
	// ScanAudit calls fn for every record of the workspace in Seq order
	// (every workspace when workspaceID is empty), for verification.
	ScanAudit(ctx context.Context, workspaceID string, fn func(*AuditRecord) error) error
}
