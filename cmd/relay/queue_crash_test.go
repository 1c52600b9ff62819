package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/catalog/catalogtest"
	"github.com/relayhq/relay/core/sqlstore/sqlstoretest"
)

// The async queue under a crash: many async executes are accepted, the
// server is killed with SIGKILL while most of them wait for an instance,
// and every request is sent again with its key. Every acknowledged run
// must end, exactly once: succeeded, or interrupted only when its call had
// begun (it is running from then on, and has started_at) and its action
// is not retry-safe (notify.post; webhook.send is). docs/execution.md.

const (
	queueCrashRequests = 300
	// The sink's answer takes this long, and each server runs two calls
	// of a WASM connector at once: the accepted runs pile up in the
	// queue.
	queueCrashSinkDelay = 40 * time.Millisecond
)

// queueConnectors builds webhook in both forms (a connection runs the
// WASM form, with --wasm-pool-size instances) and notify.
func queueConnectors(t *testing.T) string {
	dir := t.TempDir()
	catalogtest.BuildBoth(t, dir, "github.com/relayhq/relay/plugins/webhook/cmd/webhook")
	catalogtest.Build(t, dir, "github.com/relayhq/relay/cmd/relay/testdata/notify")
	return dir
}

func buildRelay(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "relay")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("go build ./cmd/relay: %v", err)
	}
	return bin
}

// queueLoad is the requests of one test: request i goes to webhook.send,
// or to notify.post for every third i, with key "q-<i>".
type queueLoad struct {
	t    *testing.T
	api  *crashAPI
	sink *crashSink

	mu    sync.Mutex
	acked map[int]string // request → run id of its 202
}

func (l *queueLoad) request(i int) (path string, headers map[string]string, body map[string]any) {
	action := "webhook.send"
	if i%3 == 0 {
		action = "notify.post"
	}
	return "/v1/actions/" + action + "/execute", map[string]string{"Idempotency-Key": fmt.Sprintf("q-%d", i)},
		map[string]any{"mode": "async", "params": map[string]any{"url": l.sink.url + "/hook", "body": map[string]any{"i": i}}}
}

// send sends requests from..to-1 to base with 16 callers, and records
// each 202. stop, when it returns true, ends the sending early.
func (l *queueLoad) send(base string, from, to int, stop func() bool) {
	next := make(chan int)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				path, headers, body := l.request(i)
				r, err := l.api.try(base, http.MethodPost, path, headers, body)
				if err != nil || r.status != http.StatusAccepted {
					continue // the server died, or refused: sent again later
				}
				run := decodeCrashRun(l.t, r.body)
				l.mu.Lock()
				if prev, ok := l.acked[i]; ok && prev != run.ID {
					l.t.Errorf("request %d acknowledged as run %s, then as run %s", i, prev, run.ID)
				}
				l.acked[i] = run.ID
				l.mu.Unlock()
			}
		}()
	}
	for i := from; i < to && !stop(); i++ {
		next <- i
	}
	close(next)
	wg.Wait()
}

func (l *queueLoad) ackedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// resendAll sends every request again until each is acknowledged: a
// replay of its first 202, or, for one never stored, its first run.
func (l *queueLoad) resendAll(base string) {
	deadline := time.Now().Add(2 * time.Minute)
	for l.ackedCount() < queueCrashRequests {
		if time.Now().After(deadline) {
			l.t.Fatalf("only %d of %d requests acknowledged after resending", l.ackedCount(), queueCrashRequests)
		}
		l.send(base, 0, queueCrashRequests, func() bool { return false })
	}
}

// waitIdle polls until no run is queued or running, within d.
func (l *queueLoad) waitIdle(base string, d time.Duration) {
	l.t.Helper()
	deadline := time.Now().Add(d)
	for {
		left := 0
		for _, status := range []string{"queued", "running"} {
			_, _, body := l.api.do(base, http.MethodGet, "/v1/runs?limit=200&status="+status, nil, nil)
			var page struct{ Data []*crashRun }
			if err := json.Unmarshal(body, &page); err != nil {
				l.t.Fatal(err)
			}
			left += len(page.Data)
		}
		if left == 0 {
			return
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("%d runs still queued or running after %s", left, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// check reads every run and holds the test to the promise.
func (l *queueLoad) check(base string, env crashEnv) {
	l.t.Helper()
	runs := map[string]*queueRun{}
	path := "/v1/runs?limit=200"
	for {
		status, _, body := l.api.do(base, http.MethodGet, path, nil, nil)
		var page struct {
			Data       []*queueRun `json:"data"`
			NextCursor *string     `json:"next_cursor"`
		}
		if err := json.Unmarshal(body, &page); status != http.StatusOK || err != nil {
			l.t.Fatalf("GET /v1/runs: %d %s", status, body)
		}
		for _, r := range page.Data {
			runs[r.ID] = r
		}
		if page.NextCursor == nil {
			break
		}
		path = "/v1/runs?limit=200&cursor=" + *page.NextCursor
	}
	if len(runs) != queueCrashRequests {
		l.t.Errorf("%d runs for %d keys", len(runs), queueCrashRequests)
	}
	deliveries := l.sink.counts()
	var succeeded, interrupted, again int
	for i, id := range l.acked {
		r := runs[id]
		if r == nil {
			l.t.Errorf("request %d's run %s is not stored", i, id)
			continue
		}
		if r.Attempt > 1 {
			again++
		}
		switch {
		case r.Status == core.RunSucceeded:
			succeeded++
			var out struct {
				WebhookID string `json:"webhook_id"`
			}
			if err := json.Unmarshal(r.Output, &out); err != nil || deliveries[out.WebhookID] == 0 {
				l.t.Errorf("run %s succeeded but the sink never got its webhook-id %q", r.ID, out.WebhookID)
			}
		case r.Status == core.RunInterrupted && r.Action == "notify.post" && r.StartedAt != nil:
			interrupted++ // its call had begun, and may not be made again
		default:
			l.t.Errorf("request %d: run %s (%s) ended %s, started %v, attempt %d", i, r.ID, r.Action, r.Status, r.StartedAt, r.Attempt)
		}
	}
	// A call made again carries its first webhook-id: no run delivered
	// under two ids, so a receiver that drops a repeated id acts once.
	if len(deliveries) > queueCrashRequests {
		l.t.Errorf("%d webhook-ids for %d runs", len(deliveries), queueCrashRequests)
	}
	redelivered := 0
	for _, n := range deliveries {
		redelivered += n - 1
	}
	l.t.Logf("%d runs: %d succeeded, %d interrupted after their call began; %d run again; %d repeated deliveries for the receiver to drop",
		len(runs), succeeded, interrupted, again, redelivered)
	env.verifyStore(l.t, context.Background())
}

// queueRun is what the test reads of a run.
type queueRun struct {
	crashRun
	Action    string     `json:"action"`
	Attempt   int        `json:"attempt"`
	StartedAt *time.Time `json:"started_at"`
}

func newQueueLoad(t *testing.T, env crashEnv, srv *crashServer) *queueLoad {
	// The default quota (50 requests/s) would refuse the burst.
	args := []string{"workspaces", "set-limit", "default", "--rate", "100000", "--burst", "100000", "--data-dir", env.dataDir}
	if env.databaseURL != "" {
		args = append(args, "--database-url", env.databaseURL)
	}
	if out, err := exec.Command(env.bin, args...).CombinedOutput(); err != nil {
		t.Fatalf("relay %v: %v\n%s", args, err, out)
	}
	sink := newCrashSink(t)
	sink.delay = queueCrashSinkDelay
	api := &crashAPI{t: t, key: crashKeyRE.FindString(srv.stdout.String())}
	for _, c := range []string{"webhook", "notify"} {
		if status, _, body := api.do(srv.url, http.MethodPost, "/v1/connections", nil, map[string]any{
			"connector": c, "name": c, "secrets": map[string]string{"signing_secret": crashSigningSecret},
		}); status != http.StatusCreated {
			t.Fatalf("create connection: %d %s", status, body)
		}
	}
	return &queueLoad{t: t, api: api, sink: sink, acked: map[int]string{}}
}

// TestAsyncRunsSurviveSIGKILL: one server, killed in the middle of a
// burst of async executes, restarted on the same database.
func TestAsyncRunsSurviveSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the relay binary")
	}
	bin, connectors := buildRelay(t), queueConnectors(t)
	for _, db := range sqlstoretest.Databases() {
		t.Run(db.Name, func(t *testing.T) {
			env := crashEnv{bin: bin, connectors: connectors, dataDir: t.TempDir(), extra: []string{"--wasm-pool-size", "2"}}
			if db.Name != "sqlite" {
				env.databaseURL = db.URL(t)
			}
			srv := env.start(t, "")
			load := newQueueLoad(t, env, srv)
			// Killed once a third of the requests are acknowledged.
			load.send(srv.url, 0, queueCrashRequests, func() bool {
				if load.ackedCount() >= queueCrashRequests/3 {
					srv.kill()
					return true
				}
				return false
			})
			srv.kill()
			srv.waitExit(t)
			before := load.ackedCount()
			if before == 0 || load.sink.total() >= before {
				t.Fatalf("%d acknowledged and %d delivered before the kill: nothing was left waiting", before, load.sink.total())
			}

			srv = env.start(t, "")
			load.resendAll(srv.url)
			load.waitIdle(srv.url, 2*time.Minute)
			load.check(srv.url, env)
		})
	}
}

// TestAsyncRunsOfADeadReplica: two servers on one PostgreSQL; one is
// killed under async load, and the other runs its never-started runs
// within --run-stale-after (and a heartbeat or two).
func TestAsyncRunsOfADeadReplica(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the relay binary")
	}
	bin, connectors := buildRelay(t), queueConnectors(t)
	dbURL := sqlstoretest.PostgresURL(t)
	const staleAfter = 2 * time.Second
	extra := []string{"--wasm-pool-size", "2"}
	a := crashEnv{bin: bin, connectors: connectors, dataDir: t.TempDir(), databaseURL: dbURL, staleAfter: staleAfter, extra: extra}
	b := a
	b.dataDir = t.TempDir()

	srvA := a.start(t, "")
	// B shares A's master key, as replicas do.
	b.extra = append([]string{"--master-key-file", filepath.Join(a.dataDir, "master.key")}, extra...)
	load := newQueueLoad(t, a, srvA)
	srvB := b.start(t, "")
	load.send(srvA.url, 0, queueCrashRequests, func() bool {
		if load.ackedCount() >= queueCrashRequests/3 {
			srvA.kill()
			return true
		}
		return false
	})
	srvA.kill()
	srvA.waitExit(t)
	killed := time.Now()
	if load.sink.total() >= load.ackedCount() {
		t.Fatalf("%d acknowledged and %d delivered before the kill: nothing was left waiting", load.ackedCount(), load.sink.total())
	}
	// B takes A's queued runs once A's heartbeat is stale: within
	// staleAfter, a heartbeat (a sixth of it) and B's time to run them.
	load.waitIdle(srvB.url, 2*time.Minute)
	t.Logf("B finished A's runs %s after A died (--run-stale-after %s)", time.Since(killed).Round(time.Millisecond), staleAfter)
	load.resendAll(srvB.url)
	load.waitIdle(srvB.url, 2*time.Minute)
	load.check(srvB.url, b)
}
