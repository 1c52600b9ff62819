package marketplace

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/marketplace/billing"
)

// A publisher announces a price at least 14 days out, on the first of a
// month; the listing shows it as pending until then and as current from
// then on; announcing again replaces what is pending, and it can be
// withdrawn. Only the listing's publisher may.
func TestPriceChanges(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.publishNotes("1.0.0")
		e.publishTemplate(tpl{name: "acme/leads", version: "1.0.0", title: "Leads", summary: "Leads"})
		e.publisher("beta")
		// 2030-01-02: the earliest first of a month 14 days out is
		// February's.
		price := func() *billing.Price {
			t.Helper()
			d, err := e.market.Listing(ctx, "acme/leads")
			if err != nil {
				t.Fatal(err)
			}
			return d.Price
		}
		if p := price(); p.Current.Plan.Kind != billing.Free || p.Pending != nil {
			t.Fatalf("a new listing's price: %+v", p)
		}
		plan := &billing.Plan{Kind: billing.PerExecution, Currency: "USD", UnitAmount: 5, FreeAllowance: 100}
		for from, code := range map[string]string{
			"2030-01-15": core.EPricePlanInvalid, // not the first of a month
			"2030-01-01": core.EPricePlanInvalid, // past
			"2030-01-16": core.EPricePlanInvalid,
			"2030-1-16":  core.EPricePlanInvalid,
		} {
			_, err := e.bill.SetPrice(ctx, e.pubs["acme"], e.caller["acme"], "acme/leads", plan, from)
			wantCode(t, err, code)
		}
		_, err := e.bill.SetPrice(ctx, e.pubs["beta"], e.caller["beta"], "acme/leads", plan, "")
		wantCode(t, err, core.EForbidden)
		_, err = e.bill.SetPrice(ctx, e.pubs["acme"], e.caller["acme"], "acme/nothing", plan, "")
		wantCode(t, err, core.ENotFound)
		_, err = e.bill.SetPrice(ctx, e.pubs["acme"], e.caller["acme"], "acme/leads", &billing.Plan{Kind: "yearly"}, "")
		wantCode(t, err, core.EPricePlanInvalid)

		before, err := e.market.Plan(ctx, "acme/leads", "")
		if err != nil {
			t.Fatal(err)
		}
		p, err := e.bill.SetPrice(ctx, e.pubs["acme"], e.caller["acme"], "acme/leads", plan, "")
		if err != nil {
			t.Fatal(err)
		}
		// What an install consents to now carries the announced price, so
		// an accept of the summary shown before no longer matches.
		after, err := e.market.Plan(ctx, "acme/leads", "")
		if err != nil {
			t.Fatal(err)
		}
		if len(before.Summary.Prices) != 0 || len(after.Summary.Prices) != 1 || after.Summary.Prices[0].Listing != "acme/leads" ||
			!strings.Contains(string(after.Summary.Prices[0].Pending), `"effective_from":"2030-02-01"`) || before.Digest == after.Digest {
			t.Fatalf("plans before and after announcing: %+v %s, %+v %s", before.Summary.Prices, before.Digest, after.Summary.Prices, after.Digest)
		}
		if p.Current.Plan.Kind != billing.Free || p.Pending == nil || p.Pending.EffectiveFrom != "2030-02-01" || p.Pending.Plan.UnitAmount != 5 {
			t.Fatalf("after announcing: %+v", p)
		}
		if got := price(); got.Pending == nil || got.Pending.EffectiveFrom != "2030-02-01" {
			t.Fatalf("the listing shows %+v", got)
		}
		// A later start, announced again, replaces it.
		if p, err = e.bill.SetPrice(ctx, e.pubs["acme"], e.caller["acme"], "acme/leads", plan, "2030-03-01"); err != nil || p.Pending.EffectiveFrom != "2030-03-01" {
			t.Fatalf("announcing March: %+v, %v", p, err)
		}
		if p, err = e.bill.SetPrice(ctx, e.pubs["acme"], e.caller["acme"], "acme/leads", plan, ""); err != nil || p.Pending.EffectiveFrom != "2030-02-01" {
			t.Fatalf("announcing February again: %+v, %v", p, err)
		}

		// February: the plan is in effect; a change now is for March.
		e.now = time.Date(2030, 2, 1, 0, 0, 0, 0, time.UTC)
		if got := price(); got.Current.EffectiveFrom != "2030-02-01" || got.Current.Plan.UnitAmount != 5 || got.Pending != nil {
			t.Fatalf("in February: %+v", got)
		}
		cheaper := &billing.Plan{Kind: billing.PerExecution, Currency: "USD", UnitAmount: 4}
		if p, err = e.bill.SetPrice(ctx, e.pubs["acme"], e.caller["acme"], "acme/leads", cheaper, ""); err != nil ||
			p.Current.Plan.UnitAmount != 5 || p.Pending.EffectiveFrom != "2030-03-01" {
			t.Fatalf("announcing a change: %+v, %v", p, err)
		}
		for period, want := range map[string]int64{"2030-01": 0, "2030-02": 5, "2030-03": 4, "2031-07": 4} {
			got, err := e.bill.PlanFor(ctx, "acme/leads", period)
			if err != nil || got.UnitAmount != want {
				t.Errorf("plan for %s: %+v, %v; want unit amount %d", period, got, err, want)
			}
		}
		wantCode(t, e.bill.WithdrawPrice(ctx, e.pubs["beta"], e.caller["beta"], "acme/leads"), core.EForbidden)
		if err := e.bill.WithdrawPrice(ctx, e.pubs["acme"], e.caller["acme"], "acme/leads"); err != nil {
			t.Fatal(err)
		}
		if got := price(); got.Current.Plan.UnitAmount != 5 || got.Pending != nil {
			t.Fatalf("after withdrawing: %+v", got)
		}
		wantCode(t, e.bill.WithdrawPrice(ctx, e.pubs["acme"], e.caller["acme"], "acme/leads"), core.ENotFound)

		// Each change is audited in the publisher's workspace.
		records, _, err := e.store.ListAudit(ctx, e.admin.WorkspaceID, core.Page{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		var sets, withdrawals int
		for _, r := range records {
			switch r.Action {
			case "billing.price.set":
				sets++
				var d struct {
					EffectiveFrom string `json:"effective_from"`
				}
				if json.Unmarshal(r.Details, &d); d.EffectiveFrom == "" || r.Target != "package:acme/leads" {
					t.Errorf("audit record %+v", r)
				}
			case "billing.price.withdraw":
				withdrawals++
			}
		}
		if sets != 4 || withdrawals != 1 {
			t.Errorf("%d billing.price.set and %d billing.price.withdraw records, want 4 and 1", sets, withdrawals)
		}
	})
}
