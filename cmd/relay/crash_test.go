package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/actions"
	"github.com/relayhq/relay/core/audit"
	"github.com/relayhq/relay/core/catalog/catalogtest"
	"github.com/relayhq/relay/core/sqlstore"
	"github.com/relayhq/relay/core/sqlstore/sqlstoretest"
	"github.com/relayhq/relay/plugins/webhook"
)

// The crash tests kill a real `relay serve` process with SIGKILL at each
// step of an execution (core/actions/crash.go), start it again on the same
// database, and check what docs/execution.md promises: an acknowledged
// execution keeps its run and audit records, and one Idempotency-Key never
// delivers twice.

const crashSigningSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

var (
	crashListeningRE = regexp.MustCompile(`Relay is listening on (http://\S+)`)
	crashKeyRE       = regexp.MustCompile(`rly_[0-9a-z]{26}_[a-z2-7]{52}`)
)

// crashCase is one execution and where the server dies during it.
type crashCase struct {
	// connector is "webhook" (webhook.send, retry-safe: a call cut short
	// runs again with the same webhook-id) or "notify" (notify.post, the
	// same delivery but not retry-safe: testdata/notify).
	connector string
	step      string // "" for no crash: the server is killed after the answer
	mode      string // "sync" or "async"
	// What is stored after the restart: no run for "", else its status.
	runAfter core.RunStatus
	// Deliveries the sink got before the restart, and in all.
	deliveredBefore, delivered int
}

func (c crashCase) connectorName() string {
	if c.connector == "" {
		return "webhook"
	}
	return c.connector
}

func (c crashCase) action() string {
	if c.connector == "notify" {
		return "notify.post"
	}
	return "webhook.send"
}

var crashCases = []crashCase{
	{step: "", mode: "sync", runAfter: core.RunSucceeded, deliveredBefore: 1, delivered: 1},
	{step: "before-start", mode: "sync", runAfter: "", deliveredBefore: 0, delivered: 1},
	// A sync run is running from its start; webhook.send is retry-safe,
	// so the restart runs it (again, after the call) with the same
	// webhook-id.
	{step: "after-start", mode: "sync", runAfter: core.RunSucceeded, deliveredBefore: 0, delivered: 1},
	{step: "after-call", mode: "sync", runAfter: core.RunSucceeded, deliveredBefore: 1, delivered: 2},
	{step: "after-finish", mode: "sync", runAfter: core.RunSucceeded, deliveredBefore: 1, delivered: 1},
	// Async: the 202 is the answer, and the connector is called after it,
	// so the server may die after acknowledging. A run that had not begun
	// is queued, and the restart runs it.
	{step: "before-start", mode: "async", runAfter: "", deliveredBefore: 0, delivered: 1},
	{step: "after-start", mode: "async", runAfter: core.RunSucceeded, deliveredBefore: 0, delivered: 1},
	{step: "after-call", mode: "async", runAfter: core.RunSucceeded, deliveredBefore: 1, delivered: 2},
	{step: "after-finish", mode: "async", runAfter: core.RunSucceeded, deliveredBefore: 1, delivered: 1},
	// Not retry-safe: a run that was running stays interrupted (a sync
	// one too, though its call had not begun); a queued one still runs.
	{connector: "notify", step: "after-start", mode: "sync", runAfter: core.RunInterrupted, deliveredBefore: 0, delivered: 0},
	{connector: "notify", step: "after-call", mode: "sync", runAfter: core.RunInterrupted, deliveredBefore: 1, delivered: 1},
	{connector: "notify", step: "after-start", mode: "async", runAfter: core.RunSucceeded, deliveredBefore: 0, delivered: 1},
	{connector: "notify", step: "after-call", mode: "async", runAfter: core.RunInterrupted, deliveredBefore: 1, delivered: 1},
}

func (c crashCase) name() string {
	name := c.mode + "/"
	if c.connector != "" {
		name = c.connector + "/" + name
	}
	if c.step == "" {
		return name + "no-crash"
	}
	return name + c.step
}

// TestCrashDuringExecute runs every crash case on SQLite and, with
// RELAY_TEST_POSTGRES_URL, on PostgreSQL.
func TestCrashDuringExecute(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the relay binary")
	}
	bin := filepath.Join(t.TempDir(), "relay")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("go build ./cmd/relay: %v", err)
	}
	connectors := crashConnectors(t)

	for _, db := range sqlstoretest.Databases() {
		t.Run(db.Name, func(t *testing.T) {
			for _, c := range crashCases {
				t.Run(c.name(), func(t *testing.T) {
					t.Parallel()
					env := crashEnv{bin: bin, connectors: connectors, dataDir: t.TempDir()}
					if db.Name != "sqlite" {
						env.databaseURL = db.URL(t)
					}
					testCrash(t, env, c)
				})
			}
		})
	}
}

// crashConnectors builds the connectors the crash tests call: webhook
// (retry-safe) and testdata/notify (not).
func crashConnectors(t *testing.T) string {
	dir := t.TempDir()
	catalogtest.Build(t, dir, "github.com/relayhq/relay/plugins/webhook/cmd/webhook")
	catalogtest.Build(t, dir, "github.com/relayhq/relay/cmd/relay/testdata/notify")
	return dir
}

// A server that restarts on its data dir knows that the process before it
// is dead (it held the data dir's lock, now free), so it interrupts that
// process's unfinished run at once, not after --run-stale-after (an hour
// here); and a second server on a data dir in use is refused.
func TestRestartReclaimsItsRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the relay binary")
	}
	bin := filepath.Join(t.TempDir(), "relay")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("go build ./cmd/relay: %v", err)
	}
	env := crashEnv{bin: bin, connectors: crashConnectors(t), dataDir: t.TempDir(), staleAfter: time.Hour}
	sink := newCrashSink(t)

	srv := env.start(t, "after-call")
	api := &crashAPI{t: t, key: crashKeyRE.FindString(srv.stdout.String())}
	if status, _, body := api.do(srv.url, http.MethodPost, "/v1/connections", nil, map[string]any{
		"connector": "notify", "name": "hooks", "secrets": map[string]string{"signing_secret": crashSigningSecret},
	}); status != http.StatusCreated {
		t.Fatalf("create connection: %d %s", status, body)
	}

	// While it runs, the data dir is taken.
	second := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--data-dir", env.dataDir, "--connectors-dir", env.connectors)
	if out, err := second.CombinedOutput(); err == nil || !strings.Contains(string(out), "another relay serve is using the data dir") {
		t.Fatalf("a second server on the same data dir: %v\n%s", err, out)
	}

	execBody := map[string]any{"params": map[string]any{"url": sink.url + "/hook", "body": map[string]any{}}}
	if _, err := api.try(srv.url, http.MethodPost, "/v1/actions/notify.post/execute", map[string]string{"Idempotency-Key": "k1"}, execBody); err == nil {
		t.Fatal("the server answered although it should have died after the call")
	}
	srv.waitExit(t)

	srv = env.start(t, "")
	runs := api.runs(srv.url) // at once: no waiting for a heartbeat to go stale
	if len(runs) != 1 || runs[0].Status != core.RunInterrupted {
		t.Fatalf("runs right after the restart: %+v; want the one run interrupted", runs)
	}
}

func testCrash(t *testing.T, env crashEnv, c crashCase) {
	ctx := context.Background()
	sink := newCrashSink(t)
	if c.mode == "async" {
		// The 202 then has ample time to leave before the run goes on to
		// the later crash points.
		sink.delay = 500 * time.Millisecond
	}

	// The first process: set up, then execute once and die at c.step.
	srv := env.start(t, c.step)
	adminKey := crashKeyRE.FindString(srv.stdout.String())
	if adminKey == "" {
		t.Fatalf("no admin key in the first start's output:\n%s", srv.stdout.String())
	}
	api := &crashAPI{t: t, key: adminKey}
	status, _, body := api.do(srv.url, http.MethodPost, "/v1/connections", nil, map[string]any{
		"connector": c.connectorName(), "name": "hooks",
		"secrets": map[string]string{"signing_secret": crashSigningSecret},
	})
	if status != http.StatusCreated {
		t.Fatalf("create connection: %d %s", status, body)
	}

	const key = "crash-test-key-1"
	execBody := map[string]any{
		"params": map[string]any{"url": sink.url + "/hook", "body": map[string]any{"case": c.name()}},
	}
	if c.mode == "async" {
		execBody["mode"] = "async"
	}
	headers := map[string]string{"Idempotency-Key": key}
	first, firstErr := api.try(srv.url, http.MethodPost, "/v1/actions/"+c.action()+"/execute", headers, execBody)
	var acked *crashRun
	switch {
	case firstErr == nil:
		wantStatus := http.StatusOK
		if c.mode == "async" {
			wantStatus = http.StatusAccepted
		}
		if first.status != wantStatus {
			t.Fatalf("first execute answered %d %s, want %d", first.status, first.body, wantStatus)
		}
		acked = decodeCrashRun(t, first.body)
	case c.step == "":
		t.Fatalf("first execute: %v; want an answer", firstErr)
	case c.mode == "async" && (c.step == "after-call" || c.step == "after-finish"):
		// Expected to be acknowledged (the sink's delay holds the run
		// back), but a slow machine may lose the race: what follows must
		// hold either way.
		t.Logf("the server died before its 202 reached the client: %v", firstErr)
	}
	if c.step != "" && c.mode == "sync" && firstErr == nil {
		t.Fatalf("the server answered %d %s although it should have died at %s", first.status, first.body, c.step)
	}
	if c.step == "" {
		srv.kill() // after the answer: what was acknowledged must be on disk
	}
	if code := srv.waitExit(t); code != -1 {
		t.Fatalf("the server exited with %d, want death by SIGKILL\nstdout:\n%s\nstderr:\n%s", code, srv.stdout.String(), srv.stderr.String())
	}
	if got := sink.total(); got != c.deliveredBefore {
		t.Fatalf("the sink got %d deliveries before the restart, want %d", got, c.deliveredBefore)
	}

	// The second process, on the same database. The dead process's
	// instance record still has a recent heartbeat: its run is interrupted
	// once that heartbeat is older than crashStaleAfter, by Recover at
	// start or by the new process's heartbeat sweep soon after.
	srv = env.start(t, "")
	if crashKeyRE.MatchString(srv.stdout.String()) {
		t.Fatal("a restart printed a new admin key")
	}
	runs := api.runs(srv.url)
	if len(runs) == 1 && !runs[0].Status.Final() {
		api.waitRun(srv.url, runs[0].ID)
		runs = api.runs(srv.url)
	}
	var run *crashRun
	switch {
	case c.runAfter == "" && len(runs) != 0:
		t.Fatalf("a run was stored although the server died before StartExecution: %+v", runs[0])
	case c.runAfter != "":
		if len(runs) != 1 {
			t.Fatalf("%d runs after the restart, want 1", len(runs))
		}
		run = runs[0]
		if run.Status != c.runAfter || run.IdempotencyKey != key {
			t.Fatalf("run after the restart: status %s key %q, want %s %q", run.Status, run.IdempotencyKey, c.runAfter, key)
		}
		if run.Status == core.RunInterrupted && (run.Error == nil || run.Error.Code != core.ERunInterrupted || run.FinishedAt == nil) {
			t.Fatalf("interrupted run: error %+v, finished %v", run.Error, run.FinishedAt)
		}
		if acked != nil && acked.ID != run.ID {
			t.Fatalf("acknowledged run %s, stored run %s", acked.ID, run.ID)
		}
	}

	// Retry with the same key and request, twice: the second is always a
	// replay of the first's answer.
	retry := api.must(srv.url, http.MethodPost, "/v1/actions/"+c.action()+"/execute", headers, execBody)
	switch {
	case c.runAfter == "": // nothing was stored: the retry is the first execution
		if retry.replayed {
			t.Fatalf("retry after a crash before StartExecution was a replay: %d %s", retry.status, retry.body)
		}
		run = decodeCrashRun(t, retry.body)
		if c.mode == "async" {
			if retry.status != http.StatusAccepted {
				t.Fatalf("async retry: %d %s", retry.status, retry.body)
			}
			run = api.waitRun(srv.url, run.ID)
		}
		if run.Status != core.RunSucceeded {
			t.Fatalf("fresh retry: run %+v", run)
		}
	default:
		if !retry.replayed {
			t.Fatalf("retry was not a replay: %d %s", retry.status, retry.body)
		}
		var replayed *crashRun
		switch {
		case c.mode == "async":
			// An async request's answer is its acceptance.
			if retry.status != http.StatusAccepted {
				t.Fatalf("async replay: %d %s, want 202", retry.status, retry.body)
			}
			replayed = decodeCrashRun(t, retry.body)
			if acked != nil && !bytes.Equal(retry.body, first.body) {
				t.Fatalf("async replay differs from the answer:\n%s\n%s", retry.body, first.body)
			}
		case run.Status == core.RunInterrupted:
			var p struct {
				Status int       `json:"status"`
				Code   string    `json:"code"`
				Run    *crashRun `json:"run"`
			}
			if err := json.Unmarshal(retry.body, &p); err != nil || retry.status != http.StatusInternalServerError ||
				p.Status != retry.status || p.Code != core.ERunInterrupted || p.Run == nil {
				t.Fatalf("replay of an interrupted run: %d %s", retry.status, retry.body)
			}
			replayed = p.Run
			if replayed.Status != core.RunInterrupted {
				t.Fatalf("replayed run status %s", replayed.Status)
			}
		default:
			if retry.status != http.StatusOK {
				t.Fatalf("replay of a succeeded run: %d %s", retry.status, retry.body)
			}
			replayed = decodeCrashRun(t, retry.body)
			if replayed.Status != core.RunSucceeded {
				t.Fatalf("replayed run status %s", replayed.Status)
			}
			if acked != nil && !bytes.Equal(retry.body, first.body) {
				t.Fatalf("replay differs from the answer:\n%s\n%s", retry.body, first.body)
			}
		}
		if replayed.ID != run.ID {
			t.Fatalf("replay names run %s, stored run %s", replayed.ID, run.ID)
		}
	}
	again := api.must(srv.url, http.MethodPost, "/v1/actions/"+c.action()+"/execute", headers, execBody)
	if !again.replayed || again.status != retry.status || (retry.replayed && !bytes.Equal(again.body, retry.body)) {
		t.Fatalf("second retry: %d replayed=%v %s; first retry %d %s", again.status, again.replayed, again.body, retry.status, retry.body)
	}
	if c.runAfter == "" && decodeCrashRun(t, again.body).ID != run.ID {
		t.Fatalf("second retry names another run")
	}

	// One key, one webhook-id, whatever happened: a call made again
	// carries the same id, so the receiver drops the repeat.
	runs = api.runs(srv.url)
	if len(runs) != 1 || runs[0].ID != run.ID {
		t.Fatalf("runs after the retries: %d, want only %s", len(runs), run.ID)
	}
	if got := sink.total(); got != c.delivered {
		t.Fatalf("the sink got %d deliveries, want %d", got, c.delivered)
	}
	if ids := sink.counts(); len(ids) > 1 {
		t.Fatalf("one key was delivered under %d webhook-ids: %v", len(ids), ids)
	}
	if final := api.run(srv.url, run.ID); final.Status == core.RunSucceeded {
		var out struct {
			WebhookID string `json:"webhook_id"`
		}
		if err := json.Unmarshal(final.Output, &out); err != nil || sink.counts()[out.WebhookID] == 0 {
			t.Fatalf("succeeded run's output %s does not name the delivery %v", final.Output, sink.counts())
		}
	}

	// The audit log has the run's execute records, and its chain holds.
	records := api.audit(srv.url)
	outcomes := map[string]bool{}
	for _, r := range records {
		if r.Action == "action.execute" && r.Target == "run:"+run.ID {
			outcomes[r.Outcome] = true
		}
	}
	if !outcomes["started"] {
		t.Errorf("no started audit record for run %s: %v", run.ID, outcomes)
	}
	if final := api.run(srv.url, run.ID); final.Status == core.RunSucceeded && !outcomes["success"] {
		t.Errorf("no success audit record for succeeded run %s: %v", run.ID, outcomes)
	}
	env.verifyStore(t, ctx)
}

// crashEnv is what the server processes of one case share.
type crashEnv struct {
	bin, connectors, dataDir string
	databaseURL              string        // empty: SQLite in dataDir
	staleAfter               time.Duration // the servers' --run-stale-after; zero: crashStaleAfter
	extra                    []string      // more flags for relay serve
}

func (e crashEnv) storeURL() string {
	if e.databaseURL != "" {
		return e.databaseURL
	}
	return filepath.Join(e.dataDir, "relay.db")
}

// verifyStore checks, on the store itself, every workspace's audit chain,
// and that the usage counted is exactly the runs that succeeded, per
// workspace and action.
func (e crashEnv) verifyStore(t *testing.T, ctx context.Context) {
	t.Helper()
	st, err := sqlstore.Open(ctx, e.storeURL())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	brk, err := audit.Verify(ctx, st, "", nil)
	if err != nil || brk != nil {
		t.Fatalf("audit chain: %v, %v", brk, err)
	}
	count := func(query string) map[string]int64 {
		rows, err := st.DB().QueryContext(ctx, query)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]int64{}
		for rows.Next() {
			var ws, action string
			var n int64
			if err := rows.Scan(&ws, &action, &n); err != nil {
				t.Fatal(err)
			}
			out[ws+" "+action] = n
		}
		return out
	}
	succeeded := count(`SELECT workspace_id, action, COUNT(*) FROM runs WHERE status = 'succeeded' GROUP BY workspace_id, action`)
	counted := count(`SELECT workspace_id, action, SUM(runs) FROM usage_daily GROUP BY workspace_id, action`)
	if !maps.Equal(succeeded, counted) {
		t.Fatalf("usage counted %v, runs succeeded %v", counted, succeeded)
	}
}

// crashStaleAfter is the servers' --run-stale-after: short, so that a
// restart interrupts the dead process's runs within about a second.
const crashStaleAfter = time.Second

// crashServer is one `relay serve` process.
type crashServer struct {
	cmd    *exec.Cmd
	url    string
	stdout *crashBuf
	stderr *crashBuf
	exited chan struct{}
}

// start runs the server, killing itself at crashAt when not empty, and
// waits for it to listen.
func (e crashEnv) start(t *testing.T, crashAt string) *crashServer {
	t.Helper()
	args := []string{"serve", "--addr", "127.0.0.1:0", "--data-dir", e.dataDir,
		"--connectors-dir", e.connectors, "--egress-allow", "127.0.0.1/32",
		"--run-stale-after", crashStaleAfter.String()}
	if e.staleAfter != 0 {
		args[len(args)-1] = e.staleAfter.String()
	}
	if e.databaseURL != "" {
		args = append(args, "--database-url", e.databaseURL)
	}
	args = append(args, e.extra...)
	s := &crashServer{cmd: exec.Command(e.bin, args...), stdout: &crashBuf{}, stderr: &crashBuf{}, exited: make(chan struct{})}
	// Only the flags configure it: no RELAY_* of the test's environment.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RELAY_") {
			s.cmd.Env = append(s.cmd.Env, kv)
		}
	}
	if crashAt != "" {
		s.cmd.Env = append(s.cmd.Env, actions.CrashEnv+"="+crashAt)
	}
	s.cmd.Stdout, s.cmd.Stderr = s.stdout, s.stderr
	s.cmd.WaitDelay = 10 * time.Second
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		s.kill()
		<-s.exited
		if t.Failed() {
			t.Logf("server (crash at %q) stdout:\n%s\nstderr:\n%s", crashAt, s.stdout.String(), s.stderr.String())
		}
	})
	deadline := time.After(60 * time.Second)
	for {
		if m := crashListeningRE.FindStringSubmatch(s.stdout.String()); m != nil {
			s.url = m[1]
			return s
		}
		select {
		case <-s.exited:
			t.Fatalf("the server exited before listening: %v\nstdout:\n%s\nstderr:\n%s", s.cmd.ProcessState, s.stdout.String(), s.stderr.String())
		case <-deadline:
			t.Fatalf("the server did not listen within 60 s\nstdout:\n%s\nstderr:\n%s", s.stdout.String(), s.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (s *crashServer) kill() {
	select {
	case <-s.exited:
	default:
		s.cmd.Process.Kill()
	}
}

// waitExit waits for the process to end and returns its exit code, -1 when
// a signal ended it.
func (s *crashServer) waitExit(t *testing.T) int {
	t.Helper()
	select {
	case <-s.exited:
		return s.cmd.ProcessState.ExitCode()
	case <-time.After(60 * time.Second):
		t.Fatal("the server did not die within 60 s")
		return 0
	}
}

type crashBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *crashBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *crashBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// crashSink receives webhooks, checks their signature, and counts them
// by webhook-id.
type crashSink struct {
	url   string
	delay time.Duration

	mu    sync.Mutex
	byID  map[string]int
	wrong []string
}

func newCrashSink(t *testing.T) *crashSink {
	key, err := webhook.ParseSigningSecret(crashSigningSecret)
	if err != nil {
		t.Fatal(err)
	}
	s := &crashSink{byID: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		id, ts := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp")
		mac := hmac.New(sha256.New, key)
		fmt.Fprintf(mac, "%s.%s.%s", id, ts, body)
		want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
		s.mu.Lock()
		if id == "" || !strings.Contains(" "+r.Header.Get("webhook-signature")+" ", " "+want+" ") {
			s.wrong = append(s.wrong, id)
		}
		s.byID[id]++
		s.mu.Unlock()
		time.Sleep(s.delay)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(func() {
		srv.Close()
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.wrong) > 0 {
			t.Errorf("deliveries without a valid signature: %v", s.wrong)
		}
	})
	s.url = srv.URL
	return s
}

func (s *crashSink) counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]int, len(s.byID))
	for k, v := range s.byID {
		m[k] = v
	}
	return m
}

func (s *crashSink) total() int {
	n := 0
	for _, v := range s.counts() {
		n += v
	}
	return n
}

// crashRun is the part of a run the crash tests look at.
type crashRun struct {
	ID             string          `json:"id"`
	Status         core.RunStatus  `json:"status"`
	IdempotencyKey string          `json:"idempotency_key"`
	Output         json.RawMessage `json:"output"`
	Error          *core.RunError  `json:"error"`
	FinishedAt     *time.Time      `json:"finished_at"`
}

func decodeCrashRun(t *testing.T, body []byte) *crashRun {
	t.Helper()
	var r crashRun
	if err := json.Unmarshal(body, &r); err != nil || r.ID == "" {
		t.Fatalf("not a run: %s (%v)", body, err)
	}
	return &r
}

// crashAPI calls one server's HTTP API with the admin key. Connections are
// not kept alive: each server is killed in its turn.
type crashAPI struct {
	t   *testing.T
	key string
}

type crashResponse struct {
	status   int
	replayed bool
	body     []byte
}

func (a *crashAPI) try(base, method, path string, headers map[string]string, in any) (*crashResponse, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			a.t.Fatal(err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, base+path, body)
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+a.key)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &crashResponse{status: resp.StatusCode, replayed: resp.Header.Get("Idempotent-Replayed") == "true", body: b}, nil
}

func (a *crashAPI) must(base, method, path string, headers map[string]string, in any) *crashResponse {
	a.t.Helper()
	r, err := a.try(base, method, path, headers, in)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

func (a *crashAPI) do(base, method, path string, headers map[string]string, in any) (int, bool, []byte) {
	a.t.Helper()
	r := a.must(base, method, path, headers, in)
	return r.status, r.replayed, r.body
}

func (a *crashAPI) runs(base string) []*crashRun {
	a.t.Helper()
	status, _, body := a.do(base, http.MethodGet, "/v1/runs?limit=100", nil, nil)
	var page struct{ Data []*crashRun }
	if err := json.Unmarshal(body, &page); status != http.StatusOK || err != nil {
		a.t.Fatalf("GET /v1/runs: %d %s", status, body)
	}
	return page.Data
}

func (a *crashAPI) run(base, id string) *crashRun {
	a.t.Helper()
	status, _, body := a.do(base, http.MethodGet, "/v1/runs/"+id, nil, nil)
	if status != http.StatusOK {
		a.t.Fatalf("GET /v1/runs/%s: %d %s", id, status, body)
	}
	return decodeCrashRun(a.t, body)
}

// waitRun polls a run until its status is final.
func (a *crashAPI) waitRun(base, id string) *crashRun {
	a.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := a.run(base, id)
		if r.Status.Final() {
			return r
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("run %s still %s after 60 s", id, r.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (a *crashAPI) audit(base string) []*core.AuditRecord {
	a.t.Helper()
	var all []*core.AuditRecord
	path := "/v1/audit?limit=100"
	for {
		status, _, body := a.do(base, http.MethodGet, path, nil, nil)
		var page struct {
			Data       []*core.AuditRecord `json:"data"`
			NextCursor *string             `json:"next_cursor"`
		}
		if err := json.Unmarshal(body, &page); status != http.StatusOK || err != nil {
			a.t.Fatalf("GET /v1/audit: %d %s", status, body)
		}
		all = append(all, page.Data...)
		if page.NextCursor == nil {
			return all
		}
		path = "/v1/audit?limit=100&cursor=" + *page.NextCursor
	}
}
