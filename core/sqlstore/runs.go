package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/relayhq/relay/core"
)

var _ core.RunStore = (*Store)(nil)

const runColumns = `id, workspace_id, action, connector, version, runtime, connection_id, connection_name,
	key_id, idempotency_key, status, params, output, error_code, error_message, error_retryable,
	created_at, started_at, finished_at, owner, attempt, retry_of, connector_key, package, preset`

// insertRunColumns are the columns a new run is written with: runColumns
// and the sealed input, which reads of a run leave out.
const insertRunColumns = runColumns + `, input`

// runRow is a runs row. The error is three nullable columns rather than a
// JSON blob so that failures can be counted by code in SQL; JSON is read as
// bytes because SQLite hands TEXT back as a string.
type runRow struct {
	ID             string         `db:"id"`
	WorkspaceID    string         `db:"workspace_id"`
	Action         string         `db:"action"`
	Connector      string         `db:"connector"`
	Version        string         `db:"version"`
	Runtime        string         `db:"runtime"`
	ConnectionID   string         `db:"connection_id"`
	ConnectionName string         `db:"connection_name"`
	KeyID          string         `db:"key_id"`
	IdempotencyKey string         `db:"idempotency_key"`
	Status         string         `db:"status"`
	Params         []byte         `db:"params"`
	Output         []byte         `db:"output"`
	ErrorCode      sql.NullString `db:"error_code"`
	ErrorMessage   sql.NullString `db:"error_message"`
	ErrorRetryable sql.NullBool   `db:"error_retryable"`
	CreatedAt      time.Time      `db:"created_at"`
	StartedAt      *time.Time     `db:"started_at"`
	FinishedAt     *time.Time     `db:"finished_at"`
	Owner          sql.NullString `db:"owner"`
	Attempt        int            `db:"attempt"`
	RetryOf        sql.NullString `db:"retry_of"`
	ConnectorKey   string         `db:"connector_key"`
	Package        sql.NullString `db:"package"`
	Preset         []byte         `db:"preset"`
	// Input is read only by ClaimRuns.
	Input []byte `db:"input"`
}

func (r *runRow) run() *core.Run {
	run := &core.Run{
		ID:             r.ID,
		WorkspaceID:    r.WorkspaceID,
		Action:         r.Action,
		Connector:      r.Connector,
		Version:        r.Version,
		Runtime:        r.Runtime,
		ConnectionID:   r.ConnectionID,
		ConnectionName: r.ConnectionName,
		KeyID:          r.KeyID,
		IdempotencyKey: r.IdempotencyKey,
		Status:         core.RunStatus(r.Status),
		Params:         r.Params,
		Output:         r.Output,
		CreatedAt:      r.CreatedAt.UTC(),
		StartedAt:      utcPtr(r.StartedAt),
		FinishedAt:     utcPtr(r.FinishedAt),
		Owner:          r.Owner.String,
		Attempt:        r.Attempt,
		RetryOf:        r.RetryOf.String,
		ConnectorKey:   r.ConnectorKey,
		Package:        r.Package.String,
		Input:          r.Input,
	}
	if len(r.Preset) > 0 {
		run.Preset = &core.RunPreset{}
		if err := json.Unmarshal(r.Preset, run.Preset); err != nil {
			run.Preset = nil // written by this package from a core.RunPreset: not reached
		}
	}
	if r.ErrorCode.Valid {
		run.Error = &core.RunError{Code: r.ErrorCode.String, Message: r.ErrorMessage.String, Retryable: r.ErrorRetryable.Bool}
	}
	return run
}

// runErrorArgs are the values of error_code, error_message and
// error_retryable: all NULL without an error.
func runErrorArgs(e *core.RunError) (code, message, retryable any) {
	if e == nil {
		return nil, nil, nil
	}
	return e.Code, e.Message, e.Retryable
}

func validRunStatus(s core.RunStatus) bool {
	switch s {
	case core.RunQueued, core.RunRunning, core.RunSucceeded, core.RunFailed, core.RunInterrupted:
		return true
	}
	return false
}

// unfinished is the SQL list of the statuses that may still change.
const unfinished = `('` + string(core.RunQueued) + `', '` + string(core.RunRunning) + `')`

// Run returns the workspace's run with that id, or ENotFound.
func (s *Store) Run(ctx context.Context, workspaceID, id string) (*core.Run, error) {
	var r runRow
	err := s.db.GetContext(ctx, &r, s.db.Rebind(`SELECT `+runColumns+` FROM runs WHERE workspace_id = ? AND id = ?`), workspaceID, id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, core.Errorf(core.ENotFound, "no run with id %q", id)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: get run %s: %w", id, err)
	}
	return r.run(), nil
}

// ListRuns lists the workspace's runs, newest first (by id, so to the
// millisecond), narrowed by f. next is the cursor of the following page,
// "" after the last one. EInvalid for a malformed cursor or an unknown
// status.
func (s *Store) ListRuns(ctx context.Context, workspaceID string, f core.RunFilter, p core.Page) (runs []*core.Run, next string, err error) {
	before, err := decodeCursor(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	query, args := `SELECT `+runColumns+` FROM runs WHERE workspace_id = ?`, []any{workspaceID}
	if f.Action != "" {
		query, args = query+` AND action = ?`, append(args, f.Action)
	}
	if f.Status != "" {
		if !validRunStatus(f.Status) {
			return nil, "", core.Errorf(core.EInvalid, "unknown run status %q", f.Status)
		}
		query, args = query+` AND status = ?`, append(args, string(f.Status))
	}
	// A run's id begins with its creation time, so the time bounds are
	// bounds on the key the list walks.
	if !f.Since.IsZero() {
		query, args = query+` AND id >= ?`, append(args, core.IDFloor(f.Since))
	}
	if !f.Until.IsZero() {
		if until := core.IDFloor(f.Until); before == "" || until < before {
			before = until
		}
	}
	if before != "" {
		query, args = query+` AND id < ?`, append(args, before)
	}
	limit := pageLimit(p.Limit)
	query, args = query+` ORDER BY id DESC LIMIT ?`, append(args, limit+1)

	var rows []runRow
	if err := s.db.SelectContext(ctx, &rows, s.db.Rebind(query), args...); err != nil {
		return nil, "", fmt.Errorf("sqlstore: list runs: %w", err)
	}
	if len(rows) > limit {
		rows = rows[:limit]
		next = encodeCursor(rows[limit-1].ID)
	}
	runs = make([]*core.Run, len(rows))
	for i := range rows {
		runs[i] = rows[i].run()
	}
	return runs, next, nil
}

// MarkRunning moves the workspace's queued run that owner holds to
// running, started at at, in a group commit (it is durable when it
// returns). ENotFound when there is no such run, EConflict when it is not
// queued or another owner holds it.
func (s *Store) MarkRunning(ctx context.Context, workspaceID, runID, owner string, at time.Time) error {
	if at.IsZero() {
		at = time.Now()
	}
	return s.inGroupTx(ctx, func(ctx context.Context, g *groupTx) error {
		res, err := g.ExecContext(ctx, g.Rebind(`UPDATE runs SET status = ?, started_at = ?
			WHERE workspace_id = ? AND id = ? AND status = ? AND owner = ?`),
			string(core.RunRunning), dbTime(at), workspaceID, runID, string(core.RunQueued), owner)
		if err != nil {
			return fmt.Errorf("sqlstore: mark run %s running: %w", runID, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("sqlstore: rows affected: %w", err)
		}
		if n == 0 {
			return runStateError(ctx, g.Tx, workspaceID, runID, "queued by "+owner)
		}
		return nil
	})
}

// ClaimRuns gives owner the queued runs whose owner is not alive (see
// orphaned; staleBefore is the oldest heartbeat that still counts), oldest
// first, at most limit, and returns them with their sealed input. On
// PostgreSQL the rows are taken with FOR UPDATE SKIP LOCKED, so replicas
// claiming at once each get others and none waits for another.
func (s *Store) ClaimRuns(ctx context.Context, owner string, staleBefore time.Time, limit int) ([]*core.Run, error) {
	if owner == "" {
		return nil, core.Errorf(core.EInvalid, "empty owner")
	}
	if limit <= 0 {
		return nil, nil
	}
	staleBefore = dbTime(staleBefore)
	// A cheap read first: most heartbeats find nothing to claim.
	var candidates int
	if err := s.db.GetContext(ctx, &candidates, s.db.Rebind(`SELECT COUNT(*) FROM runs
		WHERE status = '`+string(core.RunQueued)+`' AND `+orphaned), staleBefore); err != nil {
		return nil, fmt.Errorf("sqlstore: count unclaimed runs: %w", err)
	}
	if candidates == 0 {
		return nil, nil
	}
	// The rows are picked in a CTE, evaluated once: PostgreSQL may run a
	// locking subquery in WHERE again for each row it updates, and so
	// claim more than limit.
	lock := ""
	if s.dialect == postgresDialect {
		lock = ` FOR UPDATE SKIP LOCKED`
	}
	var rows []runRow
	err := s.db.SelectContext(ctx, &rows, s.db.Rebind(`WITH picked AS (
			SELECT id FROM runs WHERE status = '`+string(core.RunQueued)+`' AND `+orphaned+`
			ORDER BY id LIMIT ?`+lock+`)
		UPDATE runs SET owner = ?
		WHERE id IN (SELECT id FROM picked) AND status = '`+string(core.RunQueued)+`'
		RETURNING `+insertRunColumns), staleBefore, limit, owner)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: claim queued runs: %w", err)
	}
	return sortedRuns(rows), nil
}

// QueuedRunsOf returns the queued runs that owner holds, oldest first,
// with their sealed input: for an engine that cannot tell whether a claim
// of its own was committed.
func (s *Store) QueuedRunsOf(ctx context.Context, owner string) ([]*core.Run, error) {
	var rows []runRow
	if err := s.db.SelectContext(ctx, &rows, s.db.Rebind(`SELECT `+insertRunColumns+` FROM runs
		WHERE status = '`+string(core.RunQueued)+`' AND owner = ? ORDER BY id`), owner); err != nil {
		return nil, fmt.Errorf("sqlstore: list queued runs of %s: %w", owner, err)
	}
	return sortedRuns(rows), nil
}

func sortedRuns(rows []runRow) []*core.Run {
	runs := make([]*core.Run, len(rows))
	for i := range rows {
		runs[i] = rows[i].run()
	}
	slices.SortFunc(runs, func(a, b *core.Run) int { return strings.Compare(a.ID, b.ID) })
	return runs
}

// RetryOf returns the run that retries the workspace's run id, or
// ENotFound.
func (s *Store) RetryOf(ctx context.Context, workspaceID, id string) (*core.Run, error) {
	var r runRow
	err := s.db.GetContext(ctx, &r, s.db.Rebind(`SELECT `+runColumns+` FROM runs WHERE workspace_id = ? AND retry_of = ?`), workspaceID, id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, core.Errorf(core.ENotFound, "run %q has no retry", id)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: get retry of run %s: %w", id, err)
	}
	return r.run(), nil
}

// RunInput returns the workspace's run's sealed input, nil when it has
// none; ENotFound for no such run.
func (s *Store) RunInput(ctx context.Context, workspaceID, id string) ([]byte, error) {
	var in []byte
	err := s.db.GetContext(ctx, &in, s.db.Rebind(`SELECT input FROM runs WHERE workspace_id = ? AND id = ?`), workspaceID, id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, core.Errorf(core.ENotFound, "no run with id %q", id)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: get input of run %s: %w", id, err)
	}
	return in, nil
}

// runStateError explains why an update guarded by the run's status
// matched nothing: ENotFound when the workspace has no such run, EConflict
// when the run is not in the state the update needed.
func runStateError(ctx context.Context, db sqlx.ExtContext, workspaceID, runID, wanted string) error {
	var status string
	err := sqlx.GetContext(ctx, db, &status, db.Rebind(`SELECT status FROM runs WHERE workspace_id = ? AND id = ?`), workspaceID, runID)
	if errors.Is(err, sql.ErrNoRows) {
		return core.Errorf(core.ENotFound, "no run with id %q", runID)
	}
	if err != nil {
		return fmt.Errorf("sqlstore: get status of run %s: %w", runID, err)
	}
	return core.Errorf(core.EConflict, "run %s is %s, not %s", runID, status, wanted)
}

// interruptedError is what a run cut short by a stopping server failed
// with. Not retryable: the action may have taken effect. Its code is one the
// API knows, so that the response a key replays names it (an unknown code
// would be answered as internal).
var interruptedError = core.RunError{Code: core.ERunInterrupted, Message: "the server stopped during the run; it may or may not have taken effect", Retryable: false}

// orphaned is the SQL condition, on a row of runs, of having no live owner:
// none at all (a run stored before runs had owners), an owner with no
// instance record (it stopped cleanly, or its record was dropped as dead),
// or one whose last heartbeat is before the one argument it takes.
const orphaned = `(runs.owner IS NULL OR NOT EXISTS (
	SELECT 1 FROM instances WHERE instances.id = runs.owner AND instances.heartbeat_at >= ?))`

// InterruptOrphanedRuns marks every running run, of every workspace,
// whose owner is not alive (see orphaned; staleBefore is the oldest
// heartbeat that still counts as alive) interrupted at at, and completes
// the idempotency record of each keyed one (when still in flight and still
// the run's) with the response responder makes, so that a retry replays it
// instead of waiting forever. A run for which requeue says yes goes back
// to the queue instead: queued, unowned, not started, its attempt one
// more, its key left as it is. Queued runs are left for ClaimRuns. It
// returns how many runs it interrupted and requeued.
//
// A cheap read finds the candidates first; only when there are some does
// it write, in one transaction. Replicas may call it concurrently: a run
// is interrupted or requeued once.
func (s *Store) InterruptOrphanedRuns(ctx context.Context, at, staleBefore time.Time, responder func(*core.Run) (status int, body []byte),
	requeue func(*core.Run) bool) (interrupted, requeued int, err error) {
	if responder == nil {
		return 0, 0, errors.New("sqlstore: interrupt runs: no responder")
	}
	if at.IsZero() {
		at = time.Now()
	}
	at, staleBefore = dbTime(at), dbTime(staleBefore)
	const running = `status = '` + string(core.RunRunning) + `'`
	var candidates int
	if err := s.db.GetContext(ctx, &candidates, s.db.Rebind(`SELECT COUNT(*) FROM runs
		WHERE `+running+` AND `+orphaned), staleBefore); err != nil {
		return 0, 0, fmt.Errorf("sqlstore: count orphaned runs: %w", err)
	}
	if candidates == 0 {
		return 0, 0, nil
	}
	code, message, retryable := runErrorArgs(&interruptedError)
	err = s.inTx(ctx, func(tx *sqlx.Tx) error {
		// Read whole before writing: one connection cannot update while it
		// still streams a result. Only the runs cut short are read.
		var rows []runRow
		if err := tx.SelectContext(ctx, &rows, tx.Rebind(`SELECT `+runColumns+` FROM runs
			WHERE `+running+` AND `+orphaned+` ORDER BY id`), staleBefore); err != nil {
			return fmt.Errorf("sqlstore: find orphaned runs: %w", err)
		}
		interrupted, requeued = 0, 0
		for i := range rows {
			run := rows[i].run()
			if requeue != nil && requeue(run) {
				n, err := execAffected(ctx, tx, `UPDATE runs SET status = ?, owner = NULL, started_at = NULL, attempt = attempt + 1
					WHERE workspace_id = ? AND id = ? AND `+running+` AND `+orphaned,
					string(core.RunQueued), run.WorkspaceID, run.ID, staleBefore)
				if err != nil {
					return fmt.Errorf("sqlstore: requeue run %s: %w", run.ID, err)
				}
				requeued += n
				continue
			}
			n, err := execAffected(ctx, tx, `UPDATE runs
				SET status = ?, finished_at = ?, error_code = ?, error_message = ?, error_retryable = ?
				WHERE workspace_id = ? AND id = ? AND `+running+` AND `+orphaned,
				string(core.RunInterrupted), at, code, message, retryable, run.WorkspaceID, run.ID, staleBefore)
			if err != nil {
				return fmt.Errorf("sqlstore: interrupt run %s: %w", run.ID, err)
			}
			if n == 0 {
				// Finished meanwhile, or its owner beat again, in a
				// PostgreSQL transaction that committed after the read:
				// nothing to interrupt.
				continue
			}
			interrupted++
			run.Status = core.RunInterrupted
			run.FinishedAt = &at
			runErr := interruptedError
			run.Error = &runErr
			if run.IdempotencyKey == "" {
				continue
			}
			status, body := responder(run)
			_, err = tx.ExecContext(ctx, tx.Rebind(`UPDATE idempotency_records
				SET done = ?, response_status = ?, response_body = ?
				WHERE workspace_id = ? AND key = ? AND run_id = ? AND done = ?`),
				true, status, bytesArg(body), run.WorkspaceID, run.IdempotencyKey, run.ID, false)
			if err != nil {
				return fmt.Errorf("sqlstore: complete idempotency record of run %s: %w", run.ID, err)
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	return interrupted, requeued, nil
}

// execAffected runs a statement in tx and returns how many rows it
// changed.
func execAffected(ctx context.Context, tx *sqlx.Tx, query string, args ...any) (int, error) {
	res, err := tx.ExecContext(ctx, tx.Rebind(query), args...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// Heartbeat records that the engine instance id is alive at at: it
// inserts the instance's record, started at at, on the first beat, and
// moves its heartbeat_at forward after. EInvalid for an empty id.
func (s *Store) Heartbeat(ctx context.Context, instanceID string, at time.Time) error {
	if instanceID == "" {
		return core.Errorf(core.EInvalid, "empty instance id")
	}
	if at.IsZero() {
		at = time.Now()
	}
	at = dbTime(at)
	_, err := s.db.ExecContext(ctx, s.db.Rebind(`INSERT INTO instances (id, started_at, heartbeat_at) VALUES (?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at`), instanceID, at, at)
	if err != nil {
		return fmt.Errorf("sqlstore: heartbeat of instance %s: %w", instanceID, err)
	}
	return nil
}

// DeleteInstance drops the instance's record; none is no error.
func (s *Store) DeleteInstance(ctx context.Context, instanceID string) error {
	if _, err := s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM instances WHERE id = ?`), instanceID); err != nil {
		return fmt.Errorf("sqlstore: delete instance %s: %w", instanceID, err)
	}
	return nil
}

// DeleteDeadInstances drops the records of instances whose last heartbeat
// is before before, and returns how many it dropped. Their unfinished runs,
// if any are left, are orphaned either way.
func (s *Store) DeleteDeadInstances(ctx context.Context, before time.Time) (int, error) {
	res, err := s.db.ExecContext(ctx, s.db.Rebind(`DELETE FROM instances WHERE heartbeat_at < ?`), dbTime(before))
	if err != nil {
		return 0, fmt.Errorf("sqlstore: delete dead instances: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("sqlstore: rows affected: %w", err)
	}
	return int(n), nil
}
