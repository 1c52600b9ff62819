package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/relayhq/relay/core/backup"
	"github.com/relayhq/relay/core/sqlstore"
)

// Backups (docs/operations.md, "Backups and restore"). On SQLite a backup
// is an online snapshot: VACUUM INTO copies the database as of one read
// transaction while the server goes on writing, and the registry's blobs
// are copied after it. A blob is written before the row that names it is
// committed and is never removed, so every blob the snapshot names is
// there to copy. On PostgreSQL the rows, the blobs among them, are
// PostgreSQL's to back up (pg_dump, or base backups and WAL for
// point-in-time recovery); the archive then records the schema version
// and, when asked, the master key.

func cmdBackup(fs *flag.FlagSet) runFunc {
	var cfg Config
	var out string
	var withKey bool
	storeFlags(fs, &cfg)
	fs.StringVar(&out, "out", "", "the archive to write (required; never over an existing file)")
	fs.BoolVar(&withKey, "include-master-key", false, "put the master key in the archive too: then the archive alone opens every secret, so keep it as safe as the key")
	return func(ctx context.Context, pos []string, stdout, stderr io.Writer) error {
		if len(pos) > 0 || out == "" {
			return usageError{"usage: relay backup --out FILE [--include-master-key] [flags]"}
		}
		if _, err := os.Lstat(out); err == nil {
			return fmt.Errorf("%s exists: a backup never replaces a file; choose another name", out)
		}
		if cfg.DatabaseURL == "" {
			// Opening a missing SQLite file would make an empty database.
			if _, err := os.Stat(cfg.databaseURL()); err != nil {
				return fmt.Errorf("no database at %s: is --data-dir the server's? (%w)", cfg.databaseURL(), err)
			}
		}
		st, err := openDatabase(ctx, cfg)
		if err != nil {
			return err
		}
		defer st.Close()
		schema, _, err := st.MigrationStatus(ctx)
		if err != nil {
			return err
		}
		if schema == 0 {
			return errors.New("the store has no schema yet: there is nothing to back up")
		}
		var key []byte
		if withKey {
			if key, err = os.ReadFile(cfg.masterKeyFile()); err != nil {
				return fmt.Errorf("--include-master-key: %w", err)
			}
		}
		m, size, err := writeBackup(ctx, st, cfg, out, backup.Header{RelayVersion: version, CreatedAt: time.Now().UTC(),
			Database: st.Dialect(), SchemaVersion: schema, MasterKey: withKey}, key)
		if err != nil {
			return err
		}
		blobs := 0
		for _, f := range m.Files {
			if strings.HasPrefix(f.Name, "registry/") {
				blobs++
			}
		}
		fmt.Fprintf(stdout, "backed up the %s store (schema %d", m.Database, m.SchemaVersion)
		if m.Database == backup.SQLite {
			fmt.Fprintf(stdout, ", %s", plural(blobs, "registry blob"))
		}
		fmt.Fprintf(stdout, ") to %s, %d bytes\n", out, size)
		if m.Database == backup.Postgres {
			fmt.Fprintln(stderr, "The rows are not in this archive: back up the PostgreSQL database with pg_dump, or base backups and WAL archiving (docs/operations.md, Backups and restore).")
		}
		if !withKey {
			fmt.Fprintf(stderr, "The master key is not in the archive: keep a copy of %s apart from it. Without that key no restored API key works and no connection's secret opens.\n",
				cfg.masterKeyFile())
		}
		return nil
	}
}

// writeBackup writes the archive to a temporary file beside out and moves
// it there once it is whole and on disk; it returns the manifest and the
// archive's size.
func writeBackup(ctx context.Context, st *sqlstore.Store, cfg Config, out string, h backup.Header, key []byte) (*backup.Manifest, int64, error) {
	work, err := os.MkdirTemp(filepath.Dir(out), ".relay-backup-*") // 0700
	if err != nil {
		return nil, 0, err
	}
	defer os.RemoveAll(work)
	f, err := os.CreateTemp(work, "archive-*") // 0600
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	w, err := backup.NewWriter(f, h)
	if err != nil {
		return nil, 0, err
	}
	if h.Database == backup.SQLite {
		snapshot := filepath.Join(work, backup.DatabaseName)
		if _, err := st.DB().ExecContext(ctx, `VACUUM INTO ?`, snapshot); err != nil {
			return nil, 0, fmt.Errorf("snapshot of the database: %w", err)
		}
		if err := w.AddFile(backup.DatabaseName, snapshot); err != nil {
			return nil, 0, err
		}
		if err := os.Remove(snapshot); err != nil {
			return nil, 0, err
		}
		// The instance file names the engine that ran the snapshot's
		// unfinished runs: a server restored from it knows that engine
		// gone and interrupts them at once.
		if inst := filepath.Join(cfg.DataDir, instanceFile); fileExists(inst) {
			if err := w.AddFile(backup.InstanceName, inst); err != nil {
				return nil, 0, err
			}
		}
		sums, err := blobSums(filepath.Join(cfg.DataDir, "registry", "sha256"))
		if err != nil {
			return nil, 0, err
		}
		for _, sum := range sums {
			if err := w.AddFile(backup.BlobName(sum), filepath.Join(cfg.DataDir, "registry", "sha256", sum)); err != nil {
				return nil, 0, err
			}
		}
	}
	if key != nil {
		if err := w.Add(backup.MasterKey, int64(len(key)), strings.NewReader(string(key))); err != nil {
			return nil, 0, err
		}
	}
	m, err := w.Close()
	if err != nil {
		return nil, 0, err
	}
	if err := f.Sync(); err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	// Link rather than rename: it fails, rather than replaces, when out
	// appeared meanwhile.
	if err := os.Link(f.Name(), out); err != nil {
		return nil, 0, err
	}
	return m, fi.Size(), nil
}

// blobSums lists the blobs in dir by name, sorted; none when dir does not
// exist. Files a write left half-done (.sum.*) are not blobs.
func blobSums(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	slices.Sort(out)
	return out, nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func cmdRestore(fs *flag.FlagSet) runFunc {
	var dir string
	var force bool
	fs.StringVar(&dir, "data-dir", env("DATA_DIR", ""), "the data dir to restore into (required; RELAY_DATA_DIR)")
	fs.BoolVar(&force, "force", false, "replace the data dir when it is not empty (its server must be stopped)")
	return func(ctx context.Context, pos []string, stdout, stderr io.Writer) error {
		if len(pos) != 1 || dir == "" {
			return usageError{"usage: relay restore FILE --data-dir DIR [--force]"}
		}
		in, err := os.Open(pos[0])
		if err != nil {
			return err
		}
		defer in.Close()
		dir = filepath.Clean(dir)
		existing, err := os.ReadDir(dir)
		switch {
		case errors.Is(err, os.ErrNotExist):
			existing = nil
		case err != nil:
			return err
		case len(existing) > 0 && !force:
			return fmt.Errorf("%s is not empty: restore into a new data dir, or pass --force to replace this one", dir)
		}
		if len(existing) > 0 {
			// A running server holds the data dir's lock.
			claim, _, err := claimDataDir(dir)
			if err != nil {
				return err
			}
			claim.release()
		}

		parent := filepath.Dir(dir)
		if err := os.MkdirAll(parent, 0o700); err != nil {
			return err
		}
		staging, err := os.MkdirTemp(parent, ".relay-restore-*") // 0700
		if err != nil {
			return err
		}
		defer os.RemoveAll(staging)
		m, err := extractBackup(ctx, in, staging)
		if err != nil {
			return err
		}
		keptKey := false
		if !m.MasterKey && len(existing) > 0 && fileExists(filepath.Join(dir, backup.MasterKey)) {
			// Restoring in place: the key the data dir had is the one its
			// backups need.
			if err := copyFile(filepath.Join(dir, backup.MasterKey), filepath.Join(staging, backup.MasterKey)); err != nil {
				return err
			}
			keptKey = true
		}
		if err := swapDir(staging, dir, len(existing) > 0); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "restored %s (the %s store at schema %d, backed up %s by relay %s) into %s\n",
			pos[0], m.Database, m.SchemaVersion, m.CreatedAt.Format(time.RFC3339), m.RelayVersion, dir)
		switch {
		case m.MasterKey:
			fmt.Fprintf(stdout, "the master key is %s\n", filepath.Join(dir, backup.MasterKey))
		case keptKey:
			fmt.Fprintf(stdout, "kept the data dir's master key, %s\n", filepath.Join(dir, backup.MasterKey))
		default:
			fmt.Fprintf(stderr, "The archive holds no master key: put the one the server ran on at %s (mode 0600), or pass --master-key-file to relay serve.\n",
				filepath.Join(dir, backup.MasterKey))
		}
		if m.Database == backup.Postgres {
			fmt.Fprintln(stderr, "This is a PostgreSQL store's archive: restore its rows with pg_restore (or your PITR tooling) and run relay serve with --database-url (docs/operations.md).")
		}
		return nil
	}
}

// extractBackup extracts the archive into staging and, for SQLite, checks
// the database it holds.
func extractBackup(ctx context.Context, in io.Reader, staging string) (*backup.Manifest, error) {
	m, err := backup.Extract(in, staging, func(database string) int {
		n, _ := sqlstore.LatestSchema(database) // the header's database is one of the two
		return n
	})
	if err != nil {
		return nil, err
	}
	if m.Database != backup.SQLite {
		return m, nil
	}
	st, err := sqlstore.Open(ctx, filepath.Join(staging, backup.DatabaseName))
	if err != nil {
		return nil, err
	}
	defer st.Close()
	var check string
	if err := st.DB().GetContext(ctx, &check, `PRAGMA integrity_check`); err != nil || check != "ok" {
		return nil, fmt.Errorf("the backup's database fails SQLite's integrity check: %s %v", check, err)
	}
	if schema, _, err := st.MigrationStatus(ctx); err != nil || schema != m.SchemaVersion {
		return nil, fmt.Errorf("the backup's database is at schema %d, its manifest says %d (%v)", schema, m.SchemaVersion, err)
	}
	return m, nil
}

// swapDir moves staging to dir; replacing, it moves dir aside first and
// removes it once staging is in place.
func swapDir(staging, dir string, replacing bool) error {
	if !replacing {
		os.Remove(dir) // an empty folder, when there is one
		return os.Rename(staging, dir)
	}
	old := fmt.Sprintf("%s.replaced-%d", dir, time.Now().UnixNano())
	if err := os.Rename(dir, old); err != nil {
		return err
	}
	if err := os.Rename(staging, dir); err != nil {
		if rerr := os.Rename(old, dir); rerr != nil {
			return fmt.Errorf("%w; the data dir as it was is at %s", err, old)
		}
		return err
	}
	return os.RemoveAll(old)
}

func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o600)
}

func cmdWorkspacesExport(fs *flag.FlagSet) runFunc {
	var cfg Config
	var out string
	storeFlags(fs, &cfg)
	fs.StringVar(&out, "out", "", "the archive to write (required; never over an existing file)")
	return func(ctx context.Context, pos []string, stdout, stderr io.Writer) error {
		if len(pos) != 1 || out == "" {
			return usageError{"usage: relay workspaces export NAME --out FILE [flags]"}
		}
		return withStore(ctx, cfg, stderr, func(st *sqlstore.Store) error {
			ws, err := st.WorkspaceByName(ctx, pos[0])
			if err != nil {
				return err
			}
			f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return err
			}
			err = st.ExportWorkspace(ctx, ws.ID, f)
			if err == nil {
				err = f.Sync()
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				os.Remove(out)
				return err
			}
			fmt.Fprintf(stdout, "exported workspace %s (%s) to %s\n", ws.Name, ws.ID, out)
			return nil
		})
	}
}
