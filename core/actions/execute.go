package actions

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/redact"
	"github.com/relayhq/relay/core/tracing"
)

// Result is the response to an execute request. Replayed is true when it
// is the stored response of an earlier request with the same key.
type Result struct {
	Status   int
	Body     []byte
	Replayed bool
}

// MaxIdempotencyKey is the longest Idempotency-Key accepted.
const MaxIdempotencyKey = 255

// Execute runs an action once. With an idempotency key, the same key and
// request replay the first response; another request with the key is
// refused, and so is one while the first is still running. The run, the
// key's record and the audit record are written in one transaction before
// the connector is called, and again, with the outcome, before the caller
// gets the response (docs/execution.md).
func (s *Service) Execute(ctx context.Context, c Caller, actionID string, req Request, idemKey string) (*Result, error) {
	if err := checkIdempotencyKey(idemKey); err != nil {
		return nil, err
	}
	async, err := parseMode(req.Mode)
	if err != nil {
		return nil, err
	}
	t, params, err := s.prepare(ctx, c, actionID, req)
	if err != nil {
		s.auditOutcome(ctx, c, "action.execute", "action:"+actionID, err, nil)
		return nil, err
	}
	reqHash := requestHash(actionID, t.conn.ID, params)

	// A retry of a request already answered replays the answer, even when
	// its confirm token has since been used. Without a token to check,
	// StartExecution's claim finds the record itself: no read twice.
	if idemKey != "" && t.needsConfirmation() {
		prior, err := s.cfg.Store.Idempotency(ctx, c.WorkspaceID, idemKey, s.now())
		if err != nil && core.ErrorCode(err) != core.ENotFound {
			return nil, err
		}
		if prior != nil {
			return replay(prior, reqHash)
		}
	}
	if t.needsConfirmation() {
		if err := s.useConfirmToken(ctx, c, t, req.ConfirmToken, reqHash); err != nil {
			// A concurrent request with the same key may have used the
			// token meanwhile: its claim, not the token, decides.
			if idemKey != "" {
				if prior, lerr := s.cfg.Store.Idempotency(ctx, c.WorkspaceID, idemKey, s.now()); lerr == nil {
					return replay(prior, reqHash)
				}
			}
			s.auditOutcome(ctx, c, "action.execute", "action:"+actionID, err, s.callDetails(t, params))
			return nil, err
		}
	}
	return s.start(ctx, c, t, params, launch{async: async, idemKey: idemKey, reqHash: reqHash})
}

func parseMode(mode string) (async bool, err error) {
	switch mode {
	case "", "sync":
		return false, nil
	case "async":
		return true, nil
	}
	return false, core.Errorf(core.EInvalid, `mode must be "sync" or "async"`)
}

// launch is how a run starts: sync or async, under which key, and whether
// it retries an earlier run.
type launch struct {
	async   bool
	idemKey string
	reqHash []byte
	retryOf *core.Run
}

// start writes a new run of t with params and runs it: a sync run at
// once, answering with its outcome; an async one through the queue,
// answering 202.
func (s *Service) start(ctx context.Context, c Caller, t *target, params []byte, l launch) (*Result, error) {
	now := s.now()
	run := &core.Run{
		ID: core.NewID(), WorkspaceID: c.WorkspaceID, Action: t.id, Connector: t.conn.Connector, Package: t.conn.Package,
		Version: t.conn.Version, Runtime: t.conn.Runtime, ConnectionID: t.conn.ID, ConnectionName: t.conn.Name,
		KeyID: c.KeyID, IdempotencyKey: l.idemKey, Status: core.RunRunning,
		Params: redact.Value(t.action.InputSchema, params), CreatedAt: now, StartedAt: &now,
		Owner: s.id, Attempt: 1, Preset: t.preset,
	}
	run.ConnectorKey = connectorKey(c.WorkspaceID, l.idemKey, run.ID)
	if o := l.retryOf; o != nil {
		run.RetryOf = o.ID
		if o.ConnectorKey != "" {
			run.ConnectorKey = o.ConnectorKey
		} else { // a run stored before runs had connector keys
			run.ConnectorKey = connectorKey(o.WorkspaceID, o.IdempotencyKey, o.ID)
		}
	}
	j := &job{run: run, t: t, params: params, caller: c, queued: l.async}
	if l.async {
		j.trace = trace.SpanContextFromContext(ctx) // the queue's call goes on the request's trace
		run.Status, run.StartedAt = core.RunQueued, nil
		if wait, ok := s.queue.reserve(j); !ok {
			return nil, &core.Error{Code: core.EUnavailable, RetryAfter: wait,
				Message: fmt.Sprintf("connector %s has %d async runs waiting on this server, the most it takes; retry later", t.conn.Ref(), s.queue.limit)}
		}
	}
	handedToQueue := false
	defer func() {
		if l.async && !handedToQueue {
			s.queue.leave(j, false)
		}
	}()
	if !bytes.Equal(run.Params, params) {
		// Redaction took something the call needs: a run taken over
		// after a crash, or retried, needs the params whole.
		sealed, err := s.cfg.Secrets.Seal(ctx, c.WorkspaceID, inputBinding(run.ID), inputField, params)
		if err != nil {
			return nil, err
		}
		run.Input = sealed
	}
	var idem *core.IdempotencyRecord
	if l.idemKey != "" {
		idem = &core.IdempotencyRecord{
			WorkspaceID: c.WorkspaceID, Key: l.idemKey, RequestHash: l.reqHash, RunID: run.ID,
			CreatedAt: now, ExpiresAt: now.Add(time.Duration(s.idempotencyHours(c.IdempotencyHours)) * time.Hour),
		}
		if l.async {
			// The answer to an async request is its acceptance: that is
			// what a retry replays.
			idem.Done, idem.Status, idem.Body = true, http.StatusAccepted, mustJSON(run)
		}
	}
	started := c.audit("action.execute", "run:"+run.ID, "started", startDetails(t, run.Params, run.RetryOf))
	crashPoint("before-start")
	// Counted before anything is written, so Close either waits for this
	// run or refuses it before it exists.
	if !s.track() {
		return nil, core.Errorf(core.EUnavailable, "the server is shutting down; retry")
	}
	defer s.inflight.Done()
	release := func() {}
	if s.cfg.Guard != nil {
		r, err := s.cfg.Guard.Admit(ctx, run)
		if err != nil {
			return nil, err
		}
		if r != nil {
			release = r
		}
	}
	sctx, span := tracing.Start(ctx, "store.start_execution")
	prior, err := s.cfg.Store.StartExecution(sctx, run, idem, started)
	tracing.End(span, err)
	if errors.Is(err, core.ErrOutcomeUnknown) {
		// The run may be stored: if it is, it runs, once (recovery.go); the
		// caller's retry with its key finds it.
		handedToQueue = l.async
		s.limbo.add(j)
		s.log.Warn("the database did not confirm a run's start; it runs if it was stored", "run_id", run.ID, "error", err)
		return nil, &core.Error{Code: core.EUnavailable, RetryAfter: 2 * time.Second,
			Message: "the database did not confirm the write; retry (with the same Idempotency-Key, the action runs once)"}
	}
	if err != nil {
		release()
		return nil, err
	}
	if prior != nil { // lost a race for the key to a concurrent request
		release()
		return replay(prior, l.reqHash)
	}
	crashPoint("after-start")

	if l.async {
		accepted := mustJSON(run) // before the run changes under the job
		handedToQueue = true
		s.enqueue(j)
		return &Result{Status: http.StatusAccepted, Body: accepted}, nil
	}
	// The run goes on if the caller hangs up: its outcome must be recorded.
	// Close waits for it, and cancels it only when its wait is over.
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	defer context.AfterFunc(s.bg, cancel)()
	return s.runSync(runCtx, j)
}

// runSync makes a sync run's call and records its outcome. The call waits
// for the runtime to hold an instance or process for it, as long as the
// action's timeout; past that it fails unsent.
func (s *Service) runSync(ctx context.Context, j *job) (*Result, error) {
	waitCtx, stopWaiting := context.WithCancel(ctx)
	defer stopWaiting()
	wait := s.callTimeout(j.t)
	timer := time.AfterFunc(wait, stopWaiting)
	begin := func() error {
		if !timer.Stop() {
			return errWaitedTooLong
		}
		return nil
	}
	began := time.Now()
	out, secrets, err := s.call(waitCtx, j, begin)
	// waitCtx ends before ctx only by the timer.
	if ctx.Err() == nil && (errors.Is(err, errWaitedTooLong) || err != nil && waitCtx.Err() != nil) {
		err = core.Errorf(core.EConnectorTimeout, "connector %s: no instance was free within %s; the call was not made", j.t.conn.Ref(), formatWait(wait))
	}
	crashPoint("after-call")
	if err != nil && ctx.Err() != nil {
		// Cancelled by shutdown mid-call: whether it took effect is
		// unknown, so the run is left for the sweep to mark interrupted.
		return nil, fmt.Errorf("run %s cancelled during the connector call: %w", j.run.ID, ctx.Err())
	}
	return s.record(ctx, j, out, err, secrets, began)
}

// errWaitedTooLong is begin's answer when a sync call's wait for an
// instance is over.
var errWaitedTooLong = errors.New("actions: waited too long for an instance")

// callTimeout is the action's own timeout, or the runtimes' default.
func (s *Service) callTimeout(t *target) time.Duration {
	if t.action.TimeoutSeconds > 0 {
		return time.Duration(t.action.TimeoutSeconds) * time.Second
	}
	return DefaultCallTimeout
}

// DefaultCallTimeout is the deadline of a call whose action declares none,
// as the runtimes apply it; a sync call also waits at most this long for
// an instance.
const DefaultCallTimeout = 30 * time.Second

func formatWait(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(100 * time.Millisecond).String()
}

// call opens the connection's secrets and calls the connector for j's run,
// with begin as the call's Begin (core.ActionCall).
func (s *Service) call(ctx context.Context, j *job, begin func() error) (json.RawMessage, map[string]string, error) {
	secrets, err := s.openSecrets(ctx, j.t.conn)
	if err != nil {
		return nil, nil, err
	}
	ctx, span := startCallSpan(ctx, "connector.execute", j.t, j.run.ID)
	out, err := s.cfg.Runtime.Execute(ctx, j.t.conn.Ref(), core.ActionCall{
		Action: j.t.action.Name, Input: j.params, InputValidated: j.t.inputValidated(), RunID: j.run.ID,
		IdempotencyKey: j.run.ConnectorKey, WorkspaceID: j.run.WorkspaceID,
		Connection:  core.ConnectionData{Config: j.t.conn.Config, Secrets: secrets},
		Begin:       begin,
		TraceParent: tracing.TraceParent(ctx),
	})
	endCallSpan(span, err, secrets)
	return out, secrets, err
}

// endCallSpan ends a connector call's span, failed with err, whose message
// a connector may have written with the connection's secrets in it.
func endCallSpan(span trace.Span, err error, secrets map[string]string) {
	if err != nil && span.IsRecording() {
		err = errors.New(scrub(err.Error(), secrets))
	}
	tracing.End(span, err)
}

// startCallSpan starts the span of a call of t's connector.
func startCallSpan(ctx context.Context, name string, t *target, runID string) (context.Context, trace.Span) {
	if !tracing.Enabled() {
		return tracing.Start(ctx, name) // records nothing
	}
	ref := t.conn.Ref()
	attrs := []attribute.KeyValue{
		attribute.String("relay.action", t.id), attribute.String("relay.connector", ref.Name),
		attribute.String("relay.connector.version", ref.Version), attribute.String("relay.runtime", ref.Runtime),
	}
	if runID != "" {
		attrs = append(attrs, attribute.String("relay.run_id", runID))
	}
	return tracing.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
}

// record writes the end of j's run, whose call gave out or err (or could
// not be made): the run, the key's response and the audit record, in one
// transaction. A keyed run's record gets the response unless it was
// answered already (an async run's keeps its 202).
func (s *Service) record(ctx context.Context, j *job, out json.RawMessage, err error, secrets map[string]string, began time.Time) (*Result, error) {
	run, t := j.run, j.t
	finished := s.now()
	run.FinishedAt = &finished
	outcome := "success"
	if err != nil {
		run.Status, run.Error = core.RunFailed, runError(err)
		// A connector may quote what it was given in an error; the
		// connection's secrets must not reach the run, the log or a replay.
		run.Error.Message = scrub(run.Error.Message, secrets)
		outcome = "failure"
		if core.ErrorCode(err) == core.EInternal {
			s.log.Error("action failed", "run_id", run.ID, "error", scrub(err.Error(), secrets))
		}
	} else {
		run.Status, run.Output = core.RunSucceeded, redact.Value(t.action.OutputSchema, out)
	}
	status, body := s.cfg.Respond(run)
	d := map[string]any{"status": run.Status, "error": run.Error}
	if run.Attempt > 1 {
		d["attempt"] = run.Attempt
	}
	details, _ := json.Marshal(d)
	// The outcome is known and must be recorded even when the connector
	// call was cancelled by shutdown.
	recordCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := s.finish(recordCtx, run, status, body, j.caller.audit("action.execute", "run:"+run.ID, outcome, details)); err != nil {
		return nil, err
	}
	crashPoint("after-finish")
	if s.cfg.Observe != nil {
		s.cfg.Observe(run, time.Since(began))
	}
	return &Result{Status: status, Body: body}, nil
}

// finish records a run's outcome, retrying a store that fails for a moment:
// the connector has acted, and an outcome not recorded leaves the run
// running and its key in flight until this process stops. When an attempt
// may have committed after all (its commit was cut off), a later
// attempt's "already finished" is checked against the stored run.
func (s *Service) finish(ctx context.Context, run *core.Run, status int, body []byte, audit *core.AuditRecord) error {
	ctx, span := tracing.Start(ctx, "store.finish_execution")
	err := s.finishRetrying(ctx, run, status, body, audit)
	tracing.End(span, err)
	return err
}

func (s *Service) finishRetrying(ctx context.Context, run *core.Run, status int, body []byte, audit *core.AuditRecord) error {
	wait := 100 * time.Millisecond
	unsure := false
	for {
		err := s.cfg.Store.FinishExecution(ctx, run, run.IdempotencyKey, status, body, audit)
		if unsure && core.ErrorCode(err) == core.EConflict {
			if stored, rerr := s.cfg.Store.Run(ctx, run.WorkspaceID, run.ID); rerr == nil &&
				stored.Status == run.Status && stored.FinishedAt != nil && stored.FinishedAt.Equal(*run.FinishedAt) {
				return nil // the earlier attempt did commit
			}
		}
		switch core.ErrorCode(err) {
		case "", core.EConflict, core.EInvalid, core.ENotFound:
			return err // done, or retrying cannot help
		}
		unsure = unsure || errors.Is(err, core.ErrOutcomeUnknown)
		s.log.Warn("recording a run's outcome failed; retrying", "run_id", run.ID, "error", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// connectorKey is the idempotency key a connector receives for a run:
// derived from the workspace and the caller's key, or from the run when
// there is none, so that it is the same on every attempt of one request
// (and of its retries, which inherit it) and never the same for two
// workspaces, whatever keys their callers choose.
func connectorKey(workspaceID, idemKey, runID string) string {
	source := "run\x00" + runID
	if idemKey != "" {
		source = "key\x00" + idemKey
	}
	sum := sha256.Sum256([]byte("relay connector idempotency key\x00" + workspaceID + "\x00" + source))
	return "rik_" + hex.EncodeToString(sum[:16])
}

// A run's sealed Input is bound to the run, under a name no connection's
// secret can have.
const inputField = "params"

func inputBinding(runID string) string { return "run:" + runID }

// scrub replaces every secret value in msg with the redaction placeholder.
// Values shorter than 4 characters are left: they would match everywhere
// and protect nothing.
func scrub(msg string, secrets map[string]string) string {
	for _, v := range secrets {
		if len(v) >= 4 {
			msg = strings.ReplaceAll(msg, v, redact.Placeholder)
		}
	}
	return msg
}

// scrubErr is err with secrets scrubbed from the message its caller sees.
func scrubErr(err error, secrets map[string]string) error {
	var e *core.Error
	if err == nil || !errors.As(err, &e) {
		return err
	}
	out := *e
	out.Message = scrub(e.Message, secrets)
	out.Fields = nil
	for _, f := range e.Fields {
		out.Fields = append(out.Fields, core.FieldError{Pointer: f.Pointer, Message: scrub(f.Message, secrets)})
	}
	return &out
}

func replay(prior *core.IdempotencyRecord, reqHash []byte) (*Result, error) {
	if string(prior.RequestHash) != string(reqHash) {
		return nil, core.Errorf(core.EIdempotencyKeyReused, "this Idempotency-Key was used with another request; use a new key")
	}
	if !prior.Done {
		return nil, core.Errorf(core.EIdempotencyKeyInFlight, "the first request with this Idempotency-Key is still running (run %s)", prior.RunID)
	}
	return &Result{Status: prior.Status, Body: prior.Body, Replayed: true}, nil
}

func checkIdempotencyKey(k string) error {
	if len(k) > MaxIdempotencyKey {
		return core.Errorf(core.EInvalid, "Idempotency-Key must be at most %d characters", MaxIdempotencyKey)
	}
	for _, r := range k {
		if r > unicode.MaxASCII || !unicode.IsPrint(r) {
			return core.Errorf(core.EInvalid, "Idempotency-Key must be printable ASCII")
		}
	}
	return nil
}

// runError is what a run records of a failure. Internal errors keep their
// detail in the log, not in the run.
func runError(err error) *core.RunError {
	code := core.ErrorCode(err)
	var e *core.Error
	msg := "internal error"
	if errors.As(err, &e) {
		msg = e.Message
	}
	switch code {
	case core.EUpstreamRetryable, core.EConnectorTimeout, core.EConnectorCrashed, core.EConnectorUnavailable:
		return &core.RunError{Code: code, Message: msg, Retryable: true}
	}
	return &core.RunError{Code: code, Message: msg}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only our own types are encoded here
	}
	return b
}
