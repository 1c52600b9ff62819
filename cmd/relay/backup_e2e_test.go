package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"aead.dev/minisign"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/secrets"
	"github.com/relayhq/relay/core/sqlstore"
	"github.com/relayhq/relay/core/sqlstore/sqlstoretest"
	"github.com/relayhq/relay/registry/relaypkg"
)

// The restore drill (docs/operations.md, "Backups and restore"): a server
// with two workspaces, their keys, an installed package, connections with
// secrets, runs and audit records is backed up while executions keep
// running; the backup is restored into a new data dir and a server
// started on it. Every key authenticates, every secret opens (and a
// destructive action runs with it on the installed package, unpacked
// again from the restored blobs), the audit chains verify, and every run
// that had ended before the backup began is there as it was.
func TestBackupRestoreDrill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs connectors")
	}
	ctx := context.Background()
	pkgs := vaultPackages(t, "1.0.0")
	root := t.TempDir()
	cfg := Config{DataDir: filepath.Join(root, "relay-data"), ConnectorsDir: t.TempDir()}
	m, banner := startMain(t, cfg, io.Discard)
	h := &httpClient{t: t, base: m.URL()}
	keys := map[string]string{"admin": keyRE.FindString(banner)} // of the first workspace
	for _, role := range []string{"developer", "viewer"} {
		var k struct{ Key string }
		h.json("POST", "/v1/keys", keys["admin"], map[string]string{"name": role, "role": role}, 201, &k)
		keys[role] = k.Key
	}
	if _, err := relay(t, cfg, "workspaces", "create", "beta"); err != nil {
		t.Fatal(err)
	}
	out, err := relay(t, cfg, "keys", "create", "--workspace", "beta", "--role", "admin")
	if err != nil {
		t.Fatal(err)
	}
	keys["beta"] = strings.TrimSpace(out)

	pub, priv, _ := minisign.GenerateKey(nil)
	var reg struct{ Token string }
	h.json("POST", "/v1/registry/publishers", keys["admin"], map[string]string{"name": "acme", "public_key": relaypkg.PublicKeyLine(pub)}, 201, &reg)
	h.publish(reg.Token, pkgs["1.0.0"], priv)
	tokens := map[string]string{"admin": "t0ken-of-the-first", "beta": "a-longer-t0ken-of-beta"}
	for ws, token := range tokens {
		h.json("POST", "/v1/connectors/install", keys[ws], map[string]string{"package": "acme/vault"}, 201, nil)
		h.json("POST", "/v1/connections", keys[ws], map[string]any{"connector": "vault", "name": "main",
			"secrets": map[string]string{"token": token}}, 201, nil)
	}
	deleteItem := func(h *httpClient, key, item string) map[string]any {
		t.Helper()
		body := map[string]any{"params": map[string]any{"id": item}}
		var preview struct {
			ConfirmToken string `json:"confirm_token"`
		}
		h.json("POST", "/v1/actions/vault.delete_item/preview", key, body, 200, &preview)
		body["confirm_token"] = preview.ConfirmToken
		var run struct {
			Status string
			Output map[string]any
		}
		h.json("POST", "/v1/actions/vault.delete_item/execute", key, body, 200, &run)
		if run.Status != "succeeded" {
			t.Fatalf("delete_item: %+v", run)
		}
		return run.Output
	}
	deleteItem(h, keys["admin"], "a1")
	deleteItem(h, keys["beta"], "b1")

	// Executions keep running on the first workspace while the backup
	// is taken, as fast as they go.
	if _, err := relay(t, cfg, "workspaces", "set-limit", "default", "--rate", "100000", "--burst", "100000"); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var executed atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("POST", m.URL()+"/v1/actions/vault.keys/execute", strings.NewReader(`{"params": {}}`))
				req.Header.Set("Authorization", "Bearer "+keys["developer"])
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("an execute under load: %d", resp.StatusCode)
					return
				}
				executed.Add(1)
			}
		})
	}
	for executed.Load() < 20 {
		time.Sleep(10 * time.Millisecond)
	}
	ended := endedRuns(t, m.store)
	archive := filepath.Join(root, "relay.backup")
	out, err = relay(t, cfg, "backup", "--out", archive, "--include-master-key")
	if err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	if !strings.Contains(out, "registry blob") || executed.Load() <= 20 {
		t.Fatalf("backup: %q after %d executions", out, executed.Load())
	}
	if fi, err := os.Stat(archive); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the archive: %v %v", fi, err)
	}
	total := len(endedRuns(t, m.store))

	// Restored into a new data dir, a server starts on it.
	restored := Config{DataDir: filepath.Join(root, "restored"), ConnectorsDir: cfg.ConnectorsDir}
	if out, err = relay(t, Config{DataDir: restored.DataDir}, "restore", archive); err != nil || !strings.Contains(out, "the master key is") {
		t.Fatalf("restore: %q %v", out, err)
	}
	r, _ := startMain(t, restored, io.Discard)
	rh := &httpClient{t: t, base: r.URL()}
	for _, key := range keys {
		rh.json("GET", "/v1/workspace", key, nil, 200, nil)
	}
	// The runs the snapshot caught running belong to an engine the
	// restored instance file names: the new server interrupts them.
	var unfinished int
	if err := r.store.DB().Get(&unfinished, `SELECT COUNT(*) FROM runs WHERE status IN ('queued', 'running')`); err != nil || unfinished != 0 {
		t.Errorf("%d runs left unfinished on the restored server (%v)", unfinished, err)
	}
	got := endedRuns(t, r.store)
	interrupted := 0
	for _, status := range got {
		if status == "interrupted" {
			interrupted++
		}
	}
	t.Logf("%d runs had ended before the backup began, %d once the load stopped; restored %d (%d interrupted: running at the snapshot)",
		len(ended), total, len(got), interrupted)
	for id, status := range ended {
		if got[id] != status {
			t.Errorf("run %s ended %s before the backup began; restored: %q", id, status, got[id])
		}
	}
	if len(got) < len(ended) || len(got) > total {
		t.Errorf("restored %d ended runs: %d had ended before the backup, %d after it", len(got), len(ended), total)
	}
	// Every secret opens with the restored master key.
	key, err := os.ReadFile(filepath.Join(restored.DataDir, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	master, err := hex.DecodeString(strings.TrimSpace(string(key)))
	if err != nil {
		t.Fatal(err)
	}
	keyring, err := secrets.NewKeyring(master, r.store)
	if err != nil {
		t.Fatal(err)
	}
	opened := map[string]bool{}
	workspaces, err := r.store.ListWorkspaces(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, ws := range workspaces {
		conns, _, err := r.store.ListConnections(ctx, ws.ID, core.Page{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range conns {
			sealed, err := r.store.Secrets(ctx, ws.ID, c.ID)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range sealed {
				plain, err := keyring.Open(ctx, ws.ID, c.ID, s.Field, s.Ciphertext)
				if err != nil {
					t.Fatalf("%s's connection %s, secret %s: %v", ws.Name, c.Name, s.Field, err)
				}
				opened[string(plain)] = true
			}
		}
	}
	for _, token := range tokens {
		if !opened[token] {
			t.Errorf("the secret %q did not come back", token)
		}
	}
	for ws, token := range tokens {
		if got := deleteItem(rh, keys[ws], "after-restore"); got["key_chars"] != float64(len(token)) {
			t.Errorf("%s's delete_item on the restored server: %+v", ws, got)
		}
	}
	r.Close()
	if out, err := relay(t, restored, "audit", "verify"); err != nil {
		t.Fatalf("audit verify: %v\n%s", err, out)
	}

	// The restored store exports a workspace offline.
	export := filepath.Join(root, "beta.tar.gz")
	if _, err := relay(t, restored, "workspaces", "export", "beta", "--out", export); err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(export); err != nil || len(data) < 100 {
		t.Fatalf("the export: %d bytes, %v", len(data), err)
	} else if files := untarFiles(t, data); !strings.Contains(files["runs.ndjson"], "vault.delete_item") ||
		strings.Contains(strings.Join(slices.Collect(maps.Values(files)), ""), tokens["beta"]) {
		t.Errorf("the export of beta: %v", files)
	}

	// What restore refuses, leaving the target as it was.
	if _, err := relay(t, Config{DataDir: restored.DataDir}, "restore", archive); err == nil || !strings.Contains(err.Error(), "is not empty") {
		t.Errorf("a restore over a data dir without --force: %v", err)
	}
	if _, err := relay(t, cfg, "restore", archive, "--force"); err == nil || !strings.Contains(err.Error(), "another relay serve") {
		t.Errorf("a restore over a running server's data dir: %v", err)
	}
	whole, _ := os.ReadFile(archive)
	broken := filepath.Join(root, "broken.backup")
	os.WriteFile(broken, whole[:len(whole)*2/3], 0o600)
	fresh := filepath.Join(root, "fresh")
	if _, err := relay(t, Config{DataDir: fresh}, "restore", broken); err == nil || !strings.Contains(err.Error(), "incomplete") {
		t.Errorf("a truncated archive: %v", err)
	}
	if _, err := os.Stat(fresh); !os.IsNotExist(err) {
		t.Errorf("a refused restore left %s: %v", fresh, err)
	}
	if _, err := relay(t, cfg, "backup", "--out", archive); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("a backup over a file: %v", err)
	}

	// Without the master key: the archive has none, the reminder says so,
	// and a restore in place with --force keeps the data dir's key.
	bare := filepath.Join(root, "bare.backup")
	var stderr strings.Builder
	if err := run(ctx, []string{"backup", "--data-dir", cfg.DataDir, "--out", bare}, io.Discard, &stderr); err != nil ||
		!strings.Contains(stderr.String(), "The master key is not in the archive") {
		t.Fatalf("backup without the key: %v %s", err, stderr.String())
	}
	if out, err := relay(t, restored, "restore", bare, "--force"); err != nil || !strings.Contains(out, "kept the data dir's master key") {
		t.Fatalf("restore in place: %q %v", out, err)
	}
	if kept, _ := os.ReadFile(filepath.Join(restored.DataDir, "master.key")); string(kept) != string(key) {
		t.Error("the data dir's master key was not kept")
	}
}

// endedRuns maps the id of every run of the store that has ended to its
// status.
func endedRuns(t *testing.T, st *sqlstore.Store) map[string]string {
	t.Helper()
	var rows []struct{ ID, Status string }
	if err := st.DB().Select(&rows, `SELECT id, status FROM runs WHERE status IN ('succeeded', 'failed', 'interrupted')`); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, r := range rows {
		out[r.ID] = r.Status
	}
	return out
}

// On PostgreSQL the rows are PostgreSQL's to back up: the archive records
// the schema version and, when asked, the master key, and a restore puts
// the key in the data dir and says how to restore the rows.
func TestBackupPostgres(t *testing.T) {
	cfg := Config{DataDir: t.TempDir(), DatabaseURL: sqlstoretest.PostgresURL(t)}
	if _, err := relay(t, cfg, "migrate"); err != nil {
		t.Fatal(err)
	}
	master := newMasterKey()
	writeKeyFile(t, filepath.Join(cfg.DataDir, "master.key"), master, 0o600)
	archive := filepath.Join(t.TempDir(), "pg.backup")
	var stdout, stderr strings.Builder
	err := run(context.Background(), []string{"backup", "--data-dir", cfg.DataDir, "--database-url", cfg.DatabaseURL, "--out", archive, "--include-master-key"},
		&stdout, &stderr)
	if err != nil || !strings.Contains(stdout.String(), "the postgres store (schema") || !strings.Contains(stderr.String(), "pg_dump") {
		t.Fatalf("backup: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	dir := filepath.Join(t.TempDir(), "restored")
	stdout.Reset()
	stderr.Reset()
	if err := run(context.Background(), []string{"restore", archive, "--data-dir", dir}, &stdout, &stderr); err != nil || !strings.Contains(stderr.String(), "pg_restore") {
		t.Fatalf("restore: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	entries, _ := os.ReadDir(dir)
	key, _ := os.ReadFile(filepath.Join(dir, "master.key"))
	if len(entries) != 1 || strings.TrimSpace(string(key)) != hex.EncodeToString(master) {
		t.Errorf("restored %v, key %q", entries, key)
	}
}

// untarFiles reads a gzipped tar into its files' contents.
func untarFiles(t *testing.T, data []byte) map[string]string {
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
