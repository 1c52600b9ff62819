// Package goplugin runs native connectors: each connector version is a plugin
// binary that speaks relay.connector.v1 over hashicorp/go-plugin (gRPC with
// mutual TLS). A version's process is started on first use, sandboxed where
// the kernel allows (sandbox.go), shared by every workspace, health-checked,
// restarted after a crash (with backoff while it crash-loops), and never
// outlives the host.
package goplugin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/catalog"
	"github.com/relayhq/relay/sdk/manifest"
	"github.com/relayhq/relay/sdk/protocol"
	"github.com/relayhq/relay/sdk/protocol/connectorv1"
)

var _ core.ConnectorRuntime = (*Runtime)(nil)

// Defaults for the zero values of Config.
const (
	DefaultStartTimeout   = 10 * time.Second
	DefaultCallTimeout    = 30 * time.Second
	DefaultHealthInterval = 10 * time.Second
)

// Restart rules (see slot.retireLocked). A crash loop (failed starts and
// processes that end before answering a call) backs off: the first restart
// is immediate, and each further failure in a row doubles the wait from
// restartBase up to restartMax; an answered call, or a process that stayed
// up for stableAfter, wipes the slate. A process that had answered calls
// is replaced at once, up to crashBurst times in any crashWindow.
const (
	restartBase = 250 * time.Millisecond
	restartMax  = 30 * time.Second
	stableAfter = time.Minute
	crashBurst  = 5
	crashWindow = 10 * time.Second
)

// Config configures a Runtime.
type Config struct {
	// Lookup finds a connector version, usually (*catalog.Catalog).Get. Its
	// errors (ENotFound for an unknown ref) are returned as they are. Nil
	// means no connector is known.
	Lookup func(core.ConnectorRef) (*catalog.Entry, error)
	// Logger receives the runtime's events and every line a plugin writes
	// to stderr, under Named("<name>@<version>"). Nil discards them.
	Logger hclog.Logger
	// EgressAllow is the operator's --egress-allow: the private ranges a
	// connector may reach after all. Each plugin gets it as
	// RELAY_EGRESS_ALLOW and nothing else from the host's environment, and
	// the host applies it to the requests it makes for a sandboxed plugin.
	EgressAllow []netip.Prefix
	// Sandbox is the operator's --native-sandbox; "" is SandboxAuto.
	Sandbox SandboxMode
	// StartTimeout bounds a plugin's start, handshake included.
	StartTimeout time.Duration
	// CallTimeout bounds a call when its action declares no timeout_seconds.
	CallTimeout time.Duration
	// HealthInterval is how often a live plugin is pinged.
	HealthInterval time.Duration
}

// Runtime runs native connectors: one plugin process per connector version.
// Its methods are safe for concurrent use.
//
// Errors are *core.Error: ENotFound from Lookup; EConnectorUnavailable when
// the version has no native binary, its checksum does not match, it will not
// start, it is backing off after repeated crashes, or the runtime is closed;
// EConnectorTimeout; EConnectorCrashed, which names the crash's id and gives
// its panic line only to a call that was alone on the process (see
// slot.crashError); EMessageTooLarge; and the connector's own classified
// errors (EInvalidParams, EUnknownAction, EUpstream*, EEgressDenied,
// EConnectorError). The one exception is a call whose ctx the caller
// cancelled: its error wraps context.Canceled.
type Runtime struct {
	cfg     Config
	env     []string // the plugin's whole environment, besides go-plugin's own variables
	sandbox sandbox

	// Restart rules, fields so that tests can change them.
	restartBase, restartMax, stableAfter time.Duration
	crashBurst                           int
	crashWindow                          time.Duration

	mu     sync.Mutex
	slots  map[core.ConnectorRef]*slot
	closed bool
	// supervisors counts the goroutines that start and watch processes;
	// Close waits for them, and each outlives its process.
	supervisors sync.WaitGroup

	// How busy it is, for PoolStats: atomic adds, since every call
	// passes here.
	versions atomic.Int64 // slots made
	live     atomic.Int64 // slots with a live process
	inFlight atomic.Int64
	waiting  atomic.Int64
	waited   atomic.Int64 // nanoseconds, summed
}

// New returns a runtime. It starts nothing: a plugin starts on its first
// call. It finds out what sandbox this kernel allows and logs what it
// cannot do.
func New(cfg Config) *Runtime {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = DefaultStartTimeout
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if cfg.HealthInterval <= 0 {
		cfg.HealthInterval = DefaultHealthInterval
	}
	allow := make([]string, len(cfg.EgressAllow))
	for i, p := range cfg.EgressAllow {
		allow[i] = p.String()
	}
	sb := newSandbox(cfg.Sandbox)
	switch {
	case sb.mode == SandboxOff:
		cfg.Logger.Warn("native connectors are not sandboxed (--native-sandbox=off): their code is trusted with this host's network and files")
	case sb.mode == SandboxRequired && !sb.complete():
		cfg.Logger.Error("native connectors will not start: --native-sandbox=required, and this host cannot sandbox them", "problems", sb.problems)
	case !sb.complete():
		cfg.Logger.Warn("native connectors run only partly sandboxed on this host", "problems", sb.problems)
	default:
		cfg.Logger.Info("native connectors are sandboxed: own network namespace, Landlock", "landlock_abi", sb.landlock.abi)
	}
	return &Runtime{
		cfg:         cfg,
		sandbox:     sb,
		env:         []string{protocol.EnvEgressAllow + "=" + strings.Join(allow, ",")},
		restartBase: restartBase,
		restartMax:  restartMax,
		stableAfter: stableAfter,
		crashBurst:  crashBurst,
		crashWindow: crashWindow,
		slots:       map[core.ConnectorRef]*slot{},
	}
}

// CheckConfig asks the connector whether a connection's config and secrets
// work. It is bounded by CallTimeout.
func (r *Runtime) CheckConfig(ctx context.Context, ref core.ConnectorRef, conn core.ConnectionData) error {
	s, _, err := r.slot(ref)
	if err != nil {
		return err
	}
	const what = "config check"
	req := CheckConfigRequest(conn)
	if err := s.checkSize(req, what); err != nil {
		return err
	}
	return s.call(ctx, what, r.cfg.CallTimeout, nil, func(ctx context.Context, c connectorv1.ConnectorClient) (*connectorv1.Error, error) {
		resp, err := c.CheckConfig(ctx, req)
		return resp.GetError(), err
	})
}

// Preview asks the connector what Execute would do.
func (r *Runtime) Preview(ctx context.Context, ref core.ConnectorRef, call core.ActionCall) (json.RawMessage, error) {
	return r.action(ctx, ref, call, true)
}

// Execute performs the action.
func (r *Runtime) Execute(ctx context.Context, ref core.ConnectorRef, call core.ActionCall) (json.RawMessage, error) {
	return r.action(ctx, ref, call, false)
}

func (r *Runtime) action(ctx context.Context, ref core.ConnectorRef, call core.ActionCall, preview bool) (json.RawMessage, error) {
	s, e, err := r.slot(ref)
	if err != nil {
		return nil, err
	}
	what := "action " + call.Action
	req := ActionRequest(call)
	if err := s.checkSize(req, what); err != nil {
		return nil, err
	}
	begin := call.Begin
	if preview {
		begin = nil
	}
	var out []byte
	err = s.call(ctx, what, ActionTimeout(e.Manifest, call.Action, r.cfg.CallTimeout), begin, func(ctx context.Context, c connectorv1.ConnectorClient) (*connectorv1.Error, error) {
		if preview {
			resp, err := c.Preview(ctx, req)
			out = resp.GetPreviewJson()
			return resp.GetError(), err
		}
		resp, err := c.Execute(ctx, req)
		out = resp.GetOutputJson()
		return resp.GetError(), err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// slot returns the slot of a connector version, making it on first use.
func (r *Runtime) slot(ref core.ConnectorRef) (*slot, *catalog.Entry, error) {
	if r.cfg.Lookup == nil {
		return nil, nil, core.Errorf(core.ENotFound, "no connector %s", ref)
	}
	e, err := r.cfg.Lookup(ref)
	if err != nil {
		return nil, nil, err
	}
	if e.Native == nil {
		return nil, nil, core.Errorf(core.EConnectorUnavailable, "connector %s has no native binary", ref)
	}
	if r.sandbox.mode == SandboxRequired && !r.sandbox.complete() {
		// Refused before any start: not a crash loop to back off from.
		return nil, nil, r.sandbox.refusal(e.Ref)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, nil, errClosed(ref)
	}
	// One process per version, whatever form the caller's ref names.
	s := r.slots[e.Ref]
	if s == nil {
		s = &slot{rt: r, ref: e.Ref, entry: e, log: r.cfg.Logger.Named(e.Ref.String())}
		r.slots[e.Ref] = s
		r.versions.Add(1)
	}
	return s, e, nil
}

// PoolStats reports how busy the runtime is (core.PoolStats): InUse is
// the live processes, Limit the versions called since the start (one
// process each).
func (r *Runtime) PoolStats() core.PoolStats {
	return core.PoolStats{
		Runtime:  core.RuntimeNative,
		InUse:    r.live.Load(),
		Limit:    r.versions.Load(),
		InFlight: r.inFlight.Load(),
		Waiting:  r.waiting.Load(),
		Waited:   time.Duration(r.waited.Load()),
	}
}

// Isolation says how the version's process is, or will be, sandboxed: the
// same for every version, but for whether a running process took the
// host's network (an older SDK does not know how).
func (r *Runtime) Isolation(ref core.ConnectorRef) core.Isolation {
	iso := r.sandbox.isolation()
	r.mu.Lock()
	s := r.slots[core.ConnectorRef{Name: ref.Name, Version: ref.Version}]
	r.mu.Unlock()
	if s != nil {
		if note := s.hostNetworkNote(); note != "" {
			iso.Notes = append(iso.Notes, note)
		}
	}
	return iso
}

// Close stops every plugin process and waits until they have exited. Calls
// made after Close fail with EConnectorUnavailable.
func (r *Runtime) Close() error {
	r.mu.Lock()
	r.closed = true
	slots := make([]*slot, 0, len(r.slots))
	for _, s := range r.slots {
		slots = append(slots, s)
	}
	r.mu.Unlock()

	var wg sync.WaitGroup
	for _, s := range slots {
		wg.Go(s.close)
	}
	wg.Wait()
	// A start still under way sees the slot closed and stops what it started.
	r.supervisors.Wait()
	return nil
}

func errClosed(ref core.ConnectorRef) error {
	return core.Errorf(core.EConnectorUnavailable, "connector %s is not available: the runtime is shutting down", ref)
}

// The requests of relay.connector.v1 for a host's calls, and the deadline
// of an action: the same for every form a connector runs in (the wasm
// runtime builds its calls with these too).

// CheckConfigRequest is the request that checks a connection.
func CheckConfigRequest(conn core.ConnectionData) *connectorv1.CheckConfigRequest {
	return &connectorv1.CheckConfigRequest{Connection: protoConnection(conn)}
}

// ActionRequest is the request of a preview or an execution.
func ActionRequest(call core.ActionCall) *connectorv1.ActionRequest {
	return &connectorv1.ActionRequest{
		Action:         call.Action,
		InputJson:      call.Input,
		Connection:     protoConnection(call.Connection),
		RunId:          call.RunID,
		IdempotencyKey: call.IdempotencyKey,
		WorkspaceId:    call.WorkspaceID,
		InputValidated: call.InputValidated,
		Traceparent:    call.TraceParent,
	}
}

// ActionTimeout is the action's own timeout_seconds in m, or def.
func ActionTimeout(m *manifest.Manifest, action string, def time.Duration) time.Duration {
	if m != nil {
		if a := m.Action(action); a != nil && a.TimeoutSeconds > 0 {
			return time.Duration(a.TimeoutSeconds) * time.Second
		}
	}
	return def
}

func protoConnection(c core.ConnectionData) *connectorv1.Connection {
	return &connectorv1.Connection{ConfigJson: c.Config, Secrets: c.Secrets}
}

// formatDuration rounds a deadline for a message: "30s", "1.5s", "200ms".
func formatDuration(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(100 * time.Millisecond).String()
}

// formatSize writes a limit in bytes for a message: "4 MiB".
func formatSize(n int) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}
