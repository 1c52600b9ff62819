package billing

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/relayhq/relay/core"
)

func upTo(n int64) *int64 { return &n }

// mulDivRound agrees with exact big-integer arithmetic, rounding half away
// from zero, and reports what does not fit.
func TestMulDivRound(t *testing.T) {
	cases := []struct{ a, b, d, want int64 }{
		{0, 5, 3, 0}, {1, 1, 2, 1}, {1, 1, 3, 0}, {2, 1, 3, 1}, {5, 1, 2, 3}, {7, 250, 1000, 2},
		{3, 500, 1000, 2}, {31, 900, 31, 900}, {15, 900, 31, 435}, {1, 1000, 31, 32},
	}
	for _, c := range cases {
		if got, err := mulDivRound(c.a, c.b, c.d); err != nil || got != c.want {
			t.Errorf("mulDivRound(%d, %d, %d) = %d, %v; want %d", c.a, c.b, c.d, got, err, c.want)
		}
	}
	if _, err := mulDivRound(math.MaxInt64, 2, 1); !errors.Is(err, errOverflow) {
		t.Errorf("MaxInt64×2: %v", err)
	}
	if got, err := mulDivRound(math.MaxInt64, 2, 2); err != nil || got != math.MaxInt64 {
		t.Errorf("MaxInt64×2÷2 = %d, %v", got, err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 100_000 {
		a, b, d := r.Int64N(1<<40), r.Int64N(1<<40), 1+r.Int64N(1<<20)
		if r.IntN(4) == 0 {
			a, b = r.Int64(), r.Int64N(64)
		}
		exact := new(big.Int).Mul(big.NewInt(a), big.NewInt(b))
		// ⌊(2ab + d) / 2d⌋ is ab/d rounded half up.
		exact.Mul(exact, big.NewInt(2)).Add(exact, big.NewInt(d))
		exact.Quo(exact, big.NewInt(2*d))
		got, err := mulDivRound(a, b, d)
		if !exact.IsInt64() {
			if err == nil {
				t.Fatalf("mulDivRound(%d, %d, %d) = %d, want an overflow", a, b, d, got)
			}
			continue
		}
		if err != nil || got != exact.Int64() {
			t.Fatalf("mulDivRound(%d, %d, %d) = %d, %v; want %d", a, b, d, got, err, exact.Int64())
		}
	}
}

func TestFormatAmount(t *testing.T) {
	for _, c := range []struct {
		amount   int64
		currency string
		want     string
	}{
		{1234, "USD", "12.34 USD"}, {5, "EUR", "0.05 EUR"}, {-1205, "USD", "-12.05 USD"}, {500, "JPY", "500 JPY"},
		{1234, "KWD", "1.234 KWD"}, {math.MinInt64, "USD", "-92233720368547758.08 USD"},
	} {
		if got := FormatAmount(c.amount, c.currency); got != c.want {
			t.Errorf("FormatAmount(%d, %s) = %q, want %q", c.amount, c.currency, got, c.want)
		}
	}
}

func TestRate(t *testing.T) {
	usage := Usage{Rows: []UsageRow{
		{Day: "2026-12-02", Installation: "b", Action: "send", Runs: 30},
		{Day: "2026-12-01", Installation: "a", Action: "send", Runs: 50},
		{Day: "2026-12-01", Installation: "a", Action: "lookup", Runs: 40},
		{Day: "2026-12-03", Installation: "a", Action: "send", Runs: 10},
	}}
	cases := []struct {
		name  string
		plan  Plan
		usage Usage
		want  []Line
		total int64
	}{
		{name: "free", plan: FreePlan, usage: usage},
		{
			// The allowance covers the period's first runs: December 1st's
			// (a's lookups, then 10 of a's sends).
			name:  "per execution",
			plan:  Plan{Kind: PerExecution, Currency: "USD", UnitAmount: 3, PerUnits: 2, FreeAllowance: 50, Actions: map[string]int64{"lookup": 9}},
			usage: usage,
			want: []Line{
				{"a", "executions", 50, 3, 2, 75},
				{"a", "free_allowance", 50, 0, 2, 0},
				{"b", "executions", 30, 3, 2, 45},
			},
			total: 120,
		},
		{
			name:  "per execution, per action",
			plan:  Plan{Kind: PerExecution, Currency: "USD", UnitAmount: 1, Actions: map[string]int64{"lookup": 9}},
			usage: usage,
			want: []Line{
				{"a", "executions", 60, 1, 1, 60},
				{"a", "executions:lookup", 40, 9, 1, 360},
				{"b", "executions", 30, 1, 1, 30},
			},
			total: 450,
		},
		{
			// 130 runs: the first 100 in tier 1 (a's 90 of December 1st and
			// 10 of b's), the other 30 in tier 2.
			name: "graduated",
			plan: Plan{Kind: Tiered, Currency: "EUR", PerUnits: 10, Tiers: []Tier{
				{UpTo: upTo(100), UnitAmount: 0}, {UpTo: nil, UnitAmount: 7}}},
			usage: usage,
			want: []Line{
				{"a", "tier_1", 90, 0, 10, 0},
				{"a", "tier_2", 10, 7, 10, 7},
				{"b", "tier_1", 10, 0, 10, 0},
				{"b", "tier_2", 20, 7, 10, 14},
			},
			total: 21,
		},
		{
			name: "volume",
			plan: Plan{Kind: Tiered, Currency: "EUR", TiersMode: Volume, Tiers: []Tier{
				{UpTo: upTo(100), UnitAmount: 5}, {UpTo: upTo(1000), UnitAmount: 4}, {UnitAmount: 3}}},
			usage: usage,
			want:  []Line{{"a", "tier_2", 100, 4, 1, 400}, {"b", "tier_2", 30, 4, 1, 120}},
			total: 520,
		},
		{
			// 900 a month: a whole month, and 15 days of 31 (435.48…).
			name:  "monthly",
			plan:  Plan{Kind: Monthly, Currency: "USD", MonthlyAmount: 900},
			usage: Usage{ActiveDays: map[string]int{"a": 31, "b": 15}, DaysInPeriod: 31},
			want:  []Line{{"a", "monthly", 31, 900, 31, 900}, {"b", "monthly", 15, 900, 31, 435}},
			total: 1335,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.plan.Validate(); err != nil {
				t.Fatalf("plan: %v", err)
			}
			lines, total, err := Rate(&c.plan, c.usage)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(lines, c.want) || total != c.total {
				t.Fatalf("Rate = %+v, %d\nwant %+v, %d", lines, total, c.want, c.total)
			}
		})
	}
}

// randomPlan is a valid metered plan.
func randomPlan(r *rand.Rand) Plan {
	per := 1 + r.Int64N(3)
	if r.IntN(3) == 0 {
		per = 1000
	}
	if r.IntN(2) == 0 {
		p := Plan{Kind: PerExecution, Currency: "USD", UnitAmount: r.Int64N(500), PerUnits: per, FreeAllowance: r.Int64N(200)}
		if r.IntN(2) == 0 {
			p.Actions = map[string]int64{"b": r.Int64N(500)}
		}
		return p
	}
	p := Plan{Kind: Tiered, Currency: "USD", PerUnits: per, TiersMode: []string{Graduated, Volume}[r.IntN(2)]}
	var up int64
	for range r.IntN(4) {
		up += 1 + r.Int64N(300)
		p.Tiers = append(p.Tiers, Tier{UpTo: upTo(up), UnitAmount: r.Int64N(50)})
	}
	p.Tiers = append(p.Tiers, Tier{UnitAmount: r.Int64N(50)})
	return p
}

// Properties of any plan and usage: every run is on exactly one line, the
// total is the sum of the lines, no amount is negative, and, for a whole
// number of units per run, the total is what the plan says of the whole
// period's count.
func TestRateProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 20_000 {
		p := randomPlan(r)
		if err := p.Validate(); err != nil {
			t.Fatalf("plan %+v: %v", p, err)
		}
		var u Usage
		var runs int64
		for range r.IntN(8) {
			row := UsageRow{Day: fmt.Sprintf("2026-12-%02d", 1+r.IntN(31)), Installation: []string{"", "x", "y"}[r.IntN(3)],
				Action: []string{"a", "b"}[r.IntN(2)], Runs: r.Int64N(400)}
			u.Rows = append(u.Rows, row)
			runs += row.Runs
		}
		lines, total, err := Rate(&p, u)
		if err != nil {
			t.Fatal(err)
		}
		var quantity, sum int64
		for _, l := range lines {
			if l.Quantity <= 0 || l.Amount < 0 || l.UnitAmount < 0 {
				t.Fatalf("case %d: line %+v", i, l)
			}
			quantity += l.Quantity
			sum += l.Amount
		}
		if quantity != runs || sum != total {
			t.Fatalf("case %d: %d runs on lines for %d, lines sum to %d, total %d", i, quantity, runs, sum, total)
		}
		if p.per() == 1 {
			if want := wholePeriod(&p, u.Rows, runs); total != want {
				t.Fatalf("case %d: plan %+v, usage %+v: total %d, want %d", i, p, u.Rows, total, want)
			}
		}
	}
}

// wholePeriod prices a period's runs the plain way, for plans of whole
// units per run: the allowance off the top, the period's count through
// the tiers.
func wholePeriod(p *Plan, rows []UsageRow, runs int64) int64 {
	switch {
	case p.Kind == PerExecution && p.Actions == nil:
		return max(runs-p.FreeAllowance, 0) * p.UnitAmount
	case p.Kind == PerExecution:
		// The allowance covers the earliest runs; count how many of
		// each price it leaves, in the order Rate takes them.
		sorted := append([]UsageRow(nil), rows...)
		sortRows(sorted)
		left, total := p.FreeAllowance, int64(0)
		for _, r := range sorted {
			n := r.Runs - min(left, r.Runs)
			left -= r.Runs - n
			price := p.UnitAmount
			if a, ok := p.Actions[r.Action]; ok {
				price = a
			}
			total += n * price
		}
		return total
	case p.TiersMode == Volume:
		return runs * p.Tiers[tierOf(p.Tiers, runs)].UnitAmount
	}
	var total, below int64
	for _, t := range p.Tiers {
		n := runs - below
		if t.UpTo != nil {
			n = min(n, *t.UpTo-below)
		}
		if n <= 0 {
			break
		}
		total += n * t.UnitAmount
		if t.UpTo != nil {
			below = *t.UpTo
		}
	}
	return total
}

func sortRows(rows []UsageRow) {
	for i := range rows {
		for j := i + 1; j < len(rows); j++ {
			a, b := rows[i], rows[j]
			if b.Day < a.Day || (b.Day == a.Day && (b.Installation < a.Installation ||
				(b.Installation == a.Installation && b.Action < a.Action))) {
				rows[i], rows[j] = b, a
			}
		}
	}
}

func TestPlanValidate(t *testing.T) {
	valid := []string{
		`{"kind": "free"}`,
		`{"kind": "per_execution", "currency": "USD", "unit_amount": 2}`,
		`{"kind": "per_execution", "currency": "JPY", "unit_amount": 1, "per_units": 10, "free_allowance": 1000, "actions": {"send_email": 3}}`,
		`{"kind": "monthly", "currency": "EUR", "monthly_amount": 900}`,
		`{"kind": "tiered", "currency": "GBP", "tiers": [{"up_to": 1000, "unit_amount": 0}, {"up_to": null, "unit_amount": 1}]}`,
		`{"kind": "tiered", "currency": "GBP", "tiers_mode": "volume", "tiers": [{"up_to": null, "unit_amount": 1}]}`,
	}
	for _, v := range valid {
		if _, err := ParsePlan([]byte(v)); err != nil {
			t.Errorf("%s: %v", v, err)
		}
	}
	invalid := map[string]string{
		`{"kind": "free", "currency": "USD"}`:                                                                                                                 "",
		`{"kind": "yearly", "currency": "USD"}`:                                                                                                               "/kind",
		`{"kind": "per_execution", "currency": "usd", "unit_amount": 1}`:                                                                                      "/currency",
		`{"kind": "per_execution", "currency": "XYZ", "unit_amount": 1}`:                                                                                      "/currency",
		`{"kind": "per_execution", "currency": "USD", "unit_amount": -1}`:                                                                                     "/unit_amount",
		`{"kind": "per_execution", "currency": "USD", "unit_amount": 1.5}`:                                                                                    "",
		`{"kind": "per_execution", "currency": "USD", "unit_ammount": 1}`:                                                                                     "",
		`{"kind": "per_execution", "currency": "USD", "per_units": -2}`:                                                                                       "/per_units",
		`{"kind": "per_execution", "currency": "USD", "actions": {"Send": 1}}`:                                                                                "/actions/Send",
		`{"kind": "per_execution", "currency": "USD", "actions": {"send": -1}}`:                                                                               "/actions/send",
		`{"kind": "per_execution", "currency": "USD", "monthly_amount": 5}`:                                                                                   "/monthly_amount",
		`{"kind": "per_execution", "currency": "USD", "free_allowance": -5}`:                                                                                  "/free_allowance",
		`{"kind": "monthly", "currency": "USD"}`:                                                                                                              "/monthly_amount",
		`{"kind": "monthly", "currency": "USD", "monthly_amount": 5, "free_allowance": 3}`:                                                                    "/free_allowance",
		`{"kind": "tiered", "currency": "USD", "tiers": []}`:                                                                                                  "/tiers",
		`{"kind": "tiered", "currency": "USD", "tiers": [{"up_to": 5, "unit_amount": 1}]}`:                                                                    "/tiers/0/up_to",
		`{"kind": "tiered", "currency": "USD", "tiers_mode": "flat", "tiers": [{"up_to": null, "unit_amount": 1}]}`:                                           "/tiers_mode",
		`{"kind": "tiered", "currency": "USD", "tiers": [{"up_to": 5, "unit_amount": 1}, {"up_to": 5, "unit_amount": 1}, {"up_to": null, "unit_amount": 1}]}`: "/tiers/1/up_to",
		`{"kind": "tiered", "currency": "USD", "tiers": [{"up_to": null, "unit_amount": 1}, {"up_to": null, "unit_amount": 1}]}`:                              "/tiers/0/up_to",
		`{"kind": "tiered", "currency": "USD", "free_allowance": 10, "tiers": [{"up_to": null, "unit_amount": 1}]}`:                                           "/free_allowance",
		`{"kind": "free"} {}`: "",
	}
	for in, pointer := range invalid {
		_, err := ParsePlan([]byte(in))
		var e *core.Error
		if !errors.As(err, &e) || e.Code != core.EPricePlanInvalid || len(e.Fields) != 1 || e.Fields[0].Pointer != pointer {
			t.Errorf("%s: %#v, want price_plan_invalid at %q", in, err, pointer)
		}
	}
}

// A fee and the rest add up to the gross, neither negative, for any gross
// and rate.
func TestSplitFee(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 100_000 {
		gross, bp := r.Int64N(1<<50), r.IntN(10001)
		if r.IntN(10) == 0 {
			gross = r.Int64N(100)
		}
		fee, net, err := splitFee(gross, bp)
		if err != nil || fee < 0 || net < 0 || fee+net != gross {
			t.Fatalf("splitFee(%d, %d) = %d, %d, %v", gross, bp, fee, net, err)
		}
	}
	if fee, net, _ := splitFee(13, 2000); fee != 3 || net != 10 {
		t.Errorf("13 at 20%%: %d + %d", fee, net)
	}
	if _, _, err := splitFee(-1, 2000); err == nil {
		t.Error("a negative gross was split")
	}
}

func TestParseFeePercent(t *testing.T) {
	for in, want := range map[string]int{"20": 2000, "0": 0, "100": 10000, "12.5": 1250, "0.01": 1, "7.25": 725, "020": 2000} {
		if got, err := ParseFeePercent(in); err != nil || got != want {
			t.Errorf("ParseFeePercent(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-5", "100.01", "101", "1e2", "12.345", "20%", ".5", "5.", "1000"} {
		if got, err := ParseFeePercent(in); err == nil {
			t.Errorf("ParseFeePercent(%q) = %d", in, got)
		}
	}
}

// A statement never goes negative: what the credits leave of the gross is
// split into fee and net exactly, and credits past the gross are carried,
// for any lines, credits and carry.
func TestStatementsProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for i := range 5_000 {
		var invoices []*Invoice
		for range r.IntN(4) {
			inv := &Invoice{Currency: []string{"USD", "EUR"}[r.IntN(2)]}
			for range r.IntN(5) {
				inv.Lines = append(inv.Lines, InvoiceLine{Listing: []string{"acme/a", "acme/b", "beta/c"}[r.IntN(3)],
					Line: Line{Amount: r.Int64N(10_000)}})
			}
			invoices = append(invoices, inv)
		}
		credits := map[stmtKey]map[string]int64{}
		if r.IntN(2) == 0 {
			credits[stmtKey{"acme", "USD"}] = map[string]int64{"acme/a": r.Int64N(20_000)}
		}
		carried := map[stmtKey]int64{}
		if r.IntN(3) == 0 {
			carried[stmtKey{"beta", "EUR"}] = r.Int64N(5_000)
		}
		bp := r.IntN(10_001)
		statements, err := statementsOf(invoices, credits, carried, "2030-01", bp, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		var gross int64
		for _, inv := range invoices {
			for _, l := range inv.Lines {
				gross += l.Amount
			}
		}
		var sumGross int64
		for _, st := range statements {
			sumGross += st.Gross
			if st.Fee < 0 || st.Net < 0 || st.Carried < 0 {
				t.Fatalf("case %d: negative %+v", i, st)
			}
			if owed := st.Gross - st.Credits; owed >= 0 {
				if st.Fee+st.Net != owed || st.Carried != 0 {
					t.Fatalf("case %d: %+v: fee + net is not gross - credits", i, st)
				}
			} else if st.Fee != 0 || st.Net != 0 || st.Carried != -owed {
				t.Fatalf("case %d: %+v: credits past the gross are not carried", i, st)
			}
		}
		if sumGross != gross {
			t.Fatalf("case %d: statements' gross %d, lines %d", i, sumGross, gross)
		}
	}
}
