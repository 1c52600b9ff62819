package actions

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/catalog/catalogtest"
	"github.com/relayhq/relay/core/sqlstore/sqlstoretest"
	"github.com/relayhq/relay/core/wasmrt"
	"github.com/relayhq/relay/sdk/connectortest"
)

// queueEnv is a replicaEnv whose vault connector runs as WASM with one
// instance, so that calls wait for each other, and callTimeout (0: 1 s)
// as the call timeout, so that a wait longer than a call's deadline is
// easy to make.
func queueEnv(t *testing.T, databaseURL, connectors string, callTimeout time.Duration) *replicaEnv {
	env := newReplicaEnv(t, databaseURL, connectors)
	if callTimeout == 0 {
		callTimeout = time.Second
	}
	wasm, err := wasmrt.New(context.Background(), wasmrt.Config{Lookup: env.catalog.Get, Logger: hclog.NewNullLogger(),
		PoolSize: 1, CallTimeout: callTimeout, CompilationCacheDir: connectortest.CompilationCacheDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wasm.Close() })
	env.runtime = core.RuntimeMux{core.RuntimeNative: env.runtime, core.RuntimeWASM: wasm}
	return env
}

func vaultBoth(t *testing.T) string {
	if testing.Short() {
		t.Skip("builds and runs a connector")
	}
	dir := t.TempDir()
	catalogtest.BuildBoth(t, dir, "github.com/relayhq/relay/core/httpapi/testdata/vault")
	return dir
}

func (e *replicaEnv) connectVault(s *Service) {
	e.t.Helper()
	token := "vault-token"
	v, err := s.CreateConnection(context.Background(), e.caller, ConnectionInput{
		Connector: ptr("vault"), Name: ptr("prod"), Secrets: map[string]*string{"token": &token},
	}, false)
	if err != nil {
		e.t.Fatal(err)
	}
	if v.Runtime != core.RuntimeWASM {
		e.t.Fatalf("the connection runs %s, want wasm", v.Runtime)
	}
}

// waitFinal polls the runs until each is final.
func (e *replicaEnv) waitFinal(ids []string, within time.Duration) []*core.Run {
	e.t.Helper()
	deadline := time.Now().Add(within)
	out := make([]*core.Run, len(ids))
	for i, id := range ids {
		for {
			out[i] = e.run(id)
			if out[i].Status.Final() {
				break
			}
			if time.Now().After(deadline) {
				e.t.Fatalf("run %s still %s after %s", id, out[i].Status, within)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return out
}

// warmUp makes a first call, which loads the module: from then on, calls
// get the instance in the order they asked for it. A cold compile under
// the race detector on a busy machine may take longer than one call's
// wait: it goes on in the background, and the next call waits again.
func (e *replicaEnv) warmUp(s *Service) {
	e.t.Helper()
	for deadline := time.Now().Add(5 * time.Minute); ; {
		res, err := s.Execute(context.Background(), e.caller, "vault.slow", slowRequest(1), "")
		if err != nil {
			e.t.Fatal(err)
		}
		if res.Status == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("the module did not load: %d %s", res.Status, res.Body)
		}
	}
}

// waitRunning polls a run until its call has begun.
func (e *replicaEnv) waitRunning(id string) {
	e.t.Helper()
	for deadline := time.Now().Add(20 * time.Second); e.run(id).Status != core.RunRunning; {
		if time.Now().After(deadline) {
			e.t.Fatalf("run %s never began", id)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func decodeRunResult(t *testing.T, res *Result) *core.Run {
	t.Helper()
	var r core.Run
	if err := json.Unmarshal(res.Body, &r); err != nil {
		t.Fatalf("not a run: %s", res.Body)
	}
	return &r
}

// Queued async runs wait for the one instance without spending their
// call's deadline, are running only while their call is made (one at a
// time here, so their running spans never overlap), and all succeed,
// though together they wait far longer than one call may take.
func TestAsyncRunsWaitWithoutSpendingTheirDeadline(t *testing.T) {
	connectors := vaultBoth(t)
	for _, db := range sqlstoretest.Databases() {
		t.Run(db.Name, func(t *testing.T) {
			env := queueEnv(t, db.URL(t), connectors, 0)
			s := env.engine()
			env.connectVault(s)
			env.warmUp(s)
			var ids []string
			for range 6 {
				req := slowRequest(350)
				req.Mode = "async"
				res, err := s.Execute(context.Background(), env.caller, "vault.slow", req, "")
				if err != nil || res.Status != http.StatusAccepted {
					t.Fatalf("async execute: %+v, %v", res, err)
				}
				r := decodeRunResult(t, res)
				if r.Status != core.RunQueued || r.StartedAt != nil {
					t.Fatalf("accepted run %+v; want queued, not started", r)
				}
				ids = append(ids, r.ID)
			}
			runs := env.waitFinal(ids, 30*time.Second)
			for _, r := range runs {
				if r.Status != core.RunSucceeded {
					t.Fatalf("run %s: %s %+v", r.ID, r.Status, r.Error)
				}
			}
			slices.SortFunc(runs, func(a, b *core.Run) int { return a.StartedAt.Compare(*b.StartedAt) })
			// Each began once the one before had had its 350 ms (its
			// finish is recorded a little after its instance is free).
			for i := 1; i < len(runs); i++ {
				if gap := runs[i].StartedAt.Sub(*runs[i-1].StartedAt); gap < 300*time.Millisecond {
					t.Errorf("run %s started %s after run %s: it was running while it waited", runs[i].ID, gap, runs[i-1].ID)
				}
			}
		})
	}
}

// A sync call waits for an instance too, past its call's deadline, as
// long as the action's timeout.
func TestSyncCallsWaitForAnInstance(t *testing.T) {
	connectors := vaultBoth(t)
	env := queueEnv(t, sqlstoretest.SQLiteURL(t), connectors, 0)
	s := env.engine()
	env.connectVault(s)
	env.warmUp(s)
	var wg sync.WaitGroup
	results := make([]executed, 4)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := s.Execute(context.Background(), env.caller, "vault.slow", slowRequest(400), "")
			results[i] = executed{res, err}
		}()
	}
	wg.Wait()
	for _, r := range results {
		if r.err != nil || r.res.Status != http.StatusOK {
			t.Errorf("sync execute: %+v, %v", r.res, r.err)
		}
	}
}

// Past the queue limit an async execute is refused with a Retry-After,
// having written nothing: its key is still free.
func TestQueueLimit(t *testing.T) {
	connectors := vaultBoth(t)
	env := queueEnv(t, sqlstoretest.SQLiteURL(t), connectors, 10*time.Second)
	s := New(Config{Store: env.store, Catalog: env.catalog, Runtime: env.runtime, Secrets: env.keyring,
		Respond: func(*core.Run) (int, []byte) { return 200, nil }, QueueLimit: 2})
	t.Cleanup(func() { s.Close(context.Background()) })
	env.connectVault(s)
	env.warmUp(s)
	// Long enough that the first is still running when the last is sent,
	// however slow the machine.
	async := slowRequest(5000)
	async.Mode = "async"
	accepted := 0
	var refused *core.Error
	for i := range 6 {
		res, err := s.Execute(context.Background(), env.caller, "vault.slow", async, "key-"+string(rune('a'+i)))
		if err == nil && res.Status == http.StatusAccepted {
			accepted++
			if accepted == 1 {
				env.waitRunning(decodeRunResult(t, res).ID) // once it has begun, it has left the queue
			}
			continue
		}
		if core.ErrorCode(err) != core.EUnavailable {
			t.Fatalf("execute %d: %+v, %v; want 202 or unavailable", i, res, err)
		}
		refused = err.(*core.Error)
		if _, err := s.cfg.Store.Idempotency(context.Background(), env.caller.WorkspaceID, "key-"+string(rune('a'+i)), time.Now()); core.ErrorCode(err) != core.ENotFound {
			t.Errorf("a refused execute claimed its key: %v", err)
		}
	}
	if accepted != 3 || refused == nil || refused.RetryAfter < time.Second {
		t.Fatalf("%d accepted (want 1 running and 2 waiting), refusal %+v", accepted, refused)
	}
	runs, _, err := s.ListRuns(context.Background(), env.caller.WorkspaceID, core.RunFilter{}, core.Page{})
	if err != nil || len(runs) != 4 {
		t.Fatalf("%d runs stored, want 4: the warm-up and the accepted (%v)", len(runs), err)
	}
}

// asyncSlow accepts an async vault.slow of ms on s and returns its run id.
func (e *replicaEnv) asyncSlow(s *Service, ms int) string {
	e.t.Helper()
	req := slowRequest(ms)
	req.Mode = "async"
	res, err := s.Execute(context.Background(), e.caller, "vault.slow", req, "")
	if err != nil || res.Status != http.StatusAccepted {
		e.t.Fatalf("async execute: %+v, %v", res, err)
	}
	return decodeRunResult(e.t, res).ID
}

// An engine that stops heartbeating loses the runs still waiting on it to
// a live one, which runs them; when the first engine's turn for an
// instance comes, its lease is gone and it makes no call. (Its call that
// had begun is interrupted: vault.slow may not run again.)
func TestWaitingRunsOfAQuietEngineAreTakenOver(t *testing.T) {
	connectors := vaultBoth(t)
	for _, db := range sqlstoretest.Databases() {
		t.Run(db.Name, func(t *testing.T) {
			env := queueEnv(t, db.URL(t), connectors, 10*time.Second)
			a := env.engine()
			env.connectVault(a)
			env.warmUp(a)
			long := env.asyncSlow(a, 6000) // holds the one instance until B interrupts it
			env.waitRunning(long)
			waiting := []string{env.asyncSlow(a, 100), env.asyncSlow(a, 100)}
			a.stopHeartbeat()
			b := env.engine()
			runs := env.waitFinal(append([]string{long}, waiting...), 30*time.Second)
			if runs[0].Status != core.RunInterrupted {
				t.Errorf("quiet A's running run: %s, want interrupted", runs[0].Status)
			}
			for _, r := range runs[1:] {
				if r.Status != core.RunSucceeded || r.Owner != b.InstanceID() || r.Attempt != 1 {
					t.Errorf("waiting run %s: %s, owner %s (B is %s), attempt %d", r.ID, r.Status, r.Owner, b.InstanceID(), r.Attempt)
				}
			}
		})
	}
}

// An engine that stops cleanly leaves its waiting runs queued, and
// another takes them at its next heartbeat, without waiting for
// StaleAfter.
func TestStoppedEngineHandsOverItsQueue(t *testing.T) {
	connectors := vaultBoth(t)
	env := queueEnv(t, sqlstoretest.SQLiteURL(t), connectors, 10*time.Second)
	a := env.engine()
	env.connectVault(a)
	env.warmUp(a)
	// The first runs long enough that the others are still waiting when
	// the engine stops, however slow the machine.
	ids := []string{env.asyncSlow(a, 3000), env.asyncSlow(a, 100), env.asyncSlow(a, 100)}
	env.waitRunning(ids[0])
	closed := make(chan struct{})
	go func() {
		a.Close(context.Background()) // waits for the call that began
		close(closed)
	}()
	<-closed
	for _, id := range ids[1:] {
		if r := env.run(id); r.Status != core.RunQueued {
			t.Fatalf("run %s left %s by a clean stop, want queued", id, r.Status)
		}
	}
	b := env.engine() // its Recover claims them at once
	runs := env.waitFinal(ids, 10*time.Second)
	for i, r := range runs {
		owner := b.InstanceID()
		if i == 0 {
			owner = a.InstanceID()
		}
		if r.Status != core.RunSucceeded || r.Owner != owner {
			t.Errorf("run %d: %s, owner %s, want succeeded on %s", i, r.Status, r.Owner, owner)
		}
	}
}
