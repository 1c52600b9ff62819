package author

import (
	"crypto/rand"
	"errors"
	iofs "io/fs"
	"os"
	"path/filepath"

	"aead.dev/minisign"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/registry/relaypkg"
)

// The files of a publisher's key pair, in the folder Keygen writes to:
// minisign's own formats, so that the minisign tool signs with the secret
// key (minisign -S -s publisher.key) and verifies with the public one
// (minisign -V -p publisher.pub).
const (
	SecretKeyFile = "publisher.key"
	PublicKeyFile = "publisher.pub"
)

// KeyPair is a key pair Keygen wrote.
type KeyPair struct {
	SecretKeyPath, PublicKeyPath string
	// ID is the key's id as Relay and minisign show it.
	ID string
	// PublicKey is the public key's base64 line: what minisign -P takes,
	// and what a registry is told.
	PublicKey string
	// Encrypted says whether the secret key file is encrypted with a
	// password.
	Encrypted bool
}

// Keygen makes a publisher's minisign key pair in dir (made, mode 0700, if
// missing): publisher.key, mode 0600, encrypted with password unless it is
// empty, and publisher.pub. It refuses to replace either file: a lost
// secret key is a lost identity.
//
// An encrypted key is minisign's: scrypt with 1 GiB of memory, a few
// seconds to make and to open.
func Keygen(dir, password string) (*KeyPair, error) {
	kp := &KeyPair{
		SecretKeyPath: filepath.Join(dir, SecretKeyFile),
		PublicKeyPath: filepath.Join(dir, PublicKeyFile),
		Encrypted:     password != "",
	}
	for _, path := range []string{kp.SecretKeyPath, kp.PublicKeyPath} {
		if _, err := os.Lstat(path); err == nil {
			return nil, core.Errorf(core.EConflict, "%s exists: keygen never replaces a key; choose another folder with --out, or move the old key pair away first", path)
		} else if !errors.Is(err, iofs.ErrNotExist) {
			return nil, err
		}
	}
	pub, priv, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	var secret []byte
	if password != "" {
		secret, err = minisign.EncryptKey(password, priv)
	} else {
		secret, err = priv.MarshalText()
	}
	if err != nil {
		return nil, err
	}
	public, err := pub.MarshalText()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := writeNew(kp.SecretKeyPath, append(secret, '\n'), 0o600); err != nil {
		return nil, err
	}
	if err := writeNew(kp.PublicKeyPath, append(public, '\n'), 0o644); err != nil {
		os.Remove(kp.SecretKeyPath)
		return nil, err
	}
	kp.ID = relaypkg.KeyID(pub.ID())
	kp.PublicKey = relaypkg.PublicKeyLine(pub)
	return kp, nil
}

// writeNew writes a key file, never over one.
func writeNew(path string, data []byte, mode os.FileMode) error {
	err := WriteNew(path, data, mode)
	if errors.Is(err, iofs.ErrExist) {
		return core.Errorf(core.EConflict, "%s exists: keygen never replaces a key", path)
	}
	return err
}

// WriteNew writes a file that must not exist yet (an error wrapping
// fs.ErrExist when it does), with mode exactly, synced; nothing is left
// of it when writing fails.
func WriteNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if err := f.Chmod(mode); err != nil { // past the umask
		f.Close()
		os.Remove(path)
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}

// LoadSecretKey reads a minisign secret key file, decrypting it with
// password when it is encrypted.
func LoadSecretKey(path, password string) (minisign.PrivateKey, error) {
	var key minisign.PrivateKey
	raw, err := os.ReadFile(path)
	if errors.Is(err, iofs.ErrNotExist) {
		return key, core.Errorf(core.ENotFound, "no secret key at %s: make one with `relay publisher keygen`, or pass --key", path)
	} else if err != nil {
		return key, err
	}
	if minisign.IsEncrypted(raw) {
		if password == "" {
			return key, core.Errorf(core.EInvalid, "%s is encrypted: set RELAY_PUBLISHER_KEY_PASSWORD to its password", path)
		}
		key, err = minisign.DecryptKey(password, raw)
		if err != nil {
			return key, core.Errorf(core.EInvalid, "%s does not open with that password (RELAY_PUBLISHER_KEY_PASSWORD)", path)
		}
		return key, nil
	}
	if err := key.UnmarshalText(raw); err != nil {
		return key, core.Errorf(core.EInvalid, "%s is not a minisign secret key: %v", path, err)
	}
	return key, nil
}
