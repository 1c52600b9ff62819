package goplugin

import (
	"context"
	"runtime"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/catalog"
)

// slot is one connector version's place in the runtime: at most one live
// process, the start under way if any, and the restart bookkeeping.
type slot struct {
	rt    *Runtime
	ref   core.ConnectorRef
	entry *catalog.Entry
	log   hclog.Logger

	mu     sync.Mutex
	closed bool
	proc   *process      // the live process, nil when none
	start  *startAttempt // the start under way, nil when none
	// failures counts consecutive failed starts and crashes; the next
	// start waits until notBefore.
	failures    int
	notBefore   time.Time
	lastFailure string
}

// startAttempt is one start that every caller arriving meanwhile waits for,
// so that concurrent first calls start one process.
type startAttempt struct {
	done chan struct{} // closed when proc or err is set
	proc *process
	err  error
}

// get returns the live process, starting one if there is none. It waits
// out the restart backoff when that fits ctx's deadline, and otherwise
// fails with EConnectorUnavailable. A ctx that ends first returns ctx.Err().
func (s *slot) get(ctx context.Context) (*process, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, errClosed(s.ref)
		}
		if p := s.proc; p != nil {
			if !p.client.Exited() {
				s.mu.Unlock()
				return p, nil
			}
			// It died between calls and the health check has not seen it yet.
			reason := p.exitReason()
			retired := s.retireLocked(p, reason)
			s.mu.Unlock()
			if retired {
				s.log.Error("connector exited", append([]any{"pid", p.pid, "reason", reason}, p.stderr.logArgs()...)...)
			}
			p.stop(false)
			continue
		}
		a := s.start
		if a == nil {
			if wait := time.Until(s.notBefore); wait > 0 {
				failures, last := s.failures, s.lastFailure
				s.mu.Unlock()
				if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
					return nil, core.Errorf(core.EConnectorUnavailable,
						"connector %s is restarting after %d failures in a row; its next start in %s is past this call's deadline (last failure: %s)",
						s.ref, failures, formatDuration(wait), last)
				}
				t := time.NewTimer(wait)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
					return nil, ctx.Err()
				}
				continue
			}
			a = &startAttempt{done: make(chan struct{})}
			s.start = a
			s.rt.supervisors.Add(1)
			go s.supervise(a)
		}
		s.mu.Unlock()
		select {
		case <-a.done:
			return a.proc, a.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// supervise starts a process for a, then health-checks it until it is
// stopped.
//
// It runs locked to its OS thread for the life of the process: on Linux the
// plugin gets SIGKILL when the thread that forked it exits (Pdeathsig), not
// only when the host does, and Go ends a thread when a goroutine exits while
// locked to it. go-plugin forks from the goroutine that calls Client(), so
// holding this thread until the process is gone keeps any other locked
// goroutine from ending it underneath the plugin.
func (s *slot) supervise(a *startAttempt) {
	defer s.rt.supervisors.Done()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	p, err := s.startProcess()

	s.mu.Lock()
	s.start = nil
	closed := s.closed
	switch {
	case err != nil:
		s.failedLocked(core.ErrorMessage(err))
		a.err = err
	case closed:
		a.err = errClosed(s.ref)
	default:
		s.proc, a.proc = p, p
	}
	close(a.done)
	s.mu.Unlock()

	if err != nil {
		return
	}
	if closed {
		p.stop(false)
		return
	}
	s.watch(p)
}

// watch pings p every HealthInterval, and sooner when a call timed out. A
// process that does not answer is killed, so that the next call starts a
// fresh one.
func (s *slot) watch(p *process) {
	interval := s.rt.cfg.HealthInterval
	timeout := min(interval, 5*time.Second)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-p.gone:
			return
		case <-t.C:
		case <-p.probe:
		}
		if p.client.Exited() {
			reason := p.exitReason()
			if s.retire(p, reason) {
				s.log.Error("connector exited", append([]any{"pid", p.pid, "reason", reason}, p.stderr.logArgs()...)...)
			}
			p.stop(false)
			return
		}
		if err := p.ping(timeout); err != nil {
			if s.retire(p, "failed its health check: "+err.Error()) {
				s.log.Warn("connector failed its health check; killing it", "pid", p.pid, "error", err)
			}
			p.stop(true)
			return
		}
	}
}

// retire takes p out of service after a crash or a failed health check, and
// counts the failure toward the restart backoff. It reports whether this
// call retired p, so that one failure is logged once.
func (s *slot) retire(p *process, reason string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.retireLocked(p, reason)
}

func (s *slot) retireLocked(p *process, reason string) bool {
	if p.retired {
		return false
	}
	p.retired = true
	if s.proc == p {
		s.proc = nil
	}
	if time.Since(p.started) >= s.rt.stableAfter {
		s.failures = 0
	}
	s.failedLocked(reason)
	return true
}

func (s *slot) failedLocked(reason string) {
	s.failures++
	s.notBefore = time.Now().Add(backoff(s.failures, s.rt.restartBase, s.rt.restartMax))
	s.lastFailure = reason
}

// backoff is the wait before the start that follows the given number of
// consecutive failures: none after the first, then base doubling up to max.
func backoff(failures int, base, max time.Duration) time.Duration {
	if failures <= 1 {
		return 0
	}
	if failures-2 >= 32 {
		return max
	}
	d := base << (failures - 2)
	if d <= 0 || d > max {
		return max
	}
	return d
}

func (s *slot) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// close stops the slot's process and refuses further calls.
func (s *slot) close() {
	s.mu.Lock()
	s.closed = true
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p != nil {
		p.stop(false)
	}
}
