package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/relayhq/relay/core"
)

// The idempotency key a connector gets is derived from the workspace and
// the caller's key: two workspaces using the same key never meet at a
// provider, the caller's own key never leaves Relay, and a retry of the
// run carries the same one. A preview with the key sees it too.
func TestConnectorKeyIsScopedToTheWorkspace(t *testing.T) {
	ts := newTestServerWith(t, echoConnectors(t), nil, nil)
	keyOf := func(admin, path, idemKey string) (key string, status int) {
		t.Helper()
		var headers []string
		if idemKey != "" {
			headers = []string{"Idempotency-Key", idemKey}
		}
		resp := ts.do(http.MethodPost, path, admin, map[string]any{"params": map[string]any{}}, headers...)
		var out struct {
			Output struct {
				IdempotencyKey string `json:"idempotency_key"`
			} `json:"output"`
			Preview struct {
				IdempotencyKey string `json:"idempotency_key"`
			} `json:"preview"`
		}
		resp.decode(t, &out)
		return out.Output.IdempotencyKey + out.Preview.IdempotencyKey, resp.Status
	}
	var got []string
	for _, name := range []string{"a", "b"} {
		_, keys := ts.workspace(name)
		admin := keys[core.RoleAdmin]
		ts.createConnection(admin, map[string]any{"connector": "vault", "name": "v", "secrets": map[string]string{"token": "t0ken"}})
		k, status := keyOf(admin, "/v1/actions/vault.keys/execute", "order-42")
		if status != http.StatusOK || k == "" || k == "order-42" {
			t.Fatalf("workspace %s: the connector got %q (%d)", name, k, status)
		}
		if p, _ := keyOf(admin, "/v1/actions/vault.keys/preview", "order-42"); p != k {
			t.Errorf("workspace %s: the preview with the key got %q, the execute %q", name, p, k)
		}
		if p, _ := keyOf(admin, "/v1/actions/vault.keys/preview", ""); p != "" {
			t.Errorf("workspace %s: a preview without a key got %q", name, p)
		}
		if other, _ := keyOf(admin, "/v1/actions/vault.keys/execute", "order-43"); other == k {
			t.Errorf("workspace %s: two caller keys, one connector key %q", name, k)
		}
		got = append(got, k)
	}
	if got[0] == got[1] {
		t.Fatalf("two workspaces using order-42 gave the connector the same key %q", got[0])
	}
}

// A failed run runs again with POST /v1/runs/{id}/retry: a new run linked
// to it, with its params whole (a secret among them was redacted from the
// stored run), the same connector key, and at most once: a second retry
// answers with the first.
func TestRetryRun(t *testing.T) {
	ts := newTestServerWith(t, echoConnectors(t), nil, nil)
	_, keys := ts.workspace("acme")
	admin := keys[core.RoleAdmin]
	ts.createConnection(admin, map[string]any{"connector": "vault", "name": "v", "secrets": map[string]string{"token": "t0ken"}})
	// The connector fails until then: long enough that the first call
	// fails however slow the machine.
	failUntil := time.Now().Add(5 * time.Second)
	first := ts.do(http.MethodPost, "/v1/actions/vault.keys/execute", admin,
		map[string]any{"params": map[string]any{"password": "hunter22", "fail_until": failUntil.UTC().Format(time.RFC3339Nano)}}, "Idempotency-Key", "k-1")
	var failed struct {
		Code string `json:"code"`
		Run  struct {
			ID     string          `json:"id"`
			Status string          `json:"status"`
			Params json.RawMessage `json:"params"`
		} `json:"run"`
	}
	first.decode(t, &failed)
	if failed.Run.Status != "failed" || strings.Contains(string(failed.Run.Params), "hunter22") {
		t.Fatalf("first run: %d %s", first.Status, first.Body)
	}
	// Not before it failed: a succeeded run, or one of another workspace.
	_, otherKeys := ts.workspace("other")
	if resp := ts.do(http.MethodPost, "/v1/runs/"+failed.Run.ID+"/retry", otherKeys[core.RoleAdmin], nil); resp.Status != http.StatusNotFound {
		t.Errorf("retry from another workspace: %d %s", resp.Status, resp.Body)
	}
	if resp := ts.do(http.MethodPost, "/v1/runs/"+failed.Run.ID+"/retry", keys[core.RoleViewer], nil); resp.Status != http.StatusForbidden {
		t.Errorf("retry by a viewer: %d %s", resp.Status, resp.Body)
	}
	time.Sleep(time.Until(failUntil) + 100*time.Millisecond)

	retry := ts.do(http.MethodPost, "/v1/runs/"+failed.Run.ID+"/retry", keys[core.RoleDeveloper], nil)
	var run struct {
		ID      string `json:"id"`
		Status  string `json:"status"`
		RetryOf string `json:"retry_of"`
		Output  struct {
			IdempotencyKey string `json:"idempotency_key"`
			PasswordLength int    `json:"given_chars"`
		} `json:"output"`
	}
	retry.decode(t, &run)
	if retry.Status != http.StatusOK || run.Status != "succeeded" || run.RetryOf != failed.Run.ID || run.Output.PasswordLength != len("hunter22") {
		t.Fatalf("retry: %d %s", retry.Status, retry.Body)
	}
	stored, err := ts.Store.Run(context.Background(), mustWorkspaceOf(t, ts, admin), failed.Run.ID)
	if err != nil || stored.ConnectorKey != run.Output.IdempotencyKey {
		t.Errorf("the retry's connector key %q, the first run's %+v, %v", run.Output.IdempotencyKey, stored, err)
	}
	again := ts.do(http.MethodPost, "/v1/runs/"+failed.Run.ID+"/retry", admin, nil)
	var same struct{ ID string }
	again.decode(t, &same)
	if again.Status != http.StatusOK || again.Header.Get("Idempotent-Replayed") != "true" || same.ID != run.ID {
		t.Errorf("second retry: %d %s; want the first retry %s replayed", again.Status, again.Body, run.ID)
	}
	if resp := ts.do(http.MethodPost, "/v1/runs/"+run.ID+"/retry", admin, nil); resp.Status != http.StatusConflict {
		t.Errorf("retry of a succeeded run: %d %s", resp.Status, resp.Body)
	}
	// The first run's key still replays the first answer.
	replay := ts.do(http.MethodPost, "/v1/actions/vault.keys/execute", admin,
		map[string]any{"params": map[string]any{"password": "hunter22", "fail_until": failUntil}}, "Idempotency-Key", "k-1")
	if replay.Header.Get("Idempotent-Replayed") != "true" || string(replay.Body) != string(first.Body) {
		t.Errorf("the first key's replay: %d %s", replay.Status, replay.Body)
	}
}

// mustWorkspaceOf is the workspace id of an API key.
func mustWorkspaceOf(t *testing.T, ts *testServer, key string) string {
	t.Helper()
	var ws struct {
		ID string `json:"id"`
	}
	ts.do(http.MethodGet, "/v1/workspace", key, nil).decode(t, &ws)
	return ws.ID
}
