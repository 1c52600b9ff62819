package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"aead.dev/minisign"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/sqlstore"
	"github.com/relayhq/relay/core/sqlstore/sqlstoretest"
	"github.com/relayhq/relay/registry"
	"github.com/relayhq/relay/registry/registrytest"
	"github.com/relayhq/relay/registry/relaypkg"
)

// downstream is a server's registry that installs from another one, over
// its own database, as `relay serve --registry-url` wires it.
type downstream struct {
	reg      *registry.Service
	store    *sqlstore.Store
	cacheDir string
	blobDir  string // on SQLite
	clock    *clock
}

type clock struct {
	mu  sync.Mutex
	add time.Duration
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.add)
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.add += d
	c.mu.Unlock()
}

func newDownstream(t *testing.T, databaseURL, registryURL string, pinned minisign.PublicKey) *downstream {
	t.Helper()
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	d := &downstream{store: st, cacheDir: filepath.Join(dir, "packages"), clock: &clock{}}
	d.reg = d.open(t, registryURL, pinned)
	return d
}

// open makes the downstream's registry again, over the same database and
// folders: as the server's next start, or another replica, does.
func (d *downstream) open(t *testing.T, registryURL string, pinned minisign.PublicKey) *registry.Service {
	t.Helper()
	var blobs registry.BlobStore = registry.SQLBlobs{DB: d.store.DB()}
	if d.store.Dialect() == "sqlite" {
		d.blobDir = filepath.Join(filepath.Dir(d.cacheDir), "registry")
		blobs = registry.DirBlobs{Dir: d.blobDir}
	}
	_, own, _ := minisign.GenerateKey(nil)
	cl, err := New(Config{URL: registryURL, Now: d.clock.now, Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	return registry.New(registry.Config{DB: d.store, Blobs: blobs, SigningKey: own, CacheDir: d.cacheDir,
		Upstream: cl.Upstream(pinned), Now: d.clock.now})
}

func (d *downstream) workspace(t *testing.T, name string) *core.Caller {
	t.Helper()
	ws, err := d.store.CreateWorkspace(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return &core.Caller{WorkspaceID: ws.ID, KeyID: core.NewID(), Role: core.RoleAdmin}
}

// kept counts what the downstream keeps of packages: unpacked folders
// (and anything else in the cache), blobs, versions taken, lock entries.
func (d *downstream) kept(t *testing.T) map[string]int {
	t.Helper()
	out := map[string]int{}
	entries, _ := os.ReadDir(d.cacheDir)
	out["cache"] = len(entries)
	db := d.store.DB()
	if d.blobDir != "" {
		blobs, _ := os.ReadDir(filepath.Join(d.blobDir, "sha256"))
		out["blobs"] = len(blobs)
	} else {
		var n int
		if err := db.Get(&n, `SELECT COUNT(*) FROM registry_blobs`); err != nil {
			t.Fatal(err)
		}
		out["blobs"] = n
	}
	for _, table := range []string{"registry_mirror", "registry_installs"} {
		var n int
		if err := db.Get(&n, `SELECT COUNT(*) FROM `+table); err != nil {
			t.Fatal(err)
		}
		out[table] = n
	}
	return out
}

func (d *downstream) wantNothingKept(t *testing.T) {
	t.Helper()
	for what, n := range d.kept(t) {
		if n != 0 {
			t.Errorf("a refused install left %d in %s", n, what)
		}
	}
}

// A server with an upstream registry installs from it: it resolves
// ranges in the registry's signed index, downloads a version once, checks
// it whole before keeping anything (a changed byte keeps nothing), trusts
// the publisher's keys the index lists, and refuses an index signed by
// another key than the pinned one, older than one it has seen (even after
// a restart) or expired. Yanks at the registry reach the lock; publishing
// goes to the registry, not to the server.
func TestInstallFromUpstream(t *testing.T) {
	for _, db := range sqlstoretest.Databases() {
		t.Run(db.Name, func(t *testing.T) {
			ctx := context.Background()
			a := startRegistry(t, db.URL(t))
			acme, key := a.publisher(t, "acme")
			for _, v := range []string{"0.1.0", "0.2.0"} {
				data, sig := pack(t, "acme/notes", v, randomBytes(64<<10), key)
				if _, err := acme.Publish(ctx, data, sig); err != nil {
					t.Fatal(err)
				}
			}
			px := registrytest.NewInterceptor(t, a.URL)
			dbURL := db.URL(t)
			b := newDownstream(t, dbURL, px.URL, a.Key)
			one := b.workspace(t, "one")
			const download = "/v1/registry/packages/acme/notes/versions/0.1.0/download"

			// A byte changed on the way: refused, nothing kept.
			px.Set(func(path string, body []byte) []byte {
				if path == download {
					body = bytes.Clone(body)
					body[len(body)/2] ^= 1
				}
				return body
			})
			_, err := b.reg.Install(ctx, one, registry.InstallRequest{Package: "acme/notes", Version: "~0.1"})
			wantCode(t, err, core.EPackageTampered)
			b.wantNothingKept(t)
			px.Set(nil)

			in, err := b.reg.Install(ctx, one, registry.InstallRequest{Package: "acme/notes", Version: "~0.1"})
			if err != nil {
				t.Fatal(err)
			}
			if in.Version != "0.1.0" || in.Signer != relaypkg.KeyID(key.ID()) || in.Artifacts["wasm"] == "" {
				t.Fatalf("installed %+v", in)
			}
			files, err := b.reg.Files(ctx, core.ConnectorRef{Name: "acme/notes", Version: "0.1.0"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(files.WASM.Path); err != nil {
				t.Fatalf("the module is not where Files says: %v", err)
			}
			installed, err := b.reg.Installed(ctx, one.WorkspaceID)
			if err != nil || len(installed) != 1 || installed[0].Ref.Version != "0.1.0" {
				t.Fatalf("installed: %+v, %v", installed, err)
			}

			// Another workspace, and the server started again, use what
			// was downloaded.
			downloads := px.Count(download)
			b.reg = b.open(t, px.URL, a.Key)
			if _, err := b.reg.Install(ctx, b.workspace(t, "two"), registry.InstallRequest{Package: "acme/notes", Version: "0.1.0"}); err != nil {
				t.Fatal(err)
			}
			if n := px.Count(download); n != downloads {
				t.Errorf("the version was downloaded %d more times", n-downloads)
			}

			// Publishing goes to the registry.
			_, _, err = b.reg.RegisterPublisher(ctx, one, "beta", "", relaypkg.PublicKeyLine(a.Key))
			wantCode(t, err, core.EConflict)

			// A yank at the registry reaches the lock once the index is
			// read again.
			if err := acme.Yank(ctx, "acme/notes", "0.1.0", "loses notes"); err != nil {
				t.Fatal(err)
			}
			b.clock.advance(time.Minute)
			lock, err := b.reg.Lock(ctx, one.WorkspaceID)
			if err != nil {
				t.Fatal(err)
			}
			if len(lock) != 1 || lock[0].Yanked == nil || lock[0].Yanked.Reason != "loses notes" {
				t.Fatalf("the lock after the yank: %+v", lock[0])
			}
			_, err = b.reg.Install(ctx, b.workspace(t, "three"), registry.InstallRequest{Package: "acme/notes", Version: "~0.1"})
			wantCode(t, err, core.ENotFound)

			// An index older than the newest seen is refused, by this
			// start of the server and by the next.
			px.Set(nil)
			old := map[string][]byte{}
			for _, p := range []string{"/v1/registry/index", "/v1/registry/index.minisig"} {
				resp, err := http.Get(a.URL + p)
				if err != nil {
					t.Fatal(err)
				}
				old[p], _ = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			data, sig := pack(t, "acme/notes", "0.3.0", nil, key)
			if _, err := acme.Publish(ctx, data, sig); err != nil {
				t.Fatal(err)
			}
			plan, err := b.reg.PlanUpgrade(ctx, one.WorkspaceID, "notes", "")
			if err != nil || plan.To.Version != "0.3.0" {
				t.Fatalf("plan: %+v, %v", plan, err)
			}
			px.Set(func(path string, body []byte) []byte {
				if o, ok := old[path]; ok {
					return o
				}
				return body
			})
			four := b.workspace(t, "four")
			_, err = b.reg.Install(ctx, four, registry.InstallRequest{Package: "acme/notes"})
			wantCode(t, err, core.EIndexRollback)
			b.reg = b.open(t, px.URL, a.Key)
			_, err = b.reg.Install(ctx, four, registry.InstallRequest{Package: "acme/notes"})
			wantCode(t, err, core.EIndexRollback)
			px.Set(nil)

			// A registry signing with another key than the pinned one.
			other, _, _ := minisign.GenerateKey(nil)
			b.reg = b.open(t, px.URL, other)
			_, err = b.reg.Install(ctx, four, registry.InstallRequest{Package: "acme/notes"})
			wantCode(t, err, core.ESignerUnknown)

			// An index past its expiry.
			b.reg = b.open(t, px.URL, a.Key)
			b.clock.advance(8 * 24 * time.Hour)
			_, err = b.reg.Install(ctx, four, registry.InstallRequest{Package: "acme/notes"})
			wantCode(t, err, core.EIndexExpired)
			b.clock.advance(-8 * 24 * time.Hour)

			in, err = b.reg.Install(ctx, four, registry.InstallRequest{Package: "acme/notes"})
			if err != nil || in.Version != "0.3.0" {
				t.Fatalf("install after the refusals: %+v, %v", in, err)
			}
		})
	}
}

// A version signed by a key the registry's index lists as revoked is
// refused, and so is one whose signer is not the one the index lists.
func TestUpstreamSigners(t *testing.T) {
	for _, db := range sqlstoretest.Databases() {
		t.Run(db.Name, func(t *testing.T) {
			ctx := context.Background()
			a := startRegistry(t, db.URL(t))
			acme, key := a.publisher(t, "acme")
			data, sig := pack(t, "acme/notes", "0.1.0", nil, key)
			if _, err := acme.Publish(ctx, data, sig); err != nil {
				t.Fatal(err)
			}
			next, nextPriv, _ := minisign.GenerateKey(nil)
			if _, err := acme.AddKey(ctx, "acme", relaypkg.PublicKeyLine(next)); err != nil {
				t.Fatal(err)
			}
			data, sig = pack(t, "acme/notes", "0.2.0", nil, nextPriv)
			if _, err := acme.Publish(ctx, data, sig); err != nil {
				t.Fatal(err)
			}
			if err := acme.RevokeKey(ctx, "acme", relaypkg.KeyID(key.ID())); err != nil {
				t.Fatal(err)
			}
			b := newDownstream(t, db.URL(t), a.URL, a.Key)
			one := b.workspace(t, "one")
			_, err := b.reg.Install(ctx, one, registry.InstallRequest{Package: "acme/notes", Version: "0.1.0"})
			wantCode(t, err, core.ESignerRevoked)
			b.wantNothingKept(t)
			in, err := b.reg.Install(ctx, one, registry.InstallRequest{Package: "acme/notes", Version: "0.2.0"})
			if err != nil || in.Signer != relaypkg.KeyID(next.ID()) {
				t.Fatalf("install of the version signed by the new key: %+v, %v", in, err)
			}
		})
	}
}

const notesKit = `{"name": "acme/notes-kit", "version": %q, "title": "Notes kit", "summary": "Jot things down.",
  "min_relay_version": "0.5.0",
  "connectors": [{"package": "acme/notes", "version": "^0.1"}],
  "connections": [{"name": "main", "connector": "notes", "title": "Your notes", "fields": [{"field": "token", "label": "Token"}]}],
  "actions": [{"name": "jot", "title": "Jot", "connection": "main", "action": "add", "input_schema": {"type": "object"}}]}`

// packTemplate makes acme/notes-kit at version, signed with key.
func packTemplate(t *testing.T, version string, key minisign.PrivateKey) (data, doc, sig []byte) {
	t.Helper()
	doc = fmt.Appendf(nil, notesKit, version)
	data, index, err := relaypkg.PackBytes("acme/notes-kit", map[string][]byte{relaypkg.TemplatePath: doc, relaypkg.ReadmePath: []byte("# kit")})
	if err != nil {
		t.Fatal(err)
	}
	if sig, err = relaypkg.Sign(key, index); err != nil {
		t.Fatal(err)
	}
	return data, doc, sig
}

// The registry's index lists templates beside connectors, and a server
// installing from it reads them there: picked among the index's versions,
// downloaded once, kept (never unpacked), signed by the key the index
// lists. A connector install takes no template and a template read no
// connector, whether the version is kept already or not.
func TestUpstreamTemplates(t *testing.T) {
	for _, db := range sqlstoretest.Databases() {
		t.Run(db.Name, func(t *testing.T) {
			ctx := context.Background()
			a := startRegistryWith(t, db.URL(t), true)
			acme, key := a.publisher(t, "acme")
			data, sig := pack(t, "acme/notes", "0.1.0", nil, key)
			if _, err := acme.Publish(ctx, data, sig); err != nil {
				t.Fatal(err)
			}
			kit, doc, sig := packTemplate(t, "1.0.0", key)
			if _, err := acme.Publish(ctx, kit, sig); err != nil {
				t.Fatal(err)
			}

			// The index verifies, marks the template, and lists the
			// connector as it did before there were templates.
			x, err := a.client(t, Config{}).Index(ctx, a.Key, 0)
			if err != nil {
				t.Fatal(err)
			}
			if p := x.FindPackage("acme/notes-kit"); p == nil || p.Kind != relaypkg.KindTemplate || len(p.Versions) != 1 ||
				p.Versions[0].Protocol != 0 || p.Versions[0].MinRelayVersion != "0.5.0" || p.Versions[0].SHA256 != sha256Hex(kit) {
				t.Fatalf("the index lists the template as %+v", p)
			}
			var raw struct {
				Packages []map[string]json.RawMessage `json:"packages"`
			}
			if err := json.Unmarshal(x.Doc, &raw); err != nil {
				t.Fatal(err)
			}
			for _, p := range raw.Packages {
				if _, marked := p["kind"]; marked != (string(p["name"]) == `"acme/notes-kit"`) {
					t.Fatalf("the index's entry %s", p["name"])
				}
			}

			b := newDownstream(t, db.URL(t), a.URL, a.Key)
			one := b.workspace(t, "one")
			_, err = b.reg.Install(ctx, one, registry.InstallRequest{Package: "acme/notes-kit"})
			wantCode(t, err, core.ENotFound)
			_, err = b.reg.PickTemplate(ctx, "acme/notes", "")
			wantCode(t, err, core.ENotFound)
			_, err = b.reg.TemplateAt(ctx, "acme/notes", "0.1.0")
			wantCode(t, err, core.ENotFound)
			b.wantNothingKept(t)

			tv, err := b.reg.PickTemplate(ctx, "acme/notes-kit", "^1")
			if err != nil {
				t.Fatal(err)
			}
			if tv.Version != "1.0.0" || tv.SHA256 != sha256Hex(kit) || tv.Signer != relaypkg.KeyID(key.ID()) || !bytes.Equal(tv.Doc, doc) || tv.Yanked != nil {
				t.Fatalf("picked %+v", tv)
			}
			if kept := b.kept(t); kept["registry_mirror"] != 1 || kept["blobs"] != 1 || kept["cache"] != 0 {
				t.Fatalf("B keeps %v of the template", kept)
			}

			// Kept, each kind is still only itself.
			if _, err := b.reg.Install(ctx, one, registry.InstallRequest{Package: "acme/notes"}); err != nil {
				t.Fatal(err)
			}
			_, err = b.reg.TemplateAt(ctx, "acme/notes", "0.1.0")
			wantCode(t, err, core.ENotFound)
			_, _, err = b.reg.LockConnector(ctx, "acme/notes-kit", "1.0.0")
			wantCode(t, err, core.ENotFound)
			_, err = b.reg.Files(ctx, core.ConnectorRef{Name: "acme/notes-kit", Version: "1.0.0"})
			wantCode(t, err, core.ENotFound)

			// A yank at the registry: the version reads on, with its
			// reason, and no range picks it.
			if err := acme.Yank(ctx, "acme/notes-kit", "1.0.0", "typo"); err != nil {
				t.Fatal(err)
			}
			_, err = b.reg.PickTemplate(ctx, "acme/notes-kit", "")
			wantCode(t, err, core.ENotFound)
			tv, err = b.reg.TemplateAt(ctx, "acme/notes-kit", "1.0.0")
			if err != nil || tv.Yanked == nil || tv.Yanked.Reason != "typo" {
				t.Fatalf("the yanked version reads %+v, %v", tv, err)
			}
		})
	}
}
