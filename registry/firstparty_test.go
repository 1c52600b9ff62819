package registry

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"aead.dev/minisign"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/sqlstore"
	"github.com/relayhq/relay/core/sqlstore/sqlstoretest"
	"github.com/relayhq/relay/registry/relaypkg"
)

// writePackage packs pkg@version (pack's manifest and files, the module's
// bytes changed by extra) into dir, named as make build names it, and
// returns its bytes.
func writePackage(t *testing.T, dir, pkg, version, extra string) []byte {
	t.Helper()
	_, name, _ := strings.Cut(pkg, "/")
	data, _, err := relaypkg.PackBytes(pkg, map[string][]byte{
		relaypkg.ManifestPath: fmt.Appendf(nil, notesManifest, name, version),
		relaypkg.WASMPath:     []byte("\x00asm\x01\x00\x00\x00" + pkg + version + extra),
		relaypkg.ReadmePath:   []byte("# " + pkg),
		relaypkg.LicensePath:  []byte("Apache-2.0"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, relaypkg.FileName(pkg, version)), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return data
}

func (e *env) indexVersion() int64 {
	e.t.Helper()
	var v int64
	if err := e.store.DB().Get(&v, `SELECT index_version FROM registry_state WHERE id = 1`); err != nil {
		e.t.Fatal(err)
	}
	return v
}

func (e *env) count(query string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.store.DB().Get(&n, e.store.DB().Rebind(query), args...); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// blobs counts the blobs the registry keeps, in files or in the database.
func (e *env) blobs() int {
	e.t.Helper()
	switch b := e.reg.cfg.Blobs.(type) {
	case SQLBlobs:
		return e.count(`SELECT COUNT(*) FROM registry_blobs`)
	case DirBlobs:
		entries, err := os.ReadDir(filepath.Join(b.Dir, "sha256"))
		if os.IsNotExist(err) {
			return 0
		} else if err != nil {
			e.t.Fatal(err)
		}
		n := 0
		for _, en := range entries {
			if !strings.HasPrefix(en.Name(), ".") {
				n++
			}
		}
		return n
	}
	e.t.Fatalf("blobs of %T", e.reg.cfg.Blobs)
	return 0
}

func refusedCodes(rep *ImportReport) map[string]string {
	out := map[string]string{}
	for _, r := range rep.Refused {
		out[filepath.Base(r.File)] = core.ErrorCode(r.Err)
	}
	return out
}

// The server publishes its first-party packages at start under relay,
// with the registry's key: once (a start after that changes nothing, the
// index included), refusing a tampered file, another publisher's package
// and a published version's other bytes, keeping nothing of them. Every
// workspace has them without an install, and no install takes their
// names.
func TestImportFirstParty(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.reg.cfg.CacheDir = t.TempDir()
		dir := t.TempDir()
		if rep, err := e.reg.ImportFirstParty(ctx, filepath.Join(dir, "none")); err != nil || len(rep.Imported)+len(rep.Refused) != 0 {
			t.Fatalf("a missing dir: %+v, %v", rep, err)
		}
		echo := writePackage(t, dir, "relay/echo", "1.0.0", "")
		writePackage(t, dir, "acme/notes", "1.0.0", "")
		tampered := writePackage(t, dir, "relay/tampered", "1.0.0", "")
		tampered[len(tampered)/2] ^= 0x20
		os.WriteFile(filepath.Join(dir, "relay-tampered-1.0.0.relaypkg"), tampered, 0o644)
		os.WriteFile(filepath.Join(dir, "relay-empty-1.0.0.relaypkg"), nil, 0o644)
		os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not a package"), 0o644)
		before := e.indexVersion()

		rep, err := e.reg.ImportFirstParty(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(rep.Imported, []string{"relay/echo@1.0.0"}) || len(rep.Unchanged) != 0 {
			t.Fatalf("imported %v, unchanged %v", rep.Imported, rep.Unchanged)
		}
		codes := refusedCodes(rep)
		if len(codes) != 3 || codes["acme-notes-1.0.0.relaypkg"] != core.EForbidden || codes["relay-empty-1.0.0.relaypkg"] != core.EPackageCorrupt ||
			(codes["relay-tampered-1.0.0.relaypkg"] != core.EPackageTampered && codes["relay-tampered-1.0.0.relaypkg"] != core.EPackageCorrupt) {
			t.Fatalf("refused %v", codes)
		}
		if e.count(`SELECT COUNT(*) FROM registry_versions`) != 1 || e.count(`SELECT COUNT(*) FROM registry_packages`) != 1 || e.blobs() != 1 {
			t.Fatal("something of a refused package was kept")
		}
		after := e.indexVersion()
		if after <= before {
			t.Fatalf("index version %d after the import, %d before", after, before)
		}

		// Relay's publisher: no workspace, the registry's key.
		p, err := e.reg.Publisher(ctx, FirstParty)
		if err != nil {
			t.Fatal(err)
		}
		regKey := relaypkg.KeyID(e.reg.PublicKey().ID())
		if p.WorkspaceID != "" || len(p.Keys) != 1 || p.Keys[0].ID != regKey {
			t.Fatalf("publisher %+v", p)
		}
		v, err := e.reg.Version(ctx, "relay/echo", "1.0.0")
		if err != nil || v.Signer != regKey || relaypkg.Verify(e.reg.PublicKey(), []byte(v.Index), []byte(v.Signature)) != nil {
			t.Fatalf("relay/echo@1.0.0: %+v, %v", v, err)
		}
		found, _, err := e.reg.Search(ctx, "echo", "", core.Page{})
		if err != nil || len(found) != 1 || found[0].Name != "relay/echo" {
			t.Fatalf("search: %v, %v", found, err)
		}

		// Again, as the next start: nothing to do, not even the index.
		rep, err = e.reg.ImportFirstParty(ctx, dir)
		if err != nil || len(rep.Imported) != 0 || !slices.Equal(rep.Unchanged, []string{"relay/echo@1.0.0"}) {
			t.Fatalf("second import: %+v, %v", rep, err)
		}
		if v := e.indexVersion(); v != after {
			t.Fatalf("index version %d after a second import, want %d", v, after)
		}

		// The same version with other bytes is refused; the first stays.
		os.RemoveAll(dir)
		os.Mkdir(dir, 0o755)
		writePackage(t, dir, "relay/echo", "1.0.0", "changed")
		rep, err = e.reg.ImportFirstParty(ctx, dir)
		if err != nil || len(rep.Imported) != 0 || len(rep.Refused) != 1 || core.ErrorCode(rep.Refused[0].Err) != core.EConflict {
			t.Fatalf("other bytes: %+v, %v", rep, err)
		}
		if v, _ := e.reg.Version(ctx, "relay/echo", "1.0.0"); v.SHA256 != sha256Hex(echo) {
			t.Fatal("the published version changed")
		}

		// What the catalog runs: unpacked, with its digests.
		files, problems, err := e.reg.FirstParty(ctx)
		if err != nil || len(problems) != 0 || len(files) != 1 {
			t.Fatalf("FirstParty: %v, %v, %v", files, problems, err)
		}
		f := files[0]
		if f.Ref.Name != "relay/echo" || f.WASM == nil || !strings.HasPrefix(f.WASM.Path, e.reg.cfg.CacheDir) {
			t.Fatalf("files %+v", f)
		}
		if _, err := os.Stat(f.WASM.Path); err != nil {
			t.Fatal(err)
		}

		// No workspace installs it, or takes its name.
		_, err = e.reg.Install(ctx, e.admin, InstallRequest{Package: "relay/echo"})
		wantCode(t, err, core.EConflict)
		if !strings.Contains(core.ErrorMessage(err), "built in") {
			t.Errorf("installing relay/echo: %v", err)
		}
		_, token, key := e.publisher("acme")
		pub, c := e.auth(token)
		e.publishManifest(pub, c, key, "acme/echo", "1.0.0", notesManifest, false)
		_, err = e.reg.Install(ctx, e.admin, InstallRequest{Package: "acme/echo"})
		wantCode(t, err, core.EConflict)
		if _, err := e.reg.Install(ctx, e.admin, InstallRequest{Package: "acme/echo", Name: "acme-echo"}); err != nil {
			t.Fatalf("under another name: %v", err)
		}

		// And no one else publishes as relay.
		_, _, err = e.reg.RegisterPublisher(ctx, e.admin, FirstParty, "", p.Keys[0].PublicKey)
		wantCode(t, err, core.EConflict)
		data, index := pack(t, "relay/notes", "1.0.0")
		sig, _ := relaypkg.Sign(key, index)
		wantCode(t, publish(e, pub, c, data, sig), core.EForbidden)
	})
}

// A publisher relay that a workspace owns (no registry makes one, but a
// database may have been edited) is not Relay's: nothing is published
// under it.
func TestImportFirstPartyRefusesAnOwnedRelay(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		if _, err := e.store.DB().Exec(e.store.DB().Rebind(`INSERT INTO registry_publishers (name, workspace_id, token_id, token_hash, created_at, skeleton)
			VALUES ('relay', ?, 'tok', ?, ?, 'relay')`), e.admin.WorkspaceID, []byte{1}, e.now); err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		writePackage(t, dir, "relay/echo", "1.0.0", "")
		_, err := e.reg.ImportFirstParty(ctx, dir)
		wantCode(t, err, core.EConflict)
		if e.count(`SELECT COUNT(*) FROM registry_versions`) != 0 {
			t.Fatal("published under a workspace's relay")
		}
	})
}

// Replicas on one PostgreSQL start at once, from the same packages: each
// version is published once, every replica unpacks it from the database
// into its own cache, and neither refuses anything.
func TestImportFirstPartyReplicas(t *testing.T) {
	if os.Getenv(sqlstoretest.PostgresEnv) == "" {
		t.Skipf("%s is not set", sqlstoretest.PostgresEnv)
	}
	url := sqlstoretest.PostgresURL(t)
	ctx := context.Background()
	_, key, _ := minisign.GenerateKey(nil)
	dir := t.TempDir()
	writePackage(t, dir, "relay/echo", "1.0.0", "")
	writePackage(t, dir, "relay/webhook", "1.0.0", "")
	writePackage(t, dir, "relay/webhook", "1.1.0", "")
	replica := func() *Service {
		st, err := sqlstore.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		if _, err := st.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		return New(Config{DB: st, Blobs: SQLBlobs{DB: st.DB()}, SigningKey: key, CacheDir: t.TempDir()})
	}
	replicas := []*Service{replica(), replica(), replica()}
	reports := make([]*ImportReport, len(replicas))
	errs := make([]error, len(replicas))
	var wg sync.WaitGroup
	for i, r := range replicas {
		wg.Go(func() { reports[i], errs[i] = r.ImportFirstParty(ctx, dir) })
	}
	wg.Wait()
	imported := map[string]int{}
	for i, rep := range reports {
		if errs[i] != nil {
			t.Fatalf("replica %d: %v", i, errs[i])
		}
		if len(rep.Refused) != 0 {
			t.Fatalf("replica %d refused %v", i, rep.Refused)
		}
		if len(rep.Imported)+len(rep.Unchanged) != 3 {
			t.Fatalf("replica %d: %+v", i, rep)
		}
		for _, ref := range rep.Imported {
			imported[ref]++
		}
	}
	if len(imported) != 3 {
		t.Fatalf("imported %v: want each of the three versions once", imported)
	}
	for ref, n := range imported {
		if n != 1 {
			t.Errorf("%s imported by %d replicas", ref, n)
		}
	}
	for i, r := range replicas {
		files, problems, err := r.FirstParty(ctx)
		if err != nil || len(problems) != 0 || len(files) != 3 {
			t.Fatalf("replica %d: %v, %v, %v", i, files, problems, err)
		}
		for _, f := range files {
			if data, err := os.ReadFile(f.WASM.Path); err != nil || !bytes.HasPrefix(data, []byte("\x00asm")) {
				t.Fatalf("replica %d: %s: %v", i, f.WASM.Path, err)
			}
		}
	}
}
