package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/relayhq/relay/core"
)

// How run events are watched: by polling the store, so that a client
// connected to any replica sees a run executed on another.
const (
	eventPoll    = 200 * time.Millisecond
	eventMaxWait = 10 * time.Minute
)

// runEvents streams a run's status changes as Server-Sent Events, one
// "status" event per change with the run as data, and ends after the run
// reaches a final status.
func (s *Server) runEvents(c *fiber.Ctx, p *principal) error {
	ws, id := p.Workspace.ID, c.Params("id")
	run, err := s.cfg.Actions.GetRun(c.UserContext(), ws, id)
	if err != nil {
		return err
	}
	if !s.openStreams.open(ws, s.cfg.MaxEventStreams) {
		return &core.Error{Code: core.ERateLimited, RetryAfter: eventPoll,
			Message: fmt.Sprintf("this workspace has %d run event streams open, the most allowed; close one, or poll GET /v1/runs/%s", s.cfg.MaxEventStreams, id)}
	}
	c.Set(fiber.HeaderContentType, "text/event-stream")
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set("X-Accel-Buffering", "no")
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		defer s.openStreams.close(ws)
		ctx, cancel := context.WithTimeout(s.streams, eventMaxWait)
		defer cancel()
		last := core.RunStatus("")
		for polls := 1; ; polls++ {
			if run.Status != last {
				data, _ := json.Marshal(run)
				if _, err := fmt.Fprintf(w, "event: status\nid: %s\ndata: %s\n\n", run.Status, data); err != nil {
					return
				}
				if err := w.Flush(); err != nil {
					return // the client went away
				}
				last = run.Status
			}
			if run.Status.Final() {
				return
			}
			// A comment now and then: a client that has gone away is
			// noticed by the failed write, not 10 minutes later.
			if polls%25 == 0 {
				if _, err := fmt.Fprint(w, ": ping\n\n"); err != nil || w.Flush() != nil {
					return
				}
			}
			select {
			case <-ctx.Done():
				// The client reconnects to follow on (to another replica,
				// after a shutdown).
				fmt.Fprint(w, "event: timeout\ndata: {}\n\n")
				w.Flush()
				return
			case <-time.After(eventPoll):
			}
			next, err := s.cfg.Actions.GetRun(ctx, ws, id)
			if err != nil {
				s.log.Warn("watching a run failed", "run_id", id, "error", err)
				return
			}
			run = next
		}
	})
	return nil
}

// streamCounts counts the open event streams of each workspace.
type streamCounts struct {
	mu sync.Mutex
	n  map[string]int
}

// open counts one more stream for the workspace unless it has max already.
func (c *streamCounts) open(workspace string, max int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	if c.n[workspace] >= max {
		return false
	}
	c.n[workspace]++
	return true
}

func (c *streamCounts) close(workspace string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[workspace]--; c.n[workspace] <= 0 {
		delete(c.n, workspace)
	}
}
