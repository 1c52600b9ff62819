package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/audit"
	"github.com/relayhq/relay/core/secrets"
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

// newAuditCheck makes the check, not yet running, which checks
// checkpoints with key; nil when interval is 0.
func newAuditCheck(st *sqlstore.Store, interval time.Duration, key ed25519.PublicKey, log hclog.Logger) *auditCheck {
	if interval <= 0 {
		log.Info("the audit log is not verified while the server runs (--audit-verify-interval 0); relay audit verify checks it")
		return nil
	}
	return &auditCheck{checker: audit.NewChecker(st, log, interval, key)}
}

// auditCheckpointKey is the server key (wrapped by the master key) from
// which the key that signs the audit log's checkpoints is drawn.
const auditCheckpointKey = "audit-checkpoint-key"

// errNoAuditKey is auditSigner's error for a store that has no
// checkpoint key yet, when not asked to make one.
var errNoAuditKey = errors.New("no audit checkpoint key")

// auditSigner returns the signer of the audit log's checkpoints, its key
// drawn from a 32-byte server key wrapped by masterKey: the stored one,
// or, with create, one made now. Without create on a store that has
// none, errNoAuditKey: no checkpoint can have been made.
func auditSigner(ctx context.Context, masterKey []byte, st core.ServerKeyStore, create bool) (*audit.Signer, error) {
	seed, err := secrets.ServerKey(ctx, masterKey, st, auditCheckpointKey, func() ([]byte, error) {
		if !create {
			return nil, errNoAuditKey
		}
		seed := make([]byte, ed25519.SeedSize)
		_, err := rand.Read(seed)
		return seed, err
	})
	if errors.Is(err, errNoAuditKey) {
		return nil, err
	} else if err != nil {
		return nil, fmt.Errorf("the audit checkpoint key: %w", err)
	}
	defer clear(seed)
	return audit.NewSigner(seed)
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

// verified is what the engine's audit purge asks of the check (the last
// record it verified); nil when the check is off.
func (a *auditCheck) verified() func(string) (int64, bool) {
	if a == nil {
		return nil
	}
	return a.checker.Verified
}

// stats is what /metrics reads of the check; nil when it is off.
func (a *auditCheck) stats() func() core.AuditVerifyStats {
	if a == nil {
		return nil
	}
	return a.checker.Stats
}
