// Package actions is Relay's engine: the connections a workspace has, the
// actions they offer, preview with single-use confirm tokens, and execution
// exactly once per idempotency key with every run and audit record written
// durably before the caller hears back (docs/execution.md).
package actions

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/catalog"
)

// Store is the storage the engine needs.
type Store interface {
	core.ConnectionStore
	core.RunStore
	core.AuditStore
}

// Sealer encrypts and decrypts connection secrets, bound to their row.
type Sealer interface {
	Seal(ctx context.Context, workspaceID, connectionID, field string, plaintext []byte) ([]byte, error)
	Open(ctx context.Context, workspaceID, connectionID, field string, ciphertext []byte) ([]byte, error)
}

// Config wires the engine.
type Config struct {
	Store   Store
	Catalog *catalog.Catalog
	Runtime core.ConnectorRuntime
	Secrets Sealer
	Logger  hclog.Logger
	// Respond renders a finished (or interrupted) run as the HTTP response
	// that an Idempotency-Key replays.
	Respond func(*core.Run) (status int, body []byte)
	// Observe, if set, is told of every run that ends, for metrics.
	Observe func(run *core.Run, took time.Duration)
	// SweepInterval is how often expired idempotency records and confirm
	// tokens are deleted; default 10 minutes. They are ignored once
	// expired either way: sweeping only keeps the tables small.
	SweepInterval time.Duration
}

// Service is the engine. Make it with New and stop it with Close.
type Service struct {
	cfg     Config
	log     hclog.Logger
	schemas schemaCache
	now     func() time.Time

	// Async runs go on after their request; they are stopped by Close.
	bg       context.Context
	stopBG   context.CancelFunc
	inflight sync.WaitGroup
}

// New returns the engine.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	bg, stop := context.WithCancel(context.Background())
	// Times are kept to the microsecond, as the store keeps them, so that a
	// response stored for replay is byte for byte the one first sent.
	now := func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }
	s := &Service{cfg: cfg, log: cfg.Logger, now: now, bg: bg, stopBG: stop}
	if cfg.SweepInterval <= 0 {
		cfg.SweepInterval = 10 * time.Minute
	}
	go s.sweep(cfg.SweepInterval)
	return s
}

// sweep deletes expired idempotency records and confirm tokens until Close.
func (s *Service) sweep(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.bg.Done():
			return
		case <-t.C:
			if err := s.cfg.Store.DeleteExpired(s.bg, s.now()); err != nil && s.bg.Err() == nil {
				s.log.Warn("deleting expired idempotency records failed", "error", err)
			}
		}
	}
}

// Recover marks the runs a previous process left unfinished interrupted,
// and answers their idempotency keys with that, so a retry replays the
// interruption instead of running the action a second time.
func (s *Service) Recover(ctx context.Context) (int, error) {
	return s.cfg.Store.InterruptRuns(ctx, s.now(), s.cfg.Respond)
}

// Close waits for async runs until ctx ends, then cancels those still going;
// the next start marks them interrupted.
func (s *Service) Close(ctx context.Context) {
	done := make(chan struct{})
	go func() { s.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.stopBG()
		<-done
	}
	s.stopBG()
}

// Caller is who makes a request: the API key, and where from.
type Caller struct {
	WorkspaceID string
	KeyID       string
	Role        core.Role
	IP          string
	RequestID   string
}

// audit makes an audit record of the caller's.
func (c Caller) audit(action, target, outcome string, details []byte) *core.AuditRecord {
	return &core.AuditRecord{
		WorkspaceID: c.WorkspaceID, KeyID: c.KeyID, Role: string(c.Role), IP: c.IP, RequestID: c.RequestID,
		Action: action, Target: target, Outcome: outcome, Details: details,
	}
}

// Audit appends a record of a caller's action, for the mutations that do
// not go through the engine (keys, for example).
func (s *Service) Audit(ctx context.Context, c Caller, action, target, outcome string, details []byte) error {
	return s.cfg.Store.AppendAudit(ctx, c.audit(action, target, outcome, details))
}
