// Package catalog finds the connectors a server can run: Relay's own
// (built-ins, from the relay/… packages of the server's registry), one
// folder per connector version under the connectors dir, holding its
// manifest and its artifact, and the packages a workspace installed. The
// runtime checks an artifact's SHA-256 before every start or load.
//
// The connectors dir:
//
//	<dir>/<name>/<version>/manifest.json
//	<dir>/<name>/<version>/connector               native binary
//	<dir>/<name>/<version>/connector.sha256        its SHA-256, hex
//	<dir>/<name>/<version>/connector.wasm          WebAssembly module
//	<dir>/<name>/<version>/connector.wasm.sha256   its SHA-256, hex
//
// A version ships one form or both; the manifest's runtime names one it
// ships, the form a new connection gets by default.
package catalog

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	mmsemver "github.com/Masterminds/semver/v3"
	"golang.org/x/mod/semver"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/sdk/manifest"
)

// File names inside a connector version's folder.
const (
	ManifestFile = "manifest.json"
	NativeFile   = "connector"
	WASMFile     = "connector.wasm"
	DigestSuffix = ".sha256"
)

// Entry is one connector version.
type Entry struct {
	Ref core.ConnectorRef
	// Package is the registry package of a version installed from the
	// registry (and Ref.Name with it); empty for the built-ins and the
	// connectors dir's.
	Package string
	// Builtin is the first-party package (relay/…) a built-in version
	// comes from; its Ref.Name is the short name every workspace uses.
	Builtin  string
	Manifest *manifest.Manifest
	Dir      string
	// Native is the plugin binary, WASM the WebAssembly module; nil when
	// the version does not ship that form.
	Native *Artifact
	WASM   *Artifact
}

// Runtimes returns the forms the version ships, the manifest's first.
func (e *Entry) Runtimes() []string {
	var out []string
	if e.Native != nil {
		out = append(out, core.RuntimeNative)
	}
	if e.WASM != nil {
		out = append(out, core.RuntimeWASM)
	}
	if len(out) == 2 && e.Manifest.Runtime == core.RuntimeWASM {
		out[0], out[1] = out[1], out[0]
	}
	return out
}

// Ships reports whether the version ships the form runtime.
func (e *Entry) Ships(runtime string) bool {
	return (runtime == core.RuntimeNative && e.Native != nil) || (runtime == core.RuntimeWASM && e.WASM != nil)
}

// RefFor is the version's ref for a call on the form runtime.
func (e *Entry) RefFor(runtime string) core.ConnectorRef {
	ref := e.Ref
	ref.Runtime = runtime
	return ref
}

// Artifact is a file to run and the digest it must have.
type Artifact struct {
	Path   string
	SHA256 []byte
}

// Catalog is the set of connector versions a server runs: those found in
// its connectors dir, which every workspace may connect, and, through its
// source (SetSource), those installed from the registry, each workspace
// its own, which change while the server runs.
type Catalog struct {
	// byName are the versions every workspace may connect, newest first:
	// the built-ins' and the connectors dir's. It is filled before the
	// catalog is used and only read after, so a lookup is a map's.
	byName map[string][]*Entry

	source core.ConnectorSource
	mu     sync.Mutex
	// installed caches the source's entries by ref (without form); an
	// installed version never changes.
	installed map[core.ConnectorRef]*Entry
}

// Load reads every <name>/<version> folder under dir. A folder that is not
// a valid connector version is skipped and reported in problems, so that one
// bad connector does not keep the server from starting. A missing dir is an
// empty catalog.
func Load(dir string) (c *Catalog, problems []error) {
	c = &Catalog{byName: map[string][]*Entry{}}
	names, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	} else if err != nil {
		return c, []error{err}
	}
	for _, n := range names {
		if !n.IsDir() {
			continue
		}
		versions, err := os.ReadDir(filepath.Join(dir, n.Name()))
		if err != nil {
			problems = append(problems, err)
			continue
		}
		for _, v := range versions {
			if !v.IsDir() {
				continue
			}
			e, err := loadEntry(filepath.Join(dir, n.Name(), v.Name()), n.Name(), v.Name())
			if err != nil {
				problems = append(problems, err)
				continue
			}
			c.byName[e.Ref.Name] = append(c.byName[e.Ref.Name], e)
		}
	}
	for _, list := range c.byName {
		sortNewestFirst(list)
	}
	return c, problems
}

func loadEntry(dir, name, version string) (*Entry, error) {
	raw, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return nil, fmt.Errorf("connector %s@%s: %w", name, version, err)
	}
	m, err := manifest.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("connector %s@%s: %w", name, version, err)
	}
	if m.Name != name || m.Version != version {
		return nil, fmt.Errorf("connector folder %s/%s holds the manifest of %s@%s", name, version, m.Name, m.Version)
	}
	e := &Entry{Ref: core.ConnectorRef{Name: name, Version: version}, Manifest: m, Dir: dir}
	for _, form := range []struct {
		file     string
		artifact **Artifact
		runtime  string
	}{{NativeFile, &e.Native, manifest.RuntimeNative}, {WASMFile, &e.WASM, manifest.RuntimeWASM}} {
		path := filepath.Join(dir, form.file)
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) && m.Runtime != form.runtime {
			continue // this form is not shipped, and the manifest does not name it
		}
		if *form.artifact, err = loadArtifact(path); err != nil {
			return nil, fmt.Errorf("connector %s@%s: %w", name, version, err)
		}
	}
	return e, nil
}

// loadArtifact reads the digest that goes with path. The artifact itself is
// hashed by the runtime at each start, not here.
func loadArtifact(path string) (*Artifact, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(path + DigestSuffix)
	if err != nil {
		return nil, err
	}
	fields := strings.Fields(string(raw)) // accepts sha256sum's "<hex>  <file>" too
	if len(fields) == 0 {
		return nil, fmt.Errorf("%s%s is empty", path, DigestSuffix)
	}
	sum, err := hex.DecodeString(fields[0])
	if err != nil || len(sum) != 32 {
		return nil, fmt.Errorf("%s%s does not hold a SHA-256 in hex", path, DigestSuffix)
	}
	return &Artifact{Path: path, SHA256: sum}, nil
}

// AddBuiltins makes Relay's own connector versions (the relay/…
// packages of the server's registry, unpacked: files) available to every
// workspace under their short names (relay/echo as echo), with the digests
// the runtime checks before each start or load. A built-in's name is its
// own: the connectors dir's versions of that name are dropped, each
// reported in problems, as is a version that does not load. Call it
// before the catalog is used.
func (c *Catalog) AddBuiltins(files []*core.ConnectorFiles) (problems []error) {
	builtins := map[string][]*Entry{}
	for _, f := range files {
		pkg := f.Ref.Name
		_, name, ok := strings.Cut(pkg, "/")
		e, err := entryFromFiles(core.ConnectorRef{Name: name, Version: f.Ref.Version}, f)
		if err == nil && (!ok || e.Manifest.Name != name) {
			err = fmt.Errorf("connector %s: its manifest names %s", f.Ref, e.Manifest.Name)
		}
		if err != nil {
			problems = append(problems, err)
			continue
		}
		e.Builtin = pkg
		builtins[name] = append(builtins[name], e)
	}
	for name, list := range builtins {
		for _, shadowed := range c.byName[name] {
			problems = append(problems, fmt.Errorf("connector %s in %s is not loaded: %s is a built-in (%s)", shadowed.Ref, shadowed.Dir, name, list[0].Builtin))
		}
		sortNewestFirst(list)
		c.byName[name] = list
	}
	return problems
}

// entryFromFiles is the entry of a version whose files a registry keeps,
// under ref.
func entryFromFiles(ref core.ConnectorRef, files *core.ConnectorFiles) (*Entry, error) {
	m, err := manifest.Parse(files.Manifest)
	if err != nil {
		return nil, fmt.Errorf("connector %s: %w", files.Ref, err)
	}
	e := &Entry{Ref: ref, Manifest: m, Dir: files.Dir}
	if a := files.Native; a != nil {
		e.Native = &Artifact{Path: a.Path, SHA256: a.SHA256}
	}
	if a := files.WASM; a != nil {
		e.WASM = &Artifact{Path: a.Path, SHA256: a.SHA256}
	}
	return e, nil
}

func sortNewestFirst(list []*Entry) {
	sort.Slice(list, func(i, j int) bool {
		return semver.Compare("v"+list[i].Ref.Version, "v"+list[j].Ref.Version) > 0
	})
}

// SetSource makes src the catalog's source of installed packages. Call it
// before the catalog is used.
func (c *Catalog) SetSource(src core.ConnectorSource) { c.source = src }

// Get returns the connector version ref names, or ENotFound: a package's
// (publisher/name) from the source, any other from the built-ins and the
// connectors dir.
func (c *Catalog) Get(ref core.ConnectorRef) (*Entry, error) {
	if IsPackage(ref.Name) {
		return c.fromSource(ref)
	}
	for _, e := range c.byName[ref.Name] {
		if e.Ref.Version == ref.Version {
			return e, nil
		}
	}
	return nil, core.Errorf(core.ENotFound, "no connector %s", ref)
}

// DigestOrigin names, for messages, where the digest an artifact must
// have comes from: the file beside it in the connectors dir (file is the
// artifact's name there), or, for a registry package, the lock (its
// signed index).
func DigestOrigin(name, file string) string {
	if IsPackage(name) {
		return "the digest its lock holds"
	}
	return file + DigestSuffix
}

// IsPackage reports whether a connector name is a registry package's
// (publisher/name) rather than a built-in's or the connectors dir's.
func IsPackage(name string) bool { return strings.Contains(name, "/") }

// sourceTimeout bounds a read of the source for a lookup, which has no
// context of its own (the runtimes ask at a start or load).
const sourceTimeout = 30 * time.Second

// fromSource returns an installed version's entry, from the cache or the
// source.
func (c *Catalog) fromSource(ref core.ConnectorRef) (*Entry, error) {
	key := core.ConnectorRef{Name: ref.Name, Version: ref.Version}
	c.mu.Lock()
	e, ok := c.installed[key]
	c.mu.Unlock()
	if ok {
		return e, nil
	}
	if c.source == nil {
		return nil, core.Errorf(core.ENotFound, "no connector %s: this server installs no packages", ref)
	}
	ctx, cancel := context.WithTimeout(context.Background(), sourceTimeout)
	defer cancel()
	files, err := c.source.Files(ctx, key)
	if err != nil {
		return nil, err
	}
	if e, err = entryFromFiles(key, files); err != nil {
		return nil, err
	}
	e.Package = key.Name
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.installed == nil {
		c.installed = map[core.ConnectorRef]*Entry{}
	}
	c.installed[key] = e
	return e, nil
}

// Available is a connector a workspace may connect, under the name it uses.
type Available struct {
	Name string
	// Versions are the versions it may connect, newest first: every
	// version of a built-in or of the connectors dir, or the one its
	// lock pins.
	Versions []*Entry
	// Installed says it comes from the registry; Yanked is why its
	// locked version was yanked, if it was.
	Installed bool
	Yanked    string
}

// Packaged reports whether the connector comes from a registry package:
// installed by the workspace, or a built-in. Those offer their actions
// before any connection, so that a caller sees what to connect.
func (a Available) Packaged() bool { return a.Installed || a.Versions[0].Builtin != "" }

// ForWorkspace lists what a workspace may connect: the built-ins, the
// connectors dir's, and what it installed, by name.
func (c *Catalog) ForWorkspace(ctx context.Context, workspaceID string) ([]Available, error) {
	var out []Available
	for _, name := range c.names() {
		out = append(out, Available{Name: name, Versions: c.byName[name]})
	}
	if c.source == nil {
		return out, nil
	}
	installed, err := c.source.Installed(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	for _, in := range installed {
		e, err := c.fromSource(in.Ref)
		if err != nil {
			return nil, err
		}
		out = append(out, Available{Name: in.Name, Versions: []*Entry{e}, Installed: true, Yanked: in.Yanked})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// ResolveFor returns the version of the workspace's connector name that
// fits constraint (as Resolve does): an installed connector's locked
// version, which the constraint must allow, or a built-in's or the
// connectors dir's.
func (c *Catalog) ResolveFor(ctx context.Context, workspaceID, name, constraint string) (*Entry, error) {
	if c.source != nil {
		installed, err := c.source.Installed(ctx, workspaceID)
		if err != nil {
			return nil, err
		}
		for _, in := range installed {
			if in.Name != name {
				continue
			}
			e, err := c.fromSource(in.Ref)
			if err != nil {
				return nil, err
			}
			if constraint != "" {
				cons, err := mmsemver.NewConstraint(constraint)
				if err != nil {
					return nil, core.Errorf(core.EInvalid, "version constraint %q: %v", constraint, err)
				}
				if v, err := mmsemver.StrictNewVersion(e.Ref.Version); err != nil || !cons.Check(v) {
					return nil, core.Errorf(core.ENotFound, "this workspace has %s %s installed, which does not satisfy %q: upgrade it first",
						in.Ref.Name, in.Ref.Version, constraint)
				}
			}
			return e, nil
		}
	}
	return c.Resolve(name, constraint)
}

func (c *Catalog) names() []string {
	names := make([]string, 0, len(c.byName))
	for n := range c.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Versions returns the versions of a connector, newest first.
func (c *Catalog) Versions(name string) []*Entry {
	return c.byName[name]
}

// List returns every built-in version and every version of the
// connectors dir, by name and then newest first.
func (c *Catalog) List() []*Entry {
	var out []*Entry
	for _, n := range c.names() {
		out = append(out, c.byName[n]...)
	}
	return out
}

// Resolve returns the newest version of a connector that satisfies
// constraint (semver: "^1.2", "~1.0.3", ">=1.0, <2", "1.0.0"; empty means
// the newest release). Pre-releases match only a constraint that names one.
// ENotFound when the connector is unknown or no version fits; EInvalid for
// a constraint that does not parse.
func (c *Catalog) Resolve(name, constraint string) (*Entry, error) {
	versions := c.byName[name]
	if len(versions) == 0 {
		return nil, core.Errorf(core.ENotFound, "no connector %q", name)
	}
	if constraint == "" {
		for _, e := range versions {
			if semver.Prerelease("v"+e.Ref.Version) == "" {
				return e, nil
			}
		}
		return nil, core.Errorf(core.ENotFound, "connector %s has only pre-release versions; name one", name)
	}
	cons, err := mmsemver.NewConstraint(constraint)
	if err != nil {
		return nil, core.Errorf(core.EInvalid, "version constraint %q: %v", constraint, err)
	}
	for _, e := range versions {
		v, err := mmsemver.StrictNewVersion(e.Ref.Version)
		if err == nil && cons.Check(v) {
			return e, nil
		}
	}
	return nil, core.Errorf(core.ENotFound, "no version of connector %s satisfies %q", name, constraint)
}
