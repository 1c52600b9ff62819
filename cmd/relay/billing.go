package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/relayhq/relay/core/sqlstore"
	"github.com/relayhq/relay/marketplace/billing"
)

// cmdBillingClosePeriod closes a billing month (and any earlier one still
// open) on the store: what a server does by itself on the 1st.
func cmdBillingClosePeriod(fs *flag.FlagSet) runFunc {
	var cfg Config
	storeFlags(fs, &cfg)
	feePercent := feeFlag(fs)
	output := outputFlag(fs)
	return func(ctx context.Context, pos []string, stdout, stderr io.Writer) error {
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
}

// creditLines is --line N=AMOUNT, repeated.
type creditLines map[int]int64

func (c creditLines) String() string { return fmt.Sprint(map[int]int64(c)) }

func (c creditLines) Set(v string) error {
	n, amount, ok := strings.Cut(v, "=")
	line, err1 := strconv.Atoi(n)
	a, err2 := strconv.ParseInt(amount, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return fmt.Errorf("%q: want LINE=AMOUNT, such as 1=250 (minor units)", v)
	}
	if _, dup := c[line]; dup {
		return fmt.Errorf("line %d given twice", line)
	}
	c[line] = a
	return nil
}

// cmdBillingCreditNote issues a credit note against an invoice on the
// store.
func cmdBillingCreditNote(fs *flag.FlagSet) runFunc {
	var cfg Config
	storeFlags(fs, &cfg)
	lines := creditLines{}
	fs.Var(lines, "line", "LINE=AMOUNT: credit AMOUNT (minor units) of the invoice's line LINE; repeat for more lines")
	reason := fs.String("reason", "", "why: kept on the credit note and in the workspace's audit log")
	output := outputFlag(fs)
	return func(ctx context.Context, pos []string, stdout, stderr io.Writer) error {
		if len(pos) != 1 || len(lines) == 0 || *reason == "" {
			return usageError{"usage: relay billing credit-note INVOICE_ID --line N=AMOUNT [--line …] --reason TEXT"}
		}
		if err := checkOutput(*output); err != nil {
			return err
		}
		return withStore(ctx, cfg, stderr, func(st *sqlstore.Store) error {
			note, err := billing.New(billing.Config{DB: st}).IssueCreditNote(ctx, pos[0], lines, *reason)
			if err != nil {
				return err
			}
			if *output == "json" {
				return writeJSON(stdout, note)
			}
			fmt.Fprintf(stdout, "credit note %s: %s on invoice %s, in %s's statements\n", note.ID,
				billing.FormatAmount(note.Total, note.Currency), note.InvoiceID, note.Period)
			return nil
		})
	}
}
