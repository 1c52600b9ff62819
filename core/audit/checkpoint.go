package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/relayhq/relay/core"
)

// Checkpoints. A workspace's audit retention (docs/operations.md,
// "Retention") deletes its oldest records, a prefix of its chain. In the
// same transaction a checkpoint record takes the place of the last record
// deleted: it has that record's seq and hash, so the next record still
// links to it, and in its details it says what was purged (how many
// records, from when to when), signed with the server's audit key. A
// checkpoint is only made of a prefix that was verified first, so its
// signature vouches that the records it replaces formed a whole chain
// ending in its hash: Verify and the Checker accept a workspace's chain
// that begins with a checkpoint whose signature holds as if it began with
// seq 1. A later purge replaces the checkpoint with a new one that counts
// the records of both.
//
// The key is an Ed25519 key drawn from a server key that the master key
// wraps (cmd/relay), so whoever holds the master key can check
// checkpoints, and no one without it can make one.

// CheckpointAction is the action of a checkpoint record.
const CheckpointAction = core.AuditCheckpointAction

// Purged is what a checkpoint says of the records it replaces.
type Purged struct {
	Records int64     `json:"records"` // records purged in all: seq 1 to Through
	Through int64     `json:"through_seq"`
	Oldest  time.Time `json:"oldest"` // the time of seq 1
	Newest  time.Time `json:"newest"` // the time of ThroughSeq as it was
	Before  time.Time `json:"before"` // the retention's cut: every record purged was older
}

// checkpointDetails is a checkpoint record's details. Checkpoint is kept
// as stored, so the signature is checked over the very bytes signed.
type checkpointDetails struct {
	Checkpoint json.RawMessage `json:"checkpoint"`
	KeyID      string          `json:"key_id"`
	Signature  []byte          `json:"signature"`
}

// signedDomain begins every message a checkpoint key signs.
const signedDomain = "relay audit checkpoint v1\n"

// signedMessage is what a checkpoint's signature covers: every field of
// the record (as ChainHash encodes them, the details being the checkpoint
// alone) and the hash it carries.
func signedMessage(r *core.AuditRecord, checkpoint []byte) []byte {
	c := *r
	c.Details = checkpoint
	return append([]byte(signedDomain), c.ChainHash(r.Hash)...)
}

// Signer makes checkpoints, with the server's audit key.
type Signer struct {
	key ed25519.PrivateKey
	id  string
}

// NewSigner returns the signer whose key is drawn from seed (32 bytes).
func NewSigner(seed []byte) (*Signer, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("audit: a checkpoint key's seed is %d bytes, not %d", ed25519.SeedSize, len(seed))
	}
	key := ed25519.NewKeyFromSeed(seed)
	return &Signer{key: key, id: KeyID(key.Public().(ed25519.PublicKey))}, nil
}

// PublicKey is what Verify and the Checker check checkpoints with.
func (s *Signer) PublicKey() ed25519.PublicKey { return s.key.Public().(ed25519.PublicKey) }

// KeyID names a checkpoint key: the first 8 bytes of its SHA-256, in hex.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// Seal checks that prefix, the oldest records of a workspace in seq order,
// form a whole chain from its start (seq 1, or a checkpoint that the
// signer's key accepts), and returns the checkpoint record that replaces
// them, dated at: it carries the last record's seq and hash. before is
// the retention's cut, which every record of prefix but a leading
// checkpoint is older than. An error when prefix holds no record to purge
// or its chain is broken: a broken chain is never purged.
func (s *Signer) Seal(prefix []*core.AuditRecord, before, at time.Time) (*core.AuditRecord, error) {
	p := Purged{Before: before.UTC()}
	var prev *core.AuditRecord
	for _, r := range prefix {
		switch {
		case prev == nil && r.Action == CheckpointAction:
			old, err := CheckCheckpoint(r, s.PublicKey())
			if err != nil {
				return nil, fmt.Errorf("audit: workspace %s: the checkpoint at seq %d: %w", r.WorkspaceID, r.Seq, err)
			}
			p.Oldest = old.Oldest
			prev = r
			continue
		case prev == nil && !(r.Seq == 1 && len(r.PrevHash) == 0 && hashMatches(r)),
			prev != nil && !(r.Seq == prev.Seq+1 && bytes.Equal(r.PrevHash, prev.Hash) && hashMatches(r)):
			return nil, fmt.Errorf("audit: workspace %s: record seq %d does not continue the chain; relay audit verify says more", r.WorkspaceID, r.Seq)
		case !r.Time.Before(before):
			return nil, fmt.Errorf("audit: workspace %s: record seq %d is not older than %s", r.WorkspaceID, r.Seq, p.Before.Format(time.RFC3339))
		case prev == nil:
			p.Oldest = r.Time
		}
		prev = r
	}
	if prev == nil || prev.Action == CheckpointAction {
		return nil, errors.New("audit: no records to purge")
	}
	p.Records, p.Through, p.Newest = prev.Seq, prev.Seq, prev.Time
	checkpoint, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	r := &core.AuditRecord{
		WorkspaceID: prev.WorkspaceID, Seq: prev.Seq, ID: core.NewID(), Time: at.UTC().Truncate(time.Microsecond),
		Action: CheckpointAction, Target: "audit:" + prev.WorkspaceID, Outcome: "success",
		Hash: bytes.Clone(prev.Hash),
	}
	details, err := json.Marshal(checkpointDetails{Checkpoint: checkpoint, KeyID: s.id,
		Signature: ed25519.Sign(s.key, signedMessage(r, checkpoint))})
	if err != nil {
		return nil, err
	}
	r.Details = details
	return r, nil
}

// CheckCheckpoint checks a checkpoint record's signature with pub and
// returns what it says was purged.
func CheckCheckpoint(r *core.AuditRecord, pub ed25519.PublicKey) (*Purged, error) {
	if r.Action != CheckpointAction {
		return nil, fmt.Errorf("not a checkpoint (action %q)", r.Action)
	}
	var d checkpointDetails
	if err := json.Unmarshal(r.Details, &d); err != nil || d.Checkpoint == nil {
		return nil, errors.New("its details are not a checkpoint's")
	}
	// The signature covers the checkpoint member; the rest of the details
	// must be as Seal wrote them, byte for byte.
	if again, err := json.Marshal(d); err != nil || !bytes.Equal(again, r.Details) {
		return nil, errors.New("its details are not as they were written")
	}
	if len(pub) != ed25519.PublicKeySize {
		return nil, errors.New("no audit key to check its signature with (relay audit verify needs the master key)")
	}
	if d.KeyID != KeyID(pub) {
		return nil, fmt.Errorf("it was signed by key %s, not the server's audit key %s", d.KeyID, KeyID(pub))
	}
	if len(r.PrevHash) != 0 {
		return nil, errors.New("it links to a previous record, which a checkpoint never does")
	}
	if len(r.Hash) != sha256.Size || !ed25519.Verify(pub, signedMessage(r, d.Checkpoint), d.Signature) {
		return nil, errors.New("its signature does not hold: it was changed or forged")
	}
	var p Purged
	if err := json.Unmarshal(d.Checkpoint, &p); err != nil {
		return nil, fmt.Errorf("its checkpoint does not parse: %w", err)
	}
	if p.Through != r.Seq || p.Records != r.Seq {
		return nil, fmt.Errorf("it says it replaces %d records through seq %d, at seq %d", p.Records, p.Through, r.Seq)
	}
	return &p, nil
}
