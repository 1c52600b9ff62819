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
	"io"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/registry/relaypkg"
)

// A server may install from another registry than its own: the central
// registry of an organisation, named with `relay serve --registry-url`
// and pinned by its key (--registry-key). It then resolves every
// connector but its own first-party ones (relay/…), and every template,
// in that registry's signed index, and trusts a publisher's key only as
// the index lists it. A version it installs is downloaded once, checked
// whole (the index's digest, the package's own index, the publisher's
// signature) and, a connector, unpacked before anything of it is stored;
// it is then kept as the server's own blobs are (registry_mirror, both
// kinds alike, told apart by the kind in their own index), so that every
// replica runs it, and a restart installs it again, without asking the
// registry.

// Upstream is a registry a server installs from; registry/client's
// Client.Upstream is one, over HTTP.
type Upstream interface {
	// Name says which registry it is, in messages: its URL.
	Name() string
	// KeyID is the id of the registry's pinned key.
	KeyID() string
	// Index fetches the registry's index and verifies it (VerifyIndex):
	// signed by the pinned key, not older than version seen, not expired.
	Index(ctx context.Context, seen int64) (*Index, error)
	// Version describes a version of a package.
	Version(ctx context.Context, pkg, version string) (*VersionDetail, error)
	// Download fetches a version's package, whose SHA-256 must be sum,
	// with the registry's description of the version.
	Download(ctx context.Context, pkg, version, sum string) (*VersionDetail, []byte, error)
}

// ownRegistry refuses what only a registry that its server installs from
// may take (publishers, packages): a server with an upstream installs
// nothing of its own registry but its first-party packages.
func (s *Service) ownRegistry() error {
	if s.cfg.Upstream != nil {
		return core.Errorf(core.EConflict, "this server installs connectors from the registry at %s: register and publish there", s.cfg.Upstream.Name())
	}
	return nil
}

// Upstream is the registry the server installs from, or nil.
func (s *Service) Upstream() Upstream { return s.cfg.Upstream }

// UpstreamKeyID is the pinned key id of the registry the server installs
// from; empty when it installs from its own.
func (s *Service) UpstreamKeyID() string {
	if s.cfg.Upstream == nil {
		return ""
	}
	return s.cfg.Upstream.KeyID()
}

// upstreamIndexTTL is how long a fetched index answers reads that need
// not be fresh (the lock's yank notes, a rollback's signer check right
// after a plan); an install or an upgrade plan fetches it again.
const upstreamIndexTTL = 30 * time.Second

// lockRefreshTimeout bounds the wait for the upstream's index when a lock
// is read.
const lockRefreshTimeout = 5 * time.Second

// upstreamCache keeps the upstream's last verified index.
type upstreamCache struct {
	mu      sync.Mutex
	x       *Index
	fetched time.Time
}

// remote reports whether pkg resolves in the upstream registry: every
// package but the server's own first-party ones, when there is one.
func (s *Service) remote(pkg string) bool {
	publisher, _, _ := strings.Cut(pkg, "/")
	return s.cfg.Upstream != nil && publisher != FirstParty
}

// upstreamIndex returns the upstream's index, verified, fetched now when
// fresh or when the one kept is older than upstreamIndexTTL. The newest
// version seen is kept in the database, where every replica and every
// later start of the server checks against it.
func (s *Service) upstreamIndex(ctx context.Context, fresh bool) (*Index, error) {
	c := &s.upstream
	c.mu.Lock()
	defer c.mu.Unlock()
	if !fresh && c.x != nil && s.now().Sub(c.fetched) < upstreamIndexTTL {
		return c.x, nil
	}
	up := s.cfg.Upstream
	db := s.cfg.DB.DB()
	var seen int64
	err := db.GetContext(ctx, &seen, s.rebind(`SELECT seen_version FROM registry_upstream WHERE key_id = ?`), up.KeyID())
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("registry: the upstream index's version seen: %w", err)
	}
	x, err := up.Index(ctx, seen)
	if err != nil {
		return nil, upstreamError(up, err)
	}
	// The version seen only grows, whichever replica saw which first.
	if _, err := db.ExecContext(ctx, s.rebind(`INSERT INTO registry_upstream (key_id, seen_version, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (key_id) DO UPDATE SET seen_version = excluded.seen_version, updated_at = excluded.updated_at
		WHERE registry_upstream.seen_version < excluded.seen_version`), up.KeyID(), x.Version, s.now()); err != nil {
		return nil, fmt.Errorf("registry: keep the upstream index's version: %w", err)
	}
	s.noteYanks(ctx, x)
	c.x, c.fetched = x, s.now()
	return x, nil
}

// upstreamError names the upstream registry in an error of its.
func upstreamError(up Upstream, err error) error {
	var e *core.Error
	if errors.As(err, &e) {
		if strings.Contains(e.Message, up.Name()) {
			return err
		}
		return core.Errorf(e.Code, "the registry at %s: %s", up.Name(), e.Message)
	}
	return core.Errorf(core.EUnavailable, "the registry at %s: %v", up.Name(), err)
}

// noteYanks records, for the versions taken from the upstream, the yanks
// its index lists since, with their reasons: a workspace locked to one
// keeps it and sees why. A reason that cannot be read now is read at the
// next fetch.
func (s *Service) noteYanks(ctx context.Context, x *Index) {
	var rows []struct {
		Package string `db:"package"`
		Version string `db:"version"`
	}
	if err := s.cfg.DB.DB().SelectContext(ctx, &rows, `SELECT package, version FROM registry_mirror WHERE yank_reason IS NULL`); err != nil {
		return
	}
	for _, r := range rows {
		if v := x.FindVersion(r.Package, r.Version); v == nil || !v.Yanked {
			continue
		}
		d, err := s.cfg.Upstream.Version(ctx, r.Package, r.Version)
		if err != nil || d.Yanked == nil {
			continue
		}
		reason := d.Yanked.Reason
		if reason == "" {
			reason = "yanked"
		}
		s.cfg.DB.DB().ExecContext(ctx, s.rebind(`UPDATE registry_mirror SET yank_reason = ? WHERE package = ? AND version = ?`),
			reason, r.Package, r.Version)
	}
}

// FindVersion returns the index's entry of pkg@version, or nil.
func (x *Index) FindVersion(pkg, version string) *IndexVersion {
	if p := x.FindPackage(pkg); p != nil {
		for i := range p.Versions {
			if p.Versions[i].Version == version {
				return &p.Versions[i]
			}
		}
	}
	return nil
}

// FindPackage returns the index's entry of a package, or nil.
func (x *Index) FindPackage(name string) *IndexPackage {
	for i := range x.Packages {
		if x.Packages[i].Name == name {
			return &x.Packages[i]
		}
	}
	return nil
}

// FindPublisher returns the index's entry of a publisher, with its keys,
// or nil.
func (x *Index) FindPublisher(name string) *IndexPublisher {
	for i := range x.Publishers {
		if x.Publishers[i].Name == name {
			return &x.Publishers[i]
		}
	}
	return nil
}

// pickUpstream resolves a range among the versions of a connector the
// upstream's index lists, fetched now. A template is no connector there,
// as here.
func (s *Service) pickUpstream(ctx context.Context, pkg, constraint string) (*candidate, error) {
	x, err := s.upstreamIndex(ctx, true)
	if err != nil {
		return nil, err
	}
	p := x.FindPackage(pkg)
	if p == nil || len(p.Versions) == 0 {
		return nil, core.Errorf(core.ENotFound, "no package %q in the registry at %s", pkg, s.cfg.Upstream.Name())
	}
	if p.KindOf() != relaypkg.KindConnector {
		return nil, core.Errorf(core.ENotFound, "no connector %q in the registry at %s: it is a template, which the marketplace installs", pkg, s.cfg.Upstream.Name())
	}
	rows := make([]candidate, len(p.Versions))
	for i, v := range p.Versions {
		rows[i] = candidate{Version: v.Version, Yanked: v.Yanked, protocol: v.Protocol, minRelayVersion: v.MinRelayVersion}
	}
	return pickVersion(pkg, rows, constraint, s.compatible)
}

// KindOf is the package's kind as the index lists it:
// relaypkg.KindConnector or relaypkg.KindTemplate.
func (p *IndexPackage) KindOf() string {
	if p.Kind == "" {
		return relaypkg.KindConnector
	}
	return p.Kind
}

// wrongKind refuses a version of another kind than the one asked for: a
// connector install names no template, and a template read no connector.
func (s *Service) wrongKind(kind, name, is string) error {
	return core.Errorf(core.ENotFound, "no %s %s in the registry at %s: it is a %s", kind, name, s.cfg.Upstream.Name(), is)
}

// mirrored returns what the server keeps of a version of the upstream's,
// of kind (relaypkg.KindConnector or KindTemplate), downloading it first
// when it keeps nothing of it, and the publisher as the upstream's index
// lists it now, whose keys the version's signature is checked against.
// A version of another kind is refused, ENotFound, before anything is
// downloaded.
func (s *Service) mirrored(ctx context.Context, kind, pkg, version string) (*versionRow, *Publisher, error) {
	x, err := s.upstreamIndex(ctx, false)
	if err != nil {
		return nil, nil, err
	}
	name := pkg + "@" + version
	iv := x.FindVersion(pkg, version)
	if iv == nil {
		// An index kept a while may predate the version.
		if x, err = s.upstreamIndex(ctx, true); err != nil {
			return nil, nil, err
		}
		if iv = x.FindVersion(pkg, version); iv == nil {
			return nil, nil, core.Errorf(core.ENotFound, "no version %s in the registry at %s", name, s.cfg.Upstream.Name())
		}
	}
	if is := x.FindPackage(pkg).KindOf(); is != kind {
		return nil, nil, s.wrongKind(kind, name, is)
	}
	publisher, _, _ := strings.Cut(pkg, "/")
	ip := x.FindPublisher(publisher)
	if ip == nil {
		return nil, nil, core.Errorf(core.ESignerUnknown, "the registry at %s lists no publisher %s, whose %s is", s.cfg.Upstream.Name(), publisher, name)
	}
	p := &Publisher{Name: ip.Name, Keys: ip.Keys}
	r, err := s.mirrorRow(ctx, kind, pkg, version)
	switch {
	case err == nil && r.SHA256 != iv.SHA256:
		return nil, nil, core.Errorf(core.EPackageTampered, "the registry at %s lists %s with SHA-256 %s, not %s as when it was installed here: versions never change",
			s.cfg.Upstream.Name(), name, iv.SHA256, r.SHA256)
	case err == nil:
		return r, p, nil
	case core.ErrorCode(err) != core.ENotFound:
		return nil, nil, err
	}
	if r, err = s.fetchUpstream(ctx, kind, iv, p, pkg, version); err != nil {
		return nil, nil, err
	}
	return r, p, nil
}

// fetchUpstream fetches a version of kind from the upstream and checks it
// whole before it stores anything: the package's bytes against the
// index's digest, its own index against the index's digest of it and
// against the one its publisher signed, its kind, the signature against
// the publisher's keys the index lists, and every member of the package:
// a connector's as it unpacks into the cache (relaypkg.Unpack leaves
// nothing of a package that fails), a template's as it is read
// (relaypkg.Inspect: a template runs nothing, and is read from its row).
// Only then are its blob and its row stored; a template's row keeps its
// template.json as the manifest, and no capabilities ("{}").
func (s *Service) fetchUpstream(ctx context.Context, kind string, iv *IndexVersion, p *Publisher, pkg, version string) (*versionRow, error) {
	up := s.cfg.Upstream
	name := pkg + "@" + version
	d, data, err := up.Download(ctx, pkg, version, iv.SHA256)
	if err != nil {
		return nil, upstreamError(up, err)
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != iv.SHA256 {
		return nil, core.Errorf(core.EPackageTampered, "the download of %s has SHA-256 %s, not %s as the registry's index lists", name, got, iv.SHA256)
	}
	if sha256Hex([]byte(d.Index)) != iv.IndexSHA256 {
		return nil, core.Errorf(core.EPackageTampered, "the registry at %s describes %s with another index than its signed index lists", up.Name(), name)
	}
	signer, err := s.checkSigner(p, []byte(d.Index), []byte(d.Signature))
	if err != nil {
		return nil, err
	}
	if signer != iv.Signer {
		return nil, core.Errorf(core.EPackageTampered, "%s is signed by key %s, not by %s as the registry's index lists", name, signer, iv.Signer)
	}
	// The index the signature signs says what the package is.
	if is := kindOf([]byte(d.Index)); is != kind {
		return nil, core.Errorf(core.EPackageTampered, "the registry's index lists %s as a %s, but its package is a %s", name, kind, is)
	}
	var pk *relaypkg.Package
	if kind == relaypkg.KindTemplate {
		pk, err = relaypkg.Inspect(bytes.NewReader(data), s.cfg.Limits)
	} else {
		pk, err = s.unpackedFrom(ctx, iv.SHA256, func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	}
	if err != nil {
		return nil, err
	}
	if pk != nil && (pk.Index.Package != pkg || pk.Index.Version != version || string(pk.IndexBytes) != d.Index) {
		return nil, core.Errorf(core.EPackageTampered, "the download of %s holds %s, with another index than the one its signature signs", name, pk.Index)
	}
	r := &versionRow{Package: pkg, Version: version, Index: []byte(d.Index), Signature: d.Signature, Signer: signer, SHA256: iv.SHA256}
	if pk == nil {
		// Unpacked here before (by an install whose row did not commit):
		// the folder is this SHA-256's, checked whole when it was made.
		if pk, err = relaypkg.Inspect(bytes.NewReader(data), s.cfg.Limits); err != nil {
			return nil, err
		}
	}
	r.Manifest = string(pk.ManifestBytes)
	if kind == relaypkg.KindTemplate {
		r.Capabilities = "{}"
	} else {
		caps, err := json.Marshal(CapabilitiesOf(pk.Manifest, pk.Index.File(relaypkg.WASMPath) != nil, pk.Index.Platforms()))
		if err != nil {
			return nil, err
		}
		r.Capabilities = string(caps)
	}
	if _, inDB := s.cfg.Blobs.(SQLBlobs); !inDB {
		if err := s.cfg.Blobs.Put(ctx, nil, r.SHA256, data); err != nil {
			return nil, err
		}
	}
	err = s.cfg.DB.InAuditedTx(ctx, func(ctx context.Context, tx *sqlx.Tx, _ func(*core.AuditRecord) error) error {
		if _, inDB := s.cfg.Blobs.(SQLBlobs); inDB {
			if err := s.cfg.Blobs.Put(ctx, tx, r.SHA256, data); err != nil {
				return err
			}
		}
		var yank any
		if d.Yanked != nil {
			yank = d.Yanked.Reason
		}
		_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO registry_mirror (package, version, registry_key_id, index_json, signature,
			signer_key_id, manifest, capabilities, blob_sha256, size, yank_reason, mirrored_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (package, version) DO NOTHING`),
			pkg, version, up.KeyID(), r.Index, r.Signature, r.Signer, r.Manifest, r.Capabilities, r.SHA256, len(data), yank, s.now())
		if err != nil {
			return fmt.Errorf("registry: keep %s: %w", name, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.mirrorRow(ctx, kind, pkg, version)
}

// kindOf is the kind a package's index (relaypkg.json) says,
// relaypkg.KindConnector when it names none; "" when it does not read.
func kindOf(index []byte) string {
	var x relaypkg.Index
	if err := json.Unmarshal(index, &x); err != nil {
		return ""
	}
	return x.KindOf()
}
