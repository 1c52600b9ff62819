package sqlstore

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/relayhq/relay/core"
)

// Holdings count the UTC days of a month on which a workspace held a
// listing at any moment, through any holder, once each: an install and an
// uninstall on one day is a day, a reinstall on that day adds none, two
// installations at once count once, a holding ended at midnight does not
// reach the day that starts then, and one still open runs to the month's
// end.
func TestHoldings(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		at := func(day, clock string) time.Time {
			v, err := time.Parse(time.DateTime, "2030-"+day+" "+clock)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		set := func(ws, holder string, when time.Time, listings ...string) {
			t.Helper()
			err := s.InAuditedTx(ctx, func(ctx context.Context, tx *sqlx.Tx, _ func(*core.AuditRecord) error) error {
				return SetHoldings(ctx, tx, ws, holder, listings, when)
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		// w1: a template (and its connector) installed in January, the
		// connector dropped by an upgrade on Feb 10, uninstalled Feb 20
		// at midnight.
		set("w1", HolderInstallation("i1"), at("01-15", "10:00:00"), "acme/kit", "acme/notes", "acme/kit")
		set("w1", HolderInstallation("i1"), at("02-10", "12:00:00"), "acme/kit")
		set("w1", HolderInstallation("i1"), at("02-20", "00:00:00"))
		// w1 also installed the connector itself on Feb 5, still held.
		set("w1", HolderConnector("notes"), at("02-05", "23:59:59.999"), "acme/notes")
		// w2: installed and uninstalled on Feb 3, installed again that
		// day under another installation, gone on Feb 4 at 00:00:01.
		set("w2", HolderInstallation("i2"), at("02-03", "08:00:00"), "acme/kit")
		set("w2", HolderInstallation("i2"), at("02-03", "09:00:00"))
		set("w2", HolderInstallation("i3"), at("02-03", "20:00:00"), "acme/kit")
		set("w2", HolderInstallation("i3"), at("02-04", "00:00:01"))
		// w3: held only in March.
		set("w3", HolderInstallation("i4"), at("03-01", "00:00:00"), "acme/kit")
		// Setting what is held again changes nothing.
		set("w3", HolderInstallation("i4"), at("03-02", "00:00:00"), "acme/kit")

		var got map[string]map[string]int
		err := s.InAuditedTx(ctx, func(ctx context.Context, tx *sqlx.Tx, _ func(*core.AuditRecord) error) error {
			var err error
			got, err = HeldDays(ctx, tx, []string{"acme/kit", "acme/notes", "acme/none"}, at("02-01", "00:00:00"), at("03-01", "00:00:00"))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]map[string]int{
			"w1": {"acme/kit": 19, "acme/notes": 28}, // Feb 1–19; Feb 1–10 and 5–28
			"w2": {"acme/kit": 2},                    // Feb 3 and 4
		}
		if len(got) != len(want) || !maps.Equal(got["w1"], want["w1"]) || !maps.Equal(got["w2"], want["w2"]) {
			t.Fatalf("held days in February: %v, want %v", got, want)
		}
		if n := countRows(t, s, "billing_holdings"); n != 6 {
			t.Fatalf("%d holdings, want 6", n)
		}
	})
}
