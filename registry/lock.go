package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/sqlstore"
)

// A workspace's lock changes only by an admin's hand: an upgrade shows
// what the new version may do that the locked one may not (its
// capability diff) and takes effect only with an accept of exactly that
// diff; a rollback restores the entry before the last upgrade in one
// step. Connections follow their connector's lock entry, in the same
// transaction; runs already under way finish on the version they started
// on.

const installColumns = `name, package, version, package_sha256, artifacts, signer_key_id, capabilities, previous, installed_at, updated_at`

type installRow struct {
	Name         string    `db:"name"`
	Package      string    `db:"package"`
	Version      string    `db:"version"`
	SHA256       string    `db:"package_sha256"`
	Artifacts    string    `db:"artifacts"`
	Signer       string    `db:"signer_key_id"`
	Capabilities string    `db:"capabilities"`
	Previous     *string   `db:"previous"`
	InstalledAt  time.Time `db:"installed_at"`
	UpdatedAt    time.Time `db:"updated_at"`
}

func (r *installRow) installation() (*Installation, error) {
	in := &Installation{Name: r.Name, Package: r.Package, Version: r.Version, SHA256: r.SHA256, Signer: r.Signer,
		InstalledAt: r.InstalledAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(), Capabilities: &Capabilities{}}
	if err := json.Unmarshal([]byte(r.Artifacts), &in.Artifacts); err != nil {
		return nil, fmt.Errorf("registry: stored lock of %s: %w", r.Name, err)
	}
	if err := json.Unmarshal([]byte(r.Capabilities), in.Capabilities); err != nil {
		return nil, fmt.Errorf("registry: stored lock of %s: %w", r.Name, err)
	}
	if r.Previous != nil {
		in.Previous = &Installation{}
		if err := json.Unmarshal([]byte(*r.Previous), in.Previous); err != nil {
			return nil, fmt.Errorf("registry: stored lock of %s: %w", r.Name, err)
		}
	}
	return in, nil
}

// Lock returns a workspace's lock, by name, with the yanks since. With an
// upstream registry, its index is read again first if the one kept is
// older than upstreamIndexTTL, for its yanks; a registry that does not
// answer soon leaves the lock as the server knows it.
func (s *Service) Lock(ctx context.Context, workspaceID string) ([]*Installation, error) {
	if s.cfg.Upstream != nil {
		rctx, cancel := context.WithTimeout(ctx, lockRefreshTimeout)
		s.upstreamIndex(rctx, false)
		cancel()
	}
	var rows []installRow
	if err := s.cfg.DB.DB().SelectContext(ctx, &rows, s.rebind(`SELECT `+installColumns+` FROM registry_installs
		WHERE workspace_id = ? ORDER BY name`), workspaceID); err != nil {
		return nil, fmt.Errorf("registry: lock: %w", err)
	}
	yanked, err := s.Installed(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	out := make([]*Installation, len(rows))
	for i := range rows {
		if out[i], err = rows[i].installation(); err != nil {
			return nil, err
		}
		for _, y := range yanked {
			if y.Name == out[i].Name && y.Yanked != "" {
				out[i].Yanked = &Yank{Reason: y.Yanked}
			}
		}
	}
	return out, nil
}

func (s *Service) installation(ctx context.Context, db sqlx.ExtContext, workspaceID, name string) (*Installation, error) {
	var rows []installRow
	if err := sqlx.SelectContext(ctx, db, &rows, db.Rebind(`SELECT `+installColumns+` FROM registry_installs
		WHERE workspace_id = ? AND name = ?`), workspaceID, name); err != nil {
		return nil, fmt.Errorf("registry: lock of %s: %w", name, err)
	}
	if len(rows) == 0 {
		return nil, core.Errorf(core.ENotFound, "no connector %q is installed in this workspace", name)
	}
	return rows[0].installation()
}

// Upgrade is a proposed change of a lock entry: what the new version may
// do that the locked one may not, and the token that accepts exactly
// that.
type Upgrade struct {
	Name   string          `json:"name"`
	From   *Installation   `json:"from"`
	To     *Installation   `json:"to"`
	Diff   *CapabilityDiff `json:"diff"`
	Accept string          `json:"accept"`
}

// PlanUpgrade resolves a range (empty: the newest release) for an
// installed connector and describes the upgrade to it, changing nothing.
func (s *Service) PlanUpgrade(ctx context.Context, workspaceID, name, constraint string) (*Upgrade, error) {
	from, err := s.installation(ctx, s.cfg.DB.DB(), workspaceID, name)
	if err != nil {
		return nil, err
	}
	v, err := s.pick(ctx, from.Package, constraint)
	if err != nil {
		return nil, err
	}
	to, err := s.installable(ctx, from.Package, v.Version)
	if err != nil {
		return nil, err
	}
	to.Name = name
	diff, err := s.diff(ctx, from, to)
	if err != nil {
		return nil, err
	}
	return &Upgrade{Name: name, From: from, To: to, Diff: diff, Accept: diff.digest()}, nil
}

// ApplyUpgrade upgrades (or downgrades) an installed connector to the
// version of constraint, if accept is the token of its plan (PlanUpgrade)
// as it is now: EConfirmationRequired with the plan's token otherwise.
// The lock's entry before becomes its Previous; the workspace's
// connections of the connector move to the new version.
func (s *Service) ApplyUpgrade(ctx context.Context, c *core.Caller, name, constraint, accept string) (*Installation, error) {
	plan, err := s.PlanUpgrade(ctx, c.WorkspaceID, name, constraint)
	if err != nil {
		return nil, err
	}
	if plan.From.Version == plan.To.Version && plan.From.SHA256 == plan.To.SHA256 {
		return plan.From, nil
	}
	if accept != plan.Accept {
		return nil, core.Errorf(core.EConfirmationRequired,
			"upgrading %s from %s to %s needs an accept of its capability diff: plan it (POST /v1/connectors/%s/upgrade/plan) and pass the plan's accept token with the same version",
			name, plan.From.Version, plan.To.Version, name)
	}
	return s.moveLock(ctx, c, plan.From, plan.To, "connector.upgrade")
}

// Rollback restores the lock entry that an installed connector's last
// upgrade replaced.
func (s *Service) Rollback(ctx context.Context, c *core.Caller, name string) (*Installation, error) {
	from, err := s.installation(ctx, s.cfg.DB.DB(), c.WorkspaceID, name)
	if err != nil {
		return nil, err
	}
	if from.Previous == nil {
		return nil, core.Errorf(core.EConflict, "%s has not been upgraded since it was installed: there is nothing to roll back to", name)
	}
	to := *from.Previous
	to.Previous, to.Name = nil, name
	// The version rolled back to is checked again, as an install: its
	// signer's key may have been revoked since.
	if _, err := s.installable(ctx, to.Package, to.Version); err != nil {
		return nil, err
	}
	return s.moveLock(ctx, c, from, &to, "connector.rollback")
}

// moveLock replaces a lock entry, keeping the one it replaces as its
// Previous, and moves the workspace's connections of the connector, all
// in one transaction with the audit record. A connection that runs a form
// the new version does not ship stops it.
func (s *Service) moveLock(ctx context.Context, c *core.Caller, from, to *Installation, action string) (*Installation, error) {
	now := s.now()
	prev := *from
	prev.Previous, prev.Yanked = nil, nil
	prevJSON, _ := json.Marshal(prev)
	artifacts, _ := json.Marshal(to.Artifacts)
	caps, _ := json.Marshal(to.Capabilities)
	err := s.cfg.DB.InAuditedTx(ctx, func(ctx context.Context, tx *sqlx.Tx, audit func(*core.AuditRecord) error) error {
		var forms []string
		if err := tx.SelectContext(ctx, &forms, tx.Rebind(`SELECT DISTINCT runtime FROM connections WHERE workspace_id = ? AND package = ?`),
			c.WorkspaceID, from.Package); err != nil {
			return fmt.Errorf("registry: connections of %s: %w", from.Name, err)
		}
		for _, form := range forms {
			if !to.Capabilities.ships(form) {
				return core.Errorf(core.EConflict, "%s@%s does not ship the %s form, which connections of %s run: move them to another form first",
					to.Package, to.Version, form, from.Name)
			}
		}
		res, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE registry_installs SET version = ?, package_sha256 = ?, artifacts = ?,
			signer_key_id = ?, capabilities = ?, previous = ?, updated_at = ?
			WHERE workspace_id = ? AND name = ? AND version = ? AND package_sha256 = ?`),
			to.Version, to.SHA256, string(artifacts), to.Signer, string(caps), string(prevJSON), now,
			c.WorkspaceID, from.Name, from.Version, from.SHA256)
		if err != nil {
			return fmt.Errorf("registry: move lock of %s: %w", from.Name, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return core.Errorf(core.EConflict, "the lock of %s changed meanwhile: plan again", from.Name)
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE connections SET version = ?, version_constraint = '', updated_at = ?
			WHERE workspace_id = ? AND package = ?`), to.Version, now, c.WorkspaceID, from.Package); err != nil {
			return fmt.Errorf("registry: move connections of %s: %w", from.Name, err)
		}
		return audit(c.AuditRecord(action, "connector:"+from.Name, "success", details(map[string]any{
			"package": to.Package, "from": from.Version, "to": to.Version, "sha256": to.SHA256, "signer": to.Signer})))
	})
	if err != nil {
		return nil, err
	}
	return s.installation(ctx, s.cfg.DB.DB(), c.WorkspaceID, from.Name)
}

// Uninstall removes a connector from the workspace's lock, once no
// connection uses it.
func (s *Service) Uninstall(ctx context.Context, c *core.Caller, name string) error {
	return s.cfg.DB.InAuditedTx(ctx, func(ctx context.Context, tx *sqlx.Tx, audit func(*core.AuditRecord) error) error {
		in, err := s.installation(ctx, tx, c.WorkspaceID, name)
		if err != nil {
			return err
		}
		var n int
		if err := tx.GetContext(ctx, &n, tx.Rebind(`SELECT COUNT(*) FROM connections WHERE workspace_id = ? AND package = ?`),
			c.WorkspaceID, in.Package); err != nil {
			return fmt.Errorf("registry: connections of %s: %w", name, err)
		}
		if n > 0 {
			return core.Errorf(core.EConflict, "%d connection(s) use %s: delete them first", n, name)
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM registry_installs WHERE workspace_id = ? AND name = ?`), c.WorkspaceID, name); err != nil {
			return fmt.Errorf("registry: uninstall %s: %w", name, err)
		}
		if err := sqlstore.SetHoldings(ctx, tx, c.WorkspaceID, sqlstore.HolderConnector(name), nil, s.now()); err != nil {
			return err
		}
		return audit(c.AuditRecord("connector.uninstall", "connector:"+name, "success",
			details(map[string]any{"package": in.Package, "version": in.Version})))
	})
}

// ships reports whether the capabilities' version ships a form.
func (c *Capabilities) ships(form string) bool {
	for _, r := range c.Runtimes {
		if r == form {
			return true
		}
	}
	return false
}

func digestJSON(v any) string {
	b, _ := json.Marshal(v)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
