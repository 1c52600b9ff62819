package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
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
// "status" event per change it sees, with the run as data, and ends the
// stream after the final status. Each event's id is eventID: a client
// that reconnects with Last-Event-ID gets only what it has not seen, and
// one that has seen the final event gets 204, which stops an EventSource
// from reconnecting.
//
// The stream holds one of its workspace's MaxEventStreams slots until it
// ends, and it ends as soon as its client goes away: the connection is
// watched for the client's close, and is closed after the stream (it
// carries nothing else).
func (s *Server) runEvents(c *fiber.Ctx, p *principal) error {
	ws, id := p.Workspace.ID, c.Params("id")
	run, err := s.cfg.Actions.GetRun(c.UserContext(), ws, id)
	if err != nil {
		return err
	}
	seen := lastEventID(c.Get("Last-Event-ID"))
	if run.Status.Final() && eventID(run) <= seen {
		return c.SendStatus(fiber.StatusNoContent)
	}
	if !s.openStreams.open(ws, s.cfg.MaxEventStreams) {
		return &core.Error{Code: core.ERateLimited, RetryAfter: eventPoll,
			Message: fmt.Sprintf("this workspace has %d run event streams open, the most allowed; close one, or poll GET /v1/runs/%s", s.cfg.MaxEventStreams, id)}
	}
	c.Set(fiber.HeaderContentType, "text/event-stream")
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set("X-Accel-Buffering", "no")
	c.Context().SetConnectionClose()
	conn := c.Context().Conn()
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		defer s.openStreams.close(ws)
		ctx, cancel := context.WithTimeout(s.streams, eventMaxWait)
		defer cancel()
		go watchHangUp(conn, cancel)
		// fasthttp gives the whole response WriteTimeout; a stream gets
		// it for each write instead.
		flush := func() error {
			conn.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
			return w.Flush()
		}
		for polls := 1; ; polls++ {
			if n := eventID(run); n > seen {
				data, _ := json.Marshal(run)
				if _, err := fmt.Fprintf(w, "event: status\nid: %d\ndata: %s\n\n", n, data); err != nil || flush() != nil {
					return // the client went away
				}
				seen = n
			}
			if run.Status.Final() {
				return
			}
			// A comment now and then keeps proxies from taking the stream
			// for idle.
			if polls%25 == 0 {
				if _, err := fmt.Fprint(w, ": ping\n\n"); err != nil || flush() != nil {
					return
				}
			}
			select {
			case <-ctx.Done():
				if s.streams.Err() != nil || ctx.Err() == context.DeadlineExceeded {
					// The client reconnects, with its Last-Event-ID, to
					// follow on (on another replica, after a shutdown).
					fmt.Fprint(w, "event: timeout\ndata: {}\n\n")
					flush()
				}
				return
			case <-time.After(eventPoll):
			}
			next, err := s.cfg.Actions.GetRun(ctx, ws, id)
			if err != nil {
				if ctx.Err() == nil {
					s.log.Warn("watching a run failed", "run_id", id, "error", err)
				}
				return
			}
			run = next
		}
	})
	return nil
}

// eventID numbers a run's status so that the number only grows over the
// run's life: queued 1, running 2, final 3, and 3 more for each further
// attempt, should a run go back to queued for another.
func eventID(run *core.Run) int64 {
	attempt := int64(max(run.Attempt, 1)) // 0 on a run stored before runs counted attempts
	n := int64(3)
	switch run.Status {
	case core.RunQueued:
		n = 1
	case core.RunRunning:
		n = 2
	}
	return 3*(attempt-1) + n
}

// lastEventID reads a Last-Event-ID header: the id of the last event the
// client saw, 0 when it saw none or sends what this server never issued.
func lastEventID(h string) int64 {
	n, err := strconv.ParseInt(strings.TrimSpace(h), 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// watchHangUp calls hangUp when the client closes conn (or it fails).
// It reads what the client sends meanwhile and drops it: nothing may
// follow a stream's request on its connection, which is closed after the
// stream.
func watchHangUp(conn net.Conn, hangUp func()) {
	defer hangUp()
	conn.SetReadDeadline(time.Time{}) // fasthttp's was for reading the request
	var buf [512]byte
	for {
		if _, err := conn.Read(buf[:]); err != nil {
			return
		}
	}
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
