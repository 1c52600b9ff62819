package connectortest

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/relayhq/relay/sdk/manifest"
	"github.com/relayhq/relay/sdk/protocol"
	"github.com/relayhq/relay/sdk/protocol/connectorv1"
)

// Generous bounds: they catch a hang, not a slow machine.
const (
	startTimeout   = 30 * time.Second
	commandTimeout = 30 * time.Second
)

// binary returns the native connector to run, building cfg.Package if need
// be.
func binary(t tb, cfg Config) string {
	t.Helper()
	if err := checkSource(cfg); err != nil {
		t.Fatalf("connectortest: %v", err)
	}
	if cfg.Binary != "" {
		return cfg.Binary
	}
	out := filepath.Join(t.TempDir(), "connector")
	if runtime.GOOS == "windows" {
		out += ".exe"
	}
	cmd := exec.Command("go", "build", "-o", out, cfg.Package)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", cfg.Package, err, msg)
	}
	return out
}

// checkSource wants exactly one of Binary and Package, and a known Runtime.
func checkSource(cfg Config) error {
	switch {
	case cfg.Runtime != "" && cfg.Runtime != manifest.RuntimeNative && cfg.Runtime != manifest.RuntimeWASM:
		return fmt.Errorf("Config.Runtime is %q; set %q, %q or nothing (native)", cfg.Runtime, manifest.RuntimeNative, manifest.RuntimeWASM)
	case cfg.Binary != "" && cfg.Package != "":
		return fmt.Errorf("set Config.Binary or Config.Package, not both")
	case cfg.Binary == "" && cfg.Package == "":
		return fmt.Errorf("set Config.Binary (a built connector) or Config.Package (its main package)")
	}
	return nil
}

// startConnector starts the connector in the form cfg.Runtime names.
func startConnector(t tb, cfg Config) *process {
	t.Helper()
	if cfg.Runtime != manifest.RuntimeWASM {
		return start(t, binary(t, cfg), cfg.Env)
	}
	if err := checkSource(cfg); err != nil {
		t.Fatalf("connectortest: %v", err)
	}
	if cfg.Binary != "" {
		return startWasm(t, cfg.Binary, "", cfg.Env)
	}
	// The native build of the same source answers `spec wasm` and
	// `version`, which a module cannot.
	return startWasm(t, buildWasm(t, cfg.Package), binary(t, cfg), cfg.Env)
}

// process is the connector running as a plugin, or as a WASM module.
type process struct {
	// path is the native binary; for a module, the native build of the
	// same source, or "" when the kit was given the module only.
	path string
	env  []string
	rpc  connectorv1.ConnectorClient
	// version is the protocol version the handshake settled on (native).
	version int
	// wasm is the module's path when the connector runs as one, and warm
	// leaves an instance ready for the next call.
	wasm string
	warm func() error
}

// warmUp readies a module's instance before a call with a short deadline;
// a plugin process is always warm.
func (p *process) warmUp(t tb) {
	if p.warm == nil {
		return
	}
	if err := p.warm(); err != nil {
		t.Errorf("starting an instance of the module: %v", err)
	}
}

// start runs the connector as a Relay host does: go-plugin over gRPC with
// AutoMTLS, the protocol versions this SDK speaks, the message cap, and an
// environment holding env only. The process is killed when the test ends.
func start(t tb, path string, env []string) *process {
	t.Helper()
	logs := &logWriter{t: t}
	cmd := exec.Command(path)
	cmd.Dir = filepath.Dir(path)         // as a host runs it: relative paths resolve in its own folder
	cmd.Env = append([]string{}, env...) // never nil: nil would mean the host's environment
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  protocol.Handshake,
		VersionedPlugins: protocol.VersionedPlugins(nil),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		SkipHostEnv:      true,
		StartTimeout:     startTimeout,
		GRPCDialOptions:  protocol.DialOptions(),
		// The connector's stderr (hclog JSON) lands in the test log, shown
		// when a test fails or with -v.
		Logger: hclog.New(&hclog.LoggerOptions{Name: "connector", Output: logs, Level: hclog.Debug}),
		// What the connector writes to os.Stdout and os.Stderr once it
		// serves, which go-plugin streams to the host.
		SyncStdout: &lineWriter{prefix: "connector stdout: ", w: logs},
		SyncStderr: &lineWriter{prefix: "connector stderr: ", w: logs},
	})
	t.Cleanup(func() {
		client.Kill()
		logs.close()
	})
	rpc, err := client.Client()
	if err != nil {
		t.Fatalf("starting %s as a Relay connector plugin: %v", path, err)
	}
	raw, err := rpc.Dispense(protocol.PluginName)
	if err != nil {
		t.Fatalf("dispensing %q from %s: %v", protocol.PluginName, path, err)
	}
	c, ok := raw.(connectorv1.ConnectorClient)
	if !ok {
		t.Fatalf("dispensing %q from %s: got %T, not a connector client", protocol.PluginName, path, raw)
	}
	return &process{path: path, env: env, rpc: c, version: client.NegotiatedVersion()}
}

// command runs the connector by hand, as `<connector> spec` is run, with
// the same environment as the plugin process.
func (p *process) command(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.path, args...)
	cmd.Dir = filepath.Dir(p.path)
	cmd.Env = append([]string{}, p.env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w: %s", p.path, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// logWriter passes log lines to the test until the process is gone; a line
// logged after the test ended would panic.
type logWriter struct {
	mu     sync.Mutex
	t      tb
	closed bool
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Logf("%s", bytes.TrimRight(p, "\n"))
	}
	return len(p), nil
}

func (w *logWriter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}

// lineWriter passes whole lines to w, however the writes cut them.
type lineWriter struct {
	prefix  string
	w       *logWriter
	mu      sync.Mutex
	partial []byte
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		line, rest, complete := bytes.Cut(p, []byte{'\n'})
		l.partial = append(l.partial, line...)
		if !complete {
			break
		}
		_, _ = l.w.Write(append([]byte(l.prefix), l.partial...))
		l.partial = l.partial[:0]
		p = rest
	}
	return n, nil
}
