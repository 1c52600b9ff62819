package author

import (
	"bytes"
	"errors"
	iofs "io/fs"
	"os"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/registry/relaypkg"
)

// Signature is what Sign wrote.
type Signature struct {
	// Path is the signature's file, <package>.index.minisig; IndexPath the
	// index it signs, <package>.index.
	Path, IndexPath string
	// KeyID is the signing key's id; Package the package signed,
	// publisher/name@version.
	KeyID, Package string
}

// Sign signs the index of the package at pkgPath with the secret key at
// keyPath (decrypted with password if it is encrypted), and writes the
// signature to <package>.index.minisig. The index is read from the
// package itself, checked whole (relaypkg.Inspect); the index file beside
// the package, which minisign -V reads, is written if missing and must
// otherwise be the package's.
func Sign(pkgPath, keyPath, password string) (*Signature, error) {
	key, err := LoadSecretKey(keyPath, password)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(pkgPath)
	if errors.Is(err, iofs.ErrNotExist) {
		return nil, core.Errorf(core.ENotFound, "no package at %s: make one with `relay connector pack`", pkgPath)
	} else if err != nil {
		return nil, err
	}
	defer f.Close()
	p, err := relaypkg.Inspect(f, relaypkg.DefaultLimits)
	if err != nil {
		return nil, err
	}
	sig, err := relaypkg.Sign(key, p.IndexBytes)
	if err != nil {
		return nil, err
	}
	s := &Signature{IndexPath: pkgPath + IndexSuffix, KeyID: relaypkg.KeyID(key.ID()), Package: p.Index.String()}
	s.Path = s.IndexPath + SignatureSuffix
	switch old, err := os.ReadFile(s.IndexPath); {
	case errors.Is(err, iofs.ErrNotExist):
		if err := writeFileAtomic(s.IndexPath, p.IndexBytes, 0o644); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	case !bytes.Equal(old, p.IndexBytes):
		return nil, core.Errorf(core.EConflict, "%s is not the index of %s: remove it, or run `relay connector pack` again", s.IndexPath, pkgPath)
	}
	if err := writeFileAtomic(s.Path, sig, 0o644); err != nil {
		return nil, err
	}
	return s, nil
}
