package httpapi

import (
	"net/http"
	"os"
	"sync"
	"testing"

	"github.com/relayhq/relay/core/catalog/catalogtest"
)

var (
	echoOnce sync.Once
	echoDir  string // removed by TestMain
)

func TestMain(m *testing.M) {
	code := m.Run()
	if echoDir != "" {
		os.RemoveAll(echoDir)
	}
	os.Exit(code)
}

// echoConnectors returns a connectors dir holding the echo connector, built
// once per test process and shared by its tests.
func echoConnectors(t testing.TB) string {
	t.Helper()
	echoOnce.Do(func() {
		dir, err := os.MkdirTemp("", "relay-httpapi-connectors-*")
		if err != nil {
			t.Fatal(err)
		}
		echoDir = dir
		catalogtest.Build(t, dir, "github.com/relayhq/relay/plugins/echo/cmd/echo")
		catalogtest.Build(t, dir, "github.com/relayhq/relay/core/httpapi/testdata/vault")
	})
	return echoDir
}

// createEcho makes an echo connection and returns its id.
func (ts *testServer) createEcho(adminKey, name string) string {
	ts.t.Helper()
	resp := ts.do(http.MethodPost, "/v1/connections", adminKey, map[string]any{"connector": "echo", "name": name})
	if resp.Status != http.StatusCreated {
		ts.t.Fatalf("create connection %s: %d %s", name, resp.Status, resp.Body)
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
