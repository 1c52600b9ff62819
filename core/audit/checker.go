package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/relayhq/relay/core"
)

// Log is what a Checker reads: the workspaces, and a workspace's records
// from a seq on (seq included), in seq order.
type Log interface {
	core.AuditStore
	ListWorkspaces(ctx context.Context) ([]*core.Workspace, error)
	// Workspace returns ENotFound for a workspace that is gone.
	Workspace(ctx context.Context, id string) (*core.Workspace, error)
	AuditFrom(ctx context.Context, workspaceID string, seq int64, limit int) ([]*core.AuditRecord, error)
}

// checkPage is how many records a Checker reads at a time.
const checkPage = 1000

// Checker verifies the audit log's hash chains while the server runs, a
// pass at a time, and cheaply: it keeps each workspace's last verified
// record (its seq and hash) and reads only from there on, so a pass costs
// one indexed read per workspace plus the records appended since the last
// pass (a SHA-256 each); only the first pass after a start reads the
// whole log. It only reads, so any number of replicas may each run one on
// a shared database.
//
// Keeping the last verified record also catches what the chain alone
// cannot (see the package doc): once verified, the newest records cannot
// be removed or rewritten unseen while the server runs.
//
// A workspace found broken is logged once, with Verify's account of the
// break, and counted as broken by every later pass without being read
// again: a chain does not mend, and the operator's fix (restoring the
// database) comes with a restart. A workspace that is erased (its
// records with it) is forgotten. When retention purges records that were
// verified, or were not yet, the checkpoint that replaces them (see
// Signer) is where the chain goes on from, if its signature holds.
type Checker struct {
	log      Log
	key      ed25519.PublicKey // checks checkpoints
	logger   hclog.Logger
	interval time.Duration
	page     int // records read at a time: checkPage, fewer in tests

	mu     sync.Mutex // one pass at a time
	heads  map[string]head
	broken map[string]*Break

	records     atomic.Uint64
	failures    atomic.Uint64
	errors      atomic.Uint64
	lastSuccess atomic.Int64 // Unix nanoseconds; 0 before the first success
}

// head is a workspace's last verified record.
type head struct {
	seq  int64
	hash [sha256.Size]byte
}

// NewChecker returns a checker of log that Run runs every interval,
// checking checkpoints with key. logger gets the breaks and the passes
// that fail; nil discards them.
func NewChecker(log Log, logger hclog.Logger, interval time.Duration, key ed25519.PublicKey) *Checker {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &Checker{log: log, key: key, logger: logger, interval: interval, page: checkPage,
		heads: map[string]head{}, broken: map[string]*Break{}}
}

// Run makes a pass at once and then every interval, until ctx ends.
func (c *Checker) Run(ctx context.Context) {
	t := time.NewTicker(c.interval)
	defer t.Stop()
	for {
		if _, err := c.Check(ctx); err != nil && ctx.Err() == nil {
			c.logger.Warn("the audit log could not be verified; trying again at the next pass", "error", err, "next_in", c.interval.String())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Check makes one pass over every workspace and returns the breaks found
// (each broken workspace's, the ones found before included), or the
// store's error. A pass that finds every chain whole is the last success
// from when it began.
func (c *Checker) Check(ctx context.Context) ([]*Break, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	began := time.Now()
	list, err := c.log.ListWorkspaces(ctx)
	if err != nil {
		return nil, c.failed(ctx, fmt.Errorf("audit: list workspaces: %w", err))
	}
	listed := make(map[string]bool, len(list))
	var breaks []*Break
	for _, ws := range list {
		listed[ws.ID] = true
		b := c.broken[ws.ID]
		if b == nil {
			if b, err = c.checkWorkspace(ctx, ws.ID); err != nil {
				return nil, c.failed(ctx, err)
			}
		}
		if b != nil {
			breaks = append(breaks, b)
		}
	}
	for id := range c.heads {
		if !listed[id] {
			delete(c.heads, id) // erased before the pass
		}
	}
	if len(breaks) > 0 {
		c.failures.Add(1)
		return breaks, nil
	}
	c.lastSuccess.Store(began.UnixNano())
	return nil, nil
}

// failed counts a pass that could not read the log, unless it was
// stopped.
func (c *Checker) failed(ctx context.Context, err error) error {
	if ctx.Err() == nil {
		c.errors.Add(1)
	}
	return err
}

// checkWorkspace verifies a workspace's records from its last verified one
// on, and returns the break it finds. The first record read must be the
// last verified one, unchanged.
func (c *Checker) checkWorkspace(ctx context.Context, workspaceID string) (*Break, error) {
	h, verified := c.heads[workspaceID]
	for {
		from := max(h.seq, 1)
		records, err := c.log.AuditFrom(ctx, workspaceID, from, c.page)
		if err != nil {
			return nil, fmt.Errorf("audit: read workspace %s: %w", workspaceID, err)
		}
		next := records
		if verified && len(records) > 0 && records[0].Seq > h.seq && records[0].Action == CheckpointAction {
			// Purged past the last verified record: the chain goes on
			// from the checkpoint, if it holds.
			verified = false
		}
		if verified {
			if len(records) == 0 || records[0].Seq != h.seq {
				// Erased since the pass listed it: the erasure takes the
				// records and the workspace in one transaction.
				if _, err := c.log.Workspace(ctx, workspaceID); core.ErrorCode(err) == core.ENotFound {
					delete(c.heads, workspaceID)
					return nil, nil
				} else if err != nil {
					return nil, fmt.Errorf("audit: read workspace %s: %w", workspaceID, err)
				}
				return c.report(ctx, workspaceID, &Break{WorkspaceID: workspaceID, Seq: h.seq, Kind: Deleted,
					Detail: fmt.Sprintf("seq %d, verified before, is gone", h.seq)}), nil
			}
			if first := records[0]; !bytes.Equal(first.Hash, h.hash[:]) || !(hashMatches(first) || begins(first, c.key)) {
				return c.report(ctx, workspaceID, &Break{WorkspaceID: workspaceID, Seq: h.seq, ID: records[0].ID, Kind: Edited,
					Detail: fmt.Sprintf("seq %d changed since it was verified", h.seq)}), nil
			}
			next = records[1:]
		}
		for _, r := range next {
			if !c.continues(h, verified, r) {
				return c.report(ctx, workspaceID, &Break{WorkspaceID: workspaceID, Seq: r.Seq, ID: r.ID, Kind: Edited,
					Detail: "it does not continue the chain"}), nil
			}
			h.seq, verified = r.Seq, true
			copy(h.hash[:], r.Hash)
		}
		c.records.Add(uint64(len(next)))
		if verified {
			c.heads[workspaceID] = h
		}
		if len(records) < c.page {
			return nil, nil
		}
	}
}

// continues reports whether r is the record after h (the first record of
// the chain when nothing is verified yet), whole.
func (c *Checker) continues(h head, verified bool, r *core.AuditRecord) bool {
	if !verified {
		return begins(r, c.key)
	}
	return r.Seq == h.seq+1 && bytes.Equal(r.PrevHash, h.hash[:]) && hashMatches(r)
}

// report logs a workspace's break and keeps it. Verify, reading the
// whole workspace, says what happened where it can; found is what the
// pass saw, for what the chain alone cannot show (records verified before
// that are now gone or rewritten, the chain still whole).
func (c *Checker) report(ctx context.Context, workspaceID string, found *Break) *Break {
	b := found
	if v, err := Verify(ctx, c.log, workspaceID, c.key); err == nil && v != nil {
		b = v
	} else if err != nil && !errors.Is(err, context.Canceled) {
		c.logger.Warn("the break in the audit log could not be looked at further", "workspace_id", workspaceID, "error", err)
	}
	c.broken[workspaceID] = b
	c.logger.Error("AUDIT LOG BROKEN: a record was edited, inserted, deleted or reordered (relay audit verify says more)",
		"workspace_id", b.WorkspaceID, "seq", b.Seq, "record_id", b.ID, "kind", b.Kind, "detail", b.Detail)
	return b
}

// Verified returns the seq of the workspace's last verified record, and
// false when the checker has not verified the workspace yet or found it
// broken. Retention purges no record past it (actions.Config.AuditVerified):
// a record rewritten after it was verified cannot be sealed into a
// checkpoint unseen, since the next pass finds the verified record, or the
// checkpoint that carries its seq, with another hash. It waits for a pass
// under way to end.
func (c *Checker) Verified(workspaceID string) (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken[workspaceID] != nil {
		return 0, false
	}
	h, ok := c.heads[workspaceID]
	return h.seq, ok
}

// Stats reports the passes so far (core.AuditVerifyStats).
func (c *Checker) Stats() core.AuditVerifyStats {
	s := core.AuditVerifyStats{
		Interval: c.interval,
		Records:  c.records.Load(),
		Failures: c.failures.Load(),
		Errors:   c.errors.Load(),
	}
	if ns := c.lastSuccess.Load(); ns != 0 {
		s.LastSuccess = time.Unix(0, ns)
	}
	return s
}
