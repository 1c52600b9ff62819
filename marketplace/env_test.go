package marketplace

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/secrets"
	"github.com/relayhq/relay/core/sqlstore"
	"github.com/relayhq/relay/core/sqlstore/sqlstoretest"
	"github.com/relayhq/relay/marketplace/billing"
	"github.com/relayhq/relay/registry"
	"github.com/relayhq/relay/registry/relaypkg"
)

// env is a registry and its marketplace on a real database, with a
// workspace whose admin registers publishers, and a clock each publish
// moves on.
type env struct {
	t      testing.TB
	store  *sqlstore.Store
	reg    *registry.Service
	market *Service
	bill   *billing.Service
	hasher *core.KeyHasher
	admin  *core.Caller
	now    time.Time
	keys   map[string]minisign.PrivateKey
	pubs   map[string]*registry.Publisher
	caller map[string]*core.Caller
	tokens map[string]string // publisher tokens
}

// eachDB runs fn on SQLite and on PostgreSQL.
func eachDB(t *testing.T, fn func(t *testing.T, e *env)) {
	for _, db := range sqlstoretest.Databases() {
		t.Run(db.Name, func(t *testing.T) {
			fn(t, newEnv(t, db.URL(t)))
		})
	}
}

func newEnv(tb testing.TB, databaseURL string) *env {
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, databaseURL)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		tb.Fatal(err)
	}
	ws, err := st.CreateWorkspace(ctx, "authors")
	if err != nil {
		tb.Fatal(err)
	}
	hasher, _ := core.NewKeyHasherFromPepper(bytes.Repeat([]byte{5}, 32))
	_, priv, _ := minisign.GenerateKey(nil)
	var blobs registry.BlobStore = registry.DirBlobs{Dir: filepath.Join(tb.TempDir(), "blobs")}
	if st.Dialect() == "postgres" {
		blobs = registry.SQLBlobs{DB: st.DB()}
	}
	e := &env{t: tb, store: st, hasher: hasher, now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC),
		admin: &core.Caller{WorkspaceID: ws.ID, KeyID: core.NewID(), Role: core.RoleAdmin, IP: "127.0.0.1"},
		keys:  map[string]minisign.PrivateKey{}, pubs: map[string]*registry.Publisher{}, caller: map[string]*core.Caller{},
		tokens: map[string]string{}}
	clock := func() time.Time { return e.now }
	e.reg = registry.New(registry.Config{DB: st, Blobs: blobs, Hasher: hasher, SigningKey: priv, Now: clock,
		CacheDir: filepath.Join(tb.TempDir(), "cache")})
	keyring, err := secrets.NewKeyring(bytes.Repeat([]byte{9}, 32), st)
	if err != nil {
		tb.Fatal(err)
	}
	e.bill = billing.New(billing.Config{DB: st, Registry: e.reg, Secrets: keyring, Now: clock})
	e.market = New(Config{DB: st, Registry: e.reg, Prices: e.bill, Now: clock})
	e.reg.SetTemplates(e.market)
	return e
}

// publisher registers a publisher with a fresh key, once.
func (e *env) publisher(name string) {
	e.t.Helper()
	if e.pubs[name] != nil {
		return
	}
	ctx := context.Background()
	pub, priv, _ := minisign.GenerateKey(nil)
	_, token, err := e.reg.RegisterPublisher(ctx, e.admin, name, "", relaypkg.PublicKeyLine(pub))
	if err != nil {
		e.t.Fatal(err)
	}
	p, c, err := e.reg.Authenticate(ctx, "Bearer "+token, "127.0.0.1", "req-1")
	if err != nil {
		e.t.Fatal(err)
	}
	e.keys[name], e.pubs[name], e.caller[name], e.tokens[name] = priv, p, c, token
}

// publish uploads, signs and publishes the package of files, a second
// later than the publish before.
func (e *env) publish(pkg string, files map[string][]byte) error {
	e.t.Helper()
	ctx := context.Background()
	publisher, _, _ := strings.Cut(pkg, "/")
	e.publisher(publisher)
	data, index, err := relaypkg.PackBytes(pkg, files)
	if err != nil {
		e.t.Fatal(err)
	}
	sig, err := relaypkg.Sign(e.keys[publisher], index)
	if err != nil {
		e.t.Fatal(err)
	}
	u, err := e.reg.StartUpload(ctx, e.pubs[publisher])
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.reg.PutPart(ctx, e.pubs[publisher], u.ID, 0, data); err != nil {
		e.t.Fatal(err)
	}
	e.now = e.now.Add(time.Second)
	_, err = e.reg.Publish(ctx, e.pubs[publisher], e.caller[publisher], u.ID, sig)
	return err
}

const notesManifest = `{"name": "notes", "version": %q, "runtime": "wasm", "protocol": 1, "title": "Notes",
  "description": "Takes notes", "config_schema": {"type": "object", "properties": {"token": {"type": "string", "x-relay-secret": true}}},
  "egress": ["api.notes.example"],
  "actions": [{"name": "add", "title": "Add a note", "side_effect": "write",
    "input_schema": {"type": "object"}, "output_schema": {"type": "object"}}]}`

// publishNotes publishes the connector templates run: acme/notes.
func (e *env) publishNotes(version string) {
	e.t.Helper()
	err := e.publish("acme/notes", map[string][]byte{
		relaypkg.ManifestPath: fmt.Appendf(nil, notesManifest, version),
		relaypkg.WASMPath:     []byte("\x00asm\x01\x00\x00\x00" + version),
		relaypkg.ReadmePath:   []byte("# Notes"),
		relaypkg.LicensePath:  []byte("MIT"),
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// tpl is what a test template says about itself.
type tpl struct {
	name, version, title, summary, readme, changelog string
	categories                                       []string
}

// publishTemplate publishes a template with one preset on acme/notes.
func (e *env) publishTemplate(t tpl) {
	e.t.Helper()
	doc := map[string]any{
		"name": t.name, "version": t.version, "title": t.title, "summary": t.summary,
		"connectors":  []any{map[string]any{"package": "acme/notes", "version": "^1"}},
		"connections": []any{map[string]any{"name": "main", "connector": "notes", "title": "Notes", "fields": []any{map[string]any{"field": "token", "label": "Token"}}}},
		"actions":     []any{map[string]any{"name": "jot", "title": "Jot", "connection": "main", "action": "add", "input_schema": map[string]any{"type": "object"}}},
	}
	if t.readme != "" {
		doc["readme"] = t.readme
	}
	if t.changelog != "" {
		doc["changelog"] = t.changelog
	}
	if len(t.categories) > 0 {
		doc["categories"] = t.categories
	}
	data, err := json.Marshal(doc)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.publish(t.name, map[string][]byte{relaypkg.TemplatePath: data, relaypkg.ReadmePath: []byte("# " + t.title)}); err != nil {
		e.t.Fatalf("publish %s@%s: %v", t.name, t.version, err)
	}
}

// yank withdraws a version of a package.
func (e *env) yank(pkg, version, reason string) {
	e.t.Helper()
	publisher, _, _ := strings.Cut(pkg, "/")
	if err := e.reg.YankVersion(context.Background(), e.pubs[publisher], e.caller[publisher], pkg, version, reason); err != nil {
		e.t.Fatal(err)
	}
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if core.ErrorCode(err) != code {
		t.Fatalf("error %v, want code %s", err, code)
	}
}
