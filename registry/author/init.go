package author

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"text/template"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"

	"github.com/relayhq/relay/core"
)

// SDKModule is the module path of Relay's SDK, which a connector requires.
const SDKModule = "github.com/relayhq/relay/sdk"

// The files of a new connector module. Their templates use [[ ]], since Go
// composite literals are full of {{.
//
//go:embed scaffold
var scaffold embed.FS

// InitOptions say what connector module to make, and where.
type InitOptions struct {
	// Package is the package's name, publisher/name.
	Package string
	// Dir is the folder to make the module in. It must not exist, or be
	// empty.
	Dir string
	// Module is the Go module path; default example.com/<publisher>/<name>.
	Module string
	// SDK is the folder of Relay's SDK module (sdk/ in a clone of Relay):
	// the module requires the SDK through a replace directive pointing
	// there, since the SDK is on no module proxy yet.
	SDK string
}

// scaffoldFiles maps each file of a new module to its template in
// scaffold/.
var scaffoldFiles = []struct{ name, template string }{
	{"connector.go", "connector.go.tmpl"},
	{"main.go", "main.go.tmpl"},
	{"connector_test.go", "connector_test.go.tmpl"},
	{"README.md", "README.md.tmpl"},
	{"LICENSE", "LICENSE"},
	{"CHANGELOG.md", "CHANGELOG.md.tmpl"},
	{".gitignore", "gitignore.tmpl"},
}

// Init makes a new connector module in opts.Dir: a connector with one
// action, a test that runs the conformance kit on its native and WASM
// forms, README.md, LICENSE (Apache-2.0), CHANGELOG.md, relay.json, and a
// go.mod that requires the SDK from opts.SDK. go.sum starts as the SDK's,
// whose modules are the new module's too; Tidy then settles both. On
// failure, nothing is left behind.
func Init(opts InitOptions) (*Project, error) {
	if err := CheckName(opts.Package); err != nil {
		return nil, err
	}
	publisher, name, _ := strings.Cut(opts.Package, "/")
	if opts.Module == "" {
		opts.Module = "example.com/" + publisher + "/" + name
	}
	if err := module.CheckImportPath(opts.Module); err != nil {
		return nil, core.Errorf(core.EInvalid, "module path %q: %v", opts.Module, err)
	}
	if opts.Dir == "" {
		return nil, core.Errorf(core.EInvalid, "no folder to make the module in")
	}
	sdk, goVersion, sdkSum, err := readSDK(opts.SDK)
	if err != nil {
		return nil, err
	}
	empty, err := emptyOrMissing(opts.Dir)
	if err != nil {
		return nil, err
	}
	if !empty {
		return nil, core.Errorf(core.EConflict, "%s exists and is not an empty folder: choose another with --dir, or remove it", opts.Dir)
	}

	p := &Project{Package: opts.Package, Main: ".", Platforms: DefaultPlatforms(), WASM: new(true)}
	data := map[string]string{
		"Package":    opts.Package,
		"Publisher":  publisher,
		"Name":       name,
		"Title":      title(name),
		"FilePrefix": publisher + "-" + name,
		"Binary":     path.Base(opts.Module),
	}
	out := map[string][]byte{}
	for _, f := range scaffoldFiles {
		raw, err := scaffold.ReadFile("scaffold/" + f.template)
		if err != nil {
			return nil, err
		}
		if strings.HasSuffix(f.template, ".tmpl") {
			t, err := template.New(f.template).Delims("[[", "]]").Option("missingkey=error").Parse(string(raw))
			if err != nil {
				return nil, err
			}
			var b bytes.Buffer
			if err := t.Execute(&b, data); err != nil {
				return nil, err
			}
			raw = b.Bytes()
		}
		out[f.name] = raw
	}
	if out["go.mod"], err = goMod(opts.Module, goVersion, sdk); err != nil {
		return nil, err
	}
	out["go.sum"] = sdkSum
	if out[ProjectFile], err = json.MarshalIndent(p, "", "  "); err != nil {
		return nil, err
	}
	out[ProjectFile] = append(out[ProjectFile], '\n')
	if err := writeTree(opts.Dir, out); err != nil {
		return nil, fmt.Errorf("make %s: %w", opts.Dir, err)
	}
	return p, nil
}

// readSDK checks that dir is Relay's SDK module and returns its absolute
// path (a replace directive is read from the new module's folder), its go
// version, which the new module needs too, and its go.sum.
func readSDK(dir string) (abs, goVersion string, sum []byte, err error) {
	if dir == "" {
		return "", "", nil, core.Errorf(core.EInvalid, "no SDK folder given: pass --sdk or set RELAY_SDK to the sdk folder of a clone of Relay")
	}
	abs, err = filepath.Abs(dir)
	if err != nil {
		return "", "", nil, err
	}
	gomod := filepath.Join(abs, "go.mod")
	raw, err := os.ReadFile(gomod)
	if err != nil {
		return "", "", nil, core.Errorf(core.EInvalid, "the SDK folder %s has no readable go.mod (%v): pass --sdk or set RELAY_SDK to the sdk folder of a clone of Relay", dir, errors.Unwrap(err))
	}
	f, err := modfile.ParseLax(gomod, raw, nil)
	if err != nil || f.Module == nil || f.Module.Mod.Path != SDKModule {
		return "", "", nil, core.Errorf(core.EInvalid, "%s is not the module %s: pass --sdk or set RELAY_SDK to the sdk folder of a clone of Relay", gomod, SDKModule)
	}
	goVersion = "1.26.0"
	if f.Go != nil {
		goVersion = f.Go.Version
	}
	sum, err = os.ReadFile(filepath.Join(abs, "go.sum"))
	if err != nil && !errors.Is(err, iofs.ErrNotExist) {
		return "", "", nil, err
	}
	return abs, goVersion, sum, nil
}

// goMod is a new module's go.mod: it requires the SDK, replaced by the
// folder sdk.
func goMod(modulePath, goVersion, sdk string) ([]byte, error) {
	f := &modfile.File{}
	if err := f.AddModuleStmt(modulePath); err != nil {
		return nil, err
	}
	if err := f.AddGoStmt(goVersion); err != nil {
		return nil, err
	}
	if err := f.AddRequire(SDKModule, "v0.0.0"); err != nil {
		return nil, err
	}
	if err := f.AddReplace(SDKModule, "", sdk, ""); err != nil {
		return nil, err
	}
	return modfile.Format(f.Syntax), nil
}

// title is a connector's display name from its name: "status-page" gives
// "Status page".
func title(name string) string {
	s := strings.ReplaceAll(name, "-", " ")
	return strings.ToUpper(s[:1]) + s[1:]
}

// emptyOrMissing reports whether dir does not exist or is an empty folder.
func emptyOrMissing(dir string) (bool, error) {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, iofs.ErrNotExist):
		return true, nil
	case err != nil:
		if fi, serr := os.Stat(dir); serr == nil && !fi.IsDir() {
			return false, nil
		}
		return false, err
	}
	return len(entries) == 0, nil
}

// writeTree writes files into dir, which is missing or empty: into a
// folder beside it first, renamed into place once complete.
func writeTree(dir string, files map[string][]byte) error {
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".init-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(tmp, name), data, 0o644); err != nil {
			return err
		}
	}
	// An empty folder the author made for the module gives way to the
	// complete one; os.Remove refuses if anything appeared in it meanwhile.
	if err := os.Remove(dir); err != nil && !errors.Is(err, iofs.ErrNotExist) {
		return err
	}
	return os.Rename(tmp, dir)
}

// Tidy runs `go mod tidy` in dir, writing the go tool's messages to
// stderr. A new module needs it once: it lists the SDK's own requirements
// in go.mod and prunes go.sum to what the module uses.
func Tidy(ctx context.Context, dir string, stderr io.Writer) error {
	cmd := exec.CommandContext(ctx, "go", "mod", "tidy")
	cmd.Dir = dir
	cmd.Stdout = stderr
	cmd.Stderr = stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go mod tidy in %s: %w; the module is written: run `go mod tidy` there once the module proxy (GOPROXY) is reachable", dir, err)
	}
	return nil
}
