package marketplace

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/httpapi/httpapitest"
	"github.com/relayhq/relay/core/sqlstore"
	"github.com/relayhq/relay/marketplace/billing"
)

// presetRun stores a run of the leads template's preset jot (on
// acme/notes's add) in the workspace, finished with status at at.
func (e *env) presetRun(workspaceID string, status core.RunStatus, at time.Time) {
	e.t.Helper()
	ctx := context.Background()
	run := &core.Run{WorkspaceID: workspaceID, Action: "sales.jot", Connector: "notes", Package: "acme/notes", Version: "1.0.0",
		Runtime: "wasm", ConnectionID: core.NewID(), ConnectionName: "sales-main", KeyID: core.NewID(),
		Preset: &core.RunPreset{Installation: "in_sales", Template: "acme/leads", TemplateVersion: "1.0.0", Action: "notes.add"}}
	if _, err := e.store.StartExecution(ctx, run, nil, nil); err != nil {
		e.t.Fatal(err)
	}
	run.Status, run.FinishedAt = status, &at
	if status == core.RunFailed {
		run.Error = &core.RunError{Code: "upstream_failed", Message: "no"}
	}
	if err := e.store.FinishExecution(ctx, run, "", 0, nil, nil); err != nil {
		e.t.Fatal(err)
	}
}

// Closing a month turns its usage into invoices (one per workspace and
// currency; a preset's run priced by its template and by its connector's
// package) and statements (one per publisher and currency, fee + net =
// gross); closing again, from two replicas at once, makes nothing more; a
// run that ends after the close is billed in the next month.
func TestClosePeriod(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.publishNotes("1.0.0")
		e.publishTemplate(tpl{name: "acme/leads", version: "1.0.0", title: "Leads", summary: "Leads"})
		e.publisher("beta")
		usd := &billing.Plan{Kind: billing.PerExecution, Currency: "USD", UnitAmount: 5, FreeAllowance: 2}
		eur := &billing.Plan{Kind: billing.PerExecution, Currency: "EUR", UnitAmount: 3, PerUnits: 2}
		for listing, plan := range map[string]*billing.Plan{"acme/leads": usd, "acme/notes": eur} {
			if _, err := e.bill.SetPrice(ctx, e.pubs["acme"], e.caller["acme"], listing, plan, "2030-02-01"); err != nil {
				t.Fatal(err)
			}
		}
		w1, _ := e.store.CreateWorkspace(ctx, "w1")
		w2, _ := e.store.CreateWorkspace(ctx, "w2")
		jan, feb := time.Date(2030, 1, 20, 9, 0, 0, 0, time.UTC), time.Date(2030, 2, 3, 9, 0, 0, 0, time.UTC)
		e.presetRun(w1.ID, core.RunSucceeded, jan) // free in January
		for range 5 {
			e.presetRun(w1.ID, core.RunSucceeded, feb)
		}
		e.presetRun(w1.ID, core.RunFailed, feb)
		for range 3 {
			e.presetRun(w2.ID, core.RunSucceeded, feb)
		}

		e.now = time.Date(2030, 2, 27, 0, 0, 0, 0, time.UTC)
		_, err := e.bill.Close(ctx, "2030-02", billing.DefaultFeeBasisPoints)
		wantCode(t, err, core.EInvalid) // February has not ended
		e.now = time.Date(2030, 3, 1, 0, 0, 0, 0, time.UTC)
		res, err := e.bill.Close(ctx, "2030-02", billing.DefaultFeeBasisPoints)
		if err != nil {
			t.Fatal(err)
		}
		want := []billing.CloseResult{{Period: "2030-01", Closed: true}, {Period: "2030-02", Closed: true, Invoices: 4, Statements: 2}}
		if len(res) != 2 || res[0] != want[0] || res[1] != want[1] {
			t.Fatalf("Close = %+v, want %+v", res, want)
		}

		// w1: leads 5 runs, 2 free, 3 × 5 = 15 USD cents; notes 5 runs at
		// 3 per 2 = 7.5, so 8 EUR cents. w2: leads 3 runs, 1 × 5; notes
		// 3 × 3 / 2 = 4.5, so 5.
		totals := map[string]map[string]int64{w1.ID: {"USD": 15, "EUR": 8}, w2.ID: {"USD": 5, "EUR": 5}}
		var w1USD *billing.Invoice
		for ws, want := range totals {
			list, err := e.bill.Invoices(ctx, ws)
			if err != nil || len(list) != 2 {
				t.Fatalf("invoices of %s: %+v, %v", ws, list, err)
			}
			for _, short := range list {
				inv, err := e.bill.Invoice(ctx, ws, short.ID)
				if err != nil {
					t.Fatal(err)
				}
				var sum int64
				for _, l := range inv.Lines {
					sum += l.Amount
				}
				if inv.Period != "2030-02" || inv.Total != want[inv.Currency] || sum != inv.Total {
					t.Errorf("invoice %+v: lines sum to %d, want total %d", inv, sum, want[inv.Currency])
				}
				if ws == w1.ID && inv.Currency == "USD" {
					w1USD = inv
				}
			}
		}
		wantLines := []billing.InvoiceLine{
			{N: 1, Listing: "acme/leads", Line: billing.Line{Installation: "in_sales", Component: "executions", Quantity: 3, UnitAmount: 5, PerUnits: 1, Amount: 15}},
			{N: 2, Listing: "acme/leads", Line: billing.Line{Installation: "in_sales", Component: "free_allowance", Quantity: 2, PerUnits: 1}},
		}
		if len(w1USD.Lines) != 2 || w1USD.Lines[0] != wantLines[0] || w1USD.Lines[1] != wantLines[1] {
			t.Fatalf("w1's USD lines: %+v", w1USD.Lines)
		}
		// Another workspace's invoice is not found.
		_, err = e.bill.Invoice(ctx, w2.ID, w1USD.ID)
		wantCode(t, err, core.ENotFound)
		var b bytes.Buffer
		if err := billing.WriteInvoiceCSV(&b, w1USD); err != nil {
			t.Fatal(err)
		}
		records, err := csv.NewReader(&b).ReadAll()
		if err != nil || len(records) != 3 || records[0][10] != "amount" || records[1][10] != "15" || records[1][4] != "acme/leads" {
			t.Fatalf("CSV: %q, %v", records, err)
		}

		statements, err := e.bill.Statements(ctx, "acme", "")
		if err != nil || len(statements) != 2 {
			t.Fatalf("statements: %+v, %v", statements, err)
		}
		for _, st := range statements {
			// USD: 20 gross, 4 fee; EUR: 13 gross, 2.6 → 3 fee.
			want := map[string][3]int64{"USD": {20, 4, 16}, "EUR": {13, 3, 10}}[st.Currency]
			if [3]int64{st.Gross, st.Fee, st.Net} != want || st.Fee+st.Net != st.Gross || st.FeeBasisPoints != 2000 {
				t.Errorf("statement %+v, want gross, fee, net %v", st, want)
			}
		}
		if mine, err := e.bill.Statements(ctx, "beta", ""); err != nil || len(mine) != 0 {
			t.Errorf("beta's statements: %+v, %v", mine, err)
		}

		// Closing again, twice at once: nothing more.
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				res, err := e.bill.Close(ctx, "2030-02", 1000)
				if err != nil || len(res) != 1 || res[0].Closed {
					t.Errorf("closing again: %+v, %v", res, err)
				}
			})
		}
		wg.Wait()
		if list, _ := e.bill.Invoices(ctx, w1.ID); len(list) != 2 {
			t.Fatalf("w1 has %d invoices after closing again", len(list))
		}

		// A run that finished in February but is written after the close
		// is billed in March (under its own day), with March's
		// allowance.
		e.presetRun(w1.ID, core.RunSucceeded, time.Date(2030, 2, 28, 23, 59, 59, 999e6, time.UTC))
		e.now = time.Date(2030, 4, 1, 0, 0, 1, 0, time.UTC)
		res, err = e.bill.Close(ctx, "2030-03", billing.DefaultFeeBasisPoints)
		if err != nil || len(res) != 1 || !res[0].Closed || res[0].Invoices != 2 {
			t.Fatalf("closing March: %+v, %v", res, err)
		}
		list, _ := e.bill.Invoices(ctx, w1.ID)
		if len(list) != 4 || list[0].Period != "2030-03" {
			t.Fatalf("w1's invoices: %+v", list)
		}
		for _, short := range list[:2] {
			inv, _ := e.bill.Invoice(ctx, w1.ID, short.ID)
			want := map[string]int64{"USD": 0, "EUR": 2}[inv.Currency] // 1 run at 3 per 2: 1.5, so 2
			if inv.Total != want || inv.Lines[0].Quantity != 1 {
				t.Errorf("March invoice %+v, want total %d", inv, want)
			}
		}
		// A statement even of nothing but free runs.
		statements, _ = e.bill.Statements(ctx, "acme", "2030-03")
		if len(statements) != 2 || statements[0].Currency != "EUR" || statements[0].Gross != 2 || statements[1].Gross != 0 {
			t.Errorf("March statements: %+v", statements)
		}
		_, err = e.bill.Statements(ctx, "acme", "March")
		wantCode(t, err, core.EInvalid)

		// Over HTTP: a workspace's admin reads its own invoices, as JSON
		// or CSV; a publisher reads its own statements.
		base := httpapitest.Serve(t, e.store, e.hasher, e.bill.Routes())
		get := func(token, path string) (int, []byte) {
			t.Helper()
			req, _ := http.NewRequest(http.MethodGet, base+path, nil)
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, body
		}
		w1Admin := httpapitest.Key(t, e.store, e.hasher, w1.ID, core.RoleAdmin)
		w2Admin := httpapitest.Key(t, e.store, e.hasher, w2.ID, core.RoleAdmin)
		for _, c := range []struct {
			token, path string
			status      int
		}{
			{w1Admin, "/v1/billing/invoices", 200},
			{httpapitest.Key(t, e.store, e.hasher, w1.ID, core.RoleDeveloper), "/v1/billing/invoices", 403},
			{"", "/v1/billing/invoices", 401},
			{w1Admin, "/v1/billing/invoices/" + w1USD.ID, 200},
			{w2Admin, "/v1/billing/invoices/" + w1USD.ID, 404},
			{w1Admin, "/v1/billing/invoices/" + w1USD.ID + "?format=xml", 400},
			{e.tokens["acme"], "/v1/publisher/statements", 200},
			{w1Admin, "/v1/publisher/statements", 401},
			{"", "/v1/publisher/statements", 401},
		} {
			if status, body := get(c.token, c.path); status != c.status {
				t.Errorf("GET %s: %d %s, want %d", c.path, status, body, c.status)
			}
		}
		var page struct {
			Data []*billing.Invoice `json:"data"`
		}
		if _, body := get(w1Admin, "/v1/billing/invoices"); json.Unmarshal(body, &page) != nil || len(page.Data) != 4 {
			t.Errorf("w1's invoices: %s", body)
		}
		if status, body := get(w1Admin, "/v1/billing/invoices/"+w1USD.ID+"?format=csv"); status != 200 || !bytes.HasPrefix(body, []byte("invoice,period,currency,n,")) {
			t.Errorf("CSV: %d %s", status, body)
		}
		var statementsPage struct {
			Data []*billing.Statement `json:"data"`
		}
		if _, body := get(e.tokens["acme"], "/v1/publisher/statements?period=2030-02"); json.Unmarshal(body, &statementsPage) != nil ||
			len(statementsPage.Data) != 2 || statementsPage.Data[0].Publisher != "acme" {
			t.Errorf("acme's statements: %s", body)
		}
		if _, body := get(e.tokens["beta"], "/v1/publisher/statements"); string(bytes.TrimSpace(body)) != `{"data":[]}` {
			t.Errorf("beta's statements: %s", body)
		}
		if status, body := get(e.tokens["acme"], "/v1/publisher/statements?format=csv"); status != 200 ||
			bytes.Count(body, []byte("\n")) != 5 || !bytes.Contains(body, []byte("acme,2030-02,USD,acme/leads,20,0,20,0,4,16,0,2000")) {
			t.Errorf("statements CSV: %d %s", status, body)
		}

		// Corrections are credit notes: w1's February USD line 1 (15) is
		// credited 10, then 5; no more, and never a line it does not have.
		for _, c := range []struct {
			amounts map[int]int64
			reason  string
			code    string
		}{
			{map[int]int64{1: 10}, "duplicate runs on Feb 3", ""},
			{map[int]int64{1: 6}, "too much", core.EInvalid},
			{map[int]int64{2: 1}, "a free line", core.EInvalid},
			{map[int]int64{7: 1}, "no such line", core.EInvalid},
			{map[int]int64{1: 5}, "", core.EInvalid},
			{map[int]int64{1: 5}, "the rest", ""},
		} {
			_, err := e.bill.IssueCreditNote(ctx, w1USD.ID, c.amounts, c.reason)
			if core.ErrorCode(err) != c.code {
				t.Fatalf("credit %v (%q): %v, want %q", c.amounts, c.reason, err, c.code)
			}
		}
		_, err = e.bill.IssueCreditNote(ctx, "nope", map[int]int64{1: 1}, "x")
		wantCode(t, err, core.ENotFound)
		credited, err := e.bill.Invoice(ctx, w1.ID, w1USD.ID)
		if err != nil || len(credited.CreditNotes) != 2 || credited.Credited != 15 || credited.Total != 15 || credited.CreditNotes[0].Period != "2030-04" {
			t.Fatalf("the credited invoice: %+v, %v", credited, err)
		}
		// April has no usage: acme's USD statement carries the 15
		// credited. May's 4 priced runs (20) pay it off: 5 owed, 1 fee.
		e.now = time.Date(2030, 5, 1, 0, 0, 1, 0, time.UTC)
		if _, err := e.bill.Close(ctx, "2030-04", billing.DefaultFeeBasisPoints); err != nil {
			t.Fatal(err)
		}
		april, _ := e.bill.Statements(ctx, "acme", "2030-04")
		if len(april) != 1 || april[0].Currency != "USD" || april[0].Gross != 0 || april[0].Credits != 15 || april[0].Carried != 15 ||
			april[0].Fee != 0 || april[0].Net != 0 || april[0].Listings[0].Credits != 15 {
			t.Fatalf("April: %+v", april)
		}
		may := time.Date(2030, 5, 9, 9, 0, 0, 0, time.UTC)
		for range 6 {
			e.presetRun(w1.ID, core.RunSucceeded, may)
		}
		e.now = time.Date(2030, 6, 1, 0, 0, 1, 0, time.UTC)
		if _, err := e.bill.Close(ctx, "2030-05", billing.DefaultFeeBasisPoints); err != nil {
			t.Fatal(err)
		}
		mayStatements, _ := e.bill.Statements(ctx, "acme", "2030-05")
		var usdMay *billing.Statement
		for _, st := range mayStatements {
			if st.Currency == "USD" {
				usdMay = st
			}
		}
		if usdMay == nil || usdMay.Gross != 20 || usdMay.Credits != 15 || usdMay.Fee != 1 || usdMay.Net != 4 || usdMay.Carried != 0 {
			t.Fatalf("May: %+v", mayStatements)
		}
	})
}

// hold records that workspaceID holds listings through holder from at
// (none: holds nothing from then), as installing and uninstalling do.
func (e *env) hold(workspaceID, holder string, at time.Time, listings ...string) {
	e.t.Helper()
	err := e.store.InAuditedTx(context.Background(), func(ctx context.Context, tx *sqlx.Tx, _ func(*core.AuditRecord) error) error {
		return sqlstore.SetHoldings(ctx, tx, workspaceID, holder, listings, at)
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// A monthly plan bills each workspace for the days of the month on which
// it held the listing (through any installation, once a day), prorated
// from the month's price, also when it ran nothing; its runs cost nothing
// more, and a budget does not count the fee.
func TestMonthlyPlan(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.publishNotes("1.0.0")
		e.publishTemplate(tpl{name: "acme/leads", version: "1.0.0", title: "Leads", summary: "Leads"})
		// February 2030 has 28 days: 100 a day.
		monthly := &billing.Plan{Kind: billing.Monthly, Currency: "USD", MonthlyAmount: 2800}
		if _, err := e.bill.SetPrice(ctx, e.pubs["acme"], e.caller["acme"], "acme/leads", monthly, "2030-02-01"); err != nil {
			t.Fatal(err)
		}
		w1, _ := e.store.CreateWorkspace(ctx, "w1")
		w2, _ := e.store.CreateWorkspace(ctx, "w2")
		w3, _ := e.store.CreateWorkspace(ctx, "w3")
		w4, _ := e.store.CreateWorkspace(ctx, "w4")
		jan20 := time.Date(2030, 1, 20, 9, 0, 0, 0, time.UTC)
		// w1: from January to February 15, 00:00 (14 days).
		e.hold(w1.ID, sqlstore.HolderInstallation("i1"), jan20, "acme/leads", "acme/notes")
		e.hold(w1.ID, sqlstore.HolderInstallation("i1"), time.Date(2030, 2, 15, 0, 0, 0, 0, time.UTC))
		// w2: all month, under two installations at once, and runs.
		e.hold(w2.ID, sqlstore.HolderInstallation("i2"), jan20, "acme/leads")
		e.hold(w2.ID, sqlstore.HolderInstallation("i3"), time.Date(2030, 2, 10, 0, 0, 0, 0, time.UTC), "acme/leads")
		// w3: the last hour of the month (a day).
		e.hold(w3.ID, sqlstore.HolderInstallation("i4"), time.Date(2030, 2, 28, 23, 0, 0, 0, time.UTC), "acme/leads")
		// w4: from March.
		e.hold(w4.ID, sqlstore.HolderInstallation("i5"), time.Date(2030, 3, 1, 0, 0, 0, 0, time.UTC), "acme/leads")

		// A hard budget of 1 cent: the fee is not a run's cost, so runs
		// are admitted (and, on a monthly plan, cost nothing more).
		e.now = time.Date(2030, 2, 20, 0, 0, 0, 0, time.UTC)
		if _, err := e.bill.SetBudget(ctx, &core.Caller{WorkspaceID: w2.ID, KeyID: core.NewID(), Role: core.RoleAdmin}, "workspace",
			billing.Budget{Currency: "USD", Amount: 1, Hard: true}); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			run := &core.Run{ID: core.NewID(), WorkspaceID: w2.ID, Action: "sales.jot", Package: "acme/notes",
				Preset: &core.RunPreset{Installation: "i2", Template: "acme/leads", Action: "notes.add"}}
			release, err := e.bill.Admit(ctx, run)
			if err != nil {
				t.Fatalf("a run on a monthly plan under a budget: %v", err)
			}
			release()
			e.presetRun(w2.ID, core.RunSucceeded, e.now)
		}

		e.now = time.Date(2030, 3, 1, 0, 0, 0, 0, time.UTC)
		if _, err := e.bill.Close(ctx, "2030-02", billing.DefaultFeeBasisPoints); err != nil {
			t.Fatal(err)
		}
		want := map[string]int64{w1.ID: 14, w2.ID: 28, w3.ID: 1}
		for _, ws := range []string{w1.ID, w2.ID, w3.ID, w4.ID} {
			list, err := e.bill.Invoices(ctx, ws)
			if err != nil {
				t.Fatal(err)
			}
			if want[ws] == 0 {
				if len(list) != 0 {
					t.Errorf("%s held nothing in February and has invoices %+v", ws, list)
				}
				continue
			}
			if len(list) != 1 {
				t.Fatalf("invoices of %s: %+v", ws, list)
			}
			inv, err := e.bill.Invoice(ctx, ws, list[0].ID)
			if err != nil {
				t.Fatal(err)
			}
			line := billing.InvoiceLine{N: 1, Listing: "acme/leads", Line: billing.Line{Component: "monthly", Quantity: want[ws],
				UnitAmount: 2800, PerUnits: 28, Amount: 100 * want[ws]}}
			if len(inv.Lines) != 1 || inv.Lines[0] != line || inv.Total != line.Amount {
				t.Errorf("%s's invoice: %+v, want the line %+v", ws, inv, line)
			}
		}
		statements, err := e.bill.Statements(ctx, "acme", "2030-02")
		if err != nil || len(statements) != 1 || statements[0].Gross != 4300 || statements[0].Fee != 860 || statements[0].Net != 3440 {
			t.Fatalf("acme's statements: %+v, %v", statements, err)
		}
	})
}
