package author

import (
	"go/format"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/modfile"

	"github.com/relayhq/relay/core"
)

// sdkDir is the SDK module of this repository.
func sdkDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../../sdk")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := core.ErrorCode(err); got != code {
		t.Fatalf("error %v (code %s), want code %s", err, got, code)
	}
}

// Init writes a complete module, gofmt-clean, that requires the SDK from
// the folder given (as an absolute path, read from the module's folder),
// and a relay.json that LoadProject reads back.
func TestInitWritesAModule(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "notes")
	// An empty folder the author made first is fine.
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(filepath.Join(sdkDir(t), "connector")) // a relative --sdk
	p, err := Init(InitOptions{Package: "acme/notes", Dir: dir, SDK: ".."})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{".gitignore", "CHANGELOG.md", "LICENSE", "README.md", "connector.go", "connector_test.go", "go.mod", "go.sum", "main.go", "relay.json"}
	if !slices.Equal(names, want) {
		t.Fatalf("files %v, want %v", names, want)
	}
	if leftovers, _ := os.ReadDir(parent); len(leftovers) != 1 {
		t.Errorf("init left %d entries beside the module", len(leftovers))
	}
	for _, name := range []string{"connector.go", "main.go", "connector_test.go"} {
		src, _ := os.ReadFile(filepath.Join(dir, name))
		formatted, err := format.Source(src)
		if err != nil || string(formatted) != string(src) {
			t.Errorf("%s is not gofmt-clean Go: %v", name, err)
		}
	}
	connector, _ := os.ReadFile(filepath.Join(dir, "connector.go"))
	for _, s := range []string{`Name:        "notes"`, `Publisher:   "acme"`, `Title:       "Notes"`, `License:     "Apache-2.0"`} {
		if !strings.Contains(string(connector), s) {
			t.Errorf("connector.go lacks %s", s)
		}
	}
	license, _ := os.ReadFile(filepath.Join(dir, "LICENSE"))
	if !strings.Contains(string(license), "Apache License\n                           Version 2.0, January 2004") {
		t.Error("LICENSE is not the Apache License 2.0")
	}

	raw, _ := os.ReadFile(filepath.Join(dir, "go.mod"))
	mod, err := modfile.Parse("go.mod", raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	if mod.Module.Mod.Path != "example.com/acme/notes" || len(mod.Replace) != 1 ||
		mod.Replace[0].Old.Path != SDKModule || mod.Replace[0].New.Path != sdkDir(t) || mod.Go.Version != "1.26.0" {
		t.Errorf("go.mod:\n%s", raw)
	}

	read, err := LoadProject(dir)
	if err != nil {
		t.Fatal(err)
	}
	if read.Package != "acme/notes" || !slices.Equal(read.Platforms, DefaultPlatforms()) || !read.BuildsWASM() || read.MainPackage() != "." || p.Package != read.Package {
		t.Errorf("relay.json reads back as %+v", read)
	}
	for _, pl := range []string{"linux/amd64", "linux/arm64", HostPlatform()} {
		if !slices.Contains(read.Platforms, pl) {
			t.Errorf("the default platforms %v lack %s", read.Platforms, pl)
		}
	}
}

// Init refuses, before writing anything, a name a package or a manifest
// cannot have, a folder with something in it, and a folder that is not
// the SDK.
func TestInitRefuses(t *testing.T) {
	parent := t.TempDir()
	full := filepath.Join(parent, "full")
	if err := os.MkdirAll(full, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(full, "keep.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(parent, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	sdk := sdkDir(t)
	for _, c := range []struct {
		name string
		opts InitOptions
		code string
		says string
	}{
		{"no publisher", InitOptions{Package: "notes"}, core.EInvalid, "publisher/name"},
		{"upper case", InitOptions{Package: "Acme/notes"}, core.EInvalid, "lower-case"},
		{"three parts", InitOptions{Package: "acme/notes/x"}, core.EInvalid, "publisher/name"},
		{"doubled hyphen", InitOptions{Package: "acme/no--tes"}, core.EInvalid, "single hyphens"},
		{"one letter", InitOptions{Package: "acme/n"}, core.EInvalid, "two characters"},
		{"bad module", InitOptions{Package: "acme/notes", Module: "a b"}, core.EInvalid, "module path"},
		{"no SDK", InitOptions{Package: "acme/notes"}, core.EInvalid, "RELAY_SDK"},
		{"not the SDK", InitOptions{Package: "acme/notes", SDK: filepath.Join(sdk, "..")}, core.EInvalid, "is not the module github.com/relayhq/relay/sdk"},
		{"no go.mod", InitOptions{Package: "acme/notes", SDK: parent}, core.EInvalid, "no readable go.mod"},
		{"folder not empty", InitOptions{Package: "acme/notes", Dir: full, SDK: sdk}, core.EConflict, "not an empty folder"},
		{"a file", InitOptions{Package: "acme/notes", Dir: file, SDK: sdk}, core.EConflict, "not an empty folder"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.opts.Dir == "" {
				c.opts.Dir = filepath.Join(parent, "new")
			}
			_, err := Init(c.opts)
			wantCode(t, err, c.code)
			if !strings.Contains(err.Error(), c.says) {
				t.Errorf("the error %q does not say %q", err, c.says)
			}
		})
	}
	entries, _ := os.ReadDir(parent)
	if len(entries) != 2 {
		t.Errorf("a refused init left %d entries (want the 2 made here)", len(entries))
	}
	if data, _ := os.ReadFile(filepath.Join(full, "keep.txt")); string(data) != "mine" {
		t.Error("init touched a file in a folder that was not empty")
	}
}

// relay.json is read strictly, each mistake said.
func TestLoadProjectRefuses(t *testing.T) {
	for _, c := range []struct {
		name, json, code, says string
	}{
		{"unknown field", `{"package":"acme/notes","platforms":["linux/amd64"],"version":"1.0.0"}`, core.EInvalid, "unknown field"},
		{"bad name", `{"package":"acme","platforms":["linux/amd64"]}`, core.EInvalid, "publisher/name"},
		{"bad platform", `{"package":"acme/notes","platforms":["linux/sparc"]}`, core.EInvalid, `platform "linux/sparc"`},
		{"nothing to build", `{"package":"acme/notes","platforms":[],"wasm":false}`, core.EInvalid, "at least one form"},
		{"absolute main", `{"package":"acme/notes","main":"/x","platforms":["linux/amd64"]}`, core.EInvalid, "relative"},
		{"not JSON", `{`, core.EInvalid, "relay.json"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, ProjectFile), []byte(c.json), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadProject(dir)
			wantCode(t, err, c.code)
			if !strings.Contains(err.Error(), c.says) {
				t.Errorf("the error %q does not say %q", err, c.says)
			}
		})
	}
	_, err := LoadProject(t.TempDir())
	wantCode(t, err, core.ENotFound)
	if !strings.Contains(err.Error(), "relay connector init") {
		t.Errorf("the error %q does not say what to do", err)
	}
}

func TestCheckPlatform(t *testing.T) {
	for _, p := range []string{"linux/amd64", "linux/arm64", "darwin/arm64", "windows/amd64", "freebsd/amd64"} {
		if err := CheckPlatform(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	for _, p := range []string{"", "linux", "linux/", "/amd64", "linux-amd64", "linux/amd64/v2", "plan9/386", "wasip1/wasm", "Linux/amd64"} {
		if err := CheckPlatform(p); core.ErrorCode(err) != core.EInvalid {
			t.Errorf("%q: %v, want invalid_request", p, err)
		}
	}
}
