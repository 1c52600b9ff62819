package goplugin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-plugin"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/catalog"
	"github.com/relayhq/relay/sdk/egress"
	"github.com/relayhq/relay/sdk/hostnet"
	"github.com/relayhq/relay/sdk/manifest"
	"github.com/relayhq/relay/sdk/protocol"
	"github.com/relayhq/relay/sdk/protocol/connectorv1"
)

// process is one running plugin.
type process struct {
	client  *plugin.Client
	proto   plugin.ClientProtocol
	conn    connectorv1.ConnectorClient
	cmd     *exec.Cmd
	pid     int
	started time.Time
	stderr  *stderrTail
	dir     privateDir      // "" when not sandboxed
	lent    *hostnet.Server // the host's network lent to it, nil when not
	// lendErr is why the process did not take the host's network: an
	// older SDK answers Unimplemented. Set before the process is in use.
	lendErr error

	probe    chan struct{} // asks the watcher for a health check now
	gone     chan struct{} // closed once the process has exited and been reaped
	stopOnce sync.Once

	// Guarded by the slot's mu.
	retired  bool
	crash    crash // set when retired
	inflight int   // calls given this process by get and not yet released
	served   bool  // it has answered a call
	orphaned bool  // a call left it without an answer: that handler may still be running
}

// startProcess starts the connector's binary and connects to it. It
// returns an EConnectorUnavailable error when it cannot.
func (s *slot) startProcess() (*process, error) {
	// go-plugin hashes cmd.Path relative to the host's working directory
	// while exec resolves a relative Path against cmd.Dir: make them agree.
	path, err := filepath.Abs(s.entry.Native.Path)
	if err != nil {
		return nil, core.Errorf(core.EConnectorUnavailable, "connector %s could not be started: %v", s.ref, err)
	}
	// go-plugin's own message for a missing binary names the path, which
	// is the operator's business, not the caller's.
	if _, err := os.Stat(path); err != nil {
		s.log.Error("connector binary is missing", "error", err)
		return nil, core.Errorf(core.EConnectorUnavailable, "connector %s could not be started: its binary is missing", s.ref)
	}
	sb := s.rt.sandbox // SandboxRequired's refusal comes before: see Runtime.slot
	cmd := exec.Command(path)
	// go-plugin appends its own variables to cmd.Env; a clipped copy keeps
	// concurrent starts from appending into one backing array.
	cmd.Env = slices.Clip(slices.Clone(s.rt.env))
	setParentDeathSignal(cmd)
	var dir privateDir
	if sb.on() {
		// An empty directory of its own to work in, where go-plugin also
		// puts its socket: the one place the sandbox lets it write.
		if dir, err = makePrivateDir(); err != nil {
			s.log.Error("could not make a connector's private directory", "error", err)
			return nil, core.Errorf(core.EConnectorUnavailable, "connector %s could not be started: its private directory could not be made", s.ref)
		}
		cmd.Dir = dir.work()
		cmd.Env = append(cmd.Env, plugin.EnvUnixSocketDir+"="+string(dir), "TMPDIR="+dir.tmp())
		if sb.namespaces {
			isolateCmd(cmd)
		}
		if sb.landlock.ok() {
			// The process inherits the rules of the thread that starts
			// it: this one, locked to supervise until the process is gone.
			if err := sb.landlock.restrictThread(path, dir); err != nil {
				dir.remove()
				s.log.Error("could not apply a connector's Landlock rules; not started", "error", err)
				return nil, core.Errorf(core.EConnectorUnavailable, "connector %s could not be started: its filesystem sandbox could not be applied", s.ref)
			}
		}
	} else {
		// Relative paths a connector uses resolve in its own folder, not
		// wherever the operator happened to start the server.
		cmd.Dir = filepath.Dir(path)
	}

	stderr := newStderrTail()
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  protocol.Handshake,
		VersionedPlugins: protocol.VersionedPlugins(nil),
		Cmd:              cmd,
		// Hashed at every start; a fresh hash each time, since Check
		// writes into it without resetting it.
		SecureConfig:     &plugin.SecureConfig{Checksum: s.entry.Native.SHA256, Hash: sha256.New()},
		SkipHostEnv:      true,
		StartTimeout:     s.rt.cfg.StartTimeout,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		GRPCDialOptions:  protocol.DialOptions(),
		Managed:          false, // the runtime owns the lifecycle; see Close
		// go-plugin re-logs each stderr line (hclog JSON keeps its level)
		// and copies it raw to Stderr, where the tail keeps the panic line
		// for the crash report.
		Logger:     pluginLogger{s.log},
		Stderr:     stderr,
		SyncStdout: &lineLogger{log: s.log, stream: "stdout"},
		SyncStderr: &lineLogger{log: s.log, stream: "stderr"},
	})
	p := &process{
		client: client, cmd: cmd, stderr: stderr, dir: dir,
		probe: make(chan struct{}, 1), gone: make(chan struct{}),
	}
	// A connector that declares no egress may reach nothing: lending it
	// the network would only cost the start another TLS handshake.
	if sb.networkCut() && len(s.entry.Manifest.Egress) > 0 {
		p.lent = hostnet.NewServer(egress.New(s.entry.Manifest.Egress, s.rt.cfg.EgressAllow), hostnet.Options{})
	}
	if err := p.connect(s.rt.cfg.StartTimeout, s.entry.Manifest); err != nil {
		client.Kill()
		p.release()
		return nil, s.startFailed(p, err)
	}
	if p.lendErr != nil {
		if status.Code(p.lendErr) == codes.Unimplemented {
			s.log.Warn("connector does not take the host's network (its SDK predates it): in the sandbox it has none; rebuild it with a current SDK, or trust it with --native-sandbox=off")
		} else {
			s.log.Warn("connector did not take the host's network: in the sandbox it has none", "error", p.lendErr)
		}
	}
	p.pid = cmd.Process.Pid
	p.started = time.Now()
	s.log.Debug("connector started", "pid", p.pid)
	return p, nil
}

// connect starts the process, dispenses the connector client and checks
// that the binary is the connector its manifest, m, describes.
func (p *process) connect(timeout time.Duration, m *manifest.Manifest) error {
	proto, err := p.client.Client()
	if err != nil {
		return err
	}
	raw, err := proto.Dispense(protocol.PluginName)
	if err != nil {
		return err
	}
	conn, ok := raw.(*protocol.Client)
	if !ok {
		return fmt.Errorf("the plugin dispensed %T, not a connector client", raw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	resp, err := conn.Describe(ctx, &connectorv1.DescribeRequest{})
	if err != nil {
		return fmt.Errorf("describe: %w", err)
	}
	if err := CheckDescription(m, resp, "binary"); err != nil {
		return refused{err}
	}
	if p.lent != nil {
		p.lendErr = lendNetwork(ctx, conn, p.lent)
	}
	p.proto, p.conn = proto, conn
	return nil
}

// lendNetwork serves the host's network to the process over go-plugin's
// broker and offers it (Connector.OpenHost). The service stops when the
// process does.
func lendNetwork(ctx context.Context, c *protocol.Client, s *hostnet.Server) error {
	id := c.Broker.NextId()
	go c.Broker.AcceptAndServe(id, s.Register)
	_, err := c.OpenHost(ctx, &connectorv1.OpenHostRequest{BrokerId: id})
	return err
}

// release frees what the process held besides itself: the connections
// kept for its requests and its private directory. Call it once the
// process has exited.
func (p *process) release() {
	if p.lent != nil {
		p.lent.Close()
	}
	p.dir.remove()
}

// refused is a start the host refused: the process ran as it should, but
// is not the connector its manifest describes.
type refused struct{ error }

func (e refused) Unwrap() error { return e.error }

// startFailed turns a failed start into the caller's error, and logs what
// the operator needs to fix it. The process, if one ran, has been reaped.
func (s *slot) startFailed(p *process, err error) error {
	if errors.Is(err, plugin.ErrChecksumsDoNotMatch) {
		s.log.Error("connector binary does not match its digest; not started",
			"path", s.entry.Native.Path, "expected_sha256", hex.EncodeToString(s.entry.Native.SHA256))
		return core.Errorf(core.EConnectorUnavailable,
			"connector %s was not started: the SHA-256 checksum of its binary does not match %s (checksum mismatch)",
			s.ref, catalog.DigestOrigin(s.ref.Name, catalog.NativeFile))
	}
	// go-plugin's messages can run to several lines of advice; the first
	// says what happened. An exec failure names the path, which is the
	// operator's business: keep only why.
	msg, _, _ := strings.Cut(err.Error(), "\n")
	var pathErr *fs.PathError
	if errors.As(err, &pathErr) {
		msg = "its binary could not be run: " + pathErr.Err.Error()
	}
	// How the process ended tells why it did not start, unless it was
	// stopped for being refused.
	if p.cmd.ProcessState != nil && !errors.As(err, new(refused)) {
		msg += " (" + p.exitReason() + ")"
	}
	s.log.Error("connector could not be started", append([]any{"error", err}, p.stderr.logArgs()...)...)
	return core.Errorf(core.EConnectorUnavailable, "connector %s could not be started: %s", s.ref, msg)
}

// ping asks the plugin's health service for an answer within timeout.
// go-plugin's Ping has no deadline of its own; a ping left hanging returns
// once the caller kills the process.
func (p *process) ping(timeout time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- p.proto.Ping() }()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("no answer to a ping within %s", formatDuration(timeout))
	}
}

// probeSoon asks the watcher to ping now rather than at the next tick.
func (p *process) probeSoon() {
	select {
	case p.probe <- struct{}{}:
	default:
	}
}

// waitExit reports whether the process exits within d. A call whose
// connection broke asks this before blaming the process: the broken
// connection is usually seen a moment before the exit is.
func (p *process) waitExit(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for !p.client.Exited() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// exitReason says why an exited process ended: the first line of its
// panic, or its exit status. Call it only once the process has exited.
func (p *process) exitReason() string {
	if line := p.stderr.panicLine(); line != "" {
		return line
	}
	// go-plugin sets Exited only after cmd.Wait has returned, so reading
	// ProcessState here does not race with it.
	if st := p.cmd.ProcessState; st != nil {
		return st.String()
	}
	return "exited"
}

// stop ends the process and waits until it has been reaped. Graceful stops
// give it go-plugin's grace period to exit by itself; a hard stop kills it
// first, for a process that no longer answers. Safe to call more than once.
func (p *process) stop(hard bool) {
	p.stopOnce.Do(func() {
		if hard {
			_ = p.cmd.Process.Kill()
		}
		p.client.Kill()
		p.release()
		close(p.gone)
	})
}
