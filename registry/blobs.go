package registry

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"

	"github.com/jmoiron/sqlx"

	"github.com/relayhq/relay/core"
)

// BlobStore keeps published packages by the SHA-256 of their bytes
// (lower-case hex). Blobs are never changed or deleted in place: a blob
// left by a publish that did not commit is harmless, and a later publish
// of the same bytes reuses it.
type BlobStore interface {
	// Put stores data under sum, in tx when the store is the database's,
	// at once otherwise. Storing a sum that is there is no error.
	Put(ctx context.Context, tx *sqlx.Tx, sum string, data []byte) error
	// Open returns the blob under sum; ENotFound when there is none.
	Open(ctx context.Context, sum string) (io.ReadCloser, error)
}

var sumRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

func checkSum(sum string) error {
	if !sumRE.MatchString(sum) {
		return core.Errorf(core.EInvalid, "%q is not a SHA-256 in lower-case hex", sum)
	}
	return nil
}

// DirBlobs keeps blobs as files under a folder: <dir>/sha256/<hex>. The
// embedded default, under --data-dir.
type DirBlobs struct{ Dir string }

var _ BlobStore = DirBlobs{}

func (d DirBlobs) path(sum string) string { return filepath.Join(d.Dir, "sha256", sum) }

// Put writes the blob to a temporary file beside its place and renames
// it there once it is on disk whole.
func (d DirBlobs) Put(_ context.Context, _ *sqlx.Tx, sum string, data []byte) error {
	if err := checkSum(sum); err != nil {
		return err
	}
	target := d.path(sum)
	if _, err := os.Stat(target); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
		return fmt.Errorf("registry: blob dir: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(target), "."+sum+".*")
	if err != nil {
		return fmt.Errorf("registry: blob: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), target)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("registry: write blob %s: %w", sum, err)
	}
	return nil
}

// Open opens the blob's file.
func (d DirBlobs) Open(_ context.Context, sum string) (io.ReadCloser, error) {
	if err := checkSum(sum); err != nil {
		return nil, err
	}
	f, err := os.Open(d.path(sum))
	if errors.Is(err, os.ErrNotExist) {
		return nil, core.Errorf(core.ENotFound, "no blob %s", sum)
	}
	if err != nil {
		return nil, fmt.Errorf("registry: open blob %s: %w", sum, err)
	}
	return f, nil
}

// SQLBlobs keeps blobs in the database (registry_blobs), so that every
// replica on one PostgreSQL has every package without a shared disk.
type SQLBlobs struct{ DB *sqlx.DB }

var _ BlobStore = SQLBlobs{}

// Put inserts the blob in tx.
func (b SQLBlobs) Put(ctx context.Context, tx *sqlx.Tx, sum string, data []byte) error {
	if err := checkSum(sum); err != nil {
		return err
	}
	if tx == nil {
		return errors.New("registry: a blob in the database is written in a transaction")
	}
	_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO registry_blobs (sha256, data) VALUES (?, ?) ON CONFLICT (sha256) DO NOTHING`), sum, data)
	if err != nil {
		return fmt.Errorf("registry: store blob %s: %w", sum, err)
	}
	return nil
}

// Open reads the blob.
func (b SQLBlobs) Open(ctx context.Context, sum string) (io.ReadCloser, error) {
	if err := checkSum(sum); err != nil {
		return nil, err
	}
	var data []byte
	err := b.DB.GetContext(ctx, &data, b.DB.Rebind(`SELECT data FROM registry_blobs WHERE sha256 = ?`), sum)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, core.Errorf(core.ENotFound, "no blob %s", sum)
	}
	if err != nil {
		return nil, fmt.Errorf("registry: read blob %s: %w", sum, err)
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}
