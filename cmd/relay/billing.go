package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/relayhq/relay/core/sqlstore"
	"github.com/relayhq/relay/marketplace/billing"
)

// cmdBillingClosePeriod closes a billing month (and any earlier one still
// open) on the store: what a server does by itself on the 1st.
func cmdBillingClosePeriod(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg Config
	fs := flag.NewFlagSet("relay billing close-period", flag.ContinueOnError)
	storeFlags(fs, &cfg)
	feePercent := feeFlag(fs)
	output := fs.String("o", "text", "output: text, or json")
	pos, err := parse(fs, args, stdout, stderr)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"usage: relay billing close-period YYYY-MM [--platform-fee-percent P]"}
	}
	if err := checkOutput(*output); err != nil {
		return err
	}
	fee, err := billing.ParseFeePercent(*feePercent)
	if err != nil {
		return usageError{"--platform-fee-percent: " + err.Error()}
	}
	return withStore(ctx, cfg, stderr, func(st *sqlstore.Store) error {
		results, err := billing.New(billing.Config{DB: st}).Close(ctx, pos[0], fee)
		if err != nil {
			return err
		}
		if *output == "json" {
			return writeJSON(stdout, results)
		}
		for _, r := range results {
			if !r.Closed {
				fmt.Fprintf(stdout, "%s was closed before: nothing made\n", r.Period)
				continue
			}
			fmt.Fprintf(stdout, "closed %s: %s, %s\n", r.Period, plural(r.Invoices, "invoice"), plural(r.Statements, "publisher statement"))
		}
		return nil
	})
}
