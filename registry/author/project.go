// Package author is the connector author's local path, from an empty
// folder to a package ready to sign: Init writes a new connector module,
// Test runs its conformance kit, Build compiles its native binaries and its
// WASM module, Pack makes the package (registry/relaypkg), PackTemplate
// makes a marketplace template's, Keygen makes a publisher's minisign key
// pair and Sign signs a package's index with it. `relay connector …`,
// `relay template pack` and `relay publisher keygen` call these; each
// works on its own, on plain folders and files, with the go tool on PATH.
package author

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/registry/relaypkg"
)

// ProjectFile is the file, at a connector module's root, that says which
// package the module builds and for which platforms.
const ProjectFile = "relay.json"

// Project is a connector module's relay.json.
type Project struct {
	// Package is the package's name, publisher/name. The connector's
	// manifest must have the same name.
	Package string `json:"package"`
	// Main is the main package to build, relative to the module's root:
	// "." unless the author moved it.
	Main string `json:"main,omitempty"`
	// Platforms are the os/arch pairs to build native binaries for.
	Platforms []string `json:"platforms"`
	// WASM says whether to build the WASM module too; the default is yes.
	// A connector that needs raw TCP (SMTP, say) works natively only.
	WASM *bool `json:"wasm,omitempty"`
}

// BuildsWASM reports whether the project builds a WASM module.
func (p *Project) BuildsWASM() bool { return p.WASM == nil || *p.WASM }

// MainPackage is the main package to build, "." by default.
func (p *Project) MainPackage() string {
	if p.Main == "" {
		return "."
	}
	return p.Main
}

// Name is the connector's name: the second half of the package name.
func (p *Project) Name() string {
	_, name, _ := strings.Cut(p.Package, "/")
	return name
}

// HostPlatform is the os/arch this program runs on, which is what a build
// can run to ask the connector for its manifest.
func HostPlatform() string { return runtime.GOOS + "/" + runtime.GOARCH }

// DefaultPlatforms are the platforms a new module builds for: the host's,
// so that the author can run the binary in the package, and Linux on amd64
// and arm64, where Relay servers run (and where the native sandbox is).
// A host platform a package cannot carry is left out.
func DefaultPlatforms() []string {
	list := []string{"linux/amd64", "linux/arm64"}
	if CheckPlatform(HostPlatform()) == nil {
		list = append(list, HostPlatform())
	}
	slices.Sort(list)
	return slices.Compact(list)
}

// CheckPlatform reports whether p is an os/arch pair a package may carry a
// native binary for; EInvalid otherwise.
func CheckPlatform(p string) error { return relaypkg.CheckPlatform(p) }

// LoadProject reads and checks dir's relay.json.
func LoadProject(dir string) (*Project, error) {
	path := filepath.Join(dir, ProjectFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, iofs.ErrNotExist) {
		return nil, core.Errorf(core.ENotFound, "%s has no %s: is it a connector module? Make one with `relay connector init`, or pass --dir", dir, ProjectFile)
	} else if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var p Project
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, core.Errorf(core.EInvalid, "%s: %v", path, err)
	}
	if err := p.check(); err != nil {
		return nil, core.Errorf(core.EInvalid, "%s: %s", path, core.ErrorMessage(err))
	}
	return &p, nil
}

func (p *Project) check() error {
	if err := CheckName(p.Package); err != nil {
		return err
	}
	if p.Main != "" && (filepath.IsAbs(p.Main) || !strings.HasPrefix(p.Main, ".")) {
		return core.Errorf(core.EInvalid, "main %q: want the main package's folder relative to the module, such as . or ./cmd/%s", p.Main, p.Name())
	}
	for _, pl := range p.Platforms {
		if err := CheckPlatform(pl); err != nil {
			return err
		}
	}
	if len(p.Platforms) == 0 && !p.BuildsWASM() {
		return core.Errorf(core.EInvalid, "no platforms and no WASM module: a package needs at least one form of the connector")
	}
	return nil
}

// CheckName reports whether pkg may name a new connector: a package name
// (relaypkg.CheckName) whose connector name is also one a manifest takes,
// at least two characters long.
func CheckName(pkg string) error {
	if err := relaypkg.CheckName(pkg); err != nil {
		return err
	}
	if _, name, _ := strings.Cut(pkg, "/"); len(name) < 2 {
		return core.Errorf(core.EInvalid, "package name %q: the connector's name, after the slash, needs at least two characters", pkg)
	}
	return nil
}

// writeFileAtomic writes data to path through a temporary file in the same
// folder, so that path holds the old bytes or the new ones, never a part.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
