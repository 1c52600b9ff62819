package actions

import (
	"context"
	"sync"

	"github.com/relayhq/relay/core"
)

// limbo keeps the runs whose start the database did not confirm (the
// commit was cut off): each runs if it turns out to be stored, and is
// dropped if not. And it remembers that this engine may hold queued runs
// it does not know of (a claim or a record whose outcome is unknown), to
// be looked for at the next heartbeat.
type limbo struct {
	mu       sync.Mutex
	jobs     []*job
	unsynced bool
}

func (l *limbo) add(j *job) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.jobs = append(l.jobs, j)
}

// resync asks the next heartbeat to look for queued runs of this engine's
// that it does not know of.
func (l *limbo) resync() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.unsynced = true
}

// take empties the limbo.
func (l *limbo) take() (jobs []*job, unsynced bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	jobs, unsynced = l.jobs, l.unsynced
	l.jobs, l.unsynced = nil, false
	return jobs, unsynced
}

// settleLimbo runs each run of the limbo that turns out to be stored and
// still this engine's, and its call not begun (a sync run is running from
// its start, but this engine knows its call never began). What cannot be
// read yet stays for the next heartbeat.
func (s *Service) settleLimbo(ctx context.Context) {
	jobs, unsynced := s.limbo.take()
	for _, j := range jobs {
		r, err := s.cfg.Store.Run(ctx, j.run.WorkspaceID, j.run.ID)
		switch {
		case core.ErrorCode(err) == core.ENotFound:
			if j.queued {
				s.queue.leave(j, false)
			}
			continue // not stored: the caller's retry runs it
		case err != nil:
			s.limbo.add(j)
			continue
		case r.Owner != s.id || r.Status.Final():
			if j.queued {
				s.queue.leave(j, false)
			}
			continue
		}
		s.log.Info("a run whose start was not confirmed was stored; running it", "run_id", r.ID)
		if !j.queued {
			s.queue.add(j) // a sync run, now run in the background
		}
		s.enqueue(j)
	}
	if unsynced {
		runs, err := s.cfg.Store.QueuedRunsOf(ctx, s.id)
		if err != nil {
			s.limbo.resync()
			return
		}
		for _, r := range runs {
			if !s.queue.has(r.ID) {
				s.resume(ctx, r)
			}
		}
	}
}

// claim takes over the queued runs that no live engine holds, as many as
// this engine has room for, and runs them.
func (s *Service) claim(ctx context.Context) (int, error) {
	runs, err := s.cfg.Store.ClaimRuns(ctx, s.id, s.now().Add(-s.cfg.StaleAfter), s.queue.room())
	if err != nil {
		if s.transient(err) {
			s.limbo.resync()
		}
		return 0, err
	}
	for _, r := range runs {
		s.resume(ctx, r)
	}
	return len(runs), nil
}

// resume runs a queued run this engine holds but did not start: its
// connection, connector version and params are found again. A run that
// can no longer run (its connection deleted, its version gone) ends
// failed, never begun.
func (s *Service) resume(ctx context.Context, r *core.Run) {
	j, err := s.jobFor(ctx, r)
	if err != nil {
		if s.transient(err) {
			s.limbo.resync()
			return
		}
		s.log.Warn("a queued run cannot run", "run_id", r.ID, "error", err)
		j = &job{run: r, t: &target{id: r.Action, conn: &core.Connection{ID: r.ConnectionID, Connector: r.Connector,
			Version: r.Version, Runtime: r.Runtime, Name: r.ConnectionName}}, caller: callerOf(r)}
		s.recordUnstarted(j, err, nil, s.now())
		return
	}
	if s.queue.add(j) {
		s.enqueue(j)
	}
}

// callerOf is who a resumed run is recorded for: the key that started it.
func callerOf(r *core.Run) Caller {
	return Caller{WorkspaceID: r.WorkspaceID, KeyID: r.KeyID}
}

// jobFor rebuilds the job of a stored queued run: the connection as it is
// now, at the connector version and form the run was accepted for, and
// the params whole.
func (s *Service) jobFor(ctx context.Context, r *core.Run) (*job, error) {
	conn, err := s.cfg.Store.Connection(ctx, r.WorkspaceID, r.ConnectionID)
	if core.ErrorCode(err) == core.ENotFound {
		return nil, core.Errorf(core.ENotFound, "the run's connection %q was deleted before the run began", r.ConnectionName)
	}
	if err != nil {
		return nil, err
	}
	c := *conn
	c.Version, c.Runtime = r.Version, r.Runtime
	entry, err := s.cfg.Catalog.Get(c.Ref())
	if err != nil {
		return nil, core.Errorf(core.EConnectorUnavailable, "connector %s is no longer installed on this server", c.Ref())
	}
	name := r.ConnectorAction()
	a := entry.Manifest.Action(name)
	if a == nil {
		return nil, core.Errorf(core.EUnknownAction, "connector %s has no action %q", c.Ref(), name)
	}
	params, err := s.runParams(ctx, r, r.Input)
	if err != nil {
		return nil, err
	}
	return &job{run: r, t: &target{id: r.Action, conn: &c, entry: entry, action: a, preset: r.Preset}, params: params,
		caller: callerOf(r), queued: r.Status == core.RunQueued}, nil
}

// runParams are a stored run's params whole: its sealed input, opened,
// or its params when nothing was redacted from them.
func (s *Service) runParams(ctx context.Context, r *core.Run, sealed []byte) ([]byte, error) {
	if sealed == nil {
		return r.Params, nil
	}
	return s.cfg.Secrets.Open(ctx, r.WorkspaceID, inputBinding(r.ID), inputField, sealed)
}

// mayRunAgain reports whether a run whose call a stopped server cut short
// may be made again with the same connector key: its action is
// idempotent or retry-safe in the version it ran on.
func (s *Service) mayRunAgain(r *core.Run) bool {
	name := r.Connector
	if r.Package != "" {
		name = r.Package
	}
	entry, err := s.cfg.Catalog.Get(core.ConnectorRef{Name: name, Version: r.Version})
	if err != nil {
		return false
	}
	a := entry.Manifest.Action(r.ConnectorAction())
	return a != nil && a.MayRunAgain()
}
