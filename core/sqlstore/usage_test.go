package sqlstore

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relayhq/relay/core"
)

// usageRow is a row of usage_daily.
type usageRow struct {
	Workspace       string `db:"workspace_id"`
	Period          string `db:"period"`
	Day             string `db:"day"`
	Package         string `db:"package"`
	Template        string `db:"template"`
	Installation    string `db:"installation"`
	Action          string `db:"action"`
	ConnectorAction string `db:"connector_action"`
	Runs            int64  `db:"runs"`
}

func usageRows(t *testing.T, s *Store) []usageRow {
	t.Helper()
	var rows []usageRow
	err := s.db.SelectContext(context.Background(), &rows, `SELECT * FROM usage_daily
		ORDER BY workspace_id, period, day, package, template, installation, action, connector_action`)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// usageIn sums the runs counted in period.
func usageIn(t *testing.T, s *Store, period string) int64 {
	t.Helper()
	var n int64
	err := s.db.GetContext(context.Background(), &n, s.db.Rebind(`SELECT COALESCE(SUM(runs), 0) FROM usage_daily WHERE period = ?`), period)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// finishAt starts run and finishes it with status at the time given.
func finishAt(t testing.TB, s *Store, run *core.Run, status core.RunStatus, at time.Time) error {
	t.Helper()
	mustStart(t, s, run, nil)
	run.Status = status
	if status == core.RunFailed {
		run.Error = &core.RunError{Code: "provider_error", Message: "no"}
	}
	run.FinishedAt = &at
	return s.FinishExecution(context.Background(), run, "", 0, nil, newAudit("", "action.execute"))
}

// Each succeeded run is counted once, under its UTC day, package, preset
// and action; failed runs and a second finish are not counted.
func TestUsageCountsSucceededRuns(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		w := mustCreateWorkspace(t, s, "acme")
		// 23:59:59.999 in UTC is the last moment of the month, wherever
		// the finishing server is.
		last := time.Date(2026, 12, 31, 23, 59, 59, 999_000_000, time.UTC).In(time.FixedZone("UTC-5", -5*3600))
		first := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
		runs := []struct {
			action, pkg string
			preset      *core.RunPreset
			status      core.RunStatus
			at          time.Time
		}{
			{"echo.echo", "relay/echo", nil, core.RunSucceeded, last},
			{"echo.echo", "relay/echo", nil, core.RunSucceeded, last},
			{"echo.echo", "relay/echo", nil, core.RunFailed, last},
			{"echo.echo", "relay/echo", nil, core.RunSucceeded, first},
			{"crm.add_lead", "acme/crm", &core.RunPreset{Installation: "sales", Template: "acme/leads",
				TemplateVersion: "1.0.0", Action: "crm.create"}, core.RunSucceeded, last},
			{"webhook.send", "", nil, core.RunSucceeded, first},
		}
		var done *core.Run
		for _, r := range runs {
			run := newRun(w.ID, r.action)
			run.Package, run.Preset = r.pkg, r.preset
			if err := finishAt(t, s, run, r.status, r.at); err != nil {
				t.Fatal(err)
			}
			done = run
		}
		// A run finishes once: the second finish is refused and counts
		// nothing.
		again := *done
		wantCode(t, s.FinishExecution(context.Background(), &again, "", 0, nil, nil), core.EConflict)
		want := []usageRow{
			{w.ID, "2026-12", "2026-12-31", "acme/crm", "acme/leads", "sales", "crm.add_lead", "create", 1},
			{w.ID, "2026-12", "2026-12-31", "relay/echo", "", "", "echo.echo", "echo", 2},
			{w.ID, "2027-01", "2027-01-01", "", "", "", "webhook.send", "send", 1},
			{w.ID, "2027-01", "2027-01-01", "relay/echo", "", "", "echo.echo", "echo", 1},
		}
		got := usageRows(t, s)
		if len(got) != len(want) {
			t.Fatalf("usage rows:\n%+v\nwant\n%+v", got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("row %d = %+v, want %+v", i, got[i], want[i])
			}
		}
	})
}

// After a month is closed, runs that finished in it are counted in the
// first open month, under their own day; closing again changes nothing.
func TestUsageAfterClose(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		w := mustCreateWorkspace(t, s, "acme")
		dec := time.Date(2026, 12, 31, 23, 0, 0, 0, time.UTC)
		if err := finishAt(t, s, newRun(w.ID, "echo.echo"), core.RunSucceeded, dec); err != nil {
			t.Fatal(err)
		}
		for i, want := range []bool{true, false} {
			closed, err := s.CloseUsagePeriod(ctx, "2026-12")
			if err != nil || closed != want {
				t.Fatalf("close %d = %v, %v; want %v", i+1, closed, err, want)
			}
		}
		// An earlier month is closed already.
		if closed, err := s.CloseUsagePeriod(ctx, "2026-11"); err != nil || closed {
			t.Fatalf("closing November after December = %v, %v", closed, err)
		}
		_, err := s.CloseUsagePeriod(ctx, "2026-13")
		wantCode(t, err, core.EInvalid)
		if p, err := s.OpenUsagePeriod(ctx); err != nil || p != "2027-01" {
			t.Fatalf("open period = %q, %v", p, err)
		}
		if err := finishAt(t, s, newRun(w.ID, "echo.echo"), core.RunSucceeded, dec); err != nil {
			t.Fatal(err)
		}
		if dec, jan := usageIn(t, s, "2026-12"), usageIn(t, s, "2027-01"); dec != 1 || jan != 1 {
			t.Fatalf("December %d, January %d; want 1 and 1", dec, jan)
		}
		rows := usageRows(t, s)
		if rows[1].Period != "2027-01" || rows[1].Day != "2026-12-31" {
			t.Fatalf("late row = %+v", rows[1])
		}
	})
}

// Closing a month while runs of it keep finishing: what the month holds
// when the close returns is final, and every succeeded run is counted in
// exactly one month.
func TestUsageCloseDuringFinishes(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		w := mustCreateWorkspace(t, s, "acme")
		dec := time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC)
		const writers, each = 8, 25
		var wg sync.WaitGroup
		closed := make(chan int64)
		errs := make(chan error, writers*each)
		var finished atomic.Int64
		for range writers {
			wg.Go(func() {
				for range each {
					errs <- finishAt(t, s, newRun(w.ID, "echo.echo"), core.RunSucceeded, dec)
					finished.Add(1)
				}
			})
		}
		go func() {
			for finished.Load() < writers*each/4 {
				time.Sleep(time.Millisecond)
			}
			if _, err := s.CloseUsagePeriod(ctx, "2026-12"); err != nil {
				t.Error(err)
			}
			closed <- usageIn(t, s, "2026-12")
		}()
		atClose := <-closed
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if after := usageIn(t, s, "2026-12"); after != atClose {
			t.Fatalf("December held %d runs when closed, %d later", atClose, after)
		}
		if total := atClose + usageIn(t, s, "2027-01"); total != writers*each {
			t.Fatalf("%d runs counted, %d succeeded", total, writers*each)
		}
		t.Logf("%d runs in December, %d after the close", atClose, writers*each-atClose)
	})
}
