package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/sdk/client"
)

// TestGoClient runs the TypeScript sample's flow with the Go client
// (sdk/client) against a real server: connect, list, preview, execute
// once (a replay with the same idempotency key answers the same run),
// read the run, follow an async run's events to its end; a failed run and
// a missing one are errors with their codes (and the failed run).
func TestGoClient(t *testing.T) {
	ctx := context.Background()
	ts := newTestServerWith(t, echoConnectors(t), nil, nil)
	_, keys := ts.workspace("acme")
	relay := client.New(ts.URL, keys[core.RoleAdmin], nil)

	token := vaultToken
	conn, err := relay.CreateConnection(ctx, client.ConnectionInput{Connector: "vault", Name: "prod",
		Secrets: map[string]*string{"token": &token}}, true)
	if err != nil || !conn.Secrets["token"] || conn.Version == "" {
		t.Fatalf("CreateConnection = %+v, %v", conn, err)
	}
	if page, err := relay.ListConnections(ctx, 10, ""); err != nil || len(page.Data) != 1 || page.NextCursor != "" {
		t.Fatalf("ListConnections = %+v, %v", page, err)
	}
	connectors, err := relay.ListConnectors(ctx)
	if err != nil || len(connectors) == 0 {
		t.Fatalf("ListConnectors = %+v, %v", connectors, err)
	}
	actions, err := relay.ListActions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var deleteItem *client.Action
	for i := range actions {
		if actions[i].ID == "vault.delete_item" {
			deleteItem = &actions[i]
		}
	}
	if deleteItem == nil || !deleteItem.RequiresConfirmation || deleteItem.SideEffect != "destructive" {
		t.Fatalf("vault.delete_item among %d actions: %+v", len(actions), deleteItem)
	}

	params := map[string]any{"id": "item-42"}
	key := client.NewIdempotencyKey()
	if _, err := relay.Execute(ctx, deleteItem.ID, client.ExecuteRequest{Params: params}, key); code(err) != core.EConfirmationRequired {
		t.Fatalf("an execute without a preview: %v", err)
	}
	preview, err := relay.Preview(ctx, deleteItem.ID, client.PreviewRequest{Params: params, Connection: "prod"}, key)
	if err != nil || preview.ConfirmToken == "" || string(preview.Preview) != `{"would_delete":"item-42"}` {
		t.Fatalf("Preview = %+v, %v", preview, err)
	}
	req := client.ExecuteRequest{Params: params, Connection: "prod", ConfirmToken: preview.ConfirmToken}
	first, err := relay.Execute(ctx, deleteItem.ID, req, key)
	if err != nil || first.Replayed || first.Run.Status != "succeeded" {
		t.Fatalf("Execute = %+v, %v", first, err)
	}
	var output struct{ Deleted string }
	if json.Unmarshal(first.Run.Output, &output); output.Deleted != "item-42" {
		t.Fatalf("output %s", first.Run.Output)
	}
	replay, err := relay.Execute(ctx, deleteItem.ID, req, key)
	if err != nil || !replay.Replayed || replay.Run.ID != first.Run.ID {
		t.Fatalf("the replay = %+v, %v", replay, err)
	}
	if _, err := relay.Execute(ctx, deleteItem.ID, req, ""); err == nil {
		t.Fatal("an execute without an idempotency key was sent")
	}
	run, err := relay.Run(ctx, first.Run.ID)
	if err != nil || run.Status != "succeeded" || run.IdempotencyKey != key {
		t.Fatalf("Run = %+v, %v", run, err)
	}
	if page, err := relay.ListRuns(ctx, client.RunFilter{Action: deleteItem.ID}); err != nil || len(page.Data) != 1 || page.Data[0].ID != run.ID {
		t.Fatalf("ListRuns = %+v, %v", page, err)
	}

	queued, err := relay.Execute(ctx, "vault.slow", client.ExecuteRequest{Params: map[string]int{"ms": 300}, Mode: client.ModeAsync},
		client.NewIdempotencyKey())
	if err != nil || queued.Run.Final() {
		t.Fatalf("an async execute = %+v, %v", queued, err)
	}
	var statuses []string
	final, err := relay.FollowRun(ctx, queued.Run.ID, func(r *client.Run) { statuses = append(statuses, r.Status) })
	if err != nil || final.Status != "succeeded" || len(statuses) == 0 || statuses[len(statuses)-1] != "succeeded" {
		t.Fatalf("FollowRun = %+v, %v (statuses %v)", final, err, statuses)
	}
	// Following a run that has ended answers it at once.
	if again, err := relay.FollowRun(ctx, queued.Run.ID, nil); err != nil || again.ID != final.ID || again.Status != "succeeded" {
		t.Fatalf("FollowRun of an ended run = %+v, %v", again, err)
	}

	_, err = relay.Execute(ctx, "vault.fail", client.ExecuteRequest{}, client.NewIdempotencyKey())
	var failed *client.Error
	if !errors.As(err, &failed) || failed.Run == nil || failed.Run.Status != "failed" || failed.Run.Error == nil {
		t.Fatalf("a failed run: %v", err)
	}
	if _, err := relay.Run(ctx, "no-such-run"); code(err) != core.ENotFound {
		t.Fatalf("a missing run: %v", err)
	}
	if page, err := relay.ListAudit(ctx, 5, ""); err != nil || len(page.Data) != 5 || page.NextCursor == "" {
		t.Fatalf("ListAudit = %+v, %v", page, err)
	}
	if err := relay.DeleteConnection(ctx, conn.ID); err != nil {
		t.Fatal(err)
	}
}

func code(err error) string {
	var e *client.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// The Go client's workspace settings, export and erasure, against a real
// server.
func TestGoClientWorkspace(t *testing.T) {
	ts := newTestServerWith(t, "", nil, nil)
	_, keys := ts.workspace("leaving")
	relay := client.New(ts.URL, keys[core.RoleAdmin], nil)
	ctx := t.Context()
	days := 14
	if ws, err := relay.SetRunRetention(ctx, &days); err != nil || ws.RunRetentionDays != 14 || ws.RunRetentionDefault {
		t.Fatalf("SetRunRetention = %+v, %v", ws, err)
	}
	if ws, err := relay.SetRunRetention(ctx, nil); err != nil || !ws.RunRetentionDefault {
		t.Fatalf("SetRunRetention(nil) = %+v, %v", ws, err)
	}
	hours, auditDays := 6, 45
	ws, err := relay.SetRetention(ctx, client.RetentionChange{"audit_retention_days": &auditDays, "idempotency_retention_hours": &hours})
	if err != nil || ws.AuditRetentionDays != 45 || ws.AuditRetentionDefault || ws.IdempotencyRetentionHours != 6 || ws.IdempotencyRetentionDefault || !ws.RunRetentionDefault {
		t.Fatalf("SetRetention = %+v, %v", ws, err)
	}
	if _, err := relay.SetRetention(ctx, client.RetentionChange{"idempotency_retention_hours": &days, "audit_retention_days": new(int)}); errorCode(err) != core.EInvalid {
		t.Fatalf("SetRetention of 0 days: %v", err)
	}
	archive, err := relay.ExportWorkspace(ctx)
	if err != nil || !strings.Contains(untar(t, archive)["audit_records.ndjson"], "workspace.update") {
		t.Fatalf("ExportWorkspace: %d bytes, %v", len(archive), err)
	}
	if _, err := relay.EraseWorkspace(ctx, ""); errorCode(err) != core.EConfirmationRequired {
		t.Fatalf("EraseWorkspace without a token: %v", err)
	}
	preview, err := relay.PreviewEraseWorkspace(ctx)
	if err != nil || preview.Workspace.Name != "leaving" || preview.Rows["api_keys"] == 0 {
		t.Fatalf("PreviewEraseWorkspace = %+v, %v", preview, err)
	}
	e, err := relay.EraseWorkspace(ctx, preview.ConfirmToken)
	if err != nil || e.WorkspaceID != preview.Workspace.ID || e.AuditSeq == 0 {
		t.Fatalf("EraseWorkspace = %+v, %v", e, err)
	}
	if _, err := relay.Workspace(ctx); errorCode(err) != core.EUnauthenticated {
		t.Errorf("the erased workspace's key: %v", err)
	}
}

// errorCode is the code of the client's error, "" for none.
func errorCode(err error) string {
	var e *client.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}
