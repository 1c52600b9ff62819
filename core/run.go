package core

import (
	"context"
	"encoding/json"
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
	ID             string          `json:"id" db:"id"`
	WorkspaceID    string          `json:"workspace_id" db:"workspace_id"`
	Action         string          `json:"action" db:"action"` // <connector>.<action>
	Connector      string          `json:"connector" db:"connector"`
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
	// Owner is the engine instance (one per server process) that runs it;
	// empty on runs stored before runs had owners. Recovery interrupts
	// only the unfinished runs whose owner has stopped heartbeating.
	Owner string `json:"-" db:"owner"`
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
	// MarkRunning moves a queued run to running.
	MarkRunning(ctx context.Context, workspaceID, runID string, at time.Time) error
	Run(ctx context.Context, workspaceID, id string) (*Run, error)
	ListRuns(ctx context.Context, workspaceID string, f RunFilter, p Page) ([]*Run, string, error)
	// InterruptOrphanedRuns marks interrupted, at at, every queued or
	// running run whose owner is not alive: it has no owner, its owner has
	// no instance record, or its owner's last heartbeat is before
	// staleBefore. It completes their idempotency records with the
	// response responder makes, and returns how many runs it marked.
	InterruptOrphanedRuns(ctx context.Context, at, staleBefore time.Time, responder func(*Run) (status int, body []byte)) (int, error)
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
