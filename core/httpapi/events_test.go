package httpapi

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relayhq/relay/core"
)

// sseEvent is one Server-Sent Event as a client reads it.
type sseEvent struct {
	Event, ID string
	Data      string
}

// readEvents reads a stream's events until it ends.
func readEvents(t *testing.T, r io.Reader) []sseEvent {
	t.Helper()
	var out []sseEvent
	var ev sseEvent
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev != (sseEvent{}) {
				out = append(out, ev)
			}
			ev = sseEvent{}
		case strings.HasPrefix(line, ":"):
		default:
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "event":
				ev.Event = value
			case "id":
				ev.ID = value
			case "data":
				ev.Data = value
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading the stream: %v", err)
	}
	return out
}

// startSlowRun starts vault.slow, taking ms, in async mode and returns
// the run's id and a viewer key of its workspace.
func startSlowRun(t *testing.T, ts *testServer, ms int) (runID, viewer string) {
	t.Helper()
	_, keys := ts.workspace("acme")
	ts.createConnection(keys[core.RoleAdmin], map[string]any{
		"connector": "vault", "name": "prod", "secrets": map[string]any{"token": vaultToken}})
	var run runJSON
	resp := ts.do("POST", "/v1/actions/vault.slow/execute", keys[core.RoleDeveloper],
		map[string]any{"params": map[string]any{"ms": ms}, "mode": "async"})
	if resp.Status != http.StatusAccepted {
		t.Fatalf("async execute: %d %s", resp.Status, resp.Body)
	}
	resp.decode(t, &run)
	return run.ID, keys[core.RoleViewer]
}

// events opens a run's event stream with Last-Event-ID lastID ("" for
// none).
func (ts *testServer) events(runID, key, lastID string) *http.Response {
	ts.t.Helper()
	req, _ := http.NewRequest("GET", ts.URL+"/v1/runs/"+runID+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	ts.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// Event ids number a run's statuses in order; a client that reconnects
// with Last-Event-ID gets only what it has not seen, and once it has seen
// the final status, 204 (which tells an EventSource to stop).
func TestEventStreamResumes(t *testing.T) {
	ts := newTestServerWith(t, echoConnectors(t), nil, nil)
	runID, viewer := startSlowRun(t, ts, 1500)

	// A client that saw "queued" (id 1) reconnects: it gets the rest,
	// ids growing, ending with the final status, and then the stream ends.
	resp := ts.events(runID, viewer, "1")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("events after 1: %d", resp.StatusCode)
	}
	evs := readEvents(t, resp.Body)
	last := int64(1)
	for _, ev := range evs {
		n, err := strconv.ParseInt(ev.ID, 10, 64)
		if ev.Event != "status" || err != nil || n <= last {
			t.Fatalf("after id 1: event %+v; all: %+v", ev, evs)
		}
		last = n
	}
	var final runJSON
	if len(evs) == 0 || json.Unmarshal([]byte(evs[len(evs)-1].Data), &final) != nil || final.Status != "succeeded" || last != 3 {
		t.Fatalf("the stream did not end with the final status as id 3: %+v", evs)
	}

	for _, tt := range []struct {
		lastID string
		status int
		ids    []string
	}{
		{"", http.StatusOK, []string{"3"}},          // a new client: the run as it is now
		{"2", http.StatusOK, []string{"3"}},         // it saw running
		{"succeeded", http.StatusOK, []string{"3"}}, // not an id this server gives: seen nothing
		{"3", http.StatusNoContent, nil},            // it saw the end
		{"9", http.StatusNoContent, nil},
	} {
		resp := ts.events(runID, viewer, tt.lastID)
		if resp.StatusCode != tt.status {
			t.Fatalf("Last-Event-ID %q on a finished run: %d, want %d", tt.lastID, resp.StatusCode, tt.status)
		}
		var ids []string
		for _, ev := range readEvents(t, resp.Body) {
			ids = append(ids, ev.ID)
		}
		if strings.Join(ids, ",") != strings.Join(tt.ids, ",") {
			t.Fatalf("Last-Event-ID %q on a finished run: ids %v, want %v", tt.lastID, ids, tt.ids)
		}
	}
}

// A client that hangs up frees its workspace's stream slot at once: a
// viewer key that opens streams and drops them cannot starve its
// workspace of streams until the runs end.
func TestEventStreamSlotsFreedOnHangUp(t *testing.T) {
	const slots = 4
	ts := newTestServerWith(t, echoConnectors(t), nil, func(c *Config) { c.MaxEventStreams = slots })
	runID, viewer := startSlowRun(t, ts, 8000) // running through all three rounds, however slow the machine
	open := func() *http.Response {
		resp := ts.events(runID, viewer, "")
		if resp.StatusCode == http.StatusOK {
			// Read the first event: the stream is open and counted.
			if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
				t.Fatal(err)
			}
		}
		return resp
	}
	for round := range 3 {
		var streams []*http.Response
		deadline := time.Now().Add(2 * time.Second) // the streams' pings come every 5 s
		for len(streams) < slots {
			resp := open()
			if resp.StatusCode == http.StatusOK {
				streams = append(streams, resp)
				continue
			}
			resp.Body.Close()
			if time.Now().After(deadline) {
				t.Fatalf("round %d: %d of %d streams open, the next gets %d: the dropped streams still hold their slots",
					round+1, len(streams), slots, resp.StatusCode)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if resp := open(); resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("round %d: a stream past the cap: %d, want 429", round+1, resp.StatusCode)
		}
		for _, resp := range streams {
			resp.Body.Close() // hang up, without reading to the end
		}
	}
}

// TestEventSourceClient follows a run with a real EventSource client (the
// npm eventsource package, testdata/eventsource): it must receive each
// status once, in order, and stop after the final one, rather than
// reconnect every few seconds for ever.
func TestEventSourceClient(t *testing.T) {
	dir, err := filepath.Abs(filepath.Join("testdata", "eventsource"))
	if err != nil {
		t.Fatal(err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node (20 or later) is needed to run an EventSource client: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "eventsource")); err != nil {
		t.Fatalf("the EventSource client is not installed: run `npm ci` in %s (make test and .ci/run do): %v", dir, err)
	}
	ts := newTestServerWith(t, echoConnectors(t), nil, nil)
	runID, viewer := startSlowRun(t, ts, 1500)

	cmd := exec.Command(node, "follow.mjs", ts.URL+"/v1/runs/"+runID+"/events", viewer)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("follow.mjs: %v\n%s\n%s", err, out, stderr.String())
	}
	var seen struct {
		Events []struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		} `json:"events"`
		Connections []struct {
			LastEventID *string `json:"lastEventId"`
		} `json:"connections"`
		Errors []struct {
			Code *int `json:"code"`
		} `json:"errors"`
		ReadyState int `json:"readyState"`
	}
	if err := json.Unmarshal(out, &seen); err != nil {
		t.Fatalf("follow.mjs printed %s: %v", out, err)
	}
	t.Logf("the client saw %s", out)
	statuses := map[string]bool{}
	last := 0
	for _, ev := range seen.Events {
		n, err := strconv.Atoi(ev.ID)
		if err != nil || n <= last || statuses[ev.Status] {
			t.Fatalf("events not each once and in order: %+v", seen.Events)
		}
		last, statuses[ev.Status] = n, true
	}
	if len(seen.Events) == 0 || seen.Events[len(seen.Events)-1].Status != "succeeded" {
		t.Fatalf("the client did not see the run succeed: %+v", seen.Events)
	}
	// One connection for the stream, and one more that the server
	// answered 204 after the final event, which stopped the client.
	if len(seen.Connections) != 2 || seen.Connections[1].LastEventID == nil || *seen.Connections[1].LastEventID != "3" {
		t.Fatalf("connections %s, want the stream and one reconnect with Last-Event-ID 3", out)
	}
	// An error event at each end of a connection: the stream's (the client
	// then reconnects) and the 204's (it stops, CLOSED).
	if n := len(seen.Errors); seen.ReadyState != 2 || n != 2 || seen.Errors[n-1].Code == nil || *seen.Errors[n-1].Code != http.StatusNoContent {
		t.Fatalf("the client did not stop on a 204: %s", out)
	}
}

// A stream lasts as long as its run, however short the server's write
// timeout: the timeout is for each write, not the whole stream.
func TestEventStreamOutlivesWriteTimeout(t *testing.T) {
	ts := newTestServerWith(t, echoConnectors(t), nil, func(c *Config) { c.WriteTimeout = 500 * time.Millisecond })
	runID, viewer := startSlowRun(t, ts, 2000)
	evs := readEvents(t, ts.events(runID, viewer, "").Body)
	if len(evs) == 0 || evs[len(evs)-1].ID != "3" {
		t.Fatalf("the stream ended before the run: %+v", evs)
	}
}

// typeScriptBuilt checks that sdk/typescript's types are what the
// generator makes of the document (with its default options), compiles
// its sources and examples with tsc --strict (once per test binary), and
// returns its folder and node.
func typeScriptBuilt(t *testing.T) (dir, node string) {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "sdk", "typescript"))
	if err != nil {
		t.Fatal(err)
	}
	if node, err = exec.LookPath("node"); err != nil {
		t.Fatalf("node (20 or later) is needed to run the TypeScript client: %v", err)
	}
	bin := filepath.Join(dir, "node_modules", ".bin")
	if _, err := os.Stat(filepath.Join(bin, "tsc")); err != nil {
		t.Fatalf("the TypeScript client's tools are not installed: run `npm ci` in %s (make test and .ci/run do): %v", dir, err)
	}
	tsBuild.once.Do(func() {
		run := func(name string, args ...string) error {
			cmd := exec.Command(filepath.Join(bin, name), args...)
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
			}
			return nil
		}
		tmp, err := os.MkdirTemp("", "relay-ts-")
		if err != nil {
			tsBuild.err = err
			return
		}
		defer os.RemoveAll(tmp)
		generated := filepath.Join(tmp, "schema.d.ts")
		if tsBuild.err = run("openapi-typescript", filepath.Join("..", "..", "schemas", "openapi.json"), "-o", generated); tsBuild.err != nil {
			return
		}
		want, _ := os.ReadFile(generated)
		have, _ := os.ReadFile(filepath.Join(dir, "src", "schema.d.ts"))
		if string(want) != string(have) {
			tsBuild.err = fmt.Errorf("sdk/typescript/src/schema.d.ts is not what openapi-typescript makes of schemas/openapi.json: run `make generate` and commit it")
			return
		}
		tsBuild.err = run("tsc", "-p", ".", "--strict")
	})
	if tsBuild.err != nil {
		t.Fatal(tsBuild.err)
	}
	return dir, node
}

var tsBuild struct {
	once sync.Once
	err  error
}

// TestTypeScriptClient runs the TypeScript client's sample program
// (sdk/typescript/examples/flow.ts) against a real server: the client's
// types are generated from the document with the generator's default
// options (and must be the committed ones), the program compiles with tsc
// --strict, and it connects, lists, previews, executes once (a replay
// with the same idempotency key answers the same run), reads the run and
// follows an async run's events to its end.
func TestTypeScriptClient(t *testing.T) {
	dir, node := typeScriptBuilt(t)
	ts := newTestServerWith(t, echoConnectors(t), nil, nil)
	_, keys := ts.workspace("acme")
	cmd := exec.Command(node, filepath.Join("dist", "examples", "flow.js"), ts.URL, keys[core.RoleAdmin], vaultToken)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("flow.js: %v\n%s\n%s", err, out, stderr.String())
	}
	t.Logf("the sample printed %s", out)
	var got struct {
		Actions              int
		RequiresConfirmation bool `json:"requires_confirmation"`
		Preview              map[string]any
		IdempotencyKey       string `json:"idempotency_key"`
		Run                  struct {
			ID, Status string
			Output     map[string]any
		}
		Replay   struct{ ID, Replayed string }
		Read     struct{ ID, Status string }
		Followed struct {
			ID, Status string
			Statuses   []string
		}
		Missing struct {
			Status int
			Code   string
		}
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("flow.js printed %s: %v", out, err)
	}
	if got.Actions == 0 || !got.RequiresConfirmation || got.Preview["would_delete"] != "item-42" || got.IdempotencyKey == "" {
		t.Errorf("listing and preview: %+v", got)
	}
	if got.Run.Status != "succeeded" || got.Run.Output["deleted"] != "item-42" || got.Replay.ID != got.Run.ID || got.Replay.Replayed != "true" ||
		got.Read.ID != got.Run.ID || got.Read.Status != "succeeded" {
		t.Errorf("execute, replay and read: %+v", got)
	}
	if got.Followed.Status != "succeeded" || len(got.Followed.Statuses) == 0 || got.Followed.Statuses[len(got.Followed.Statuses)-1] != "succeeded" {
		t.Errorf("following the async run: %+v", got.Followed)
	}
	if got.Missing.Status != http.StatusNotFound || got.Missing.Code != core.ENotFound {
		t.Errorf("a missing run: %+v", got.Missing)
	}
	// The server ran the destructive action once, under the sample's key.
	runs := ts.do("GET", "/v1/runs?action=vault.delete_item", keys[core.RoleAdmin], nil)
	var list struct {
		Data []struct {
			IdempotencyKey string `json:"idempotency_key"`
		}
	}
	runs.decode(t, &list)
	if len(list.Data) != 1 || list.Data[0].IdempotencyKey != got.IdempotencyKey {
		t.Errorf("runs of vault.delete_item: %s", runs.Body)
	}
}

// TestMCPWithTypeScriptSDK is an agent with the official MCP TypeScript
// SDK (sdk/typescript/examples/mcp-agent.ts) against a real server: it
// lists the tools, calls echo, gets a preview and a token for a
// destructive action, confirms it, and sees the one run.
func TestMCPWithTypeScriptSDK(t *testing.T) {
	dir, node := typeScriptBuilt(t)
	ts := newTestServerWith(t, echoConnectors(t), nil, nil)
	_, keys := ts.workspace("acme")
	ts.createEcho(keys[core.RoleAdmin], "main")
	ts.createConnection(keys[core.RoleAdmin], map[string]any{"connector": "vault", "name": "prod", "secrets": map[string]any{"token": vaultToken}})
	cmd := exec.Command(node, filepath.Join("dist", "examples", "mcp-agent.js"), ts.URL, keys[core.RoleDeveloper])
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("mcp-agent.js: %v\n%s\n%s", err, out, stderr.String())
	}
	t.Logf("the agent printed %s", out)
	var got struct {
		Tools      int
		DeleteItem *struct {
			Annotations struct {
				ReadOnlyHint    bool `json:"readOnlyHint"`
				DestructiveHint bool `json:"destructiveHint"`
			}
			ConfirmArg bool `json:"confirm_arg"`
		} `json:"delete_item"`
		Echo struct {
			IsError bool
			Run     struct{ Status string }
		}
		Preview struct {
			Status       string
			ConfirmToken string `json:"confirm_token"`
		}
		Confirmed struct {
			IsError bool
			Run     struct{ ID, Status string }
		}
		Runs []struct{ ID, Status string }
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("mcp-agent.js printed %s: %v", out, err)
	}
	if got.Tools == 0 || got.DeleteItem == nil || got.DeleteItem.Annotations.ReadOnlyHint || !got.DeleteItem.Annotations.DestructiveHint ||
		!got.DeleteItem.ConfirmArg {
		t.Errorf("the tools: %s", out)
	}
	if got.Echo.IsError || got.Echo.Run.Status != "succeeded" {
		t.Errorf("echo: %+v", got.Echo)
	}
	if got.Preview.Status != "confirmation_required" || got.Preview.ConfirmToken == "" {
		t.Errorf("the preview: %+v", got.Preview)
	}
	if got.Confirmed.IsError || got.Confirmed.Run.Status != "succeeded" || len(got.Runs) != 1 || got.Runs[0].ID != got.Confirmed.Run.ID {
		t.Errorf("the confirmed call and the runs: %+v, %+v", got.Confirmed, got.Runs)
	}
}
