package goplugin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/sdk/protocol"
	"github.com/relayhq/relay/sdk/protocol/connectorv1"
)

// exitGrace is how long a call whose connection broke waits to see the
// process exit before deciding it is alive.
const exitGrace = 2 * time.Second

// rpc is one call on the connector. It returns the connector's own error
// from the response, or the transport's.
type rpc func(ctx context.Context, c connectorv1.ConnectorClient) (*connectorv1.Error, error)

// call runs fn on the live process, starting the process if needed, and
// turns every failure into the caller's error. It waits for the process as
// long as ctx lets it, then calls begin (when not nil; an error from it
// ends the call unsent), then runs fn within min(ctx's deadline, timeout):
// waiting does not spend the call's time. what names the call in
// messages: "action send".
func (s *slot) call(ctx context.Context, what string, timeout time.Duration, begin func() error, fn rpc) error {
	waitStart := time.Now()
	s.rt.waiting.Add(1)
	p, err := s.get(ctx)
	s.rt.waiting.Add(-1)
	s.rt.waited.Add(int64(time.Since(waitStart)))
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return s.ended(ctx, what, callLimit(ctx, timeout), " (the connector was still starting)")
	} else if err != nil {
		return err
	}
	s.rt.inFlight.Add(1)
	defer s.rt.inFlight.Add(-1)
	if begin != nil {
		if err := begin(); err != nil {
			s.unget(p)
			return err
		}
	}
	limit := callLimit(ctx, timeout)
	callCtx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	perr, err := fn(callCtx, p.conn)
	if err != nil {
		err = s.transportFailed(ctx, callCtx, p, what, limit, err)
		s.release(p, false)
		return err
	}
	s.release(p, true)
	if perr != nil {
		// A handler that gave up on its deadline (the same one, carried
		// by gRPC) can answer before our timer has fired; the caller
		// should see a timeout either way.
		if pastDeadline(callCtx) {
			return s.ended(ctx, what, limit, "")
		}
		return s.connectorFailed(perr)
	}
	return nil
}

// callLimit is how long a call may take from now: its timeout, or what
// is left of ctx's deadline if that is sooner.
func callLimit(ctx context.Context, timeout time.Duration) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return max(min(timeout, time.Until(dl)), 0)
	}
	return timeout
}

// pastDeadline reports whether ctx has ended or its deadline has passed:
// under load a context's timer can fire a little after its deadline.
func pastDeadline(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

// ended is the error for a call whose context ended: a timeout, or the
// caller's own cancellation (which no one but the caller sees).
func (s *slot) ended(ctx context.Context, what string, limit time.Duration, note string) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return fmt.Errorf("connector %s %s: %w", s.ref, what, context.Canceled)
	}
	return core.Errorf(core.EConnectorTimeout, "connector %s %s did not answer within %s%s", s.ref, what, formatDuration(limit), note)
}

// transportFailed classifies a gRPC error: an oversized message, a
// timeout, a crash, or a connector that broke the protocol.
func (s *slot) transportFailed(ctx, callCtx context.Context, p *process, what string, limit time.Duration, err error) error {
	code := status.Code(err)
	switch {
	case code == codes.ResourceExhausted:
		// Inputs are measured before sending, so this is the answer.
		return core.Errorf(core.EMessageTooLarge, "the answer of connector %s to %s is over the %s message limit",
			s.ref, what, formatSize(protocol.MaxMessageSize))
	case pastDeadline(callCtx) || code == codes.DeadlineExceeded:
		if p.client.Exited() {
			return s.crashed(p, what)
		}
		// The plugin keeps running and its handler sees its context
		// cancelled; if it has stopped answering altogether, the health
		// check finds out now rather than at the next tick.
		p.probeSoon()
		return s.ended(ctx, what, limit, "")
	case s.isClosed():
		return core.Errorf(core.EConnectorUnavailable, "connector %s was stopped during %s: the runtime is shutting down", s.ref, what)
	}
	if p.waitExit(exitGrace) {
		return s.crashed(p, what)
	}
	if code != codes.Unavailable {
		return core.Errorf(core.EConnectorError, "connector %s failed during %s: %s", s.ref, what, status.Convert(err).Message())
	}
	// The process lives but the connection to it is gone: nothing more
	// will get through, so replace it. A process still writing out a long
	// panic lands here too, so look for the panic line once it is dead.
	msg := status.Convert(err).Message()
	c, retired := s.retire(p, "lost its connection")
	if retired {
		s.log.Error("connector lost its connection; killing it", "crash", c.id, "pid", p.pid, "error", err, "calls_in_flight", c.inflight)
	}
	p.stop(true)
	if line := p.stderr.panicLine(); line != "" {
		if retired {
			s.log.Error("connector crashed", "crash", c.id, "during", what, "pid", p.pid, "reason", line)
		}
		return s.crashError(what, c, line)
	}
	// The transport's message is this call's own, not the process's.
	return core.Errorf(core.EConnectorCrashed, "connector %s lost its connection during %s: %s (crash %s)", s.ref, what, msg, c.id)
}

// crashed retires a process that exited during a call and reports the
// crash: the host log gets the panic line or exit status.
func (s *slot) crashed(p *process, what string) error {
	reason := p.exitReason()
	c, retired := s.retire(p, "crashed")
	if retired {
		s.log.Error("connector crashed", append([]any{"crash", c.id, "during", what, "pid", p.pid, "reason", reason, "calls_in_flight", c.inflight}, p.stderr.logArgs()...)...)
	}
	p.stop(false)
	return s.crashError(what, c, reason)
}

// crashError is the error of a call that a crash cut off. The process is
// shared by every workspace, and its panic message may carry whatever
// input or secret the panicking handler held, so reason (the panic line or
// exit status) goes only to a call that was alone on the process: the one
// call in flight when the process was retired, with no call before it
// left unanswered (a timed-out handler may still have been running). Then
// the crash can only have been its own, bar a goroutine the connector
// left behind from an earlier call. Every other call the crash hit learns
// only that it happened and the crash id that the host log gives with the
// reason.
func (s *slot) crashError(what string, c crash, reason string) error {
	if c.lone && reason != "" {
		return core.Errorf(core.EConnectorCrashed, "connector %s crashed during %s: %s (crash %s)", s.ref, what, reason, c.id)
	}
	return core.Errorf(core.EConnectorCrashed, "connector %s crashed during %s (crash %s; the operator's log has the details)", s.ref, what, c.id)
}

// connectorFailed maps the connector's classified error to the core code.
func (s *slot) connectorFailed(e *connectorv1.Error) error {
	return ConnectorError(s.ref, e)
}

// ConnectorError maps an error a connector classified (the error field of
// a relay.connector.v1 response) to the core error a caller sees. The wasm
// runtime maps its connectors' errors with it too.
func ConnectorError(ref core.ConnectorRef, e *connectorv1.Error) error {
	out := &core.Error{Message: ref.String() + ": " + e.GetMessage()}
	switch e.GetCode() {
	case connectorv1.ErrorCode_ERROR_CODE_INVALID_INPUT:
		out.Code = core.EInvalidParams
		for _, f := range e.GetFields() {
			out.Fields = append(out.Fields, core.FieldError{Pointer: f.GetPointer(), Message: f.GetMessage()})
		}
	case connectorv1.ErrorCode_ERROR_CODE_NOT_FOUND:
		out.Code = core.EUpstreamNotFound
	case connectorv1.ErrorCode_ERROR_CODE_RETRYABLE:
		out.Code = core.EUpstreamRetryable
		out.RetryAfter = time.Duration(max(e.GetRetryAfterMs(), 0)) * time.Millisecond
	case connectorv1.ErrorCode_ERROR_CODE_PERMANENT:
		out.Code = core.EUpstreamFailed
	case connectorv1.ErrorCode_ERROR_CODE_UNAUTHORIZED:
		out.Code = core.EUpstreamUnauthorized
	case connectorv1.ErrorCode_ERROR_CODE_EGRESS_DENIED:
		out.Code = core.EEgressDenied
	case connectorv1.ErrorCode_ERROR_CODE_UNKNOWN_ACTION:
		out.Code = core.EUnknownAction
	case connectorv1.ErrorCode_ERROR_CODE_MESSAGE_TOO_LARGE:
		out.Code = core.EMessageTooLarge
	default: // INTERNAL, UNSPECIFIED and codes newer than this host
		out.Code = core.EConnectorError
	}
	return out
}

// checkSize refuses a request over the message limit before it is sent,
// naming the limit rather than leaving it to a transport error.
func (s *slot) checkSize(m proto.Message, what string) error {
	if n := proto.Size(m); n > protocol.MaxMessageSize {
		return core.Errorf(core.EMessageTooLarge,
			"the %s of connector %s, with its input and connection, comes to %d bytes, over the %s message limit",
			what, s.ref, n, formatSize(protocol.MaxMessageSize))
	}
	return nil
}
