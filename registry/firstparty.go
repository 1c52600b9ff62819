package registry

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/jmoiron/sqlx"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/registry/relaypkg"
)

// Relay's own connectors (relay/echo, relay/webhook, relay/smtp) ship as
// packages beside the server's binary (`make build` writes them to
// bin/packages). At every start the server publishes them into its own
// registry under the publisher relay, which belongs to no workspace and
// whose one key is the registry's own signing key, and every workspace
// runs them under their short names without an install. Versions never
// change: a file whose version is published with other bytes is refused,
// and the published one stays.

// PackageExt is the file extension of a package.
const PackageExt = ".relaypkg"

// ImportReport says what ImportFirstParty did with each package file.
type ImportReport struct {
	// Imported are the versions published now, Unchanged those published
	// already with the same bytes (by an earlier start, or another
	// replica); publisher/name@version.
	Imported, Unchanged []string
	// Refused are the files that were not published, each with why.
	Refused []ImportRefusal
}

// ImportRefusal is a package file ImportFirstParty would not publish.
type ImportRefusal struct {
	File string
	Err  error
}

// ImportFirstParty publishes the first-party packages (*.relaypkg) in dir
// under the publisher relay, making the publisher on first use. Each file
// is read whole through relaypkg's checks (a tampered or unreadable one is
// refused), must be a relay/… package, and is signed with the registry's
// key. A version published already is left alone when its bytes are the
// same and refused (EConflict) when they are not. A refused file keeps no
// other from being published; nothing of it is kept. A missing dir holds
// nothing. The error is for what stops every import (the database).
func (s *Service) ImportFirstParty(ctx context.Context, dir string) (*ImportReport, error) {
	rep := &ImportReport{}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, iofs.ErrNotExist) {
		return rep, nil
	} else if err != nil {
		return nil, fmt.Errorf("registry: first-party packages: %w", err)
	}
	var files []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), PackageExt) {
			files = append(files, filepath.Join(dir, e.Name()))
		}
	}
	slices.Sort(files)
	if len(files) == 0 {
		return rep, nil
	}
	if err := s.ensureFirstParty(ctx); err != nil {
		return nil, err
	}
	for _, f := range files {
		ref, imported, err := s.importFirstParty(ctx, f)
		switch {
		case err != nil:
			rep.Refused = append(rep.Refused, ImportRefusal{File: f, Err: err})
		case imported:
			rep.Imported = append(rep.Imported, ref)
		default:
			rep.Unchanged = append(rep.Unchanged, ref)
		}
	}
	return rep, nil
}

// importFirstParty publishes one package file; imported is false when
// the version was there with the same bytes.
func (s *Service) importFirstParty(ctx context.Context, path string) (ref string, imported bool, err error) {
	data, err := readPackageFile(path, s.cfg.Limits.Compressed)
	if err != nil {
		return "", false, err
	}
	sum := sha256Hex(data)
	// The usual start: the file is, byte for byte, a version published
	// before, which was read whole then; reading it again would cost
	// every start a second per package.
	var known []struct {
		Package string `db:"package"`
		Version string `db:"version"`
	}
	if err := s.cfg.DB.DB().SelectContext(ctx, &known, s.rebind(`SELECT v.package, v.version FROM registry_versions v
		JOIN registry_packages p ON p.name = v.package WHERE v.blob_sha256 = ? AND p.publisher = ?`), sum, FirstParty); err != nil {
		return "", false, fmt.Errorf("registry: first-party versions: %w", err)
	}
	if len(known) > 0 {
		return known[0].Package + "@" + known[0].Version, false, nil
	}
	pkg, err := relaypkg.Inspect(bytes.NewReader(data), s.cfg.Limits)
	if err != nil {
		return "", false, err
	}
	x := pkg.Index
	ref = x.String()
	if publisher, _, _ := strings.Cut(x.Package, "/"); publisher != FirstParty || pkg.Manifest == nil {
		return ref, false, core.Errorf(core.EForbidden, "%s is not a first-party connector package (%s/…): publish it to the registry instead", ref, FirstParty)
	}
	// same reports whether the version is published with these bytes:
	// nil error and true when it is, EConflict when it is with others.
	same := func() (bool, error) {
		r, err := s.publishedRow(ctx, x.Package, x.Version)
		if core.ErrorCode(err) == core.ENotFound {
			return false, nil
		} else if err != nil {
			return false, err
		}
		if r.SHA256 != sum {
			return false, core.Errorf(core.EConflict, "%s is published already with other bytes (sha256 %s; this file's is %s): versions never change, so this file is refused and the published one stays; give the connector a new version",
				ref, r.SHA256, sum)
		}
		return true, nil
	}
	if ok, err := same(); ok || err != nil {
		return ref, false, err
	}
	sig, err := relaypkg.Sign(s.cfg.SigningKey, pkg.IndexBytes)
	if err != nil {
		return ref, false, err
	}
	_, err = s.storeRelease(ctx, FirstParty, pkg, data, string(sig), relaypkg.KeyID(s.PublicKey().ID()),
		func(context.Context, *sqlx.Tx, func(*core.AuditRecord) error, *Release) error { return nil })
	if core.ErrorCode(err) == core.EConflict {
		// Another replica may have published the same file first.
		if ok, serr := same(); ok || serr != nil {
			return ref, false, serr
		}
	}
	if err != nil {
		return ref, false, err
	}
	return ref, true, nil
}

// readPackageFile reads a package file of at most limit bytes.
func readPackageFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, core.Errorf(core.EPackageTooLarge, "%s is over the limit of %d bytes", path, limit)
	}
	return data, nil
}

// ensureFirstParty makes the publisher relay, of no workspace, with the
// registry's key as its only key, unless it is there. Its token is
// random and never shown: no one signs in as Relay.
func (s *Service) ensureFirstParty(ctx context.Context) error {
	key := s.PublicKey()
	k := Key{ID: relaypkg.KeyID(key.ID()), PublicKey: relaypkg.PublicKeyLine(key), AddedAt: s.now()}
	hash := make([]byte, 32)
	if _, err := rand.Read(hash); err != nil {
		return err
	}
	return s.cfg.DB.InAuditedTx(ctx, func(ctx context.Context, tx *sqlx.Tx, _ func(*core.AuditRecord) error) error {
		// No conflict target: replicas starting together meet on the
		// name's unique index or the skeleton's, whichever PostgreSQL
		// checks first, and either means the row is there.
		res, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO registry_publishers (name, workspace_id, display_name, token_id, token_hash, created_at, skeleton)
			VALUES (?, NULL, 'Relay', ?, ?, ?, ?) ON CONFLICT DO NOTHING`), FirstParty, core.NewID(), hash, k.AddedAt, relaypkg.Skeleton(FirstParty))
		if err != nil {
			return fmt.Errorf("registry: the publisher %s: %w", FirstParty, err)
		}
		made, _ := res.RowsAffected()
		var owner *string
		if err := tx.GetContext(ctx, &owner, tx.Rebind(`SELECT workspace_id FROM registry_publishers WHERE name = ?`), FirstParty); err != nil {
			return fmt.Errorf("registry: the publisher %s: %w", FirstParty, err)
		}
		if owner != nil {
			return core.Errorf(core.EConflict, "a publisher %q of a workspace is in the database: it is not Relay's own, so no first-party package is published", FirstParty)
		}
		res, err = tx.ExecContext(ctx, tx.Rebind(`INSERT INTO registry_keys (publisher, key_id, public_key, added_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (publisher, key_id) DO NOTHING`), FirstParty, k.ID, k.PublicKey, k.AddedAt)
		if err != nil {
			return fmt.Errorf("registry: the key of %s: %w", FirstParty, err)
		}
		added, _ := res.RowsAffected()
		if made+added == 0 {
			return nil
		}
		return bumpIndex(ctx, tx)
	})
}

// FirstParty returns every published version of Relay's own packages,
// unpacked (checked whole the first time, on any replica) with the
// digests their artifacts must have, each signed by a key of the
// publisher relay. A version that fails is left out and reported in
// problems; err is for what stops them all.
func (s *Service) FirstParty(ctx context.Context) (files []*core.ConnectorFiles, problems []error, err error) {
	var refs []struct {
		Package string `db:"package"`
		Version string `db:"version"`
	}
	if err := s.cfg.DB.DB().SelectContext(ctx, &refs, s.rebind(`SELECT v.package, v.version FROM registry_versions v
		JOIN registry_packages p ON p.name = v.package WHERE p.publisher = ? ORDER BY v.package, v.version`), FirstParty); err != nil {
		return nil, nil, fmt.Errorf("registry: first-party versions: %w", err)
	}
	if len(refs) == 0 {
		return nil, nil, nil
	}
	p, err := s.Publisher(ctx, FirstParty)
	if err != nil {
		return nil, nil, err
	}
	for _, ref := range refs {
		f, err := s.firstPartyFiles(ctx, p, core.ConnectorRef{Name: ref.Package, Version: ref.Version})
		if err != nil {
			problems = append(problems, fmt.Errorf("%s@%s: %w", ref.Package, ref.Version, err))
			continue
		}
		files = append(files, f)
	}
	return files, problems, nil
}

func (s *Service) firstPartyFiles(ctx context.Context, p *Publisher, ref core.ConnectorRef) (*core.ConnectorFiles, error) {
	r, err := s.publishedRow(ctx, ref.Name, ref.Version)
	if err != nil {
		return nil, err
	}
	if _, err := s.checkSigner(p, r.Index, []byte(r.Signature)); err != nil {
		return nil, err
	}
	return s.Files(ctx, ref)
}

// isFirstPartyName reports whether a connector name is one of Relay's own
// packages' (relay/<name>), which no installed connector may take.
func (s *Service) isFirstPartyName(ctx context.Context, name string) (bool, error) {
	var n int
	if err := s.cfg.DB.DB().GetContext(ctx, &n, s.rebind(`SELECT COUNT(*) FROM registry_packages WHERE name = ?`), FirstParty+"/"+name); err != nil {
		return false, fmt.Errorf("registry: first-party names: %w", err)
	}
	return n > 0, nil
}

// UnpackFile unpacks the package file at path into cacheDir/<its SHA-256>
// (checked whole, as the registry's own cache is; nothing is left of a
// package that fails) unless it is there, and describes it. It is for
// running a package without a registry: `relay connectors call` on the
// first-party packages.
func UnpackFile(path, cacheDir string, lim relaypkg.Limits) (*core.ConnectorFiles, error) {
	data, err := readPackageFile(path, lim.Compressed)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(cacheDir, sha256Hex(data))
	pkg, err := relaypkg.Inspect(bytes.NewReader(data), lim)
	if err != nil {
		return nil, err
	}
	if pkg.Manifest == nil {
		return nil, core.Errorf(core.EInvalid, "%s is a template, not a connector", pkg.Index)
	}
	if _, err := os.Stat(filepath.Join(dir, relaypkg.ManifestPath)); err != nil {
		if _, err := relaypkg.Unpack(bytes.NewReader(data), dir, lim); err != nil {
			return nil, err
		}
	}
	return connectorFiles(core.ConnectorRef{Name: pkg.Index.Package, Version: pkg.Index.Version}, dir, pkg.IndexBytes, pkg.ManifestBytes)
}
