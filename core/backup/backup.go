// Package backup reads and writes Relay's backup archives: a gzipped tar
// of a server's data (the SQLite database, the registry's blobs and, when
// asked, the master key), framed by a header and a manifest.
//
// The header comes first, so a reader learns at once what the archive is
// and which schema it holds; the manifest comes last, with the size and
// SHA-256 of every file, so a writer streams each file once (hashing as
// it copies) and a reader knows the archive is whole only when it has
// read the manifest and every file matched it. A truncated or altered
// archive is refused, whatever part is missing.
package backup

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"time"

	"github.com/relayhq/relay/core"
)

// Format is the version of the archive layout this package writes and
// reads.
const Format = 1

// Names in an archive.
const (
	HeaderName   = "relay-backup.json"
	ManifestName = "manifest.json"
	DatabaseName = "relay.db"
	MasterKey    = "master.key"
	InstanceName = "instance"
	blobDir      = "registry/sha256/"
)

// Databases.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// Header says what an archive holds.
type Header struct {
	Format       int       `json:"format"`
	RelayVersion string    `json:"relay_version"`
	CreatedAt    time.Time `json:"created_at"`
	// Database is the store the backup was taken of: SQLite (the
	// database is in the archive) or Postgres (its rows are not: they
	// are backed up with PostgreSQL's own tools; docs/operations.md).
	Database string `json:"database"`
	// SchemaVersion is the store's migration version when the backup was
	// taken: a Relay that knows fewer migrations cannot restore it.
	SchemaVersion int  `json:"schema_version"`
	MasterKey     bool `json:"master_key"`
}

// File is one file of an archive, as the manifest lists it.
type File struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Manifest closes an archive: its header again and its files, in order.
type Manifest struct {
	Header
	Files []File `json:"files"`
}

// blobRE is a registry blob's name: the SHA-256 of its bytes.
var blobRE = regexp.MustCompile(`^registry/sha256/[0-9a-f]{64}$`)

// BlobName is the archive name of the registry blob of SHA-256 sum.
func BlobName(sum string) string { return blobDir + sum }

// validName reports whether name may be a file of an archive of db.
func validName(db, name string) bool {
	switch {
	case name == MasterKey:
		return true
	case name == DatabaseName, name == InstanceName:
		return db == SQLite
	default:
		return blobRE.MatchString(name)
	}
}

// Writer writes an archive: NewWriter writes the header, Add each file,
// Close the manifest.
type Writer struct {
	gz       *gzip.Writer
	tw       *tar.Writer
	manifest Manifest
	seen     map[string]bool
}

// NewWriter starts an archive of h on w.
func NewWriter(w io.Writer, h Header) (*Writer, error) {
	h.Format = Format
	if h.Database != SQLite && h.Database != Postgres {
		return nil, fmt.Errorf("backup: database %q", h.Database)
	}
	// The fastest level: a backup is taken while the server works, and
	// most of its bytes (the database's pages, connector binaries)
	// compress about as well either way.
	gz, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	bw := &Writer{gz: gz, tw: tar.NewWriter(gz), manifest: Manifest{Header: h}, seen: map[string]bool{}}
	if err := bw.writeJSON(HeaderName, h); err != nil {
		return nil, err
	}
	return bw, nil
}

func (w *Writer) writeJSON(name string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := w.tw.WriteHeader(w.entry(name, int64(len(data)))); err != nil {
		return fmt.Errorf("backup: write %s: %w", name, err)
	}
	if _, err := w.tw.Write(data); err != nil {
		return fmt.Errorf("backup: write %s: %w", name, err)
	}
	return nil
}

func (w *Writer) entry(name string, size int64) *tar.Header {
	return &tar.Header{Name: name, Size: size, Mode: 0o600, Typeflag: tar.TypeReg, ModTime: w.manifest.CreatedAt, Format: tar.FormatPAX}
}

// Add copies size bytes of r into the archive as name, hashing them.
func (w *Writer) Add(name string, size int64, r io.Reader) error {
	if !validName(w.manifest.Database, name) || w.seen[name] {
		return fmt.Errorf("backup: cannot add %q", name)
	}
	w.seen[name] = true
	if err := w.tw.WriteHeader(w.entry(name, size)); err != nil {
		return fmt.Errorf("backup: write %s: %w", name, err)
	}
	h := sha256.New()
	n, err := io.Copy(w.tw, io.TeeReader(io.LimitReader(r, size), h))
	if err == nil && n != size {
		err = fmt.Errorf("%d bytes where %d were expected", n, size)
	}
	if err != nil {
		return fmt.Errorf("backup: write %s: %w", name, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if blobRE.MatchString(name) && path.Base(name) != sum {
		return fmt.Errorf("backup: blob %s holds bytes whose SHA-256 is %s", name, sum)
	}
	w.manifest.Files = append(w.manifest.Files, File{Name: name, Size: size, SHA256: sum})
	return nil
}

// AddFile adds the file at src as name.
func (w *Writer) AddFile(name, src string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	return w.Add(name, fi.Size(), f)
}

// Close writes the manifest and ends the archive (the caller closes the
// underlying writer). It returns the manifest.
func (w *Writer) Close() (*Manifest, error) {
	if w.manifest.Database == SQLite && !w.seen[DatabaseName] {
		return nil, errors.New("backup: a SQLite backup without its database")
	}
	if err := w.writeJSON(ManifestName, w.manifest); err != nil {
		return nil, err
	}
	if err := w.tw.Close(); err != nil {
		return nil, err
	}
	if err := w.gz.Close(); err != nil {
		return nil, err
	}
	return &w.manifest, nil
}

// Limits on what a reader accepts, so that a hostile archive cannot fill
// the disk through the header or manifest.
const (
	maxJSON = 16 << 20
)

// Extract reads an archive from r into dir (which must exist and be
// empty: the caller moves it into place only when Extract succeeds) and
// returns its manifest. latestSchema is the newest schema version this
// build knows of a database ("sqlite" or "postgres"): an archive of a
// newer one is refused. Every error is an
// EInvalid core.Error naming what is wrong; on error dir may hold part
// of the archive, and the caller removes it.
func Extract(r io.Reader, dir string, latestSchema func(database string) int) (*Manifest, error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, corrupt("not a gzipped archive: %v", err)
	}
	tr := tar.NewReader(gz)
	var head *Header
	got := map[string]File{}
	var order []string
	for {
		th, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, corrupt("the archive ends before its manifest: it is incomplete")
		}
		if err != nil {
			return nil, corrupt("reading the archive: %v", err)
		}
		if th.Typeflag != tar.TypeReg {
			return nil, corrupt("entry %q is not a regular file", th.Name)
		}
		switch {
		case head == nil:
			if th.Name != HeaderName {
				return nil, corrupt("the archive does not begin with %s: not a Relay backup", HeaderName)
			}
			var h Header
			if err := readJSON(tr, th.Size, &h); err != nil {
				return nil, corrupt("%s: %v", HeaderName, err)
			}
			if err := checkHeader(h, latestSchema); err != nil {
				return nil, err
			}
			head = &h
		case th.Name == ManifestName:
			var m Manifest
			if err := readJSON(tr, th.Size, &m); err != nil {
				return nil, corrupt("%s: %v", ManifestName, err)
			}
			if _, err := tr.Next(); !errors.Is(err, io.EOF) {
				return nil, corrupt("entries after the manifest")
			}
			// The gzip stream's own checksum is read at its end.
			if _, err := io.Copy(io.Discard, gz); err != nil {
				return nil, corrupt("reading the archive: %v", err)
			}
			return &m, checkManifest(&m, *head, got, order)
		default:
			f, err := extractFile(tr, th, head.Database, dir)
			if err != nil {
				return nil, err
			}
			if _, dup := got[f.Name]; dup {
				return nil, corrupt("%s appears twice", f.Name)
			}
			got[f.Name] = f
			order = append(order, f.Name)
		}
	}
}

func corrupt(format string, args ...any) error {
	return core.Errorf(core.EInvalid, "backup: "+format, args...)
}

func readJSON(r io.Reader, size int64, v any) error {
	if size > maxJSON {
		return fmt.Errorf("%d bytes is too large", size)
	}
	data, err := io.ReadAll(io.LimitReader(r, size))
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

func checkHeader(h Header, latestSchema func(string) int) error {
	switch {
	case h.Format != Format:
		return corrupt("archive format %d; this Relay reads format %d", h.Format, Format)
	case h.Database != SQLite && h.Database != Postgres:
		return corrupt("unknown database %q", h.Database)
	case h.SchemaVersion < 0:
		return corrupt("schema version %d", h.SchemaVersion)
	case h.SchemaVersion > latestSchema(h.Database):
		return core.Errorf(core.EInvalid, "backup: the backup holds schema version %d, newer than this Relay's %d: restore it with the Relay %s that took it, or a later one",
			h.SchemaVersion, latestSchema(h.Database), h.RelayVersion)
	}
	return nil
}

// extractFile writes one entry into dir, 0600, hashing it.
func extractFile(tr *tar.Reader, th *tar.Header, db, dir string) (File, error) {
	name := th.Name
	if !validName(db, name) {
		return File{}, corrupt("unexpected entry %q", name)
	}
	target := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
		return File{}, err
	}
	out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return File{}, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h), tr)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return File{}, corrupt("the archive ends in the middle of %s: it is incomplete", name)
	}
	if err != nil {
		return File{}, corrupt("%s: %v", name, err)
	}
	return File{Name: name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

func sameHeader(a, b Header) bool {
	at, bt := a.CreatedAt, b.CreatedAt
	a.CreatedAt, b.CreatedAt = time.Time{}, time.Time{}
	return a == b && at.Equal(bt)
}

// checkManifest checks that the files read are exactly the manifest's, in
// its order, with its sizes and sums, under the header read first.
func checkManifest(m *Manifest, head Header, got map[string]File, order []string) error {
	if !sameHeader(m.Header, head) {
		return corrupt("the manifest's header differs from the archive's first entry")
	}
	if len(m.Files) != len(order) {
		return corrupt("the manifest lists %d files; the archive holds %d", len(m.Files), len(order))
	}
	for i, want := range m.Files {
		f, ok := got[want.Name]
		switch {
		case !ok || order[i] != want.Name:
			return corrupt("the manifest lists %s where the archive holds %s", want.Name, order[i])
		case f != want:
			return corrupt("%s: %d bytes with SHA-256 %s; the manifest says %d bytes with %s", f.Name, f.Size, f.SHA256, want.Size, want.SHA256)
		case blobRE.MatchString(f.Name) && path.Base(f.Name) != f.SHA256:
			return corrupt("blob %s holds bytes whose SHA-256 is %s", f.Name, f.SHA256)
		}
	}
	if head.Database == SQLite {
		if _, ok := got[DatabaseName]; !ok {
			return corrupt("a SQLite backup without %s", DatabaseName)
		}
	}
	if _, ok := got[MasterKey]; ok != head.MasterKey {
		return corrupt("the header says master key included: %v; the archive disagrees", head.MasterKey)
	}
	return nil
}
