package relaypkg

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/sdk/manifest"
)

// Limits bound what reading a package may take.
type Limits struct {
	// Compressed is the most bytes read of the package file itself.
	Compressed int64
	// Unpacked is the most bytes its members may add up to, and Member
	// the most one member may have: a small archive that inflates past
	// either is refused as soon as it does.
	Unpacked int64
	Member   int64
}

// DefaultLimits fit a connector with a WASM module and binaries for a few
// platforms.
var DefaultLimits = Limits{Compressed: 256 << 20, Unpacked: 512 << 20, Member: 192 << 20}

// indexLimit is the most an index may have: far more than any package's.
const indexLimit = 1 << 20

// Package is a package read and checked.
type Package struct {
	Index *Index
	// IndexBytes are the index exactly as stored: what the publisher
	// signed.
	IndexBytes []byte
	// Manifest is a connector's manifest, nil in a template.
	Manifest *manifest.Manifest
	// ManifestBytes are the connector's manifest, or the template's
	// template.json, exactly as stored.
	ManifestBytes []byte
	// Dir is where Unpack wrote the members; empty after Inspect.
	Dir string
}

// Inspect reads a package from r to its end and checks it whole: every
// member a regular file at a known path, listed in the index with its
// size and SHA-256, none missing, within lim, and a manifest that matches.
// Nothing is written anywhere.
func Inspect(r io.Reader, lim Limits) (*Package, error) {
	return read(r, lim, func(string, int64) (io.Writer, func(ok bool) error, error) {
		return io.Discard, func(bool) error { return nil }, nil
	})
}

// Unpack reads and checks a package as Inspect does, writing its members
// under dir (which must not exist) as it goes: into a folder beside dir
// first, renamed to dir only once the whole package checked, and removed
// otherwise, so that dir holds a checked package or nothing. Members are
// written with mode 0644, native binaries 0755, in folders of mode 0755.
func Unpack(r io.Reader, dir string, lim Limits) (*Package, error) {
	if _, err := os.Lstat(dir); err == nil {
		return nil, fmt.Errorf("relaypkg: unpack: %s exists", dir)
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("relaypkg: unpack: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".unpacking-*")
	if err != nil {
		return nil, fmt.Errorf("relaypkg: unpack: %w", err)
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()
	p, err := read(r, lim, func(name string, size int64) (io.Writer, func(bool) error, error) {
		// name is a known path (checked before this is called): a
		// relative path without "..", of at most three parts.
		target := filepath.Join(tmp, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return nil, nil, err
		}
		mode := os.FileMode(0o644)
		if executable(name) {
			mode = 0o755
		}
		f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if err != nil {
			return nil, nil, err
		}
		bw := bufio.NewWriterSize(f, 64<<10)
		return bw, func(ok bool) error {
			err := bw.Flush()
			if ok && err == nil {
				err = f.Sync()
			}
			return errors.Join(err, f.Close())
		}, nil
	})
	if err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return nil, fmt.Errorf("relaypkg: unpack: %w", err)
	}
	done = true
	p.Dir = dir
	return p, nil
}

// sink opens where a member's bytes go, and returns how to close it (ok
// says whether the member checked).
type sink func(name string, size int64) (w io.Writer, closeFn func(ok bool) error, err error)

// read walks the archive: the index first, then each member, hashed as it
// is copied to its sink and checked against the index.
func read(r io.Reader, lim Limits, open sink) (*Package, error) {
	if lim == (Limits{}) {
		lim = DefaultLimits
	}
	counted := &limitedReader{r: r, left: lim.Compressed}
	gz, err := gzip.NewReader(counted)
	if err != nil {
		if counted.over {
			return nil, tooLarge("the package is over %d bytes", lim.Compressed)
		}
		return nil, core.Errorf(core.EPackageCorrupt, "not a package: %v", err)
	}
	gz.Multistream(false)
	// The header as Pack writes it, and nothing else: no name, comment,
	// extra field or time, the "unknown" OS.
	if h := gz.Header; h.Name != "" || h.Comment != "" || h.Extra != nil || !h.ModTime.IsZero() || h.OS != 255 {
		return nil, core.Errorf(core.EPackageTampered, "the package's gzip header is not the one a package has (name, comment, extra, time or OS set)")
	}
	tr := tar.NewReader(gz)
	corrupt := func(err error) error {
		if counted.over {
			return tooLarge("the package is over %d bytes", lim.Compressed)
		}
		return core.Errorf(core.EPackageCorrupt, "the package does not read: %v", err)
	}

	hdr, err := tr.Next()
	if err != nil {
		return nil, corrupt(err)
	}
	if err := checkHeader(hdr, ""); err != nil {
		return nil, err
	}
	if hdr.Name != IndexPath {
		return nil, core.Errorf(core.EPackageCorrupt, "the package's first member is %q, not its index %s", hdr.Name, IndexPath)
	}
	if hdr.Size > indexLimit {
		return nil, tooLarge("the package index is over %d bytes", indexLimit)
	}
	indexBytes, err := io.ReadAll(io.LimitReader(tr, indexLimit+1))
	if err != nil {
		return nil, corrupt(err)
	}
	x, err := parseIndex(indexBytes)
	if err != nil {
		return nil, err
	}
	var total int64
	for _, f := range x.Files {
		if f.Size > lim.Member {
			return nil, tooLarge("%s is %d bytes, over the limit of %d", f.Path, f.Size, lim.Member)
		}
		total += f.Size
	}
	if total > lim.Unpacked {
		return nil, tooLarge("the package unpacks to %d bytes, over the limit of %d", total, lim.Unpacked)
	}

	p := &Package{Index: x, IndexBytes: indexBytes}
	seen := make(map[string]bool, len(x.Files))
	h := sha256.New()
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, corrupt(err)
		}
		if err := checkHeader(hdr, x.KindOf()); err != nil {
			return nil, err
		}
		f := x.File(hdr.Name)
		if f == nil {
			if hdr.Name == IndexPath {
				return nil, core.Errorf(core.EPackageTampered, "the package holds a second index")
			}
			return nil, core.Errorf(core.EPackageTampered, "the package holds %q, which its index does not list", hdr.Name)
		}
		if seen[f.Path] {
			return nil, core.Errorf(core.EPackageTampered, "the package holds %q twice", f.Path)
		}
		seen[f.Path] = true
		if hdr.Size != f.Size {
			return nil, core.Errorf(core.EPackageTampered, "%s is %d bytes; the index says %d", f.Path, hdr.Size, f.Size)
		}
		data, err := copyMember(tr, f, h, open, f.Path == ManifestPath || f.Path == TemplatePath)
		if err != nil {
			if counted.over {
				return nil, tooLarge("the package is over %d bytes", lim.Compressed)
			}
			return nil, err
		}
		if data != nil {
			p.ManifestBytes = data
		}
	}
	for _, f := range x.Files {
		if !seen[f.Path] {
			return nil, core.Errorf(core.EPackageTampered, "the package lacks %s, which its index lists", f.Path)
		}
	}
	// Nothing but the zeros some tar writers pad with may follow the
	// archive: a package has one reading.
	if err := onlyZeros(gz); err != nil {
		if counted.over {
			return nil, tooLarge("the package is over %d bytes", lim.Compressed)
		}
		return nil, err
	}
	if x.KindOf() == KindTemplate {
		if err := checkTemplate(x, p.ManifestBytes); err != nil {
			return nil, err
		}
		return p, nil
	}
	m, err := manifest.Parse(p.ManifestBytes)
	if err != nil {
		return nil, core.Errorf(core.EPackageManifestMismatch, "the package's manifest: %v", err)
	}
	if err := checkManifest(x, m); err != nil {
		return nil, err
	}
	p.Manifest = m
	return p, nil
}

// copyMember copies one member to its sink, hashing it, and checks its
// digest; it returns the bytes too when keep is set (the manifest).
func copyMember(tr io.Reader, f *File, h hash.Hash, open sink, keep bool) ([]byte, error) {
	w, closeFn, err := open(f.Path, f.Size)
	if err != nil {
		return nil, fmt.Errorf("relaypkg: unpack %s: %w", f.Path, err)
	}
	h.Reset()
	var kept *strings.Builder
	dst := io.MultiWriter(w, h)
	if keep {
		kept = &strings.Builder{}
		dst = io.MultiWriter(w, h, kept)
	}
	n, err := io.Copy(dst, io.LimitReader(tr, f.Size+1))
	if err != nil {
		closeFn(false)
		return nil, core.Errorf(core.EPackageCorrupt, "%s does not read: %v", f.Path, err)
	}
	ok := n == f.Size && hex.EncodeToString(h.Sum(nil)) == f.SHA256
	if err := closeFn(ok); err != nil {
		return nil, fmt.Errorf("relaypkg: unpack %s: %w", f.Path, err)
	}
	if !ok {
		return nil, core.Errorf(core.EPackageTampered, "%s does not have the SHA-256 its index gives", f.Path)
	}
	if keep {
		return []byte(kept.String()), nil
	}
	return nil, nil
}

// checkHeader refuses a member that is not a regular file at a clean,
// relative path that a package of kind may have (of either kind, when
// kind is empty: the index is not read yet).
func checkHeader(hdr *tar.Header, kind string) error {
	name := hdr.Name
	switch hdr.Typeflag {
	case tar.TypeReg:
	case tar.TypeSymlink, tar.TypeLink:
		return core.Errorf(core.EPackageLink, "the package holds a link at %q", name)
	default:
		return core.Errorf(core.EPackageLink, "the package holds %q, which is not a regular file (type %q)", name, hdr.Typeflag)
	}
	switch {
	case name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, "\\") || len(name) > 255:
		return core.Errorf(core.EPackageUnsafePath, "the package holds a member at %q: not a relative path", name)
	case path.Clean(name) != name || name == "." || name == ".." || strings.HasPrefix(name, "../"):
		return core.Errorf(core.EPackageUnsafePath, "the package holds a member at %q, which leaves the package or is not clean", name)
	}
	known := knownPath(kind, name)
	if kind == "" {
		known = knownPath(KindConnector, name) || knownPath(KindTemplate, name)
	}
	if name != IndexPath && !known {
		return core.Errorf(core.EPackageUnsafePath, "the package holds %q, which is not a member a package may have", name)
	}
	// Every field as Pack writes it, so that no byte of a header is
	// outside what the package's form fixes.
	mode := int64(0o644)
	if executable(name) {
		mode = 0o755
	}
	if hdr.Mode != mode || hdr.Uid != 0 || hdr.Gid != 0 || hdr.Uname != "" || hdr.Gname != "" || !hdr.ModTime.Equal(epoch) ||
		!hdr.AccessTime.IsZero() || !hdr.ChangeTime.IsZero() || hdr.Linkname != "" || hdr.Devmajor != 0 || hdr.Devminor != 0 ||
		len(hdr.PAXRecords) != 0 { // extended attributes arrive as PAX records too
		return core.Errorf(core.EPackageTampered, "%s's header is not the one a package member has (mode %o, owner %d:%d, time %s)",
			name, hdr.Mode, hdr.Uid, hdr.Gid, hdr.ModTime.UTC().Format("2006-01-02T15:04:05Z"))
	}
	return nil
}

// maxPadding is the most zeros that may follow the archive (tar pads to
// 10 KiB records): more is an attempt to make the reader inflate them.
const maxPadding = 1 << 20

// onlyZeros reads r to its end and fails unless it holds at most
// maxPadding bytes, all zero.
func onlyZeros(r io.Reader) error {
	buf := make([]byte, 32<<10)
	var total int
	for {
		n, err := r.Read(buf)
		if total += n; total > maxPadding {
			return tooLarge("the package has over %d bytes after its archive", maxPadding)
		}
		for _, b := range buf[:n] {
			if b != 0 {
				return core.Errorf(core.EPackageCorrupt, "the package has data after its archive")
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return core.Errorf(core.EPackageCorrupt, "the package does not read: %v", err)
		}
	}
}

func tooLarge(format string, args ...any) error {
	return core.Errorf(core.EPackageTooLarge, format, args...)
}

// limitedReader reads at most left bytes, then fails, noting that it did.
type limitedReader struct {
	r    io.Reader
	left int64
	over bool
}

var errOverLimit = errors.New("over the size limit")

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		// One byte more tells a file exactly at the limit from one over.
		var one [1]byte
		if n, _ := l.r.Read(one[:]); n > 0 {
			l.over = true
			return 0, errOverLimit
		}
		return 0, io.EOF
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}
