package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/relayhq/relay/core"
)

// Executions write twice each, and a group holds many of them. Rather than
// a statement per write, a group's starts share statements, and so do its
// finishes: on PostgreSQL one statement each, whose rows travel as one
// array per column (pgArray), so a group costs a few round trips whatever
// its size.

// startWrite is StartExecution's write: a run, the claim of its key when
// idem is not nil, and its audit record, appended only if the run is
// stored. existing is set when the key was held by another record.
type startWrite struct {
	run      *core.Run
	idem     *core.IdempotencyRecord
	audit    *core.AuditRecord
	existing *core.IdempotencyRecord
}

// claimKey is what two starts of one statement must not share: a
// statement may claim a key only once. Unkeyed starts share nothing.
func (w *startWrite) claimKey() string {
	if w.idem == nil {
		return ""
	}
	return w.idem.WorkspaceID + "\x00" + w.idem.Key
}

// finishWrite is FinishExecution's write: a run's end, the response its
// key replays (when idemKey is not empty), and its audit record.
type finishWrite struct {
	run     *core.Run
	idemKey string
	status  int
	body    []byte
	audit   *core.AuditRecord
}

func (w *finishWrite) runKey() string { return w.run.WorkspaceID + "\x00" + w.run.ID }

// waves splits writes into runs of writes with distinct keys (an empty key
// is distinct from everything), keeping their order within each: the
// first wave takes each key's first write, the next the second, and so
// on.
func waves[W any](writes []W, key func(W) string) [][]W {
	var out [][]W
	for len(writes) > 0 {
		seen := make(map[string]bool, len(writes))
		var wave, rest []W
		for _, w := range writes {
			k := key(w)
			if k != "" && seen[k] {
				rest = append(rest, w)
				continue
			}
			seen[k] = true
			wave = append(wave, w)
		}
		out = append(out, wave)
		writes = rest
	}
	return out
}

// startRuns writes starts inside g, appending the audit record of each run
// it stores.
func (s *Store) startRuns(ctx context.Context, g *groupTx, starts []*startWrite) error {
	for _, w := range starts {
		w.existing = nil // a group that failed may have run this before
	}
	write := sqliteStartRuns
	if s.dialect == postgresDialect {
		write = pgStartRuns
	}
	return writeWaves(ctx, g, starts, (*startWrite).claimKey, write, func(w *startWrite) *core.AuditRecord {
		if w.existing != nil {
			return nil // nothing stored
		}
		return w.audit
	})
}

// writeWaves writes writes inside g in waves (see waves), each wave with
// write, and appends the audit record that audit gives for each write
// (none when nil).
func writeWaves[W any](ctx context.Context, g *groupTx, writes []W, key func(W) string,
	write func(context.Context, *groupTx, []W) error, audit func(W) *core.AuditRecord) error {
	for _, wave := range waves(writes, key) {
		if err := write(ctx, g, wave); err != nil {
			return err
		}
		for _, w := range wave {
			if r := audit(w); r != nil {
				g.appendAudit(r)
			}
		}
	}
	return nil
}

// sqliteStartRuns claims and inserts one run at a time: SQLite has no
// round trips to save, and its statements are prepared already.
func sqliteStartRuns(ctx context.Context, g *groupTx, wave []*startWrite) error {
	for _, w := range wave {
		if w.idem != nil {
			claimed, err := claimKey(ctx, g.Tx, w.idem)
			if err != nil {
				return err
			}
			if !claimed {
				if w.existing, err = idempotencyRecord(ctx, g.Tx, w.idem.WorkspaceID, w.idem.Key); err != nil {
					return err
				}
				continue
			}
		}
		if err := insertRun(ctx, g.Tx, w.run); err != nil {
			return err
		}
	}
	return nil
}

// pgStartRuns claims the keys of wave and inserts the runs whose claims
// succeeded (and the unkeyed ones) in one statement; a key already held
// leaves its run out, and its record is read back.
func pgStartRuns(ctx context.Context, g *groupTx, wave []*startWrite) error {
	var cols [32]pgArray
	for _, w := range wave {
		r := w.run
		c := cols[:]
		for i, v := range []string{r.ID, r.WorkspaceID, r.Action, r.Connector, r.Version, r.Runtime, r.ConnectionID,
			r.ConnectionName, r.KeyID, r.IdempotencyKey, string(r.Status)} {
			c[i].text(v)
		}
		c[11].nullText(string(r.Params))
		c[12].nullText(string(r.Output))
		runErrorArrays(c[13:16], r.Error)
		c[16].time(r.CreatedAt)
		c[17].nullTime(r.StartedAt)
		c[18].nullTime(r.FinishedAt)
		c[19].nullText(r.Owner)
		c[20].int(int64(r.Attempt))
		c[21].nullText(r.RetryOf)
		c[22].text(r.ConnectorKey)
		c[23].nullText(r.Package)
		if p, ok := presetArg(r.Preset).(string); ok {
			c[24].text(p)
		} else {
			c[24].null()
		}
		c[25].bytes(r.Input)
		if d := w.idem; d != nil {
			c[26].bytes(d.RequestHash)
			c[27].bool(d.Done)
			c[28].int(int64(d.Status))
			c[29].bytes(d.Body)
			c[30].time(d.CreatedAt)
			c[31].time(d.ExpiresAt)
		} else {
			for i := 26; i < 32; i++ {
				c[i].null()
			}
		}
	}
	var ids []string
	err := g.SelectContext(ctx, &ids, g.Rebind(pgStartRunsSQL), arrayArgs(cols[:])...)
	switch {
	case isUniqueViolation(err):
		return core.Errorf(core.EConflict, "run %s already exists", wave[0].run.ID)
	case isForeignKeyViolation(err):
		return core.Errorf(core.ENotFound, "no workspace with id %q", wave[0].run.WorkspaceID)
	case err != nil:
		return fmt.Errorf("sqlstore: claim idempotency keys and insert runs: %w", err)
	}
	stored := make(map[string]bool, len(ids))
	for _, id := range ids {
		stored[id] = true
	}
	for _, w := range wave {
		if stored[w.run.ID] {
			continue
		}
		if w.idem == nil {
			return fmt.Errorf("sqlstore: run %s was not stored", w.run.ID)
		}
		if w.existing, err = idempotencyRecord(ctx, g.Tx, w.idem.WorkspaceID, w.idem.Key); err != nil {
			return err
		}
	}
	return nil
}

// pgStartRunsSQL takes one array per column: the runs' values
// (insertRunColumns), then their claims' request hash, done, response
// status and body, creation and expiry (NULL for an unkeyed run). A claim
// takes a key that is free or whose record expired by the claim's
// creation.
const pgStartRunsSQL = `WITH input AS (
		SELECT * FROM unnest(?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[],
			?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::boolean[],
			?::timestamptz[], ?::timestamptz[], ?::timestamptz[], ?::text[], ?::integer[], ?::text[], ?::text[], ?::text[], ?::text[], ?::bytea[],
			?::bytea[], ?::boolean[], ?::integer[], ?::bytea[], ?::timestamptz[], ?::timestamptz[])
		AS i(` + insertRunColumns + `, request_hash, done, response_status, response_body, claimed_at, expires_at)),
	claim AS (
		INSERT INTO idempotency_records (` + idempotencyColumns + `)
		SELECT workspace_id, idempotency_key, request_hash, id, done, response_status, response_body, claimed_at, expires_at
		FROM input WHERE request_hash IS NOT NULL
		ON CONFLICT (workspace_id, key) DO UPDATE SET
			request_hash = excluded.request_hash, run_id = excluded.run_id, done = excluded.done,
			response_status = excluded.response_status, response_body = excluded.response_body,
			created_at = excluded.created_at, expires_at = excluded.expires_at
		WHERE idempotency_records.expires_at <= excluded.created_at
		RETURNING workspace_id, key)
	INSERT INTO runs (` + insertRunColumns + `)
	SELECT ` + insertRunColumns + ` FROM input
	WHERE request_hash IS NULL OR (workspace_id, idempotency_key) IN (SELECT workspace_id, key FROM claim)
	RETURNING id`

// finishRuns writes finishes inside g, appending their audit records.
func (s *Store) finishRuns(ctx context.Context, g *groupTx, finishes []*finishWrite) error {
	write := sqliteFinishRuns
	if s.dialect == postgresDialect {
		write = pgFinishRuns
	}
	return writeWaves(ctx, g, finishes, (*finishWrite).runKey, write,
		func(w *finishWrite) *core.AuditRecord { return w.audit })
}

// finishRunSQL sets a run's end: status, output, error and finish time,
// and the start time when it had none.
const finishRunSQL = `UPDATE runs
	SET status = ?, output = ?, error_code = ?, error_message = ?, error_retryable = ?,
		finished_at = ?, started_at = COALESCE(started_at, ?),
		input = CASE WHEN ? = '` + string(core.RunSucceeded) + `' THEN NULL ELSE input END
	WHERE workspace_id = ? AND id = ? AND status IN ` + unfinished + `
	RETURNING started_at`

// completeKeySQL completes the run's own record of its key, when it is
// still in flight: after expiring, the key may have been claimed again by
// another request, and an async request's record keeps the 202 it was
// answered with. Finding none is no error; the run's result is what must
// not be lost.
const completeKeySQL = `UPDATE idempotency_records
	SET done = ?, response_status = ?, response_body = ?
	WHERE workspace_id = ? AND key = ? AND run_id = ? AND done = ?`

func sqliteFinishRuns(ctx context.Context, g *groupTx, wave []*finishWrite) error {
	for _, w := range wave {
		run := w.run
		code, message, retryable := runErrorArgs(run.Error)
		var stored time.Time
		err := g.GetContext(ctx, &stored, g.Rebind(finishRunSQL), string(run.Status), jsonArg(run.Output), code, message,
			retryable, *run.FinishedAt, *startedOrFinished(run), string(run.Status), run.WorkspaceID, run.ID)
		if errors.Is(err, sql.ErrNoRows) {
			return runStateError(ctx, g.Tx, run.WorkspaceID, run.ID, "queued or running")
		}
		if err != nil {
			return fmt.Errorf("sqlstore: finish run %s: %w", run.ID, err)
		}
		run.StartedAt = dbTimePtr(&stored)
		if w.idemKey != "" {
			_, err := g.ExecContext(ctx, g.Rebind(completeKeySQL),
				true, w.status, bytesArg(w.body), run.WorkspaceID, w.idemKey, run.ID, false)
			if err != nil {
				return fmt.Errorf("sqlstore: complete idempotency record of run %s: %w", run.ID, err)
			}
		}
	}
	return nil
}

// startedOrFinished is the start time a finishing run gets when it never
// had one: its finish.
func startedOrFinished(run *core.Run) *time.Time {
	if run.StartedAt != nil {
		return run.StartedAt
	}
	return run.FinishedAt
}

// pgFinishRuns finishes the runs of wave, and completes their keys'
// records, in one statement, sent when the group locks its audit chains
// (groupTx.flush). When a run was not finished (unknown, or finished
// already), the group fails with that run's error and is written again one
// write at a time.
func pgFinishRuns(ctx context.Context, g *groupTx, wave []*finishWrite) error {
	var cols [12]pgArray
	for _, w := range wave {
		r := w.run
		c := cols[:]
		c[0].text(r.WorkspaceID)
		c[1].text(r.ID)
		c[2].text(string(r.Status))
		c[3].nullText(string(r.Output))
		runErrorArrays(c[4:7], r.Error)
		c[7].time(*r.FinishedAt)
		c[8].time(*startedOrFinished(r))
		c[9].text(w.idemKey)
		c[10].int(int64(w.status))
		c[11].bytes(w.body)
	}
	started := make(map[string]time.Time, len(wave))
	g.script.add(pgFinishRunsSQL, arrayArgs(cols[:]), func(rows *sql.Rows) error {
		for rows.Next() {
			var id string
			var t time.Time
			if err := rows.Scan(&id, &t); err != nil {
				return err
			}
			started[id] = t
		}
		return nil
	})
	g.checks = append(g.checks, func() error {
		for _, w := range wave {
			t, ok := started[w.run.ID]
			if !ok {
				return runStateError(ctx, g.Tx, w.run.WorkspaceID, w.run.ID, "queued or running")
			}
			w.run.StartedAt = dbTimePtr(&t)
		}
		return nil
	})
	return nil
}

// pgFinishRunsSQL takes one array per column: workspace, run id, status,
// output, error code, message and retryable, finish time, start time (for
// a run that had none), key (” for none), response status and body.
const pgFinishRunsSQL = `WITH input AS (
		SELECT * FROM unnest(?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::boolean[],
			?::timestamptz[], ?::timestamptz[], ?::text[], ?::integer[], ?::bytea[])
		AS i(workspace_id, id, status, output, error_code, error_message, error_retryable, finished_at, started_at,
			idempotency_key, response_status, response_body)),
	finished AS (
		UPDATE runs SET status = input.status, output = input.output, error_code = input.error_code,
			error_message = input.error_message, error_retryable = input.error_retryable,
			finished_at = input.finished_at, started_at = COALESCE(runs.started_at, input.started_at),
			input = CASE WHEN input.status = '` + string(core.RunSucceeded) + `' THEN NULL ELSE runs.input END
		FROM input
		WHERE runs.workspace_id = input.workspace_id AND runs.id = input.id AND runs.status IN ` + unfinished + `
		RETURNING runs.id, runs.started_at),
	completed AS (
		UPDATE idempotency_records SET done = true, response_status = input.response_status,
			response_body = input.response_body
		FROM input JOIN finished ON finished.id = input.id
		WHERE input.idempotency_key <> '' AND idempotency_records.workspace_id = input.workspace_id
			AND idempotency_records.key = input.idempotency_key AND idempotency_records.run_id = input.id
			AND NOT idempotency_records.done)
	SELECT id, started_at FROM finished`
