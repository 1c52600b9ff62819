package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/registry/relaypkg"
)

// A package is uploaded in parts of at most PartSize bytes (the API's
// bodies are small), then published by naming the upload and a signature
// of its index. Uploads live in the database, so any replica takes any
// part.
const PartSize = 512 << 10

// uploadTTL is how long an upload may wait to be published.
const uploadTTL = 24 * time.Hour

// Upload is a package being uploaded.
type Upload struct {
	ID   string `json:"id"`
	Size int64  `json:"size"`
}

// StartUpload begins an upload for the publisher.
func (s *Service) StartUpload(ctx context.Context, p *Publisher) (*Upload, error) {
	if err := s.ownRegistry(); err != nil {
		return nil, err
	}
	u := &Upload{ID: core.NewID()}
	db := s.cfg.DB.DB()
	// Uploads never published are dropped as new ones start.
	if _, err := db.ExecContext(ctx, db.Rebind(`DELETE FROM registry_uploads WHERE created_at < ?`), s.now().Add(-uploadTTL)); err != nil {
		return nil, fmt.Errorf("registry: drop old uploads: %w", err)
	}
	if _, err := db.ExecContext(ctx, db.Rebind(`INSERT INTO registry_uploads (id, publisher, size, created_at) VALUES (?, ?, 0, ?)`),
		u.ID, p.Name, s.now()); err != nil {
		return nil, fmt.Errorf("registry: start upload: %w", err)
	}
	return u, nil
}

// PutPart stores part n (0, 1, 2, …) of an upload of the publisher's. A
// part sent again replaces the first (a retried request).
func (s *Service) PutPart(ctx context.Context, p *Publisher, uploadID string, n int, data []byte) (*Upload, error) {
	if n < 0 || int64(n) >= s.cfg.Limits.Compressed/PartSize+1 {
		return nil, core.Errorf(core.EInvalid, "part %d: parts are numbered from 0, up to the package size limit", n)
	}
	if len(data) == 0 || len(data) > PartSize {
		return nil, core.Errorf(core.EInvalid, "a part has 1 to %d bytes", PartSize)
	}
	var u Upload
	err := s.cfg.DB.InAuditedTx(ctx, func(ctx context.Context, tx *sqlx.Tx, _ func(*core.AuditRecord) error) error {
		if err := s.ownUpload(ctx, tx, p, uploadID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM registry_upload_parts WHERE upload_id = ? AND n = ?`), uploadID, n); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO registry_upload_parts (upload_id, n, data) VALUES (?, ?, ?)`), uploadID, n, data); err != nil {
			return fmt.Errorf("registry: store part: %w", err)
		}
		u.ID = uploadID
		if err := tx.GetContext(ctx, &u.Size, tx.Rebind(`SELECT COALESCE(SUM(LENGTH(data)), 0) FROM registry_upload_parts WHERE upload_id = ?`), uploadID); err != nil {
			return fmt.Errorf("registry: upload size: %w", err)
		}
		if u.Size > s.cfg.Limits.Compressed {
			return core.Errorf(core.EPackageTooLarge, "the upload is over the limit of %d bytes", s.cfg.Limits.Compressed)
		}
		_, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE registry_uploads SET size = ? WHERE id = ?`), u.Size, uploadID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &u, nil
}

// ownUpload checks that the upload exists and is the publisher's.
func (s *Service) ownUpload(ctx context.Context, db sqlx.ExtContext, p *Publisher, uploadID string) error {
	var owner string
	err := sqlx.GetContext(ctx, db, &owner, db.Rebind(`SELECT publisher FROM registry_uploads WHERE id = ?`), uploadID)
	if errors.Is(err, sql.ErrNoRows) || err == nil && owner != p.Name {
		return core.Errorf(core.ENotFound, "no upload %q of publisher %s", uploadID, p.Name)
	}
	return err
}

// uploadBytes are an upload's parts, in order, which must have no gap.
func (s *Service) uploadBytes(ctx context.Context, p *Publisher, uploadID string) ([]byte, error) {
	db := s.cfg.DB.DB()
	if err := s.ownUpload(ctx, db, p, uploadID); err != nil {
		return nil, err
	}
	var parts []struct {
		N    int    `db:"n"`
		Data []byte `db:"data"`
	}
	if err := db.SelectContext(ctx, &parts, db.Rebind(`SELECT n, data FROM registry_upload_parts WHERE upload_id = ? ORDER BY n`), uploadID); err != nil {
		return nil, fmt.Errorf("registry: read upload: %w", err)
	}
	var b bytes.Buffer
	for i, part := range parts {
		if part.N != i {
			return nil, core.Errorf(core.EInvalid, "upload %s lacks part %d", uploadID, i)
		}
		b.Write(part.Data)
	}
	if b.Len() == 0 {
		return nil, core.Errorf(core.EInvalid, "upload %s is empty", uploadID)
	}
	return b.Bytes(), nil
}

// Release is a published version of a package.
type Release struct {
	Package     string          `json:"package"`
	Kind        string          `json:"kind"` // connector or template
	Version     string          `json:"version"`
	SHA256      string          `json:"sha256"` // of the .relaypkg file
	Size        int64           `json:"size"`
	IndexSHA256 string          `json:"index_sha256"`
	Signer      string          `json:"signer"` // key id
	PublishedAt time.Time       `json:"published_at"`
	Yanked      *Yank           `json:"yanked,omitempty"`
	Manifest    json.RawMessage `json:"manifest"`
	// Index and Signature are what a client verifies: the package's
	// index, and the publisher's signature of it.
	Index     string `json:"index"`
	Signature string `json:"signature"`
}

// Yank says that a version is withdrawn: never picked by a range again,
// kept for those locked to it.
type Yank struct {
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
}

// Publish publishes the package uploaded as uploadID under publisher p,
// signed by signature (minisign, over the package's index): the package
// must read whole (relaypkg.Inspect), be the publisher's (its name's
// first part), be signed by one of the publisher's active keys, and be a
// version not published before (versions never change). Its blob, its
// version, its package (made at its first version) and the index's new
// version commit together with the audit record.
func (s *Service) Publish(ctx context.Context, p *Publisher, c *core.Caller, uploadID string, signature []byte) (*Release, error) {
	data, err := s.uploadBytes(ctx, p, uploadID)
	if err != nil {
		return nil, err
	}
	pkg, err := relaypkg.Inspect(bytes.NewReader(data), s.cfg.Limits)
	if err != nil {
		return nil, err
	}
	x := pkg.Index
	publisher, _, _ := strings.Cut(x.Package, "/")
	if publisher != p.Name {
		return nil, core.Errorf(core.EForbidden, "package %s is not publisher %s's", x.Package, p.Name)
	}
	signer, err := s.checkSigner(p, pkg.IndexBytes, signature)
	if err != nil {
		return nil, err
	}
	v, err := s.storeRelease(ctx, p.Name, pkg, data, string(signature), signer, func(ctx context.Context, tx *sqlx.Tx, audit func(*core.AuditRecord) error, v *Release) error {
		if _, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM registry_uploads WHERE id = ?`), uploadID); err != nil {
			return err
		}
		return audit(c.AuditRecord("registry.version.publish", "package:"+v.Package+"@"+v.Version, "success",
			details(map[string]any{"sha256": v.SHA256, "signer": v.Signer})))
	})
	if err != nil {
		return nil, err
	}
	return v, nil
}

// storeRelease keeps a version read whole (pkg, from data) under
// publisher, signed by signer: its blob, its package (made at its first
// version), the version and the index's new version commit together,
// with what also runs in the transaction. EConflict when the version is
// there already, or the package's name looks like another's.
func (s *Service) storeRelease(ctx context.Context, publisher string, pkg *relaypkg.Package, data []byte, signature, signer string,
	also func(ctx context.Context, tx *sqlx.Tx, audit func(*core.AuditRecord) error, v *Release) error) (*Release, error) {
	x := pkg.Index
	kind := x.KindOf()
	var caps []byte
	var description string
	if kind == relaypkg.KindTemplate {
		if s.cfg.Templates == nil {
			return nil, core.Errorf(core.EInvalid, "%s is a template, and this registry takes connectors only", x)
		}
		var summary json.RawMessage
		var err error
		if description, summary, err = s.cfg.Templates.CheckTemplate(ctx, pkg.ManifestBytes); err != nil {
			return nil, err
		}
		caps = summary
	} else {
		var err error
		if caps, err = json.Marshal(CapabilitiesOf(pkg.Manifest, x.File(relaypkg.WASMPath) != nil, x.Platforms())); err != nil {
			return nil, err
		}
		description = pkg.Manifest.Description
	}
	sum := sha256.Sum256(data)
	indexSum := sha256.Sum256(pkg.IndexBytes)
	now := s.now()
	v := &Release{Package: x.Package, Kind: kind, Version: x.Version, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data)),
		IndexSHA256: hex.EncodeToString(indexSum[:]), Signer: signer, PublishedAt: now,
		Manifest: pkg.ManifestBytes, Index: string(pkg.IndexBytes), Signature: signature}
	// A blob in files is written first: one left by a publish that does
	// not commit is harmless.
	_, inDB := s.cfg.Blobs.(SQLBlobs)
	if !inDB {
		if err := s.cfg.Blobs.Put(ctx, nil, v.SHA256, data); err != nil {
			return nil, err
		}
	}
	err := s.cfg.DB.InAuditedTx(ctx, func(ctx context.Context, tx *sqlx.Tx, audit func(*core.AuditRecord) error) error {
		if inDB {
			if err := s.cfg.Blobs.Put(ctx, tx, v.SHA256, data); err != nil {
				return err
			}
		}
		var known []string
		if err := tx.SelectContext(ctx, &known, tx.Rebind(`SELECT kind FROM registry_packages WHERE name = ?`), x.Package); err != nil {
			return fmt.Errorf("registry: package %s: %w", x.Package, err)
		}
		if len(known) == 0 {
			if err := checkNameFree(ctx, tx, "registry_packages", "package name", x.Package); err != nil {
				return err
			}
		} else if known[0] != kind {
			return core.Errorf(core.EConflict, "%s is a %s package; a %s needs a name of its own", x.Package, known[0], kind)
		}
		_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO registry_packages (name, publisher, description, created_at, updated_at, skeleton, kind)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET description = excluded.description, updated_at = excluded.updated_at`),
			x.Package, publisher, description, now, now, relaypkg.Skeleton(x.Package), kind)
		if s.isUnique(err) {
			return core.Errorf(core.EConflict, "the package name %q, or one that looks like it, is taken", x.Package)
		}
		if err != nil {
			return fmt.Errorf("registry: upsert package: %w", err)
		}
		_, err = tx.ExecContext(ctx, tx.Rebind(`INSERT INTO registry_versions (package, version, index_json, signature, signer_key_id,
			manifest, capabilities, blob_sha256, size, published_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			v.Package, v.Version, pkg.IndexBytes, v.Signature, v.Signer, string(v.Manifest), string(caps), v.SHA256, v.Size, now)
		if s.isUnique(err) {
			return core.Errorf(core.EConflict, "%s@%s is published already; versions never change: publish a new one", v.Package, v.Version)
		}
		if err != nil {
			return fmt.Errorf("registry: insert version: %w", err)
		}
		if err := bumpIndex(ctx, tx); err != nil {
			return err
		}
		if kind == relaypkg.KindTemplate {
			if err := s.cfg.Templates.TemplatePublished(ctx, tx, pkg.ManifestBytes); err != nil {
				return err
			}
		}
		return also(ctx, tx, audit, v)
	})
	if err != nil {
		return nil, err
	}
	return v, nil
}

// checkSigner verifies a signature of index by one of p's keys and
// returns the key's id: ESignerRevoked for a revoked key, ESignerUnknown
// for a key p does not have, ESignatureInvalid for a bad signature.
func (s *Service) checkSigner(p *Publisher, index, signature []byte) (string, error) {
	id, err := relaypkg.SignerOf(signature)
	if err != nil {
		return "", err
	}
	for _, k := range p.Keys {
		if k.ID != relaypkg.KeyID(id) {
			continue
		}
		if !k.Active() {
			return "", core.Errorf(core.ESignerRevoked, "key %s of publisher %s was revoked on %s", k.ID, p.Name, k.RevokedAt.Format(time.RFC3339))
		}
		pub, err := relaypkg.ParsePublicKey(k.PublicKey)
		if err != nil {
			return "", err
		}
		if err := relaypkg.Verify(pub, index, signature); err != nil {
			return "", err
		}
		return k.ID, nil
	}
	return "", core.Errorf(core.ESignerUnknown, "publisher %s has no key %s", p.Name, relaypkg.KeyID(id))
}

// YankVersion withdraws a version: ranges never pick it again; workspaces
// locked to it keep it and see why.
func (s *Service) YankVersion(ctx context.Context, p *Publisher, c *core.Caller, pkg, version, reason string) error {
	if strings.TrimSpace(reason) == "" || len(reason) > 500 {
		return core.Errorf(core.EInvalid, "a yank needs a reason of 1 to 500 characters")
	}
	return s.changeVersion(ctx, p, c, pkg, version, "registry.version.yank", map[string]any{"reason": reason}, `UPDATE registry_versions SET yanked_at = ?, yank_reason = ?
		WHERE package = ? AND version = ? AND yanked_at IS NULL`, s.now(), reason, pkg, version)
}

// Deprecate marks a package deprecated with a message (a successor to
// use, say); an empty message lifts it.
func (s *Service) Deprecate(ctx context.Context, p *Publisher, c *core.Caller, pkg, message string) error {
	if len(message) > 500 {
		return core.Errorf(core.EInvalid, "a deprecation message has at most 500 characters")
	}
	var msg any = message
	if message == "" {
		msg = nil
	}
	return s.changeVersion(ctx, p, c, pkg, "", "registry.package.deprecate", map[string]any{"message": message},
		`UPDATE registry_packages SET deprecated = ?, updated_at = ? WHERE name = ?`,
		msg, s.now(), pkg)
}

// changeVersion runs one update of the publisher's package in a
// transaction with its audit record (with details d); ENotFound when it
// changes nothing.
func (s *Service) changeVersion(ctx context.Context, p *Publisher, c *core.Caller, pkg, version, action string, d map[string]any, query string, args ...any) error {
	publisher, _, _ := strings.Cut(pkg, "/")
	if publisher != p.Name {
		return core.Errorf(core.EForbidden, "package %s is not publisher %s's", pkg, p.Name)
	}
	target := "package:" + pkg
	if version != "" {
		target += "@" + version
	}
	return s.cfg.DB.InAuditedTx(ctx, func(ctx context.Context, tx *sqlx.Tx, audit func(*core.AuditRecord) error) error {
		res, err := tx.ExecContext(ctx, tx.Rebind(query), args...)
		if err != nil {
			return fmt.Errorf("registry: %s: %w", action, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return core.Errorf(core.ENotFound, "no %s (or it is so already)", strings.TrimPrefix(target, "package:"))
		}
		if err := bumpIndex(ctx, tx); err != nil {
			return err
		}
		return audit(c.AuditRecord(action, target, "success", details(d)))
	})
}
