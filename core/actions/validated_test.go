package actions

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/catalog/catalogtest"
	"github.com/relayhq/relay/core/sqlstore/sqlstoretest"
)

// recordingRuntime passes every call on to the runtime it wraps and keeps
// what the engine asked for.
type recordingRuntime struct {
	core.ConnectorRuntime
	mu    sync.Mutex
	calls []recordedCall
}

type recordedCall struct {
	preview bool
	ref     core.ConnectorRef
	call    core.ActionCall
}

func (r *recordingRuntime) Preview(ctx context.Context, ref core.ConnectorRef, call core.ActionCall) (json.RawMessage, error) {
	r.record(recordedCall{preview: true, ref: ref, call: call})
	return r.ConnectorRuntime.Preview(ctx, ref, call)
}

func (r *recordingRuntime) Execute(ctx context.Context, ref core.ConnectorRef, call core.ActionCall) (json.RawMessage, error) {
	r.record(recordedCall{ref: ref, call: call})
	return r.ConnectorRuntime.Execute(ctx, ref, call)
}

func (r *recordingRuntime) record(c recordedCall) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, c)
}

// take returns the calls recorded so far, waiting up to 20 s for at least n
// (an async run calls the connector after its request has returned).
func (r *recordingRuntime) take(t *testing.T, n int) []recordedCall {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r.mu.Lock()
		calls := r.calls
		if len(calls) >= n {
			r.calls = nil
		}
		r.mu.Unlock()
		if len(calls) >= n {
			return calls
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connector calls, want %d", len(calls), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The engine validates params against the input schema in the catalog's
// manifest of the connection's version, and calls that same version: it
// tells the connector so, on preview and on execute (sync and async), and
// the connector, a real plugin process, answers. Params that fail the
// schema never reach the connector.
func TestEngineTellsTheConnectorTheInputIsValidated(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a connector")
	}
	connectors := t.TempDir()
	catalogtest.Build(t, connectors, "github.com/relayhq/relay/core/httpapi/testdata/vault")
	env := newReplicaEnv(t, sqlstoretest.SQLiteURL(t), connectors)
	rec := &recordingRuntime{ConnectorRuntime: env.runtime}
	env.runtime = rec
	s := env.engine()
	ctx := context.Background()
	token := "vault-token"
	if _, err := s.CreateConnection(ctx, env.caller, ConnectionInput{
		Connector: ptr("vault"), Name: ptr("prod"), Secrets: map[string]*string{"token": &token},
	}, false); err != nil {
		t.Fatal(err)
	}
	vault := core.ConnectorRef{Name: "vault", Version: "1.0.0", Runtime: core.RuntimeNative}
	check := func(what string, got recordedCall, preview bool, action, input string) {
		t.Helper()
		if got.preview != preview || got.ref != vault || got.call.Action != action || string(got.call.Input) != input {
			t.Errorf("%s: the engine called %+v (preview %v) on %s; want %s with %s (preview %v) on %s",
				what, got.call, got.preview, got.ref, action, input, preview, vault)
		}
		if !got.call.InputValidated {
			t.Errorf("%s: the call does not say its input was validated", what)
		}
	}

	// Params the schema refuses: no call.
	if _, err := s.Preview(ctx, env.caller, "vault.delete_item", Request{Params: json.RawMessage(`{"id":1}`)}, ""); core.ErrorCode(err) != core.EInvalidParams {
		t.Fatalf("preview with a wrong type: %v, want %s", err, core.EInvalidParams)
	}
	if _, err := s.Execute(ctx, env.caller, "vault.slow", Request{Params: json.RawMessage(`{}`)}, ""); core.ErrorCode(err) != core.EInvalidParams {
		t.Fatalf("execute without a required field: %v, want %s", err, core.EInvalidParams)
	}

	p, err := s.Preview(ctx, env.caller, "vault.delete_item", Request{Params: json.RawMessage(`{ "id" : "a1" }`)}, "")
	if err != nil {
		t.Fatal(err)
	}
	calls := rec.take(t, 1)
	if len(calls) != 1 {
		t.Fatalf("%d calls after a refused preview, a refused execute and a preview; want 1: %+v", len(calls), calls)
	}
	check("preview", calls[0], true, "delete_item", `{"id":"a1"}`)

	res, err := s.Execute(ctx, env.caller, "vault.delete_item", Request{Params: json.RawMessage(`{"id":"a1"}`), ConfirmToken: p.ConfirmToken}, "k1")
	if err != nil || res.Status != http.StatusOK {
		t.Fatalf("execute: %+v, %v", res, err)
	}
	check("execute", rec.take(t, 1)[0], false, "delete_item", `{"id":"a1"}`)

	res, err = s.Execute(ctx, env.caller, "vault.slow", Request{Params: json.RawMessage(`{"ms":1}`), Mode: "async"}, "")
	if err != nil || res.Status != http.StatusAccepted {
		t.Fatalf("async execute: %+v, %v", res, err)
	}
	check("async execute", rec.take(t, 1)[0], false, "slow", `{"ms":1}`)
}
