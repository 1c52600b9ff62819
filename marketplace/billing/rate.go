package billing

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// UsageRow is what a workspace ran of one listing on one day: runs of one
// installation ("" for a connector's own actions) and one action (a
// preset's name for a template, an action's name for a connector).
type UsageRow struct {
	Day          string `json:"day"` // YYYY-MM-DD
	Installation string `json:"installation,omitempty"`
	Action       string `json:"action"`
	Runs         int64  `json:"runs"`
}

// Usage is what a workspace did with one listing in one period: its runs,
// and (for a monthly plan) how many days of the period each installation
// had the listing.
type Usage struct {
	Rows         []UsageRow
	ActiveDays   map[string]int
	DaysInPeriod int
}

// Line is one priced part of a period's usage: Quantity (runs, or days
// for monthly) of one component for one installation, costing Amount.
type Line struct {
	Installation string `json:"installation,omitempty"`
	// Component is "executions" (at the plan's unit price),
	// "executions:<name>" (a preset or action with a price of its own),
	// "free_allowance" (runs the allowance covered), "tier_<n>" (the
	// n-th tier, from 1) or "monthly".
	Component  string `json:"component"`
	Quantity   int64  `json:"quantity"`
	UnitAmount int64  `json:"unit_amount" db:"unit_amount"`
	// PerUnits is how many of Quantity UnitAmount buys. For monthly,
	// UnitAmount is the month's price, Quantity the days an installation
	// had the listing and PerUnits the days of the month.
	PerUnits int64 `json:"per_units" db:"per_units"`
	Amount   int64 `json:"amount"`
}

// Components.
const (
	componentExecutions = "executions"
	componentFree       = "free_allowance"
	componentMonthly    = "monthly"
)

// Rate prices u under p: the lines, by installation then component, and
// their total. Each line is rounded once (Quantity × UnitAmount ÷
// PerUnits, half away from zero); the total is the sum of the lines.
//
// Runs are taken in day order (then installation, then action) where the
// order matters: the free allowance covers a period's first runs, and a
// graduated tier's runs are the ones that reach it.
func Rate(p *Plan, u Usage) ([]Line, int64, error) {
	rows := slices.Clone(u.Rows)
	slices.SortStableFunc(rows, func(a, b UsageRow) int {
		return cmp.Or(strings.Compare(a.Day, b.Day), strings.Compare(a.Installation, b.Installation),
			strings.Compare(a.Action, b.Action))
	})
	for _, r := range rows {
		if r.Runs < 0 {
			return nil, 0, fmt.Errorf("billing: negative usage %+v", r)
		}
	}
	acc := lineAcc{}
	switch p.Kind {
	case Free:
		return nil, 0, nil
	case PerExecution:
		allowance := p.FreeAllowance
		for _, r := range rows {
			free := min(allowance, r.Runs)
			allowance -= free
			acc.add(r.Installation, componentFree, free, 0, p.per())
			unit, component := p.UnitAmount, componentExecutions
			if a, ok := p.Actions[r.Action]; ok {
				unit, component = a, componentExecutions+":"+r.Action
			}
			acc.add(r.Installation, component, r.Runs-free, unit, p.per())
		}
	case Tiered:
		if p.TiersMode == Volume {
			var total int64
			for _, r := range rows {
				var err error
				if total, err = addAmount(total, r.Runs); err != nil {
					return nil, 0, err
				}
			}
			i := tierOf(p.Tiers, total)
			for _, r := range rows {
				acc.add(r.Installation, tierComponent(i), r.Runs, p.Tiers[i].UnitAmount, p.per())
			}
			break
		}
		var seen int64 // runs before this row
		for _, r := range rows {
			left := r.Runs
			for left > 0 {
				i := tierOf(p.Tiers, seen+1)
				n := left
				if up := p.Tiers[i].UpTo; up != nil {
					n = min(left, *up-seen)
				}
				acc.add(r.Installation, tierComponent(i), n, p.Tiers[i].UnitAmount, p.per())
				seen += n
				left -= n
			}
		}
	case Monthly:
		if u.DaysInPeriod <= 0 {
			return nil, 0, fmt.Errorf("billing: a period of %d days", u.DaysInPeriod)
		}
		for inst, days := range u.ActiveDays {
			if days < 0 || days > u.DaysInPeriod {
				return nil, 0, fmt.Errorf("billing: installation %q active %d days of %d", inst, days, u.DaysInPeriod)
			}
			acc.add(inst, componentMonthly, int64(days), p.MonthlyAmount, int64(u.DaysInPeriod))
		}
	default:
		return nil, 0, fmt.Errorf("billing: plan kind %q", p.Kind)
	}
	return acc.lines()
}

// tierOf is the index of the tier that holds the n-th run (the first for
// n ≤ 0).
func tierOf(tiers []Tier, n int64) int {
	for i, t := range tiers {
		if t.UpTo == nil || n <= *t.UpTo {
			return i
		}
	}
	return len(tiers) - 1
}

func tierComponent(i int) string { return fmt.Sprintf("tier_%d", i+1) }

// lineAcc sums quantities by installation and component.
type lineAcc map[[2]string]*Line

func (a lineAcc) add(installation, component string, quantity, unit, per int64) {
	if quantity == 0 {
		return
	}
	k := [2]string{installation, component}
	l := a[k]
	if l == nil {
		l = &Line{Installation: installation, Component: component, UnitAmount: unit, PerUnits: per}
		a[k] = l
	}
	l.Quantity += quantity
}

// lines prices each line and sums them.
func (a lineAcc) lines() ([]Line, int64, error) {
	out := make([]Line, 0, len(a))
	var total int64
	for _, l := range a {
		amount, err := mulDivRound(l.Quantity, l.UnitAmount, l.PerUnits)
		if err != nil {
			return nil, 0, err
		}
		l.Amount = amount
		if total, err = addAmount(total, amount); err != nil {
			return nil, 0, err
		}
		out = append(out, *l)
	}
	slices.SortFunc(out, func(x, y Line) int {
		return cmp.Or(strings.Compare(x.Installation, y.Installation), strings.Compare(x.Component, y.Component))
	})
	return out, total, nil
}
