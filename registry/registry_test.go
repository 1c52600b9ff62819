package registry

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/audit"
	"github.com/relayhq/relay/core/sqlstore"
	"github.com/relayhq/relay/core/sqlstore/sqlstoretest"
	"github.com/relayhq/relay/registry/relaypkg"
	"github.com/relayhq/relay/schemas/schemastest"
)

// env is a registry on a real database, with a workspace whose admin
// registers publishers.
type env struct {
	t      testing.TB
	store  *sqlstore.Store
	reg    *Service
	admin  *core.Caller
	regKey minisign.PublicKey
	now    time.Time
}

// eachDB runs fn on SQLite (blobs in files) and PostgreSQL (blobs in the
// database), as the server wires them.
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
	hasher, _ := core.NewKeyHasherFromPepper(bytes.Repeat([]byte{3}, 32))
	pub, priv, _ := minisign.GenerateKey(nil)
	var blobs BlobStore = DirBlobs{Dir: filepath.Join(tb.TempDir(), "blobs")}
	if st.Dialect() == "postgres" {
		blobs = SQLBlobs{DB: st.DB()}
	}
	e := &env{t: tb, store: st, regKey: pub, now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC),
		admin: &core.Caller{WorkspaceID: ws.ID, KeyID: core.NewID(), Role: core.RoleAdmin, IP: "127.0.0.1"}}
	e.reg = New(Config{DB: st, Blobs: blobs, Hasher: hasher, SigningKey: priv, Now: func() time.Time { return e.now }})
	return e
}

// publisher registers a publisher with a fresh key and returns it, its
// token and the private key.
func (e *env) publisher(name string) (*Publisher, string, minisign.PrivateKey) {
	e.t.Helper()
	pub, priv, _ := minisign.GenerateKey(nil)
	p, token, err := e.reg.RegisterPublisher(context.Background(), e.admin, name, "", relaypkg.PublicKeyLine(pub))
	if err != nil {
		e.t.Fatal(err)
	}
	return p, token, priv
}

// auth is the publisher a token authenticates.
func (e *env) auth(token string) (*Publisher, *core.Caller) {
	e.t.Helper()
	p, c, err := e.reg.Authenticate(context.Background(), "Bearer "+token, "127.0.0.1", "req-1")
	if err != nil {
		e.t.Fatal(err)
	}
	return p, c
}

const notesManifest = `{"name": %q, "version": %q, "runtime": "wasm", "protocol": 1, "title": "Notes",
  "description": "Takes notes", "config_schema": {"type": "object", "properties": {"token": {"type": "string", "x-relay-secret": true}}},
  "egress": ["api.notes.example"],
  "actions": [{"name": "add", "title": "Add a note", "side_effect": "write",
    "input_schema": {"type": "object"}, "output_schema": {"type": "object"}}]}`

// pack makes a package of name@version and its index.
func pack(t *testing.T, pkg, version string) (data, index []byte) {
	t.Helper()
	_, name, _ := strings.Cut(pkg, "/")
	data, index, err := relaypkg.PackBytes(pkg, map[string][]byte{
		relaypkg.ManifestPath: fmt.Appendf(nil, notesManifest, name, version),
		relaypkg.WASMPath:     []byte("\x00asm\x01\x00\x00\x00" + pkg + version),
		relaypkg.ReadmePath:   []byte("# " + pkg),
		relaypkg.LicensePath:  []byte("MIT"),
	})
	if err != nil {
		t.Fatal(err)
	}
	return data, index
}

// upload sends data in parts and returns the upload's id.
func (e *env) upload(p *Publisher, data []byte) string {
	e.t.Helper()
	ctx := context.Background()
	u, err := e.reg.StartUpload(ctx, p)
	if err != nil {
		e.t.Fatal(err)
	}
	// Parts out of order, one sent twice: as a client that retries does.
	size := max(len(data)/3+1, 1)
	var parts [][]byte
	for i := 0; i < len(data); i += size {
		parts = append(parts, data[i:min(i+size, len(data))])
	}
	for i := len(parts) - 1; i >= 0; i-- {
		if _, err := e.reg.PutPart(ctx, p, u.ID, i, parts[i]); err != nil {
			e.t.Fatal(err)
		}
	}
	if _, err := e.reg.PutPart(ctx, p, u.ID, 0, parts[0]); err != nil {
		e.t.Fatal(err)
	}
	return u.ID
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := core.ErrorCode(err); got != code {
		t.Fatalf("error %v (code %s), want %s", err, got, code)
	}
}

// An author's path through the registry: register, upload, publish, and
// the package read back, downloaded byte for byte, found, listed in the
// signed index; versions never change; yanks; every change audited.
func TestPublish(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		_, token, key := e.publisher("acme")
		p, c := e.auth(token)
		data, index := pack(t, "acme/notes", "1.2.0")
		sig, err := relaypkg.Sign(key, index)
		if err != nil {
			t.Fatal(err)
		}
		v, err := e.reg.Publish(ctx, p, c, e.upload(p, data), sig)
		if err != nil {
			t.Fatal(err)
		}
		if v.Package != "acme/notes" || v.Version != "1.2.0" || v.Signer != p.Keys[0].ID || v.Size != int64(len(data)) {
			t.Fatalf("published %+v", v)
		}

		got, err := e.reg.Version(ctx, "acme/notes", "1.2.0")
		if err != nil {
			t.Fatal(err)
		}
		caps := got.Capabilities
		if got.Index != string(index) || got.Signature != string(sig) || len(caps.Actions) != 1 || caps.Actions[0].SideEffect != "write" ||
			strings.Join(caps.Egress, ",") != "api.notes.example" || strings.Join(caps.Secrets, ",") != "token" || strings.Join(caps.Runtimes, ",") != "wasm" {
			t.Errorf("version %+v, capabilities %+v", got, caps)
		}
		r, _, err := e.reg.Download(ctx, "acme/notes", "1.2.0")
		if err != nil {
			t.Fatal(err)
		}
		downloaded, _ := io.ReadAll(r)
		r.Close()
		if !bytes.Equal(downloaded, data) {
			t.Error("the download differs from what was published")
		}

		// A second version; the newest release is the latest until it is
		// yanked.
		data2, index2 := pack(t, "acme/notes", "1.3.0")
		sig2, _ := relaypkg.Sign(key, index2)
		if _, err := e.reg.Publish(ctx, p, c, e.upload(p, data2), sig2); err != nil {
			t.Fatal(err)
		}
		pkg, err := e.reg.Package(ctx, "acme/notes")
		if err != nil || pkg.Latest != "1.3.0" || len(pkg.Versions) != 2 || pkg.Versions[0].Version != "1.3.0" {
			t.Fatalf("package %+v, %v", pkg, err)
		}
		wantCode(t, e.reg.YankVersion(ctx, p, c, "acme/notes", "1.3.0", ""), core.EInvalid)
		if err := e.reg.YankVersion(ctx, p, c, "acme/notes", "1.3.0", "breaks add"); err != nil {
			t.Fatal(err)
		}
		pkg, _ = e.reg.Package(ctx, "acme/notes")
		if pkg.Latest != "1.2.0" || pkg.Versions[0].Yanked == nil || pkg.Versions[0].Yanked.Reason != "breaks add" {
			t.Errorf("after the yank: %+v", pkg)
		}
		wantCode(t, e.reg.YankVersion(ctx, p, c, "acme/notes", "1.3.0", "again"), core.ENotFound)

		// Versions never change.
		wantCode(t, func() error { _, err := e.reg.Publish(ctx, p, c, e.upload(p, data), sig); return err }(), core.EConflict)

		list, next, err := e.reg.Search(ctx, "NOTES", "", core.Page{})
		if err != nil || len(list) != 1 || next != "" || list[0].Name != "acme/notes" {
			t.Errorf("search: %v, %q, %v", list, next, err)
		}
		if list, _, _ := e.reg.Search(ctx, "nothing like it", "", core.Page{}); len(list) != 0 {
			t.Errorf("search for nothing found %d", len(list))
		}

		doc, isig, err := e.reg.SignedIndex(ctx)
		if err != nil {
			t.Fatal(err)
		}
		x, err := VerifyIndex(e.regKey, doc, isig, 0, e.now)
		if err != nil {
			t.Fatal(err)
		}
		if len(x.Packages) != 1 || len(x.Packages[0].Versions) != 2 || !x.Packages[0].Versions[1].Yanked ||
			x.Packages[0].Versions[0].SHA256 != v.SHA256 || len(x.Publishers) != 1 || x.Version < 5 {
			t.Errorf("index %+v", x)
		}

		// Every change is on the publisher's workspace's audit log.
		brk, err := audit.Verify(ctx, e.store, "", nil)
		if err != nil || brk != nil {
			t.Fatalf("audit chain: %v, %v", brk, err)
		}
		records, _, err := e.store.ListAudit(ctx, e.admin.WorkspaceID, core.Page{Limit: 50})
		if err != nil {
			t.Fatal(err)
		}
		var actions []string
		for _, r := range records {
			actions = append(actions, r.Action)
		}
		if got := strings.Join(actions, ","); got != "registry.publisher.register,registry.version.publish,registry.version.publish,registry.version.yank" {
			t.Errorf("audit: %s", got)
		}
	})
}

// Signatures are checked against the publisher's keys: another key's, a
// revoked key's, a signature of another index, and a package of another
// publisher are each refused with their own code, and store nothing.
func TestPublishRefusals(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		_, token, key := e.publisher("acme")
		p, c := e.auth(token)
		data, index := pack(t, "acme/notes", "1.0.0")
		_, strangerKey, _ := minisign.GenerateKey(nil)
		strangerSig, _ := relaypkg.Sign(strangerKey, index)
		wantCode(t, publish(e, p, c, data, strangerSig), core.ESignerUnknown)
		otherData, otherIndex := pack(t, "acme/notes", "1.0.1")
		_ = otherData
		wrongSig, _ := relaypkg.Sign(key, otherIndex)
		wantCode(t, publish(e, p, c, data, wrongSig), core.ESignatureInvalid)
		tampered := bytes.Clone(data)
		tampered[len(tampered)/2] ^= 0x20
		sig, _ := relaypkg.Sign(key, index)
		if err := publish(e, p, c, tampered, sig); core.ErrorCode(err) != core.EPackageCorrupt && core.ErrorCode(err) != core.EPackageTampered {
			t.Errorf("a tampered package: %v", err)
		}
		theirs, theirIndex := pack(t, "globex/notes", "1.0.0")
		theirSig, _ := relaypkg.Sign(key, theirIndex)
		wantCode(t, publish(e, p, c, theirs, theirSig), core.EForbidden)

		// Rotation: a new key signs, the old one is revoked, and what it
		// signs is refused from then on.
		newPub, newKey, _ := minisign.GenerateKey(nil)
		if _, err := e.reg.AddKey(ctx, p, c, relaypkg.PublicKeyLine(newPub)); err != nil {
			t.Fatal(err)
		}
		wantCode(t, e.reg.RevokeKey(ctx, p, c, "0000000000000000"), core.ENotFound)
		if err := e.reg.RevokeKey(ctx, p, c, p.Keys[0].ID); err != nil {
			t.Fatal(err)
		}
		p, c = e.auth(token)
		wantCode(t, e.reg.RevokeKey(ctx, p, c, relaypkg.KeyID(newPub.ID())), core.EConflict) // its last key
		wantCode(t, publish(e, p, c, data, sig), core.ESignerRevoked)
		newSig, _ := relaypkg.Sign(newKey, index)
		if err := publish(e, p, c, data, newSig); err != nil {
			t.Fatalf("published with the new key: %v", err)
		}
		if pkg, err := e.reg.Package(ctx, "acme/notes"); err != nil || len(pkg.Versions) != 1 {
			t.Errorf("after the refusals: %+v, %v", pkg, err)
		}
	})
}

func publish(e *env, p *Publisher, c *core.Caller, data, sig []byte) error {
	_, err := e.reg.Publish(context.Background(), p, c, e.upload(p, data), sig)
	return err
}

// Publisher names are checked, Relay's is reserved, tokens say nothing of
// why they fail.
func TestPublishers(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		pub, _, _ := minisign.GenerateKey(nil)
		line := relaypkg.PublicKeyLine(pub)
		for _, bad := range []string{"Acme", "ac--me", "-acme", "acme/x", "ａcme", ""} {
			_, _, err := e.reg.RegisterPublisher(ctx, e.admin, bad, "", line)
			wantCode(t, err, core.EInvalid)
		}
		_, _, err := e.reg.RegisterPublisher(ctx, e.admin, FirstParty, "", line)
		wantCode(t, err, core.EConflict)
		_, _, err = e.reg.RegisterPublisher(ctx, e.admin, "acme", "", "not a key")
		wantCode(t, err, core.EInvalid)
		_, token, _ := e.publisher("acme")
		_, _, err = e.reg.RegisterPublisher(ctx, e.admin, "acme", "", line)
		wantCode(t, err, core.EConflict)
		other := "a"
		if strings.HasSuffix(token, "a") {
			other = "b"
		}
		for _, bad := range []string{"", "Bearer", "Bearer " + token + "x", "Bearer rly_" + token[4:], "Basic " + token,
			"Bearer " + token[:len(token)-1] + other} {
			_, _, err := e.reg.Authenticate(ctx, bad, "", "")
			wantCode(t, err, core.EUnauthenticated)
		}
	})
}

// Names that look alike are one: a publisher cannot register a name
// confusable with Relay's own or with another publisher's, nor a package
// a name confusable with one published; the one that is there keeps
// publishing under it.
func TestConfusableNames(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		pub, _, _ := minisign.GenerateKey(nil)
		line := relaypkg.PublicKeyLine(pub)
		for _, name := range []string{"re1ay", "rel-ay", "re-1ay"} {
			_, _, err := e.reg.RegisterPublisher(ctx, e.admin, name, "", line)
			wantCode(t, err, core.EConflict)
		}
		p, _, key := e.publisher("acme")
		for _, name := range []string{"acrne", "ac-me", "acme"} {
			_, _, err := e.reg.RegisterPublisher(ctx, e.admin, name, "", line)
			wantCode(t, err, core.EConflict)
			if name != "acme" && !strings.Contains(err.Error(), `looks like "acme"`) {
				t.Errorf("%s refused for %v", name, err)
			}
		}
		e.publisher("acne") // not one of the pairs
		sign := func(pkg, version string) error {
			data, index := pack(t, pkg, version)
			sig, _ := relaypkg.Sign(key, index)
			return publish(e, p, e.admin, data, sig)
		}
		if err := sign("acme/notes", "0.1.0"); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"acme/n0tes", "acme/no-tes", "acme/note5"} {
			err := sign(name, "0.1.0")
			wantCode(t, err, core.EConflict)
			if !strings.Contains(err.Error(), `looks like "acme/notes"`) {
				t.Errorf("%s refused for %v", name, err)
			}
		}
		if err := sign("acme/notes", "0.2.0"); err != nil {
			t.Fatalf("a new version of the package there: %v", err)
		}
		if err := sign("acme/nodes", "0.1.0"); err != nil {
			t.Fatalf("a package whose name only differs: %v", err)
		}
	})
}

func TestSkeleton(t *testing.T) {
	for name, want := range map[string]string{
		"relay": "relay", "re1ay": "relay", "r-e-l-a-y": "relay", "acrne": "acme", "vvord5": "words",
		"acme/n0tes": "acme/notes", "acme/notes": "acme/notes", "learn": "leam",
		// The names core/sqlstore's TestMigration0009Skeletons gives the
		// migration's SQL: the two must agree.
		"acme-corp": "acmecorp", "vv0rn15": "womls", "acme-corp/n0tes-1": "acmecorp/notesl",
	} {
		if got := relaypkg.Skeleton(name); got != want {
			t.Errorf("Skeleton(%q) = %q, want %q", name, got, want)
		}
	}
}

// A server that installs from a registry refuses an index signed by
// another key, altered, older than one it has seen, or expired.
func TestVerifyIndex(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.publisher("acme")
		doc, sig, err := e.reg.SignedIndex(ctx)
		if err != nil {
			t.Fatal(err)
		}
		x, err := VerifyIndex(e.regKey, doc, sig, 0, e.now)
		if err != nil {
			t.Fatal(err)
		}
		other, _, _ := minisign.GenerateKey(nil)
		_, err = VerifyIndex(other, doc, sig, 0, e.now)
		wantCode(t, err, core.ESignerUnknown)
		_, err = VerifyIndex(e.regKey, bytes.Replace(doc, []byte(`"acme"`), []byte(`"evil"`), 1), sig, 0, e.now)
		wantCode(t, err, core.ESignatureInvalid)
		_, err = VerifyIndex(e.regKey, doc, sig, x.Version+1, e.now)
		wantCode(t, err, core.EIndexRollback)
		_, err = VerifyIndex(e.regKey, doc, sig, 0, e.now.Add(DefaultIndexTTL))
		wantCode(t, err, core.EIndexExpired)
		// The same index until the registry changes; then a newer one.
		again, _, _ := e.reg.SignedIndex(ctx)
		if !bytes.Equal(again, doc) {
			t.Error("the index changed with nothing published")
		}
		e.publisher("globex")
		newer, newerSig, _ := e.reg.SignedIndex(ctx)
		y, err := VerifyIndex(e.regKey, newer, newerSig, x.Version, e.now)
		if err != nil || y.Version <= x.Version || len(y.Publishers) != 2 {
			t.Errorf("after a change: %+v, %v", y, err)
		}
	})
}

// Every route of the registry is in the OpenAPI document with the role or
// token it needs, and the document names no registry route it does not
// serve.
func TestRoutesDocumented(t *testing.T) {
	var routes []schemastest.Route
	for _, r := range (&Service{}).routeTable() {
		role := string(r.role)
		switch {
		case r.publisher != nil:
			role = "publisher"
		case role == "":
			role = "none"
		}
		routes = append(routes, schemastest.Route{Method: r.method, Path: r.path, Role: role})
	}
	schemastest.CheckRoutes(t, "registry", routes)
}

// The registry's response schemas name the fields it writes, and require
// those it always writes.
func TestResponseSchemasMatchTypes(t *testing.T) {
	schemastest.CheckSchemaTypes(t, map[string]any{
		"Installation":    Installation{},
		"UpgradePlan":     Upgrade{},
		"Publisher":       Publisher{},
		"PublisherKey":    Key{},
		"Upload":          Upload{},
		"RegistryPackage": Package{},
		"RegistryVersion": VersionDetail{},
		"Capabilities":    Capabilities{},
		"Yank":            Yank{},
	}, nil)
}
