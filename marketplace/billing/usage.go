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
	out := make([]UsageGroup, len(rows))
	for i, r := range rows {
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
