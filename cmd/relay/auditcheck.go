package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/audit"
	"github.com/relayhq/relay/core/sqlstore"
)

// defaultAuditVerifyInterval is --audit-verify-interval's default. A pass
// reads one indexed row per workspace and the records appended since the
// last pass, so the interval sets how soon a break is seen, hardly what
// the check costs.
const defaultAuditVerifyInterval = time.Minute

// minAuditVerifyInterval keeps a typo (1ms) from turning the check into a
// loop of queries.
const minAuditVerifyInterval = time.Second

// auditVerifyFlag registers --audit-verify-interval: how often `relay
// serve` verifies the audit records appended since its last pass; 0 turns
// the check off.
func auditVerifyFlag(fs *flag.FlagSet, p *time.Duration) error {
	d, err := time.ParseDuration(env("AUDIT_VERIFY_INTERVAL", defaultAuditVerifyInterval.String()))
	if err != nil || checkAuditVerifyInterval(d) != nil {
		return usageError{fmt.Sprintf("RELAY_AUDIT_VERIFY_INTERVAL: want 0 (off) or a duration of at least %s, such as %s", minAuditVerifyInterval, defaultAuditVerifyInterval)}
	}
	fs.DurationVar(p, "audit-verify-interval", d, "how often to verify the audit records appended since the last pass, as relay audit verify does; 0 turns it off (RELAY_AUDIT_VERIFY_INTERVAL)")
	return nil
}

func checkAuditVerifyInterval(d time.Duration) error {
	if d != 0 && d < minAuditVerifyInterval {
		return usageError{fmt.Sprintf("--audit-verify-interval %s: want 0 (off) or at least %s", d, minAuditVerifyInterval)}
	}
	return nil
}

// auditCheck runs the periodic check of the audit log beside the server;
// nil when it is off.
type auditCheck struct {
	checker *audit.Checker
	stop    context.CancelFunc
	done    chan struct{}
}

// newAuditCheck makes the check, not yet running; nil when interval is 0.
func newAuditCheck(st *sqlstore.Store, interval time.Duration, log hclog.Logger) *auditCheck {
	if interval <= 0 {
		log.Info("the audit log is not verified while the server runs (--audit-verify-interval 0); relay audit verify checks it")
		return nil
	}
	return &auditCheck{checker: audit.NewChecker(st, log, interval)}
}

// start runs the check's passes in the background until close.
func (a *auditCheck) start() {
	if a == nil {
		return
	}
	ctx, stop := context.WithCancel(context.Background())
	a.stop, a.done = stop, make(chan struct{})
	go func() {
		defer close(a.done)
		a.checker.Run(ctx)
	}()
}

// close stops the check and waits for the pass under way to end.
func (a *auditCheck) close() {
	if a == nil || a.stop == nil {
		return
	}
	a.stop()
	<-a.done
	a.stop = nil
}

// stats is what /metrics reads of the check; nil when it is off.
func (a *auditCheck) stats() func() core.AuditVerifyStats {
	if a == nil {
		return nil
	}
	return a.checker.Stats
}
