package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/relayhq/relay/core"
)

// Kinds of break.
const (
	Edited    = "edited"    // a record's content no longer matches its hash, or was re-hashed
	Inserted  = "inserted"  // a record is not part of the chain the others form
	Deleted   = "deleted"   // records are missing where the chain or the seqs jump
	Reordered = "reordered" // a record comes before a record it was written after
)

// Break is where a workspace's chain breaks. WorkspaceID, Seq and ID name
// the first bad record, as stored. For Deleted they name the first record
// after the missing ones, and Detail names the missing seqs.
type Break struct {
	WorkspaceID string
	Seq         int64
	ID          string
	Kind        string // Edited, Inserted, Deleted or Reordered
	Detail      string // what was seen, for a person
}

func (b *Break) String() string {
	return fmt.Sprintf("workspace %s: record %d (id %s) %s: %s", b.WorkspaceID, b.Seq, b.ID, b.Kind, b.Detail)
}

// window is how many of the latest verified records Verify keeps per
// workspace, to recognize a record that links past inserted ones.
const window = 64

// maxShift is how far Verify looks for the seq a renumbered record was
// hashed with.
const maxShift = 16

// errStop ends a scan once the break is known.
var errStop = errors.New("audit: stop scan")

// Verify walks a workspace's audit records (every workspace when
// workspaceID is "") in seq order via store.ScanAudit and returns the
// first break, or nil when every chain is whole. Each workspace's chain is
// checked on its own, whatever order the store interleaves them in.
//
// A record is whole when its hash matches its content, its seq is one past
// the previous record's (1 for the first) and its PrevHash is the previous
// record's hash (empty for the first). A chain may instead begin with a
// checkpoint of purged records (see Signer) whose signature key checks;
// without key, a checkpoint is a break. At the first record that is not,
// Verify reads the rest of that workspace to tell what happened, checking
// these in order:
//
//   - Reordered: the record's seq is below the previous one's, or it links
//     to a record that comes after it (two records swapped seqs).
//   - Inserted: it links to an earlier record than the previous one, so the
//     records in between are not in the chain; when it is itself a dead
//     end that the chain does not go on from, it is the intruder.
//   - Deleted or Inserted, when the content no longer matches the hash but
//     would with a seq a little above (below) the stored one: records
//     before it were deleted (inserted) and the rest renumbered.
//   - Edited: the content no longer matches the hash.
//   - Inserted: a well-hashed record that repeats the previous seq.
//   - Deleted: the seq jumps past missing ones (named in Detail).
//   - Inserted: a well-hashed record with the next seq links to a hash
//     that no record has, while a later record links to the previous one.
//   - Edited: a well-hashed record whose link is not a hash at all.
//   - Edited, naming the previous record: a well-hashed record with the
//     next seq links to a hash that no record has, so the previous record
//     was changed and re-hashed (or this record's link was).
//   - Deleted: the first record has seq 1 but links to a record before it.
//
// Verify keeps the latest 64 hashes of each workspace, so its memory grows
// with the number of workspaces, not of records; after a break it reads on
// to the end of the scan unless the break is already clear. What a chain
// cannot show (the newest records removed or rewritten, records appended)
// it does not report; see the package doc. Errors are the store's, or
// ctx's.
func Verify(ctx context.Context, store core.AuditStore, workspaceID string, key ed25519.PublicKey) (*Break, error) {
	v := &verifier{ctx: ctx, key: key, chains: map[string]*chain{}}
	err := store.ScanAudit(ctx, workspaceID, v.visit)
	if err != nil && !errors.Is(err, errStop) {
		return nil, fmt.Errorf("audit: verify: %w", err)
	}
	if v.suspect == nil {
		return nil, nil
	}
	return v.suspect.classify(), nil
}

type verifier struct {
	ctx     context.Context
	key     ed25519.PublicKey // checks checkpoints
	chains  map[string]*chain
	last    *chain // the chain of the last record seen, to skip the map lookup
	visited int
	suspect *suspect // the first record that broke a chain; then the scan only looks
}

func (v *verifier) visit(r *core.AuditRecord) error {
	if v.visited++; v.visited%4096 == 0 {
		if err := v.ctx.Err(); err != nil {
			return err
		}
	}
	if s := v.suspect; s != nil {
		if r.WorkspaceID == s.workspace {
			s.observe(r)
		}
		if s.settled() {
			return errStop
		}
		return nil
	}
	c := v.last
	if c == nil || c.workspace != r.WorkspaceID {
		c = v.chains[r.WorkspaceID]
		if c == nil {
			c = &chain{workspace: r.WorkspaceID}
			v.chains[r.WorkspaceID] = c
		}
		v.last = c
	}
	if c.accepts(r, v.key) {
		c.push(r)
		return nil
	}
	v.suspect = newSuspect(c, r, v.key)
	if v.suspect.settled() {
		return errStop
	}
	return nil
}

// link is a verified record, as much of it as Verify needs.
type link struct {
	seq  int64
	id   string
	hash [sha256.Size]byte
}

// chain is what Verify knows of one workspace's verified records: the
// latest ones, oldest first, in a ring.
type chain struct {
	workspace string
	ring      []link
	next      int // where the next link goes once the ring is full
}

func (c *chain) last() *link {
	switch {
	case len(c.ring) == 0:
		return nil
	case len(c.ring) < window:
		return &c.ring[len(c.ring)-1]
	default:
		return &c.ring[(c.next+window-1)%window]
	}
}

// back returns the i-th latest link, 0 being the last one, or nil.
func (c *chain) back(i int) *link {
	if i >= len(c.ring) {
		return nil
	}
	if len(c.ring) < window {
		return &c.ring[len(c.ring)-1-i]
	}
	return &c.ring[(c.next+window-1-i)%window]
}

// accepts reports whether r continues the chain, or begins it.
func (c *chain) accepts(r *core.AuditRecord, key ed25519.PublicKey) bool {
	if p := c.last(); p == nil {
		return begins(r, key)
	} else if r.Seq != p.seq+1 || !bytes.Equal(r.PrevHash, p.hash[:]) {
		return false
	}
	return hashMatches(r)
}

// begins reports whether r can be a chain's first record: seq 1, whole,
// or a checkpoint that key checks.
func begins(r *core.AuditRecord, key ed25519.PublicKey) bool {
	if r.Action == CheckpointAction {
		_, err := CheckCheckpoint(r, key)
		return err == nil
	}
	return r.Seq == 1 && len(r.PrevHash) == 0 && hashMatches(r)
}

// push adds r, which hashMatches, as the latest link.
func (c *chain) push(r *core.AuditRecord) {
	l := link{seq: r.Seq, id: r.ID}
	copy(l.hash[:], r.Hash)
	if len(c.ring) < window {
		c.ring = append(c.ring, l)
		return
	}
	c.ring[c.next] = l
	c.next = (c.next + 1) % window
}

func hashMatches(r *core.AuditRecord) bool {
	return bytes.Equal(r.Hash, r.ChainHash(r.PrevHash))
}

// suspect is the first record that broke its workspace's chain, with what
// the rest of the scan tells about it.
type suspect struct {
	workspace      string
	seq            int64
	id             string
	prevHash, hash []byte
	hashMatches    bool
	checkpoint     error // why r, a checkpoint coming first, does not hold
	shift          int64 // the seq the content was hashed with, less the stored seq; 0 if none
	prev           *link // the last verified record; nil if r came first
	linkedTo       *link // an earlier verified record (not prev) that r links to
	afterLinkedTo  *link // the record after linkedTo
	skipped        int   // records between linkedTo and r

	ahead      *link // the first later record whose hash r links to
	successor  bool  // a later record links to r
	prevHasOne bool  // a later record links to prev
}

func newSuspect(c *chain, r *core.AuditRecord, key ed25519.PublicKey) *suspect {
	s := &suspect{
		workspace:   r.WorkspaceID,
		seq:         r.Seq,
		id:          r.ID,
		prevHash:    bytes.Clone(r.PrevHash),
		hash:        bytes.Clone(r.Hash),
		hashMatches: hashMatches(r),
	}
	if p := c.last(); p != nil {
		cp := *p
		s.prev = &cp
	} else if r.Action == CheckpointAction {
		_, s.checkpoint = CheckCheckpoint(r, key)
	}
	for i := 1; ; i++ {
		l := c.back(i)
		if l == nil {
			break
		}
		if bytes.Equal(r.PrevHash, l.hash[:]) {
			cp, after := *l, *c.back(i - 1)
			s.linkedTo, s.afterLinkedTo, s.skipped = &cp, &after, i
			break
		}
	}
	if !s.hashMatches {
		renumbered := *r
		for d := int64(1); d <= maxShift && s.shift == 0; d++ {
			for _, shift := range []int64{d, -d} {
				renumbered.Seq = r.Seq + shift
				if renumbered.Seq > 0 && bytes.Equal(r.Hash, renumbered.ChainHash(r.PrevHash)) {
					s.shift = shift
					break
				}
			}
		}
	}
	return s
}

// observe looks at a record of the suspect's workspace that comes after it.
func (s *suspect) observe(r *core.AuditRecord) {
	if s.ahead == nil && len(s.prevHash) > 0 && bytes.Equal(r.Hash, s.prevHash) {
		s.ahead = &link{seq: r.Seq, id: r.ID}
	}
	if len(s.hash) > 0 && bytes.Equal(r.PrevHash, s.hash) {
		s.successor = true
	}
	if s.prev != nil && bytes.Equal(r.PrevHash, s.prev.hash[:]) {
		s.prevHasOne = true
	}
}

// settled reports whether the rest of the scan can no longer change the
// classification.
func (s *suspect) settled() bool {
	return s.ahead != nil || (s.prev != nil && s.seq < s.prev.seq)
}

func (s *suspect) at(kind, format string, args ...any) *Break {
	return &Break{WorkspaceID: s.workspace, Seq: s.seq, ID: s.id, Kind: kind, Detail: fmt.Sprintf(format, args...)}
}

func (s *suspect) classify() *Break {
	p := s.prev
	expected := int64(1)
	if p != nil {
		expected = p.seq + 1
	}
	switch {
	case p != nil && s.seq < p.seq:
		return s.at(Reordered, "seq %d comes after seq %d", s.seq, p.seq)
	case s.checkpoint != nil:
		return s.at(Edited, "the checkpoint of purged records that begins the chain does not hold: %v", s.checkpoint)
	case s.ahead != nil:
		return s.at(Reordered, "it links to seq %d (id %s), which comes after it", s.ahead.seq, s.ahead.id)
	case s.linkedTo != nil:
		first := s.afterLinkedTo
		if s.hashMatches && !s.successor && (s.prevHasOne || s.seq == p.seq) {
			// A fork: r and first both follow linkedTo; r leads nowhere.
			if s.prevHasOne {
				return s.at(Inserted, "it links to seq %d as seq %d (id %s) does, and the chain goes on from the other",
					s.linkedTo.seq, first.seq, first.id)
			}
			return s.at(Inserted, "it repeats seq %d and links to seq %d as seq %d (id %s) does; neither has a successor, so either may be the inserted one",
				s.seq, s.linkedTo.seq, first.seq, first.id)
		}
		b := &Break{WorkspaceID: s.workspace, Seq: first.seq, ID: first.id, Kind: Inserted}
		if s.skipped == 1 {
			b.Detail = fmt.Sprintf("it is not in the chain: seq %d (id %s) links past it to seq %d", s.seq, s.id, s.linkedTo.seq)
		} else {
			b.Detail = fmt.Sprintf("%d records from seq %d to seq %d are not in the chain: seq %d (id %s) links past them to seq %d",
				s.skipped, first.seq, p.seq, s.seq, s.id, s.linkedTo.seq)
		}
		return b
	case !s.hashMatches && s.shift > 0:
		return s.at(Deleted, "it was hashed as seq %d: %d record(s) before it were deleted and the later ones renumbered", s.seq+s.shift, s.shift)
	case !s.hashMatches && s.shift < 0:
		return s.at(Inserted, "it was hashed as seq %d: %d record(s) were inserted before it and the later ones renumbered", s.seq+s.shift, -s.shift)
	case !s.hashMatches:
		return s.at(Edited, "its content does not match its hash")
	case p != nil && s.seq == p.seq:
		return s.at(Inserted, "it repeats seq %d", s.seq)
	case s.seq > expected:
		missing := fmt.Sprintf("seq %d is missing", expected)
		if s.seq-1 > expected {
			missing = fmt.Sprintf("seqs %d to %d are missing", expected, s.seq-1)
		}
		if s.linksToPrev() {
			return s.at(Deleted, "%s, and it was re-hashed to link across the gap", missing)
		}
		return s.at(Deleted, "%s", missing)
	case p != nil && !s.linksToPrev() && s.prevHasOne:
		// The previous record's successor is still there, further on.
		if s.successor {
			return s.at(Edited, "it links to a hash that no record has, while seq %d is followed later: its link was changed and re-hashed", p.seq)
		}
		return s.at(Inserted, "it links to a hash that no record has, and the chain goes on from seq %d (id %s) without it", p.seq, p.id)
	case len(s.prevHash) != sha256.Size && (p != nil || len(s.prevHash) > 0):
		return s.at(Edited, "its link is not a hash: it was changed and the record re-hashed")
	case p != nil && !s.linksToPrev():
		return &Break{WorkspaceID: s.workspace, Seq: p.seq, ID: p.id, Kind: Edited,
			Detail: fmt.Sprintf("seq %d (id %s) links to a hash that no record has: this record was changed and re-hashed, or that link was", s.seq, s.id)}
	case p == nil && s.seq == 1:
		return s.at(Deleted, "the first record links to a record before it that no longer exists: the records before it were deleted and the rest renumbered")
	default:
		return s.at(Edited, "seq %d is not a seq the chain can have", s.seq)
	}
}

func (s *suspect) linksToPrev() bool {
	if s.prev == nil {
		return len(s.prevHash) == 0
	}
	return bytes.Equal(s.prevHash, s.prev.hash[:])
}
