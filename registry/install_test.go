package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"aead.dev/minisign"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/registry/relaypkg"
)

// publishManifest publishes pkg@version with the given manifest (name and
// version filled in) and, when native is set, a binary for this machine.
func (e *env) publishManifest(p *Publisher, c *core.Caller, key minisign.PrivateKey, pkg, version, m string, native bool) {
	e.t.Helper()
	_, name, _ := strings.Cut(pkg, "/")
	files := map[string][]byte{
		relaypkg.ManifestPath: fmt.Appendf(nil, m, name, version),
		relaypkg.WASMPath:     []byte("\x00asm\x01\x00\x00\x00" + pkg + version),
		relaypkg.ReadmePath:   []byte("# " + pkg),
		relaypkg.LicensePath:  []byte("MIT"),
	}
	if native {
		files[relaypkg.NativePath(runtime.GOOS, runtime.GOARCH)] = []byte("binary of " + version)
	}
	data, index, err := relaypkg.PackBytes(pkg, files)
	if err != nil {
		e.t.Fatal(err)
	}
	sig, _ := relaypkg.Sign(key, index)
	if _, err := e.reg.Publish(context.Background(), p, c, e.upload(p, data), sig); err != nil {
		e.t.Fatal(err)
	}
}

// notesV2 changes what notes may do: a new host, a new secret, a new
// required input field, an action gone and one made destructive.
const notesV2 = `{"name": %q, "version": %q, "runtime": "wasm", "protocol": 1, "title": "Notes",
  "config_schema": {"type": "object", "properties": {"token": {"type": "string", "x-relay-secret": true}, "signing_key": {"type": "string", "x-relay-secret": true}}},
  "egress": ["api.notes.example", "files.notes.example"],
  "actions": [{"name": "add", "title": "Add a note", "side_effect": "destructive",
    "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}, "output_schema": {"type": "object"}}]}`

func (e *env) workspace(name string) *core.Caller {
	e.t.Helper()
	ws, err := e.store.CreateWorkspace(context.Background(), name)
	if err != nil {
		e.t.Fatal(err)
	}
	return &core.Caller{WorkspaceID: ws.ID, KeyID: core.NewID(), Role: core.RoleAdmin}
}

// Installing resolves a range to the newest version that is not yanked
// and can run here, unpacks it once, and locks it per workspace; an
// upgrade needs the accept of its capability diff and moves the
// workspace's connections; a rollback restores the entry before.
func TestInstallUpgradeRollback(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.reg.cfg.CacheDir = filepath.Join(t.TempDir(), "packages")
		e.reg.cfg.RelayVersion, e.reg.cfg.Protocols = "1.4.0", []int{1}
		e.reg.cfg.Reserved = func(name string) bool { return name == "webhook" }
		_, token, key := e.publisher("acme")
		p, c := e.auth(token)
		e.publishManifest(p, c, key, "acme/notes", "1.0.0", notesManifest, true)
		e.publishManifest(p, c, key, "acme/notes", "1.1.0", notesManifest, true)
		e.publishManifest(p, c, key, "acme/notes", "1.2.0", notesManifest, true)
		e.publishManifest(p, c, key, "acme/notes", "1.3.0", strings.Replace(notesManifest, `"protocol": 1,`, `"protocol": 1, "min_relay_version": "9.0.0",`, 1), true)
		e.publishManifest(p, c, key, "acme/notes", "2.0.0", notesV2, false)
		if err := e.reg.YankVersion(ctx, p, c, "acme/notes", "1.2.0", "loses notes"); err != nil {
			t.Fatal(err)
		}
		a, b := e.workspace("team-a"), e.workspace("team-b")

		in, err := e.reg.Install(ctx, a, InstallRequest{Package: "acme/notes", Version: "^1.0"})
		if err != nil {
			t.Fatal(err)
		}
		// 1.3.0 needs a newer Relay, 1.2.0 is yanked: 1.1.0.
		if in.Name != "notes" || in.Version != "1.1.0" || in.Signer != p.Keys[0].ID || in.Artifacts["wasm"] == "" ||
			in.Artifacts[runtime.GOOS+"/"+runtime.GOARCH] == "" || len(in.Capabilities.Actions) != 1 {
			t.Fatalf("installed %+v", in)
		}
		_, err = e.reg.Install(ctx, a, InstallRequest{Package: "acme/notes", Version: "1.3.0", Name: "other"})
		if core.ErrorCode(err) != core.EConflict || !strings.Contains(core.ErrorMessage(err), "newest version this server can run is 2.0.0") {
			t.Errorf("an install of a version this server cannot run: %v", err)
		}
		_, err = e.reg.Install(ctx, a, InstallRequest{Package: "acme/notes", Version: "1.2.0", Name: "yanked"})
		wantCode(t, err, core.ENotFound)
		_, err = e.reg.Install(ctx, a, InstallRequest{Package: "acme/notes"})
		wantCode(t, err, core.EConflict) // installed already
		_, err = e.reg.Install(ctx, a, InstallRequest{Package: "acme/notes", Name: "webhook"})
		wantCode(t, err, core.EConflict) // the server's own
		_, err = e.reg.Install(ctx, a, InstallRequest{Package: "acme/none"})
		wantCode(t, err, core.ENotFound)

		// Another workspace pins another version, side by side.
		if in, err := e.reg.Install(ctx, b, InstallRequest{Package: "acme/notes", Version: "1.0.0", Name: "jots"}); err != nil || in.Version != "1.0.0" {
			t.Fatalf("install in b: %+v, %v", in, err)
		}
		for ws, want := range map[*core.Caller]string{a: "notes acme/notes@1.1.0", b: "jots acme/notes@1.0.0"} {
			got, err := e.reg.Installed(ctx, ws.WorkspaceID)
			if err != nil || len(got) != 1 || got[0].Name+" "+got[0].Ref.String() != want {
				t.Errorf("Installed = %+v, %v; want %s", got, err, want)
			}
		}

		// The files, unpacked once, with the digests the runtimes check.
		f, err := e.reg.Files(ctx, core.ConnectorRef{Name: "acme/notes", Version: "1.1.0"})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range []*core.ArtifactFile{f.WASM, f.Native} {
			data, err := os.ReadFile(a.Path)
			sum := sha256.Sum256(data)
			if err != nil || hex.EncodeToString(sum[:]) != hex.EncodeToString(a.SHA256) {
				t.Errorf("artifact %s: %v, digest mismatch", a.Path, err)
			}
		}
		if !strings.HasPrefix(f.Dir, e.reg.cfg.CacheDir) || !strings.Contains(string(f.Manifest), `"1.1.0"`) {
			t.Errorf("files %+v", f)
		}
		if _, err := e.reg.Files(ctx, core.ConnectorRef{Name: "acme/notes", Version: "9.9.9"}); core.ErrorCode(err) != core.ENotFound {
			t.Errorf("files of no version: %v", err)
		}

		// A connection follows the lock.
		if _, err := e.store.DB().ExecContext(ctx, e.store.DB().Rebind(`INSERT INTO connections (id, workspace_id, name, connector, version, runtime, config,
			created_at, updated_at, package) VALUES (?, ?, 'n1', 'notes', '1.1.0', 'wasm', '{}', ?, ?, 'acme/notes')`),
			core.NewID(), a.WorkspaceID, e.now, e.now); err != nil {
			t.Fatal(err)
		}
		plan, err := e.reg.PlanUpgrade(ctx, a.WorkspaceID, "notes", "^2")
		if err != nil {
			t.Fatal(err)
		}
		d := plan.Diff
		if d.From != "1.1.0" || d.To != "2.0.0" || strings.Join(d.NewEgress, ",") != "files.notes.example" ||
			strings.Join(d.NewSecrets, ",") != "signing_key" || len(d.SideEffects) != 1 || d.SideEffects[0].To != "destructive, needs confirmation" ||
			!strings.Contains(strings.Join(d.Breaking, ";"), `add input: "text" is now required`) || d.Signer != nil {
			t.Errorf("diff %+v", d)
		}
		_, err = e.reg.ApplyUpgrade(ctx, a, "notes", "^2", "")
		wantCode(t, err, core.EConfirmationRequired)
		_, err = e.reg.ApplyUpgrade(ctx, a, "notes", "^2", "acc_forged")
		wantCode(t, err, core.EConfirmationRequired)
		up, err := e.reg.ApplyUpgrade(ctx, a, "notes", "^2", plan.Accept)
		if err != nil || up.Version != "2.0.0" || up.Previous == nil || up.Previous.Version != "1.1.0" {
			t.Fatalf("upgrade: %+v, %v", up, err)
		}
		if v := connectionVersion(t, e, a.WorkspaceID); v != "2.0.0" {
			t.Errorf("the connection is at %s after the upgrade", v)
		}
		back, err := e.reg.Rollback(ctx, a, "notes")
		if err != nil || back.Version != "1.1.0" || back.Previous == nil || back.Previous.Version != "2.0.0" {
			t.Fatalf("rollback: %+v, %v", back, err)
		}
		if v := connectionVersion(t, e, a.WorkspaceID); v != "1.1.0" {
			t.Errorf("the connection is at %s after the rollback", v)
		}
		_, err = e.reg.Rollback(ctx, b, "jots")
		wantCode(t, err, core.EConflict) // never upgraded

		// The lock, with its yanks.
		if err := e.reg.YankVersion(ctx, p, c, "acme/notes", "1.0.0", "bad"); err != nil {
			t.Fatal(err)
		}
		lock, err := e.reg.Lock(ctx, b.WorkspaceID)
		if err != nil || len(lock) != 1 || lock[0].Yanked == nil || lock[0].Yanked.Reason != "bad" {
			t.Errorf("b's lock: %+v, %v", lock, err)
		}

		// Uninstall once no connection uses it.
		wantCode(t, e.reg.Uninstall(ctx, a, "notes"), core.EConflict)
		if err := e.reg.Uninstall(ctx, b, "jots"); err != nil {
			t.Fatal(err)
		}
		if got, _ := e.reg.Installed(ctx, b.WorkspaceID); len(got) != 0 {
			t.Errorf("after uninstall: %+v", got)
		}
	})
}

func connectionVersion(t *testing.T, e *env, workspaceID string) string {
	t.Helper()
	var v string
	if err := e.store.DB().GetContext(context.Background(), &v, e.store.DB().Rebind(`SELECT version FROM connections WHERE workspace_id = ?`), workspaceID); err != nil {
		t.Fatal(err)
	}
	return v
}

// A version signed by a key revoked since is not installed, and an
// upgrade signed by another key shows the change in its diff.
func TestInstallChecksTheSigner(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.reg.cfg.CacheDir = filepath.Join(t.TempDir(), "packages")
		_, token, oldKey := e.publisher("acme")
		p, c := e.auth(token)
		e.publishManifest(p, c, oldKey, "acme/notes", "1.0.0", notesManifest, false)
		ws := e.workspace("team")
		if _, err := e.reg.Install(ctx, ws, InstallRequest{Package: "acme/notes"}); err != nil {
			t.Fatal(err)
		}
		oldKeyID := p.Keys[0].ID
		newPub, newKey, _ := minisign.GenerateKey(nil)
		if _, err := e.reg.AddKey(ctx, p, c, relaypkg.PublicKeyLine(newPub)); err != nil {
			t.Fatal(err)
		}
		p, c = e.auth(token)
		e.publishManifest(p, c, newKey, "acme/notes", "1.1.0", notesManifest, false)
		plan, err := e.reg.PlanUpgrade(ctx, ws.WorkspaceID, "notes", "")
		if err != nil || plan.Diff.Signer == nil || plan.Diff.Signer.To != relaypkg.KeyID(newPub.ID()) {
			t.Fatalf("plan: %+v, %v", plan, err)
		}
		if err := e.reg.RevokeKey(ctx, p, c, oldKeyID); err != nil {
			t.Fatal(err)
		}
		other := e.workspace("other")
		_, err = e.reg.Install(ctx, other, InstallRequest{Package: "acme/notes", Version: "1.0.0"})
		wantCode(t, err, core.ESignerRevoked)
		if _, err := e.reg.Install(ctx, other, InstallRequest{Package: "acme/notes", Version: "1.1.0"}); err != nil {
			t.Errorf("a version signed by the new key: %v", err)
		}
	})
}

// The newest that fits, is not yanked and runs here; a refusal says why.
func TestPickVersion(t *testing.T) {
	vs := func() []candidate {
		var out []candidate
		for _, v := range []string{"0.9.0", "1.0.0", "1.2.0", "1.10.0", "2.0.0-rc.1", "1.11.0"} {
			out = append(out, candidate{Version: v, Yanked: v == "1.11.0", protocol: 1})
		}
		return out
	}
	ok := func(*candidate) error { return nil }
	for constraint, want := range map[string]string{"": "1.10.0", "^1.0": "1.10.0", "~1.2": "1.2.0", "1.0.0": "1.0.0", "<1": "0.9.0", ">=2.0.0-rc.1": "2.0.0-rc.1"} {
		got, err := pickVersion("acme/notes", vs(), constraint, ok)
		if err != nil || got.Version != want {
			t.Errorf("pick(%q) = %v, %v; want %s", constraint, got, err, want)
		}
	}
	_, err := pickVersion("acme/notes", vs(), "^3", ok)
	wantCode(t, err, core.ENotFound)
	_, err = pickVersion("acme/notes", vs(), "not a range", ok)
	wantCode(t, err, core.EInvalid)
	old := func(c *candidate) error {
		if c.Version != "0.9.0" {
			return core.Errorf(core.EConflict, "needs Relay 2")
		}
		return nil
	}
	_, err = pickVersion("acme/notes", vs(), "^1", old)
	if core.ErrorCode(err) != core.EConflict || !strings.Contains(core.ErrorMessage(err), "1.10.0 fits") || !strings.Contains(core.ErrorMessage(err), "0.9.0") {
		t.Errorf("an incompatible range: %v", err)
	}
}

// BenchmarkPickVersion resolves a range among 1,000 versions.
func BenchmarkPickVersion(b *testing.B) {
	var versions []candidate
	for i := range 1000 {
		versions = append(versions, candidate{Version: fmt.Sprintf("%d.%d.%d", i/100, i/10%10, i%10), protocol: 1})
	}
	ok := func(*candidate) error { return nil }
	b.ResetTimer()
	for range b.N {
		// As the registry does: parsed afresh from the rows each time.
		vs := append([]candidate(nil), versions...)
		if v, err := pickVersion("acme/notes", vs, "^5.2", ok); err != nil || v.Version != "5.9.9" {
			b.Fatalf("%v, %v", v, err)
		}
	}
}

func TestPackageResolve(t *testing.T) {
	p := &Package{Name: "acme/notes", Versions: []VersionInfo{
		{Version: "1.0.0"}, {Version: "1.2.0"}, {Version: "1.3.0", Yanked: &Yank{Reason: "broken"}}, {Version: "2.0.0-rc.1"}}}
	for constraint, want := range map[string]string{"": "1.2.0", "^1": "1.2.0", "1.3.0": "", "~1.0": "1.0.0", ">=2.0.0-rc.1": "2.0.0-rc.1", "^3": ""} {
		got, err := p.Resolve(constraint)
		if got != want || (want == "") != (core.ErrorCode(err) == core.ENotFound) {
			t.Errorf("Resolve(%q) = %q, %v; want %q", constraint, got, err, want)
		}
	}
	if _, err := p.Resolve("^one"); core.ErrorCode(err) != core.EInvalid {
		t.Errorf("a range that does not parse: %v", err)
	}
}
