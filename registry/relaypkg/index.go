// Package relaypkg is the package format of the registry: a connector
// version, or a marketplace template version, is one file,
// <publisher>-<name>-<version>.relaypkg: a gzip-compressed tar archive,
// written the same way from the same input, whose first member is the
// index (relaypkg.json): the package's kind, name and version and the size
// and SHA-256 of every other member. A publisher signs the index bytes
// (minisign), and so, through the digests, the whole package.
//
// A connector's members, and nothing else:
//
//	relaypkg.json                   the index
//	manifest.json                   the connector manifest
//	connector.wasm                  the WebAssembly module, if it ships one
//	native/<os>-<arch>/connector    a plugin binary per platform, if any
//	README.md, LICENSE              required
//	CHANGELOG.md                    optional
//
// A template's (its index says "kind": "template"):
//
//	relaypkg.json                   the index
//	template.json                   the template (schemas/template.schema.json)
//	README.md                       required
//	LICENSE, CHANGELOG.md           optional
//
// Reading a package (Inspect, Unpack) refuses, each with its own error
// code, anything but regular files at those paths, a member whose bytes
// differ from the index, sizes past the limits, and a manifest (or
// template) that does not match the index or the artifacts it ships. What
// a template says beyond its name and version is the marketplace's to
// check (marketplace/template).
package relaypkg

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/relayhq/relay/core"
)

// Format is the index format this package writes and reads.
const Format = 1

// Paths inside a package.
const (
	IndexPath     = "relaypkg.json"
	ManifestPath  = "manifest.json"
	WASMPath      = "connector.wasm"
	ReadmePath    = "README.md"
	LicensePath   = "LICENSE"
	ChangelogPath = "CHANGELOG.md"
	TemplatePath  = "template.json"
	nativeDir     = "native/"
	nativeFile    = "connector"
)

// The kinds of package. A connector's index names no kind, as indexes did
// before there were templates, so that their signatures still hold.
const (
	KindConnector = "connector"
	KindTemplate  = "template"
)

// Index is a package's signed description: what it is, and every member
// but itself with its size and SHA-256, sorted by path.
type Index struct {
	Format int `json:"format"`
	// Kind is KindTemplate for a template, empty for a connector.
	Kind    string `json:"kind,omitempty"`
	Package string `json:"package"` // publisher/name
	Version string `json:"version"` // semver, without a leading v
	Files   []File `json:"files"`
}

// KindOf is the package's kind, KindConnector or KindTemplate.
func (x *Index) KindOf() string {
	if x.Kind == "" {
		return KindConnector
	}
	return x.Kind
}

// File is one member of a package.
type File struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"` // lower-case hex
}

// File returns the index's entry for path, or nil.
func (x *Index) File(path string) *File {
	i, ok := slices.BinarySearchFunc(x.Files, path, func(f File, p string) int { return strings.Compare(f.Path, p) })
	if !ok {
		return nil
	}
	return &x.Files[i]
}

// Platforms lists the os/arch pairs the package has native binaries for,
// sorted.
func (x *Index) Platforms() []string {
	var out []string
	for _, f := range x.Files {
		if p, ok := nativePlatform(f.Path); ok {
			out = append(out, p)
		}
	}
	return out
}

// FileName is the package's file name: <publisher>-<name>-<version>.relaypkg.
func (x *Index) FileName() string {
	return FileName(x.Package, x.Version)
}

// FileName is the file name of a package version.
func FileName(pkg, version string) string {
	return strings.ReplaceAll(pkg, "/", "-") + "-" + version + ".relaypkg"
}

// namePart is a publisher or connector name: lower-case ASCII letters,
// digits and single hyphens, starting with a letter, so that a name reads
// one way only (no look-alike characters, no case, no doubled or trailing
// hyphen).
var namePart = regexp.MustCompile(`^[a-z](?:[a-z0-9]|-[a-z0-9]){0,38}$`)

// CheckName reports whether pkg is a valid package name, publisher/name;
// EInvalid otherwise.
func CheckName(pkg string) error {
	publisher, name, ok := strings.Cut(pkg, "/")
	if !ok || !namePart.MatchString(publisher) || !namePart.MatchString(name) {
		return core.Errorf(core.EInvalid, "package name %q: want publisher/name, each of lower-case letters, digits and single hyphens, starting with a letter", pkg)
	}
	return nil
}

// Skeleton is what a name (a publisher's, or a package's publisher/name)
// looks like to a reader: hyphens dropped, and the letters and digits
// that pass for one another made one (0 o, 1 l, 5 s, rn m, vv w). Two
// names with one skeleton are confusable, and a registry keeps only the
// first: no one can register re1ay or rel-ay beside relay. The
// registry's migration 0009 computes the same with SQL's REPLACE, in
// this order.
func Skeleton(name string) string {
	for _, r := range skeletonSteps {
		name = strings.ReplaceAll(name, r[0], r[1])
	}
	return name
}

var skeletonSteps = [][2]string{{"-", ""}, {"0", "o"}, {"1", "l"}, {"5", "s"}, {"rn", "m"}, {"vv", "w"}}

// semverRE is a semantic version (2.0.0) without build metadata, which
// would make two names for one version.
var semverRE = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?$`)

// CheckVersion reports whether v is a semantic version Relay accepts;
// EInvalid otherwise.
func CheckVersion(v string) error {
	if len(v) > 64 || !semverRE.MatchString(v) {
		return core.Errorf(core.EInvalid, "version %q: want a semantic version such as 1.2.0 or 1.3.0-beta.1, without build metadata", v)
	}
	return nil
}

// platforms are the os/arch pairs a package may carry binaries for.
var platforms = map[string]bool{
	"linux-amd64": true, "linux-arm64": true, "linux-386": true, "linux-arm": true,
	"darwin-amd64": true, "darwin-arm64": true,
	"freebsd-amd64": true, "freebsd-arm64": true,
	"windows-amd64": true, "windows-arm64": true,
}

// Platforms lists the os/arch pairs a package may carry binaries for,
// sorted.
func Platforms() []string {
	out := make([]string, 0, len(platforms))
	for p := range platforms {
		out = append(out, strings.Replace(p, "-", "/", 1))
	}
	slices.Sort(out)
	return out
}

// CheckPlatform reports whether a package may carry a binary for
// platform (os/arch); EInvalid otherwise.
func CheckPlatform(platform string) error {
	goos, goarch, ok := strings.Cut(platform, "/")
	if !ok || strings.ContainsAny(goos, "-/") || strings.ContainsAny(goarch, "-/") || !platforms[goos+"-"+goarch] {
		return core.Errorf(core.EInvalid, "platform %q: want os/arch, one a package can carry: %s", platform, strings.Join(Platforms(), ", "))
	}
	return nil
}

// NativePath is where the binary for os/arch goes in a package.
func NativePath(goos, goarch string) string {
	return nativeDir + goos + "-" + goarch + "/" + nativeFile
}

// nativePlatform reports whether path is a native binary's, and for which
// os/arch ("linux/amd64").
func nativePlatform(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, nativeDir)
	if !ok {
		return "", false
	}
	dir, file, ok := strings.Cut(rest, "/")
	if !ok || file != nativeFile || !platforms[dir] {
		return "", false
	}
	return strings.Replace(dir, "-", "/", 1), true
}

// knownPath reports whether a member of a package of kind may have this
// path.
func knownPath(kind, path string) bool {
	if kind == KindTemplate {
		switch path {
		case TemplatePath, ReadmePath, LicensePath, ChangelogPath:
			return true
		}
		return false
	}
	switch path {
	case ManifestPath, WASMPath, ReadmePath, LicensePath, ChangelogPath:
		return true
	}
	_, ok := nativePlatform(path)
	return ok
}

// executable reports whether a member is a program, written with mode 0755.
func executable(path string) bool {
	_, ok := nativePlatform(path)
	return ok
}

// parseIndex decodes and checks an index: its format, name, version, and
// files (known paths, sorted, once each, sizes and digests well formed).
func parseIndex(data []byte) (*Index, error) {
	var x Index
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&x); err != nil {
		return nil, core.Errorf(core.EPackageCorrupt, "the package index is not valid JSON: %v", err)
	}
	if x.Format != Format {
		return nil, core.Errorf(core.EPackageCorrupt, "the package index has format %d; this Relay reads format %d", x.Format, Format)
	}
	if x.Kind != "" && x.Kind != KindTemplate {
		return nil, core.Errorf(core.EPackageCorrupt, "the package index says kind %q; this Relay reads connectors and %q", x.Kind, KindTemplate)
	}
	kind := x.KindOf()
	if err := CheckName(x.Package); err != nil {
		return nil, core.Errorf(core.EPackageCorrupt, "the package index: %s", core.ErrorMessage(err))
	}
	if err := CheckVersion(x.Version); err != nil {
		return nil, core.Errorf(core.EPackageCorrupt, "the package index: %s", core.ErrorMessage(err))
	}
	for i, f := range x.Files {
		if !knownPath(kind, f.Path) {
			return nil, core.Errorf(core.EPackageUnsafePath, "the package index names %q, which is not a member a %s package may have", f.Path, kind)
		}
		if i > 0 && x.Files[i-1].Path >= f.Path {
			return nil, core.Errorf(core.EPackageCorrupt, "the package index lists its files out of order or twice (%q)", f.Path)
		}
		if f.Size < 0 || len(f.SHA256) != 64 || strings.ToLower(f.SHA256) != f.SHA256 || !isHex(f.SHA256) {
			return nil, core.Errorf(core.EPackageCorrupt, "the package index's entry for %q has no valid size and lower-case hex SHA-256", f.Path)
		}
	}
	required := []string{ManifestPath, ReadmePath, LicensePath}
	if kind == KindTemplate {
		required = []string{TemplatePath, ReadmePath}
	}
	for _, path := range required {
		if x.File(path) == nil {
			return nil, core.Errorf(core.EPackageCorrupt, "the package has no %s", path)
		}
	}
	if kind == KindConnector && x.File(WASMPath) == nil && len(x.Platforms()) == 0 {
		return nil, core.Errorf(core.EPackageCorrupt, "the package ships neither a WASM module nor a native binary")
	}
	return &x, nil
}

func isHex(s string) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func (x *Index) String() string { return fmt.Sprintf("%s@%s", x.Package, x.Version) }
