package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/relayhq/relay/core"
)

var _ core.AuditStore = (*Store)(nil)

const auditColumns = `workspace_id, seq, id, time, key_id, role, ip, request_id, action, target, outcome,
	details, prev_hash, hash`

// auditRow is an audit_records row; details is read as bytes because SQLite
// hands TEXT back as a string.
type auditRow struct {
	WorkspaceID string    `db:"workspace_id"`
	Seq         int64     `db:"seq"`
	ID          string    `db:"id"`
	Time        time.Time `db:"time"`
	KeyID       string    `db:"key_id"`
	Role        string    `db:"role"`
	IP          string    `db:"ip"`
	RequestID   string    `db:"request_id"`
	Action      string    `db:"action"`
	Target      string    `db:"target"`
	Outcome     string    `db:"outcome"`
	Details     []byte    `db:"details"`
	PrevHash    []byte    `db:"prev_hash"`
	Hash        []byte    `db:"hash"`
}

func (r *auditRow) record() *core.AuditRecord {
	return &core.AuditRecord{
		WorkspaceID: r.WorkspaceID,
		Seq:         r.Seq,
		ID:          r.ID,
		Time:        r.Time.UTC(),
		KeyID:       r.KeyID,
		Role:        r.Role,
		IP:          r.IP,
		RequestID:   r.RequestID,
		Action:      r.Action,
		Target:      r.Target,
		Outcome:     r.Outcome,
		Details:     r.Details,
		PrevHash:    r.PrevHash,
		Hash:        r.Hash,
	}
}

// AppendAudit appends r to its workspace's chain, durably; see
// appendAudits for what it sets. ENotFound for an unknown
// workspace, EInvalid for a record without workspace or action or with
// details that are not JSON.
func (s *Store) AppendAudit(ctx context.Context, r *core.AuditRecord) error {
	if err := prepareAudit(r); err != nil {
		return err
	}
	return s.inGroupTx(ctx, func(ctx context.Context, g *groupTx) error {
		g.appendAudit(r)
		return nil
	})
}

// prepareAudit checks r and brings it to its stored form: an id, a time
// in UTC whole microseconds (what both databases give back, so the hash
// still verifies after a round trip), empty details as nil.
func prepareAudit(r *core.AuditRecord) error {
	if r == nil {
		return core.Errorf(core.EInvalid, "missing audit record")
	}
	if r.WorkspaceID == "" || r.Action == "" {
		return core.Errorf(core.EInvalid, "audit record without workspace or action")
	}
	if err := checkJSON("audit details", r.Details); err != nil {
		return err
	}
	if len(r.Details) == 0 {
		r.Details = nil
	}
	if r.ID == "" {
		r.ID = core.NewID()
	}
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	r.Time = dbTime(r.Time)
	return nil
}

// appendAudits appends g's records, prepared (prepareAudit), to their
// workspaces' chains inside g, in order: each gets the seq one past its
// workspace's last record, PrevHash that record's hash (nil for the first)
// and Hash = ChainHash(PrevHash). It sends g's waiting statements first
// (groupTx.flush), with the locks on PostgreSQL.
//
// Appends to one workspace must not interleave between reading the last
// record and inserting the next. On PostgreSQL a transaction-scoped
// advisory lock per workspace serializes them (the primary key would only
// turn a race into a failure), taken in workspace order so that two
// transactions never wait on each other's; on SQLite every write
// transaction already holds the database's one write lock from BEGIN.
func (s *Store) appendAudits(ctx context.Context, g *groupTx) error {
	records := g.audits
	var workspaces []string
	for _, r := range records {
		if !slices.Contains(workspaces, r.WorkspaceID) {
			workspaces = append(workspaces, r.WorkspaceID)
		}
	}
	slices.Sort(workspaces)
	heads, err := s.lockChains(ctx, g, workspaces)
	if err != nil {
		return err
	}
	for i, ws := range workspaces {
		seq, hash := heads[i].seq, heads[i].hash
		for _, r := range records {
			if r.WorkspaceID == ws {
				seq++
				r.Seq, r.PrevHash = seq, hash
				r.Hash = r.ChainHash(r.PrevHash)
				hash = r.Hash
			}
		}
	}
	for chunk := range slices.Chunk(records, auditInsertRows) {
		if err := insertAudits(ctx, g.Tx, chunk); err != nil {
			return err
		}
	}
	return nil
}

// lastAuditSQL reads a workspace's last record.
const lastAuditSQL = `SELECT seq, hash FROM audit_records WHERE workspace_id = ? ORDER BY seq DESC LIMIT 1`

// chainHead is a chain's last record's seq and hash: 0 and nil when empty.
type chainHead struct {
	seq  int64
	hash []byte
}

// lockChains takes each workspace's chain for the rest of g's transaction
// and returns their heads, in the order of workspaces.
//
// On PostgreSQL the locks and the reads join g's waiting statements in one
// script (pgScript), each read after its lock: in READ COMMITTED each
// statement takes its own snapshot, so the read sees what the lock's
// previous holder committed.
func (s *Store) lockChains(ctx context.Context, g *groupTx, workspaces []string) ([]chainHead, error) {
	heads := make([]chainHead, len(workspaces))
	if s.dialect != postgresDialect {
		// SQLite's write transaction holds the database's one write lock.
		for i, ws := range workspaces {
			h := &heads[i]
			err := g.QueryRowxContext(ctx, g.Rebind(lastAuditSQL), ws).Scan(&h.seq, &h.hash)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return nil, fmt.Errorf("sqlstore: read last audit record: %w", err)
			}
		}
		return heads, g.flush(ctx)
	}
	for i, ws := range workspaces {
		h := &heads[i]
		g.script.add(s.dialect.serializeTx, []any{"audit:" + ws}, drain)
		g.script.add(lastAuditSQL, []any{ws}, func(rows *sql.Rows) error {
			for rows.Next() {
				if err := rows.Scan(&h.seq, &h.hash); err != nil {
					return err
				}
			}
			return nil
		})
	}
	for _, add := range g.afterLocks {
		add()
	}
	g.afterLocks = nil
	return heads, g.flush(ctx)
}

// auditInsertRows is how many records one INSERT writes: 14 parameters
// each, well under both databases' limits.
const auditInsertRows = 64

func insertAudits(ctx context.Context, tx *sqlx.Tx, records []*core.AuditRecord) error {
	query := auditInsertSQL(len(records))
	args := make([]any, 0, 14*len(records))
	for _, r := range records {
		args = append(args, r.WorkspaceID, r.Seq, r.ID, r.Time, r.KeyID, r.Role, r.IP, r.RequestID, r.Action,
			r.Target, r.Outcome, jsonArg(r.Details), bytesArg(r.PrevHash), r.Hash)
	}
	_, err := tx.ExecContext(ctx, tx.Rebind(query), args...)
	switch {
	case isForeignKeyViolation(err):
		return core.Errorf(core.ENotFound, "no workspace with id %q", records[0].WorkspaceID)
	case isUniqueViolation(err):
		// An id, or (were the lock ever missing) a seq.
		return core.Errorf(core.EConflict, "an audit record conflicts with a stored one (ids and seqs are unique)")
	case err != nil:
		return fmt.Errorf("sqlstore: insert audit records: %w", err)
	}
	return nil
}

// auditInsertSQLs caches the INSERT text for each row count, so that the
// statement cache sees the same few texts.
var auditInsertSQLs [auditInsertRows + 1]string

func init() {
	const row = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
	for n := 1; n <= auditInsertRows; n++ {
		auditInsertSQLs[n] = `INSERT INTO audit_records (` + auditColumns + `) VALUES ` +
			strings.TrimSuffix(strings.Repeat(row+", ", n), ", ")
	}
}

func auditInsertSQL(n int) string { return auditInsertSQLs[n] }

// ListAudit lists the workspace's records in seq order, after the cursor.
// next is the cursor of the following page, "" after the last one.
// EInvalid for a malformed cursor.
func (s *Store) ListAudit(ctx context.Context, workspaceID string, p core.Page) (records []*core.AuditRecord, next string, err error) {
	after, err := decodeSeqCursor(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	limit := pageLimit(p.Limit)
	var rows []auditRow
	err = s.db.SelectContext(ctx, &rows, s.db.Rebind(`SELECT `+auditColumns+` FROM audit_records
		WHERE workspace_id = ? AND seq > ? ORDER BY seq LIMIT ?`), workspaceID, after, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("sqlstore: list audit records: %w", err)
	}
	if len(rows) > limit {
		rows = rows[:limit]
		next = encodeSeqCursor(rows[limit-1].Seq)
	}
	records = make([]*core.AuditRecord, len(rows))
	for i := range rows {
		records[i] = rows[i].record()
	}
	return records, next, nil
}

// AuditFrom returns up to limit records of the workspace in seq order,
// from seq on, seq itself included: what the periodic check of the audit
// log (core/audit.Checker) reads after the last record it verified.
func (s *Store) AuditFrom(ctx context.Context, workspaceID string, seq int64, limit int) ([]*core.AuditRecord, error) {
	var rows []auditRow
	err := s.db.SelectContext(ctx, &rows, s.db.Rebind(`SELECT `+auditColumns+` FROM audit_records
		WHERE workspace_id = ? AND seq >= ? ORDER BY seq LIMIT ?`), workspaceID, seq, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: read audit records: %w", err)
	}
	records := make([]*core.AuditRecord, len(rows))
	for i := range rows {
		records[i] = rows[i].record()
	}
	return records, nil
}

// ScanAudit calls fn for every record of the workspace in seq order, or
// of every workspace (by workspace id, then seq) when workspaceID is
// empty. Records are read one at a time, so a log of any size fits. The
// scan holds a connection until it ends: on an in-memory SQLite store,
// which has only one, fn must not use the store. The first error of fn
// stops the scan and is returned as it is.
func (s *Store) ScanAudit(ctx context.Context, workspaceID string, fn func(*core.AuditRecord) error) error {
	query, args := `SELECT `+auditColumns+` FROM audit_records ORDER BY workspace_id, seq`, []any(nil)
	if workspaceID != "" {
		query, args = `SELECT `+auditColumns+` FROM audit_records WHERE workspace_id = ? ORDER BY seq`, []any{workspaceID}
	}
	rows, err := s.db.QueryxContext(ctx, s.db.Rebind(query), args...)
	if err != nil {
		return fmt.Errorf("sqlstore: scan audit records: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r auditRow
		if err := rows.StructScan(&r); err != nil {
			return fmt.Errorf("sqlstore: scan audit records: %w", err)
		}
		if err := fn(r.record()); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlstore: scan audit records: %w", err)
	}
	return nil
}
