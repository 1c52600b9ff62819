package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/jmoiron/sqlx"
	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/secrets"
	"github.com/relayhq/relay/core/sqlstore"
	"github.com/relayhq/relay/core/sqlstore/sqlstoretest"
	"github.com/relayhq/relay/sdk/client"
)

// adminDB is a fresh database for the admin commands' tests: the Config
// the CLI is given, and a way to reach the same database with plain SQL,
// behind the store's back, as someone tampering with it would.
type adminDB struct {
	cfg        Config
	driver     string // "sqlite" (modernc) or "postgres" (lib/pq)
	dsn        string
	masterPath string
}

func newAdminDB(t *testing.T, db sqlstoretest.Database) *adminDB {
	t.Helper()
	a := &adminDB{cfg: Config{DataDir: filepath.Join(t.TempDir(), "relay-data")}}
	if db.Name == "sqlite" {
		a.driver, a.dsn = "sqlite", filepath.Join(a.cfg.DataDir, "relay.db")+"?_pragma=busy_timeout(10000)"
	} else {
		a.cfg.DatabaseURL = db.URL(t)
		a.driver, a.dsn = "postgres", a.cfg.DatabaseURL
	}
	a.masterPath = a.cfg.masterKeyFile()
	return a
}

// open opens the store as the CLI does, migrated.
func (a *adminDB) open(t *testing.T) *sqlstore.Store {
	t.Helper()
	st, err := openStore(context.Background(), a.cfg, hclog.NewNullLogger())
	if err != nil {
		t.Fatalf("openStore: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// exec runs statements on a connection of its own, in one transaction.
func (a *adminDB) exec(t *testing.T, stmts ...string) {
	t.Helper()
	a.sql(t, func(tx *sqlx.Tx) {
		for _, q := range stmts {
			if _, err := tx.Exec(q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	})
}

func (a *adminDB) sql(t *testing.T, f func(*sqlx.Tx)) {
	t.Helper()
	db, err := sqlx.Open(a.driver, a.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tx, err := db.Beginx()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	f(tx)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// relay runs a CLI command on the database, as an operator would.
func (a *adminDB) relay(args ...string) (stdout string, err error) {
	args = append(args, "--data-dir", a.cfg.DataDir)
	if a.cfg.DatabaseURL != "" {
		args = append(args, "--database-url", a.cfg.DatabaseURL)
	}
	var out, errOut bytes.Buffer
	err = run(context.Background(), args, &out, &errOut)
	return out.String(), err
}

// TestAuditVerify tampers with the audit log in the database itself and
// checks that `relay audit verify` names the record, on SQLite and on
// PostgreSQL.
func TestAuditVerify(t *testing.T) {
	for _, db := range sqlstoretest.Databases() {
		t.Run(db.Name, func(t *testing.T) {
			cases := []struct {
				name   string
				tamper func(recs []*core.AuditRecord) []string
				seq    int64 // the record the break names
				id     func(recs []*core.AuditRecord) string
				kind   string
				detail string
			}{{
				name: "edited",
				tamper: func(recs []*core.AuditRecord) []string {
					return []string{fmt.Sprintf(`UPDATE audit_records SET outcome = 'success' WHERE id = '%s'`, recs[2].ID)}
				},
				seq: 3, id: func(recs []*core.AuditRecord) string { return recs[2].ID },
				kind: "edited", detail: "does not match its hash",
			}, {
				name: "deleted",
				tamper: func(recs []*core.AuditRecord) []string {
					return []string{fmt.Sprintf(`DELETE FROM audit_records WHERE id = '%s'`, recs[2].ID)}
				},
				seq: 4, id: func(recs []*core.AuditRecord) string { return recs[3].ID },
				kind: "deleted", detail: "seq 3 is missing",
			}, {
				name: "reordered",
				tamper: func(recs []*core.AuditRecord) []string {
					// Through a free seq: (workspace_id, seq) is the key.
					return []string{
						fmt.Sprintf(`UPDATE audit_records SET seq = 1000 WHERE id = '%s'`, recs[2].ID),
						fmt.Sprintf(`UPDATE audit_records SET seq = 3 WHERE id = '%s'`, recs[3].ID),
						fmt.Sprintf(`UPDATE audit_records SET seq = 4 WHERE id = '%s'`, recs[2].ID),
					}
				},
				seq: 3, id: func(recs []*core.AuditRecord) string { return recs[3].ID },
				kind: "reordered", detail: "which comes after it",
			}}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					a := newAdminDB(t, db)
					recs := seedAudit(t, a)

					out, err := a.relay("audit", "verify")
					if err != nil || !strings.Contains(out, "audit log intact: 10 records in 2 workspaces") {
						t.Fatalf("verify before tampering: %v\n%s", err, out)
					}
					out, err = a.relay("audit", "verify", "--workspace", "acme")
					if err != nil || !strings.Contains(out, "audit log intact: 5 records in 1 workspace\n") {
						t.Fatalf("verify --workspace acme before tampering: %v\n%s", err, out)
					}

					a.exec(t, tc.tamper(recs)...)

					for _, args := range [][]string{{"audit", "verify"}, {"audit", "verify", "--workspace", "acme"}} {
						out, err = a.relay(args...)
						if err == nil {
							t.Fatalf("relay %s after the tampering succeeded:\n%s", strings.Join(args, " "), out)
						}
						if exitCode(err) != 1 {
							t.Errorf("exit code %d, want 1", exitCode(err))
						}
						id := tc.id(recs)
						want := fmt.Sprintf("workspace acme: record seq %d (id %s) %s: ", tc.seq, id, tc.kind)
						if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), tc.detail) {
							t.Errorf("relay %s: error %q\nwant it to contain %q and %q", strings.Join(args, " "), err, want, tc.detail)
						}
						for _, w := range []string{"BROKEN in workspace acme", fmt.Sprintf("seq %d, id %s", tc.seq, id), "kind:   " + tc.kind} {
							if !strings.Contains(out, w) {
								t.Errorf("relay %s: output lacks %q:\n%s", strings.Join(args, " "), w, out)
							}
						}
					}
					// The other workspace's chain is its own, and whole.
					out, err = a.relay("audit", "verify", "--workspace", "globex")
					if err != nil || !strings.Contains(out, "audit log intact: 5 records in 1 workspace\n") {
						t.Errorf("verify --workspace globex: %v\n%s", err, out)
					}
				})
			}

			t.Run("unknown workspace", func(t *testing.T) {
				a := newAdminDB(t, db)
				a.open(t)
				if _, err := a.relay("audit", "verify", "--workspace", "nowhere"); err == nil || !strings.Contains(err.Error(), "not_found") {
					t.Errorf("verify --workspace nowhere: %v", err)
				}
				out, err := a.relay("audit", "verify")
				if err != nil || !strings.Contains(out, "audit log intact: 0 records in 0 workspaces") {
					t.Errorf("verify an empty store: %v\n%s", err, out)
				}
				if _, err := a.relay("audit", "verify", "extra"); exitCode(err) != 2 {
					t.Errorf("verify extra: %v, want a usage error", err)
				}
			})
		})
	}
}

// seedAudit makes the workspaces acme and globex and appends five records
// to each, interleaved, through the store; it returns acme's in order.
func seedAudit(t *testing.T, a *adminDB) []*core.AuditRecord {
	t.Helper()
	ctx := context.Background()
	st := a.open(t)
	acme, err := st.CreateWorkspace(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	globex, err := st.CreateWorkspace(ctx, "globex")
	if err != nil {
		t.Fatal(err)
	}
	var recs []*core.AuditRecord
	for i := range 5 {
		for _, ws := range []*core.Workspace{acme, globex} {
			details, _ := json.Marshal(map[string]any{"n": i, "note": "ünïcode"})
			r := &core.AuditRecord{
				WorkspaceID: ws.ID, KeyID: core.NewID(), Role: "admin", IP: "192.0.2.7", RequestID: core.NewID(),
				Action: "connection.create", Target: fmt.Sprintf("conn-%d", i), Outcome: "failure", Details: details,
			}
			if err := st.AppendAudit(ctx, r); err != nil {
				t.Fatal(err)
			}
			if ws == acme {
				recs = append(recs, r)
			}
		}
	}
	return recs
}

// writeKeyFile writes key as a master key file with the given mode.
func writeKeyFile(t *testing.T, path string, key []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(hex.EncodeToString(key)+"\n"), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // whatever the umask
		t.Fatal(err)
	}
}

func newMasterKey() []byte {
	k := make([]byte, secrets.MasterKeySize)
	rand.Read(k)
	return k
}

// sealedConn is a connection made for the secrets test, with the
// plaintext of its secrets.
type sealedConn struct {
	ws, id string
	plain  map[string]string
}

// TestSecretsRotateMaster seals real secrets into the store, checks that a
// ciphertext moved to another connection does not open, and rotates the
// master key with the CLI: afterwards every secret opens with the new key
// and none with the old. Failed rotations change nothing. On SQLite and on
// PostgreSQL.
func TestSecretsRotateMaster(t *testing.T) {
	for _, db := range sqlstoretest.Databases() {
		t.Run(db.Name, func(t *testing.T) {
			ctx := context.Background()
			a := newAdminDB(t, db)
			m1, _, err := secrets.LoadOrCreateMasterKey(a.masterPath, true)
			if err != nil {
				t.Fatal(err)
			}
			st := a.open(t)
			kr1, err := secrets.NewKeyring(m1, st)
			if err != nil {
				t.Fatal(err)
			}
			var conns []sealedConn
			for _, spec := range []struct{ ws, conn string }{{"acme", "hooks"}, {"acme", "mail"}, {"globex", "hooks"}} {
				ws, err := st.WorkspaceByName(ctx, spec.ws)
				if core.ErrorCode(err) == core.ENotFound {
					ws, err = st.CreateWorkspace(ctx, spec.ws)
				}
				if err != nil {
					t.Fatal(err)
				}
				c := &core.Connection{ID: core.NewID(), WorkspaceID: ws.ID, Name: spec.conn, Connector: "webhook", Version: "1.0.0", Runtime: "native"}
				sc := sealedConn{ws: ws.ID, id: c.ID, plain: map[string]string{
					"token":    "token of " + spec.ws + "/" + spec.conn,
					"password": "password of " + spec.ws + "/" + spec.conn,
				}}
				var sealed []core.SealedSecret
				for field, p := range sc.plain {
					ct, err := kr1.Seal(ctx, ws.ID, c.ID, field, []byte(p))
					if err != nil {
						t.Fatal(err)
					}
					sealed = append(sealed, core.SealedSecret{Field: field, Ciphertext: ct})
				}
				if err := st.CreateConnection(ctx, c, sealed, nil); err != nil {
					t.Fatal(err)
				}
				conns = append(conns, sc)
			}
			// An API key, hashed under the pepper an older Relay derived
			// from m1: the pepper is stored, then deleted, as in a store
			// upgraded but not yet opened by a server. The rotation stores
			// it (the data keys prove m1 right) and re-wraps it.
			hasherUnder := func(t *testing.T, master []byte) (*core.KeyHasher, error) {
				t.Helper()
				pepper, err := secrets.APIKeyPepper(ctx, master, st)
				if err != nil {
					return nil, err
				}
				return core.NewKeyHasherFromPepper(pepper)
			}
			hasher, err := hasherUnder(t, m1)
			if err != nil {
				t.Fatal(err)
			}
			k, token, _ := core.NewAPIKey(hasher, conns[0].ws, "ops", core.RoleAdmin, "")
			if err := st.CreateKey(ctx, k, nil); err != nil {
				t.Fatal(err)
			}
			a.exec(t, `DELETE FROM server_keys`)
			serverKeys := func() int {
				var n int
				a.sql(t, func(tx *sqlx.Tx) {
					if err := tx.Get(&n, `SELECT COUNT(*) FROM server_keys`); err != nil {
						t.Fatal(err)
					}
				})
				return n
			}
			// authenticates checks the key as the server does, with the
			// pepper loaded under master.
			authenticates := func(t *testing.T, master []byte) error {
				t.Helper()
				h, err := hasherUnder(t, master)
				if err != nil {
					return err
				}
				id, secret, err := core.ParseKey(token)
				if err != nil {
					t.Fatal(err)
				}
				stored, _, err := st.KeyForAuth(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if !h.Verify(id, secret, stored.Hash) {
					return errors.New("the API key does not verify")
				}
				return nil
			}

			openAll := func(t *testing.T, master []byte) error {
				t.Helper()
				kr, err := secrets.NewKeyring(master, st) // a fresh one: no cached data keys
				if err != nil {
					t.Fatal(err)
				}
				for _, c := range conns {
					sealed, err := st.Secrets(ctx, c.ws, c.id)
					if err != nil {
						t.Fatal(err)
					}
					if len(sealed) != len(c.plain) {
						t.Fatalf("connection %s has %d secrets, want %d", c.id, len(sealed), len(c.plain))
					}
					for _, s := range sealed {
						p, err := kr.Open(ctx, c.ws, c.id, s.Field, s.Ciphertext)
						if err != nil {
							return err
						}
						if string(p) != c.plain[s.Field] {
							t.Fatalf("field %s of %s opened to %q, want %q", s.Field, c.id, p, c.plain[s.Field])
						}
					}
				}
				return nil
			}
			if err := openAll(t, m1); err != nil {
				t.Fatalf("before any rotation: %v", err)
			}

			// A ciphertext copied onto another connection's row (same
			// workspace, same data key, same field) does not open there.
			a.sql(t, func(tx *sqlx.Tx) {
				var ct []byte
				if err := tx.Get(&ct, tx.Rebind(`SELECT ciphertext FROM connection_secrets WHERE connection_id = ? AND field = 'token'`), conns[0].id); err != nil {
					t.Fatal(err)
				}
				if _, err := tx.Exec(tx.Rebind(`UPDATE connection_secrets SET ciphertext = ? WHERE connection_id = ? AND field = 'token'`), ct, conns[1].id); err != nil {
					t.Fatal(err)
				}
			})
			moved, err := st.Secrets(ctx, conns[1].ws, conns[1].id)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range moved {
				if s.Field != "token" {
					continue
				}
				if p, err := kr1.Open(ctx, conns[1].ws, conns[1].id, "token", s.Ciphertext); !errors.Is(err, secrets.ErrNotAuthentic) {
					t.Fatalf("a ciphertext moved to another connection opened to %q, err %v; want ErrNotAuthentic", p, err)
				}
				// It still opens where it belongs: the row was moved, not broken.
				if _, err := kr1.Open(ctx, conns[0].ws, conns[0].id, "token", s.Ciphertext); err != nil {
					t.Fatal(err)
				}
			}
			// Put a proper secret back, so that every row opens again.
			ct, err := kr1.Seal(ctx, conns[1].ws, conns[1].id, "token", []byte(conns[1].plain["token"]))
			if err != nil {
				t.Fatal(err)
			}
			if err := st.UpdateConnection(ctx, mustConnection(t, st, conns[1]), []core.SealedSecret{{Field: "token", Ciphertext: ct}}, nil); err != nil {
				t.Fatal(err)
			}

			dataKeys := func() map[string]string {
				got := map[string]string{}
				a.sql(t, func(tx *sqlx.Tx) {
					rows, err := tx.Queryx(`SELECT workspace_id, wrapped FROM workspace_data_keys`)
					if err != nil {
						t.Fatal(err)
					}
					defer rows.Close()
					for rows.Next() {
						var ws string
						var wrapped []byte
						if err := rows.Scan(&ws, &wrapped); err != nil {
							t.Fatal(err)
						}
						got[ws] = hex.EncodeToString(wrapped)
					}
					if err := rows.Err(); err != nil {
						t.Fatal(err)
					}
				})
				return got
			}
			before := dataKeys()
			if len(before) != 2 {
				t.Fatalf("%d data keys, want 2", len(before))
			}
			masterBefore, _ := os.ReadFile(a.masterPath)

			// Rotations that must fail and change nothing.
			dir := t.TempDir()
			m2 := newMasterKey()
			wrongCurrent := filepath.Join(dir, "wrong.key")
			writeKeyFile(t, wrongCurrent, newMasterKey(), 0o600)
			same := filepath.Join(dir, "same.key")
			writeKeyFile(t, same, m1, 0o600)
			readable := filepath.Join(dir, "readable.key")
			writeKeyFile(t, readable, m2, 0o644)
			garbage := filepath.Join(dir, "garbage.key")
			if err := os.WriteFile(garbage, []byte("not a key\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			good := filepath.Join(dir, "m2.key")
			writeKeyFile(t, good, m2, 0o600)
			for _, tc := range []struct {
				name string
				args []string
				want string
				code int
			}{
				{"no new key file", nil, "usage: relay secrets rotate-master", 2},
				{"stray argument", []string{"--new-key-file", good, "extra"}, "usage: relay secrets rotate-master", 2},
				{"missing new key", []string{"--new-key-file", filepath.Join(dir, "missing.key")}, "no new master key at", 1},
				{"new key is the current one", []string{"--new-key-file", same}, "is the current one", 1},
				{"current key file as new", []string{"--new-key-file", a.masterPath}, "is the current one", 1},
				{"world-readable new key", []string{"--new-key-file", readable}, "readable by others", 1},
				{"malformed new key", []string{"--new-key-file", garbage}, "must hold exactly 64 hex digits", 1},
				{"missing current key", []string{"--new-key-file", good, "--master-key-file", filepath.Join(dir, "none.key")}, "no master key at", 1},
				{"wrong current key", []string{"--new-key-file", good, "--master-key-file", wrongCurrent, "--install"}, "nothing changed", 1},
			} {
				out, err := a.relay(append([]string{"secrets", "rotate-master"}, tc.args...)...)
				if err == nil || !strings.Contains(err.Error(), tc.want) || exitCode(err) != tc.code {
					t.Errorf("%s: err %v (exit %d), want %q (exit %d)\n%s", tc.name, err, exitCode(err), tc.want, tc.code, out)
				}
				if err != nil && (strings.Contains(err.Error(), hex.EncodeToString(m1)) || strings.Contains(err.Error(), hex.EncodeToString(m2))) {
					t.Errorf("%s: the error shows a key: %v", tc.name, err)
				}
				if after := dataKeys(); !maps.Equal(after, before) {
					t.Errorf("%s: the data keys changed", tc.name)
				}
				if got, _ := os.ReadFile(a.masterPath); !bytes.Equal(got, masterBefore) {
					t.Errorf("%s: the master key file changed", tc.name)
				}
				if got, _ := os.ReadFile(wrongCurrent); len(got) != 2*secrets.MasterKeySize+1 {
					t.Errorf("%s: the --master-key-file was rewritten", tc.name)
				}
				if err := openAll(t, m1); err != nil {
					t.Errorf("%s: a secret no longer opens with the current key: %v", tc.name, err)
				}
				if n := serverKeys(); n != 0 {
					t.Errorf("%s: %d server keys stored", tc.name, n)
				}
			}
			assertNoStagedKeys(t, a.cfg.DataDir)
			assertNoStagedKeys(t, dir)
			if left, _ := filepath.Glob(filepath.Join(dir, "*.replaced-*")); len(left) > 0 {
				t.Errorf("a failed --install kept a key: %v", left)
			}

			// The rotation: data keys re-wrapped, the key file left to the operator.
			out, err := a.relay("secrets", "rotate-master", "--new-key-file", good)
			if err != nil {
				t.Fatalf("rotate-master: %v\n%s", err, out)
			}
			for _, w := range []string{
				"re-wrapped 2 workspace data keys",
				"next: stop every server, replace " + a.masterPath + " with " + good,
				"re-wrapped the API key pepper too: API keys keep working",
			} {
				if !strings.Contains(out, w) {
					t.Errorf("rotate-master output lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, "warning") {
				t.Errorf("rotate-master warns:\n%s", out)
			}
			// The key made before the rotation verifies under the new key,
			// and the old key no longer unwraps the pepper.
			if err := authenticates(t, m2); err != nil {
				t.Fatalf("after rotate-master, with the new key: %v", err)
			}
			if err := authenticates(t, m1); !errors.Is(err, secrets.ErrUnwrap) {
				t.Fatalf("after rotate-master, the pepper with the old key: %v, want ErrUnwrap", err)
			}
			if got, _ := os.ReadFile(a.masterPath); !bytes.Equal(got, masterBefore) {
				t.Error("rotate-master without --install changed the master key file")
			}
			after := dataKeys()
			for ws, w := range before {
				if after[ws] == w || after[ws] == "" {
					t.Errorf("the data key of workspace %s was not re-wrapped", ws)
				}
			}
			if err := openAll(t, m2); err != nil {
				t.Fatalf("after rotate-master, with the new key: %v", err)
			}
			if err := openAll(t, m1); !errors.Is(err, secrets.ErrUnwrap) {
				t.Fatalf("after rotate-master, with the old key: %v, want ErrUnwrap", err)
			}

			// A server still on the old key makes a data key for a workspace
			// sealing its first secret: wrapped with m1, which m2 cannot
			// unwrap. Running the command again re-wraps just that one.
			initech, err := st.CreateWorkspace(ctx, "initech")
			if err != nil {
				t.Fatal(err)
			}
			stale, _ := secrets.NewKeyring(m1, st)
			late := sealedConn{ws: initech.ID, id: core.NewID(), plain: map[string]string{"token": "token of initech"}}
			ct, err = stale.Seal(ctx, late.ws, late.id, "token", []byte(late.plain["token"]))
			if err != nil {
				t.Fatal(err)
			}
			err = st.CreateConnection(ctx, &core.Connection{ID: late.id, WorkspaceID: late.ws, Name: "hooks", Connector: "webhook", Version: "1.0.0", Runtime: "native"},
				[]core.SealedSecret{{Field: "token", Ciphertext: ct}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, late)
			if err := openAll(t, m2); !errors.Is(err, secrets.ErrUnwrap) {
				t.Fatalf("a data key made on the old key opened with the new one: %v", err)
			}
			mixed := dataKeys()
			out, err = a.relay("secrets", "rotate-master", "--new-key-file", good)
			if err != nil {
				t.Fatalf("rotate-master again: %v\n%s", err, out)
			}
			if !strings.Contains(out, "re-wrapped 1 workspace data key ") || !strings.Contains(out, "2 data keys were already wrapped with it") ||
				!strings.Contains(out, "the API key pepper was already wrapped with it, and kept as is") {
				t.Errorf("rotate-master again:\n%s", out)
			}
			for ws, w := range dataKeys() {
				if changed := w != mixed[ws]; changed != (ws == initech.ID) {
					t.Errorf("rotate-master again: the data key of workspace %s changed: %v", ws, changed)
				}
			}
			if err := openAll(t, m2); err != nil {
				t.Fatalf("after rotate-master again, with the new key: %v", err)
			}

			// The operator installs the new key; then rotates again, letting
			// the CLI install the next one.
			writeKeyFile(t, a.masterPath, m2, 0o600)
			m3 := newMasterKey()
			third := filepath.Join(dir, "m3.key")
			writeKeyFile(t, third, m3, 0o600)
			out, err = a.relay("secrets", "rotate-master", "--new-key-file", third, "--install")
			if err != nil {
				t.Fatalf("rotate-master --install: %v\n%s", err, out)
			}
			if !strings.Contains(out, "re-wrapped 3 workspace data keys") || !strings.Contains(out, "installed the new master key in "+a.masterPath) {
				t.Errorf("rotate-master --install output:\n%s", out)
			}
			installed, _, err := secrets.LoadOrCreateMasterKey(a.masterPath, false) // checks the mode too
			if err != nil || !bytes.Equal(installed, m3) {
				t.Fatalf("after --install the key file holds another key (err %v)", err)
			}
			if got, _, err := secrets.LoadOrCreateMasterKey(third, false); err != nil || !bytes.Equal(got, m3) {
				t.Errorf("--install touched the new key file: %v", err)
			}
			assertNoStagedKeys(t, a.cfg.DataDir)
			replaced, _ := filepath.Glob(a.masterPath + ".replaced-*")
			if len(replaced) != 1 || !strings.Contains(out, "the old key is kept in "+replaced[0]) {
				t.Fatalf("after --install, old keys kept: %v\n%s", replaced, out)
			}
			if got, _, err := secrets.LoadOrCreateMasterKey(replaced[0], false); err != nil || !bytes.Equal(got, m2) {
				t.Errorf("the kept old key: %v", err)
			}
			if err := openAll(t, m3); err != nil {
				t.Fatalf("after rotate-master --install, with the new key: %v", err)
			}
			// A server started on the installed key accepts the API key
			// made before the first rotation.
			srv, _ := startMain(t, a.cfg, io.Discard)
			if _, err := client.New(srv.URL(), token, nil).Workspace(ctx); err != nil {
				t.Fatalf("after two rotations, the server refuses the API key: %v", err)
			}
			srv.Close()
			for _, old := range [][]byte{m1, m2} {
				if err := openAll(t, old); !errors.Is(err, secrets.ErrUnwrap) {
					t.Fatalf("after rotate-master --install, with an old key: %v, want ErrUnwrap", err)
				}
			}

			// A server left running on m2 makes a data key after the
			// install; the kept old key repairs that, as documented.
			hooli, err := st.CreateWorkspace(ctx, "hooli")
			if err != nil {
				t.Fatal(err)
			}
			stale, _ = secrets.NewKeyring(m2, st)
			later := sealedConn{ws: hooli.ID, id: core.NewID(), plain: map[string]string{"token": "token of hooli"}}
			if ct, err = stale.Seal(ctx, later.ws, later.id, "token", []byte(later.plain["token"])); err != nil {
				t.Fatal(err)
			}
			err = st.CreateConnection(ctx, &core.Connection{ID: later.id, WorkspaceID: later.ws, Name: "hooks", Connector: "webhook", Version: "1.0.0", Runtime: "native"},
				[]core.SealedSecret{{Field: "token", Ciphertext: ct}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, later)
			out, err = a.relay("secrets", "rotate-master", "--master-key-file", replaced[0], "--new-key-file", a.masterPath)
			if err != nil || !strings.Contains(out, "re-wrapped 1 workspace data key ") || !strings.Contains(out, "3 data keys were already wrapped") {
				t.Fatalf("repair with the kept old key: %v\n%s", err, out)
			}
			if err := openAll(t, m3); err != nil {
				t.Fatalf("after the repair, with the installed key: %v", err)
			}
		})
	}
}

func mustConnection(t *testing.T, st *sqlstore.Store, c sealedConn) *core.Connection {
	t.Helper()
	conn, err := st.Connection(context.Background(), c.ws, c.id)
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// assertNoStagedKeys checks that no temporary key file was left in dir.
func assertNoStagedKeys(t *testing.T, dir string) {
	t.Helper()
	left, _ := filepath.Glob(filepath.Join(dir, ".master-key-*"))
	if len(left) > 0 {
		t.Errorf("temporary key files left behind: %v", left)
	}
}
