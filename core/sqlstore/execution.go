package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/relayhq/relay/core"
)

const idempotencyColumns = `workspace_id, key, request_hash, run_id, done, response_status, response_body,
	created_at, expires_at`

// maxIdempotencyKeyLen is the longest Idempotency-Key accepted.
const maxIdempotencyKeyLen = 255

// errKeyVanished means that a claim found the key held but the record was
// gone when read: it expired and DeleteExpired removed it in between (only
// possible on PostgreSQL, where the claim and the read are separate
// snapshots). Claiming again settles it.
var errKeyVanished = errors.New("sqlstore: idempotency record vanished during the claim")

// StartExecution stores run and, when idem is not nil, claims idem's key
// for it, appending audit (when not nil), all in one transaction.
//
// When the workspace already holds the key and the record has not expired,
// it stores nothing and returns that record: in flight (Done false) or done
// with the response to replay. A record expired by idem.CreatedAt is
// replaced by idem, as if it were not there.
//
// run.Owner, the engine instance that runs it, is stored as it is (NULL
// when empty: such a run counts as orphaned at once).
//
// Defaults: a new id for an empty run.ID, queued for an empty status, now
// for zero times, IdempotencyTTL after creation for a zero idem.ExpiresAt;
// idem.RunID, idem.WorkspaceID, run.IdempotencyKey and audit.WorkspaceID
// follow the run when empty and must agree with it when set. EInvalid for
// anything malformed, ENotFound for an unknown workspace, EConflict for a
// taken run id.
func (s *Store) StartExecution(ctx context.Context, run *core.Run, idem *core.IdempotencyRecord, audit *core.AuditRecord) (existing *core.IdempotencyRecord, err error) {
	if err := prepareNewRun(run); err != nil {
		return nil, err
	}
	if idem != nil {
		if err := prepareClaim(idem, run); err != nil {
			return nil, err
		}
	}
	if err := prepareAuditOf(audit, run.WorkspaceID); err != nil {
		return nil, err
	}
	w := &startWrite{run: run, idem: idem, audit: audit}
	for attempt := 1; ; attempt++ {
		err = s.submit(groupOp{ctx: ctx, start: w})
		if errors.Is(err, errKeyVanished) && attempt < 3 {
			continue
		}
		if err != nil {
			return nil, err
		}
		return w.existing, nil
	}
}

// prepareNewRun checks a run about to be stored and sets its defaults.
func prepareNewRun(run *core.Run) error {
	if run == nil {
		return core.Errorf(core.EInvalid, "missing run")
	}
	if run.ID == "" {
		run.ID = core.NewID()
	}
	// ListRuns pages by id and cursors carry ids.
	if !core.ValidID(run.ID) {
		return core.Errorf(core.EInvalid, "malformed run id %q", run.ID)
	}
	if run.WorkspaceID == "" || run.Action == "" {
		return core.Errorf(core.EInvalid, "run without workspace or action")
	}
	if run.Status == "" {
		run.Status = core.RunQueued
	}
	if run.Attempt == 0 {
		run.Attempt = 1
	}
	if run.RetryOf != "" && !core.ValidID(run.RetryOf) {
		return core.Errorf(core.EInvalid, "malformed run id %q to retry", run.RetryOf)
	}
	if !validRunStatus(run.Status) {
		return core.Errorf(core.EInvalid, "unknown run status %q", run.Status)
	}
	if err := checkJSON("run params", run.Params); err != nil {
		return err
	}
	if err := checkJSON("run output", run.Output); err != nil {
		return err
	}
	if run.CreatedAt.IsZero() {
		run.CreatedAt = time.Now()
	}
	run.CreatedAt = dbTime(run.CreatedAt)
	run.StartedAt = dbTimePtr(run.StartedAt)
	run.FinishedAt = dbTimePtr(run.FinishedAt)
	return nil
}

// prepareClaim checks idem against the run it claims a key for and sets
// its defaults. A claim is always in flight.
func prepareClaim(idem *core.IdempotencyRecord, run *core.Run) error {
	if idem.Key == "" || len(idem.Key) > maxIdempotencyKeyLen {
		return core.Errorf(core.EInvalid, "an idempotency key must have 1 to %d characters", maxIdempotencyKeyLen)
	}
	if len(idem.RequestHash) == 0 {
		return core.Errorf(core.EInvalid, "idempotency record without request hash")
	}
	for _, f := range []struct {
		field      *string
		want, what string
	}{
		{&idem.WorkspaceID, run.WorkspaceID, "idempotency record's workspace"},
		{&idem.RunID, run.ID, "idempotency record's run"},
		{&run.IdempotencyKey, idem.Key, "run's idempotency key"},
	} {
		if *f.field == "" {
			*f.field = f.want
		} else if *f.field != f.want {
			return core.Errorf(core.EInvalid, "%s %q does not match %q", f.what, *f.field, f.want)
		}
	}
	// A record may be claimed already answered: an async request's answer
	// is its acceptance, known before the run starts.
	if !idem.Done {
		idem.Status, idem.Body = 0, nil
	}
	if idem.CreatedAt.IsZero() {
		idem.CreatedAt = time.Now()
	}
	idem.CreatedAt = dbTime(idem.CreatedAt)
	if idem.ExpiresAt.IsZero() {
		idem.ExpiresAt = idem.CreatedAt.Add(core.IdempotencyTTL)
	}
	idem.ExpiresAt = dbTime(idem.ExpiresAt)
	return nil
}

// prepareAuditOf checks an audit record that goes with a change in the
// workspace; nil is fine.
func prepareAuditOf(audit *core.AuditRecord, workspaceID string) error {
	if audit == nil {
		return nil
	}
	if audit.WorkspaceID == "" {
		audit.WorkspaceID = workspaceID
	}
	if audit.WorkspaceID != workspaceID {
		return core.Errorf(core.EInvalid, "audit record of workspace %q for a run of %q", audit.WorkspaceID, workspaceID)
	}
	return prepareAudit(audit)
}

// claimKey inserts idem unless its workspace holds the key in a record
// that has not expired at idem.CreatedAt; an expired one is overwritten.
// It reports whether idem is now the stored record.
//
// On PostgreSQL, a concurrent claim of the same key waits on the primary
// key until the first commits or rolls back, then sees its record: exactly
// one claim wins. On SQLite, write transactions do not overlap at all.
func claimKey(ctx context.Context, tx *sqlx.Tx, idem *core.IdempotencyRecord) (bool, error) {
	res, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO idempotency_records (`+idempotencyColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (workspace_id, key) DO UPDATE SET
			request_hash = excluded.request_hash, run_id = excluded.run_id, done = excluded.done,
			response_status = excluded.response_status, response_body = excluded.response_body,
			created_at = excluded.created_at, expires_at = excluded.expires_at
		WHERE idempotency_records.expires_at <= ?`),
		idem.WorkspaceID, idem.Key, idem.RequestHash, idem.RunID, idem.Done, idem.Status, idem.Body, idem.CreatedAt, idem.ExpiresAt,
		idem.CreatedAt)
	if isForeignKeyViolation(err) {
		return false, core.Errorf(core.ENotFound, "no workspace with id %q", idem.WorkspaceID)
	}
	if err != nil {
		return false, fmt.Errorf("sqlstore: claim idempotency key: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("sqlstore: rows affected: %w", err)
	}
	return n == 1, nil
}

// idempotencyRecord reads the record of a key that a claim found held.
func idempotencyRecord(ctx context.Context, tx *sqlx.Tx, workspaceID, key string) (*core.IdempotencyRecord, error) {
	r, err := getIdempotencyRecord(ctx, tx, `WHERE workspace_id = ? AND key = ?`, workspaceID, key)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errKeyVanished
	}
	return r, err
}

// Idempotency returns the workspace's record of key, or ENotFound when there
// is none or it has expired by now: a look before the claim, so that a
// retry of an answered request replays without taking a write lock.
func (s *Store) Idempotency(ctx context.Context, workspaceID, key string, now time.Time) (*core.IdempotencyRecord, error) {
	if now.IsZero() {
		now = time.Now()
	}
	r, err := getIdempotencyRecord(ctx, s.db, `WHERE workspace_id = ? AND key = ? AND expires_at > ?`, workspaceID, key, dbTime(now))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, core.Errorf(core.ENotFound, "no idempotency record for that key")
	}
	return r, err
}

// getIdempotencyRecord reads the one record that where selects; sql.ErrNoRows
// when there is none.
func getIdempotencyRecord(ctx context.Context, db sqlx.ExtContext, where string, args ...any) (*core.IdempotencyRecord, error) {
	var r core.IdempotencyRecord
	err := sqlx.GetContext(ctx, db, &r, db.Rebind(`SELECT `+idempotencyColumns+` FROM idempotency_records `+where), args...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: read idempotency record: %w", err)
	}
	r.CreatedAt = r.CreatedAt.UTC()
	r.ExpiresAt = r.ExpiresAt.UTC()
	return &r, nil
}

// runArgs are the values of insertRunColumns for run.
func runArgs(run *core.Run) []any {
	code, message, retryable := runErrorArgs(run.Error)
	return []any{run.ID, run.WorkspaceID, run.Action, run.Connector, run.Version, run.Runtime, run.ConnectionID, run.ConnectionName,
		run.KeyID, run.IdempotencyKey, string(run.Status), jsonArg(run.Params), jsonArg(run.Output), code, message, retryable,
		run.CreatedAt, timeArg(run.StartedAt), timeArg(run.FinishedAt), stringArg(run.Owner),
		run.Attempt, stringArg(run.RetryOf), run.ConnectorKey, stringArg(run.Package), presetArg(run.Preset), bytesArg(run.Input)}
}

// presetArg is a run's preset as the preset column keeps it: JSON, or
// NULL for a run of a connector's own action.
func presetArg(p *core.RunPreset) any {
	if p == nil {
		return nil
	}
	b, _ := json.Marshal(p) // strings and a bool
	return string(b)
}

func insertRun(ctx context.Context, tx *sqlx.Tx, run *core.Run) error {
	_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO runs (`+insertRunColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`), runArgs(run)...)
	switch {
	case isUniqueViolation(err):
		return core.Errorf(core.EConflict, "run %s already exists", run.ID)
	case isForeignKeyViolation(err):
		return core.Errorf(core.ENotFound, "no workspace with id %q", run.WorkspaceID)
	case err != nil:
		return fmt.Errorf("sqlstore: insert run: %w", err)
	}
	return nil
}

// FinishExecution records the end of the workspace's queued or running
// run: its final status, output, error and finish time (now when nil), and
// its start time when it never had one. For a keyed run (idemKey not
// empty) it completes the run's idempotency record with the response to
// replay; and it appends audit when not nil. All in one transaction.
// run.StartedAt is left as stored.
//
// EInvalid for a status that is not final, ENotFound when the workspace
// has no such run, EConflict when the run has already finished (a final
// status never changes; InterruptOrphanedRuns may have got there first,
// its owner presumed dead).
func (s *Store) FinishExecution(ctx context.Context, run *core.Run, idemKey string, status int, body []byte, audit *core.AuditRecord) error {
	if run == nil {
		return core.Errorf(core.EInvalid, "missing run")
	}
	if !run.Status.Final() {
		return core.Errorf(core.EInvalid, "run status %q is not final", run.Status)
	}
	if err := checkJSON("run output", run.Output); err != nil {
		return err
	}
	if err := prepareAuditOf(audit, run.WorkspaceID); err != nil {
		return err
	}
	if run.FinishedAt == nil {
		t := time.Now()
		run.FinishedAt = &t
	}
	run.FinishedAt = dbTimePtr(run.FinishedAt)
	run.StartedAt = dbTimePtr(run.StartedAt)
	return s.submit(groupOp{ctx: ctx, finish: &finishWrite{run: run, idemKey: idemKey, status: status, body: body, audit: audit}})
}
