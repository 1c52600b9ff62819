package actions

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/catalog/catalogtest"
	"github.com/relayhq/relay/core/sqlstore/sqlstoretest"
)

// flakyFinish fails the first few FinishExecution calls, as a database that
// is briefly away does.
type flakyFinish struct {
	Store
	failures atomic.Int32
}

func (f *flakyFinish) FinishExecution(ctx context.Context, run *core.Run, key string, status int, body []byte, audit *core.AuditRecord) error {
	if f.failures.Add(-1) >= 0 {
		return errors.New("connection reset by peer")
	}
	return f.Store.FinishExecution(ctx, run, key, status, body, audit)
}

// A store that fails for a moment when a run ends does not leave the run
// running: the outcome is retried until it is recorded.
func TestFinishRetriesAFailingStore(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a connector")
	}
	connectors := t.TempDir()
	catalogtest.Build(t, connectors, "github.com/relayhq/relay/core/httpapi/testdata/vault")
	env := newReplicaEnv(t, sqlstoretest.SQLiteURL(t), connectors)
	flaky := &flakyFinish{Store: env.store}
	s := env.engineOn(flaky)
	token := "vault-token"
	ctx := context.Background()
	if _, err := s.CreateConnection(ctx, env.caller, ConnectionInput{
		Connector: ptr("vault"), Name: ptr("prod"), Secrets: map[string]*string{"token": &token},
	}, false); err != nil {
		t.Fatal(err)
	}
	flaky.failures.Store(3)
	res, err := s.Execute(ctx, env.caller, "vault.slow", slowRequest(1), "k")
	if err != nil || res.Status != 200 {
		t.Fatalf("execute: %v %+v", err, res)
	}
	if flaky.failures.Load() >= 0 {
		t.Fatal("the store never failed: the test proves nothing")
	}
	runs, _, err := s.ListRuns(ctx, env.caller.WorkspaceID, core.RunFilter{}, core.Page{})
	if err != nil || len(runs) != 1 || runs[0].Status != core.RunSucceeded {
		t.Fatalf("runs %+v, %v; want one succeeded", runs, err)
	}
}
