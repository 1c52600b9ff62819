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

var _ core.ConnectionStore = (*Store)(nil)

const connectionColumns = `id, workspace_id, name, connector, version_constraint, version, runtime,
	config, created_at, updated_at, created_by, package`

// connectionRow is a connections row. Config is read as bytes: SQLite hands
// TEXT back as a string, which database/sql will not put in a
// json.RawMessage.
type connectionRow struct {
	ID                string         `db:"id"`
	WorkspaceID       string         `db:"workspace_id"`
	Name              string         `db:"name"`
	Connector         string         `db:"connector"`
	Package           sql.NullString `db:"package"`
	VersionConstraint string         `db:"version_constraint"`
	Version           string         `db:"version"`
	Runtime           string         `db:"runtime"`
	Config            []byte         `db:"config"`
	CreatedAt         time.Time      `db:"created_at"`
	UpdatedAt         time.Time      `db:"updated_at"`
	CreatedBy         string         `db:"created_by"`
}

func (r *connectionRow) connection() *core.Connection {
	return &core.Connection{
		ID:                r.ID,
		WorkspaceID:       r.WorkspaceID,
		Name:              r.Name,
		Connector:         r.Connector,
		Package:           r.Package.String,
		VersionConstraint: r.VersionConstraint,
		Version:           r.Version,
		Runtime:           r.Runtime,
		Config:            r.Config,
		CreatedAt:         r.CreatedAt.UTC(),
		UpdatedAt:         r.UpdatedAt.UTC(),
		CreatedBy:         r.CreatedBy,
	}
}

// CreateConnection stores c and its secrets in one transaction. An empty
// c.ID gets a new id, zero times become now, a nil Config becomes {}; c is
// left as stored. EInvalid for a bad connection or secret, ENotFound for an
// unknown workspace, EConflict when the workspace has a connection of that
// name (or id).
func (s *Store) CreateConnection(ctx context.Context, c *core.Connection, secrets []core.SealedSecret, audit *core.AuditRecord) error {
	if c == nil {
		return core.Errorf(core.EInvalid, "missing connection")
	}
	if c.ID == "" {
		c.ID = core.NewID()
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = time.Now()
	}
	if c.UpdatedAt.IsZero() {
		c.UpdatedAt = c.CreatedAt
	}
	if err := prepareConnection(c); err != nil {
		return err
	}
	if err := checkSecrets(secrets, false); err != nil {
		return err
	}
	if err := prepareAuditOf(audit, c.WorkspaceID); err != nil {
		return err
	}
	return s.inGroupTx(ctx, func(ctx context.Context, g *groupTx) error {
		if audit != nil {
			g.appendAudit(audit)
		}
		return insertConnection(ctx, g.Tx, c, secrets)
	})
}

// InsertConnection stores c, prepared (a new id, times set), and its
// secrets in tx, a transaction of InAuditedTx's: a change that makes
// connections with rows of its own (a template's installation) commits
// them together. Errors as CreateConnection's.
func (s *Store) InsertConnection(ctx context.Context, tx *sqlx.Tx, c *core.Connection, secrets []core.SealedSecret) error {
	if err := prepareConnection(c); err != nil {
		return err
	}
	if err := checkSecrets(secrets, false); err != nil {
		return err
	}
	return insertConnection(ctx, tx, c, secrets)
}

func insertConnection(ctx context.Context, tx *sqlx.Tx, c *core.Connection, secrets []core.SealedSecret) error {
	_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO connections (`+connectionColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		c.ID, c.WorkspaceID, c.Name, c.Connector, c.VersionConstraint, c.Version, c.Runtime,
		string(c.Config), c.CreatedAt, c.UpdatedAt, c.CreatedBy, stringArg(c.Package))
	switch {
	case isUniqueViolation(err):
		return core.Errorf(core.EConflict, "connection %q already exists", c.Name)
	case isForeignKeyViolation(err):
		return core.Errorf(core.ENotFound, "no workspace with id %q", c.WorkspaceID)
	case err != nil:
		return fmt.Errorf("sqlstore: insert connection %q: %w", c.Name, err)
	}
	return putSecrets(ctx, tx, c.WorkspaceID, c.ID, secrets)
}

// prepareConnection checks what the store relies on and normalizes c to
// its stored form.
func prepareConnection(c *core.Connection) error {
	// ListConnections pages by id and cursors carry ids.
	if !core.ValidID(c.ID) {
		return core.Errorf(core.EInvalid, "malformed connection id %q", c.ID)
	}
	if err := core.ValidateConnectionName(c.Name); err != nil {
		return err
	}
	if c.Connector == "" || c.Version == "" {
		return core.Errorf(core.EInvalid, "connection %q has no connector or version", c.Name)
	}
	if len(c.Config) == 0 {
		c.Config = []byte("{}")
	}
	if err := checkJSON("connection config", c.Config); err != nil {
		return err
	}
	c.CreatedAt = dbTime(c.CreatedAt)
	c.UpdatedAt = dbTime(c.UpdatedAt)
	return nil
}

// checkSecrets refuses unnamed or repeated fields, and nil ciphertexts
// unless they mean "delete".
func checkSecrets(secrets []core.SealedSecret, nilDeletes bool) error {
	seen := make(map[string]bool, len(secrets))
	for _, sec := range secrets {
		if sec.Field == "" {
			return core.Errorf(core.EInvalid, "secret without a field name")
		}
		if seen[sec.Field] {
			return core.Errorf(core.EInvalid, "secret field %q given twice", sec.Field)
		}
		seen[sec.Field] = true
		if sec.Ciphertext == nil && !nilDeletes {
			return core.Errorf(core.EInvalid, "secret field %q has no ciphertext", sec.Field)
		}
	}
	return nil
}

// putSecrets sets each secret of a connection, deleting those with a nil
// ciphertext. The caller has checked that the connection is the
// workspace's.
func putSecrets(ctx context.Context, tx *sqlx.Tx, workspaceID, connectionID string, secrets []core.SealedSecret) error {
	for _, sec := range secrets {
		var err error
		if sec.Ciphertext == nil {
			_, err = tx.ExecContext(ctx, tx.Rebind(`DELETE FROM connection_secrets
				WHERE workspace_id = ? AND connection_id = ? AND field = ?`), workspaceID, connectionID, sec.Field)
		} else {
			_, err = tx.ExecContext(ctx, tx.Rebind(`INSERT INTO connection_secrets (workspace_id, connection_id, field, ciphertext)
				VALUES (?, ?, ?, ?)
				ON CONFLICT (connection_id, field) DO UPDATE SET ciphertext = excluded.ciphertext`),
				workspaceID, connectionID, sec.Field, sec.Ciphertext)
		}
		if err != nil {
			return fmt.Errorf("sqlstore: set secret %q of connection %s: %w", sec.Field, connectionID, err)
		}
	}
	return nil
}

// Connection returns the workspace's connection with that id, or ENotFound.
func (s *Store) Connection(ctx context.Context, workspaceID, id string) (*core.Connection, error) {
	return s.connectionWhere(ctx, workspaceID, "id", id)
}

// ConnectionByName returns the workspace's connection of that name, or
// ENotFound.
func (s *Store) ConnectionByName(ctx context.Context, workspaceID, name string) (*core.Connection, error) {
	return s.connectionWhere(ctx, workspaceID, "name", name)
}

// connectionWhere looks a connection up by a column unique in a workspace;
// column is one of the two constants above, never caller input.
func (s *Store) connectionWhere(ctx context.Context, workspaceID, column, value string) (*core.Connection, error) {
	var r connectionRow
	err := s.db.GetContext(ctx, &r, s.db.Rebind(`SELECT `+connectionColumns+` FROM connections
		WHERE workspace_id = ? AND `+column+` = ?`), workspaceID, value)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, core.Errorf(core.ENotFound, "no connection with %s %q", column, value)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: get connection by %s: %w", column, err)
	}
	return r.connection(), nil
}

// ListConnections lists the workspace's connections in id (creation) order.
// next is the cursor of the following page, "" after the last one.
// EInvalid for a malformed cursor.
func (s *Store) ListConnections(ctx context.Context, workspaceID string, p core.Page) (conns []*core.Connection, next string, err error) {
	after, err := decodeCursor(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	limit := pageLimit(p.Limit)
	var rows []connectionRow
	err = s.db.SelectContext(ctx, &rows, s.db.Rebind(`SELECT `+connectionColumns+` FROM connections
		WHERE workspace_id = ? AND id > ? ORDER BY id LIMIT ?`), workspaceID, after, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("sqlstore: list connections: %w", err)
	}
	if len(rows) > limit {
		rows = rows[:limit]
		next = encodeCursor(rows[limit-1].ID)
	}
	conns = make([]*core.Connection, len(rows))
	for i := range rows {
		conns[i] = rows[i].connection()
	}
	return conns, next, nil
}

// ConnectionsOf lists every connection of the workspace that uses the
// connector, in id order.
func (s *Store) ConnectionsOf(ctx context.Context, workspaceID, connector string) ([]*core.Connection, error) {
	var rows []connectionRow
	err := s.db.SelectContext(ctx, &rows, s.db.Rebind(`SELECT `+connectionColumns+` FROM connections
		WHERE workspace_id = ? AND connector = ? ORDER BY id`), workspaceID, connector)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: list connections of %q: %w", connector, err)
	}
	conns := make([]*core.Connection, len(rows))
	for i := range rows {
		conns[i] = rows[i].connection()
	}
	return conns, nil
}

// UpdateConnection replaces the name, version constraint, version, runtime
// and config of the workspace's connection c.ID, and sets each secret given
// (a nil Ciphertext deletes that field), in one transaction. A zero
// c.UpdatedAt becomes now. The connector, creation time and creator never
// change. ENotFound when the workspace has no such connection, EConflict
// when another of its connections has the new name.
func (s *Store) UpdateConnection(ctx context.Context, c *core.Connection, secrets []core.SealedSecret, audit *core.AuditRecord) error {
	if c == nil {
		return core.Errorf(core.EInvalid, "missing connection")
	}
	if c.UpdatedAt.IsZero() {
		c.UpdatedAt = time.Now()
	}
	if err := prepareConnection(c); err != nil {
		return err
	}
	if err := checkSecrets(secrets, true); err != nil {
		return err
	}
	if err := prepareAuditOf(audit, c.WorkspaceID); err != nil {
		return err
	}
	return s.inGroupTx(ctx, func(ctx context.Context, g *groupTx) error {
		tx := g.Tx
		if audit != nil {
			g.appendAudit(audit)
		}
		res, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE connections
			SET name = ?, version_constraint = ?, version = ?, runtime = ?, config = ?, updated_at = ?
			WHERE workspace_id = ? AND id = ?`),
			c.Name, c.VersionConstraint, c.Version, c.Runtime, string(c.Config), c.UpdatedAt, c.WorkspaceID, c.ID)
		if isUniqueViolation(err) {
			return core.Errorf(core.EConflict, "connection %q already exists", c.Name)
		}
		if err != nil {
			return fmt.Errorf("sqlstore: update connection %s: %w", c.ID, err)
		}
		// Checked before the secrets are touched: another workspace's
		// connection is not found, whatever its secrets.
		if err := requireOneRow(res, "no connection with id %q", c.ID); err != nil {
			return err
		}
		return putSecrets(ctx, tx, c.WorkspaceID, c.ID, secrets)
	})
}

// DeleteConnection deletes the workspace's connection and, by cascade, its
// secrets; ENotFound when there is no such connection. Its runs stay.
func (s *Store) DeleteConnection(ctx context.Context, workspaceID, id string, audit *core.AuditRecord) error {
	if err := prepareAuditOf(audit, workspaceID); err != nil {
		return err
	}
	return s.inGroupTx(ctx, func(ctx context.Context, g *groupTx) error {
		res, err := g.ExecContext(ctx, g.Rebind(`DELETE FROM connections WHERE workspace_id = ? AND id = ?`), workspaceID, id)
		if err != nil {
			return fmt.Errorf("sqlstore: delete connection %s: %w", id, err)
		}
		if audit != nil {
			g.appendAudit(audit)
		}
		return requireOneRow(res, "no connection with id %q", id)
	})
}

// Secrets returns the sealed secrets of the workspace's connection, by
// field name; ENotFound when there is no such connection.
func (s *Store) Secrets(ctx context.Context, workspaceID, connectionID string) ([]core.SealedSecret, error) {
	// One query, so that "no such connection" and "no secrets" are told
	// apart without a transaction: the outer join yields one row of NULLs
	// for a connection without secrets and no row for a missing one.
	var rows []struct {
		Field      sql.NullString `db:"field"`
		Ciphertext []byte         `db:"ciphertext"`
	}
	err := s.db.SelectContext(ctx, &rows, s.db.Rebind(`SELECT s.field, s.ciphertext
		FROM connections c LEFT JOIN connection_secrets s ON s.connection_id = c.id AND s.workspace_id = c.workspace_id
		WHERE c.workspace_id = ? AND c.id = ?`), workspaceID, connectionID)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: secrets of connection %s: %w", connectionID, err)
	}
	if len(rows) == 0 {
		return nil, core.Errorf(core.ENotFound, "no connection with id %q", connectionID)
	}
	secrets := []core.SealedSecret{}
	for _, r := range rows {
		if r.Field.Valid {
			secrets = append(secrets, core.SealedSecret{Field: r.Field.String, Ciphertext: r.Ciphertext})
		}
	}
	// Sorted here rather than in SQL: collations differ between the two
	// databases, byte order does not.
	slices.SortFunc(secrets, func(a, b core.SealedSecret) int { return strings.Compare(a.Field, b.Field) })
	return secrets, nil
}
