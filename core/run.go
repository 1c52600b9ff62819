package core

import (
	"context"
	"encoding/json"
	"strings"
	"time"
)

// RunStatus is where a run is in its life.
type RunStatus string

const (
	RunQueued      RunStatus = "queued"
	RunRunning     RunStatus = "running"
	RunSucceeded   RunStatus = "succeeded"
	RunFailed      RunStatus = "failed"
	RunInterrupted RunStatus = "interrupted" // the server stopped during the run; it may or may not have taken effect
)

// Final reports whether the status can no longer change.
func (s RunStatus) Final() bool {
	return s == RunSucceeded || s == RunFailed || s == RunInterrupted
}

// Run is one execution of an action: the history and the meter.
type Run struct {
	ID          string `json:"id" db:"id"`
	WorkspaceID string `json:"workspace_id" db:"workspace_id"`
	Action      string `json:"action" db:"action"` // <connector>.<action>
	Connector   string `json:"connector" db:"connector"`
	// Package is the registry package the connector was installed from;
	// empty for the server's own connectors.
	Package        string          `json:"package,omitempty" db:"package"`
	Version        string          `json:"version" db:"version"`
	Runtime        string          `json:"runtime" db:"runtime"`
	ConnectionID   string          `json:"connection_id" db:"connection_id"`
	ConnectionName string          `json:"connection" db:"connection_name"`
	KeyID          string          `json:"key_id" db:"key_id"`
	IdempotencyKey string          `json:"idempotency_key,omitempty" db:"idempotency_key"`
	Status         RunStatus       `json:"status" db:"status"`
	Params         json.RawMessage `json:"params" db:"params"` // redacted
	Output         json.RawMessage `json:"output,omitempty" db:"output"`
	Error          *RunError       `json:"error,omitempty" db:"-"`
	CreatedAt      time.Time       `json:"created_at" db:"created_at"`
	StartedAt      *time.Time      `json:"started_at,omitempty" db:"started_at"`
	FinishedAt     *time.Time      `json:"finished_at,omitempty" db:"finished_at"`
	// Attempt counts the times the run was started: 1, and one more each
	// time a retry-safe run whose call was cut short by a stopped server
	// is run again.
	Attempt int `json:"attempt" db:"attempt"`
	// RetryOf is the run this one runs again (POST /v1/runs/{id}/retry).
	RetryOf string `json:"retry_of,omitempty" db:"retry_of"`
	// Owner is the engine instance (one per server process) that runs it,
	// or, while it is queued, holds its lease; empty on runs stored before
	// runs had owners, and on runs waiting for any engine to take them.
	// Recovery takes over only the unfinished runs whose owner has
	// stopped heartbeating.
	Owner string `json:"-" db:"owner"`
	// ConnectorKey is the idempotency key the connector receives: derived
	// from the workspace and the caller's key (or the first run of a
	// retry chain), never the caller's key itself, so that two workspaces
	// using one key never meet at a provider. Every attempt and retry of
	// one request gets the same.
	ConnectorKey string `json:"-" db:"connector_key"`
	// Input is the exact params, sealed with the workspace's data key,
	// kept when Params (redacted) lost something the call needs, so that
	// a run taken over after a crash or retried still has them. Dropped
	// when the run succeeds.
	Input []byte `json:"-" db:"-"`
	// Preset is set on a run of a preset (an installed template's
	// action): the installation, template version and connector action
	// it ran. Action is then the preset's id, <installation>.<preset>.
	Preset *RunPreset `json:"preset,omitempty" db:"-"`
}

// ConnectorAction is the name, within its connector, of the action the
// run called: its preset's action, or the part of Action after the dot.
func (r *Run) ConnectorAction() string {
	action := r.Action
	if r.Preset != nil {
		action = r.Preset.Action
	}
	_, name, _ := strings.Cut(action, ".")
	return name
}

// MarshalJSON adds duration_ms, the time from start to finish, once both
// are known.
func (r Run) MarshalJSON() ([]byte, error) {
	type plain Run // without this method
	out := struct {
		plain
		DurationMS *int64 `json:"duration_ms,omitempty"`
	}{plain: plain(r)}
	if r.StartedAt != nil && r.FinishedAt != nil {
		d := r.FinishedAt.Sub(*r.StartedAt).Milliseconds()
		out.DurationMS = &d
	}
	return json.Marshal(out)
}

// RunError is why a run failed.
type RunError struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	Retryable bool   `json:"retryable"`
}

// RunFilter narrows a list of runs.
type RunFilter struct {
	Action string
	Status RunStatus
	// Since and Until bound the runs' creation time, to the millisecond:
	// Since included, Until not. Zero is no bound.
	Since, Until time.Time
}

// IdempotencyRecord remembers an execute request by its Idempotency-Key, so
// a retry replays the first response instead of running again.
type IdempotencyRecord struct {
	WorkspaceID string `db:"workspace_id"`
	Key         string `db:"key"`
	// RequestHash binds the key to one request: action, connection and
	// params. The same key with another request is refused.
	RequestHash []byte `db:"request_hash"`
	RunID       string `db:"run_id"`
	// Done is false while the first request runs; then Status and Body are
	// the response to replay.
	Done      bool      `db:"done"`
	Status    int       `db:"response_status"`
	Body      []byte    `db:"response_body"`
	CreatedAt time.Time `db:"created_at"`
	ExpiresAt time.Time `db:"expires_at"`
}

// IdempotencyTTL is how long a key is remembered.
const IdempotencyTTL = 24 * time.Hour

// ConfirmToken lets one execution of exactly the previewed request through.
// Only a hash of the token is stored.
type ConfirmToken struct {
	Hash         []byte    `db:"token_hash"`
	WorkspaceID  string    `db:"workspace_id"`
	Action       string    `db:"action"`
	ConnectionID string    `db:"connection_id"`
	RequestHash  []byte    `db:"request_hash"`
	ExpiresAt    time.Time `db:"expires_at"`
}

// ConfirmTokenTTL is how long a confirm token lives.
const ConfirmTokenTTL = 10 * time.Minute

// RunStore keeps runs, idempotency records and confirm tokens. The two
// execution steps are transactions: each either happens whole or not at all.
type RunStore interface {
	// StartExecution stores a new run and, when idem is not nil, claims its
	// key, in one transaction, appending audit. When the key is already
	// held it stores nothing and returns the existing record.
	StartExecution(ctx context.Context, run *Run, idem *IdempotencyRecord, audit *AuditRecord) (existing *IdempotencyRecord, err error)
	// FinishExecution records a run's end and, for a keyed run, the
	// response to replay, in one transaction, appending audit.
	FinishExecution(ctx context.Context, run *Run, idemKey string, status int, body []byte, audit *AuditRecord) error
	// Idempotency returns the workspace's record of key, or ENotFound when
	// there is none or it has expired by now.
	Idempotency(ctx context.Context, workspaceID, key string, now time.Time) (*IdempotencyRecord, error)
	// MarkRunning moves a queued run that owner holds to running, started
	// at at: ENotFound for no such run, EConflict when it is not queued or
	// another owner holds it (its lease was taken over).
	MarkRunning(ctx context.Context, workspaceID, runID, owner string, at time.Time) error
	// ClaimRuns gives owner the queued runs that no live engine holds
	// (see InterruptOrphanedRuns), oldest first, at most limit, with their
	// Input, and returns them. Replicas may claim at once: a run goes to
	// one of them.
	ClaimRuns(ctx context.Context, owner string, staleBefore time.Time, limit int) ([]*Run, error)
	// QueuedRunsOf returns the queued runs that owner holds, oldest first,
	// with their Input.
	QueuedRunsOf(ctx context.Context, owner string) ([]*Run, error)
	// RetryOf returns the run that retries the workspace's run id, or
	// ENotFound when it has none.
	RetryOf(ctx context.Context, workspaceID, id string) (*Run, error)
	// RunInput returns the run's sealed Input: nil when it has none
	// (Params are exact) or it was dropped.
	RunInput(ctx context.Context, workspaceID, id string) ([]byte, error)
	Run(ctx context.Context, workspaceID, id string) (*Run, error)
	ListRuns(ctx context.Context, workspaceID string, f RunFilter, p Page) ([]*Run, string, error)
	// InterruptOrphanedRuns marks interrupted, at at, every running run
	// whose owner is not alive: it has no owner, its owner has no
	// instance record, or its owner's last heartbeat is before
	// staleBefore. A run for which requeue (when not nil) says yes is put
	// back in the queue instead, unowned, its Attempt one more. It
	// completes the interrupted runs' idempotency records with the
	// response responder makes, and returns how many runs it interrupted
	// and requeued. Queued runs are left for ClaimRuns.
	InterruptOrphanedRuns(ctx context.Context, at, staleBefore time.Time, responder func(*Run) (status int, body []byte),
		requeue func(*Run) bool) (interrupted, requeued int, err error)
	// Heartbeat records that the engine instance id is alive at at,
	// creating its instance record on the first beat.
	Heartbeat(ctx context.Context, instanceID string, at time.Time) error
	// DeleteInstance drops an instance's record, so that its unfinished
	// runs count as orphaned at once; for an engine that stops cleanly.
	DeleteInstance(ctx context.Context, instanceID string) error
	// DeleteDeadInstances drops the records of instances whose last
	// heartbeat is before before, and returns how many it dropped.
	DeleteDeadInstances(ctx context.Context, before time.Time) (int, error)

	// SaveConfirmToken stores a token's hash and binding.
	SaveConfirmToken(ctx context.Context, t *ConfirmToken) error
	// UseConfirmToken consumes the token whose hash and binding
	// (workspace, action, connection, request hash) are want's: ENotFound
	// when there is none, it was used, or it expired. A token presented
	// with another request is not consumed, so a mistaken call does not
	// spend the token the right one needs.
	UseConfirmToken(ctx context.Context, want *ConfirmToken, now time.Time) (*ConfirmToken, error)
	// DeleteExpired drops idempotency records and confirm tokens past
	// their expiry.
	DeleteExpired(ctx context.Context, now time.Time) error
}

// RunGuard may refuse a run before it is stored: billing's spend caps.
// Admit is called with a run about to be stored, with every field set;
// an error refuses it (EBudgetExceeded), and nothing is stored. When it
// admits the run, release (when not nil) is for the caller to call if the
// run is then not stored after all (a concurrent request with the same
// Idempotency-Key won).
type RunGuard interface {
	Admit(ctx context.Context, run *Run) (release func(), err error)
}
