package actions

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/catalog"
	"github.com/relayhq/relay/core/catalog/catalogtest"
	"github.com/relayhq/relay/core/goplugin"
	"github.com/relayhq/relay/core/secrets"
	"github.com/relayhq/relay/core/sqlstore"
	"github.com/relayhq/relay/core/sqlstore/sqlstoretest"
)

// replicaStaleAfter is the engines' StaleAfter in these tests: short, with
// heartbeats far more often, so that a live engine is never presumed dead.
const replicaStaleAfter = time.Second

// replicaEnv is one database and the connector runtime that several
// engines, like replicas of the server, share.
type replicaEnv struct {
	t       *testing.T
	store   *sqlstore.Store
	catalog *catalog.Catalog
	// runtime is a goplugin runtime over catalog; a test may wrap it
	// before it starts its engines.
	runtime core.ConnectorRuntime
	keyring *secrets.Keyring
	caller  Caller
}

func newReplicaEnv(t *testing.T, databaseURL, connectorsDir string) *replicaEnv {
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	ws, err := st.CreateWorkspace(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	cat, problems := catalog.Load(connectorsDir)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	rt := goplugin.New(goplugin.Config{Lookup: cat.Get, Logger: hclog.NewNullLogger()})
	t.Cleanup(func() { rt.Close() })
	keyring, err := secrets.NewKeyring(bytes.Repeat([]byte{9}, 32), st)
	if err != nil {
		t.Fatal(err)
	}
	return &replicaEnv{t: t, store: st, catalog: cat, runtime: rt, keyring: keyring,
		caller: Caller{WorkspaceID: ws.ID, KeyID: core.NewID(), Role: core.RoleAdmin}}
}

// engine starts an engine on the shared store, as a replica's start does.
func (e *replicaEnv) engine() *Service {
	e.t.Helper()
	return e.engineOn(e.store)
}

// engineOn starts an engine on store, which wraps the shared one.
func (e *replicaEnv) engineOn(store Store) *Service {
	e.t.Helper()
	s := New(Config{
		Store: store, Catalog: e.catalog, Runtime: e.runtime, Secrets: e.keyring,
		Respond: func(run *core.Run) (int, []byte) {
			status := http.StatusOK
			if run.Status != core.RunSucceeded {
				status = http.StatusInternalServerError
			}
			b, _ := json.Marshal(run)
			return status, b
		},
		StaleAfter:        replicaStaleAfter,
		HeartbeatInterval: 50 * time.Millisecond,
	})
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Close(ctx)
	})
	if _, err := s.Recover(context.Background()); err != nil {
		e.t.Fatalf("Recover: %v", err)
	}
	return s
}

type executed struct {
	res *Result
	err error
}

// slow executes vault.slow for ms on s in the background with key, and
// returns the run once it is running.
func (e *replicaEnv) slow(s *Service, ms int, key string) (*core.Run, <-chan executed) {
	e.t.Helper()
	done := make(chan executed, 1)
	go func() {
		res, err := s.Execute(context.Background(), e.caller, "vault.slow", slowRequest(ms), key)
		done <- executed{res, err}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		runs, _, err := s.ListRuns(context.Background(), e.caller.WorkspaceID, core.RunFilter{Status: core.RunRunning}, core.Page{})
		if err != nil {
			e.t.Fatal(err)
		}
		for _, r := range runs {
			if r.IdempotencyKey == key {
				return r, done
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("the run with key %s never showed as running", key)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func slowRequest(ms int) Request {
	return Request{Params: json.RawMessage(fmt.Sprintf(`{"ms":%d}`, ms))}
}

func (e *replicaEnv) run(id string) *core.Run {
	e.t.Helper()
	r, err := e.store.Run(context.Background(), e.caller.WorkspaceID, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// Two engines on one database, like two replicas: the start and the sweeps
// of one leave the other's runs alone while it heartbeats; once it stops
// heartbeating (it died), its runs are interrupted by the live one after
// StaleAfter; and one that stops cleanly has its leftover runs interrupted
// at once.
func TestReplicasShareRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a connector")
	}
	connectors := t.TempDir()
	catalogtest.Build(t, connectors, "github.com/relayhq/relay/core/httpapi/testdata/vault")
	for _, db := range sqlstoretest.Databases() {
		t.Run(db.Name, func(t *testing.T) {
			ctx := context.Background()
			env := newReplicaEnv(t, db.URL(t), connectors)
			a := env.engine()
			token := "vault-token"
			if _, err := a.CreateConnection(ctx, env.caller, ConnectionInput{
				Connector: ptr("vault"), Name: ptr("prod"), Secrets: map[string]*string{"token": &token},
			}, false); err != nil {
				t.Fatal(err)
			}

			// A runs; B starts meanwhile and sweeps several times.
			run, done := env.slow(a, 5000, "k1") // outlasts B's start and StaleAfter, however slow the machine
			if run.Owner != a.InstanceID() {
				t.Fatalf("run owner %q, want engine A %q", run.Owner, a.InstanceID())
			}
			b := env.engine()
			if b.InstanceID() == a.InstanceID() {
				t.Fatal("two engines share an instance id")
			}
			time.Sleep(replicaStaleAfter + 300*time.Millisecond)
			if got := env.run(run.ID); got.Status != core.RunRunning {
				t.Fatalf("A's run became %s while A was alive", got.Status)
			}
			if r := <-done; r.err != nil || r.res.Status != http.StatusOK {
				t.Fatalf("A's execute: %+v, %v", r.res, r.err)
			}
			if got := env.run(run.ID); got.Status != core.RunSucceeded {
				t.Fatalf("A's run ended %s", got.Status)
			}

			// A dies in the middle of a run: no more heartbeats, its
			// instance record left behind. B's heartbeat sweep interrupts
			// the run once A's last heartbeat is StaleAfter old.
			run, done = env.slow(a, 4000, "k2")
			died := time.Now()
			a.stopHeartbeat()
			deadline := time.Now().Add(20 * time.Second)
			for env.run(run.ID).Status == core.RunRunning {
				if time.Now().After(deadline) {
					t.Fatal("B never interrupted the run of dead A")
				}
				time.Sleep(20 * time.Millisecond)
			}
			if took := time.Since(died); took < replicaStaleAfter-100*time.Millisecond {
				t.Errorf("A's run was interrupted %s after its last heartbeat, before StaleAfter", took)
			}
			got := env.run(run.ID)
			if got.Status != core.RunInterrupted || got.Error == nil || got.Error.Code != core.ERunInterrupted {
				t.Fatalf("dead A's run: %+v", got)
			}
			// A retry on B replays the interruption: the action does not
			// run again.
			res, err := b.Execute(ctx, env.caller, "vault.slow", slowRequest(4000), "k2")
			if err != nil || !res.Replayed || res.Status != http.StatusInternalServerError {
				t.Fatalf("retry on B: %+v, %v", res, err)
			}
			// A was not quite dead after all: the end of its run is
			// refused, the run stays interrupted.
			if r := <-done; core.ErrorCode(r.err) != core.EConflict {
				t.Errorf("A's late end: %+v, %v; want a conflict", r.res, r.err)
			}
			if got := env.run(run.ID); got.Status != core.RunInterrupted {
				t.Errorf("dead A's run after its late end: %s", got.Status)
			}

			// C stops cleanly while a run goes on past its grace period:
			// the run is cancelled, and C's instance record deleted, so
			// the next sweep interrupts the run at once, well before
			// StaleAfter.
			c := env.engine()
			run, done = env.slow(c, 60000, "k3")
			over, cancel := context.WithCancel(ctx)
			cancel()
			c.Close(over)
			if r := <-done; r.err == nil {
				t.Errorf("C's cancelled run answered %d %s", r.res.Status, r.res.Body)
			}
			// B's own heartbeat may sweep between C's Close and this
			// sweep: either way, the run is interrupted once this one is
			// done, without waiting for StaleAfter.
			r, err := b.reclaim(ctx)
			if err != nil || r.Interrupted > 1 {
				t.Fatalf("B's sweep after C stopped: %+v, %v; want the one run at most", r, err)
			}
			if got := env.run(run.ID); got.Status != core.RunInterrupted {
				t.Fatalf("C's leftover run: %s", got.Status)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
