package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/registry"
	"github.com/relayhq/relay/registry/author"
	"github.com/relayhq/relay/registry/relaypkg"
)

const notesManifest = `{"name": "notes", "version": %q, "runtime": "wasm", "protocol": 1, "title": "Notes",
  "description": "Takes notes", "config_schema": {"type": "object", "properties": {"token": {"type": "string", "x-relay-secret": true}}},
  "egress": ["api.notes.example"],
  "actions": [{"name": "add", "title": "Add a note", "side_effect": "write",
    "input_schema": {"type": "object"}, "output_schema": {"type": "object"}}]}`

// notesModule is a connector module as relay connector build leaves it,
// with a WASM module of bytes that do not compress (a package of two
// parts).
func notesModule(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		author.ProjectFile:          `{"package": "acme/notes", "platforms": [], "wasm": true}`,
		"README.md":                 "# Notes",
		"LICENSE":                   "MIT",
		"dist/" + relaypkg.WASMPath: "\x00asm\x01\x00\x00\x00" + string(randomBytes(600<<10)),
	}
	for name, data := range files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// packVersion builds version of the notes module and packs it, as
// relay connector build and pack would, and returns the package's path.
func packVersion(t *testing.T, dir, version string) string {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "dist", relaypkg.ManifestPath), fmt.Appendf(nil, notesManifest, version), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := author.Pack(author.PackOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return res.Path
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// TestPublishCLI is an author's path through a real server's registry
// with the CLI alone, on SQLite and PostgreSQL: register a publisher,
// publish a version signed as it goes and one signed by the minisign
// tool, rotate keys, yank, deprecate, search and show; and the
// registry's refusals, each with its code.
func TestPublishCLI(t *testing.T) {
	withRegistry(t, testPublishCLI)
}

func testPublishCLI(t *testing.T, minisignTool, url, adminKey string) {
	t.Setenv("HOME", t.TempDir()) // no ~/.relay/publisher.key but the test's
	r := registryCLI{t: t, flags: []string{"--registry-url", url}}
	cli, must, refused := r.run, r.must, r.refused
	minisign := func(args ...string) {
		t.Helper()
		runMinisign(t, minisignTool, args...)
	}

	keys := t.TempDir()
	kp, err := author.Keygen(filepath.Join(keys, "first"), "")
	if err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(t.TempDir(), "publisher.token")

	// Register, with a key that is not a workspace admin's, then with one.
	refused(core.EUnauthenticated, "publisher", "register", "acme", "--key", kp.PublicKeyPath, "--api-key", "rly_nope")
	out := must("publisher", "register", "acme", "--key", kp.PublicKeyPath, "--api-key", adminKey, "--token-file", tokenFile)
	if !strings.Contains(out, "registered publisher acme") || !strings.Contains(out, kp.ID) || strings.Contains(out, "rpt_") {
		t.Fatalf("register printed\n%s", out)
	}
	token, err := os.ReadFile(tokenFile)
	if fi, _ := os.Stat(tokenFile); err != nil || !bytes.HasPrefix(token, []byte("rpt_")) || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the token file: %v, %q, %v", err, token, fi.Mode())
	}
	refused(core.EConflict, "publisher", "register", "acme3", "--key", kp.PublicKeyPath, "--api-key", adminKey, "--token-file", tokenFile)
	t.Setenv("RELAY_API_KEY", adminKey)
	out = must("publisher", "register", "acme2", "--key", kp.PublicKeyPath)
	if !keyLine(out, "token rpt_") || !strings.Contains(out, "shown only this once") || !strings.Contains(out, "RELAY_PUBLISHER_TOKEN") {
		t.Fatalf("register printed\n%s", out)
	}
	os.Unsetenv("RELAY_API_KEY")
	// A name is taken once; relay/ is Relay's.
	refused(core.EConflict, "publisher", "register", "acme", "--key", kp.PublicKeyPath, "--api-key", adminKey)
	refused(core.EConflict, "publisher", "register", "relay", "--key", kp.PublicKeyPath, "--api-key", adminKey)

	// Publish the package pack made in the module, signed as it goes.
	mod := notesModule(t)
	pkg1 := packVersion(t, mod, "0.1.0")
	out = must("connector", "publish", "--dir", mod, "--key", kp.SecretKeyPath, "--token-file", tokenFile)
	if !strings.Contains(out, "published acme/notes@0.1.0") || !strings.Contains(out, "sha256 "+fileSHA256(t, pkg1)) || !strings.Contains(out, "signer "+kp.ID) {
		t.Fatalf("publish printed\n%s", out)
	}
	// What it signed, minisign verifies.
	if out, err := exec.Command(minisignTool, "-Vm", pkg1+".index", "-p", kp.PublicKeyPath).CombinedOutput(); err != nil ||
		!strings.Contains(string(out), "relaypkg acme/notes@0.1.0") {
		t.Fatalf("minisign -V of the signature publish made: %v\n%s", err, out)
	}
	// Versions never change; a token must be the publisher's.
	refused(core.EConflict, "connector", "publish", "--dir", mod, "--token-file", tokenFile)
	refused(core.EUnauthenticated, "connector", "publish", "--dir", mod, "--token", "rpt_"+strings.Repeat("a", 79))
	if _, _, err := cli("connector", "publish", "--dir", mod); exitCode(err) != 2 {
		t.Fatalf("publish without a token: %v (exit %d)", err, exitCode(err))
	}

	// The next version, signed by the minisign tool: publish takes the
	// signature beside the package (and has no key of its own to sign
	// with).
	t.Setenv("RELAY_PUBLISHER_KEY", filepath.Join(keys, "none.key"))
	pkg2 := packVersion(t, mod, "0.2.0")
	minisign("-Sm", pkg2+".index", "-s", kp.SecretKeyPath)
	out, errOut, err := cli("connector", "publish", "--dir", mod, "--token-file", tokenFile)
	if err != nil || !strings.Contains(out, "published acme/notes@0.2.0") || !strings.Contains(out, "signer "+kp.ID) ||
		!strings.Contains(errOut, "using the signature in "+pkg2+".index.minisig") {
		t.Fatalf("publish with minisign's signature: %v\n%s%s", err, out, errOut)
	}
	os.Unsetenv("RELAY_PUBLISHER_KEY")

	// A key the publisher does not have signs nothing, until it is
	// added; the first one, revoked, signs nothing more.
	other, err := author.Keygen(filepath.Join(keys, "second"), "")
	if err != nil {
		t.Fatal(err)
	}
	pkg3 := packVersion(t, mod, "0.3.0")
	otherSig := filepath.Join(keys, "other.minisig")
	minisign("-Sm", pkg3+".index", "-s", other.SecretKeyPath, "-x", otherSig)
	err = refused(core.ESignerUnknown, "connector", "publish", pkg3, "--signature", otherSig, "--token-file", tokenFile)
	if !strings.Contains(err.Error(), otherSig) {
		t.Errorf("the refusal does not name the signature's file: %v", err)
	}
	out = must("publisher", "key", "add", "--key", other.PublicKeyPath, "--dir", mod, "--token-file", tokenFile)
	if !strings.Contains(out, "added key "+other.ID+" to publisher acme") {
		t.Fatalf("key add printed\n%s", out)
	}
	out = must("connector", "publish", pkg3, "--signature", otherSig, "--token-file", tokenFile)
	if !strings.Contains(out, "published acme/notes@0.3.0") || !strings.Contains(out, "signer "+other.ID) {
		t.Fatalf("publish with the added key printed\n%s", out)
	}
	must("publisher", "key", "revoke", kp.ID, "--publisher", "acme", "--token-file", tokenFile)
	pkg4 := packVersion(t, mod, "0.4.0")
	refused(core.ESignerRevoked, "connector", "publish", pkg4, "--key", kp.SecretKeyPath, "--token-file", tokenFile)
	refused(core.EConflict, "publisher", "key", "revoke", other.ID, "--publisher", "acme", "--token-file", tokenFile)
	refused(core.EForbidden, "publisher", "key", "revoke", other.ID, "--publisher", "acme2", "--token-file", tokenFile)

	// Yank and deprecate, as the package of the module's relay.json or
	// as --package.
	if _, _, err := cli("connector", "yank", "0.1.0", "--dir", mod, "--token-file", tokenFile); exitCode(err) != 2 {
		t.Fatalf("yank without a reason: %v", err)
	}
	must("connector", "yank", "0.1.0", "--reason", "loses notes", "--dir", mod, "--token-file", tokenFile)
	refused(core.ENotFound, "connector", "yank", "0.1.0", "--reason", "again", "--dir", mod, "--token-file", tokenFile)
	refused(core.EForbidden, "connector", "yank", "0.1.0", "--reason", "not mine", "--package", "acme2/notes", "--token-file", tokenFile)
	must("connector", "deprecate", "--message", "use acme/notebook", "--package", "acme/notes", "--token-file", tokenFile)

	// Anyone reads.
	out = must("registry", "search", "NOTE")
	if !strings.Contains(out, "acme/notes") || !strings.Contains(out, "0.3.0") || !strings.Contains(out, "(deprecated) Takes notes") {
		t.Fatalf("search printed\n%s", out)
	}
	var found []registry.Package
	if err := json.Unmarshal([]byte(must("registry", "search", "-o", "json", "--publisher", "acme")), &found); err != nil || len(found) != 1 || found[0].Latest != "0.3.0" {
		t.Fatalf("search -o json: %+v %v", found, err)
	}
	if out, errOut, err := cli("registry", "search", "nothing-like-it"); err != nil || out != "" || !strings.Contains(errOut, "no package") {
		t.Fatalf("a search that finds nothing: %v\n%s%s", err, out, errOut)
	}
	out = must("registry", "show", "acme/notes")
	for _, want := range []string{`(?m)^latest +0\.3\.0$`, `(?m)^deprecated +use acme/notebook$`, `0\.1\.0 .*yanked: loses notes`,
		`actions +add +Add a note \(write\)`, `egress +api\.notes\.example`, `secrets +token`, `runtimes +wasm`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("show lacks %s:\n%s", want, out)
		}
	}
	var v registry.VersionDetail
	if err := json.Unmarshal([]byte(must("registry", "show", "acme/notes@0.1.0", "-o", "json")), &v); err != nil ||
		v.Yanked == nil || v.Yanked.Reason != "loses notes" || v.SHA256 != fileSHA256(t, pkg1) || v.Signer != kp.ID {
		t.Fatalf("show -o json: %+v %v", v, err)
	}
	out = must("registry", "show", "acme/notes@0.3.0")
	if !regexp.MustCompile(`(?m)^signer +`+other.ID+`$`).MatchString(out) || !regexp.MustCompile(`(?m)^sha256 +`+fileSHA256(t, pkg3)+`$`).MatchString(out) {
		t.Errorf("show of a version:\n%s", out)
	}
	refused(core.ENotFound, "registry", "show", "acme/none")
	refused(core.ENotFound, "registry", "show", "acme/notes@9.9.9")

	// A template on acme/notes: its range resolves among the versions
	// not yanked, and its preset is checked against that version.
	tplDir := t.TempDir()
	writeTemplate := func(name, rng, action string) string {
		path := filepath.Join(tplDir, name)
		doc := fmt.Sprintf(`{"name": "acme/notes-kit", "version": "1.0.0", "title": "Notes kit", "summary": "Jot things down.",
		  "connectors": [{"package": "acme/notes", "version": %q}],
		  "connections": [{"name": "main", "connector": "notes", "title": "Your notes", "fields": [{"field": "token", "label": "API token"}]}],
		  "actions": [{"name": "jot", "title": "Jot", "connection": "main", "action": %q, "params": {"tag": "kit"},
		    "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}, "fields": {"text": "/text"}}]}`, rng, action)
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	out = must("template", "validate", writeTemplate("ok.json", ">=0.1 <1", "add"))
	for _, want := range []string{`acme/notes-kit@1\.0\.0 is a valid template`, `connector +acme/notes@0\.3\.0 +as notes`,
		`egress +api\.notes\.example`, `secret +main\.token +API token`, `preset +jot +notes\.add \(write\)`, `digest +[0-9a-f]{64}`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("template validate lacks %s:\n%s", want, out)
		}
	}
	var tv struct {
		Valid    bool
		Resolved map[string]string
		Digest   string
	}
	if err := json.Unmarshal([]byte(must("template", "validate", writeTemplate("ok.json", ">=0.1 <1", "add"), "-o", "json")), &tv); err != nil ||
		!tv.Valid || tv.Resolved["acme/notes"] != "0.3.0" || len(tv.Digest) != 64 {
		t.Errorf("template validate -o json: %+v %v", tv, err)
	}
	out, _, err = cli("template", "validate", writeTemplate("bad.json", ">=0.1 <1", "remove"))
	if core.ErrorCode(err) != core.ETemplateInvalid || !strings.Contains(out, `/actions/0/action: notes@0.3.0 has no action "remove"`) {
		t.Errorf("a preset of an action the version lacks: %v\n%s", err, out)
	}
	refused(core.ENotFound, "template", "validate", writeTemplate("yanked.json", "~0.1", "add"))
	must("template", "validate", writeTemplate("offline.json", "~0.1", "remove"), "--offline")
}

// keyLine reports whether out has a line starting with prefix.
func keyLine(out, prefix string) bool {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}
