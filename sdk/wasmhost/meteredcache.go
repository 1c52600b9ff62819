package wasmhost

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// meterVersion numbers meter's rewriting. Change it with any change to
// what meter writes: the metered modules kept on disk are those of this
// version only.
const meterVersion = 1

// The compilation cache holds wazero's compiled code, keyed by the bytes
// it compiled: the metered module. Metering a large module takes a good
// part of a restart (~27 ms of ~200 for a Go-built connector), so the
// metered bytes are kept in the same folder too, keyed by the digest of
// the module as given, and read back instead of metering again. Each file
// ends with the CRC-32C of what precedes it: a file cut short or damaged
// is metered again and rewritten. The folder is trusted as the compiled
// code next to it is (mode 0700).

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// meteredDirPrefix begins the name of each meterVersion's folder in the
// compilation cache; meteredDir is this version's.
const meteredDirPrefix = "relay-metered-v"

var meteredDir = meteredDirPrefix + strconv.Itoa(meterVersion)

// staleTemp is how old a temporary file of writeMetered must be before
// pruneMetered removes it: one that young may be another engine's (another
// process on the same folder) still being written.
const staleTemp = time.Hour

// pruneMetered removes what no engine of this version reads: the folders
// of other meterVersions, and temporary files a writer that died (a crash
// between create and rename) left behind. Failures only leave the files;
// they are logged. wazero's own compiled code is left to wazero.
func (e *Engine) pruneMetered() {
	dir := e.o.CompilationCacheDir
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, d := range entries {
		name := d.Name()
		if !d.IsDir() || !strings.HasPrefix(name, meteredDirPrefix) {
			continue
		}
		if _, err := strconv.Atoi(strings.TrimPrefix(name, meteredDirPrefix)); err != nil {
			continue // not one of ours
		}
		if name != meteredDir {
			if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
				e.o.Logger.Warn("removing metered modules of an earlier version failed", "error", err)
			}
			continue
		}
		temps, _ := filepath.Glob(filepath.Join(dir, name, ".metered-*"))
		for _, t := range temps {
			if st, err := os.Stat(t); err == nil && time.Since(st.ModTime()) > staleTemp {
				if err := os.Remove(t); err != nil {
					e.o.Logger.Warn("removing a leftover temporary file failed", "error", err)
				}
			}
		}
	}
}

// meteredPath is where the metered form of the module with digest sum is
// kept; "" without a compilation cache.
func (e *Engine) meteredPath(sum [sha256.Size]byte) string {
	if e.o.CompilationCacheDir == "" {
		return ""
	}
	return filepath.Join(e.o.CompilationCacheDir, meteredDir, hex.EncodeToString(sum[:])+".wasm")
}

// metered returns the module metered: from the cache when it is there,
// else metered now and kept. Failing to keep it only costs the next start
// the metering; it is logged.
func (e *Engine) metered(sum [sha256.Size]byte, wasm []byte) ([]byte, error) {
	path := e.meteredPath(sum)
	if path != "" {
		if b, ok := readMetered(path); ok {
			return b, nil
		}
	}
	b, err := meter(wasm)
	if err != nil {
		return nil, err
	}
	if path != "" {
		if err := writeMetered(path, b); err != nil {
			e.o.Logger.Warn("keeping the metered module in the compilation cache failed; the next start meters it again", "error", err)
		}
	}
	return b, nil
}

func readMetered(path string) ([]byte, bool) {
	b, err := os.ReadFile(path)
	if err != nil || len(b) < 4 {
		return nil, false
	}
	n := len(b) - 4
	if crc32.Checksum(b[:n], castagnoli) != binary.LittleEndian.Uint32(b[n:]) {
		return nil, false
	}
	return b[:n:n], true
}

// writeMetered writes the file whole or not at all: a temporary file,
// renamed into place.
func writeMetered(path string, metered []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".metered-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after the rename, there is nothing to remove
	_, err = f.Write(metered)
	if err == nil {
		_, err = f.Write(binary.LittleEndian.AppendUint32(nil, crc32.Checksum(metered, castagnoli)))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
