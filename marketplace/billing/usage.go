package billing

import (
	"context"
	"fmt"
	"time"

	"github.com/relayhq/relay/core"
)

// UsageGroup is the succeeded runs of one day, installation or action.
type UsageGroup struct {
	Day          string `json:"day,omitempty"`
	Installation string `json:"installation,omitempty"`
	Action       string `json:"action,omitempty"`
	Runs         int64  `json:"runs"`
	// Spend is what the runs added to their months' spend, by currency,
	// in minor units (by day and by installation; see spendBy).
	Spend map[string]int64 `json:"spend,omitempty"`
}

// maxUsageDays bounds a usage query's range.
const maxUsageDays = 366

// UsageQuery is what GET /v1/usage asks for: days from From to To (UTC,
// both included), grouped by GroupBy: "day", "installation" or "action".
type UsageQuery struct {
	From, To string
	GroupBy  string
}

// Usage sums the workspace's succeeded runs that finished in q's days, by
// q's group, in the group's order. Empty From and To mean this month so
// far; an empty GroupBy is "day". A run of a connector's own action has
// installation "".
func (s *Service) Usage(ctx context.Context, workspaceID string, q UsageQuery) ([]UsageGroup, UsageQuery, error) {
	today := s.cfg.Now().UTC()
	if q.From == "" {
		q.From = today.Format("2006-01") + "-01"
	}
	if q.To == "" {
		q.To = today.Format(time.DateOnly)
	}
	from, err1 := time.Parse(time.DateOnly, q.From)
	to, err2 := time.Parse(time.DateOnly, q.To)
	switch {
	case err1 != nil:
		return nil, q, core.Errorf(core.EInvalid, "from %q: want a day, YYYY-MM-DD", q.From)
	case err2 != nil:
		return nil, q, core.Errorf(core.EInvalid, "to %q: want a day, YYYY-MM-DD", q.To)
	case to.Before(from):
		return nil, q, core.Errorf(core.EInvalid, "to %s is before from %s", q.To, q.From)
	case to.Sub(from) >= maxUsageDays*24*time.Hour:
		return nil, q, core.Errorf(core.EInvalid, "a usage query spans at most %d days", maxUsageDays)
	}
	var column string
	switch q.GroupBy {
	case "", "day":
		q.GroupBy, column = "day", "day"
	case "installation":
		column = "installation"
	case "action":
		column = "action"
	default:
		return nil, q, core.Errorf(core.EInvalid, "group_by %q: want day, installation or action", q.GroupBy)
	}
	db := s.cfg.DB.DB()
	var rows []struct {
		Key  string `db:"k"`
		Runs int64  `db:"runs"`
	}
	err := db.SelectContext(ctx, &rows, db.Rebind(`SELECT `+column+` AS k, SUM(runs) AS runs FROM usage_daily
		WHERE workspace_id = ? AND day >= ? AND day <= ? GROUP BY `+column+` ORDER BY `+column), workspaceID, q.From, q.To)
	if err != nil {
		return nil, q, fmt.Errorf("billing: read usage: %w", err)
	}
	var spend map[string]map[string]int64
	if column != "action" {
		byDay, byInstallation, err := s.spendBy(ctx, workspaceID, q.From, q.To)
		if err != nil {
			return nil, q, err
		}
		spend = byDay
		if column == "installation" {
			spend = byInstallation
		}
	}
	out := make([]UsageGroup, len(rows))
	for i, r := range rows {
		out[i].Spend = spend[r.Key]
		out[i].Runs = r.Runs
		switch column {
		case "day":
			out[i].Day = r.Key
		case "installation":
			out[i].Installation = r.Key
		default:
			out[i].Action = r.Key
		}
	}
	return out, q, nil
}

// spendBy is what the workspace's succeeded runs of the days from from to
// to (YYYY-MM-DD, both included) added to their months' spend, by day and
// by installation, each by currency. A month's spend is what its invoice
// would say for its runs (monthly fees are not runs' and not in it, as in
// a budget's spend); a day's share is how much that day's runs moved the
// month's spend so far, so a month's days add up to its spend, a free
// allowance makes a month's first runs cost nothing, and a run in a
// volume tier can lower the spend so far (the whole month's runs move to
// the cheaper tier). Zero amounts are left out.
func (s *Service) spendBy(ctx context.Context, workspaceID, from, to string) (byDay, byInstallation map[string]map[string]int64, err error) {
	byDay, byInstallation = map[string]map[string]int64{}, map[string]map[string]int64{}
	add := func(m map[string]map[string]int64, key, currency string, amount int64) {
		if amount == 0 {
			return
		}
		if m[key] == nil {
			m[key] = map[string]int64{}
		}
		m[key][currency] += amount
	}
	first, err := time.Parse(time.DateOnly, from[:7]+"-01")
	if err != nil {
		return nil, nil, fmt.Errorf("billing: spend from %s: %w", from, err)
	}
	// A period's runs are counted on their days; a run that ends as its
	// month closes is counted in the next period, so the period after
	// to's month may hold days up to to.
	last := nextMonth(to[:7])
	for m := first; m.Format("2006-01") <= last; m = m.AddDate(0, 1, 0) {
		month := m.Format("2006-01")
		plans, err := s.plansFor(ctx, month)
		if err != nil || len(plans) == 0 {
			if err != nil {
				return nil, nil, err
			}
			continue
		}
		db := s.cfg.DB.DB()
		var rows []meterRow
		err = db.SelectContext(ctx, &rows, db.Rebind(`SELECT day, package, template, installation, action, connector_action, runs
			FROM usage_daily WHERE workspace_id = ? AND period = ? AND day <= ? ORDER BY day`), workspaceID, month, to)
		if err != nil {
			return nil, nil, fmt.Errorf("billing: read spend: %w", err)
		}
		currencies := map[string]bool{}
		for _, p := range plans {
			if p.Kind != Monthly {
				currencies[p.Currency] = true
			}
		}
		for currency := range currencies {
			var total int64                    // the spend so far
			var sofar, atFrom map[string]int64 // by installation: so far, and before from
			entered := false
			for end := 0; end < len(rows); {
				day := rows[end].Day
				for end < len(rows) && rows[end].Day == day {
					end++
				}
				if day >= from && !entered {
					entered, atFrom = true, sofar
				}
				t, by, err := spendOf(rows[:end], plans, currency)
				if err != nil {
					return nil, nil, err
				}
				if entered {
					add(byDay, day, currency, t-total)
				}
				total, sofar = t, by
			}
			if entered {
				for inst, amount := range sofar {
					add(byInstallation, inst, currency, amount-atFrom[inst])
				}
			}
		}
	}
	return byDay, byInstallation, nil
}

// nextMonth is the month after month (YYYY-MM).
func nextMonth(month string) string {
	t, err := time.Parse("2006-01", month)
	if err != nil {
		return ""
	}
	return t.AddDate(0, 1, 0).Format("2006-01")
}
