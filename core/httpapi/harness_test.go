package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/actions"
	"github.com/relayhq/relay/core/catalog"
	"github.com/relayhq/relay/core/goplugin"
	"github.com/relayhq/relay/core/ratelimit"
	"github.com/relayhq/relay/core/secrets"
	"github.com/relayhq/relay/core/sqlstore"
	"github.com/relayhq/relay/core/sqlstore/sqlstoretest"
	"github.com/relayhq/relay/core/wasmrt"
	"github.com/relayhq/relay/sdk/connectortest"
)

// testServer is a real server on a loopback port over a SQLite store.
type testServer struct {
	t      testing.TB
	URL    string
	Store  *sqlstore.Store
	Hasher *core.KeyHasher
	Server *Server
	logs   *syncBuffer
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newTestServer starts a server with no connectors; edit may change its
// Config first.
func newTestServer(t testing.TB, edit func(*Config)) *testServer {
	t.Helper()
	return newTestServerWith(t, t.TempDir(), nil, edit)
}

// newTestServerWith starts a server running the connectors in
// connectorsDir, which may reach egressAllow.
func newTestServerWith(t testing.TB, connectorsDir string, egressAllow []netip.Prefix, edit func(*Config)) *testServer {
	t.Helper()
	return newTestServerOn(t, filepath.Join(t.TempDir(), "relay.db"), connectorsDir, egressAllow, edit)
}

// eachDatabase runs a test on a server over SQLite and over PostgreSQL
// (when RELAY_TEST_POSTGRES_URL is set; a fresh schema each time).
func eachDatabase(t *testing.T, connectorsDir string, fn func(t *testing.T, ts *testServer)) {
	for _, db := range sqlstoretest.Databases() {
		t.Run(db.Name, func(t *testing.T) {
			fn(t, newTestServerOn(t, db.URL(t), connectorsDir, nil, nil))
		})
	}
}

// newTestServerOn starts a server on the database databaseURL names.
func newTestServerOn(t testing.TB, databaseURL, connectorsDir string, egressAllow []netip.Prefix, edit func(*Config)) *testServer {
	t.Helper()
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	hasher, err := core.NewKeyHasherFromPepper(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	logger := hclog.New(&hclog.LoggerOptions{Output: logs, JSONFormat: true, Level: hclog.Debug})
	cat, _ := catalog.Load(connectorsDir)
	native := goplugin.New(goplugin.Config{Lookup: cat.Get, Logger: logger, EgressAllow: egressAllow})
	// Both forms, as the server runs them. Compiled modules are kept in
	// the cache the repository's tests share: a cold compile takes seconds.
	wasm, err := wasmrt.New(ctx, wasmrt.Config{Lookup: cat.Get, Logger: logger, EgressAllow: egressAllow,
		CompilationCacheDir: connectortest.CompilationCacheDir()})
	if err != nil {
		native.Close()
		st.Close()
		t.Fatal(err)
	}
	runtime := core.RuntimeMux{core.RuntimeNative: native, core.RuntimeWASM: wasm}
	keyring, err := secrets.NewKeyring(bytes.Repeat([]byte{9}, 32), st)
	if err != nil {
		t.Fatal(err)
	}
	var srv *Server
	engine := actions.New(actions.Config{
		Store: st, Catalog: cat, Runtime: runtime, Secrets: keyring, Logger: logger,
		Respond: RunResponse,
		Observe: func(run *core.Run, took time.Duration) { srv.ObserveRun(run, took) },
	})
	cfg := Config{
		Actions: engine,
		Store:   st,
		Hasher:  hasher,
		Limiter: ratelimit.NewLocal(),
		Logger:  logger,
		// Generous, so only the rate-limit tests meet the limit.
		DefaultRateLimit: core.RateLimit{Rate: 10000, Burst: 10000},
		// As cmd/relay wires them.
		Load: Load{GroupWriter: st.GroupStats, Connectors: []func() core.PoolStats{native.PoolStats, wasm.PoolStats}},
	}
	if edit != nil {
		edit(&cfg)
	}
	srv = New(cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		// A client connection that never sent a request is not idle to
		// fasthttp until its read timeout; let the client drop its spares.
		http.DefaultClient.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		<-done
		engine.Close(ctx)
		native.Close()
		wasm.Close()
		st.Close()
	})
	return &testServer{t: t, URL: "http://" + ln.Addr().String(), Store: st, Hasher: hasher, Server: srv, logs: logs}
}

// with returns ts reporting to t, for use inside a subtest.
func (ts *testServer) with(t testing.TB) *testServer {
	c := *ts
	c.t = t
	return &c
}

// workspace makes a workspace and returns it with a key of each role.
func (ts *testServer) workspace(name string) (*core.Workspace, map[core.Role]string) {
	ts.t.Helper()
	ws, err := ts.Store.CreateWorkspace(context.Background(), name)
	if err != nil {
		ts.t.Fatal(err)
	}
	keys := map[core.Role]string{}
	for _, r := range core.Roles {
		keys[r] = ts.key(ws.ID, r)
	}
	return ws, keys
}

func (ts *testServer) key(workspaceID string, role core.Role) string {
	ts.t.Helper()
	k, token, err := core.NewAPIKey(ts.Hasher, workspaceID, string(role)+" key", role, "")
	if err != nil {
		ts.t.Fatal(err)
	}
	if err := ts.Store.CreateKey(context.Background(), k, nil); err != nil {
		ts.t.Fatal(err)
	}
	return token
}

type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r *response) problem(t testing.TB) Problem {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); ct != problemContentType {
		t.Fatalf("Content-Type %q, want %q; body %s", ct, problemContentType, r.Body)
	}
	var p Problem
	if err := json.Unmarshal(r.Body, &p); err != nil {
		t.Fatalf("problem body %s: %v", r.Body, err)
	}
	if p.Status != r.Status || p.Code == "" || p.Type == "" || p.Title == "" {
		t.Fatalf("incomplete problem %+v for status %d", p, r.Status)
	}
	return p
}

func (r *response) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("body %s: %v", r.Body, err)
	}
}

// do sends a request; body, when not nil, goes as JSON unless it is a string.
func (ts *testServer) do(method, path, key string, body any, headers ...string) *response {
	ts.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			ts.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, ts.URL+path, rd)
	if err != nil {
		ts.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		ts.t.Fatal(err)
	}
	return &response{Status: resp.StatusCode, Header: resp.Header, Body: data}
}
