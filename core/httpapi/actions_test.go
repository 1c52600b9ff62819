package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/catalog"
	"github.com/relayhq/relay/core/catalog/catalogtest"
)

type runJSON struct {
	ID         string          `json:"id"`
	Status     string          `json:"status"`
	Action     string          `json:"action"`
	Connection string          `json:"connection"`
	Params     json.RawMessage `json:"params"`
	Output     json.RawMessage `json:"output"`
	Error      *core.RunError  `json:"error"`
	KeyID      string          `json:"key_id"`
	DurationMS *int64          `json:"duration_ms"`
	CreatedAt  time.Time       `json:"created_at"`
}

const vaultToken = "vt-7f3c9a1e-secret-token-value"

// vaultDeletions counts the deletes the vault connector really did: the
// lines of deletions.log in the working directory of each vault process
// alive, which in the sandbox is a directory of its own (read through
// /proc), and otherwise its catalog folder.
func vaultDeletions(t *testing.T) int {
	folder := filepath.Join(echoConnectors(t), "vault", "1.0.0")
	dirs := []string{folder}
	if runtime.GOOS == "linux" {
		dirs = nil
		exes, _ := filepath.Glob("/proc/[0-9]*/exe")
		for _, exe := range exes {
			if target, _ := os.Readlink(exe); target != filepath.Join(folder, catalog.NativeFile) {
				continue
			}
			if cwd, err := os.Readlink(filepath.Join(filepath.Dir(exe), "cwd")); err == nil {
				dirs = append(dirs, cwd)
			}
		}
	}
	n := 0
	for _, dir := range dirs {
		data, err := os.ReadFile(filepath.Join(dir, "deletions.log"))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		n += strings.Count(string(data), "\n")
	}
	return n
}

func TestActionsEndToEnd(t *testing.T) {
	eachDatabase(t, echoConnectors(t), testActionsEndToEnd)
}

func testActionsEndToEnd(t *testing.T, ts *testServer) {
	_, keys := ts.workspace("acme")
	admin, dev, viewer := keys[core.RoleAdmin], keys[core.RoleDeveloper], keys[core.RoleViewer]

	var connectors struct {
		Data []struct {
			Name     string   `json:"name"`
			Versions []string `json:"versions"`
			Sandbox  []struct {
				Version, Runtime, Mode, Network, Filesystem string
			} `json:"sandbox"`
		} `json:"data"`
	}
	ts.do("GET", "/v1/connectors", viewer, nil).decode(t, &connectors)
	if len(connectors.Data) != 2 {
		t.Fatalf("connectors: %+v", connectors)
	}
	// Each version's native process is sandboxed on this machine.
	for _, c := range connectors.Data {
		if len(c.Sandbox) != len(c.Versions) {
			t.Fatalf("%s: sandbox %+v for versions %v", c.Name, c.Sandbox, c.Versions)
		}
		for i, sb := range c.Sandbox {
			if sb.Version != c.Versions[i] || sb.Runtime != "native" || sb.Mode != "auto" || sb.Network != "host-only" || sb.Filesystem != "restricted" {
				t.Errorf("%s: sandbox %+v", c.Name, sb)
			}
		}
	}
	ts.createEcho(admin, "main")

	var actionList struct {
		Data []struct {
			ID          string   `json:"id"`
			Connections []string `json:"connections"`
		} `json:"data"`
	}
	ts.do("GET", "/v1/actions", viewer, nil).decode(t, &actionList)
	if len(actionList.Data) != 1 || actionList.Data[0].ID != "echo.echo" {
		t.Fatalf("actions: %+v", actionList)
	}
	if resp := ts.do("GET", "/v1/actions/echo.echo", viewer, nil); resp.Status != 200 {
		t.Fatalf("get action: %d %s", resp.Status, resp.Body)
	}

	// Preview, then execute; echo needs no confirmation.
	params := map[string]any{"greeting": "hi", "n": 3}
	resp := ts.do("POST", "/v1/actions/echo.echo/preview", dev, map[string]any{"params": params})
	var preview struct {
		Preview      json.RawMessage `json:"preview"`
		ConfirmToken string          `json:"confirm_token"`
		ExpiresAt    time.Time       `json:"expires_at"`
	}
	resp.decode(t, &preview)
	if resp.Status != 200 || !strings.HasPrefix(preview.ConfirmToken, "ct_") || time.Until(preview.ExpiresAt) < 9*time.Minute {
		t.Fatalf("preview: %d %s", resp.Status, resp.Body)
	}
	resp = ts.do("POST", "/v1/actions/echo.echo/execute", dev, map[string]any{"params": params}, "Idempotency-Key", "k-1")
	var run runJSON
	resp.decode(t, &run)
	if resp.Status != 200 || run.Status != "succeeded" || string(run.Output) != `{"greeting":"hi","n":3}` || run.Connection != "main" {
		t.Fatalf("execute: %d %s", resp.Status, resp.Body)
	}

	// The run is on record, and its events end with its final status.
	var got runJSON
	ts.do("GET", "/v1/runs/"+run.ID, viewer, nil).decode(t, &got)
	if got.Status != "succeeded" || got.KeyID == "" || got.DurationMS == nil {
		t.Fatalf("run: %+v", got)
	}
	var runs struct {
		Data []runJSON `json:"data"`
	}
	ts.do("GET", "/v1/runs?action=echo.echo&status=succeeded", viewer, nil).decode(t, &runs)
	if len(runs.Data) != 1 || runs.Data[0].ID != run.ID {
		t.Fatalf("runs: %+v", runs)
	}
	// By creation time: since is included, until is not.
	created := url.QueryEscape(run.CreatedAt.Format(time.RFC3339Nano))
	for q, want := range map[string]int{"since=" + created: 1, "until=" + created: 0,
		"since=2000-01-01T00:00:00Z&until=" + created: 0, "since=2000-01-01T00:00:00%2B02:00": 1} {
		runs.Data = nil
		resp := ts.do("GET", "/v1/runs?"+q, viewer, nil)
		if resp.decode(t, &runs); resp.Status != 200 || len(runs.Data) != want {
			t.Errorf("runs?%s: %d %s, want %d runs", q, resp.Status, resp.Body, want)
		}
	}
	if resp := ts.do("GET", "/v1/runs?since=yesterday", viewer, nil); resp.Status != 400 || resp.problem(t).Code != core.EInvalid {
		t.Errorf("since=yesterday: %d %s", resp.Status, resp.Body)
	}
	events := ts.do("GET", "/v1/runs/"+run.ID+"/events", viewer, nil)
	if events.Header.Get("Content-Type") != "text/event-stream" || !strings.Contains(string(events.Body), "event: status\nid: 3\n") {
		t.Fatalf("events: %s %s", events.Header.Get("Content-Type"), events.Body)
	}

	// Params that do not match the schema: 422 with a pointer.
	ts.createEcho(admin, "second")
	resp = ts.do("POST", "/v1/actions/echo.echo/execute", dev, map[string]any{"params": params})
	if resp.Status != http.StatusConflict || resp.problem(t).Code != core.EConnectionAmbiguous {
		t.Fatalf("two echo connections without a name: %d %s", resp.Status, resp.Body)
	}

	// The audit log has the preview and both halves of the execution.
	var audit struct {
		Data []core.AuditRecord `json:"data"`
	}
	ts.do("GET", "/v1/audit?limit=200", admin, nil).decode(t, &audit)
	var actions []string
	for _, r := range audit.Data {
		actions = append(actions, r.Action+":"+r.Outcome)
	}
	for _, want := range []string{"connection.create:success", "action.preview:success", "action.execute:started", "action.execute:success"} {
		if !strings.Contains(strings.Join(actions, " "), want) {
			t.Errorf("audit lacks %s: %v", want, actions)
		}
	}
	metrics := string(ts.do("GET", "/metrics", "", nil).Body)
	for _, want := range []string{
		`action_exec_total{action="echo.echo",status="succeeded"} 1`,
		`action_latency_seconds_count{action="echo.echo"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if page := ts.do("GET", "/v1/audit?limit=1", admin, nil, "Accept", "application/x-ndjson"); !strings.HasPrefix(page.Header.Get("Link"), "</v1/audit?limit=1&cursor=") {
		t.Errorf("NDJSON page Link %q, want the next page with the same limit", page.Header.Get("Link"))
	}
	nd := ts.do("GET", "/v1/audit", admin, nil, "Accept", "application/x-ndjson")
	if nd.Header.Get("Content-Type") != "application/x-ndjson" || strings.Count(string(nd.Body), "\n") != len(audit.Data) {
		t.Fatalf("ndjson audit: %s", nd.Body)
	}
}

func TestIdempotency(t *testing.T) {
	eachDatabase(t, echoConnectors(t), testIdempotency)
}

func testIdempotency(t *testing.T, ts *testServer) {
	_, keys := ts.workspace("acme")
	dev := keys[core.RoleDeveloper]
	ts.createEcho(keys[core.RoleAdmin], "main")
	exec := func(params map[string]any, key string) *response {
		return ts.do("POST", "/v1/actions/echo.echo/execute", dev, map[string]any{"params": params}, "Idempotency-Key", key)
	}
	first := exec(map[string]any{"a": 1}, "same")
	again := exec(map[string]any{"a": 1}, "same")
	if again.Status != first.Status || string(again.Body) != string(first.Body) || again.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay: %d %s vs %d %s", again.Status, again.Body, first.Status, first.Body)
	}
	if first.Header.Get("Idempotent-Replayed") != "" {
		t.Fatal("the first response says it was replayed")
	}
	if resp := exec(map[string]any{"a": 2}, "same"); resp.Status != 422 || resp.problem(t).Code != core.EIdempotencyKeyReused {
		t.Fatalf("other params: %d %s", resp.Status, resp.Body)
	}
	if resp := exec(map[string]any{"a": 1}, strings.Repeat("k", 256)); resp.Status != 400 {
		t.Fatalf("a 256-character key: %d", resp.Status)
	}

	// 20 at once with one key: one run; the rest replay it or hear it is running.
	var wg sync.WaitGroup
	statuses := make(chan int, 20)
	for range 20 {
		wg.Go(func() { statuses <- exec(map[string]any{"b": true}, "burst").Status })
	}
	wg.Wait()
	close(statuses)
	for st := range statuses {
		if st != 200 && st != 409 {
			t.Errorf("concurrent request got %d", st)
		}
	}
	var runs struct {
		Data []runJSON `json:"data"`
	}
	ts.do("GET", "/v1/runs?limit=200", dev, nil).decode(t, &runs)
	if len(runs.Data) != 2 { // "same" and "burst"
		t.Fatalf("%d runs, want 2", len(runs.Data))
	}
}

func TestConfirmationAndSecrets(t *testing.T) {
	eachDatabase(t, echoConnectors(t), testConfirmationAndSecrets)
}

func testConfirmationAndSecrets(t *testing.T, ts *testServer) {
	_, keys := ts.workspace("acme")
	admin, dev := keys[core.RoleAdmin], keys[core.RoleDeveloper]
	resp := ts.do("POST", "/v1/connections", admin, map[string]any{
		"connector": "vault", "name": "prod", "config": map[string]any{"region": "eu"}, "secrets": map[string]any{"token": vaultToken}})
	if resp.Status != 201 || strings.Contains(string(resp.Body), vaultToken) || !strings.Contains(string(resp.Body), `"secrets":{"token":true}`) {
		t.Fatalf("create: %d %s", resp.Status, resp.Body)
	}
	resp = ts.do("POST", "/v1/connections", admin, map[string]any{
		"connector": "vault", "name": "bad", "config": map[string]any{"token": "in the wrong place"}})
	if resp.Status != 400 {
		t.Fatalf("a secret in config: %d %s", resp.Status, resp.Body)
	}

	before := vaultDeletions(t)
	body := map[string]any{"params": map[string]any{"id": "item-1"}}
	if resp := ts.do("POST", "/v1/actions/vault.delete_item/execute", dev, body); resp.Status != 428 || resp.problem(t).Code != core.EConfirmationRequired {
		t.Fatalf("without a token: %d %s", resp.Status, resp.Body)
	}
	var preview struct {
		ConfirmToken string `json:"confirm_token"`
	}
	ts.do("POST", "/v1/actions/vault.delete_item/preview", dev, body).decode(t, &preview)
	other := map[string]any{"params": map[string]any{"id": "item-2"}, "confirm_token": preview.ConfirmToken}
	if resp := ts.do("POST", "/v1/actions/vault.delete_item/execute", dev, other); resp.Status != 422 || resp.problem(t).Code != core.EConfirmationInvalid {
		t.Fatalf("a token for other params: %d %s", resp.Status, resp.Body)
	}
	// That attempt did not spend the token: it still confirms the request it was made for.
	body["confirm_token"] = preview.ConfirmToken
	resp = ts.do("POST", "/v1/actions/vault.delete_item/execute", dev, body)
	var run runJSON
	resp.decode(t, &run)
	if resp.Status != 200 || !strings.Contains(string(run.Output), `"key_chars":30`) {
		t.Fatalf("confirmed execute: %d %s", resp.Status, resp.Body)
	}
	if resp := ts.do("POST", "/v1/actions/vault.delete_item/execute", dev, body); resp.Status != 422 {
		t.Fatalf("a used token: %d %s", resp.Status, resp.Body)
	}
	if n := vaultDeletions(t) - before; n != 1 {
		t.Fatalf("%d deletions, want 1", n)
	}

	// A changed secret is the one the next call gets, never a copy kept
	// from the call before.
	var connID string
	resp = ts.do("GET", "/v1/connections", admin, nil)
	var list struct {
		Data []struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"data"`
	}
	resp.decode(t, &list)
	for _, c := range list.Data {
		if c.Name == "prod" {
			connID = c.ID
		}
	}
	for _, tc := range []struct {
		token string
		want  string
	}{{"rotated-token", `"key_chars":13`}, {"rotated-again", `"key_chars":13`}, {"third-token-value", `"key_chars":17`}} {
		if resp := ts.do("PATCH", "/v1/connections/"+connID+"?check=false", admin, map[string]any{"secrets": map[string]any{"token": tc.token}}); resp.Status != 200 {
			t.Fatalf("patch the token: %d %s", resp.Status, resp.Body)
		}
		again := map[string]any{"params": map[string]any{"id": "item-3"}}
		ts.do("POST", "/v1/actions/vault.delete_item/preview", dev, again).decode(t, &preview)
		again["confirm_token"] = preview.ConfirmToken
		if resp := ts.do("POST", "/v1/actions/vault.delete_item/execute", dev, again); !strings.Contains(string(resp.Body), tc.want) {
			t.Fatalf("execute after the token became %s: %d %s", tc.token, resp.Status, resp.Body)
		}
	}

	// A failure is a run too, replayed as it was.
	fail := func() *response {
		return ts.do("POST", "/v1/actions/vault.fail/execute", dev, map[string]any{"params": map[string]any{}}, "Idempotency-Key", "f-1")
	}
	first, second := fail(), fail()
	if first.Status != 502 || first.problem(t).Code != core.EUpstreamFailed || string(second.Body) != string(first.Body) || second.Status != 502 {
		t.Fatalf("failure and its replay: %d %s / %d %s", first.Status, first.Body, second.Status, second.Body)
	}

	if m := string(ts.do("GET", "/metrics", "", nil).Body); !strings.Contains(m, `action_error_total{action="vault.fail",code="upstream_failed"} 1`) {
		t.Error("/metrics does not count the failure by code")
	}

	// The secret is nowhere: responses, runs, audit, logs.
	for _, path := range []string{"/v1/connections", "/v1/runs", "/v1/audit?limit=200"} {
		if r := ts.do("GET", path, admin, nil); strings.Contains(string(r.Body), vaultToken) {
			t.Errorf("%s shows the secret", path)
		}
	}
	if strings.Contains(ts.logs.String(), vaultToken) {
		t.Error("the log shows the secret")
	}
}

func TestInFlightAndAsync(t *testing.T) {
	ts := newTestServerWith(t, echoConnectors(t), nil, nil)
	_, keys := ts.workspace("acme")
	dev := keys[core.RoleDeveloper]
	ts.do("POST", "/v1/connections", keys[core.RoleAdmin], map[string]any{
		"connector": "vault", "name": "prod", "secrets": map[string]any{"token": vaultToken}})
	slow := map[string]any{"params": map[string]any{"ms": 4000}} // still running when the second request comes, however slow the machine
	done := make(chan *response)
	go func() {
		done <- ts.with(t).do("POST", "/v1/actions/vault.slow/execute", dev, slow, "Idempotency-Key", "slow-1")
	}()
	// Once the first request's run is running, the same key is in flight.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var runs struct {
			Data []runJSON `json:"data"`
		}
		ts.do("GET", "/v1/runs?status=running", dev, nil).decode(t, &runs)
		if len(runs.Data) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the slow run never showed as running")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if resp := ts.do("POST", "/v1/actions/vault.slow/execute", dev, slow, "Idempotency-Key", "slow-1"); resp.Status != 409 || resp.problem(t).Code != core.EIdempotencyKeyInFlight {
		t.Fatalf("the same key while the first runs: %d %s", resp.Status, resp.Body)
	}
	if first := <-done; first.Status != 200 {
		t.Fatalf("slow run: %d %s", first.Status, first.Body)
	}

	async := map[string]any{"params": map[string]any{"ms": 300}, "mode": "async"}
	resp := ts.do("POST", "/v1/actions/vault.slow/execute", dev, async, "Idempotency-Key", "a-1")
	var run runJSON
	resp.decode(t, &run)
	if resp.Status != 202 || run.Status != "queued" {
		t.Fatalf("async: %d %s", resp.Status, resp.Body)
	}
	if again := ts.do("POST", "/v1/actions/vault.slow/execute", dev, async, "Idempotency-Key", "a-1"); again.Status != 202 || string(again.Body) != string(resp.Body) {
		t.Fatalf("async replay: %d %s", again.Status, again.Body)
	}
	events := ts.do("GET", "/v1/runs/"+run.ID+"/events", dev, nil)
	var statuses []string
	sc := bufio.NewScanner(strings.NewReader(string(events.Body)))
	for sc.Scan() {
		if id, ok := strings.CutPrefix(sc.Text(), "id: "); ok {
			statuses = append(statuses, id)
		}
	}
	if len(statuses) == 0 || statuses[len(statuses)-1] != "3" {
		t.Fatalf("events of an async run: %v\n%s", statuses, events.Body)
	}
}

func TestActionsIsolation(t *testing.T) {
	eachDatabase(t, echoConnectors(t), testActionsIsolation)
}

func testActionsIsolation(t *testing.T, ts *testServer) {
	wsA, a := ts.workspace("team-a")
	_, b := ts.workspace("team-b")
	runB := ts.connectEcho(b[core.RoleAdmin], "b-echo")
	var conns struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	ts.do("GET", "/v1/connections", b[core.RoleViewer], nil).decode(t, &conns)
	connB := conns.Data[0].ID

	for _, c := range []struct{ method, path string }{
		{"GET", "/v1/connections/" + connB}, {"PATCH", "/v1/connections/" + connB}, {"DELETE", "/v1/connections/" + connB},
		{"GET", "/v1/runs/" + runB}, {"GET", "/v1/runs/" + runB + "/events"},
		{"GET", "/v1/actions/echo.echo"}, {"POST", "/v1/actions/echo.echo/preview"}, {"POST", "/v1/actions/echo.echo/execute"},
	} {
		var body any
		if c.method != "GET" && c.method != "DELETE" {
			body = map[string]any{}
		}
		if resp := ts.do(c.method, c.path, a[core.RoleAdmin], body); resp.Status != 404 {
			t.Errorf("%s %s with A's key: %d %s, want 404", c.method, c.path, resp.Status, resp.Body)
		}
	}
	for _, path := range []string{"/v1/connections", "/v1/runs", "/v1/actions"} {
		if resp := ts.do("GET", path, a[core.RoleAdmin], nil); strings.Contains(string(resp.Body), connB) || strings.Contains(string(resp.Body), runB) {
			t.Errorf("A's %s shows B's resources", path)
		}
	}
	// A's audit log holds only A's records: its own failed attempts name
	// the id A sent, and nothing of B's.
	var audit struct {
		Data []core.AuditRecord `json:"data"`
	}
	ts.do("GET", "/v1/audit?limit=200", a[core.RoleAdmin], nil).decode(t, &audit)
	failures := 0
	for _, r := range audit.Data {
		if r.WorkspaceID != wsA.ID || strings.Contains(string(r.Details), runB) {
			t.Errorf("A's audit log shows a record of B's: %+v", r)
		}
		if r.Outcome == "failure" {
			failures++
		}
	}
	if failures < 2 { // the PATCH and the DELETE at least
		t.Errorf("A's refused mutations left %d failure records", failures)
	}
	// B's connection is intact after A's attempts.
	if resp := ts.do("GET", "/v1/connections/"+connB, b[core.RoleViewer], nil); resp.Status != 200 {
		t.Fatalf("B's connection: %d", resp.Status)
	}
}

// Shutting down ends event streams at once rather than waiting for their
// runs: the stream says so, and the client reconnects elsewhere.
func TestShutdownEndsEventStreams(t *testing.T) {
	ts := newTestServerWith(t, echoConnectors(t), nil, nil)
	_, keys := ts.workspace("acme")
	ts.do("POST", "/v1/connections", keys[core.RoleAdmin], map[string]any{
		"connector": "vault", "name": "prod", "secrets": map[string]any{"token": vaultToken}})
	resp := ts.do("POST", "/v1/actions/vault.slow/execute", keys[core.RoleDeveloper],
		map[string]any{"params": map[string]any{"ms": 6000}, "mode": "async"})
	var run runJSON
	resp.decode(t, &run)
	// The stream is open once its first line has come.
	req, _ := http.NewRequest("GET", ts.URL+"/v1/runs/"+run.ID+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+keys[core.RoleViewer])
	events, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer events.Body.Close()
	rd := bufio.NewReader(events.Body)
	first, err := rd.ReadString('\n')
	if err != nil || events.StatusCode != 200 {
		t.Fatalf("the stream: %d %q %v", events.StatusCode, first, err)
	}
	stream := make(chan string, 1)
	go func() {
		rest, _ := io.ReadAll(rd)
		stream <- first + string(rest)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ts.Server.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	body := <-stream
	if !strings.Contains(body, "event: timeout") || strings.Contains(body, "id: 3") {
		t.Fatalf("the stream did not end with the shutdown:\n%s", body)
	}
}

// A workspace may hold only so many event streams open at once; the next
// is refused with 429 until one closes.
func TestEventStreamsAreCappedPerWorkspace(t *testing.T) {
	ts := newTestServerWith(t, echoConnectors(t), nil, func(c *Config) { c.MaxEventStreams = 2 })
	_, keys := ts.workspace("acme")
	_, other := ts.workspace("other")
	ts.do("POST", "/v1/connections", keys[core.RoleAdmin], map[string]any{
		"connector": "vault", "name": "prod", "secrets": map[string]any{"token": vaultToken}})
	var run runJSON
	ts.do("POST", "/v1/actions/vault.slow/execute", keys[core.RoleDeveloper],
		map[string]any{"params": map[string]any{"ms": 8000}, "mode": "async"}).decode(t, &run)
	open := func() *http.Response {
		req, _ := http.NewRequest("GET", ts.URL+"/v1/runs/"+run.ID+"/events", nil)
		req.Header.Set("Authorization", "Bearer "+keys[core.RoleViewer])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		if resp.StatusCode == 200 {
			// Read the first event: the stream is open and counted.
			if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
				t.Fatal(err)
			}
		}
		return resp
	}
	first, second := open(), open()
	if first.StatusCode != 200 || second.StatusCode != 200 {
		t.Fatalf("first streams: %d, %d", first.StatusCode, second.StatusCode)
	}
	third := open()
	if third.StatusCode != 429 || third.Header.Get("Retry-After") == "" {
		t.Fatalf("a third stream: %d, Retry-After %q; want 429 with Retry-After", third.StatusCode, third.Header.Get("Retry-After"))
	}
	// The cap is no oracle: another workspace asking for the run is told
	// it does not exist, not that its streams are used up.
	if resp := ts.do("GET", "/v1/runs/"+run.ID+"/events", other[core.RoleViewer], nil); resp.Status != 404 {
		t.Fatalf("another workspace's stream of a run it cannot see: %d", resp.Status)
	}
	// A stream whose client left frees its slot at once.
	first.Body.Close()
	deadline := time.Now().Add(2 * time.Second)
	for {
		resp := open()
		if resp.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a stream closed, a new one still gets %d", resp.StatusCode)
		}
		resp.Body.Close()
		time.Sleep(20 * time.Millisecond)
	}
}

// Connections on two versions of a connector each list their version's
// actions; GET of one action describes the newest version's.
func TestActionsOfTwoVersions(t *testing.T) {
	dir := t.TempDir()
	catalogtest.Build(t, dir, "github.com/relayhq/relay/core/httpapi/testdata/vault")
	catalogtest.BuildWith(t, dir, "github.com/relayhq/relay/core/httpapi/testdata/vault", "-X main.version=1.1.0")
	ts := newTestServerWith(t, dir, nil, nil)
	_, keys := ts.workspace("acme")
	for name, version := range map[string]string{"old": "1.0.0", "new": ""} {
		resp := ts.do("POST", "/v1/connections", keys[core.RoleAdmin], map[string]any{
			"connector": "vault", "name": name, "version": version, "secrets": map[string]any{"token": vaultToken}})
		if resp.Status != 201 {
			t.Fatalf("create %s: %d %s", name, resp.Status, resp.Body)
		}
	}
	var list struct {
		Data []struct {
			ID          string   `json:"id"`
			Version     string   `json:"version"`
			Connections []string `json:"connections"`
		} `json:"data"`
	}
	ts.do("GET", "/v1/actions", keys[core.RoleViewer], nil).decode(t, &list)
	var got []string
	for _, a := range list.Data {
		if a.ID == "vault.delete_item" {
			got = append(got, a.Version+":"+strings.Join(a.Connections, ","))
		}
	}
	if want := []string{"1.1.0:new", "1.0.0:old"}; !slices.Equal(got, want) {
		t.Fatalf("vault.delete_item listed as %q, want %q", got, want)
	}
	var one struct {
		Version     string   `json:"version"`
		Connections []string `json:"connections"`
	}
	ts.do("GET", "/v1/actions/vault.delete_item", keys[core.RoleViewer], nil).decode(t, &one)
	if one.Version != "1.1.0" || !slices.Equal(one.Connections, []string{"new"}) {
		t.Fatalf("GET vault.delete_item: %+v, want version 1.1.0 with connection new", one)
	}
}

// An action the workspace does not have is 404 unknown_action, however it
// is missing; a connection it does not have is 404 not_found.
func TestUnknownAction(t *testing.T) {
	ts := newTestServerWith(t, echoConnectors(t), nil, nil)
	_, keys := ts.workspace("acme")
	ts.createEcho(keys[core.RoleAdmin], "shared")
	dev := keys[core.RoleDeveloper]
	body := map[string]any{"params": map[string]any{}}
	for _, tt := range []struct {
		name, method, path string
		body               any
		code               string
	}{
		{"the connector has no such action", "GET", "/v1/actions/echo.nope", nil, core.EUnknownAction},
		{"no connection of the connector", "GET", "/v1/actions/vault.slow", nil, core.EUnknownAction},
		{"no such connector", "GET", "/v1/actions/nope.thing", nil, core.EUnknownAction},
		{"not an action id", "GET", "/v1/actions/echo", nil, core.EUnknownAction},
		{"preview", "POST", "/v1/actions/echo.nope/preview", body, core.EUnknownAction},
		{"execute", "POST", "/v1/actions/echo.nope/execute", body, core.EUnknownAction},
		{"execute, not an action id", "POST", "/v1/actions/echo/execute", body, core.EUnknownAction},
		{"no such connection", "POST", "/v1/actions/echo.echo/execute", map[string]any{"params": map[string]any{}, "connection": "missing"}, core.ENotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := ts.with(t).do(tt.method, tt.path, dev, tt.body)
			if resp.Status != http.StatusNotFound {
				t.Fatalf("status %d, want 404: %s", resp.Status, resp.Body)
			}
			if p := resp.problem(t); p.Code != tt.code {
				t.Fatalf("code %q, want %q: %s", p.Code, tt.code, resp.Body)
			}
		})
	}
}
