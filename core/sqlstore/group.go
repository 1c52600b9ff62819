package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jmoiron/sqlx"
)

// Group commit, on SQLite. Every execution writes twice, each time durably, before
// its caller hears back; one transaction per write would cap throughput at
// the disk's commit rate. Writes submitted while a transaction is in
// progress wait for it and then share the next one: each runs inside its
// own savepoint, so one write's failure is rolled back alone, and all of
// them become durable with a single commit. A caller is answered only after
// that commit, so nothing is acknowledged before it is on disk.

// maxGroup caps the writes in one transaction, bounding how long a lock is
// held and how much work one failed commit throws away.
const maxGroup = 256

// groupOp is one write waiting for a group.
type groupOp struct {
	ctx  context.Context
	fn   func(ctx context.Context, tx *sqlx.Tx) error
	done chan error
}

// committer runs groups one at a time.
type committer struct {
	ops      chan groupOp
	stop     chan struct{}
	stopOnce sync.Once
	stopped  sync.WaitGroup
}

var errStoreClosed = errors.New("sqlstore: the store is closed")

func (s *Store) startCommitter() {
	s.group = &committer{ops: make(chan groupOp), stop: make(chan struct{})}
	s.group.stopped.Add(1)
	go s.commitLoop()
}

// inGroupTx runs fn in a transaction shared with other writes submitted at
// about the same time, and returns when that transaction has committed
// (nil) or fn's work was rolled back (fn's error, or the commit's).
func (s *Store) inGroupTx(ctx context.Context, fn func(ctx context.Context, tx *sqlx.Tx) error) error {
	if s.dialect != sqliteDialect {
		// PostgreSQL runs writes in parallel on many connections, and its
		// statements are round trips: queueing them behind one connection
		// measured slower than committing each on its own.
		return s.inTx(ctx, func(tx *sqlx.Tx) error { return fn(ctx, tx) })
	}
	op := groupOp{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case s.group.ops <- op:
	case <-s.group.stop:
		return errStoreClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once submitted, the write is waited for even if ctx ends: the caller
	// must not think it failed when it may commit.
	return <-op.done
}

func (s *Store) commitLoop() {
	defer s.group.stopped.Done()
	for {
		var first groupOp
		select {
		case first = <-s.group.ops:
		case <-s.group.stop:
			return
		}
		batch := []groupOp{first}
	drain:
		for len(batch) < maxGroup {
			select {
			case op := <-s.group.ops:
				batch = append(batch, op)
			default:
				break drain
			}
		}
		s.runGroup(batch)
	}
}

// runGroup runs a batch in one transaction, each write in a savepoint.
func (s *Store) runGroup(batch []groupOp) {
	results := make([]error, len(batch))
	// The group's statements must not be cut off by one caller's context:
	// they share a transaction with everyone else's.
	ctx := context.WithoutCancel(batch[0].ctx)
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		for i, op := range batch {
			if err := op.ctx.Err(); err != nil {
				results[i] = err // given up on before it started: not written
				continue
			}
			if _, err := tx.ExecContext(ctx, "SAVEPOINT group_op"); err != nil {
				return fmt.Errorf("sqlstore: savepoint: %w", err)
			}
			if err := op.fn(ctx, tx); err != nil {
				results[i] = err
				if _, rerr := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT group_op"); rerr != nil {
					return fmt.Errorf("sqlstore: rollback to savepoint: %w", rerr)
				}
			}
			if _, err := tx.ExecContext(ctx, "RELEASE SAVEPOINT group_op"); err != nil {
				return fmt.Errorf("sqlstore: release savepoint: %w", err)
			}
		}
		return nil
	})
	for i, op := range batch {
		if err != nil {
			op.done <- err // the whole group was rolled back
		} else {
			op.done <- results[i]
		}
	}
}

// stopCommitter lets the group in progress finish and refuses new writes.
func (s *Store) stopCommitter() {
	s.group.stopOnce.Do(func() { close(s.group.stop) })
	s.group.stopped.Wait()
}
