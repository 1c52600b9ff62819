package author

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"aead.dev/minisign"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/registry/relaypkg"
)

// minisignTool is the minisign program. CI installs it (Debian's
// minisign); without it the test fails, not skips, since it is the one
// proof that what Relay writes is what minisign reads.
func minisignTool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("minisign")
	if err != nil {
		t.Fatal("the minisign tool is missing; install it (Debian: apt-get install minisign)")
	}
	return path
}

// runTool runs a program and fails the test with its output if it fails.
func runTool(t *testing.T, stdin string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// An unencrypted key pair, in minisign's formats: private to its owner,
// never replaced, and one that the minisign tool and Relay both sign and
// verify with, either way round.
func TestKeygen(t *testing.T) {
	tool := minisignTool(t)
	dir := filepath.Join(t.TempDir(), "keys")
	kp, err := Keygen(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if kp.Encrypted || kp.SecretKeyPath != filepath.Join(dir, "publisher.key") || kp.PublicKeyPath != filepath.Join(dir, "publisher.pub") {
		t.Fatalf("%+v", kp)
	}
	for path, mode := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, kp.SecretKeyPath: 0o600, kp.PublicKeyPath: 0o644} {
		if fi, err := os.Stat(path); err != nil || fi.Mode() != mode {
			t.Errorf("%s: mode %v, want %v (%v)", path, fi.Mode(), mode, err)
		}
	}
	pubText, _ := os.ReadFile(kp.PublicKeyPath)
	pub, err := relaypkg.ParsePublicKey(string(pubText))
	if err != nil {
		t.Fatal(err)
	}
	if relaypkg.KeyID(pub.ID()) != kp.ID || relaypkg.PublicKeyLine(pub) != kp.PublicKey {
		t.Errorf("printed %s %s; the file holds %s", kp.ID, kp.PublicKey, pubText)
	}

	// Relay signs, minisign verifies.
	files := map[string][]byte{
		relaypkg.ManifestPath: wasmManifest(t, "notes"), relaypkg.WASMPath: []byte("\x00asm"),
		relaypkg.ReadmePath: []byte("# notes\n"), relaypkg.LicensePath: []byte("MIT\n"),
	}
	_, index, err := relaypkg.PackBytes("acme/notes", files)
	if err != nil {
		t.Fatal(err)
	}
	key, err := LoadSecretKey(kp.SecretKeyPath, "")
	if err != nil {
		t.Fatal(err)
	}
	sig, err := relaypkg.Sign(key, index)
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	indexPath := filepath.Join(work, "acme-notes-0.3.0.relaypkg.index")
	if err := os.WriteFile(indexPath, index, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(indexPath+".minisig", sig, 0o644); err != nil {
		t.Fatal(err)
	}
	runTool(t, "", tool, "-Vm", indexPath, "-p", kp.PublicKeyPath)

	// minisign signs with the same key file, Relay verifies.
	toolSig := filepath.Join(work, "tool.minisig")
	runTool(t, "", tool, "-S", "-s", kp.SecretKeyPath, "-m", indexPath, "-x", toolSig)
	raw, _ := os.ReadFile(toolSig)
	if err := relaypkg.Verify(pub, index, raw); err != nil {
		t.Errorf("Relay does not verify what minisign signed with the key: %v", err)
	}

	// Never replaced: not the pair, not either half.
	before, _ := os.ReadFile(kp.SecretKeyPath)
	_, err = Keygen(dir, "")
	wantCode(t, err, core.EConflict)
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, PublicKeyFile), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Keygen(other, "")
	wantCode(t, err, core.EConflict)
	if after, _ := os.ReadFile(kp.SecretKeyPath); !bytes.Equal(before, after) {
		t.Error("keygen replaced a secret key")
	}
	if _, err := os.Stat(filepath.Join(other, SecretKeyFile)); !errors.Is(err, os.ErrNotExist) {
		t.Error("keygen wrote half a key pair beside someone else's public key")
	}

	_, err = LoadSecretKey(kp.PublicKeyPath, "")
	wantCode(t, err, core.EInvalid)
	_, err = LoadSecretKey(filepath.Join(other, "none.key"), "")
	wantCode(t, err, core.ENotFound)
}

// An encrypted key needs its password, signs with it, and the minisign
// tool opens it with the same password. (Each opening is a scrypt with
// 1 GiB of memory, some 20 s under the race detector: hence the one.)
func TestKeygenEncrypted(t *testing.T) {
	tool := minisignTool(t)
	kp, err := Keygen(t.TempDir(), "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(kp.SecretKeyPath)
	if !kp.Encrypted || !minisign.IsEncrypted(raw) {
		t.Fatal("the key is not encrypted")
	}
	res, err := Pack(PackOptions{Dir: testModule(t)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Sign(res.Path, kp.SecretKeyPath, "")
	wantCode(t, err, core.EInvalid)
	if !strings.Contains(err.Error(), "RELAY_PUBLISHER_KEY_PASSWORD") {
		t.Errorf("the error %q does not say how to give the password", err)
	}
	s, err := Sign(res.Path, kp.SecretKeyPath, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if s.KeyID != kp.ID {
		t.Errorf("signed with %s, not %s", s.KeyID, kp.ID)
	}
	runTool(t, "", tool, "-Vm", res.IndexPath, "-p", kp.PublicKeyPath)
	toolSig := res.IndexPath + ".tool.minisig"
	runTool(t, "correct horse\n", tool, "-S", "-s", kp.SecretKeyPath, "-m", res.IndexPath, "-x", toolSig)
	runTool(t, "", tool, "-Vm", res.IndexPath, "-p", kp.PublicKeyPath, "-x", toolSig)
}

// Sign signs the index read from the package, writes the index beside it
// when it is missing, and refuses one that is another package's.
func TestSign(t *testing.T) {
	tool := minisignTool(t)
	dir := testModule(t)
	res, err := Pack(PackOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	kp, err := Keygen(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(res.IndexPath); err != nil {
		t.Fatal(err)
	}
	s, err := Sign(res.Path, kp.SecretKeyPath, "")
	if err != nil {
		t.Fatal(err)
	}
	if s.Path != res.Path+".index.minisig" || s.IndexPath != res.IndexPath || s.KeyID != kp.ID || s.Package != "acme/notes@0.3.0" {
		t.Errorf("%+v", s)
	}
	index, _ := os.ReadFile(res.IndexPath)
	if digest(index) != res.IndexSHA256 {
		t.Error("sign wrote another index than the package's")
	}
	out := runTool(t, "", tool, "-Vm", res.IndexPath, "-p", kp.PublicKeyPath)
	if !strings.Contains(out, "Trusted comment: relaypkg acme/notes@0.3.0") {
		t.Errorf("minisign says\n%s", out)
	}

	if err := os.WriteFile(res.IndexPath, []byte(`{"format":1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Sign(res.Path, kp.SecretKeyPath, "")
	wantCode(t, err, core.EConflict)

	_, err = Sign(filepath.Join(dir, "none.relaypkg"), kp.SecretKeyPath, "")
	wantCode(t, err, core.ENotFound)
	_, err = Sign(filepath.Join(dir, "README.md"), kp.SecretKeyPath, "")
	wantCode(t, err, core.EPackageCorrupt)
}

// Test runs the module's tests and passes go test's failure on, with its
// exit code; a folder that is no module is said to be one.
func TestTestPassesTheExitCodeOn(t *testing.T) {
	dir := t.TempDir()
	for name, data := range map[string]string{
		"go.mod":      "module example.com/failing\n\ngo 1.26.0\n",
		"x_test.go":   "package x\n\nimport \"testing\"\n\nfunc TestFails(t *testing.T) { t.Fatal(\"as it should\") }\n",
		"x.go":        "package x\n",
		"ignored.txt": "",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	err := Test(context.Background(), dir, []string{"-count=1"}, &out, &out)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(out.String(), "as it should") {
		t.Errorf("a failing test: %v\n%s", err, out.String())
	}
	out.Reset()
	err = Test(context.Background(), dir, []string{"-count=many"}, &out, &out)
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Errorf("go test with a flag value it does not take: %v\n%s", err, out.String())
	}
	err = Test(context.Background(), t.TempDir(), nil, &out, &out)
	wantCode(t, err, core.ENotFound)
}
