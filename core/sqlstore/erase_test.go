package sqlstore

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/relayhq/relay/core"
)

// fillWorkspace gives a workspace rows in the core tables and in billing's
// usage: a key, a connection with a secret, its data key, runs (one
// succeeded, so counted in usage; one with an idempotency record), audit
// records, a confirm token.
func fillWorkspace(t *testing.T, s *Store, name string) *core.Workspace {
	t.Helper()
	ctx := context.Background()
	w := mustCreateWorkspace(t, s, name)
	key, _, err := core.NewAPIKey(mustHasher(t), w.ID, "admin", core.RoleAdmin, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateKey(ctx, key, newAudit(w.ID, "key.create")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateWrappedDataKey(ctx, w.ID, bytes.Repeat([]byte{1}, 60)); err != nil {
		t.Fatal(err)
	}
	c := mustCreateConnection(t, s, w.ID, "main", core.SealedSecret{Field: "token", Ciphertext: []byte("sealed")})
	done := newRun(w.ID, "echo.echo")
	done.ConnectionID = c.ID
	mustStart(t, s, done, newClaim("k-"+name))
	done.Status = core.RunSucceeded
	now := time.Now()
	done.FinishedAt = &now
	if err := s.FinishExecution(ctx, done, "k-"+name, 200, []byte(`{}`), newAudit(w.ID, "action.execute")); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveConfirmToken(ctx, newToken(w.ID, time.Now().Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	return w
}

func mustHasher(t *testing.T) *core.KeyHasher {
	h, err := core.NewKeyHasherFromPepper(bytes.Repeat([]byte{3}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// workspaceTables lists the tables of the schema with a workspace_id
// column.
func workspaceTables(t *testing.T, s *Store) []string {
	t.Helper()
	var tables []string
	q := `SELECT m.name FROM sqlite_master m, pragma_table_info(m.name) c WHERE m.type = 'table' AND c.name = 'workspace_id' ORDER BY m.name`
	if s.Dialect() == "postgres" {
		q = `SELECT table_name FROM information_schema.columns WHERE table_schema = current_schema() AND column_name = 'workspace_id' ORDER BY table_name`
	}
	if err := s.db.Select(&tables, q); err != nil {
		t.Fatal(err)
	}
	return tables
}

func eraseToken(ws string) (*core.ConfirmToken, []byte) {
	secret := []byte("ct_" + ws)
	sum := sha256.Sum256(secret)
	req := sha256.Sum256([]byte(ws))
	return &core.ConfirmToken{Hash: sum[:], WorkspaceID: ws, Action: core.EraseWorkspaceAction, RequestHash: req[:], ExpiresAt: time.Now().Add(time.Minute)}, secret
}

// An erasure deletes every row of the workspace, from every table that
// has them, leaves the other workspace's rows as they were, and records
// its tombstone; it needs its own live token and no unfinished run.
func TestEraseWorkspace(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		for _, table := range workspaceTables(t, s) {
			// A publisher is let go, not deleted; the tombstone keeps the id.
			if table != "registry_publishers" && table != "workspace_erasures" && !slices.Contains(workspaceRows, table) {
				t.Errorf("table %s has a workspace_id column but an erasure does not delete its rows", table)
			}
		}
		gone := fillWorkspace(t, s, "gone")
		kept := fillWorkspace(t, s, "kept")
		counts, err := s.WorkspaceRowCounts(ctx, gone.ID)
		if err != nil || counts["runs"] != 1 || counts["connection_secrets"] != 1 || counts["workspace_data_keys"] != 1 || counts["usage_daily"] != 1 {
			t.Fatalf("counts before = %v, %v", counts, err)
		}
		audit, _, err := s.ListAudit(ctx, gone.ID, core.Page{Limit: 200})
		if err != nil {
			t.Fatal(err)
		}
		lastSeq := audit[0].Seq
		for _, r := range audit {
			lastSeq = max(lastSeq, r.Seq)
		}

		tok, _ := eraseToken(gone.ID)
		by := &core.Erasure{WorkspaceID: gone.ID, KeyID: "key-1", RequestID: "req-1"}
		// A token never saved, or saved for another workspace, is refused.
		if _, err := s.EraseWorkspace(ctx, tok, by); core.ErrorCode(err) != core.EConfirmationInvalid {
			t.Fatalf("an unknown token: %v", err)
		}
		other, _ := eraseToken(kept.ID)
		if err := s.SaveConfirmToken(ctx, other); err != nil {
			t.Fatal(err)
		}
		keptBefore, err := s.WorkspaceRowCounts(ctx, kept.ID)
		if err != nil {
			t.Fatal(err)
		}
		wrong := *other
		wrong.WorkspaceID = gone.ID
		if _, err := s.EraseWorkspace(ctx, &wrong, by); core.ErrorCode(err) != core.EConfirmationInvalid {
			t.Fatalf("another workspace's token: %v", err)
		}
		// An unfinished run holds the erasure off (and the token is not
		// spent: the whole transaction rolls back).
		running := newRun(gone.ID, "echo.echo")
		running.Status = core.RunRunning
		mustStart(t, s, running, nil)
		if err := s.SaveConfirmToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
		if _, err := s.EraseWorkspace(ctx, tok, by); core.ErrorCode(err) != core.EConflict {
			t.Fatalf("with a run running: %v", err)
		}
		running.Status = core.RunFailed
		if err := s.FinishExecution(ctx, running, "", 0, nil, nil); err != nil {
			t.Fatal(err)
		}

		e, err := s.EraseWorkspace(ctx, tok, by)
		if err != nil {
			t.Fatal(err)
		}
		if e.AuditSeq != lastSeq || len(e.AuditHash) != 64 || e.ErasedAt.IsZero() || e.KeyID != "key-1" {
			t.Errorf("tombstone %+v, want the chain's end at seq %d", e, lastSeq)
		}
		for _, table := range workspaceTables(t, s) {
			if table == "workspace_erasures" {
				continue
			}
			var n int
			if err := s.db.Get(&n, s.db.Rebind(`SELECT COUNT(*) FROM `+table+` WHERE workspace_id = ?`), gone.ID); err != nil || n != 0 {
				t.Errorf("%s: %d rows of the erased workspace remain (%v)", table, n, err)
			}
		}
		if _, err := s.Workspace(ctx, gone.ID); core.ErrorCode(err) != core.ENotFound {
			t.Errorf("the workspace: %v", err)
		}
		if keptAfter, err := s.WorkspaceRowCounts(ctx, kept.ID); err != nil || !maps.Equal(keptAfter, keptBefore) {
			t.Errorf("the other workspace's rows: %v, were %v (%v)", keptAfter, keptBefore, err)
		}
		if _, err := s.EraseWorkspace(ctx, tok, by); core.ErrorCode(err) != core.EConfirmationInvalid && core.ErrorCode(err) != core.ENotFound {
			t.Errorf("the token again: %v", err)
		}
		list, err := s.Erasures(ctx)
		if err != nil || len(list) != 1 || list[0].WorkspaceID != gone.ID || list[0].AuditHash != e.AuditHash {
			t.Errorf("erasures = %+v, %v", list, err)
		}
	})
}

// An export holds every table's rows of the workspace, and nothing of
// another's, without secret values or key hashes.
func TestExportWorkspace(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		w := fillWorkspace(t, s, "mine")
		fillWorkspace(t, s, "theirs")
		var buf bytes.Buffer
		if err := s.ExportWorkspace(ctx, w.ID, &buf); err != nil {
			t.Fatal(err)
		}
		files := map[string][]byte{}
		zr, err := gzip.NewReader(&buf)
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(zr)
		var names []string
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			data, _ := io.ReadAll(tr)
			files[h.Name] = data
			names = append(names, h.Name)
		}
		if names[0] != "workspace.json" || names[len(names)-1] != "export.json" {
			t.Errorf("files %v", names)
		}
		var m ExportManifest
		if err := json.Unmarshal(files["export.json"], &m); err != nil || m.Workspace != w.ID || len(m.Files) != len(exportTables)+1 {
			t.Fatalf("manifest %+v, %v", m, err)
		}
		for _, f := range m.Files {
			sum := sha256.Sum256(files[f.Name])
			if int64(len(files[f.Name])) != f.Size || f.SHA256 != hex.EncodeToString(sum[:]) {
				t.Errorf("%s does not match the manifest", f.Name)
			}
			if strings.HasSuffix(f.Name, ".ndjson") && int64(strings.Count(string(files[f.Name]), "\n")) != f.Rows {
				t.Errorf("%s: %d rows listed", f.Name, f.Rows)
			}
		}
		all := string(bytes.Join(slices.Collect(maps.Values(files)), nil))
		for _, want := range []string{`"action":"echo.echo"`, `"field":"token"`, `"name":"main"`, `"role":"admin"`, `"day":`} {
			if !strings.Contains(all, want) {
				t.Errorf("the export lacks %s", want)
			}
		}
		for _, never := range []string{"sealed", "secret_hash", "ciphertext", "token_hash"} {
			if strings.Contains(all, never) {
				t.Errorf("the export holds %q", never)
			}
		}
		var runs []map[string]any
		for _, line := range strings.Split(strings.TrimSpace(string(files["runs.ndjson"])), "\n") {
			var r map[string]any
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatal(err)
			}
			runs = append(runs, r)
		}
		if len(runs) != 1 || runs[0]["workspace_id"] != w.ID {
			t.Errorf("runs %v", runs)
		}
	})
}
