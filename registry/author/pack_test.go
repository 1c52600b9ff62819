package author

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/registry/relaypkg"
	"github.com/relayhq/relay/sdk/connector"
	"github.com/relayhq/relay/sdk/manifest"
)

// wasmManifest is the manifest the SDK makes of a one-action connector
// named name, for runtime wasm.
func wasmManifest(t *testing.T, name string) []byte {
	t.Helper()
	s, err := connector.NewServer(&connector.Connector{
		Name: name, Version: "0.3.0", Title: "Notes", License: "Apache-2.0",
		Actions: []connector.Action{connector.NewAction(connector.ActionSpec{Name: "add", Title: "Add", SideEffect: connector.Write},
			nil, func(context.Context, connector.Request[struct{}]) (struct{}, error) { return struct{}{}, nil })},
	}, manifest.RuntimeWASM)
	if err != nil {
		t.Fatal(err)
	}
	return s.Manifest()
}

// testModule writes a connector module's packing inputs: relay.json, README,
// LICENSE, and a build in dist/ (a manifest from the SDK; the module's
// bytes matter to no packer).
func testModule(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	write := func(name, data string) {
		t.Helper()
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(ProjectFile, `{"package":"acme/notes","platforms":["linux/amd64"]}`)
	write("README.md", "# acme/notes\n")
	write("LICENSE", "Apache-2.0\n")
	write("dist/manifest.json", string(wasmManifest(t, "notes")))
	write("dist/connector.wasm", "\x00asm\x01\x00\x00\x00")
	write("dist/native/linux-amd64/connector", "\x7fELF")
	return dir
}

// Pack writes the package and its index beside it, the same bytes every
// time, and the index is what Inspect finds in the package.
func TestPack(t *testing.T) {
	dir := testModule(t)
	res, err := Pack(PackOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if res.Path != filepath.Join(dir, "acme-notes-0.3.0.relaypkg") || res.IndexPath != res.Path+".index" {
		t.Fatalf("wrote %s and %s", res.Path, res.IndexPath)
	}
	pkg, _ := os.ReadFile(res.Path)
	index, _ := os.ReadFile(res.IndexPath)
	if digest(pkg) != res.SHA256 || digest(index) != res.IndexSHA256 {
		t.Error("the digests printed are not the files'")
	}
	p, err := relaypkg.Inspect(bytes.NewReader(pkg), relaypkg.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p.IndexBytes, index) || p.Index.File(relaypkg.ChangelogPath) != nil || p.Index.File(relaypkg.WASMPath) == nil {
		t.Errorf("the package holds %+v", p.Index.Files)
	}

	// Again, into a folder, with a changelog now: another index, which
	// the signature of the first no longer signs.
	if err := os.WriteFile(filepath.Join(dir, "CHANGELOG.md"), []byte("## 0.3.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(res.IndexPath+SignatureSuffix, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	again, err := Pack(PackOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if again.StaleSignature != res.IndexPath+SignatureSuffix || again.Index.File(relaypkg.ChangelogPath) == nil {
		t.Errorf("repacked with a changelog: %+v", again)
	}
	out := t.TempDir()
	third, err := Pack(PackOptions{Dir: dir, Out: out})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(again.Path)
	b, _ := os.ReadFile(third.Path)
	if third.Path != filepath.Join(out, "acme-notes-0.3.0.relaypkg") || !bytes.Equal(a, b) || third.StaleSignature != "" {
		t.Errorf("packing the same files twice: %s, same bytes %v", third.Path, bytes.Equal(a, b))
	}
}

// Pack refuses a build it cannot make a package of, saying what to do.
func TestPackRefuses(t *testing.T) {
	for _, c := range []struct {
		name   string
		change func(dir string) error
		code   string
		says   string
	}{
		{"no build", func(dir string) error { return os.RemoveAll(filepath.Join(dir, "dist")) }, core.ENotFound, "relay connector build"},
		{"no manifest", func(dir string) error { return os.Remove(filepath.Join(dir, "dist", "manifest.json")) }, core.EInvalid, "has no manifest.json"},
		{"a stray file", func(dir string) error { return os.WriteFile(filepath.Join(dir, "dist", "notes.txt"), nil, 0o644) }, core.EInvalid, "notes.txt"},
		{"an unknown platform", func(dir string) error {
			if err := os.MkdirAll(filepath.Join(dir, "dist", "native", "plan9-386"), 0o755); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, "dist", "native", "plan9-386", "connector"), nil, 0o755)
		}, core.EInvalid, "native/plan9-386/connector"},
		{"a link", func(dir string) error {
			return os.Symlink("/etc/passwd", filepath.Join(dir, "dist", "connector.wasm.link"))
		}, core.EInvalid, "connector.wasm.link"},
		{"no license", func(dir string) error { return os.Remove(filepath.Join(dir, "LICENSE")) }, core.EInvalid, "has no LICENSE"},
		{"no readme", func(dir string) error { return os.Remove(filepath.Join(dir, "README.md")) }, core.EInvalid, "has no README.md"},
		{"another connector's manifest", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "dist", "manifest.json"), wasmManifest(t, "other"), 0o644)
		}, core.EInvalid, "manifest"},
		{"no relay.json", func(dir string) error { return os.Remove(filepath.Join(dir, ProjectFile)) }, core.ENotFound, "relay connector init"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := testModule(t)
			if err := c.change(dir); err != nil {
				t.Fatal(err)
			}
			_, err := Pack(PackOptions{Dir: dir})
			wantCode(t, err, c.code)
			if !strings.Contains(err.Error(), c.says) {
				t.Errorf("the error %q does not say %q", err, c.says)
			}
			if matches, _ := filepath.Glob(filepath.Join(dir, "*.relaypkg*")); len(matches) > 0 {
				t.Errorf("a refused pack wrote %v", matches)
			}
		})
	}
}

// A build never replaces a folder that holds anything but an earlier
// build, and refuses a platform a package cannot carry, both before it
// compiles anything.
func TestBuildRefuses(t *testing.T) {
	dir := testModule(t)
	mine := filepath.Join(dir, "mine")
	if err := os.MkdirAll(filepath.Join(mine, "native", "linux-amd64"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mine, "thesis.tex"), []byte("years of work"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Build(context.Background(), BuildOptions{Dir: dir, Out: mine})
	wantCode(t, err, core.EConflict)
	if !strings.Contains(err.Error(), "thesis.tex") {
		t.Errorf("the error %q does not name the file", err)
	}
	if data, _ := os.ReadFile(filepath.Join(mine, "thesis.tex")); string(data) != "years of work" {
		t.Fatal("build touched a folder that was not a build")
	}
	_, err = Build(context.Background(), BuildOptions{Dir: dir, Platforms: []string{"linux/amd64", "plan9/386"}})
	wantCode(t, err, core.EInvalid)

	// An earlier build (dist/ here) may be replaced; a module without
	// relay.json is not one to build.
	if err := checkReplaceable(filepath.Join(dir, "dist")); err != nil {
		t.Errorf("an earlier build is not replaceable: %v", err)
	}
	_, err = Build(context.Background(), BuildOptions{Dir: t.TempDir()})
	wantCode(t, err, core.ENotFound)
}

// PackTemplate packs template.json with its documents into DIR/dist, the
// same bytes every time, as a template package; it runs the check it is
// given first, and refuses a folder without a template or a README.
func TestPackTemplate(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, err := PackTemplate(TemplatePackOptions{Dir: dir})
	wantCode(t, err, core.ENotFound)
	write("template.json", `{"name": "acme/kit", "version": "1.2.0"}`)
	_, err = PackTemplate(TemplatePackOptions{Dir: dir})
	wantCode(t, err, core.EInvalid)
	write("README.md", "# Kit\n")
	write("CHANGELOG.md", "## 1.2.0\n")

	res, err := PackTemplate(TemplatePackOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if res.Path != filepath.Join(dir, DistDir, "acme-kit-1.2.0.relaypkg") || res.Index.KindOf() != relaypkg.KindTemplate ||
		res.Index.File(relaypkg.ChangelogPath) == nil || res.Index.File(relaypkg.LicensePath) != nil {
		t.Fatalf("packed %s: %+v", res.Path, res.Index)
	}
	out := filepath.Join(t.TempDir(), "new")
	again, err := PackTemplate(TemplatePackOptions{Dir: dir, Out: out})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(res.Path)
	b, _ := os.ReadFile(again.Path)
	if again.Path != filepath.Join(out, "acme-kit-1.2.0.relaypkg") || !bytes.Equal(a, b) || again.SHA256 != res.SHA256 {
		t.Errorf("packing the same files twice: %s, same bytes %v", again.Path, bytes.Equal(a, b))
	}

	refuse := core.Errorf(core.ETemplateInvalid, "no")
	_, err = PackTemplate(TemplatePackOptions{Dir: dir, Out: t.TempDir(), Check: func([]byte) error { return refuse }})
	wantCode(t, err, core.ETemplateInvalid)
	write("template.json", `{"name": "acme/kit", "version": "v1"}`)
	_, err = PackTemplate(TemplatePackOptions{Dir: dir, Out: t.TempDir()})
	wantCode(t, err, core.EInvalid)
}
