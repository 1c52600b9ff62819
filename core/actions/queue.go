package actions

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/relayhq/relay/core"
)

// Async runs are a durable queue. An async execute writes its run queued,
// held by this engine (its owner: the lease, which the engine's heartbeat
// keeps), answers 202, and hands the run to a job here. The job waits for
// the runtime to hold an instance or process for the call, without a
// deadline, then marks the run running, durably and only while this engine
// still holds it, and only then calls the connector. So a run is running
// exactly when its call may have begun.
//
// When a server dies, its queued runs are claimed by the next start or by
// a live replica's heartbeat (Store.ClaimRuns) and run there, once; its
// running runs are interrupted, or queued again when their action may run
// again with the same key (retry-safe or idempotent). A server that stops
// cleanly leaves its queued runs for the others at once.
//
// Each connector version takes at most Config.QueueLimit waiting runs on
// one server; past that an async execute is refused with 503 and
// Retry-After, before anything is written.

// job is one run for this engine to call.
type job struct {
	// trace is the span context of the request that queued the run, if
	// it was traced: the run's call and record join its trace.
	trace  trace.SpanContext
	run    *core.Run
	t      *target
	params []byte
	caller Caller
	// queued says that the run is queued in the store: the call may begin
	// only once it is marked running.
	queued bool
}

func (j *job) queueKey() string { return j.t.conn.Ref().String() + "/" + j.t.conn.Runtime }

// queue counts the runs waiting on this engine, by connector version.
type queue struct {
	limit int

	mu      sync.Mutex
	waiting map[string]*waitLine
	ids     map[string]bool // the runs waiting, to tell a known run from a lost one
	total   int
}

// waitLine is one connector version's waiting runs and how fast they
// leave, to tell a refused caller when to come back.
type waitLine struct {
	n int
	// Calls begun in the current window, and in the last whole one.
	windowStart time.Time
	begun       int
	lastRate    float64 // calls begun per second
}

const rateWindow = 5 * time.Second

func newQueue(limit int) *queue {
	return &queue{limit: limit, waiting: map[string]*waitLine{}, ids: map[string]bool{}}
}

func (q *queue) line(key string) *waitLine {
	l := q.waiting[key]
	if l == nil {
		l = &waitLine{windowStart: time.Now()}
		q.waiting[key] = l
	}
	return l
}

// reserve counts j as waiting, unless its connector version has limit
// runs waiting already; then it says how long to wait before retrying:
// the time the line takes to drain by half at its recent pace, 1 s to
// 1 min.
func (q *queue) reserve(j *job) (retryAfter time.Duration, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	l := q.line(j.queueKey())
	if l.n >= q.limit {
		wait := time.Minute
		if l.lastRate > 0 {
			wait = time.Duration(float64(l.n) / 2 / l.lastRate * float64(time.Second))
		}
		return min(max(wait, time.Second), time.Minute), false
	}
	q.addLocked(l, j)
	return 0, true
}

// add counts j as waiting whatever the limit: a run this engine claimed,
// within room.
func (q *queue) add(j *job) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.ids[j.run.ID] {
		return false
	}
	q.addLocked(q.line(j.queueKey()), j)
	return true
}

func (q *queue) addLocked(l *waitLine, j *job) {
	l.n++
	q.total++
	q.ids[j.run.ID] = true
}

// leave takes j out of the count: its call began (began), or it will not
// be made here.
func (q *queue) leave(j *job, began bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.ids[j.run.ID] {
		return
	}
	delete(q.ids, j.run.ID)
	q.total--
	l := q.line(j.queueKey())
	l.n--
	if began {
		now := time.Now()
		if d := now.Sub(l.windowStart); d >= rateWindow {
			l.lastRate = float64(l.begun) / d.Seconds()
			l.windowStart, l.begun = now, 0
		}
		l.begun++
	}
}

// has reports whether run id is waiting here.
func (q *queue) has(id string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.ids[id]
}

// room is how many more runs this engine takes from the store at once.
func (q *queue) room() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return max(q.limit-q.total, 0)
}

// enqueue runs j in the background.
func (s *Service) enqueue(j *job) {
	s.jobs.Add(1)
	go func() {
		defer s.jobs.Done()
		s.runJob(j)
	}()
}

// runJob makes j's call once it may begin, and records the outcome. A
// failure to mark the run running (the database away) is tried again
// later, the run still waiting.
func (s *Service) runJob(j *job) {
	wait := 200 * time.Millisecond
	for {
		if !s.tryJob(j) {
			return
		}
		select {
		case <-s.bg.Done():
			s.queue.leave(j, false)
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// beginError is an error of a job's begin: the call was not made.
type beginError struct{ err error }

func (e *beginError) Error() string { return e.err.Error() }
func (e *beginError) Unwrap() error { return e.err }

var errClosing = errors.New("actions: the engine is closing")

// tryJob makes j's call and records its outcome, and reports whether it
// must be tried again later: the call was not made, and the run still
// waits here.
func (s *Service) tryJob(j *job) (again bool) {
	began := false
	var callStart time.Time
	begin := func() error {
		// Counted in flight from here: Close waits for a call that began.
		if !s.track() {
			return &beginError{errClosing}
		}
		if j.queued {
			if err := s.markRunning(j); err != nil {
				s.inflight.Done()
				return &beginError{err}
			}
		}
		began, callStart = true, time.Now()
		s.queue.leave(j, true)
		return nil
	}
	out, secrets, err := s.call(j.context(s.bg), j, begin)
	if !began {
		var be *beginError
		switch {
		case errors.Is(err, errClosing), s.bg.Err() != nil:
			// Closing: the run stays queued, for another engine or the
			// next start to claim.
			s.queue.leave(j, false)
			return false
		case errors.As(err, &be) && core.ErrorCode(err) == core.EConflict:
			// Taken over: this engine was presumed dead for a while.
			s.log.Warn("an async run was taken over by another engine before it began", "run_id", j.run.ID, "error", err)
			s.queue.leave(j, false)
			return false
		case errors.As(err, &be):
			s.log.Warn("marking an async run running failed; trying again", "run_id", j.run.ID, "error", err)
			return true
		case s.transient(err):
			return true // opening the secrets met the database away
		}
		// The runtime failed before the call (the connector did not
		// start, its version is gone): the run ends failed, never begun.
		s.queue.leave(j, false)
		s.recordUnstarted(j, err, secrets, time.Now())
		return false
	}
	defer s.inflight.Done()
	crashPoint("after-call")
	if err != nil && s.bg.Err() != nil {
		// Cut off by shutdown: left for the sweep.
		s.log.Warn("an async run was cut off by shutdown during its call", "run_id", j.run.ID)
		return false
	}
	if _, err := s.record(j.context(s.bg), j, out, err, secrets, callStart); err != nil {
		s.log.Error("finishing an async run failed; it shows as interrupted once this engine is gone", "run_id", j.run.ID, "error", err)
	}
	return false
}

// context is bg on the trace of the request that queued j, if it was
// traced.
func (j *job) context(bg context.Context) context.Context {
	if !j.trace.IsValid() {
		return bg
	}
	return trace.ContextWithSpanContext(bg, j.trace)
}

// outageDetector is a store that tells a database outage from other
// failures (sqlstore.Store does).
type outageDetector interface{ Outage(error) bool }

// transient reports whether err says the database is away for now, so
// that the same step may work later.
func (s *Service) transient(err error) bool {
	if errors.Is(err, core.ErrOutcomeUnknown) {
		return true
	}
	d, ok := s.cfg.Store.(outageDetector)
	return ok && core.ErrorCode(err) == core.EInternal && d.Outage(err)
}

// recordUnstarted ends a run whose call was never made.
func (s *Service) recordUnstarted(j *job, err error, secrets map[string]string, start time.Time) {
	if _, rerr := s.record(s.bg, j, nil, err, secrets, start); rerr != nil {
		s.log.Error("recording a run that could not start failed", "run_id", j.run.ID, "error", rerr)
		s.limbo.resync()
	}
}

// markRunning marks j's queued run running, now, while this engine holds
// it. A mark whose commit was cut off may have happened: the "not queued"
// of a later attempt is then checked against the stored run.
func (s *Service) markRunning(j *job) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	now := s.now()
	err := s.cfg.Store.MarkRunning(ctx, j.run.WorkspaceID, j.run.ID, s.id, now)
	if core.ErrorCode(err) == core.EConflict {
		if r, rerr := s.cfg.Store.Run(ctx, j.run.WorkspaceID, j.run.ID); rerr == nil &&
			r.Status == core.RunRunning && r.Owner == s.id && r.Attempt == j.run.Attempt && r.StartedAt != nil {
			now, err = *r.StartedAt, nil
		}
	}
	if err != nil {
		return err
	}
	j.run.Status, j.run.StartedAt = core.RunRunning, &now
	j.queued = false
	return nil
}
