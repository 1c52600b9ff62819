// Package secrets holds the master key, the root of every secret Relay
// keeps, and the Keyring that encrypts connection secrets: the pepper of API
// key hashes and each workspace's data key, which seals its connection
// secrets, are stored wrapped by it.
package secrets

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// MasterKeySize is the length of a master key in bytes.
const MasterKeySize = 32

// LoadOrCreateMasterKey reads the master key from path: 64 hex digits,
// optionally followed by a newline. When the file does not exist and create
// is true, it writes a fresh random key there with mode 0600 (and the folder
// with 0700) and reports created. A key file that others may read is refused:
// whoever reads it can forge nothing but can test stolen key hashes.
func LoadOrCreateMasterKey(path string, create bool) (key []byte, created bool, err error) {
	key, err = readMasterKey(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) || !create {
		return key, false, err
	}
	key = make([]byte, MasterKeySize)
	rand.Read(key)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("master key: %w", err)
	}
	// Written whole to a temporary file, then linked into place: a process
	// starting at the same moment either finds no key or a complete one,
	// and when two race, the second link fails and that one reads the first.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".master-key-*")
	if err != nil {
		return nil, false, fmt.Errorf("master key: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.WriteString(hex.EncodeToString(key) + "\n")
	if serr := tmp.Sync(); werr == nil {
		werr = serr
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return nil, false, fmt.Errorf("master key: writing %s: %w", path, werr)
	}
	if err := os.Link(tmp.Name(), path); errors.Is(err, fs.ErrExist) {
		key, err = readMasterKey(path)
		return key, false, err
	} else if err != nil {
		return nil, false, fmt.Errorf("master key: %w", err)
	}
	return key, true, nil
}

func readMasterKey(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("master key: %s is readable by others (mode %04o); chmod 600 it", path, fi.Mode().Perm())
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	raw = bytes.TrimSpace(raw)
	key := make([]byte, MasterKeySize)
	if len(raw) != 2*MasterKeySize {
		return nil, fmt.Errorf("master key: %s must hold exactly %d hex digits", path, 2*MasterKeySize)
	}
	if _, err := hex.Decode(key, raw); err != nil {
		// The contents are never echoed: they are the key, or close to it.
		return nil, fmt.Errorf("master key: %s must hold exactly %d hex digits", path, 2*MasterKeySize)
	}
	return key, nil
}
