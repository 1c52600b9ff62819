package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/sqlstore/sqlstoretest"
	"github.com/relayhq/relay/registry"
	"github.com/relayhq/relay/registry/author"
)

// registryCLI runs relay commands, as a publisher would from a shell,
// each with flags added (--registry-url, say).
type registryCLI struct {
	t     *testing.T
	flags []string
}

func (r registryCLI) run(args ...string) (stdout, stderr string, err error) {
	r.t.Helper()
	var out, errOut bytes.Buffer
	err = run(context.Background(), append(args, r.flags...), &out, &errOut)
	return out.String(), errOut.String(), err
}

// must runs a command that must succeed, and returns its stdout.
func (r registryCLI) must(args ...string) string {
	r.t.Helper()
	out, errOut, err := r.run(args...)
	if err != nil {
		r.t.Fatalf("relay %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// refused runs a command that must fail with code, and returns its error.
func (r registryCLI) refused(code string, args ...string) error {
	r.t.Helper()
	out, errOut, err := r.run(args...)
	if core.ErrorCode(err) != code {
		r.t.Fatalf("relay %s: %v, want %s\n%s%s", strings.Join(args, " "), err, code, out, errOut)
	}
	return err
}

// runMinisign runs the minisign tool, which must succeed.
func runMinisign(t *testing.T, tool string, args ...string) {
	t.Helper()
	if out, err := exec.Command(tool, args...).CombinedOutput(); err != nil {
		t.Fatalf("minisign %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestTemplatePublishCLI is a template publisher's path through a real
// server's registry with the CLI alone, on SQLite and PostgreSQL: publish
// a connector, then init, edit, pack and publish a template on it, signed
// with the publisher's key as connectors are; and the refusals, each with
// its code: a version published again, a key the publisher does not have,
// a range that only yanked versions fit, a package of the other kind.
// Then yank, which the registry shows.
func TestTemplatePublishCLI(t *testing.T) {
	withRegistry(t, testTemplatePublishCLI)
}

// withRegistry runs test against a real server's registry on each
// database, with the minisign tool and none of the publisher's settings
// from the environment.
func withRegistry(t *testing.T, test func(t *testing.T, minisignTool, url, adminKey string)) {
	tool, err := exec.LookPath("minisign")
	if err != nil {
		t.Fatalf("the minisign tool is needed: apt-get install minisign (%v)", err)
	}
	for _, v := range []string{"RELAY_PUBLISHER_KEY", "RELAY_PUBLISHER_KEY_PASSWORD", "RELAY_PUBLISHER_TOKEN",
		"RELAY_PUBLISHER_TOKEN_FILE", "RELAY_API_KEY", "RELAY_REGISTRY_URL"} {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
	for _, db := range sqlstoretest.Databases() {
		t.Run(db.Name, func(t *testing.T) {
			cfg := Config{DataDir: filepath.Join(t.TempDir(), "relay-data"), ConnectorsDir: t.TempDir()}
			if db.Name != "sqlite" {
				cfg.DatabaseURL = db.URL(t)
			}
			m, banner := startMain(t, cfg, io.Discard)
			test(t, tool, m.URL(), keyRE.FindString(banner))
		})
	}
}

func testTemplatePublishCLI(t *testing.T, minisignTool, url, adminKey string) {
	t.Setenv("HOME", t.TempDir()) // no ~/.relay/publisher.key but the test's
	t.Setenv("RELAY_REGISTRY_URL", url)
	r := registryCLI{t: t}
	keys := t.TempDir()
	kp, err := author.Keygen(filepath.Join(keys, "publisher"), "")
	if err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(t.TempDir(), "publisher.token")
	r.must("publisher", "register", "acme", "--key", kp.PublicKeyPath, "--api-key", adminKey, "--token-file", tokenFile)
	asAcme := []string{"--token-file", tokenFile}

	// The connector: 0.1.0, yanked, and 0.2.0.
	mod := notesModule(t)
	notes1 := packVersion(t, mod, "0.1.0")
	r.must(append([]string{"connector", "publish", notes1, "--key", kp.SecretKeyPath}, asAcme...)...)
	notes2 := packVersion(t, mod, "0.2.0")
	r.must(append([]string{"connector", "publish", notes2, "--key", kp.SecretKeyPath}, asAcme...)...)
	r.must(append([]string{"connector", "yank", "0.1.0", "--reason", "loses notes", "--package", "acme/notes"}, asAcme...)...)

	// init, then edit: a preset on acme/notes instead of relay/webhook.
	dir := filepath.Join(t.TempDir(), "notes-kit")
	r.must("template", "init", "acme/notes-kit", "--dir", dir)
	edit := func(version, rng string) {
		t.Helper()
		path := filepath.Join(dir, "template.json")
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := json.Unmarshal(data, &doc); err != nil {
			t.Fatal(err)
		}
		doc["version"] = version
		doc["connectors"] = []any{map[string]any{"package": "acme/notes", "version": rng}}
		doc["connections"] = []any{map[string]any{"name": "main", "connector": "notes", "title": "Your notes",
			"fields": []any{map[string]any{"field": "token", "label": "API token"}}}}
		doc["actions"] = []any{map[string]any{"name": "jot", "title": "Jot", "connection": "main", "action": "add",
			"params":       map[string]any{"tag": "kit"},
			"input_schema": map[string]any{"type": "object", "properties": map[string]any{"text": map[string]any{"type": "string"}}, "required": []any{"text"}},
			"fields":       map[string]any{"text": "/text"}}}
		if data, err = json.MarshalIndent(doc, "", "  "); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		log := "# Changelog\n\n## " + version + "\n\n- Jot notes.\n"
		if err := os.WriteFile(filepath.Join(dir, "CHANGELOG.md"), []byte(log), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	edit("1.0.0", ">=0.1 <1")

	// pack: the same bytes for the same files, in DIR/dist.
	pkg1 := filepath.Join(dir, "dist", "acme-notes-kit-1.0.0.relaypkg")
	out := r.must("template", "pack", "--dir", dir)
	if !strings.Contains(out, "package "+pkg1+"\n  sha256 "+fileSHA256(t, pkg1)) {
		t.Fatalf("pack printed\n%s", out)
	}
	if again := r.must("template", "pack", "--dir", dir); again != out {
		t.Errorf("packing the same files again printed\n%s\nnot\n%s", again, out)
	}

	// Each kind by its own command, refused before anything is sent.
	err = r.refused(core.EInvalid, append([]string{"connector", "publish", pkg1, "--key", kp.SecretKeyPath}, asAcme...)...)
	if !strings.Contains(err.Error(), "relay template publish") {
		t.Errorf("connector publish of a template: %v", err)
	}
	err = r.refused(core.EInvalid, append([]string{"template", "publish", notes2, "--key", kp.SecretKeyPath}, asAcme...)...)
	if !strings.Contains(err.Error(), "relay connector publish") {
		t.Errorf("template publish of a connector: %v", err)
	}
	if _, err := os.Stat(pkg1 + ".index.minisig"); err == nil {
		t.Error("a refused publish signed the package")
	}

	// publish, signed with the publisher's key as it goes; minisign
	// verifies the signature over the index.
	out = r.must(append([]string{"template", "publish", "--dir", dir, "--key", kp.SecretKeyPath}, asAcme...)...)
	if !strings.Contains(out, "published acme/notes-kit@1.0.0") || !strings.Contains(out, "sha256 "+fileSHA256(t, pkg1)) ||
		!strings.Contains(out, "signer "+kp.ID) {
		t.Fatalf("publish printed\n%s", out)
	}
	runMinisign(t, minisignTool, "-Vm", pkg1+".index", "-p", kp.PublicKeyPath)

	// A version never changes.
	r.refused(core.EConflict, append([]string{"template", "publish", "--dir", dir}, asAcme...)...)

	// A key the publisher does not have signs nothing.
	other, err := author.Keygen(filepath.Join(keys, "other"), "")
	if err != nil {
		t.Fatal(err)
	}
	edit("1.1.0", ">=0.1 <1")
	r.must("template", "pack", "--dir", dir)
	pkg2 := filepath.Join(dir, "dist", "acme-notes-kit-1.1.0.relaypkg")
	otherSig := filepath.Join(keys, "other.minisig")
	runMinisign(t, minisignTool, "-Sm", pkg2+".index", "-s", other.SecretKeyPath, "-x", otherSig)
	err = r.refused(core.ESignerUnknown, append([]string{"template", "publish", pkg2, "--signature", otherSig}, asAcme...)...)
	if !strings.Contains(err.Error(), otherSig) {
		t.Errorf("the refusal does not name the signature's file: %v", err)
	}

	// A range that only yanked versions fit resolves to nothing.
	edit("1.2.0", "~0.1")
	r.must("template", "pack", "--dir", dir)
	out, errOut, err := r.run(append([]string{"template", "publish", "--dir", dir, "--key", kp.SecretKeyPath}, asAcme...)...)
	if core.ErrorCode(err) != core.ETemplateInvalid || !strings.Contains(errOut, "/connectors/0/version:") {
		t.Fatalf("a template on a yanked version: %v\n%s%s", err, out, errOut)
	}

	// yank, by the template that DIR's template.json names; the registry
	// shows it yanked, and each kind is yanked by its own command.
	r.refused(core.EInvalid, append([]string{"template", "yank", "0.2.0", "--reason", "no", "--package", "acme/notes"}, asAcme...)...)
	r.refused(core.EInvalid, append([]string{"connector", "yank", "1.0.0", "--reason", "no", "--package", "acme/notes-kit"}, asAcme...)...)
	out = r.must(append([]string{"template", "yank", "1.0.0", "--reason", "superseded", "--dir", dir}, asAcme...)...)
	if !strings.Contains(out, "yanked acme/notes-kit@1.0.0") {
		t.Errorf("yank printed\n%s", out)
	}
	r.refused(core.ENotFound, append([]string{"template", "yank", "1.0.0", "--reason", "again", "--dir", dir}, asAcme...)...)
	resp, err := http.Get(url + "/v1/registry/packages/acme/notes-kit/versions/1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v registry.VersionDetail
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET the version: %d %v", resp.StatusCode, err)
	}
	if v.Kind != "template" || v.Yanked == nil || v.Yanked.Reason != "superseded" || v.Signer != kp.ID || v.SHA256 != fileSHA256(t, pkg1) {
		t.Errorf("the version the registry shows: %+v", v)
	}
}
