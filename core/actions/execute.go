package actions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/redact"
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
	async := false
	switch req.Mode {
	case "", "sync":
	case "async":
		async = true
	default:
		return nil, core.Errorf(core.EInvalid, `mode must be "sync" or "async"`)
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
	if idemKey != "" && t.action.NeedsConfirmation() {
		prior, err := s.cfg.Store.Idempotency(ctx, c.WorkspaceID, idemKey, s.now())
		if err != nil && core.ErrorCode(err) != core.ENotFound {
			return nil, err
		}
		if prior != nil {
			return replay(prior, reqHash)
		}
	}
	if t.action.NeedsConfirmation() {
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

	now := s.now()
	run := &core.Run{
		ID: core.NewID(), WorkspaceID: c.WorkspaceID, Action: actionID, Connector: t.conn.Connector,
		Version: t.conn.Version, Runtime: t.conn.Runtime, ConnectionID: t.conn.ID, ConnectionName: t.conn.Name,
		KeyID: c.KeyID, IdempotencyKey: idemKey, Status: core.RunRunning,
		Params: redact.Value(t.action.InputSchema, params), CreatedAt: now, StartedAt: &now,
		Owner: s.id,
	}
	var idem *core.IdempotencyRecord
	if async {
		run.Status, run.StartedAt = core.RunQueued, nil
	}
	if idemKey != "" {
		idem = &core.IdempotencyRecord{
			WorkspaceID: c.WorkspaceID, Key: idemKey, RequestHash: reqHash, RunID: run.ID,
			CreatedAt: now, ExpiresAt: now.Add(core.IdempotencyTTL),
		}
		if async {
			// The answer to an async request is its acceptance: that is
			// what a retry replays.
			idem.Done, idem.Status, idem.Body = true, http.StatusAccepted, mustJSON(run)
		}
	}
	started := c.audit("action.execute", "run:"+run.ID, "started", redactedCallDetails(t, run.Params))
	crashPoint("before-start")
	// Counted before anything is written, so Close either waits for this
	// run or refuses it before it exists.
	if !s.track() {
		return nil, core.Errorf(core.EUnavailable, "the server is shutting down; retry")
	}
	handedOff := false
	defer func() {
		if !handedOff {
			s.inflight.Done()
		}
	}()
	prior, err := s.cfg.Store.StartExecution(ctx, run, idem, started)
	if err != nil {
		return nil, err
	}
	if prior != nil { // lost a race for the key to a concurrent request
		return replay(prior, reqHash)
	}
	crashPoint("after-start")

	if async {
		accepted := mustJSON(run) // before the run changes under the goroutine
		handedOff = true
		go func() {
			defer s.inflight.Done()
			if err := s.cfg.Store.MarkRunning(s.bg, c.WorkspaceID, run.ID, s.now()); err != nil {
				s.log.Error("marking a run running failed", "run_id", run.ID, "error", err)
				return
			}
			start := s.now()
			run.StartedAt = &start
			run.Status = core.RunRunning
			if _, err := s.complete(s.bg, c, t, run, params, ""); err != nil {
				s.log.Error("finishing an async run failed; it will show as interrupted after a restart", "run_id", run.ID, "error", err)
			}
		}()
		return &Result{Status: http.StatusAccepted, Body: accepted}, nil
	}
	// The run goes on if the caller hangs up: its outcome must be recorded.
	// Close waits for it, and cancels it only when its wait is over.
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	defer context.AfterFunc(s.bg, cancel)()
	return s.complete(runCtx, c, t, run, params, idemKey)
}

// complete calls the connector and records the outcome: the run, the key's
// response and the audit record, in one transaction.
func (s *Service) complete(ctx context.Context, c Caller, t *target, run *core.Run, params []byte, idemKey string) (*Result, error) {
	began := time.Now()
	secrets, err := s.openSecrets(ctx, t.conn)
	var out json.RawMessage
	if err == nil {
		out, err = s.cfg.Runtime.Execute(ctx, t.conn.Ref(), core.ActionCall{
			Action: t.action.Name, Input: params, InputValidated: t.inputValidated(), RunID: run.ID,
			IdempotencyKey: run.IdempotencyKey, WorkspaceID: c.WorkspaceID,
			Connection: core.ConnectionData{Config: t.conn.Config, Secrets: secrets},
		})
	}
	crashPoint("after-call")
	if err != nil && ctx.Err() != nil {
		// Cancelled by shutdown mid-call: whether it took effect is
		// unknown, so the run is left for the sweep to mark interrupted.
		return nil, fmt.Errorf("run %s cancelled during the connector call: %w", run.ID, ctx.Err())
	}
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
	details, _ := json.Marshal(map[string]any{"status": run.Status, "error": run.Error})
	// The outcome is known and must be recorded even when the connector
	// call was cancelled by shutdown.
	recordCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := s.finish(recordCtx, run, idemKey, status, body, c.audit("action.execute", "run:"+run.ID, outcome, details)); err != nil {
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
// running and its key in flight until this process stops.
func (s *Service) finish(ctx context.Context, run *core.Run, idemKey string, status int, body []byte, audit *core.AuditRecord) error {
	wait := 100 * time.Millisecond
	for {
		err := s.cfg.Store.FinishExecution(ctx, run, idemKey, status, body, audit)
		switch core.ErrorCode(err) {
		case "", core.EConflict, core.EInvalid, core.ENotFound:
			return err // done, or retrying cannot help
		}
		s.log.Warn("recording a run's outcome failed; retrying", "run_id", run.ID, "error", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

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
