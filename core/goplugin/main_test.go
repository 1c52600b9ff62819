package goplugin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/catalog"
	"github.com/relayhq/relay/core/catalog/catalogtest"
)

const (
	testconnPkg = "github.com/relayhq/relay/core/goplugin/testdata/testconn"
	rawconnPkg  = "github.com/relayhq/relay/core/goplugin/testdata/rawconn"
	sandboxPkg  = "github.com/relayhq/relay/core/goplugin/testdata/sandboxconn"
	echoPkg     = "github.com/relayhq/relay/plugins/echo/cmd/echo"
)

var (
	testconn = core.ConnectorRef{Name: "testconn", Version: "0.1.0"}
	rawconn  = core.ConnectorRef{Name: "rawconn", Version: "0.1.0"}
	sandboxc = core.ConnectorRef{Name: "sandboxconn", Version: "0.1.0"}
	echoRef  = core.ConnectorRef{Name: "echo", Version: "1.0.0"}
)

// hostCatalogEnv, when set, makes the test binary a host for
// TestNoPluginOutlivesKilledHost instead of running tests.
const hostCatalogEnv = "GOPLUGIN_TEST_HOST_CATALOG"

func TestMain(m *testing.M) {
	if dir := os.Getenv(hostCatalogEnv); dir != "" {
		runHost(dir)
		return
	}
	code := m.Run()
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// runHost starts testconn and rawconn, prints their pids and waits to be
// killed.
func runHost(dir string) {
	cat, problems := catalog.Load(dir)
	if len(problems) > 0 {
		fmt.Fprintln(os.Stderr, problems)
		os.Exit(1)
	}
	r := New(Config{Lookup: cat.Get})
	var pids []string
	for _, ref := range []core.ConnectorRef{testconn, rawconn} {
		out, err := r.Execute(context.Background(), ref, core.ActionCall{Action: "pid", Input: json.RawMessage(`{}`)})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		var v struct{ PID int }
		_ = json.Unmarshal(out, &v)
		pids = append(pids, fmt.Sprint(v.PID))
	}
	fmt.Println("pids", strings.Join(pids, " "))
	select {}
}

// shared is one catalog of the test connectors for the whole test binary:
// the builds are the slow part.
var shared struct {
	once sync.Once
	dir  string
	cat  *catalog.Catalog
	err  error
}

func testCatalog(tb testing.TB) (*catalog.Catalog, string) {
	tb.Helper()
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "goplugin-test-")
		if shared.err != nil {
			return
		}
		for _, pkg := range []string{testconnPkg, rawconnPkg, echoPkg, sandboxPkg} {
			catalogtest.Build(tb, shared.dir, pkg)
		}
		var problems []error
		shared.cat, problems = catalog.Load(shared.dir)
		shared.err = errors.Join(problems...)
	})
	if shared.err != nil || shared.cat == nil {
		tb.Fatalf("building the test connectors: %v", shared.err)
	}
	return shared.cat, shared.dir
}

// newRuntime returns a runtime over the test catalog (unless cfg has a
// Lookup) that logs into the returned buffer, printed if the test fails.
func newRuntime(tb testing.TB, cfg Config) (*Runtime, *syncBuffer) {
	tb.Helper()
	if cfg.Lookup == nil {
		cat, _ := testCatalog(tb)
		cfg.Lookup = cat.Get
	}
	logs := &syncBuffer{}
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "relay", Output: logs, Level: hclog.Debug})
	r := New(cfg)
	tb.Cleanup(func() {
		r.Close()
		if tb.Failed() {
			tb.Logf("runtime log:\n%s", logs.String())
		}
	})
	return r, logs
}

func execute(ctx context.Context, r *Runtime, ref core.ConnectorRef, action string, input any) (json.RawMessage, error) {
	raw, err := json.Marshal(input)
	if err != nil {
		return nil, err
	}
	return r.Execute(ctx, ref, core.ActionCall{Action: action, Input: raw, RunID: "run_test", WorkspaceID: "ws_test"})
}

func pidOf(t *testing.T, r *Runtime, ref core.ConnectorRef) int {
	t.Helper()
	out, err := execute(context.Background(), r, ref, "pid", map[string]any{})
	if err != nil {
		t.Fatalf("pid: %v", err)
	}
	var v struct{ PID int }
	if err := json.Unmarshal(out, &v); err != nil || v.PID == 0 {
		t.Fatalf("pid: %s: %v", out, err)
	}
	return v.PID
}

// wantCode fails unless err is a *core.Error with the code and a message
// containing each of parts.
func wantCode(t *testing.T, err error, code string, parts ...string) *core.Error {
	t.Helper()
	var e *core.Error
	if !errors.As(err, &e) {
		t.Fatalf("got %v (%T), want a *core.Error %s", err, err, code)
	}
	if e.Code != code {
		t.Fatalf("got code %s (%s), want %s", e.Code, e.Message, code)
	}
	for _, p := range parts {
		if !strings.Contains(e.Message, p) {
			t.Errorf("message %q does not contain %q", e.Message, p)
		}
	}
	return e
}

// alive reports whether pid is a process that has not exited: a zombie
// (exited, not yet reaped by its new parent) counts as gone.
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) {
		return false
	}
	state := stat[i+2]
	return state != 'Z' && state != 'X'
}

// eventually polls cond for up to ten seconds: generous, since it bounds
// how long a test waits for something asynchronous, not how fast it is.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
