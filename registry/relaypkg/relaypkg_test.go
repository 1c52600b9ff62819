package relaypkg

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"

	"github.com/relayhq/relay/core"
)

// testManifest is a valid manifest of acme/notes@1.2.0, runtime wasm.
const testManifest = `{
  "name": "notes", "version": "1.2.0", "runtime": "wasm", "protocol": 1, "title": "Notes",
  "actions": [{"name": "add", "title": "Add a note", "side_effect": "write",
    "input_schema": {"type": "object"}, "output_schema": {"type": "object"}}]
}`

func testFiles() map[string][]byte {
	return map[string][]byte{
		ManifestPath:                  []byte(testManifest),
		WASMPath:                      []byte("\x00asm\x01\x00\x00\x00 a module"),
		NativePath("linux", "amd64"):  []byte("\x7fELF a binary"),
		NativePath("darwin", "arm64"): []byte("\xcf\xfa\xed\xfe another"),
		ReadmePath:                    []byte("# Notes\n"),
		LicensePath:                   []byte("Apache-2.0\n"),
		ChangelogPath:                 []byte("## 1.2.0\n- notes\n"),
	}
}

func mustPack(t testing.TB, files map[string][]byte) (pkg, index []byte) {
	t.Helper()
	pkg, index, err := PackBytes("acme/notes", files)
	if err != nil {
		t.Fatal(err)
	}
	return pkg, index
}

// wantCode fails t unless err has code, or one of the codes of a
// "|"-separated list.
func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	got := core.ErrorCode(err)
	for _, c := range strings.Split(code, "|") {
		if got == c {
			return
		}
	}
	t.Fatalf("error %v (code %s), want code %s", err, got, code)
}

// The same files make the same bytes, whatever order they come in, and
// read back as they went in.
func TestPackIsDeterministicAndReadsBack(t *testing.T) {
	a, index := mustPack(t, testFiles())
	for range 5 {
		if b, _ := mustPack(t, testFiles()); !bytes.Equal(a, b) {
			t.Fatal("two packs of the same files differ")
		}
	}
	p, err := Inspect(bytes.NewReader(a), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p.IndexBytes, index) || p.Index.Package != "acme/notes" || p.Index.Version != "1.2.0" ||
		p.Manifest.Name != "notes" || string(p.ManifestBytes) != testManifest {
		t.Fatalf("read back %+v", p)
	}
	if got := strings.Join(p.Index.Platforms(), ","); got != "darwin/arm64,linux/amd64" {
		t.Errorf("platforms %s", got)
	}
	if p.Index.FileName() != "acme-notes-1.2.0.relaypkg" {
		t.Errorf("file name %s", p.Index.FileName())
	}

	dir := filepath.Join(t.TempDir(), "cache", "sha256-x")
	u, err := Unpack(bytes.NewReader(a), dir, Limits{})
	if err != nil || u.Dir != dir {
		t.Fatalf("Unpack: %+v, %v", u, err)
	}
	for path, want := range testFiles() {
		got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(path)))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s unpacked as %q, %v", path, got, err)
		}
		fi, _ := os.Stat(filepath.Join(dir, filepath.FromSlash(path)))
		if wantMode := os.FileMode(0o644) | map[bool]os.FileMode{true: 0o111}[executable(path)]; fi.Mode().Perm() != wantMode {
			t.Errorf("%s has mode %v, want %v", path, fi.Mode().Perm(), wantMode)
		}
	}
	if _, err := Unpack(bytes.NewReader(a), dir, Limits{}); err == nil {
		t.Error("Unpack over an existing dir succeeded")
	}
}

// rawEntry is one member of a hand-made archive.
type rawEntry struct {
	hdr  tar.Header
	data []byte
}

// rawArchive writes entries as a gzip-compressed tar, as they are.
func rawArchive(t testing.TB, entries []rawEntry, trailer []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	gz := gzip.NewWriter(&b)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		h := e.hdr
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag == tar.TypeReg && h.Size == 0 {
			h.Size = int64(len(e.data))
		}
		// As Pack writes them, unless the test says otherwise.
		if h.Mode == 0 {
			h.Mode = 0o644
			if executable(h.Name) {
				h.Mode = 0o755
			}
		}
		if h.ModTime.IsZero() {
			h.ModTime = epoch
		}
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if len(e.data) > 0 {
			if _, err := tw.Write(e.data); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	gz.Write(trailer)
	gz.Close()
	return b.Bytes()
}

// members returns a valid package's entries, index first, so that a test
// can spoil one.
func members(t testing.TB, files map[string][]byte) []rawEntry {
	t.Helper()
	_, index := mustPack(t, files)
	entries := []rawEntry{{hdr: tar.Header{Name: IndexPath}, data: index}}
	var x Index
	json.Unmarshal(index, &x)
	for _, f := range x.Files {
		entries = append(entries, rawEntry{hdr: tar.Header{Name: f.Path}, data: files[f.Path]})
	}
	return entries
}

// indexOf builds an index for files that are not all what they should be.
func indexOf(files map[string][]byte) []byte {
	x := Index{Format: Format, Package: "acme/notes", Version: "1.2.0"}
	var paths []string
	for p := range files {
		paths = append(paths, p)
	}
	sortStrings(paths)
	for _, p := range paths {
		sum := sha256.Sum256(files[p])
		x.Files = append(x.Files, File{Path: p, Size: int64(len(files[p])), SHA256: hex.EncodeToString(sum[:])})
	}
	b, _ := json.Marshal(x)
	return b
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// Each way a package can be wrong is refused with its own code, and
// Unpack leaves nothing behind.
func TestRefusals(t *testing.T) {
	valid, _ := mustPack(t, testFiles())
	flipped := bytes.Clone(valid)
	flipped[len(flipped)/2] ^= 0x20

	withEntry := func(e rawEntry) []byte {
		return rawArchive(t, append(members(t, testFiles()), e), nil)
	}
	spoiled := func(path string, fn func([]byte) []byte) []byte {
		entries := members(t, testFiles())
		for i := range entries {
			if entries[i].hdr.Name == path {
				entries[i].data = fn(bytes.Clone(entries[i].data))
			}
		}
		return rawArchive(t, entries, nil)
	}
	// A package Pack would refuse to write, made by hand.
	unchecked := func(files map[string][]byte) []byte {
		entries := []rawEntry{{hdr: tar.Header{Name: IndexPath}, data: indexOf(files)}}
		var paths []string
		for p := range files {
			paths = append(paths, p)
		}
		sortStrings(paths)
		for _, p := range paths {
			entries = append(entries, rawEntry{hdr: tar.Header{Name: p}, data: files[p]})
		}
		return rawArchive(t, entries, nil)
	}
	lyingManifest := func(m string) []byte {
		files := testFiles()
		files[ManifestPath] = []byte(m)
		return unchecked(files)
	}
	// A bomb: members that inflate to far more than the package. The
	// index must own up to their sizes, and is refused at once; a member
	// whose header says less than it holds is cut off at what it says.
	var bx Index
	json.Unmarshal(indexOf(testFiles()), &bx)
	bx.File(WASMPath).Size = 600 << 20
	bombIndex, _ := json.Marshal(bx)
	bomb := append([]rawEntry{{hdr: tar.Header{Name: IndexPath}, data: bombIndex}}, members(t, testFiles())[1:]...)

	cases := []struct {
		name string
		pkg  []byte
		lim  Limits
		code string
	}{
		// Where the flip lands decides: in the deflate stream's codes the
		// archive stops reading; in a literal byte a member changes.
		{"a byte flipped in the file", flipped, Limits{}, core.EPackageCorrupt + "|" + core.EPackageTampered},
		{"a byte changed in a member", spoiled(WASMPath, func(b []byte) []byte { b[0] ^= 1; return b }), Limits{}, core.EPackageTampered},
		{"a member longer than the index says", spoiled(ReadmePath, func(b []byte) []byte { return append(b, '!') }), Limits{}, core.EPackageTampered},
		{"a byte changed in the index", spoiled(IndexPath, func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"size": 8`), []byte(`"size": 9`), 1)
		}), Limits{}, core.EPackageTampered},
		{"a member the index does not list", withEntry(rawEntry{hdr: tar.Header{Name: NativePath("windows", "amd64")}, data: []byte("MZ")}), Limits{}, core.EPackageTampered},
		{"a member missing", rawArchive(t, members(t, testFiles())[:3], nil), Limits{}, core.EPackageTampered},
		{"a second index", withEntry(rawEntry{hdr: tar.Header{Name: IndexPath}, data: []byte("{}")}), Limits{}, core.EPackageTampered},
		{"a member twice", withEntry(rawEntry{hdr: tar.Header{Name: ReadmePath}, data: testFiles()[ReadmePath]}), Limits{}, core.EPackageTampered},
		{"../ in a path", withEntry(rawEntry{hdr: tar.Header{Name: "../escape"}, data: []byte("x")}), Limits{}, core.EPackageUnsafePath},
		{"../ inside a path", withEntry(rawEntry{hdr: tar.Header{Name: "native/../../escape"}, data: []byte("x")}), Limits{}, core.EPackageUnsafePath},
		{"an absolute path", withEntry(rawEntry{hdr: tar.Header{Name: "/etc/cron.d/x"}, data: []byte("x")}), Limits{}, core.EPackageUnsafePath},
		{"a backslash", withEntry(rawEntry{hdr: tar.Header{Name: `native\..\x`}, data: []byte("x")}), Limits{}, core.EPackageUnsafePath},
		{"an unknown member", withEntry(rawEntry{hdr: tar.Header{Name: "install.sh"}, data: []byte("x")}), Limits{}, core.EPackageUnsafePath},
		{"a symlink", withEntry(rawEntry{hdr: tar.Header{Name: "LICENSE2", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}}), Limits{}, core.EPackageLink},
		{"a symlink at a known path", rawArchive(t, append(members(t, testFiles())[:1], rawEntry{hdr: tar.Header{Name: ReadmePath, Typeflag: tar.TypeSymlink, Linkname: "/etc/shadow"}}), nil), Limits{}, core.EPackageLink},
		{"a hard link", withEntry(rawEntry{hdr: tar.Header{Name: ChangelogPath, Typeflag: tar.TypeLink, Linkname: LicensePath}}), Limits{}, core.EPackageLink},
		{"a device", withEntry(rawEntry{hdr: tar.Header{Name: "native", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}}), Limits{}, core.EPackageLink},
		{"a fifo", withEntry(rawEntry{hdr: tar.Header{Name: "fifo", Typeflag: tar.TypeFifo}}), Limits{}, core.EPackageLink},
		{"a directory", withEntry(rawEntry{hdr: tar.Header{Name: "native/", Typeflag: tar.TypeDir, Mode: 0o755}}), Limits{}, core.EPackageLink},
		{"a decompression bomb", rawArchive(t, bomb, nil), Limits{}, core.EPackageTooLarge},
		{"zeros after the archive", rawArchive(t, members(t, testFiles()), make([]byte, 4<<20)), Limits{}, core.EPackageTooLarge},
		{"data after the archive", rawArchive(t, members(t, testFiles()), []byte("hello")), Limits{}, core.EPackageCorrupt},
		{"over the compressed limit", valid, Limits{Compressed: 100, Unpacked: 1 << 20, Member: 1 << 20}, core.EPackageTooLarge},
		{"over the unpacked limit", valid, Limits{Compressed: 1 << 20, Unpacked: 10, Member: 1 << 20}, core.EPackageTooLarge},
		{"a member over its limit", valid, Limits{Compressed: 1 << 20, Unpacked: 1 << 20, Member: 10}, core.EPackageTooLarge},
		{"not gzip", []byte("PK\x03\x04 a zip"), Limits{}, core.EPackageCorrupt},
		{"a member's time changed", rawArchive(t, append(members(t, testFiles())[:1], rawEntry{hdr: tar.Header{Name: ReadmePath, ModTime: epoch.Add(time.Second)}, data: testFiles()[ReadmePath]}), nil), Limits{}, core.EPackageTampered},
		{"a member's mode changed", rawArchive(t, append(members(t, testFiles())[:1], rawEntry{hdr: tar.Header{Name: ReadmePath, Mode: 0o4755}, data: testFiles()[ReadmePath]}), nil), Limits{}, core.EPackageTampered},
		{"a member's owner changed", rawArchive(t, append(members(t, testFiles())[:1], rawEntry{hdr: tar.Header{Name: ReadmePath, Uid: 1000, Uname: "eve"}, data: testFiles()[ReadmePath]}), nil), Limits{}, core.EPackageTampered},
		{"a gzip header with a name", func() []byte {
			var b bytes.Buffer
			gz := gzip.NewWriter(&b)
			gz.Name = "evil.tar"
			inner := bytes.Clone(gunzip(t, valid))
			gz.Write(inner)
			gz.Close()
			return b.Bytes()
		}(), Limits{}, core.EPackageTampered},
		{"the index not first", rawArchive(t, append(members(t, testFiles())[1:], members(t, testFiles())[0]), nil), Limits{}, core.EPackageCorrupt},
		{"a manifest of another connector", lyingManifest(strings.Replace(testManifest, `"notes"`, `"other"`, 1)), Limits{}, core.EPackageManifestMismatch},
		{"a manifest of another version", lyingManifest(strings.Replace(testManifest, `"1.2.0"`, `"1.2.1"`, 1)), Limits{}, core.EPackageManifestMismatch},
		{"a manifest whose runtime is not shipped", unchecked(func() map[string][]byte {
			f := testFiles()
			f[ManifestPath] = []byte(strings.Replace(testManifest, `"wasm"`, `"native"`, 1))
			delete(f, NativePath("linux", "amd64"))
			delete(f, NativePath("darwin", "arm64"))
			return f
		}()), Limits{}, core.EPackageManifestMismatch},
		{"a manifest that does not parse", lyingManifest(`{"name": "notes"}`), Limits{}, core.EPackageManifestMismatch},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Inspect(bytes.NewReader(c.pkg), c.lim)
			wantCode(t, err, c.code)
			parent := t.TempDir()
			_, err = Unpack(bytes.NewReader(c.pkg), filepath.Join(parent, "pkg"), c.lim)
			wantCode(t, err, c.code)
			if left, _ := os.ReadDir(parent); len(left) != 0 {
				t.Errorf("Unpack left %v behind", left)
			}
		})
	}
}

// Pack refuses what a reader would refuse.
func TestPackRefuses(t *testing.T) {
	for name, edit := range map[string]func(map[string][]byte){
		"no manifest": func(f map[string][]byte) { delete(f, ManifestPath) },
		"no README":   func(f map[string][]byte) { delete(f, ReadmePath) },
		"no artifact": func(f map[string][]byte) {
			delete(f, WASMPath)
			delete(f, NativePath("linux", "amd64"))
			delete(f, NativePath("darwin", "arm64"))
		},
		"an unknown file":  func(f map[string][]byte) { f["notes.txt"] = []byte("x") },
		"an unknown os":    func(f map[string][]byte) { f[NativePath("plan9", "amd64")] = []byte("x") },
		"runtime not sent": func(f map[string][]byte) { delete(f, WASMPath) },
	} {
		t.Run(name, func(t *testing.T) {
			f := testFiles()
			edit(f)
			if _, _, err := PackBytes("acme/notes", f); core.ErrorCode(err) != core.EInvalid {
				t.Errorf("PackBytes: %v, want invalid_request", err)
			}
		})
	}
	for _, bad := range []string{"notes", "Acme/notes", "acme/no--tes", "acme/notes-", "аcme/notes", "acme/notes/x", "1acme/notes"} {
		if _, _, err := PackBytes(bad, testFiles()); core.ErrorCode(err) != core.EInvalid {
			t.Errorf("package name %q: %v, want invalid_request", bad, err)
		}
	}
}

// Relay's signatures and minisign's are one format: each verifies the
// other's, and a signature of anything else, or by another key, fails.
func TestSignatures(t *testing.T) {
	_, index := mustPack(t, testFiles())
	pub, priv, err := minisign.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := Sign(priv, index)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(pub, index, sig); err != nil {
		t.Fatal(err)
	}
	if id, err := SignerOf(sig); err != nil || id != pub.ID() {
		t.Errorf("SignerOf = %x, %v", id, err)
	}
	other, _, _ := minisign.GenerateKey(nil)
	wantCode(t, Verify(other, index, sig), core.ESignerUnknown)
	wantCode(t, Verify(pub, append(bytes.Clone(index), ' '), sig), core.ESignatureInvalid)
	wantCode(t, Verify(pub, index, []byte("not a signature")), core.ESignatureInvalid)
	text, _ := pub.MarshalText()
	for _, form := range []string{string(text), PublicKeyLine(pub)} {
		if k, err := ParsePublicKey(form); err != nil || !k.Equal(pub) {
			t.Errorf("ParsePublicKey(%q): %v", form, err)
		}
	}
	if id, err := ParseKeyID(KeyID(pub.ID())); err != nil || id != pub.ID() {
		t.Errorf("ParseKeyID(KeyID) = %x, %v", id, err)
	}
}

// The minisign tool (Debian's minisign) verifies Relay's signature, and
// Relay verifies the tool's.
func TestMinisignTool(t *testing.T) {
	tool, err := exec.LookPath("minisign")
	if err != nil {
		t.Fatalf("the minisign tool is needed: apt-get install minisign (%v)", err)
	}
	dir := t.TempDir()
	_, index := mustPack(t, testFiles())
	indexFile := filepath.Join(dir, "acme-notes-1.2.0.relaypkg.index")
	if err := os.WriteFile(indexFile, index, 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(tool, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("minisign %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	// The tool's key and signature, checked by Relay.
	run("-G", "-W", "-p", filepath.Join(dir, "tool.pub"), "-s", filepath.Join(dir, "tool.key"))
	run("-S", "-s", filepath.Join(dir, "tool.key"), "-m", indexFile, "-x", filepath.Join(dir, "tool.minisig"))
	pubText, _ := os.ReadFile(filepath.Join(dir, "tool.pub"))
	toolKey, err := ParsePublicKey(string(pubText))
	if err != nil {
		t.Fatal(err)
	}
	toolSig, _ := os.ReadFile(filepath.Join(dir, "tool.minisig"))
	if err := Verify(toolKey, index, toolSig); err != nil {
		t.Errorf("Relay refuses the minisign tool's signature: %v", err)
	}
	// Relay's key and signature, checked by the tool.
	pub, priv, _ := minisign.GenerateKey(nil)
	sig, err := Sign(priv, index)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "relay.minisig"), sig, 0o644)
	pubLine := PublicKeyLine(pub)
	out := run("-V", "-P", pubLine, "-m", indexFile, "-x", filepath.Join(dir, "relay.minisig"))
	if !strings.Contains(out, "Signature and comment signature verified") || !strings.Contains(out, "relaypkg acme/notes@1.2.0") {
		t.Errorf("minisign -V said:\n%s", out)
	}
	// And the tool refuses an index that changed.
	os.WriteFile(indexFile, append(index, ' '), 0o644)
	if out, err := exec.Command(tool, "-V", "-P", pubLine, "-m", indexFile, "-x", filepath.Join(dir, "relay.minisig")).CombinedOutput(); err == nil {
		t.Errorf("minisign -V accepted a changed index:\n%s", out)
	}
}

func TestCheckPlatform(t *testing.T) {
	for _, ok := range []string{"linux/amd64", "darwin/arm64", "windows/amd64"} {
		if err := CheckPlatform(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"linux", "linux/", "plan9/amd64", "linux-amd64", "linux/amd64/v2", "linux/arm-64"} {
		if err := CheckPlatform(bad); core.ErrorCode(err) != core.EInvalid {
			t.Errorf("%q: %v, want invalid_request", bad, err)
		}
	}
}

func gunzip(t testing.TB, data []byte) []byte {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(gz)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Every byte of a package, changed, makes it refused: the archive's
// headers, the members (through the index's digests), the index (through
// its own checks and the signature over it), the gzip header and
// trailer. What Inspect cannot see, a change inside the compressed stream
// that decodes to the same archive, is caught by the package's SHA-256,
// which the registry records and signs in its index.
func TestEveryByteMatters(t *testing.T) {
	files := map[string][]byte{
		ManifestPath: []byte(testManifest),
		WASMPath:     []byte("\x00asm\x01\x00\x00\x00 a module"),
		ReadmePath:   []byte("# Notes\n"),
		LicensePath:  []byte("MIT\n"),
	}
	pkg, _ := mustPack(t, files)
	want := gunzip(t, pkg)
	var accepted []int
	for i := range pkg {
		bad := bytes.Clone(pkg)
		bad[i] ^= 0x01
		if _, err := Inspect(bytes.NewReader(bad), Limits{}); err != nil {
			continue
		}
		// Accepted: then the archive it holds must be the same.
		if !bytes.Equal(gunzip(t, bad), want) {
			t.Errorf("byte %d of %d changed the archive, and the package was accepted", i, len(pkg))
		}
		accepted = append(accepted, i)
	}
	t.Logf("%d of %d one-bit changes were accepted, each decoding to the same archive: %v", len(accepted), len(pkg), accepted)
}
