package sqlstore

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jmoiron/sqlx"
)

// Holdings (migration 0017): when a workspace had a listing, and through
// what. Installing, upgrading and uninstalling write them in their own
// transactions, so they are exactly what was installed; a monthly price
// plan bills by them.

// HolderInstallation and HolderConnector name what holds a listing: a
// template's installation, or a connector installed from the registry.
func HolderInstallation(id string) string { return "installation:" + id }
func HolderConnector(name string) string  { return "connector:" + name }

// SetHoldings makes what holder holds in workspaceID, from at, exactly
// listings: it ends the holdings of other listings and starts those of
// listings it did not hold. An empty listings ends them all.
func SetHoldings(ctx context.Context, tx *sqlx.Tx, workspaceID, holder string, listings []string, at time.Time) error {
	var held []string
	if err := tx.SelectContext(ctx, &held, tx.Rebind(`SELECT listing FROM billing_holdings
		WHERE workspace_id = ? AND holder = ? AND ended_at IS NULL`), workspaceID, holder); err != nil {
		return fmt.Errorf("sqlstore: holdings of %s: %w", holder, err)
	}
	at = at.UTC()
	for _, l := range held {
		if slices.Contains(listings, l) {
			continue
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE billing_holdings SET ended_at = ?
			WHERE workspace_id = ? AND holder = ? AND listing = ? AND ended_at IS NULL`), at, workspaceID, holder, l); err != nil {
			return fmt.Errorf("sqlstore: end holding of %s: %w", l, err)
		}
	}
	for _, l := range listings {
		if slices.Contains(held, l) {
			continue
		}
		held = append(held, l) // a listing named twice is held once
		if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO billing_holdings (workspace_id, listing, holder, started_at)
			VALUES (?, ?, ?, ?)`), workspaceID, l, holder, at); err != nil {
			return fmt.Errorf("sqlstore: start holding of %s: %w", l, err)
		}
	}
	return nil
}

// HeldDays counts, for each workspace that held one of listings in
// [from, to), the distinct UTC days in [from, to) on which it held each
// (at any moment, through any holder). from and to are midnights UTC.
func HeldDays(ctx context.Context, tx *sqlx.Tx, listings []string, from, to time.Time) (map[string]map[string]int, error) {
	out := map[string]map[string]int{}
	if len(listings) == 0 {
		return out, nil
	}
	query, args, err := sqlx.In(`SELECT workspace_id, listing, started_at, ended_at FROM billing_holdings
		WHERE listing IN (?) AND started_at < ? AND (ended_at IS NULL OR ended_at > ?)`, listings, to.UTC(), from.UTC())
	if err != nil {
		return nil, err
	}
	var rows []struct {
		Workspace string     `db:"workspace_id"`
		Listing   string     `db:"listing"`
		Started   time.Time  `db:"started_at"`
		Ended     *time.Time `db:"ended_at"`
	}
	if err := tx.SelectContext(ctx, &rows, tx.Rebind(query), args...); err != nil {
		return nil, fmt.Errorf("sqlstore: holdings: %w", err)
	}
	days := map[[2]string]map[string]bool{}
	for _, r := range rows {
		k := [2]string{r.Workspace, r.Listing}
		if days[k] == nil {
			days[k] = map[string]bool{}
		}
		end := to
		if r.Ended != nil && r.Ended.Before(to) {
			end = *r.Ended
		}
		// The days from the start's to the one holding the end's last
		// instant, within [from, to).
		d := r.Started.UTC().Truncate(24 * time.Hour)
		if d.Before(from) {
			d = from
		}
		for ; d.Before(end); d = d.AddDate(0, 0, 1) {
			days[k][d.Format(time.DateOnly)] = true
		}
	}
	for k, set := range days {
		if len(set) == 0 {
			continue
		}
		if out[k[0]] == nil {
			out[k[0]] = map[string]int{}
		}
		out[k[0]][k[1]] = len(set)
	}
	return out, nil
}
