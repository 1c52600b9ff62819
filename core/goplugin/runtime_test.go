package goplugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/catalog"
	"github.com/relayhq/relay/sdk/protocol"
)

func TestEchoAndOneSharedProcess(t *testing.T) {
	r, _ := newRuntime(t, Config{})

	// Concurrent first calls start one process, which serves them all.
	const callers = 20
	pids := make([]int, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() { pids[i] = pidOf(t, r, testconn) })
	}
	wg.Wait()
	for i, pid := range pids {
		if pid != pids[0] {
			t.Fatalf("caller %d got pid %d, caller 0 got %d: want one process", i, pid, pids[0])
		}
	}

	// Workspaces share it too: config and secrets travel with each call.
	for _, ws := range []string{"ws_a", "ws_b"} {
		out, err := r.Execute(context.Background(), testconn, core.ActionCall{
			Action: "echo", Input: json.RawMessage(`{"hello":"world","n":3}`), WorkspaceID: ws,
			Connection: core.ConnectionData{Config: json.RawMessage(`{"region":"eu"}`), Secrets: map[string]string{"token": ws}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := string(out); got != `{"hello":"world","n":3}` {
			t.Errorf("echo returned %s", got)
		}
	}
	if pid := pidOf(t, r, testconn); pid != pids[0] {
		t.Errorf("pid changed from %d to %d", pids[0], pid)
	}

	// Preview and CheckConfig go to the same process.
	out, err := r.Preview(context.Background(), testconn, core.ActionCall{Action: "echo", Input: json.RawMessage(`{"a":1}`)})
	if err != nil || !strings.Contains(string(out), `"action":"echo"`) {
		t.Errorf("preview: %s, %v", out, err)
	}
	if err := r.CheckConfig(context.Background(), testconn, core.ConnectionData{}); err != nil {
		t.Errorf("check config: %v", err)
	}
}

func TestUnknownConnectorAndAction(t *testing.T) {
	cat, dir := testCatalog(t)
	wasm := &catalog.Entry{Ref: core.ConnectorRef{Name: "wasmonly", Version: "1.0.0"}, Dir: dir}
	r, _ := newRuntime(t, Config{Lookup: func(ref core.ConnectorRef) (*catalog.Entry, error) {
		if ref == wasm.Ref {
			return wasm, nil
		}
		return cat.Get(ref)
	}})
	ctx := context.Background()

	_, err := execute(ctx, r, core.ConnectorRef{Name: "nope", Version: "1.0.0"}, "echo", map[string]any{})
	wantCode(t, err, core.ENotFound, "nope@1.0.0")

	_, err = execute(ctx, r, wasm.Ref, "echo", map[string]any{})
	wantCode(t, err, core.EConnectorUnavailable, "wasmonly@1.0.0", "no native binary")

	_, err = execute(ctx, r, testconn, "nosuch", map[string]any{})
	wantCode(t, err, core.EUnknownAction, "testconn@0.1.0: ", "nosuch")
}

func TestConnectorErrorsMapToCoreCodes(t *testing.T) {
	r, _ := newRuntime(t, Config{})
	for _, tc := range []struct {
		kind, code string
	}{
		{"invalid", core.EInvalidParams},
		{"not_found", core.EUpstreamNotFound},
		{"retryable", core.EUpstreamRetryable},
		{"permanent", core.EUpstreamFailed},
		{"unauthorized", core.EUpstreamUnauthorized},
		{"egress", core.EEgressDenied},
		{"other", core.EConnectorError},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			_, err := execute(context.Background(), r, testconn, "fail", map[string]string{"kind": tc.kind})
			e := wantCode(t, err, tc.code, "testconn@0.1.0: ")
			switch tc.kind {
			case "invalid":
				if len(e.Fields) != 1 || e.Fields[0] != (core.FieldError{Pointer: "/to", Message: "not an address"}) {
					t.Errorf("fields = %+v", e.Fields)
				}
			case "retryable":
				if e.RetryAfter != 1500*time.Millisecond {
					t.Errorf("retry after = %s", e.RetryAfter)
				}
			}
		})
	}
	// The SDK's own validation of the input comes back as invalid params.
	_, err := execute(context.Background(), r, testconn, "sleep", map[string]any{"ms": "soon"})
	wantCode(t, err, core.EInvalidParams)
}

// ActionCall.InputValidated reaches the plugin, whose SDK then skips its
// schema check: an input without a required field runs, where without the
// flag it is refused. Preview and execute alike.
func TestInputValidatedReachesThePlugin(t *testing.T) {
	r, _ := newRuntime(t, Config{})
	ctx := context.Background()
	noMS := json.RawMessage(`{}`) // sleep's schema requires "ms"
	for _, preview := range []bool{false, true} {
		call := r.Execute
		if preview {
			call = r.Preview
		}
		_, err := call(ctx, testconn, core.ActionCall{Action: "sleep", Input: noMS})
		if e := wantCode(t, err, core.EInvalidParams); len(e.Fields) != 1 || e.Fields[0].Pointer != "" {
			t.Errorf("preview %v, not validated: fields %+v, want one at the input's root", preview, e.Fields)
		}
		if _, err := call(ctx, testconn, core.ActionCall{Action: "sleep", Input: noMS, InputValidated: true}); err != nil {
			t.Errorf("preview %v, validated by the host: %v, want the handler to run", preview, err)
		}
	}
}

func TestPluginGetsOnlyItsEnvironment(t *testing.T) {
	t.Setenv("RELAY_TEST_HOST_SECRET", "hunter2")
	r, _ := newRuntime(t, Config{EgressAllow: []netip.Prefix{
		netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("192.168.5.5/32"),
	}})
	out, err := execute(context.Background(), r, testconn, "env", map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	var v struct{ Env []string }
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
	var allow string
	for _, kv := range v.Env {
		k, val, _ := strings.Cut(kv, "=")
		switch {
		case k == protocol.EnvEgressAllow:
			allow = val
		case k == protocol.Handshake.MagicCookieKey, strings.HasPrefix(k, "PLUGIN_"):
			// go-plugin's own: the handshake and the client certificate
		case k == "TMPDIR" && strings.Contains(val, "/relay-connector-"):
			// the sandbox's private directory
		default:
			t.Errorf("the plugin sees %s from the host", k)
		}
		if strings.Contains(kv, "hunter2") {
			t.Errorf("the host's secret leaked into the plugin: %s", k)
		}
	}
	if allow != "10.1.0.0/16,192.168.5.5/32" {
		t.Errorf("%s = %q", protocol.EnvEgressAllow, allow)
	}
}

func TestDeadlines(t *testing.T) {
	// Long enough for the first call to start the plugin on a loaded
	// machine: a start that outlasts a call's deadline fails the call.
	r, _ := newRuntime(t, Config{CallTimeout: time.Second})
	pid := pidOf(t, r, testconn)
	ctx := context.Background()

	t.Run("call timeout, handler honours ctx", func(t *testing.T) {
		_, err := execute(ctx, r, testconn, "sleep", map[string]any{"ms": 60_000})
		wantCode(t, err, core.EConnectorTimeout, "connector testconn@0.1.0 action sleep did not answer within 1s")
	})
	t.Run("call timeout, handler ignores ctx", func(t *testing.T) {
		_, err := execute(ctx, r, testconn, "sleep", map[string]any{"ms": 60_000, "ignore_ctx": true})
		wantCode(t, err, core.EConnectorTimeout, "did not answer within 1s")
	})
	t.Run("caller's deadline is shorter", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		_, err := execute(ctx, r, testconn, "sleep", map[string]any{"ms": 60_000})
		wantCode(t, err, core.EConnectorTimeout, "action sleep did not answer within")
	})
	t.Run("the action's timeout_seconds wins", func(t *testing.T) {
		r, _ := newRuntime(t, Config{CallTimeout: time.Hour})
		_, err := execute(ctx, r, testconn, "sleep1s", map[string]any{"ms": 60_000})
		wantCode(t, err, core.EConnectorTimeout, "action sleep1s did not answer within 1s")
	})
	t.Run("caller cancels", func(t *testing.T) {
		ctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(50*time.Millisecond, cancel)
		_, err := execute(ctx, r, testconn, "sleep", map[string]any{"ms": 60_000})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
	})

	// Timeouts cancel the call; the process stays.
	if got := pidOf(t, r, testconn); got != pid {
		t.Errorf("pid changed from %d to %d after timeouts", pid, got)
	}
}

func TestMessageLimits(t *testing.T) {
	r, _ := newRuntime(t, Config{})
	ctx := context.Background()
	pid := pidOf(t, r, testconn)

	_, err := execute(ctx, r, testconn, "echo", map[string]string{"data": strings.Repeat("x", protocol.MaxMessageSize)})
	wantCode(t, err, core.EMessageTooLarge, "4 MiB message limit", "action echo", "testconn@0.1.0")

	err = r.CheckConfig(ctx, testconn, core.ConnectionData{Secrets: map[string]string{"key": strings.Repeat("k", protocol.MaxMessageSize)}})
	wantCode(t, err, core.EMessageTooLarge, "4 MiB message limit", "config check")

	// The SDK refuses to send an oversized result, naming its limit.
	_, err = execute(ctx, r, testconn, "big", map[string]int{"bytes": 5 << 20})
	wantCode(t, err, core.EMessageTooLarge, "message limit")

	// A connector that sends past the cap anyway hits the host's own.
	rawPid := pidOf(t, r, rawconn)
	_, err = execute(ctx, r, rawconn, "overflow", map[string]any{})
	wantCode(t, err, core.EMessageTooLarge, "4 MiB message limit", "rawconn@0.1.0")

	if got := pidOf(t, r, testconn); got != pid {
		t.Errorf("testconn pid changed from %d to %d", pid, got)
	}
	if got := pidOf(t, r, rawconn); got != rawPid {
		t.Errorf("rawconn pid changed from %d to %d", rawPid, got)
	}
}

func TestCloseKillsPlugins(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	r, _ := newRuntime(t, Config{})
	pids := []int{pidOf(t, r, testconn), pidOf(t, r, rawconn)}
	// A call in flight does not hold Close up, and learns why it ended.
	inFlight := make(chan error, 1)
	go func() {
		_, err := execute(context.Background(), r, testconn, "sleep", map[string]any{"ms": 60_000, "ignore_ctx": true})
		inFlight <- err
	}()
	time.Sleep(100 * time.Millisecond)

	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	wantCode(t, <-inFlight, core.EConnectorUnavailable, "shutting down")
	// Close waits until they are reaped.
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("plugin %d is alive after Close", pid)
		}
	}
	_, err := execute(context.Background(), r, testconn, "pid", map[string]any{})
	wantCode(t, err, core.EConnectorUnavailable, "shutting down")
}

func TestPluginLogsReachHostLog(t *testing.T) {
	r, logs := newRuntime(t, Config{})
	if _, err := execute(context.Background(), r, testconn, "log", map[string]string{"message": "hello from inside"}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"[INFO]  relay.testconn@0.1.0: hello from inside: ",                    // hclog JSON on stderr
		"[INFO]  relay.testconn@0.1.0: plain hello from inside: stream=stderr", // os.Stderr once serving
	} {
		eventually(t, "the host log has "+want, func() bool { return strings.Contains(logs.String(), want) })
	}
}

func TestPluginRunsInItsOwnFolder(t *testing.T) {
	// testconn leaves started-<pid> in its working directory; the checksum
	// test relies on that mark. Unsandboxed, that is the version's folder
	// (sandboxed, an empty one of its own: see the sandbox tests).
	r, _ := newRuntime(t, Config{Sandbox: SandboxOff})
	pid := pidOf(t, r, testconn)
	_, root := testCatalog(t)
	if _, err := os.Stat(filepath.Join(root, "testconn", "0.1.0", fmt.Sprintf("started-%d", pid))); err != nil {
		t.Fatal(err)
	}
}
