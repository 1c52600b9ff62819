package sqlstore

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/relayhq/relay/core"
)

// Group commit. Every execution writes twice, each time durably, before its
// caller hears back; a transaction per write would cap throughput at the
// database's commit rate and, on PostgreSQL, at the rate one workspace's
// audit chain lock can be passed from transaction to transaction. Writes
// submitted while a group is being written wait and then share the next
// transaction:
//
//   - each write that is not an execution's runs its statements in
//     turn, then executions' starts are written together, then their
//     finishes (batch.go); the audit records they append are chained and
//     inserted together at the end, each workspace's chain locked and read
//     once per group;
//   - the group commits once, and each caller is answered only after that
//     commit, so nothing is acknowledged before it is durable;
//   - if any write fails, the whole transaction is rolled back and every
//     write of the group is run again alone, in a transaction of its own,
//     so one write's failure never undoes or fails another's. Writes must
//     therefore be safe to run twice: the first run's effects are gone.
//
// One goroutine writes the groups of a store (pgGroupWorkers on
// PostgreSQL), each on a connection it keeps (writer); reads use the rest
// of the pool.

// maxGroup caps the writes in one transaction, bounding how long a lock is
// held and how much work a failed write makes the others redo.
const maxGroup = 128

// pgGroupWorkers is how many groups are written at once on PostgreSQL:
// while one waits for its commit to be flushed, or for a workspace's audit
// chain, the next runs its statements. Measured with the execute benchmark
// on 2 cores: 1 ~750/s, 2 ~900–990/s, 4 ~920/s, 8 ~470/s (more writers
// make smaller groups). SQLite has one writer at a time.
const pgGroupWorkers = 2

// groupTx is the transaction a group's writes share. On PostgreSQL,
// statements whose outcome the group can wait for go into script and are
// sent with the audit chains' locks (flush), in the same round trip; the
// checks of their outcome run after.
type groupTx struct {
	*sqlx.Tx
	audits []*core.AuditRecord
	script pgScript
	checks []func() error
	// afterLocks add statements to script that must follow the audit
	// chains' locks (lockChains).
	afterLocks []func()
}

// flush sends the statements waiting in g.script and runs their checks.
func (g *groupTx) flush(ctx context.Context) error {
	if err := g.script.run(ctx, g.Tx); err != nil {
		return fmt.Errorf("sqlstore: finish runs and lock audit chains: %w", err)
	}
	checks := g.checks
	g.checks = nil
	for _, check := range checks {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

// appendAudit queues r, prepared (prepareAudit), for the end of the group:
// it gets its seq and hashes there, in the order of the calls.
func (g *groupTx) appendAudit(r *core.AuditRecord) { g.audits = append(g.audits, r) }

// groupOp is one write waiting for a group: an execution's start or
// finish, which a group writes together with the others of their kind,
// or any other write, fn.
type groupOp struct {
	ctx    context.Context
	start  *startWrite
	finish *finishWrite
	fn     func(ctx context.Context, g *groupTx) error
	done   chan error
}

// committer runs groups one at a time.
type committer struct {
	ops      chan groupOp
	stop     chan struct{}
	stopOnce sync.Once
	stopped  sync.WaitGroup
	workers  int

	// How busy it is, for GroupStats: atomic adds, since every write
	// of every execution passes here.
	waiting atomic.Int64 // writes submitted and not yet answered
	waited  atomic.Int64 // nanoseconds from submit to answer, summed
	busy    atomic.Int64 // nanoseconds spent in runGroup, summed over workers
	groups  atomic.Uint64
	writes  atomic.Uint64
}

var errStoreClosed = errors.New("sqlstore: the store is closed")

func (s *Store) startCommitter() {
	workers := 1
	if s.dialect == postgresDialect {
		workers = pgGroupWorkers
	}
	s.group = &committer{ops: make(chan groupOp), stop: make(chan struct{}), workers: workers}
	for range workers {
		s.group.stopped.Add(1)
		go s.commitLoop()
	}
}

// inGroupTx runs fn in a transaction shared with other writes submitted at
// about the same time, and returns when that transaction has committed
// (nil) or fn's work was rolled back (fn's error, or the commit's).
func (s *Store) inGroupTx(ctx context.Context, fn func(ctx context.Context, g *groupTx) error) error {
	return s.submit(groupOp{ctx: ctx, fn: fn})
}

// submit hands op to the committer and waits for its outcome.
func (s *Store) submit(op groupOp) error {
	ctx, g := op.ctx, s.group
	op.done = make(chan error, 1)
	start := time.Now()
	g.waiting.Add(1)
	select {
	case g.ops <- op:
	case <-g.stop:
		g.waiting.Add(-1)
		return errStoreClosed
	case <-ctx.Done():
		g.waiting.Add(-1)
		return ctx.Err()
	}
	// Once submitted, the write is waited for even if ctx ends: the caller
	// must not think it failed when it may commit.
	err := <-op.done
	g.waiting.Add(-1)
	g.waited.Add(int64(time.Since(start)))
	return err
}

// GroupStats reports how busy the group writer is (core.GroupWriterStats).
func (s *Store) GroupStats() core.GroupWriterStats {
	g := s.group
	return core.GroupWriterStats{
		Writers: g.workers,
		Waiting: g.waiting.Load(),
		Busy:    time.Duration(g.busy.Load()),
		Groups:  g.groups.Load(),
		Writes:  g.writes.Load(),
		Waited:  time.Duration(g.waited.Load()),
	}
}

func (s *Store) commitLoop() {
	defer s.group.stopped.Done()
	w := &writer{s: s}
	defer w.release()
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
		start := time.Now()
		s.runGroup(w, batch)
		s.group.busy.Add(int64(time.Since(start)))
		s.group.groups.Add(1)
		s.group.writes.Add(uint64(len(batch)))
	}
}

// runGroup writes a batch in one transaction, or, when one of its writes
// fails, each write alone.
func (s *Store) runGroup(w *writer, batch []groupOp) {
	live := batch[:0:0]
	for _, op := range batch {
		if err := op.ctx.Err(); err != nil {
			op.done <- err // given up on before it started: not written
			continue
		}
		live = append(live, op)
	}
	if len(live) == 0 {
		return
	}
	err, opFailed := s.writeGroup(w, live)
	if !opFailed || len(live) == 1 {
		// All written, or the commit itself failed (its outcome may be
		// unknown, so nothing is run again), or the one write failed.
		for _, op := range live {
			op.done <- err
		}
		return
	}
	for _, op := range live {
		err, _ := s.writeGroup(w, []groupOp{op})
		op.done <- err
	}
}

// writeGroup runs ops and their audit appends in one transaction. opFailed
// says that the error came from an op or the appends, before the commit.
func (s *Store) writeGroup(w *writer, ops []groupOp) (err error, opFailed bool) {
	defer func() {
		if err != nil {
			w.release() // it may be the connection that failed
		}
	}()
	// The group's statements must not be cut off by one caller's context:
	// they share a transaction with everyone else's.
	ctx := context.WithoutCancel(ops[0].ctx)
	tx, err := w.begin(ctx)
	if err != nil {
		return fmt.Errorf("sqlstore: begin transaction: %w", err), false
	}
	g := &groupTx{Tx: tx}
	if err := s.writeOps(ctx, g, ops); err != nil {
		tx.Rollback()
		return err, true
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlstore: commit: %w: %w", core.ErrOutcomeUnknown, err), false
	}
	return nil, false
}

// writeOps runs ops inside g: each write that is not an execution's on
// its own, then the starts together, the finishes together, the usage of
// the runs that succeeded (usage.go), and the audit appends.
func (s *Store) writeOps(ctx context.Context, g *groupTx, ops []groupOp) error {
	var starts []*startWrite
	var finishes []*finishWrite
	for _, op := range ops {
		switch {
		case op.start != nil:
			starts = append(starts, op.start)
		case op.finish != nil:
			finishes = append(finishes, op.finish)
		default:
			if err := op.fn(ctx, g); err != nil {
				return err
			}
		}
	}
	if err := s.startRuns(ctx, g, starts); err != nil {
		return err
	}
	if err := s.finishRuns(ctx, g, finishes); err != nil {
		return err
	}
	if err := s.countUsage(ctx, g, finishes); err != nil {
		return err
	}
	return s.appendAudits(ctx, g)
}

// writer is a committer goroutine's hold on a connection of its own, so
// that its groups never wait behind reads for one of the pool's. After a
// failed group the connection goes back to the pool (which drops it if it
// is broken) and the next group takes another.
type writer struct {
	s    *Store
	conn *sqlx.Conn
}

func (w *writer) begin(ctx context.Context) (*sqlx.Tx, error) {
	if !w.s.ownWriterConns {
		return w.s.db.BeginTxx(ctx, nil)
	}
	for attempt := 1; ; attempt++ {
		if w.conn == nil {
			c, err := w.s.db.Connx(ctx)
			if err != nil {
				return nil, err
			}
			w.conn = c
		}
		tx, err := w.conn.BeginTxx(ctx, nil)
		// A connection the server closed while it was held (a restart,
		// an idle timeout) is found out here; the pool would have taken
		// another.
		if errors.Is(err, driver.ErrBadConn) && attempt < 3 {
			w.release()
			continue
		}
		return tx, err
	}
}

func (w *writer) release() {
	if w.conn != nil {
		w.conn.Close()
		w.conn = nil
	}
}

// stopCommitter lets the group in progress finish and refuses new writes.
func (s *Store) stopCommitter() {
	s.group.stopOnce.Do(func() { close(s.group.stop) })
	s.group.stopped.Wait()
}
