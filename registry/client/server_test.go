package client

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"aead.dev/minisign"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/httpapi/httpapitest"
	"github.com/relayhq/relay/core/sqlstore"
	"github.com/relayhq/relay/core/sqlstore/sqlstoretest"
	"github.com/relayhq/relay/marketplace"
	"github.com/relayhq/relay/registry"
	"github.com/relayhq/relay/registry/relaypkg"
)

// testRegistry is a real registry served by the real HTTP API on a
// loopback port, over a real database, wired as `relay serve` wires it:
// blobs in files on SQLite, in the database on PostgreSQL.
type testRegistry struct {
	URL      string
	AdminKey string             // a workspace admin's API key
	Key      minisign.PublicKey // the registry's, which signs its index
	Store    *sqlstore.Store
	BlobDir  string // on SQLite
}

// eachDB runs fn against a registry on SQLite and one on PostgreSQL.
func eachDB(t *testing.T, fn func(t *testing.T, r *testRegistry)) {
	for _, db := range sqlstoretest.Databases() {
		t.Run(db.Name, func(t *testing.T) { fn(t, startRegistry(t, db.URL(t))) })
	}
}

func startRegistry(t *testing.T, databaseURL string) *testRegistry {
	t.Helper()
	return startRegistryWith(t, databaseURL, false)
}

// startRegistryWith starts a registry as startRegistry does, one that
// takes templates too when market is set: with a real marketplace to
// check them, as `relay serve` wires it.
func startRegistryWith(t *testing.T, databaseURL string, market bool) *testRegistry {
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
	ws, err := st.CreateWorkspace(ctx, "authors")
	if err != nil {
		t.Fatal(err)
	}
	hasher, err := core.NewKeyHasherFromPepper(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	k, adminKey, err := core.NewAPIKey(hasher, ws.ID, "admin", core.RoleAdmin, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateKey(ctx, k, nil); err != nil {
		t.Fatal(err)
	}
	pub, priv, err := minisign.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &testRegistry{AdminKey: adminKey, Key: pub, Store: st}
	var blobs registry.BlobStore = registry.SQLBlobs{DB: st.DB()}
	if st.Dialect() == "sqlite" {
		r.BlobDir = filepath.Join(t.TempDir(), "registry")
		blobs = registry.DirBlobs{Dir: r.BlobDir}
	}
	reg := registry.New(registry.Config{DB: st, Blobs: blobs, Hasher: hasher, SigningKey: priv})
	if market {
		reg.SetTemplates(marketplace.New(marketplace.Config{DB: st, Registry: reg}))
	}
	r.URL = httpapitest.Serve(t, st, hasher, reg.Routes())
	return r
}

// client returns a client of the registry with cfg's settings.
func (r *testRegistry) client(t *testing.T, cfg Config) *Client {
	t.Helper()
	if cfg.URL == "" {
		cfg.URL = r.URL
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// publisher registers a publisher with a fresh key and returns a client
// holding its token, and the key.
func (r *testRegistry) publisher(t *testing.T, name string) (*Client, minisign.PrivateKey) {
	t.Helper()
	pub, priv, err := minisign.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	_, token, err := r.client(t, Config{APIKey: r.AdminKey}).RegisterPublisher(context.Background(), name, "", relaypkg.PublicKeyLine(pub))
	if err != nil {
		t.Fatal(err)
	}
	return r.client(t, Config{Token: token}), priv
}

const notesManifest = `{"name": %q, "version": %q, "runtime": "wasm", "protocol": 1, "title": "Notes",
  "description": "Takes notes", "config_schema": {"type": "object", "properties": {"token": {"type": "string", "x-relay-secret": true}}},
  "egress": ["api.notes.example"],
  "actions": [{"name": "add", "title": "Add a note", "side_effect": "write",
    "input_schema": {"type": "object"}, "output_schema": {"type": "object"}}]}`

// pack makes a package of pkg@version whose module has extra bytes
// after its header (random bytes do not compress: 700 KiB of them make a
// package of two parts), and signs its index with key.
func pack(t *testing.T, pkg, version string, extra []byte, key minisign.PrivateKey) (data, sig []byte) {
	t.Helper()
	_, name, _ := strings.Cut(pkg, "/")
	data, index, err := relaypkg.PackBytes(pkg, map[string][]byte{
		relaypkg.ManifestPath: fmt.Appendf(nil, notesManifest, name, version),
		relaypkg.WASMPath:     append([]byte("\x00asm\x01\x00\x00\x00"+pkg+version), extra...),
		relaypkg.ReadmePath:   []byte("# " + pkg),
		relaypkg.LicensePath:  []byte("MIT"),
	})
	if err != nil {
		t.Fatal(err)
	}
	sig, err = relaypkg.Sign(key, index)
	if err != nil {
		t.Fatal(err)
	}
	return data, sig
}

// wantCode fails t unless err carries code.
func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if core.ErrorCode(err) != code {
		t.Fatalf("error %v, want %s", err, code)
	}
}
