package author

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/registry/relaypkg"
	"github.com/relayhq/relay/sdk/manifest"
)

// DistDir is where Build writes, in the module, unless told otherwise.
const DistDir = "dist"

// BuildOptions say what to build.
type BuildOptions struct {
	// Dir is the connector module's root, holding relay.json.
	Dir string
	// Platforms, when not nil, replace relay.json's list.
	Platforms []string
	// Out is the folder to write the build to; default Dir/dist. It is
	// replaced whole, so it must be missing or hold a previous build.
	Out string
	// Log gets the go tool's messages and a line per step.
	Log io.Writer
}

// BuildResult is what Build wrote.
type BuildResult struct {
	Dist     string
	Project  *Project
	Manifest *manifest.Manifest
	// Files are the members written, relaypkg paths, sorted.
	Files []string
}

// specTimeout bounds the host binary's `spec`: it prints and exits.
const specTimeout = 30 * time.Second

// Build compiles the connector in opts.Dir into opts.Out, laid out as the
// members of its package: native/<os>-<arch>/connector for each platform,
// connector.wasm (GOOS=wasip1 GOARCH=wasm, a reactor) unless relay.json
// says "wasm": false, and manifest.json. Binaries that cannot run here
// cannot say what they are, so the manifest is the host build's: `spec
// wasm` when a module is built (a version that ships both forms installs
// the WASM form's manifest), `spec` otherwise. Every build is -trimpath
// and -buildvcs=false with CGO_ENABLED=0: static binaries that run on any
// machine of their platform, the same bytes whichever machine built them
// from the same source with the same Go.
func Build(ctx context.Context, opts BuildOptions) (*BuildResult, error) {
	p, err := LoadProject(opts.Dir)
	if err != nil {
		return nil, err
	}
	platforms := p.Platforms
	if opts.Platforms != nil {
		platforms = opts.Platforms
		if len(platforms) == 0 && !p.BuildsWASM() {
			return nil, core.Errorf(core.EInvalid, "no platforms and no WASM module: a package needs at least one form of the connector")
		}
	}
	for _, pl := range platforms {
		if err := CheckPlatform(pl); err != nil {
			return nil, err
		}
	}
	platforms = slices.Compact(slices.Sorted(slices.Values(platforms)))
	if opts.Out == "" {
		opts.Out = filepath.Join(opts.Dir, DistDir)
	}
	// The go tool runs in the module's folder: paths it is given must not
	// depend on ours.
	out, err := filepath.Abs(opts.Out)
	if err != nil {
		return nil, err
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if err := checkReplaceable(out); err != nil {
		return nil, err
	}
	parent := filepath.Dir(out)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	stage, err := os.MkdirTemp(parent, "."+filepath.Base(out)+".build-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(stage)
	if err := os.Chmod(stage, 0o755); err != nil {
		return nil, err
	}

	// The host's binary first: it is the one that can tell the manifest.
	host := HostPlatform()
	hostBin := filepath.Join(stage, ".host", "connector")
	if slices.Contains(platforms, host) {
		hostBin = filepath.Join(stage, filepath.FromSlash(nativeMember(host)))
	}
	if !slices.Contains(platforms, host) {
		fmt.Fprintf(opts.Log, "%s is not on the list: its binary is built for the manifest only\n", host)
	}
	res := &BuildResult{Dist: opts.Out, Project: p}
	for _, pl := range append([]string{host}, slices.DeleteFunc(slices.Clone(platforms), func(s string) bool { return s == host })...) {
		bin := hostBin
		if pl != host {
			bin = filepath.Join(stage, filepath.FromSlash(nativeMember(pl)))
		}
		goos, goarch, _ := strings.Cut(pl, "/")
		if err := goBuild(ctx, opts.Dir, p.MainPackage(), bin, goos, goarch, opts.Log); err != nil {
			return nil, err
		}
		if pl != host || slices.Contains(platforms, host) {
			res.Files = append(res.Files, nativeMember(pl))
		}
	}
	if p.BuildsWASM() {
		if err := goBuild(ctx, opts.Dir, p.MainPackage(), filepath.Join(stage, relaypkg.WASMPath), "wasip1", "wasm", opts.Log); err != nil {
			return nil, err
		}
		res.Files = append(res.Files, relaypkg.WASMPath)
	}

	spec, err := hostSpec(ctx, hostBin, p.BuildsWASM())
	if err != nil {
		return nil, err
	}
	m, err := manifest.Parse(spec)
	if err != nil {
		return nil, core.Errorf(core.EInvalid, "the connector's manifest does not check: %v", err)
	}
	if m.Name != p.Name() {
		return nil, core.Errorf(core.EInvalid, "the connector is named %q, but %s names the package %s: make Name in the code %q, or the package …/%s", m.Name, ProjectFile, p.Package, p.Name(), m.Name)
	}
	if err := relaypkg.CheckVersion(m.Version); err != nil {
		return nil, core.Errorf(core.EInvalid, "the connector's %s", core.ErrorMessage(err))
	}
	res.Manifest = m
	if err := os.WriteFile(filepath.Join(stage, relaypkg.ManifestPath), spec, 0o644); err != nil {
		return nil, err
	}
	res.Files = append(res.Files, relaypkg.ManifestPath)
	slices.Sort(res.Files)
	if err := os.RemoveAll(filepath.Join(stage, ".host")); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(out); err != nil {
		return nil, err
	}
	if err := os.Rename(stage, out); err != nil {
		return nil, err
	}
	return res, nil
}

// nativeMember is the package path of os/arch's binary.
func nativeMember(platform string) string {
	goos, goarch, _ := strings.Cut(platform, "/")
	return relaypkg.NativePath(goos, goarch)
}

// goBuild compiles the main package pkg of the module in dir for goos/goarch.
func goBuild(ctx context.Context, dir, pkg, out, goos, goarch string, log io.Writer) error {
	// -s -w: no symbol table or DWARF, a third off a native binary; a
	// panic still names its functions and lines. -buildvcs=false: the
	// bytes depend on the source, not on the commit it sits in or on
	// whether the work tree is clean, so a version packed again from
	// unchanged code is the same package (a registry refuses a version's
	// other bytes).
	flags := []string{"-trimpath", "-buildvcs=false", "-ldflags=-s -w"}
	if goos == "wasip1" {
		// A reactor: the host calls its exports; main never runs
		// (docs/wasm-abi.md).
		flags = append(flags, "-buildmode=c-shared")
	}
	fmt.Fprintf(log, "building for %s/%s: GOOS=%s GOARCH=%s CGO_ENABLED=0 go build %s %s\n",
		goos, goarch, goos, goarch, strings.Replace(strings.Join(flags, " "), "-s -w", "'-s -w'", 1), pkg)
	args := append(append([]string{"build"}, flags...), "-o", out, pkg)
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=0")
	cmd.Stdout = log
	cmd.Stderr = log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build for %s/%s: %w", goos, goarch, err)
	}
	return nil
}

// hostSpec asks the host's binary for its manifest: the WASM form's when
// wasm is set.
func hostSpec(ctx context.Context, bin string, wasm bool) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, specTimeout)
	defer cancel()
	args := []string{"spec"}
	if wasm {
		args = append(args, manifest.RuntimeWASM)
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, core.Errorf(core.EInvalid, "the connector did not print its manifest (`connector %s`): %v %s; does main call connector.Serve?",
			strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// checkReplaceable refuses to let a build replace a folder that holds
// anything but a previous build: an --out pointing at the wrong folder
// must not cost the author its files.
func checkReplaceable(dir string) error {
	fi, err := os.Lstat(dir)
	if errors.Is(err, iofs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	if !fi.IsDir() {
		return core.Errorf(core.EConflict, "%s is not a folder: choose another --out", dir)
	}
	var foreign []string
	err = filepath.WalkDir(dir, func(path string, d iofs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		rel = filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			if rel == "." || rel == "native" || (strings.HasPrefix(rel, "native/") && strings.Count(rel, "/") == 1) {
				return nil
			}
		case d.Type().IsRegular() && isMember(rel):
			return nil
		}
		foreign = append(foreign, rel)
		if d.IsDir() {
			return filepath.SkipDir
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(foreign) > 0 {
		return core.Errorf(core.EConflict, "%s holds files that no build made (%s): choose another --out, or move them", dir, strings.Join(foreign, ", "))
	}
	return nil
}

// isMember reports whether a dist file is one Build writes.
func isMember(rel string) bool {
	switch rel {
	case relaypkg.ManifestPath, relaypkg.WASMPath:
		return true
	}
	rest, ok := strings.CutPrefix(rel, "native/")
	if !ok {
		return false
	}
	dir, file, ok := strings.Cut(rest, "/")
	goos, goarch, _ := strings.Cut(dir, "-")
	return ok && file == "connector" && CheckPlatform(goos+"/"+goarch) == nil
}
