package httpapi

import (
	"errors"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/catalog/catalogtest"
)

// builtDir is a connectors dir built once per test process and shared by
// its tests and benchmarks; TestMain removes it.
type builtDir struct {
	once sync.Once
	dir  string
	err  error
}

var (
	echoConnectorsDir builtDir // the echo plugin and testdata/vault
	echoBothDir       builtDir // echo as a plugin and as a WASM module
	webhookDir        builtDir // the webhook plugin
)

func TestMain(m *testing.M) {
	code := m.Run()
	for _, d := range []*builtDir{&echoConnectorsDir, &echoBothDir, &webhookDir} {
		if d.dir != "" {
			os.RemoveAll(d.dir)
		}
	}
	os.Exit(code)
}

// get returns the dir, made and filled by build the first time.
func (d *builtDir) get(t testing.TB, build func(dir string)) string {
	t.Helper()
	d.once.Do(func() {
		if d.dir, d.err = os.MkdirTemp("", "relay-httpapi-connectors-*"); d.err != nil {
			return
		}
		// Cleared once build returns: a build that fails stops its test
		// and leaves this for every later one.
		d.err = errors.New("building the connectors failed in an earlier test")
		build(d.dir)
		d.err = nil
	})
	if d.err != nil {
		t.Fatal(d.err)
	}
	return d.dir
}

// echoConnectors returns a connectors dir holding the echo connector and
// testdata/vault as plugins.
func echoConnectors(t testing.TB) string {
	return echoConnectorsDir.get(t, func(dir string) {
		catalogtest.Build(t, dir, "github.com/relayhq/relay/plugins/echo/cmd/echo")
		catalogtest.Build(t, dir, "github.com/relayhq/relay/core/httpapi/testdata/vault")
	})
}

// webhookConnectors returns a connectors dir holding the webhook
// connector as a plugin.
func webhookConnectors(t testing.TB) string {
	return webhookDir.get(t, func(dir string) {
		catalogtest.Build(t, dir, "github.com/relayhq/relay/plugins/webhook/cmd/webhook")
	})
}

// echoBothForms returns a connectors dir holding echo in both forms.
func echoBothForms(t testing.TB) string {
	return echoBothDir.get(t, func(dir string) {
		catalogtest.BuildBoth(t, dir, "github.com/relayhq/relay/plugins/echo/cmd/echo")
	})
}

// createEcho makes an echo connection and returns its id.
func (ts *testServer) createEcho(adminKey, name string) string {
	ts.t.Helper()
	return ts.createConnection(adminKey, map[string]any{"connector": "echo", "name": name})
}

// createConnection makes a connection from body and returns its id. A
// WASM connector's first use compiles its module, which under the race
// detector on a busy machine can outlast a request: the server answers
// 504 and goes on loading, and the request is made again, as a client
// would.
func (ts *testServer) createConnection(adminKey string, body map[string]any) string {
	ts.t.Helper()
	resp := ts.do(http.MethodPost, "/v1/connections", adminKey, body)
	for deadline := time.Now().Add(5 * time.Minute); resp.Status == http.StatusGatewayTimeout &&
		strings.Contains(string(resp.Body), "still loading") && time.Now().Before(deadline); {
		resp = ts.do(http.MethodPost, "/v1/connections", adminKey, body)
	}
	if resp.Status != http.StatusCreated {
		ts.t.Fatalf("create connection %v: %d %s", body["name"], resp.Status, resp.Body)
	}
	var c struct {
		ID string `json:"id"`
	}
	resp.decode(ts.t, &c)
	return c.ID
}

// connectEcho makes an echo connection, executes echo.echo on it once and
// returns the run's id.
func (ts *testServer) connectEcho(adminKey, name string) string {
	ts.t.Helper()
	ts.createEcho(adminKey, name)
	resp := ts.do(http.MethodPost, "/v1/actions/echo.echo/execute", adminKey,
		map[string]any{"params": map[string]any{"hello": "world"}, "connection": name})
	if resp.Status != http.StatusOK {
		ts.t.Fatalf("execute echo.echo: %d %s", resp.Status, resp.Body)
	}
	var run struct {
		ID string `json:"id"`
	}
	resp.decode(ts.t, &run)
	return run.ID
}

// failedRun makes a vault connection, executes vault.fail on it once and
// returns the failed run's id.
func (ts *testServer) failedRun(adminKey string) string {
	ts.t.Helper()
	ts.createConnection(adminKey, map[string]any{"connector": "vault", "name": "failing", "secrets": map[string]string{"token": "t0ken"}})
	resp := ts.do(http.MethodPost, "/v1/actions/vault.fail/execute", adminKey, map[string]any{"params": map[string]any{}})
	var p struct {
		Run struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		} `json:"run"`
	}
	resp.decode(ts.t, &p)
	if p.Run.Status != string(core.RunFailed) {
		ts.t.Fatalf("execute vault.fail: %d %s", resp.Status, resp.Body)
	}
	return p.Run.ID
}
