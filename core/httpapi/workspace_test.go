package httpapi

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/relayhq/relay/core"
)

// A workspace's admin downloads its export, then erases it with a
// preview's token: its keys stop working at once and its secrets with
// them; the other workspace goes on as before.
func TestWorkspaceExportAndErasure(t *testing.T) {
	eachDatabase(t, echoConnectors(t), func(t *testing.T, ts *testServer) {
		gone, keys := ts.workspace("gone")
		_, other := ts.workspace("other")
		admin := keys[core.RoleAdmin]
		const secret = "vault-token-of-the-gone-workspace"
		ts.createConnection(admin, map[string]any{"connector": "vault", "name": "vault", "secrets": map[string]string{"token": secret}})
		ts.createEcho(admin, "main")
		var run runJSON
		ts.do("POST", "/v1/actions/echo.echo/execute", keys[core.RoleDeveloper], map[string]any{"params": map[string]any{"greeting": "hi"}}).decode(t, &run)
		ts.createEcho(other[core.RoleAdmin], "main")

		// The export: every file, the run in it, the secret not.
		resp := ts.do("POST", "/v1/workspace/export", admin, nil)
		if resp.Status != 200 || resp.Header.Get("Content-Type") != "application/gzip" ||
			!strings.Contains(resp.Header.Get("Content-Disposition"), `filename="relay-gone-`) {
			t.Fatalf("export: %d %v", resp.Status, resp.Header)
		}
		files := untar(t, resp.Body)
		if !strings.Contains(files["runs.ndjson"], run.ID) || !strings.Contains(files["connection_secrets.ndjson"], `"field":"token"`) ||
			!strings.Contains(files["audit_records.ndjson"], "action.execute") || files["export.json"] == "" {
			t.Errorf("the export: %v", files)
		}
		for name, body := range files {
			if strings.Contains(body, secret) || strings.Contains(body, other[core.RoleAdmin][:20]) {
				t.Errorf("%s holds a secret or another workspace's key", name)
			}
		}
		if resp := ts.do("POST", "/v1/workspace/export", keys[core.RoleDeveloper], nil); resp.Status != http.StatusForbidden {
			t.Errorf("a developer's export: %d", resp.Status)
		}

		// The erasure needs the preview's token, and an admin's.
		if resp := ts.do("DELETE", "/v1/workspace", admin, nil); resp.Status != http.StatusPreconditionRequired || resp.problem(t).Code != core.EConfirmationRequired {
			t.Fatalf("without a token: %d %s", resp.Status, resp.Body)
		}
		var preview struct {
			Rows         map[string]int64 `json:"rows"`
			ConfirmToken string           `json:"confirm_token"`
		}
		ts.do("POST", "/v1/workspace/delete/preview", admin, nil).decode(t, &preview)
		if preview.Rows["runs"] != 1 || preview.Rows["connection_secrets"] != 1 || preview.ConfirmToken == "" {
			t.Fatalf("preview: %+v", preview)
		}
		var otherPreview struct {
			ConfirmToken string `json:"confirm_token"`
		}
		ts.do("POST", "/v1/workspace/delete/preview", other[core.RoleAdmin], nil).decode(t, &otherPreview)
		if resp := ts.do("DELETE", "/v1/workspace", admin, map[string]string{"confirm_token": otherPreview.ConfirmToken}); resp.Status != http.StatusUnprocessableEntity {
			t.Errorf("another workspace's token: %d %s", resp.Status, resp.Body)
		}
		if resp := ts.do("DELETE", "/v1/workspace", keys[core.RoleDeveloper], map[string]string{"confirm_token": preview.ConfirmToken}); resp.Status != http.StatusForbidden {
			t.Errorf("a developer's erasure: %d", resp.Status)
		}
		var tomb core.Erasure
		resp = ts.do("DELETE", "/v1/workspace", admin, map[string]string{"confirm_token": preview.ConfirmToken})
		if resp.decode(t, &tomb); resp.Status != 200 || tomb.WorkspaceID != gone.ID || tomb.AuditSeq == 0 || len(tomb.AuditHash) != 64 {
			t.Fatalf("erase: %d %s", resp.Status, resp.Body)
		}
		for role, key := range keys {
			if resp := ts.do("GET", "/v1/workspace", key, nil); resp.Status != http.StatusUnauthorized {
				t.Errorf("the erased workspace's %s key: %d", role, resp.Status)
			}
		}
		if resp := ts.do("GET", "/v1/workspace", other[core.RoleAdmin], nil); resp.Status != 200 {
			t.Errorf("the other workspace: %d", resp.Status)
		}
		if resp := ts.do("POST", "/v1/actions/echo.echo/execute", other[core.RoleDeveloper], map[string]any{"params": map[string]any{"greeting": "hi"}}); resp.Status != 200 {
			t.Errorf("the other workspace's execute: %d %s", resp.Status, resp.Body)
		}
		if counts, err := ts.Store.WorkspaceRowCounts(t.Context(), gone.ID); err != nil || len(counts) != 0 {
			t.Errorf("rows left: %v %v", counts, err)
		}
	})
}

// untar reads a gzipped tar into its files' contents.
func untar(t *testing.T, data []byte) map[string]string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	out := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		out[h.Name] = string(b)
	}
}

// An admin sets the workspace's retention, some settings at a time, and
// puts them back to the server's; GET /v1/workspace shows the ones in
// force, and an Idempotency-Key is remembered as long as the workspace's
// idempotency retention says.
func TestWorkspaceRetention(t *testing.T) {
	ts := newTestServerWith(t, echoConnectors(t), nil, nil)
	_, keys := ts.workspace("acme")
	admin, dev := keys[core.RoleAdmin], keys[core.RoleDeveloper]
	type view struct {
		RunRetentionDays            int  `json:"run_retention_days"`
		RunRetentionDefault         bool `json:"run_retention_default"`
		AuditRetentionDays          int  `json:"audit_retention_days"`
		AuditRetentionDefault       bool `json:"audit_retention_default"`
		IdempotencyRetentionHours   int  `json:"idempotency_retention_hours"`
		IdempotencyRetentionDefault bool `json:"idempotency_retention_default"`
	}
	var ws view
	ts.do("GET", "/v1/workspace", keys[core.RoleViewer], nil).decode(t, &ws)
	runs, audit, idem := ts.Server.cfg.Actions.DefaultRetention()
	if want := (view{runs, true, audit, true, idem, true}); ws != want || idem != 24 {
		t.Errorf("the defaults: %+v, want %+v", ws, want)
	}
	steps := []struct {
		body string
		want view
	}{
		{`{"run_retention_days": 30}`, view{30, false, audit, true, idem, true}},
		{`{"audit_retention_days": 400, "idempotency_retention_hours": 2}`, view{30, false, 400, false, 2, false}},
		{`{"run_retention_days": null, "audit_retention_days": 3650}`, view{runs, true, 3650, false, 2, false}},
	}
	for _, step := range steps {
		resp := ts.do("PATCH", "/v1/workspace", admin, step.body)
		if resp.decode(t, &ws); resp.Status != 200 || ws != step.want {
			t.Fatalf("%s: %d %s, want %+v", step.body, resp.Status, resp.Body, step.want)
		}
	}
	for bad, pointer := range map[string]string{
		`{"run_retention_days": 0}`:    "/run_retention_days",
		`{"run_retention_days": "30"}`: "/run_retention_days",
		`{}`:                           "",
		`{"run_retention_days": 4000}`: "/run_retention_days",
		`{"run_retention_days": 7, "audit_retention_days": 0}`:           "/audit_retention_days",
		`{"idempotency_retention_hours": 721}`:                           "/idempotency_retention_hours",
		`{"audit_retention_days": 29}`:                                   "/audit_retention_days",
		`{"idempotency_retention_hours": 1.5}`:                           "/idempotency_retention_hours",
		`{"audit_retention_days": 70, "idempotency_retention_hours": 0}`: "/idempotency_retention_hours",
	} {
		resp := ts.do("PATCH", "/v1/workspace", admin, bad)
		p := resp.problem(t)
		if resp.Status != http.StatusBadRequest || p.Code != core.EInvalid || pointer != "" && (len(p.Errors) != 1 || p.Errors[0].Pointer != pointer) {
			t.Errorf("%s: %d %s", bad, resp.Status, resp.Body)
		}
	}
	ts.do("GET", "/v1/workspace", admin, nil).decode(t, &ws)
	if ws != steps[len(steps)-1].want {
		t.Errorf("a refused change changed the settings: %+v", ws)
	}
	if resp := ts.do("PATCH", "/v1/workspace", dev, map[string]any{"run_retention_days": 7}); resp.Status != http.StatusForbidden {
		t.Errorf("a developer: %d", resp.Status)
	}

	// The key is remembered 2 hours from its first use, then the default.
	ts.createEcho(admin, "main")
	execute := func(key string) time.Duration {
		t.Helper()
		if resp := ts.do("POST", "/v1/actions/echo.echo/execute", dev, map[string]any{"params": map[string]any{"greeting": "hi"}}, "Idempotency-Key", key); resp.Status != 200 {
			t.Fatalf("execute: %d %s", resp.Status, resp.Body)
		}
		w, _ := ts.Store.WorkspaceByName(context.Background(), "acme")
		r, err := ts.Store.Idempotency(context.Background(), w.ID, key, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return r.ExpiresAt.Sub(r.CreatedAt)
	}
	if got := execute("k-2h"); got != 2*time.Hour {
		t.Errorf("with 2 hours: the key expires %s after its use", got)
	}
	resp := ts.do("PATCH", "/v1/workspace", admin, `{"idempotency_retention_hours": null}`)
	if resp.decode(t, &ws); resp.Status != 200 || !ws.IdempotencyRetentionDefault || ws.IdempotencyRetentionHours != 24 {
		t.Errorf("back to the default: %d %s", resp.Status, resp.Body)
	}
	if got := execute("k-default"); got != 24*time.Hour {
		t.Errorf("with the default: the key expires %s after its use", got)
	}
}
