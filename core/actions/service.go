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
	"github.com/relayhq/relay/core/audit"
	"github.com/relayhq/relay/core/catalog"
)

// Store is the storage the engine needs.
type Store interface {
	core.ConnectionStore
	core.RunStore
	core.AuditStore
	core.WorkspaceStore
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
	// Presets, when set, is where the workspaces' presets (installed
	// templates' actions) are found.
	Presets core.PresetSource
	// Guard, when set, may refuse each run before it is stored (billing's
	// spend caps).
	Guard core.RunGuard
	// Runtime runs the connector versions of Catalog: the engine tells it
	// that params it validated against Catalog's manifests need no second
	// check (core.ActionCall.InputValidated).
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
	// RunRetentionDays and AuditRetentionDays are how many days a
	// workspace without its own retention keeps its ended runs and its
	// audit records; 0 keeps them forever. Every PurgeInterval (default
	// an hour; the first a minute after start) the engine purges what is
	// past its workspace's retention. Audit records give way to a
	// checkpoint that AuditSigner signs; without one they are kept.
	RunRetentionDays   int
	AuditRetentionDays int
	AuditSigner        *audit.Signer
	PurgeInterval      time.Duration
	// AuditVerified, when set, is the seq of a workspace's last audit
	// record that the server's periodic check verified, false when it has
	// not verified the workspace (or found it broken): no record past it
	// is purged (audit.Checker.Verified). Without it, the purge trusts
	// the chain as it reads it.
	AuditVerified func(workspaceID string) (int64, bool)
	// IdempotencyRetentionHours is how long a workspace without its own
	// retention remembers an Idempotency-Key; 0 is core.IdempotencyTTL.
	IdempotencyRetentionHours int
	// StaleAfter is how long an engine instance may go without a
	// heartbeat before its unfinished runs are presumed orphaned and
	// interrupted by another (or the next) engine; default 30 seconds.
	// Every engine on one database should use the same value, and their
	// clocks must agree to well within it.
	StaleAfter time.Duration
	// HeartbeatInterval is how often the engine records that it is alive
	// and looks for orphaned runs to interrupt; default StaleAfter/6 (5
	// seconds by default). It must be well below StaleAfter, or the
	// engine's own runs may be presumed orphaned.
	HeartbeatInterval time.Duration
	// QueueLimit is the most async runs of one connector version that may
	// wait on this engine for their call to begin; past it an async
	// execute is refused (EUnavailable, with a RetryAfter). It also bounds
	// how many queued runs of stopped engines this one takes over at
	// once. Default DefaultQueueLimit.
	QueueLimit int
}

// DefaultQueueLimit is Config.QueueLimit's default.
const DefaultQueueLimit = 1000

// DeadInstanceAfter is how long after its last heartbeat an engine
// instance's record is deleted.
const DeadInstanceAfter = time.Hour

// Service is the engine. Make it with New and stop it with Close.
type Service struct {
	cfg     Config
	log     hclog.Logger
	schemas schemaCache
	sealed  sealedCache
	// presets are the presets calls resolved (presetKey →
	// *cachedPreset), each used again while its connection is unchanged.
	presets sync.Map
	now     func() time.Time
	// id is this engine's instance id: the owner of the runs it starts.
	id string

	// Async runs go on after their request; they, and sync runs still
	// going when Close gives up waiting, are stopped by Close. inflight
	// counts the requests and the calls that began; jobs counts the async
	// jobs, begun or waiting.
	bg       context.Context
	stopBG   context.CancelFunc
	inflight sync.WaitGroup
	jobs     sync.WaitGroup
	closeMu  sync.Mutex
	closing  bool

	queue *queue
	limbo limbo

	// The heartbeat goes on until the runs in flight are done.
	hb        context.Context
	stopHB    context.CancelFunc
	hbStopped chan struct{}
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
	if cfg.SweepInterval <= 0 {
		cfg.SweepInterval = 10 * time.Minute
	}
	if cfg.StaleAfter <= 0 {
		cfg.StaleAfter = 30 * time.Second
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = cfg.StaleAfter / 6
	}
	if cfg.QueueLimit <= 0 {
		cfg.QueueLimit = DefaultQueueLimit
	}
	if cfg.PurgeInterval <= 0 {
		cfg.PurgeInterval = time.Hour
	}
	hb, stopHB := context.WithCancel(context.Background())
	s := &Service{
		cfg: cfg, log: cfg.Logger, now: now, id: core.NewID(), bg: bg, stopBG: stop,
		hb: hb, stopHB: stopHB, hbStopped: make(chan struct{}), queue: newQueue(cfg.QueueLimit),
	}
	go s.sweep(cfg.SweepInterval)
	go s.purge(min(time.Minute, cfg.PurgeInterval), cfg.PurgeInterval)
	go s.heartbeat()
	return s
}

// InstanceID is this engine's instance id, the owner of the runs it
// starts. Each engine gets a new one.
func (s *Service) InstanceID() string { return s.id }

// heartbeat records that the engine is alive, at once and then every
// HeartbeatInterval, and each time recovers the runs of engines that
// stopped heartbeating (reclaim), until Close stops it.
func (s *Service) heartbeat() {
	defer close(s.hbStopped)
	if err := s.cfg.Store.Heartbeat(s.hb, s.id, s.now()); err != nil && s.hb.Err() == nil {
		s.log.Warn("recording the engine's heartbeat failed", "instance", s.id, "error", err)
	}
	t := time.NewTicker(s.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-s.hb.Done():
			return
		case <-t.C:
			if err := s.cfg.Store.Heartbeat(s.hb, s.id, s.now()); err != nil {
				if s.hb.Err() == nil {
					s.log.Warn("recording the engine's heartbeat failed", "instance", s.id, "error", err)
				}
				continue
			}
			if _, err := s.reclaim(s.hb); err != nil && s.hb.Err() == nil {
				s.log.Warn("recovering the runs of stopped engines failed", "error", err)
			}
		}
	}
}

// Recovered counts what reclaim did.
type Recovered struct {
	Interrupted int // running runs of stopped engines, ended interrupted
	Requeued    int // running runs of stopped engines queued again, to run again with the same key
	Claimed     int // queued runs taken over, to run here
}

// reclaim recovers the runs of engines that are not alive: their running
// runs are interrupted, or queued again when their action may run again;
// their queued runs, and those queued again, are claimed to run here, as
// many as this engine has room for. It also settles the runs whose start
// the database did not confirm, and deletes the records of instances dead
// for DeadInstanceAfter.
func (s *Service) reclaim(ctx context.Context) (Recovered, error) {
	var r Recovered
	now := s.now()
	var err error
	r.Interrupted, r.Requeued, err = s.cfg.Store.InterruptOrphanedRuns(ctx, now, now.Add(-s.cfg.StaleAfter), s.cfg.Respond, s.mayRunAgain)
	if err != nil {
		return r, err
	}
	if r.Interrupted > 0 || r.Requeued > 0 {
		s.log.Warn("runs of an engine that stopped heartbeating were cut short", "interrupted", r.Interrupted, "queued_again", r.Requeued)
	}
	if s.isClosing() {
		return r, nil // what is not done stays for the others
	}
	s.settleLimbo(ctx)
	if r.Claimed, err = s.claim(ctx); err != nil {
		return r, err
	}
	if r.Claimed > 0 {
		s.log.Info("took over queued runs of engines that stopped", "runs", r.Claimed)
	}
	if _, err := s.cfg.Store.DeleteDeadInstances(ctx, now.Add(-DeadInstanceAfter)); err != nil {
		return r, err
	}
	return r, nil
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

// purge purges the runs and audit records past their retention after
// first, then every every, until Close.
func (s *Service) purge(first, every time.Duration) {
	t := time.NewTimer(first)
	defer t.Stop()
	for {
		select {
		case <-s.bg.Done():
			return
		case <-t.C:
			if _, err := s.PurgeRuns(s.bg, s.cfg.RunRetentionDays); err != nil && s.bg.Err() == nil {
				s.log.Warn("purging runs past their retention failed", "error", err)
			}
			if _, err := s.PurgeAudit(s.bg, s.cfg.AuditRetentionDays); err != nil && s.bg.Err() == nil {
				s.log.Warn("purging audit records past their retention failed", "error", err)
			}
			t.Reset(every)
		}
	}
}

// DefaultRetention is the retention of a workspace without its own: days
// of runs and audit records (0 is forever; audit records are kept forever
// without an AuditSigner) and hours of idempotency keys.
func (s *Service) DefaultRetention() (runDays, auditDays, idempotencyHours int) {
	auditDays = s.cfg.AuditRetentionDays
	if s.cfg.AuditSigner == nil {
		auditDays = 0
	}
	return s.cfg.RunRetentionDays, auditDays, s.idempotencyHours(0)
}

// idempotencyHours is how long a key of a workspace whose own retention
// is own hours (0: none) is remembered.
func (s *Service) idempotencyHours(own int) int {
	switch {
	case own > 0:
		return own
	case s.cfg.IdempotencyRetentionHours > 0:
		return s.cfg.IdempotencyRetentionHours
	default:
		return int(core.IdempotencyTTL / time.Hour)
	}
}

// Recover, called at start before serving, records the engine's first
// heartbeat, then recovers the unfinished runs whose owner is not alive
// (none, no instance record, or no heartbeat for StaleAfter): running ones
// are interrupted, their idempotency keys answered with that so that a
// retry replays the interruption instead of running the action a second
// time, or queued again when their action may run again; queued ones are
// taken over and run here. Runs of other live engines on the same
// database are left alone. The heartbeat repeats the same recovery every
// HeartbeatInterval.
func (s *Service) Recover(ctx context.Context) (Recovered, error) {
	if err := s.cfg.Store.Heartbeat(ctx, s.id, s.now()); err != nil {
		return Recovered{}, err
	}
	return s.reclaim(ctx)
}

// Close waits for the requests in flight and the calls that began, sync
// and async, until ctx ends, then cancels those still going (they cannot
// record their end, and are interrupted as orphaned). Async runs still
// waiting for their call to begin stay queued. Then it stops the heartbeat
// and deletes the engine's instance record, so that whatever it leaves
// unfinished is recovered at once by another engine or the next start.
func (s *Service) Close(ctx context.Context) {
	s.closeMu.Lock()
	s.closing = true
	s.closeMu.Unlock()
	done := make(chan struct{})
	go func() { s.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.stopBG()
		<-done
	}
	s.stopBG()
	// No heartbeat, so no more runs claimed; then no job left.
	s.stopHB()
	<-s.hbStopped
	s.jobs.Wait()
	// ctx may be over: the record is deleted all the same.
	del, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.cfg.Store.DeleteInstance(del, s.id); err != nil {
		s.log.Warn("deleting the engine's instance record failed; its unfinished runs are recovered once it is stale", "instance", s.id, "error", err)
	}
}

// stopHeartbeat stops the heartbeat without deleting the instance record,
// as if the process had died: for tests.
func (s *Service) stopHeartbeat() {
	s.stopHB()
	<-s.hbStopped
}

// Caller is who makes a request: the API key, and where from.
type Caller struct {
	WorkspaceID string
	KeyID       string
	Role        core.Role
	IP          string
	RequestID   string
	// IdempotencyHours is the workspace's own idempotency retention; 0
	// when it has none (the server's).
	IdempotencyHours int
}

// audit makes an audit record of the caller's.
// AuditRecord is the record of the caller's action, for a store method
// that writes it in the transaction of the change it records.
func (c Caller) AuditRecord(action, target, outcome string, details []byte) *core.AuditRecord {
	return c.audit(action, target, outcome, details)
}

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

func (s *Service) isClosing() bool {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	return s.closing
}

// track counts a run in flight, unless Close has begun.
func (s *Service) track() bool {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closing {
		return false
	}
	s.inflight.Add(1)
	return true
}
