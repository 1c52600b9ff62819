package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/catalog/catalogtest"
	"github.com/relayhq/relay/core/secrets"
	"github.com/relayhq/relay/core/sqlstore/sqlstoretest"
	"github.com/relayhq/relay/sdk/client"
)

var keyRE = regexp.MustCompile(`rly_[0-9a-z]{26}_[a-z2-7]{52}`)

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

// startMain runs the whole server as `relay serve` would, on a free port.
func startMain(t testing.TB, cfg Config, logs io.Writer) (*Main, string) {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	var stdout bytes.Buffer
	m := &Main{
		Config: cfg,
		Stdout: &stdout,
		Log:    hclog.New(&hclog.LoggerOptions{Output: logs, JSONFormat: true, Level: hclog.Trace}),
	}
	if err := m.Open(context.Background()); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m, stdout.String()
}

// relay runs a CLI command in-process and returns its stdout.
func relay(t testing.TB, cfg Config, args ...string) (string, error) {
	t.Helper()
	args = append(args, "--data-dir", cfg.DataDir)
	if cfg.DatabaseURL != "" {
		args = append(args, "--database-url", cfg.DatabaseURL)
	}
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), args, &stdout, &stderr)
	return stdout.String(), err
}

func get(t *testing.T, url, key string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

func wantAPIError(t *testing.T, err error, status int, code string) {
	t.Helper()
	var e *client.Error
	if !errors.As(err, &e) || e.Status != status || e.Code != code {
		t.Fatalf("error %v, want %d %s", err, status, code)
	}
}

// TestEndToEnd drives a new user's first session over HTTP and the CLI, on
// SQLite and on PostgreSQL.
func TestEndToEnd(t *testing.T) {
	for _, db := range sqlstoretest.Databases() {
		t.Run(db.Name, func(t *testing.T) {
			cfg := Config{DataDir: filepath.Join(t.TempDir(), "relay-data")}
			if db.Name != "sqlite" {
				cfg.DatabaseURL = db.URL(t)
			}
			testEndToEnd(t, cfg)
		})
	}
}

func testEndToEnd(t *testing.T, cfg Config) {
	ctx := context.Background()
	logs := &syncBuffer{}
	m, banner := startMain(t, cfg, logs)
	url := m.URL()

	// The first start prints the URL and an admin key, once.
	if !strings.Contains(banner, "Relay is listening on "+url) {
		t.Fatalf("banner lacks the URL:\n%s", banner)
	}
	adminKey := keyRE.FindString(banner)
	if adminKey == "" {
		t.Fatalf("banner lacks an admin key:\n%s", banner)
	}
	fi, err := os.Stat(filepath.Join(cfg.DataDir, "master.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("master key file: %v, mode %v", err, fi.Mode())
	}

	admin := client.New(url, adminKey, nil)
	ws, err := admin.Workspace(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ws.Name != "default" || ws.Key.Role != client.RoleAdmin || ws.RateLimit.Rate != 50 || ws.RateLimit.Burst != 100 {
		t.Fatalf("workspace %+v", ws)
	}

	// What the README promises: curl with the key answers 200 JSON; without
	// it, 401 problem+json.
	resp, body := get(t, url+"/v1/keys", adminKey)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || !json.Valid(body) {
		t.Fatalf("GET /v1/keys: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	for _, h := range []string{"RateLimit-Policy", "RateLimit", "X-Request-Id"} {
		if resp.Header.Get(h) == "" {
			t.Errorf("GET /v1/keys lacks %s", h)
		}
	}
	resp, body = get(t, url+"/v1/keys", "")
	if resp.StatusCode != 401 || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("GET /v1/keys without a key: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}

	// The CLI works on the same store while the server runs; a viewer key it
	// makes may read but not manage keys.
	out, err := relay(t, cfg, "keys", "create", "--workspace", "default", "--role", "viewer", "--name", "dashboard")
	if err != nil {
		t.Fatalf("relay keys create: %v", err)
	}
	viewerKey := strings.TrimSuffix(out, "\n")
	if !keyRE.MatchString(viewerKey) || keyRE.FindString(viewerKey) != viewerKey {
		t.Fatalf("relay keys create printed %q, want the key alone", out)
	}
	viewer := client.New(url, viewerKey, nil)
	if ws, err := viewer.Workspace(ctx); err != nil || ws.Key.Role != client.RoleViewer {
		t.Fatalf("viewer: %+v, %v", ws, err)
	}
	_, err = viewer.CreateKey(ctx, "nope", client.RoleAdmin)
	wantAPIError(t, err, 403, "forbidden")

	// A second workspace made with the CLI cannot see the first one's keys.
	if _, err := relay(t, cfg, "workspaces", "create", "acme"); err != nil {
		t.Fatalf("relay workspaces create: %v", err)
	}
	out, err = relay(t, cfg, "keys", "create", "--workspace", "acme", "--role", "admin")
	if err != nil {
		t.Fatal(err)
	}
	acme := client.New(url, strings.TrimSpace(out), nil)
	viewerID := strings.Split(viewerKey, "_")[1]
	_, err = acme.Key(ctx, viewerID)
	wantAPIError(t, err, 404, "not_found")
	wantAPIError(t, acme.RevokeKey(ctx, viewerID), 404, "not_found")
	if page, err := acme.ListKeys(ctx, 0, ""); err != nil || len(page.Data) != 1 {
		t.Fatalf("acme's keys: %+v, %v", page, err)
	}

	// Revocation takes effect on the next request.
	if err := admin.RevokeKey(ctx, viewerID); err != nil {
		t.Fatal(err)
	}
	_, err = viewer.Workspace(ctx)
	wantAPIError(t, err, 401, "unauthenticated")

	// A key made through the API works at once; the list pages through all.
	created, err := admin.CreateKey(ctx, "ci", client.RoleDeveloper)
	if err != nil || !keyRE.MatchString(created.Key) {
		t.Fatalf("CreateKey: %+v, %v", created, err)
	}
	if ws, err := client.New(url, created.Key, nil).Workspace(ctx); err != nil || ws.Key.Role != client.RoleDeveloper {
		t.Fatalf("new developer key: %+v, %v", ws, err)
	}

	// Restart on the same store: no new key is printed, the old ones work.
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := http.Get(url + "/healthz"); err == nil {
		t.Fatal("the server still answers after Close")
	}
	m2, banner2 := startMain(t, cfg, logs)
	if keyRE.MatchString(banner2) {
		t.Fatalf("a restart printed a key:\n%s", banner2)
	}
	if _, err := client.New(m2.URL(), adminKey, nil).Workspace(ctx); err != nil {
		t.Fatalf("the first admin key after a restart: %v", err)
	}

	// No key, secret or the master key ever reaches the log.
	masterKey, _ := os.ReadFile(filepath.Join(cfg.DataDir, "master.key"))
	log := logs.String()
	if !strings.Contains(log, `"request_id"`) {
		t.Fatal("the log has no request lines; the secrecy check below would prove nothing")
	}
	for name, secret := range map[string]string{
		"admin key":        adminKey,
		"admin secret":     adminKey[len(adminKey)-52:],
		"viewer key":       viewerKey,
		"api-created key":  created.Key,
		"master key (hex)": strings.TrimSpace(string(masterKey)),
	} {
		if strings.Contains(log, secret) {
			t.Errorf("the log contains the %s", name)
		}
	}
	if raw, err := hex.DecodeString(strings.TrimSpace(string(masterKey))); err != nil || strings.Contains(log, string(raw)) {
		t.Errorf("the log contains the raw master key (or it is unreadable: %v)", err)
	}
}

// TestGracefulShutdown checks that Close lets a request in flight finish:
// the request is held open on the server side by a slow body upload.
func TestGracefulShutdown(t *testing.T) {
	cfg := Config{DataDir: t.TempDir()}
	m, banner := startMain(t, cfg, io.Discard)
	key := keyRE.FindString(banner)

	pr, pw := io.Pipe()
	req, _ := http.NewRequest(http.MethodPost, m.URL()+"/v1/keys", pr)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	req.ContentLength = int64(len(`{"role":"viewer"}`))
	type result struct {
		status int
		err    error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		resp.Body.Close()
		done <- result{status: resp.StatusCode}
	}()
	pw.Write([]byte(`{"role":`))
	time.Sleep(100 * time.Millisecond) // let the server start reading

	closed := make(chan error, 1)
	go func() { closed <- m.Close() }()
	time.Sleep(100 * time.Millisecond)
	pw.Write([]byte(`"viewer"}`))
	pw.Close()

	r := <-done
	if r.err != nil || r.status != http.StatusCreated {
		t.Fatalf("the request in flight: status %d, err %v; want 201", r.status, r.err)
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func TestCLIUsageErrors(t *testing.T) {
	cfg := Config{DataDir: t.TempDir()}
	for _, args := range [][]string{
		{"keys", "create", "--workspace", "default"},
		{"keys", "create", "--workspace", "default", "--role", "owner"},
		{"workspaces", "create"},
		{"workspaces", "create", "Bad Name"},
		{"workspaces", "set-limit", "default"},
		{"serve", "--native-sandbox", "sometimes"},
		{"serve", "--registry-url", "http://127.0.0.1:1"},
		{"serve", "--registry-key", "RWTEIIzH2X39j1bSZT0Gjt5FRsNDKJtzGCaRtPVooS/2WbbLIy+NFbS6"},
		{"connectors", "list", "--native-sandbox", "on"},
		{"nonsense"},
	} {
		if _, err := relay(t, cfg, args...); err == nil {
			t.Errorf("relay %s succeeded", strings.Join(args, " "))
		}
	}
	if _, err := relay(t, Config{DataDir: t.TempDir()}, "serve", "--addr", "127.0.0.1:0", "--registry-url", "http://127.0.0.1:1",
		"--registry-key", "not a key"); err == nil || !strings.Contains(err.Error(), "--registry-key") {
		t.Errorf("serve with a registry key that is none: %v", err)
	}
	// Only serve makes the master key: a key made under another would never verify.
	if _, err := relay(t, cfg, "keys", "create", "--workspace", "default", "--role", "admin"); err == nil ||
		!strings.Contains(err.Error(), "no master key") {
		t.Errorf("keys create before the first serve: %v", err)
	}
	if _, _, err := secrets.LoadOrCreateMasterKey(filepath.Join(cfg.DataDir, "master.key"), true); err != nil {
		t.Fatal(err)
	}
	if _, err := relay(t, cfg, "keys", "create", "--workspace", "nowhere", "--role", "admin"); err == nil ||
		!strings.Contains(err.Error(), "not_found") {
		t.Errorf("keys create in a missing workspace: %v", err)
	}
}

// TestConnectorsCLI runs first-party connectors as real plugin processes
// through the CLI, as an author or operator checks an installation.
func TestConnectorsCLI(t *testing.T) {
	t.Setenv("RELAY_DATA_DIR", t.TempDir()) // where the WASM cache would go
	dir := t.TempDir()
	catalogtest.Build(t, dir, "github.com/relayhq/relay/plugins/echo/cmd/echo")
	catalogtest.Build(t, dir, "github.com/relayhq/relay/plugins/webhook/cmd/webhook")
	call := func(args ...string) (string, error) {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), append(args, "--connectors-dir", dir), &stdout, &stderr)
		return stdout.String(), err
	}
	out, err := call("connectors", "list")
	if err != nil || !strings.Contains(out, "echo.echo") || !strings.Contains(out, "webhook.send") {
		t.Fatalf("connectors list: %v\n%s", err, out)
	}
	out, err = call("connectors", "call", "echo", "echo", "--input", `{"n":[1,"two"]}`)
	if err != nil || strings.TrimSpace(out) != `{"n":[1,"two"]}` {
		t.Fatalf("echo: %q, %v", out, err)
	}
	_, err = call("connectors", "call", "echo@1.0.0", "missing")
	if core.ErrorCode(err) != core.EUnknownAction {
		t.Fatalf("unknown action: %v", err)
	}
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	_, err = call("connectors", "call", "webhook", "send", "--secret", "signing_secret="+secret,
		"--input", `{"url":"http://10.0.0.1/hook","body":{}}`)
	if core.ErrorCode(err) != core.EEgressDenied {
		t.Fatalf("webhook to 10.0.0.1: %v, want %s", err, core.EEgressDenied)
	}

	// A loopback sink is reachable only with the operator's --egress-allow,
	// which the host hands to the plugin process.
	var hits atomic.Int64
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("webhook-signature") != "" {
			hits.Add(1)
		}
	}))
	defer sink.Close()
	send := []string{"connectors", "call", "webhook", "send", "--secret", "signing_secret=" + secret,
		"--input", `{"url":"` + sink.URL + `","body":{"ok":true}}`}
	if _, err := call(send...); core.ErrorCode(err) != core.EEgressDenied || hits.Load() != 0 {
		t.Fatalf("loopback without --egress-allow: %v, %d deliveries", err, hits.Load())
	}
	if out, err := call(append(send, "--egress-allow", "127.0.0.1/32")...); err != nil || !strings.Contains(out, `"status":200`) || hits.Load() != 1 {
		t.Fatalf("loopback with --egress-allow: %q, %v, %d deliveries", out, err, hits.Load())
	}
}

// The data dir is its owner's alone, and so are the database files in it,
// on a fresh start and on a data dir left looser by an earlier version.
func TestDataDirIsPrivate(t *testing.T) {
	for _, existing := range []bool{false, true} {
		dir := filepath.Join(t.TempDir(), "relay-data")
		if existing {
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			os.Chmod(dir, 0o755) // whatever the umask
		}
		startMain(t, Config{DataDir: dir}, io.Discard)
		for name, want := range map[string]os.FileMode{
			"":             0o700,
			"relay.db":     0o600,
			"relay.db-wal": 0o600,
			"relay.db-shm": 0o600,
			"master.key":   0o600,
		} {
			fi, err := os.Stat(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != want {
				t.Errorf("existing dir %v: %s has mode %#o, want %#o", existing, filepath.Join("relay-data", name), got, want)
			}
		}
	}
}
