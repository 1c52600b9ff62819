package goplugin

import (
	"context"
	"fmt"
	"runtime"
	"slices"
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
	// Restart bookkeeping; see retireLocked for the rules. failures counts
	// the crash loop: failed starts, and processes that ended before they
	// answered a call, since the last answered call. crashes holds when
	// the latest processes that had answered calls ended, oldest first, at
	// most crashBurst+1 of them. The next start waits until notBefore,
	// waitWhy says why to a caller that cannot wait, and lastFailure is
	// the latest failure as any caller may read it: never a panic line.
	failures    int
	crashes     []time.Time
	notBefore   time.Time
	waitWhy     string
	lastFailure string
}

// startAttempt is one start that every caller arriving meanwhile waits for,
// so that concurrent first calls start one process.
type startAttempt struct {
	done chan struct{} // closed once s.proc or err is set
	err  error
}

// get returns the live process, starting one if there is none, and counts
// the caller among the process's calls in flight: the caller must pass it
// to release once the call's outcome is known. It waits out the restart
// backoff when that fits ctx's deadline, and otherwise fails with
// EConnectorUnavailable. A ctx that ends first returns ctx.Err().
func (s *slot) get(ctx context.Context) (*process, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, errClosed(s.ref)
		}
		if p := s.proc; p != nil {
			if !p.client.Exited() {
				// Counted under the lock that retireLocked holds: a
				// call either is counted before its process is
				// retired or never gets that process.
				p.inflight++
				s.mu.Unlock()
				return p, nil
			}
			// It died between calls and the health check has not seen it yet.
			c, retired := s.retireLocked(p, "exited")
			s.mu.Unlock()
			if retired {
				s.log.Error("connector exited", append([]any{"crash", c.id, "pid", p.pid, "reason", p.exitReason(), "calls_in_flight", c.inflight}, p.stderr.logArgs()...)...)
			}
			p.stop(false)
			continue
		}
		a := s.start
		if a == nil {
			if wait := time.Until(s.notBefore); wait > 0 {
				why, last := s.waitWhy, s.lastFailure
				s.mu.Unlock()
				if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
					return nil, core.Errorf(core.EConnectorUnavailable,
						"connector %s %s; its next start in %s is past this call's deadline (last failure: %s)",
						s.ref, why, formatDuration(wait), last)
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
			if a.err != nil {
				return nil, a.err
			}
			// Take the new process as any caller does, counted.
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// unget releases p for a call that get counted but never sent.
func (s *slot) unget(p *process) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p.inflight--
}

// release ends a call that get counted, once its outcome is known: after a
// crash has been classified, so that every call the crash hit is still
// counted when the process is retired. answered says whether the process
// answered the call.
func (s *slot) release(p *process, answered bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p.inflight--
	switch {
	case !answered:
		// Timed out, cancelled or cut off: its handler may still be
		// running in the process, unseen.
		p.orphaned = true
	case !p.served:
		p.served = true
		if !p.retired {
			// It works: whatever failed before is no crash loop.
			s.failures = 0
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
//
// With Landlock, startProcess also binds this thread by the process's
// rules, which the process inherits; such a thread must never run anything
// else, so it stays locked and ends with the goroutine. (Go starts no new
// thread from a locked one: the threads it adds are not bound.)
func (s *slot) supervise(a *startAttempt) {
	defer s.rt.supervisors.Done()
	runtime.LockOSThread()
	if !s.rt.sandbox.landlock.ok() {
		defer runtime.UnlockOSThread()
	}

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
		s.proc = p
		s.rt.live.Add(1)
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
			if c, retired := s.retire(p, "exited"); retired {
				s.log.Error("connector exited", append([]any{"crash", c.id, "pid", p.pid, "reason", p.exitReason(), "calls_in_flight", c.inflight}, p.stderr.logArgs()...)...)
			}
			p.stop(false)
			return
		}
		if err := p.ping(timeout); err != nil {
			if c, retired := s.retire(p, "failed its health check: "+err.Error()); retired {
				s.log.Warn("connector failed its health check; killing it", "crash", c.id, "pid", p.pid, "error", err, "calls_in_flight", c.inflight)
			}
			p.stop(true)
			return
		}
	}
}

// crash is what the runtime keeps of a process's retirement: an id that
// ties what callers are told to the host log, and who was affected.
type crash struct {
	id       string
	inflight int // calls counted in flight on the process when it was retired
	// lone: the process was running one call, this one, and no call had
	// left it with a handler that might still run. Only then can the
	// crash be told to that call in full; see crashError.
	lone bool
}

// retire takes p out of service after a crash, an exit or a failed health
// check, and books it for the restart rules. reason says what happened in
// words any caller may read: never the process's own output. It returns
// p's crash record, and whether this call retired p, so that one failure
// is logged once.
func (s *slot) retire(p *process, reason string) (crash, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.retireLocked(p, reason)
}

// retireLocked applies the restart rules, which keep a crash loop from
// spinning while not letting a caller hold the connector down for the
// workspaces that share it:
//
//   - A process that has answered a call proved that the binary starts and
//     works; if it then crashes, the likeliest cause is one call's input,
//     and the next call starts a new process at once. To bound the churn,
//     when more than crashBurst such processes have ended within
//     crashWindow, the next start waits until the oldest of them leaves the
//     window: at most crashBurst immediate restarts in any crashWindow.
//   - A failed start, or a process that ends before answering any call, is
//     a crash loop: the first restart is immediate and each further one in
//     a row waits twice as long as the last, from restartBase up to
//     restartMax (see backoff). An answered call ends the loop, and so does
//     a process that stayed up for stableAfter.
func (s *slot) retireLocked(p *process, reason string) (crash, bool) {
	if p.retired {
		return p.crash, false
	}
	p.retired = true
	p.crash = crash{id: core.NewID(), inflight: p.inflight, lone: p.inflight == 1 && !p.orphaned}
	if s.proc == p {
		s.proc = nil
		s.rt.live.Add(-1)
	}
	now := time.Now()
	if p.served {
		s.crashes = append(s.crashes, now)
		if n := len(s.crashes); n > s.rt.crashBurst+1 {
			s.crashes = slices.Delete(s.crashes, 0, n-s.rt.crashBurst-1)
		}
		s.notBefore = now
		if oldest := s.crashes[0]; len(s.crashes) > s.rt.crashBurst && now.Sub(oldest) < s.rt.crashWindow {
			s.notBefore = oldest.Add(s.rt.crashWindow)
			s.waitWhy = fmt.Sprintf("crashed %d times within %s", len(s.crashes), formatDuration(s.rt.crashWindow))
		}
	} else {
		if now.Sub(p.started) >= s.rt.stableAfter {
			s.failures = 0
		}
		s.countFailureLocked()
	}
	s.lastFailure = fmt.Sprintf("%s (crash %s)", reason, p.crash.id)
	return p.crash, true
}

// failedLocked books a failed start.
func (s *slot) failedLocked(reason string) {
	s.countFailureLocked()
	s.lastFailure = reason
}

func (s *slot) countFailureLocked() {
	s.failures++
	s.notBefore = time.Now().Add(backoff(s.failures, s.rt.restartBase, s.rt.restartMax))
	s.waitWhy = fmt.Sprintf("is restarting after %d failures in a row", s.failures)
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

// hostNetworkNote says, for the API, that the live process runs in a
// sandbox without the host's network, which its SDK did not take; "" when
// there is nothing to say.
func (s *slot) hostNetworkNote() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.proc; p != nil && p.lendErr != nil {
		return "its process has no network: it did not take the host's (" + p.lendErr.Error() + "); rebuild it with a current SDK"
	}
	return ""
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
	if p != nil {
		s.proc = nil
		s.rt.live.Add(-1)
	}
	s.mu.Unlock()
	if p != nil {
		p.stop(false)
	}
}
