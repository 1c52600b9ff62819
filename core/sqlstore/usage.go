package sqlstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/relayhq/relay/core"
)

// Usage. A run that succeeds is counted in usage_daily (migration 0013)
// in the transaction that records its end, so the counts are exactly the
// succeeded runs: a finish is written once (its UPDATE matches only an
// unfinished run) and rolled back with everything else when its group
// fails. Billing prices the counts.
//
// A group adds its counts after the audit chains' locks: every group takes
// its locks in one order (chains by workspace, then usage rows by key), so
// two groups never wait on each other's. On PostgreSQL it also takes the
// billing lock shared first, which closing a period takes exclusively
// (CloseUsagePeriod): a period is closed only between groups, and a group
// that follows the close sees it closed and counts its runs in the next
// open period.

// usageKey is one row of usage_daily, but for its period and count.
type usageKey struct {
	workspace, day, pkg, template, installation, action, connectorAction string
}

func (k usageKey) compare(o usageKey) int {
	return cmp.Or(strings.Compare(k.workspace, o.workspace), strings.Compare(k.day, o.day),
		strings.Compare(k.pkg, o.pkg), strings.Compare(k.template, o.template),
		strings.Compare(k.installation, o.installation), strings.Compare(k.action, o.action),
		strings.Compare(k.connectorAction, o.connectorAction))
}

type usageCount struct {
	usageKey
	runs int64
}

// usageOf counts finishes' succeeded runs by key, in key order.
func usageOf(finishes []*finishWrite) []usageCount {
	var out []usageCount
	for _, w := range finishes {
		r := w.run
		if r.Status != core.RunSucceeded {
			continue
		}
		k := usageKey{
			workspace: r.WorkspaceID,
			day:       r.FinishedAt.UTC().Format(time.DateOnly),
			pkg:       r.Package,
			action:    r.Action,
			// The name within the connector: a package prices its
			// actions by it.
			connectorAction: r.ConnectorAction(),
		}
		if r.Preset != nil {
			k.template, k.installation = r.Preset.Template, r.Preset.Installation
		}
		// Groups are small and most of their runs share a few keys.
		i := slices.IndexFunc(out, func(c usageCount) bool { return c.usageKey == k })
		if i < 0 {
			out = append(out, usageCount{usageKey: k})
			i = len(out) - 1
		}
		out[i].runs++
	}
	slices.SortFunc(out, func(a, b usageCount) int { return a.compare(b.usageKey) })
	return out
}

// billingLock names the lock that counting usage takes shared and closing
// a period exclusively.
const billingLock = "billing:periods"

// sqliteUsageSQL adds to one row; its period is the run's month or the
// first open one, whichever is later.
const sqliteUsageSQL = `INSERT INTO usage_daily (workspace_id, period, day, package, template, installation, action,
		connector_action, runs)
	VALUES (?, max(?, (SELECT open_from FROM billing_state WHERE id = 1)), ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (workspace_id, period, day, package, template, installation, action, connector_action)
	DO UPDATE SET runs = usage_daily.runs + excluded.runs`

// pgUsageSQL adds to the rows of arrays of workspace, month, day,
// package, template, installation, action, connector action and count, in
// their order.
const pgUsageSQL = `INSERT INTO usage_daily (workspace_id, period, day, package, template, installation, action,
		connector_action, runs)
	SELECT i.workspace_id, greatest(i.period, s.open_from), i.day, i.package, i.template, i.installation, i.action,
		i.connector_action, i.runs
	FROM unnest(?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::bigint[])
		WITH ORDINALITY AS i(workspace_id, period, day, package, template, installation, action, connector_action, runs, n),
		billing_state s
	WHERE s.id = 1
	ORDER BY i.n
	ON CONFLICT (workspace_id, period, day, package, template, installation, action, connector_action)
	DO UPDATE SET runs = usage_daily.runs + excluded.runs
	RETURNING 1`

// countUsage adds the succeeded runs of finishes to usage_daily inside g:
// at once on SQLite; on PostgreSQL, queued to be sent after the audit
// chains' locks (lockChains).
func (s *Store) countUsage(ctx context.Context, g *groupTx, finishes []*finishWrite) error {
	counts := usageOf(finishes)
	if len(counts) == 0 {
		return nil
	}
	if s.dialect != postgresDialect {
		for _, c := range counts {
			_, err := g.ExecContext(ctx, g.Rebind(sqliteUsageSQL), c.workspace, c.day[:7], c.day, c.pkg, c.template,
				c.installation, c.action, c.connectorAction, c.runs)
			if err != nil {
				return fmt.Errorf("sqlstore: count usage: %w", err)
			}
		}
		return nil
	}
	var cols [9]pgArray
	for _, c := range counts {
		for i, v := range []string{c.workspace, c.day[:7], c.day, c.pkg, c.template, c.installation, c.action, c.connectorAction} {
			cols[i].text(v)
		}
		cols[8].int(c.runs)
	}
	g.afterLocks = append(g.afterLocks, func() {
		g.script.add(s.dialect.serializeShared, []any{billingLock}, drain)
		g.script.add(pgUsageSQL, arrayArgs(cols[:]), drain)
	})
	return nil
}

// CloseUsagePeriod closes the billing month period (YYYY-MM) and every
// month before it: usage counted after it returns goes to a later month.
// When it returns, every group that counted usage into period has
// committed, so period's counts are final. Closing a closed month changes
// nothing; it reports whether this call closed it.
func (s *Store) CloseUsagePeriod(ctx context.Context, period string) (bool, error) {
	month, err := time.Parse("2006-01", period)
	if err != nil {
		return false, core.Errorf(core.EInvalid, "period %q: want a month, YYYY-MM", period)
	}
	next := month.AddDate(0, 1, 0).Format("2006-01")
	var closed bool
	advance := func(tx *sqlx.Tx) error {
		n, err := execAffected(ctx, tx, `UPDATE billing_state SET open_from = ? WHERE id = 1 AND open_from < ?`, next, next)
		closed = n == 1
		return err
	}
	if s.dialect != postgresDialect {
		// SQLite's groups are written one at a time: joining one is
		// enough, and a transaction of its own would wait for the
		// write lock behind every group of a busy server.
		err = s.inGroupTx(ctx, func(ctx context.Context, g *groupTx) error { return advance(g.Tx) })
		return closed, err
	}
	// Not in a group: a group takes the audit chains' locks before the
	// billing lock, and this holds nothing else.
	err = s.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := s.dialect.serialize(ctx, tx, billingLock); err != nil {
			return fmt.Errorf("sqlstore: close period: %w", err)
		}
		return advance(tx)
	})
	return closed, err
}

// OpenUsagePeriod is the first billing month not closed ("0000-01" when
// none has been).
func (s *Store) OpenUsagePeriod(ctx context.Context) (string, error) {
	var p string
	if err := s.db.GetContext(ctx, &p, `SELECT open_from FROM billing_state WHERE id = 1`); err != nil {
		return "", fmt.Errorf("sqlstore: read billing state: %w", err)
	}
	return p, nil
}
