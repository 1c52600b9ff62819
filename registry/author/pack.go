package author

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	iofs "io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/registry/relaypkg"
)

// IndexSuffix is added to a package's file name to name its index, written
// beside it so that the minisign tool can sign it: minisign -Sm <pkg>.index.
const IndexSuffix = ".index"

// SignatureSuffix is added to an index's file name to name its signature:
// minisign's own default, so that minisign -Vm <pkg>.index finds it.
const SignatureSuffix = ".minisig"

// PackOptions say what to pack.
type PackOptions struct {
	// Dir is the connector module's root: relay.json, README.md, LICENSE
	// and CHANGELOG.md (optional) come from there.
	Dir string
	// Dist is the build to pack; default Dir/dist.
	Dist string
	// Out is the package file to write, or a folder to write it in;
	// default Dir/<publisher>-<name>-<version>.relaypkg.
	Out string
}

// PackResult is what Pack wrote.
type PackResult struct {
	Path, SHA256           string
	IndexPath, IndexSHA256 string
	Index                  *relaypkg.Index
	// StaleSignature names a signature beside the index that was made
	// over an earlier index, and so no longer signs this package.
	StaleSignature string
}

// Pack makes the package of the build in opts.Dist (relaypkg.Pack: the same
// files give the same bytes) and writes it, and its index beside it as
// <package>.index, for signing with the minisign tool or Sign.
func Pack(opts PackOptions) (*PackResult, error) {
	p, err := LoadProject(opts.Dir)
	if err != nil {
		return nil, err
	}
	if opts.Dist == "" {
		opts.Dist = filepath.Join(opts.Dir, DistDir)
	}
	files, err := readDist(opts.Dist)
	if err != nil {
		return nil, err
	}
	if err := readDocs(opts.Dir, files, relaypkg.ReadmePath, relaypkg.LicensePath); err != nil {
		return nil, err
	}
	out, outIsDir := opts.Out, false
	if out == "" {
		out, outIsDir = opts.Dir, true
	} else if fi, err := os.Stat(out); err == nil && fi.IsDir() {
		outIsDir = true
	}
	return writePackage(p.Package, files, out, outIsDir)
}

// TemplatePackOptions say which template to pack.
type TemplatePackOptions struct {
	// Dir is the template's folder: template.json and README.md, and
	// LICENSE and CHANGELOG.md if there.
	Dir string
	// Out is the folder to write the package in, made if missing;
	// default Dir/dist.
	Out string
	// Check checks template.json before it is packed (the marketplace's
	// template.Parse, which this package may not import); nil leaves it
	// to what the package format reads of it, its name and version.
	Check func(doc []byte) error
}

// PackTemplate makes the package of the template in opts.Dir (relaypkg.Pack:
// the same files give the same bytes), named after its template.json's
// name and version, and writes it into opts.Out with its index beside it,
// as Pack does a connector's.
func PackTemplate(opts TemplatePackOptions) (*PackResult, error) {
	doc, err := os.ReadFile(filepath.Join(opts.Dir, relaypkg.TemplatePath))
	if errors.Is(err, iofs.ErrNotExist) {
		return nil, core.Errorf(core.ENotFound, "%s has no %s: write one with `relay template init`", opts.Dir, relaypkg.TemplatePath)
	} else if err != nil {
		return nil, err
	}
	if opts.Check != nil {
		if err := opts.Check(doc); err != nil {
			return nil, err
		}
	}
	var head struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(doc, &head); err != nil {
		return nil, core.Errorf(core.EInvalid, "%s: %v", relaypkg.TemplatePath, err)
	}
	files := map[string][]byte{relaypkg.TemplatePath: doc}
	if err := readDocs(opts.Dir, files, relaypkg.ReadmePath); err != nil {
		return nil, err
	}
	out := opts.Out
	if out == "" {
		out = filepath.Join(opts.Dir, DistDir)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	return writePackage(head.Name, files, out, true)
}

// readDocs adds to files the package's documents in dir: README.md,
// LICENSE and CHANGELOG.md, each there or not, but those named in
// required must be.
func readDocs(dir string, files map[string][]byte, required ...string) error {
	for _, name := range []string{relaypkg.ReadmePath, relaypkg.LicensePath, relaypkg.ChangelogPath} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		switch {
		case errors.Is(err, iofs.ErrNotExist) && !slices.Contains(required, name):
			continue
		case errors.Is(err, iofs.ErrNotExist):
			return core.Errorf(core.EInvalid, "%s has no %s: a package must carry one", dir, name)
		case err != nil:
			return err
		}
		files[name] = data
	}
	return nil
}

// writePackage packs files as package pkg and writes it to out (or, when
// outIsDir, into the folder out under its own file name), with its index
// beside it.
func writePackage(pkgName string, files map[string][]byte, out string, outIsDir bool) (*PackResult, error) {
	pkg, index, err := relaypkg.PackBytes(pkgName, files)
	if err != nil {
		return nil, err
	}
	x := &relaypkg.Index{}
	if err := json.Unmarshal(index, x); err != nil {
		return nil, err
	}
	if outIsDir {
		out = filepath.Join(out, x.FileName())
	}
	res := &PackResult{Path: out, SHA256: digest(pkg), IndexPath: out + IndexSuffix, IndexSHA256: digest(index), Index: x}
	if old, err := os.ReadFile(res.IndexPath); err == nil && !bytes.Equal(old, index) {
		if _, err := os.Stat(res.IndexPath + SignatureSuffix); err == nil {
			res.StaleSignature = res.IndexPath + SignatureSuffix
		}
	}
	if err := writeFileAtomic(out, pkg, 0o644); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(res.IndexPath, index, 0o644); err != nil {
		return nil, err
	}
	return res, nil
}

// readDist reads a build's members: manifest.json, connector.wasm and
// native/<os>-<arch>/connector, and nothing else.
func readDist(dist string) (map[string][]byte, error) {
	files := map[string][]byte{}
	var foreign []string
	err := filepath.WalkDir(dist, func(path string, d iofs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dist, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() || !isMember(rel) {
			foreign = append(foreign, rel)
			return nil
		}
		data, err := os.ReadFile(path)
		files[rel] = data
		return err
	})
	if errors.Is(err, iofs.ErrNotExist) {
		return nil, core.Errorf(core.ENotFound, "no build in %s: run `relay connector build` first", dist)
	} else if err != nil {
		return nil, err
	}
	if len(foreign) > 0 {
		return nil, core.Errorf(core.EInvalid, "%s holds files a package cannot carry (%s): run `relay connector build` again into an empty folder", dist, strings.Join(foreign, ", "))
	}
	if _, ok := files[relaypkg.ManifestPath]; !ok {
		return nil, core.Errorf(core.EInvalid, "%s has no %s: run `relay connector build` first", dist, relaypkg.ManifestPath)
	}
	return files, nil
}

func digest(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}
